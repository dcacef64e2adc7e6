// The rules live in YAML: a policy edited in a temporary copy changes what the
// CLI allows, with no rebuild; the project's own policy is untouched.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

class PolicyEditTest : public CliTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(BuildWorld());
    copy_ = dir_.File("policies");
    std::filesystem::copy(DefaultPolicyDir(), copy_, std::filesystem::copy_options::recursive);
    file_ = copy_ + "/api-tokens.yaml";
  }

  // Replaces the one occurrence of `from` in the copy's api-tokens.yaml.
  void Edit(const std::string& from, const std::string& to) {
    std::string text = ReadFileBytes(file_);
    size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << "the default policy no longer contains:\n" << from;
    ASSERT_EQ(text.find(from, at + 1), std::string::npos) << "not unique:\n" << from;
    text.replace(at, from.size(), to);
    WriteFileBytes(file_, text);
  }

  // The edit breaks the seed's invariant `id`: every command refuses the
  // policy, naming the invariant and where it is written. Then the copy's
  // invariants are dropped, so the rest of the test sees the edit's effect.
  void ExpectRefusedByInvariantThenDropIt(const std::vector<std::string>& args, const std::string& id) {
    ProcessResult r = Edited().Run(args);
    EXPECT_TRUE(PolicyLoadFailed(r, copy_ + "/invariants/seed.yaml")) << r;
    EXPECT_NE(r.err.find("invariant " + id + " broken"), std::string::npos) << r;
    EXPECT_NE(r.err.find("counterexample"), std::string::npos) << r;
    std::filesystem::remove_all(copy_ + "/invariants");
  }

  // gh_ with the edited copy, by --policy.
  Gatehouse Edited() const {
    Gatehouse g = gh_;
    g.policy = copy_;
    return g;
  }

  std::string copy_, file_;
};

TEST_F(PolicyEditTest, LettingViewersImportChangesWhatAuthorizeAllows) {
  NewToken viewer = CreateToken(kOwner, kDevViewerBot);
  const std::vector<std::string> import = {"authorize", "--action", "project.import", "--workspace",
                                           kDev,        "--token",  viewer.secret};
  const std::vector<std::string> exp = {"authorize", "--action", "project.export", "--workspace",
                                        kDev,        "--token",  viewer.secret};
  // The unedited copy decides as the default policy does.
  EXPECT_TRUE(Denied(Edited().Run(import), "contributors-and-up"));

  Edit(
      "when: principal.workspace_role >= contributor\n"
      "        message: Importing a project needs workspace role contributor",
      "when: principal.workspace_role >= viewer\n"
      "        message: Importing a project needs workspace role contributor");
  ExpectRefusedByInvariantThenDropIt(import, "viewers-never-import-or-export");
  ProcessResult r = Edited().Run(import);
  EXPECT_TRUE(Succeeded(r));
  EXPECT_NE(r.out.find("contributors-and-up"), std::string::npos) << r;
  // Only import changed; the default policy is as it was.
  EXPECT_TRUE(Denied(Edited().Run(exp), "contributors-and-up"));
  EXPECT_TRUE(Denied(gh_.Run(import), "contributors-and-up"));
  // GATEHOUSE_POLICY names the policy just as --policy does.
  Gatehouse by_env = gh_;
  by_env.env = {"GATEHOUSE_POLICY=" + copy_};
  EXPECT_TRUE(Succeeded(by_env.Run(import)));
  // The policy revision the CLI reports differs.
  json a = json::parse(gh_.Run({"authorize", "--action", "project.import", "--workspace", kDev,
                                "--token", viewer.secret, "--json"})
                           .out,
                       nullptr, false);
  json b = json::parse(Edited()
                           .Run({"authorize", "--action", "project.import", "--workspace", kDev,
                                 "--token", viewer.secret, "--json"})
                           .out,
                       nullptr, false);
  ASSERT_TRUE(a.is_object() && b.is_object());
  EXPECT_EQ(a["allow"], false);
  EXPECT_EQ(b["allow"], true);
  EXPECT_NE(a["policy"]["revision"], b["policy"]["revision"]);
}

TEST_F(PolicyEditTest, DroppingTheToggleFromTokenCreateLetsWorkspaceAdminsCreateTokens) {
  const std::vector<std::string> create = {"token",  "create", "--apiuser",    kDevBot,
                                           "--name", "t",      "--expires-in", "30d"};
  EXPECT_TRUE(Denied(Edited().As(kWsAdmin, create), "ws-admins-with-toggle"));
  Edit(
      "principal.workspace_role >= admin and settings.workspace_admins_can_create_tokens\n"
      "        message: Only organization owners and admins may create tokens",
      "principal.workspace_role >= admin\n"
      "        message: Only organization owners and admins may create tokens");
  ExpectRefusedByInvariantThenDropIt(create, "credentials-need-org-admin-or-the-toggle");
  ProcessResult r = Edited().As(kWsAdmin, create);
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(Succeeded(gh_.Run({"token", "verify", r.out.substr(0, r.out.find('\n'))})));
  // Not api_user.create nor token.revoke, and not under the default policy.
  EXPECT_TRUE(Denied(Edited().As(kWsAdmin, {"apiuser", "create", "b", "--workspace", kDev,
                                            "--workspace-role", "viewer"}),
                     "ws-admins-with-toggle"));
  EXPECT_TRUE(Denied(gh_.As(kWsAdmin, create), "ws-admins-with-toggle"));
  // Contributors still never.
  EXPECT_TRUE(Denied(Edited().As(kWsContrib, create), "ws-admins-with-toggle"));
}

TEST_F(PolicyEditTest, ALowerMaxLifetimeCapsTokenCreate) {
  Edit("max_lifetime: 365d", "max_lifetime: 7d");
  const std::vector<std::string> month = {"token",  "create", "--apiuser",    kDevBot,
                                          "--name", "t",      "--expires-in", "30d"};
  EXPECT_TRUE(Denied(Edited().As(kOwner, month), "tokens.max_lifetime"));
  EXPECT_TRUE(Succeeded(Edited().As(
      kOwner, {"token", "create", "--apiuser", kDevBot, "--name", "t", "--expires-in", "7d"})));
  EXPECT_TRUE(Succeeded(gh_.As(kOwner, month)));
}

}  // namespace
}  // namespace gatehouse::testing
