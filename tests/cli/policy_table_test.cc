// DESIGN.md's default-policy table, row by row, from both sides, through the
// real `gatehouse` binary: who may, who may not (exit 3, the rule named on
// stderr, nothing changed, the denial audited), and that what was allowed
// really took effect.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

class PolicyTableTest : public CliTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(BuildWorld()); }

  // WHO runs ARGS; the policy must refuse it by RULE: exit 3 with the rule on
  // stderr, the store as it was, and exactly one new audit record: the denial.
  void ExpectRefused(const std::string& who, const std::vector<std::string>& args,
                     const std::string& action, const std::string& rule) {
    SCOPED_TRACE(who + " " + action);
    StoreSnapshot before = Snapshot(gh_.store);
    ProcessResult r = gh_.As(who, args);
    EXPECT_TRUE(Denied(r, rule));
    EXPECT_TRUE(Unchanged(gh_.store, before, 1));
    auto audit = AuditSince(gh_.store, before.last_audit_id);
    if (audit.size() == 1) {
      EXPECT_EQ(audit[0].actor, who);
      EXPECT_EQ(audit[0].action, action);
      EXPECT_EQ(audit[0].decision, "deny");
      EXPECT_EQ(audit[0].rule, rule);
    }
  }

  // WHO runs ARGS and the policy allows it: exit 0 and one "allow" audit record.
  ProcessResult ExpectAllowed(const std::string& who, const std::vector<std::string>& args,
                              const std::string& action) {
    SCOPED_TRACE(who + " " + action);
    StoreSnapshot before = Snapshot(gh_.store);
    ProcessResult r = gh_.As(who, args);
    EXPECT_TRUE(Succeeded(r));
    auto audit = AuditSince(gh_.store, before.last_audit_id);
    EXPECT_EQ(audit.size(), 1u);
    if (!audit.empty()) {
      EXPECT_EQ(audit.back().actor, who);
      EXPECT_EQ(audit.back().action, action);
      EXPECT_EQ(audit.back().decision, "allow");
    }
    return r;
  }

  // `apiuser list --json` as the owner, by name.
  std::map<std::string, json> ApiUsers() {
    std::map<std::string, json> out;
    json j = gh_.Json(kOwner, {"apiuser", "list"});
    for (const auto& u : j) out[u["name"].get<std::string>()] = u;
    return out;
  }

  std::set<std::string> Names(const json& list, const char* key) {
    std::set<std::string> out;
    if (!list.is_array()) {
      ADD_FAILURE() << "not a list: " << list.dump();
      return out;
    }
    for (const auto& e : list) out.insert(e[key].get<std::string>());
    return out;
  }

  // gatehouse authorize ... (--token or --user); returns the process result.
  ProcessResult AuthorizeToken(const std::string& action, const std::string& ws,
                               const std::string& token) {
    return gh_.Run({"authorize", "--action", action, "--workspace", ws, "--token", token});
  }
  ProcessResult AuthorizeUser(const std::string& action, const std::string& ws,
                              const std::string& user) {
    return gh_.Run({"authorize", "--action", action, "--workspace", ws, "--user", user});
  }
};

// --- workspace.create, user.add, settings.update, audit.read: org≥admin ------

TEST_F(PolicyTableTest, WorkspaceCreateIsForOrgAdminsOnly) {
  ExpectAllowed(kOwner, {"workspace", "create", "Made-By-Owner", "--type", "shared"},
                "workspace.create");
  ExpectAllowed(kAdmin, {"workspace", "create", "Made-By-Admin", "--type", "personal"},
                "workspace.create");
  for (const char* who : {kOrgContrib, kOrgViewer, kWsAdmin, kWsContrib}) {
    ExpectRefused(who, {"workspace", "create", "Refused-WS", "--type", "shared"},
                  "workspace.create", "org-admins");
  }
  // The allowed ones exist: the owner may now act in them.
  ProcessResult r = AuthorizeUser("project.export", "Made-By-Admin", kOwner);
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(Failed(AuthorizeUser("project.export", "Refused-WS", kOwner), 4));  // not found: never made
}

TEST_F(PolicyTableTest, UserAddIsForOrgAdminsAndNeverMakesASecondOwner) {
  ExpectAllowed(kOwner, {"user", "add", "new-admin@acme.test", "--org-role", "admin"}, "user.add");
  ExpectAllowed(kAdmin, {"user", "add", "new-viewer@acme.test", "--org-role", "viewer"},
                "user.add");
  for (const char* who : {kOrgContrib, kOrgViewer, kWsAdmin}) {
    ExpectRefused(who, {"user", "add", "refused@acme.test", "--org-role", "viewer"}, "user.add",
                  "org-admins");
  }
  // Not even the owner adds a second owner.
  for (const char* who : {kOwner, kAdmin}) {
    ExpectRefused(who, {"user", "add", "second-owner@acme.test", "--org-role", "owner"}, "user.add",
                  "one-owner-per-organization");
  }
  // The new admin acts as one; the refused users do not exist.
  ExpectAllowed("new-admin@acme.test", {"workspace", "create", "By-New-Admin", "--type", "shared"},
                "workspace.create");
  EXPECT_TRUE(Failed(gh_.As("refused@acme.test", {"settings", "set", kToggle, "true"}), 4));
  EXPECT_TRUE(Failed(gh_.As("second-owner@acme.test", {"settings", "set", kToggle, "true"}), 4));
}

TEST_F(PolicyTableTest, SettingsUpdateIsForOrgAdminsOnly) {
  ExpectAllowed(kOwner, {"settings", "set", kToggle, "true"}, "settings.update");
  json s = gh_.Json(kOwner, {"settings", "show"});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]["name"], "workspace_admins_can_create_tokens");
  EXPECT_EQ(s[0]["value"], true);
  ExpectAllowed(kAdmin, {"settings", "set", "workspace_admins_can_create_tokens", "false"},
                "settings.update");
  EXPECT_EQ(gh_.Json(kOwner, {"settings", "show"})[0]["value"], false);
  for (const char* who : {kOrgContrib, kOrgViewer, kWsAdmin, kWsContrib}) {
    ExpectRefused(who, {"settings", "set", kToggle, "true"}, "settings.update", "org-admins");
  }
  EXPECT_EQ(gh_.Json(kOwner, {"settings", "show"})[0]["value"], false);
}

TEST_F(PolicyTableTest, AuditReadIsForOrgAdminsOnly) {
  ProcessResult r = ExpectAllowed(kOwner, {"audit", "--limit", "5"}, "audit.read");
  EXPECT_NE(r.out.find("apiuser:prod-bot"), std::string::npos) << r;
  ExpectAllowed(kAdmin, {"audit", "--limit", "5"}, "audit.read");
  for (const char* who : {kOrgContrib, kOrgViewer, kWsAdmin, kWsContrib}) {
    ExpectRefused(who, {"audit", "--limit", "5"}, "audit.read", "org-admins");
  }
}

// --- member.add: org≥admin, or ws≥admin --------------------------------------

TEST_F(PolicyTableTest, MemberAddIsForOrgAdminsAndTheWorkspacesAdmins) {
  // Workspace admins need no toggle for this.
  ExpectAllowed(kWsAdmin,
                {"member", "add", kOrgViewer, "--workspace", kDev, "--role", "contributor"},
                "member.add");
  ExpectAllowed(kProdAdmin, {"member", "add", kOrgViewer, "--workspace", kProd, "--role", "viewer"},
                "member.add");
  ExpectAllowed(kOwner, {"member", "add", kOrgContrib, "--workspace", kProd, "--role", "viewer"},
                "member.add");
  ExpectAllowed(kAdmin, {"member", "add", kOrgContrib, "--workspace", kDev, "--role", "viewer"},
                "member.add");
  // Admin of another workspace, contributors, viewers, org contributors: no.
  ExpectRefused(kWsAdmin, {"member", "add", kWsContrib, "--workspace", kProd, "--role", "admin"},
                "member.add", "ws-admins");
  ExpectRefused(kProdAdmin, {"member", "add", kWsContrib, "--workspace", kDev, "--role", "admin"},
                "member.add", "ws-admins");
  ExpectRefused(kWsContrib, {"member", "add", kWsViewer, "--workspace", kDev, "--role", "admin"},
                "member.add", "ws-admins");
  ExpectRefused(kWsViewer, {"member", "add", kWsViewer, "--workspace", kDev, "--role", "admin"},
                "member.add", "ws-admins");
  ExpectRefused(kOrgContrib, {"member", "add", kOrgContrib, "--workspace", kDev, "--role", "admin"},
                "member.add", "ws-admins");
  // Effect: the org viewer is now a contributor in kDev (may export), a viewer in kProd (may not).
  EXPECT_TRUE(Succeeded(AuthorizeUser("project.export", kDev, kOrgViewer)));
  EXPECT_TRUE(Denied(AuthorizeUser("project.export", kProd, kOrgViewer), "contributors-and-up"));
  // ... and the refused self-promotion did not happen.
  EXPECT_TRUE(Denied(AuthorizeUser("project.export", kDev, kWsViewer), "contributors-and-up"));
}

// --- api_user.create ---------------------------------------------------------

TEST_F(PolicyTableTest, ApiUserCreateOrgAdminsForAnySharedWorkspace) {
  ExpectAllowed(kOwner,
                {"apiuser", "create", "o-bot", "--workspace", kDev, "--workspace-role", "viewer"},
                "api_user.create");
  ExpectAllowed(kAdmin,
                {"apiuser", "create", "a-bot", "--workspace", kProd, "--workspace-role",
                 "contributor", "--org-role", "admin"},
                "api_user.create");
  ExpectAllowed(kOwner,
                {"apiuser", "create", "c-bot", "--workspace", kProd, "--workspace-role", "viewer",
                 "--org-role", "contributor"},
                "api_user.create");
  auto users = ApiUsers();
  ASSERT_TRUE(users.count("o-bot") && users.count("a-bot") && users.count("c-bot"));
  EXPECT_EQ(users["o-bot"]["org_role"], "viewer");  // the default
  EXPECT_EQ(users["o-bot"]["workspace_role"], "viewer");
  EXPECT_EQ(users["o-bot"]["workspace"], kDev);
  EXPECT_EQ(users["a-bot"]["org_role"], "admin");  // chosen by an org admin
  EXPECT_EQ(users["a-bot"]["created_by"], kAdmin);
  EXPECT_EQ(users["c-bot"]["org_role"], "contributor");
}

TEST_F(PolicyTableTest, ApiUserCreateWorkspaceAdminsOnlyWithTheToggle) {
  const std::vector<std::string> create = {
      "apiuser", "create", "ws-bot", "--workspace", kDev, "--workspace-role", "contributor"};
  ExpectRefused(kWsAdmin, create, "api_user.create", "ws-admins-with-toggle");
  SetToggle(true);
  // Never contributors, viewers, org contributors or the admin of another workspace.
  ExpectRefused(kWsContrib, create, "api_user.create", "ws-admins-with-toggle");
  ExpectRefused(kWsViewer, create, "api_user.create", "ws-admins-with-toggle");
  ExpectRefused(kOrgContrib, create, "api_user.create", "ws-admins-with-toggle");
  ExpectRefused(kProdAdmin, create, "api_user.create", "ws-admins-with-toggle");
  ExpectAllowed(kWsAdmin, create, "api_user.create");
  auto users = ApiUsers();
  ASSERT_TRUE(users.count("ws-bot"));
  EXPECT_EQ(users["ws-bot"]["org_role"], "viewer");
  EXPECT_EQ(users["ws-bot"]["created_by"], kWsAdmin);
  // The admin of kProd may, in kProd.
  ExpectAllowed(kProdAdmin,
                {"apiuser", "create", "prod-ws-bot", "--workspace", kProd, "--workspace-role",
                 "viewer", "--org-role", "viewer"},
                "api_user.create");
}

TEST_F(PolicyTableTest, ApiUserCreateForbids) {
  // Not shared: personal and organization workspaces, whoever asks.
  for (const char* who : {kOwner, kAdmin}) {
    ExpectRefused(
        who, {"apiuser", "create", "x-bot", "--workspace", kPersonal, "--workspace-role", "viewer"},
        "api_user.create", "api-users-only-in-shared-workspaces");
    ExpectRefused(
        who, {"apiuser", "create", "x-bot", "--workspace", kOrgWs, "--workspace-role", "viewer"},
        "api_user.create", "api-users-only-in-shared-workspaces");
  }
  // Workspace role admin at creation: promote later.
  ExpectRefused(kOwner,
                {"apiuser", "create", "x-bot", "--workspace", kDev, "--workspace-role", "admin"},
                "api_user.create", "promote-to-admin-later");
  // Org role owner: never.
  ExpectRefused(kOwner,
                {"apiuser", "create", "x-bot", "--workspace", kDev, "--workspace-role", "viewer",
                 "--org-role", "owner"},
                "api_user.create", "api-users-are-never-owners");
  // A workspace admin (toggle on) may not choose an org role other than viewer.
  SetToggle(true);
  for (const char* role : {"contributor", "admin"}) {
    ExpectRefused(kWsAdmin,
                  {"apiuser", "create", "x-bot", "--workspace", kDev, "--workspace-role", "viewer",
                   "--org-role", role},
                  "api_user.create", "workspace-admin-org-role-is-viewer");
  }
  // ... nor create one in the personal workspace they administer.
  ExpectRefused(
      kWsAdmin,
      {"apiuser", "create", "x-bot", "--workspace", kPersonal, "--workspace-role", "viewer"},
      "api_user.create", "api-users-only-in-shared-workspaces");
  ExpectAllowed(kWsAdmin,
                {"apiuser", "create", "x-bot", "--workspace", kDev, "--workspace-role", "viewer",
                 "--org-role", "viewer"},
                "api_user.create");
  EXPECT_EQ(ApiUsers().size(), 4u);
}

// --- api_user.promote: org≥admin, or ws≥admin (toggle not needed) -------------

TEST_F(PolicyTableTest, ApiUserPromoteNeedsNoToggle) {
  ExpectAllowed(kWsAdmin, {"apiuser", "promote", kDevViewerBot, "--workspace-role", "contributor"},
                "api_user.promote");
  ExpectAllowed(kProdAdmin, {"apiuser", "promote", kProdBot, "--workspace-role", "admin"},
                "api_user.promote");
  ExpectAllowed(kOwner, {"apiuser", "promote", kDevBot, "--workspace-role", "admin"},
                "api_user.promote");
  ExpectAllowed(kAdmin, {"apiuser", "promote", kProdBot, "--workspace-role", "viewer"},
                "api_user.promote");
  ExpectRefused(kWsAdmin, {"apiuser", "promote", kProdBot, "--workspace-role", "admin"},
                "api_user.promote", "ws-admins");
  ExpectRefused(kWsContrib, {"apiuser", "promote", kDevBot, "--workspace-role", "viewer"},
                "api_user.promote", "ws-admins");
  ExpectRefused(kWsViewer, {"apiuser", "promote", kDevBot, "--workspace-role", "viewer"},
                "api_user.promote", "ws-admins");
  ExpectRefused(kOrgContrib, {"apiuser", "promote", kDevBot, "--workspace-role", "viewer"},
                "api_user.promote", "ws-admins");
  auto users = ApiUsers();
  EXPECT_EQ(users[kDevViewerBot]["workspace_role"], "contributor");
  EXPECT_EQ(users[kDevBot]["workspace_role"], "admin");
  EXPECT_EQ(users[kProdBot]["workspace_role"], "viewer");
}

// --- api_user.set_org_role: org≥admin; never owner ----------------------------

TEST_F(PolicyTableTest, ApiUserOrgRoleIsForOrgAdminsAndNeverOwner) {
  SetToggle(true);  // irrelevant to this action
  ExpectRefused(kWsAdmin, {"apiuser", "promote", kDevBot, "--org-role", "admin"},
                "api_user.set_org_role", "org-admins");
  ExpectRefused(kProdAdmin, {"apiuser", "promote", kProdBot, "--org-role", "contributor"},
                "api_user.set_org_role", "org-admins");
  ExpectRefused(kOrgContrib, {"apiuser", "promote", kProdBot, "--org-role", "contributor"},
                "api_user.set_org_role", "org-admins");
  for (const char* who : {kOwner, kAdmin}) {
    ExpectRefused(who, {"apiuser", "promote", kDevBot, "--org-role", "owner"},
                  "api_user.set_org_role", "api-users-are-never-owners");
  }
  ExpectAllowed(kAdmin, {"apiuser", "promote", kProdBot, "--org-role", "contributor"},
                "api_user.set_org_role");
  ExpectAllowed(kOwner, {"apiuser", "promote", kDevBot, "--org-role", "admin"},
                "api_user.set_org_role");
  auto users = ApiUsers();
  EXPECT_EQ(users[kDevBot]["org_role"], "admin");
  EXPECT_EQ(users[kProdBot]["org_role"], "contributor");
  // An API user of org role admin holds an organization-wide token.
  NewToken t = CreateToken(kOwner, kDevBot);
  EXPECT_TRUE(Succeeded(AuthorizeToken("project.import", kProd, t.secret)));
}

// --- api_user.delete: org≥admin only -------------------------------------------

TEST_F(PolicyTableTest, ApiUserDeleteIsForOrgAdminsOnlyWhateverTheToggle) {
  SetToggle(true);
  ExpectRefused(kWsAdmin, {"apiuser", "delete", kDevBot}, "api_user.delete", "org-admins");
  ExpectRefused(kProdAdmin, {"apiuser", "delete", kProdBot}, "api_user.delete", "org-admins");
  ExpectRefused(kWsContrib, {"apiuser", "delete", kDevBot}, "api_user.delete", "org-admins");
  ExpectRefused(kOrgContrib, {"apiuser", "delete", kDevBot}, "api_user.delete", "org-admins");
  ExpectAllowed(kOwner, {"apiuser", "delete", kDevViewerBot}, "api_user.delete");
  ExpectAllowed(kAdmin, {"apiuser", "delete", kProdBot}, "api_user.delete");
  auto users = ApiUsers();
  EXPECT_EQ(users.size(), 1u);
  EXPECT_TRUE(users.count(kDevBot));
}

// --- api_user.list, token.list: org≥admin, or ws≥admin ------------------------

TEST_F(PolicyTableTest, ApiUserListOrgAdminsSeeAllWorkspaceAdminsTheirOwn) {
  const std::set<std::string> all = {kDevBot, kDevViewerBot, kProdBot};
  const std::set<std::string> dev = {kDevBot, kDevViewerBot};
  EXPECT_EQ(Names(gh_.Json(kOwner, {"apiuser", "list"}), "name"), all);
  EXPECT_EQ(Names(gh_.Json(kAdmin, {"apiuser", "list"}), "name"), all);
  EXPECT_EQ(Names(gh_.Json(kAdmin, {"apiuser", "list", "--workspace", kProd}), "name"),
            std::set<std::string>{kProdBot});
  EXPECT_EQ(Names(gh_.Json(kWsAdmin, {"apiuser", "list", "--workspace", kDev}), "name"), dev);
  // Without --workspace a workspace admin sees only their workspace's API users.
  EXPECT_EQ(Names(gh_.Json(kWsAdmin, {"apiuser", "list"}), "name"), dev);
  EXPECT_EQ(Names(gh_.Json(kProdAdmin, {"apiuser", "list"}), "name"),
            std::set<std::string>{kProdBot});
  ExpectRefused(kWsAdmin, {"apiuser", "list", "--workspace", kProd}, "api_user.list", "ws-admins");
  ExpectRefused(kWsContrib, {"apiuser", "list", "--workspace", kDev}, "api_user.list", "ws-admins");
  ExpectRefused(kWsViewer, {"apiuser", "list", "--workspace", kDev}, "api_user.list", "ws-admins");
  ExpectRefused(kOrgContrib, {"apiuser", "list", "--workspace", kDev}, "api_user.list",
                "ws-admins");
  // Someone who may list nothing anywhere is refused, not shown an empty list.
  EXPECT_TRUE(Denied(gh_.As(kWsContrib, {"apiuser", "list"}), "ws-admins"));
}

// A workspace admin whose workspace has nothing to list gets an empty list,
// and a refusal never names a workspace the actor does not belong to.
TEST_F(PolicyTableTest, RegressionListsNeitherRefuseAnEmptyWorkspaceNorNameAnotherOne) {
  EXPECT_TRUE(Names(gh_.Json(kWsAdmin, {"token", "list"}), "id").empty());
  ProcessResult r = gh_.As(kWsContrib, {"token", "list"});
  EXPECT_TRUE(Denied(r, "ws-admins")) << r;
  EXPECT_NE(r.err.find("in Organization"), std::string::npos) << r;
  EXPECT_EQ(r.err.find(kProd), std::string::npos) << r;
}

TEST_F(PolicyTableTest, TokenListOrgAdminsSeeAllWorkspaceAdminsTheirOwn) {
  NewToken dev = CreateToken(kOwner, kDevBot);
  NewToken prod = CreateToken(kOwner, kProdBot);
  const std::set<std::string> all = {dev.id, prod.id};
  EXPECT_EQ(Names(gh_.Json(kOwner, {"token", "list"}), "id"), all);
  EXPECT_EQ(Names(gh_.Json(kAdmin, {"token", "list"}), "id"), all);
  EXPECT_EQ(Names(gh_.Json(kWsAdmin, {"token", "list"}), "id"), std::set<std::string>{dev.id});
  EXPECT_EQ(Names(gh_.Json(kWsAdmin, {"token", "list", "--apiuser", kDevBot}), "id"),
            std::set<std::string>{dev.id});
  EXPECT_EQ(Names(gh_.Json(kProdAdmin, {"token", "list"}), "id"), std::set<std::string>{prod.id});
  ExpectRefused(kWsAdmin, {"token", "list", "--apiuser", kProdBot}, "token.list", "ws-admins");
  ExpectRefused(kWsContrib, {"token", "list", "--apiuser", kDevBot}, "token.list", "ws-admins");
  ExpectRefused(kWsViewer, {"token", "list", "--apiuser", kDevBot}, "token.list", "ws-admins");
  ExpectRefused(kOrgContrib, {"token", "list", "--apiuser", kDevBot}, "token.list", "ws-admins");
  EXPECT_TRUE(Denied(gh_.As(kWsContrib, {"token", "list"}), "ws-admins"));
}

// --- token.create / token.revoke ----------------------------------------------

TEST_F(PolicyTableTest, TokenCreateOrgAdminsAlwaysWorkspaceAdminsWithToggleOthersNever) {
  auto create = [](const char* apiuser) {
    return std::vector<std::string>{"token",  "create", "--apiuser",    apiuser,
                                    "--name", "t",      "--expires-in", "30d"};
  };
  ExpectAllowed(kOwner, create(kDevBot), "token.create");
  ExpectAllowed(kAdmin, create(kProdBot), "token.create");
  ExpectRefused(kWsAdmin, create(kDevBot), "token.create", "ws-admins-with-toggle");
  ExpectRefused(kWsContrib, create(kDevBot), "token.create", "ws-admins-with-toggle");
  SetToggle(true);
  ProcessResult r = ExpectAllowed(kWsAdmin, create(kDevBot), "token.create");
  // The secret alone on stdout; it verifies.
  std::string secret = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(r.out, secret + "\n");
  EXPECT_TRUE(Succeeded(gh_.Run({"token", "verify", secret})));
  // Contributors and viewers never, the admin of another workspace not here.
  ExpectRefused(kWsContrib, create(kDevBot), "token.create", "ws-admins-with-toggle");
  ExpectRefused(kWsViewer, create(kDevBot), "token.create", "ws-admins-with-toggle");
  ExpectRefused(kOrgContrib, create(kDevBot), "token.create", "ws-admins-with-toggle");
  ExpectRefused(kOrgViewer, create(kDevBot), "token.create", "ws-admins-with-toggle");
  ExpectRefused(kWsAdmin, create(kProdBot), "token.create", "ws-admins-with-toggle");
  ExpectAllowed(kProdAdmin, create(kProdBot), "token.create");
  EXPECT_EQ(gh_.Json(kOwner, {"token", "list"}).size(), 4u);
}

TEST_F(PolicyTableTest, TokenCreateForbidsLifetimeAboveTheCap) {
  ExpectRefused(kOwner,
                {"token", "create", "--apiuser", kDevBot, "--name", "t", "--expires-in", "366d"},
                "token.create", "tokens.max_lifetime");
  ExpectAllowed(kOwner,
                {"token", "create", "--apiuser", kDevBot, "--name", "t", "--expires-in", "365d"},
                "token.create");
}

TEST_F(PolicyTableTest, TokensOnlyInSharedWorkspaces) {
  // The CLI never puts an API user outside a shared workspace, so make one the
  // way an old or hand-edited store could hold it: kDev's type changed behind
  // the CLI's back.
  NewToken t = CreateToken(kOwner, kDevBot);
  ExecSql(gh_.store,
          "UPDATE workspaces SET type = 'personal' WHERE name = 'Marketing-Development'");
  ExpectRefused(kOwner,
                {"token", "create", "--apiuser", kDevBot, "--name", "t", "--expires-in", "1d"},
                "token.create", "tokens-only-in-shared-workspaces");
  ExpectRefused(kOwner, {"token", "revoke", t.id}, "token.revoke",
                "tokens-only-in-shared-workspaces");
}

TEST_F(PolicyTableTest, TokenRevokeOrgAdminsAlwaysWorkspaceAdminsWithToggleOthersNever) {
  NewToken a = CreateToken(kOwner, kDevBot, "30d", "a");
  NewToken b = CreateToken(kOwner, kDevBot, "30d", "b");
  NewToken c = CreateToken(kOwner, kDevBot, "30d", "c");
  NewToken p = CreateToken(kOwner, kProdBot, "30d", "p");
  ExpectRefused(kWsAdmin, {"token", "revoke", a.id}, "token.revoke", "ws-admins-with-toggle");
  EXPECT_TRUE(Succeeded(gh_.Run({"token", "verify", a.secret})));
  SetToggle(true);
  for (const char* who : {kWsContrib, kWsViewer, kOrgContrib, kProdAdmin}) {
    ExpectRefused(who, {"token", "revoke", a.id}, "token.revoke", "ws-admins-with-toggle");
  }
  ExpectRefused(kWsAdmin, {"token", "revoke", p.id}, "token.revoke", "ws-admins-with-toggle");
  ExpectAllowed(kWsAdmin, {"token", "revoke", a.id}, "token.revoke");
  ExpectAllowed(kOwner, {"token", "revoke", b.id}, "token.revoke");
  ExpectAllowed(kAdmin, {"token", "revoke", p.id}, "token.revoke");
  for (const NewToken* t : {&a, &b, &p}) {
    ProcessResult v = gh_.Run({"token", "verify", t->secret});
    EXPECT_TRUE(Failed(v, 3));
    EXPECT_EQ(json::parse(v.out), json({{"active", false}}));
  }
  EXPECT_TRUE(Succeeded(gh_.Run({"token", "verify", c.secret})));
  EXPECT_EQ(Names(gh_.Json(kOwner, {"token", "list"}), "id"), std::set<std::string>{c.id});
}

// --- project.export / project.import, through `gatehouse authorize` -------------

TEST_F(PolicyTableTest, ProjectExportAndImportNeedContributorOrHigher) {
  NewToken contrib = CreateToken(kOwner, kDevBot);
  NewToken viewer = CreateToken(kOwner, kDevViewerBot);
  for (const char* action : {"project.export", "project.import"}) {
    SCOPED_TRACE(action);
    // Tokens act as their API user, in its own workspace only.
    ProcessResult r = AuthorizeToken(action, kDev, contrib.secret);
    EXPECT_TRUE(Succeeded(r));
    EXPECT_NE(r.out.find("contributors-and-up"), std::string::npos) << r;
    EXPECT_TRUE(Denied(AuthorizeToken(action, kDev, viewer.secret), "contributors-and-up"));
    // Elsewhere token.use refuses first (as in the sidecar).
    EXPECT_TRUE(Denied(AuthorizeToken(action, kProd, contrib.secret), "own-workspace"));
    EXPECT_TRUE(Denied(AuthorizeToken(action, kOrgWs, contrib.secret), "own-workspace"));
    // People: by workspace role...
    EXPECT_TRUE(Succeeded(AuthorizeUser(action, kDev, kWsContrib)));
    EXPECT_TRUE(Succeeded(AuthorizeUser(action, kDev, kWsAdmin)));
    EXPECT_TRUE(Denied(AuthorizeUser(action, kDev, kWsViewer), "contributors-and-up"));
    EXPECT_TRUE(Denied(AuthorizeUser(action, kProd, kWsContrib), "contributors-and-up"));
    // ... org admins everywhere...
    EXPECT_TRUE(Succeeded(AuthorizeUser(action, kProd, kOwner)));
    EXPECT_TRUE(Succeeded(AuthorizeUser(action, kDev, kAdmin)));
    // ... org contributors in the Organization workspace only.
    r = AuthorizeUser(action, kOrgWs, kOrgContrib);
    EXPECT_TRUE(Succeeded(r));
    EXPECT_NE(r.out.find("org-contributors-in-organization-workspace"), std::string::npos) << r;
    EXPECT_TRUE(Denied(AuthorizeUser(action, kOrgWs, kOrgViewer), "contributors-and-up"));
    EXPECT_TRUE(Denied(AuthorizeUser(action, kDev, kOrgContrib), "contributors-and-up"));
  }
  // The Organization-workspace rule is for people, never API users.
  ASSERT_TRUE(Succeeded(
      gh_.As(kOwner, {"apiuser", "promote", kDevViewerBot, "--org-role", "contributor"})));
  EXPECT_TRUE(Denied(AuthorizeToken("project.import", kOrgWs, viewer.secret), "own-workspace"));
  // The JSON form of a denial names the rule too.
  ProcessResult r = gh_.Run({"authorize", "--action", "project.import", "--workspace", kDev,
                             "--token", viewer.secret, "--json"});
  EXPECT_TRUE(Failed(r, 3));
  json j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r;
  EXPECT_EQ(j["allow"], false);
  ASSERT_FALSE(j["reasons"].empty());
  EXPECT_EQ(j["reasons"][0]["rule"], "contributors-and-up");
}

}  // namespace
}  // namespace gatehouse::testing
