// CLI habits (issue 12 item 6), through the real binary: every failure under
// --json is one JSON line {"error", "exit"} on stderr carrying the same
// message and exit status as without it; failing policy tests exit 6, a
// policy that fails to load 1; every command's --help names the environment
// variables it reads.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

namespace fs = std::filesystem;

class CliHabitsTest : public CliTest {};

// Failures of every kind, each run with and without --json (at the end and
// at the front): the same exit status, and the JSON error is the text
// message without its "gatehouse: " prefix.
TEST_F(CliHabitsTest, JsonErrorsMatchTheTextErrors) {
  BuildWorld();
  if (HasFatalFailure()) return;
  struct Case {
    std::string who;
    std::vector<std::string> args;
    int exit;
  };
  const std::vector<Case> cases = {
      {"", {"no-such-command"}, 2},
      {"", {"token"}, 2},
      {"", {"token", "create", "--bogus"}, 2},
      {"", {"token", "revoke"}, 2},
      {"", {"token", "revoke", "a", "b"}, 2},
      {"", {"gc", "--apiuser", "x"}, 2},
      {kOwner, {"token", "create", "--apiuser", "dev-bot", "--name", "x", "--expires-in", "soon"}, 2},
      {kOwner, {"token", "revoke", "tok_doesnotexist"}, 4},
      {kOrgViewer, {"token", "create", "--apiuser", "dev-bot", "--name", "x", "--expires-in", "1d"}, 3},
      {kOwner, {"workspace", "create", kDev, "--type", "shared"}, 5},
      {kOwner, {"user", "add", kAdmin, "--org-role", "admin"}, 5},
      {"nobody@acme.test", {"token", "list"}, 4},
      {kOwner, {"token", "verify", "gat_notatoken"}, 3},
  };
  for (const Case& c : cases) {
    ProcessResult text = c.who.empty() ? gh_.Run(c.args) : gh_.As(c.who, c.args);
    ASSERT_TRUE(Failed(text, c.exit)) << text;
    if (c.args[0] == "token" && c.args.size() > 1 && c.args[1] == "verify") continue;  // prints JSON on stdout
    std::vector<std::string> back = c.args, front = c.args;
    back.push_back("--json");
    front.insert(front.begin(), "--json");
    for (const auto& args : {back, front}) {
      ProcessResult j = c.who.empty() ? gh_.Run(args) : gh_.As(c.who, args);
      ASSERT_TRUE(Failed(j, c.exit)) << j;
      const json e = json::parse(j.err);
      EXPECT_EQ("gatehouse: " + e["error"].get<std::string>() + "\n", text.err) << j;
      EXPECT_EQ(e["exit"], c.exit);
    }
  }
}

// A copy of the default policy whose tests fail, one way or several.
TEST_F(CliHabitsTest, FailingPolicyTestsExitSixAndARefusedPolicyOne) {
  const std::string dir = dir_.File("policies");
  fs::copy(DefaultPolicyDir(), dir, fs::copy_options::recursive);
  ProcessResult ok = gh_.Run({"policy", "test", dir});
  ASSERT_TRUE(Succeeded(ok)) << ok;
  const std::string tests = dir + "/tests/tokens.yaml";
  const std::string original = ReadFileBytes(tests);
  // Each expectation of the file flipped in turn (generated cases).
  size_t at = 0;
  int flipped = 0;
  while ((at = original.find("    expect: deny\n", at)) != std::string::npos && flipped < 6) {
    std::string changed = original;
    changed.replace(at, 17, "    expect: allow\n");
    WriteFileBytes(tests, changed);
    ProcessResult r = gh_.Run({"policy", "test", dir});
    EXPECT_EQ(r.exit_code, 6) << r;
    EXPECT_NE(r.out.find("FAIL "), std::string::npos) << r;
    ProcessResult j = gh_.Run({"policy", "test", dir, "--json"});
    EXPECT_EQ(j.exit_code, 6) << j;
    EXPECT_GE(json::parse(j.out).value("failed", 0), 1) << j;
    ++flipped;
    at += 17;
  }
  EXPECT_EQ(flipped, 6);
  WriteFileBytes(tests, original);
  // The policy itself broken: 1, as before.
  const std::string policy = dir + "/api-tokens.yaml";
  WriteFileBytes(policy, ReadFileBytes(policy) + "\nnot: [closed\n");
  for (const char* cmd : {"test", "validate"}) {
    ProcessResult r = gh_.Run({"policy", cmd, dir});
    EXPECT_EQ(r.exit_code, 1) << r;
  }
}

// --help of every command lists the environment variables it reads, and the
// exit statuses including 6.
TEST_F(CliHabitsTest, HelpListsTheEnvironmentEachCommandReads) {
  const std::vector<std::vector<std::string>> admin = {
      {"init"}, {"user", "add"}, {"token", "create"}, {"token", "list"}, {"audit"}, {"gc"}};
  for (auto words : admin) {
    words.push_back("--help");
    ProcessResult r = gh_.Run(words);
    ASSERT_TRUE(Succeeded(r)) << r;
    for (const char* var : {"GATEHOUSE_STORE", "GATEHOUSE_POLICY", "GATEHOUSE_AS"})
      EXPECT_NE(r.out.find("\n  " + std::string(var) + " "), std::string::npos) << var << r;
    EXPECT_EQ(r.out.find("\n  GATEHOUSE_TOKEN "), std::string::npos) << r;
    EXPECT_NE(r.out.find("\n  6  policy test"), std::string::npos) << r;
  }
  for (auto words : std::vector<std::vector<std::string>>{{"authorize"}, {"token", "verify"}}) {
    words.push_back("--help");
    ProcessResult r = gh_.Run(words);
    EXPECT_NE(r.out.find("\n  GATEHOUSE_TOKEN "), std::string::npos) << r;
  }
  for (const char* cmd : {"validate", "test", "matrix", "diff"}) {
    ProcessResult r = gh_.Run({"policy", cmd, "--help"});
    EXPECT_NE(r.out.find("environment:\n  GATEHOUSE_POLICY "), std::string::npos) << r;
    EXPECT_EQ(r.out.find("\n  GATEHOUSE_STORE "), std::string::npos) << r;
  }
}

}  // namespace
}  // namespace gatehouse::testing
