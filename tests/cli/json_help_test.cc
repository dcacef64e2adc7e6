// --json on every command that prints data parses as JSON; global options
// stand before or after the command words with the same result; --help works
// on every command.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

// Every command of CONTRACT.md's CLI list.
const std::vector<std::vector<std::string>> kCommands = {
    {"init"},
    {"user", "add"},
    {"workspace", "create"},
    {"member", "add"},
    {"settings", "set"},
    {"settings", "show"},
    {"apiuser", "create"},
    {"apiuser", "promote"},
    {"apiuser", "list"},
    {"apiuser", "delete"},
    {"token", "create"},
    {"token", "list"},
    {"token", "revoke"},
    {"token", "verify"},
    {"authorize"},
    {"policy", "validate"},
    {"policy", "test"},
    {"policy", "matrix"},
    {"policy", "diff"},
    {"audit"},
    {"gc"},
};

std::string Words(const std::vector<std::string>& w) {
  std::string s;
  for (const auto& x : w) s += (s.empty() ? "" : " ") + x;
  return s;
}

class JsonHelpTest : public CliTest {};

// Runs ARGS --json, expects EXIT, returns the parsed stdout.
json JsonOf(const Gatehouse& g, const std::string& who, std::vector<std::string> args,
            int exit = 0) {
  args.push_back("--json");
  ProcessResult r = g.As(who, args);
  if (exit == 0) {
    EXPECT_TRUE(Succeeded(r));
  } else {
    EXPECT_TRUE(Failed(r, exit));
  }
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON" << r;
  return j;
}

void ExpectKeys(const json& j, const std::vector<std::string>& keys) {
  ASSERT_TRUE(j.is_object()) << j.dump();
  for (const auto& k : keys) EXPECT_TRUE(j.contains(k)) << "no \"" << k << "\" in " << j.dump();
}

TEST_F(JsonHelpTest, EveryDataPrintingCommandPrintsJson) {
  json j = JsonOf(gh_, "", {"init", "--org", "Acme", "--owner", kOwner});
  ExpectKeys(j, {"organization", "owner", "workspace"});
  EXPECT_EQ(j["workspace"], "Organization");
  ExpectKeys(JsonOf(gh_, kOwner, {"user", "add", kWsAdmin, "--org-role", "viewer"}),
             {"email", "org_role"});
  ExpectKeys(JsonOf(gh_, kOwner, {"workspace", "create", kDev, "--type", "shared"}),
             {"workspace", "type"});
  ExpectKeys(
      JsonOf(gh_, kOwner, {"member", "add", kWsAdmin, "--workspace", kDev, "--role", "admin"}),
      {"email", "workspace"});
  ExpectKeys(JsonOf(gh_, kOwner, {"settings", "set", kToggle, "true"}), {"setting", "value"});
  j = JsonOf(gh_, kOwner, {"settings", "show"});
  ASSERT_TRUE(j.is_array() && j.size() == 1) << j.dump();
  ExpectKeys(j[0], {"name", "value"});
  ExpectKeys(
      JsonOf(gh_, kOwner,
             {"apiuser", "create", kDevBot, "--workspace", kDev, "--workspace-role", "viewer"}),
      {"name", "workspace", "workspace_role", "org_role"});
  ExpectKeys(
      JsonOf(gh_, kOwner, {"apiuser", "promote", kDevBot, "--workspace-role", "contributor"}),
      {"name"});
  j = JsonOf(gh_, kOwner, {"apiuser", "list"});
  ASSERT_TRUE(j.is_array() && j.size() == 1) << j.dump();
  ExpectKeys(j[0], {"name", "workspace", "workspace_role", "org_role"});

  // token create: exactly the contract's fields (at least).
  j = JsonOf(gh_, kOwner,
             {"token", "create", "--apiuser", kDevBot, "--name", "ci", "--expires-in", "30d"});
  ExpectKeys(j, {"id", "token", "name", "apiuser", "workspace", "expires_at"});
  const std::string secret = j["token"], id = j["id"];
  EXPECT_EQ(j["name"], "ci");
  EXPECT_EQ(j["apiuser"], kDevBot);
  EXPECT_EQ(j["workspace"], kDev);
  j = JsonOf(gh_, kOwner, {"token", "list"});
  ASSERT_TRUE(j.is_array() && j.size() == 1) << j.dump();
  ExpectKeys(j[0], {"id", "name", "apiuser", "workspace", "expires_at"});
  // token verify: the RFC 7662 object of the contract (with or without --json).
  j = JsonOf(gh_, "", {"token", "verify", secret});
  ExpectKeys(j, {"active", "token_type", "sub", "username", "workspace", "workspace_role",
                 "org_role", "token_id", "iat", "exp"});
  EXPECT_EQ(j["active"], true);
  EXPECT_EQ(j["token_type"], "api_token");
  EXPECT_EQ(j["username"], kDevBot);
  EXPECT_EQ(j["token_id"], id);
  EXPECT_TRUE(j["iat"].is_number_integer() && j["exp"].is_number_integer());
  EXPECT_EQ(j["exp"].get<int64_t>() - j["iat"].get<int64_t>(), 30 * 86400);
  // authorize, allowed and denied.
  j = JsonOf(gh_, "",
             {"authorize", "--action", "project.export", "--workspace", kDev, "--token", secret});
  ExpectKeys(j, {"allow", "reasons", "policy"});
  EXPECT_EQ(j["allow"], true);
  j = JsonOf(gh_, "",
             {"authorize", "--action", "token.create", "--workspace", kDev, "--user", kWsAdmin});
  EXPECT_EQ(j["allow"], true);  // toggle on
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"settings", "set", kToggle, "false"})));
  j = JsonOf(gh_, "",
             {"authorize", "--action", "token.create", "--workspace", kDev, "--user", kWsAdmin}, 3);
  EXPECT_EQ(j["allow"], false);
  ASSERT_TRUE(j["reasons"].is_array() && !j["reasons"].empty());
  EXPECT_EQ(j["reasons"][0]["rule"], "ws-admins-with-toggle");
  j = JsonOf(gh_, kOwner, {"audit", "--limit", "3"});
  ASSERT_TRUE(j.is_array() && j.size() == 3) << j.dump();
  ExpectKeys(j[0], {"time", "actor", "action", "target", "decision", "rule"});
  ExpectKeys(JsonOf(gh_, kOwner, {"token", "revoke", id}), {"revoked"});
  EXPECT_EQ(JsonOf(gh_, "", {"token", "verify", secret}, 3), json({{"active", false}}));
  ExpectKeys(JsonOf(gh_, "", {"gc"}), {"deleted"});
  ExpectKeys(JsonOf(gh_, kOwner, {"apiuser", "delete", kDevBot}), {"deleted", "tokens_deleted"});
  // The policy commands.
  const std::string p = DefaultPolicyDir();
  EXPECT_TRUE(JsonOf(gh_, "", {"policy", "validate", p}).is_object());
  EXPECT_TRUE(JsonOf(gh_, "", {"policy", "test", p}).is_object());
  EXPECT_TRUE(JsonOf(gh_, "", {"policy", "matrix", p}).is_object());
  EXPECT_TRUE(JsonOf(gh_, "", {"policy", "diff", p, p}).is_object());
}

TEST_F(JsonHelpTest, GlobalOptionsBeforeOrAfterTheCommandWordsAreTheSame) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  NewToken t = CreateToken(kOwner, kDevBot);
  const std::string bin = GatehouseBinary(), s = gh_.store, p = DefaultPolicyDir();
  auto run = [&](const std::vector<std::string>& argv) {
    ProcessOptions o;
    o.env = ChildEnvironment();
    return RunProcess(argv, o);
  };
  const std::vector<std::vector<std::vector<std::string>>> groups = {
      {{bin, "--json", "--store", s, "--as", kOwner, "token", "list"},
       {bin, "token", "list", "--json", "--store", s, "--as", kOwner},
       {bin, "--store", s, "token", "list", "--as", kOwner, "--json"},
       {bin, "--org", "Acme", "--policy", p, "--store", s, "--as", kOwner, "--json", "token",
        "list"},
       {bin, "token", "list", "--json", "--as", kOwner, "--store", s, "--policy", p, "--org",
        "Acme"}},
      {{bin, "--json", "--store", s, "--as", kWsAdmin, "apiuser", "list"},
       {bin, "apiuser", "list", "--store", s, "--as", kWsAdmin, "--json"}},
      {{bin, "--json", "--store", s, "settings", "show"},
       {bin, "settings", "show", "--store", s, "--json"}},
      {{bin, "--json", "--store", s, "token", "verify", t.secret},
       {bin, "token", "verify", t.secret, "--store", s, "--json"},
       {bin, "--store", s, "token", "verify", t.secret}},
      {{bin, "--store", s, "--json", "authorize", "--action", "project.export", "--workspace", kDev,
        "--token", t.secret},
       {bin, "authorize", "--action", "project.export", "--workspace", kDev, "--token", t.secret,
        "--store", s, "--json"}},
      {{bin, "--json", "--policy", p, "policy", "matrix"},
       {bin, "policy", "matrix", "--policy", p, "--json"},
       {bin, "policy", "matrix", p, "--json"}},
  };
  for (const auto& group : groups) {
    ProcessResult first = run(group[0]);
    ASSERT_TRUE(Succeeded(first));
    EXPECT_FALSE(json::parse(first.out, nullptr, false).is_discarded()) << first;
    for (size_t i = 1; i < group.size(); ++i) {
      ProcessResult r = run(group[i]);
      EXPECT_TRUE(Succeeded(r));
      EXPECT_EQ(r.out, first.out) << "differs from" << first << r;
    }
  }
  // A write with global options after the command words acts as the same person on the same store.
  ProcessResult w = run({bin, "token", "create", "--apiuser", kDevBot, "--name", "after",
                         "--expires-in", "1d", "--store", s, "--as", kWsAdmin, "--json"});
  EXPECT_TRUE(Denied(w, "ws-admins-with-toggle"));
  w = run({bin, "token", "create", "--apiuser", kDevBot, "--name", "after", "--expires-in", "1d",
           "--as", kOwner, "--store", s, "--json"});
  ASSERT_TRUE(Succeeded(w));
  json list = gh_.Json(kOwner, {"token", "list", "--apiuser", kDevBot});
  bool found = false;
  for (const auto& e : list)
    if (e["name"] == "after") found = e["created_by"] == kOwner;
  EXPECT_TRUE(found) << list.dump();
  // The environment names the store and the identity as the flags do.
  ProcessOptions o;
  o.env = ChildEnvironment({"GATEHOUSE_STORE=" + s, std::string("GATEHOUSE_AS=") + kOwner});
  ProcessResult by_env = RunProcess({bin, "token", "list", "--json"}, o);
  EXPECT_TRUE(Succeeded(by_env));
  EXPECT_EQ(by_env.out, run({bin, "token", "list", "--json", "--store", s, "--as", kOwner}).out);
}

TEST_F(JsonHelpTest, HelpWorksOnEveryCommandWithoutAStore) {
  const std::string bin = GatehouseBinary();
  ProcessOptions o;
  o.env = ChildEnvironment();
  ProcessResult top = RunProcess({bin, "--help"}, o);
  ASSERT_TRUE(Succeeded(top));
  EXPECT_TRUE(RunProcess({bin, "-h"}, o).out == top.out);
  for (const auto& words : kCommands) {
    SCOPED_TRACE(Words(words));
    EXPECT_NE(top.out.find("gatehouse " + Words(words)), std::string::npos)
        << "the top-level help does not list it" << top;
    std::vector<std::string> after = {bin, "--store", gh_.store};
    after.insert(after.end(), words.begin(), words.end());
    after.push_back("--help");
    std::vector<std::string> before = {bin, "--help", "--store", gh_.store};
    before.insert(before.end(), words.begin(), words.end());
    for (const auto& argv : {after, before}) {
      ProcessResult r = RunProcess(argv, o);
      EXPECT_TRUE(Succeeded(r));
      EXPECT_EQ(r.out.rfind("usage: gatehouse " + Words(words), 0), 0u) << r;
      EXPECT_TRUE(r.err.empty()) << r;
    }
  }
  // --help runs nothing: no store was created.
  ProcessResult r =
      RunProcess({bin, "--store", gh_.store, "init", "--org", "A", "--owner", kOwner, "--help"}, o);
  EXPECT_TRUE(Succeeded(r));
  EXPECT_FALSE(FileExists(gh_.store));
  // Help on a group of commands lists the group.
  r = RunProcess({bin, "token", "--help"}, o);
  EXPECT_TRUE(Succeeded(r));
  for (const char* sub : {"token create", "token list", "token revoke", "token verify"})
    EXPECT_NE(r.out.find(sub), std::string::npos) << r;
}

}  // namespace
}  // namespace gatehouse::testing
