// The policy as outside input, through the real CLI (issue 10, items 4-7):
// the lifetime cap holds whatever the rules declare, a policy written from
// the contract alone loads, an action without rules is refused with its
// position, every skipped file is named, nothing but a regular file or a
// folder is read (a FIFO must not hang the CLI), and big files and ids fail
// with short messages.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A policy written from scratch: the actions the CLI needs to make an API
// user and a token, for org admins; token.create declares no parameter.
const char kScratch[] = R"(gatehouse: v1
policy: scratch
tokens:
  max_lifetime: 7d
actions:
  workspace.create:
    permit:
      - {rule: admins, when: "principal.org_role >= admin"}
  api_user.create:
    permit:
      - {rule: admins, when: "principal.org_role >= admin"}
  token.create:
    permit:
      - {rule: admins, when: "principal.org_role >= admin"}
)";

class PolicyInputTest : public CliTest {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    WriteFileBytes(dir_.File(name), text);
    return dir_.File(name);
  }
};

TEST_F(PolicyInputTest, MaxLifetimeHoldsWhenTokenCreateDeclaresNoLifetime) {
  gh_.policy = Write("scratch.yaml", kScratch);
  ASSERT_TRUE(Succeeded(gh_.Run({"init", "--org", "Acme", "--owner", kOwner})));
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"workspace", "create", "Dev", "--type", "shared"})));
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"apiuser", "create", "bot", "--workspace", "Dev", "--workspace-role", "viewer"})));
  for (const char* over : {"8d", "169h", "2w", "604801s"}) {
    const StoreSnapshot before = Snapshot(gh_.store);
    ProcessResult r = gh_.As(kOwner, {"token", "create", "--apiuser", "bot", "--name", "t", "--expires-in", over});
    EXPECT_TRUE(Denied(r, "tokens.max_lifetime")) << over;
    EXPECT_TRUE(r.out.empty());
    EXPECT_TRUE(Unchanged(gh_.store, before, 1)) << over;
  }
  for (const char* bad : {"0s", "-1d", "0d", "-9223372036854775808s"}) {
    const StoreSnapshot before = Snapshot(gh_.store);
    EXPECT_TRUE(Failed(gh_.As(kOwner, {"token", "create", "--apiuser", "bot", "--name", "t", "--expires-in", bad}), 2))
        << bad;
    EXPECT_TRUE(Unchanged(gh_.store, before, 0)) << bad;
  }
  EXPECT_TRUE(Succeeded(gh_.As(kOwner, {"token", "create", "--apiuser", "bot", "--name", "t", "--expires-in", "7d"})));
}

TEST_F(PolicyInputTest, APolicyFromTheContractAloneLoads) {
  // No description, no on_deny.graphql.message, no roles, types or settings.
  const std::string file = Write("minimal.yaml", R"(gatehouse: v1
policy: minimal
actions:
  project.import:
    permit:
      - rule: admins
        when: principal.org_role >= admin
    on_deny:
      graphql: {field: importProject, name: PreconditionError, code: internal_error}
)");
  ProcessResult r = gh_.Run({"policy", "validate", file});
  EXPECT_TRUE(Succeeded(r)) << r.err;
  EXPECT_TRUE(Contains(r.out, "policy minimal")) << r.out;
}

TEST_F(PolicyInputTest, AnActionWithoutRulesIsRefusedWithItsPosition) {
  const std::string file = Write("norules.yaml", R"(gatehouse: v1
policy: norules
actions:
  project.import:
    description: forgot the rules
  project.export:
    permit: []
  token.create:
    permit:
      - {rule: ok, when: "principal.org_role >= admin"}
)");
  ProcessResult r = gh_.Run({"policy", "validate", file});
  EXPECT_TRUE(PolicyLoadFailed(r, file));
  EXPECT_TRUE(Contains(r.err, file + ":4:3: actions.project.import has no rules")) << r.err;
  EXPECT_TRUE(Contains(r.err, file + ":6:3: actions.project.export has no rules")) << r.err;
  EXPECT_FALSE(Contains(r.err, "token.create")) << r.err;
}

TEST_F(PolicyInputTest, WhichFilesArePolicyFilesAndEverySkippedOneIsNamed) {
  const std::string folder = dir_.File("pol");
  ASSERT_EQ(::mkdir(folder.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((folder + "/old").c_str(), 0700), 0);
  // Split across files whose suffixes differ in case: all are policy files.
  WriteFileBytes(folder + "/a.YAML", "gatehouse: v1\npolicy: split\n");
  WriteFileBytes(folder + "/b.Yaml",
                 "gatehouse: v1\nactions:\n  project.import:\n    permit:\n      - {rule: r, when: \"principal.org_role >= admin\"}\n");
  WriteFileBytes(folder + "/notes.txt", "not a policy");
  WriteFileBytes(folder + "/old/c.yaml", "this: would not load");
  ProcessResult r = gh_.Run({"policy", "validate", folder});
  EXPECT_TRUE(Succeeded(r)) << r.err;
  EXPECT_TRUE(Contains(r.out, "1 actions")) << r.out;
  EXPECT_TRUE(Contains(r.err, "notes.txt: warning: skipped")) << r.err;
  EXPECT_TRUE(Contains(r.err, "old/: warning: skipped")) << r.err;
}

TEST_F(PolicyInputTest, NothingButARegularFileOrAFolderIsRead) {
  const std::string fifo = dir_.File("policy.yaml");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  gh_.timeout = std::chrono::milliseconds(30'000);  // a hang fails here, it does not stall the suite
  for (const std::string& path : {fifo, std::string("/dev/null"), std::string("/dev/zero")}) {
    ProcessResult r = gh_.Run({"policy", "validate", path});
    EXPECT_FALSE(r.timed_out) << path;
    EXPECT_EQ(r.exit_code, 1) << path << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, "a policy is a regular file or a folder")) << path << ": " << r.err;
    // As --policy of a command too, which then changes nothing (no store made).
    Gatehouse other(dir_.File("none.db"));
    other.policy = path;
    other.timeout = gh_.timeout;
    r = other.Run({"init", "--org", "Acme", "--owner", kOwner});
    EXPECT_FALSE(r.timed_out) << path;
    EXPECT_EQ(r.exit_code, 1) << path;
    EXPECT_FALSE(FileExists(dir_.File("none.db")));
  }
}

TEST_F(PolicyInputTest, BigFilesAndIdsGiveShortErrors) {
  // 50 MB of YAML: refused by size before it is parsed.
  std::string big = "gatehouse: v1\npolicy: big\nx: \"";
  big.append(50 << 20, 'a');
  big += "\"\n";
  const std::string big_file = Write("big.yaml", big);
  ProcessResult r = gh_.Run({"policy", "validate", big_file});
  EXPECT_TRUE(PolicyLoadFailed(r, big_file));
  EXPECT_LT(r.err.size(), 2000u) << r.err.substr(0, 2000);
  // A 200 KB rule id: the message quotes a cut.
  const std::string id(200 << 10, 'Z');
  const std::string id_file = Write("id.yaml", "gatehouse: v1\npolicy: ids\nactions:\n  project.import:\n    permit:\n"
                                               "      - {rule: " + id + ", when: \"principal.org_role >= admin\"}\n");
  r = gh_.Run({"policy", "validate", id_file});
  EXPECT_TRUE(PolicyLoadFailed(r, id_file));
  EXPECT_LT(r.err.size(), 2000u) << r.err.substr(0, 2000);
  EXPECT_TRUE(Contains(r.err, "bytes)")) << r.err;
}

}  // namespace
}  // namespace gatehouse::testing
