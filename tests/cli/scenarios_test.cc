// The seed page's scenarios, end to end through the real `gatehouse` binary.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <set>
#include <string>
#include <thread>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

class ScenarioTest : public CliTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(BuildWorld()); }

  json Verify(const std::string& secret, int expected_exit) {
    ProcessResult r = gh_.Run({"token", "verify", secret});
    if (expected_exit == 0) {
      EXPECT_TRUE(Succeeded(r));
    } else {
      EXPECT_TRUE(Failed(r, expected_exit));
    }
    return json::parse(r.out, nullptr, false);
  }
  ProcessResult Authorize(const std::string& action, const std::string& ws,
                          const std::string& token) {
    return gh_.Run({"authorize", "--action", action, "--workspace", ws, "--token", token});
  }
  std::set<std::string> TokenIds() {
    std::set<std::string> ids;
    for (const auto& t : gh_.Json(kOwner, {"token", "list"}))
      ids.insert(t["id"].get<std::string>());
    return ids;
  }
};

// Workspace admin: toggle off (refused), on (allowed), off again (refused, but
// what was made while it was on keeps working).
TEST_F(ScenarioTest, ToggleOffThenOnThenOffAgainKeepsTheTokensMadeWhileOn) {
  const std::vector<std::string> create_user = {
      "apiuser", "create", "ws-bot", "--workspace", kDev, "--workspace-role", "contributor"};
  EXPECT_TRUE(Denied(gh_.As(kWsAdmin, create_user), "ws-admins-with-toggle"));
  EXPECT_TRUE(Denied(gh_.As(kWsAdmin, {"token", "create", "--apiuser", kDevBot, "--name", "t",
                                       "--expires-in", "30d"}),
                     "ws-admins-with-toggle"));

  SetToggle(true);
  ASSERT_TRUE(Succeeded(gh_.As(kWsAdmin, create_user)));
  NewToken own = CreateToken(kWsAdmin, "ws-bot", "30d", "made-while-on");
  NewToken dev = CreateToken(kWsAdmin, kDevBot, "30d", "made-while-on-2");
  ASSERT_FALSE(own.secret.empty());
  ASSERT_FALSE(dev.secret.empty());

  SetToggle(false);
  EXPECT_TRUE(Denied(gh_.As(kWsAdmin, {"apiuser", "create", "ws-bot-2", "--workspace", kDev,
                                       "--workspace-role", "viewer"}),
                     "ws-admins-with-toggle"));
  EXPECT_TRUE(Denied(gh_.As(kWsAdmin, {"token", "create", "--apiuser", "ws-bot", "--name", "t",
                                       "--expires-in", "30d"}),
                     "ws-admins-with-toggle"));
  // Revoking needs the toggle too; the refusal leaves the token alone.
  EXPECT_TRUE(Denied(gh_.As(kWsAdmin, {"token", "revoke", own.id}), "ws-admins-with-toggle"));

  // Nothing made while the toggle was on was revoked.
  for (const NewToken* t : {&own, &dev}) {
    json v = Verify(t->secret, 0);
    EXPECT_EQ(v["active"], true);
    EXPECT_EQ(v["token_id"], t->id);
    EXPECT_TRUE(Succeeded(Authorize("project.export", kDev, t->secret)));
    EXPECT_TRUE(Succeeded(Authorize("project.import", kDev, t->secret)));
  }
  EXPECT_EQ(TokenIds(), (std::set<std::string>{own.id, dev.id}));
  bool listed = false;
  for (const auto& u : gh_.Json(kOwner, {"apiuser", "list"}))
    if (u["name"] == "ws-bot") listed = u["created_by"] == kWsAdmin;
  EXPECT_TRUE(listed);
}

TEST_F(ScenarioTest, OrgRoleChosenByAWorkspaceAdminIsRefused) {
  SetToggle(true);
  for (const char* role : {"contributor", "admin"}) {
    EXPECT_TRUE(Denied(gh_.As(kWsAdmin, {"apiuser", "create", "ws-bot", "--workspace", kDev,
                                         "--workspace-role", "viewer", "--org-role", role}),
                       "workspace-admin-org-role-is-viewer"));
  }
  // Without --org-role it is created, with org role viewer...
  json u = gh_.Json(
      kWsAdmin, {"apiuser", "create", "ws-bot", "--workspace", kDev, "--workspace-role", "viewer"});
  EXPECT_EQ(u["org_role"], "viewer");
  // ... and the workspace admin cannot raise it afterwards either.
  EXPECT_TRUE(Denied(gh_.As(kWsAdmin, {"apiuser", "promote", "ws-bot", "--org-role", "admin"}),
                     "org-admins"));
  // An organization admin may choose it.
  json a = gh_.Json(kAdmin, {"apiuser", "create", "org-bot", "--workspace", kDev,
                             "--workspace-role", "viewer", "--org-role", "admin"});
  EXPECT_EQ(a["org_role"], "admin");
}

TEST_F(ScenarioTest, ApiUsersAreRefusedInPersonalAndOrganizationWorkspaces) {
  ASSERT_TRUE(Succeeded(gh_.As(
      kOwner, {"workspace", "create", "Owners-Own", "--type", "personal", "--owner", kOwner})));
  for (const char* ws : {kPersonal, "Owners-Own", kOrgWs}) {
    for (const char* who : {kOwner, kAdmin}) {
      EXPECT_TRUE(Denied(gh_.As(who, {"apiuser", "create", "bot", "--workspace", ws,
                                      "--workspace-role", "contributor", "--org-role", "admin"}),
                         "api-users-only-in-shared-workspaces"))
          << ws;
    }
  }
  SetToggle(true);
  EXPECT_TRUE(Denied(gh_.As(kWsAdmin, {"apiuser", "create", "bot", "--workspace", kPersonal,
                                       "--workspace-role", "viewer"}),
                     "api-users-only-in-shared-workspaces"));
  EXPECT_EQ(gh_.Json(kOwner, {"apiuser", "list"}).size(), 3u);
}

TEST_F(ScenarioTest, PromotionAfterCreationTakesEffectOnTheSameToken) {
  NewToken t = CreateToken(kOwner, kDevViewerBot);
  EXPECT_EQ(Verify(t.secret, 0)["workspace_role"], "viewer");
  EXPECT_TRUE(Denied(Authorize("project.import", kDev, t.secret), "contributors-and-up"));
  // The workspace admin promotes it (no toggle needed).
  ASSERT_TRUE(Succeeded(
      gh_.As(kWsAdmin, {"apiuser", "promote", kDevViewerBot, "--workspace-role", "contributor"})));
  EXPECT_EQ(Verify(t.secret, 0)["workspace_role"], "contributor");
  ProcessResult r = Authorize("project.import", kDev, t.secret);
  EXPECT_TRUE(Succeeded(r));
  EXPECT_EQ(r.out.rfind("allow", 0), 0u) << r;
  EXPECT_TRUE(Succeeded(Authorize("project.export", kDev, t.secret)));
  // And back down: refused again, same token.
  ASSERT_TRUE(Succeeded(
      gh_.As(kOwner, {"apiuser", "promote", kDevViewerBot, "--workspace-role", "viewer"})));
  EXPECT_TRUE(Denied(Authorize("project.import", kDev, t.secret), "contributors-and-up"));
}

// The CLI and the sidecar decide through one path: a token used outside its
// API user's workspace is refused by token.use first, in both.
TEST_F(ScenarioTest, ATokenOutsideItsWorkspaceIsRefusedByTokenUseAsInTheSidecar) {
  NewToken t = CreateToken(kOwner, kDevBot);
  EXPECT_TRUE(Succeeded(Authorize("project.export", kDev, t.secret)));
  EXPECT_TRUE(Denied(Authorize("project.export", kProd, t.secret), "own-workspace"));
  // An API user with org role admin holds an organization-wide token.
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"apiuser", "promote", kDevBot, "--org-role", "admin"})));
  EXPECT_TRUE(Succeeded(Authorize("project.import", kProd, t.secret)));
}

TEST_F(ScenarioTest, DeletingAnApiUserKillsItsTokens) {
  NewToken a = CreateToken(kOwner, kDevBot, "30d", "a");
  NewToken b = CreateToken(kOwner, kDevBot, "30d", "b");
  NewToken keep = CreateToken(kOwner, kProdBot, "30d", "keep");
  EXPECT_TRUE(Succeeded(Authorize("project.export", kDev, a.secret)));

  json d = gh_.Json(kOwner, {"apiuser", "delete", kDevBot});
  EXPECT_EQ(d["tokens_deleted"], 2);
  for (const NewToken* t : {&a, &b}) {
    EXPECT_EQ(Verify(t->secret, 3), json({{"active", false}}));
    EXPECT_TRUE(Denied(Authorize("project.export", kDev, t->secret), "inactive-token"));
  }
  EXPECT_EQ(Verify(keep.secret, 0)["active"], true);
  EXPECT_EQ(TokenIds(), std::set<std::string>{keep.id});
  EXPECT_EQ(QueryInt(gh_.store, "SELECT count(*) FROM tokens"), 1);
  EXPECT_TRUE(Failed(gh_.As(kOwner, {"token", "revoke", a.id}), 4));
  // A new API user of the same name does not bring the old tokens back.
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"apiuser", "create", kDevBot, "--workspace", kDev,
                                        "--workspace-role", "contributor"})));
  EXPECT_EQ(Verify(a.secret, 3)["active"], false);
  EXPECT_TRUE(Denied(Authorize("project.export", kDev, a.secret), "inactive-token"));
}

TEST_F(ScenarioTest, AnExpiredTokenIsRefusedUnlistedAndDeletedByGc) {
  // (Every write deletes expired tokens: the long-lived one is made first.)
  NewToken longer = CreateToken(kOwner, kDevBot, "1h", "long");
  NewToken s1 = CreateToken(kOwner, kDevBot, "2s", "short-1");
  NewToken s2 = CreateToken(kOwner, kProdBot, "2s", "short-2");
  ASSERT_GT(s1.expires_at, 0);
  // Active now...
  EXPECT_EQ(Verify(s1.secret, 0)["exp"], s1.expires_at);
  EXPECT_TRUE(Succeeded(Authorize("project.export", kDev, s1.secret)));

  // ... a real wait past the expiry (about 3 s) ...
  const int64_t until = std::max(s1.expires_at, s2.expires_at);
  while (std::time(nullptr) <= until) std::this_thread::sleep_for(std::chrono::milliseconds(100));

  // ... then refused at once, by read-only commands that delete nothing.
  EXPECT_EQ(Verify(s1.secret, 3), json({{"active", false}}));
  EXPECT_TRUE(Denied(Authorize("project.export", kDev, s1.secret), "inactive-token"));
  EXPECT_EQ(Verify(s2.secret, 3)["active"], false);
  EXPECT_EQ(QueryInt(gh_.store, "SELECT count(*) FROM tokens"), 3);

  // gc deletes exactly the two expired ones.
  json g = gh_.Json("", {"gc"});
  EXPECT_EQ(g["deleted"], 2);
  EXPECT_EQ(QueryInt(gh_.store, "SELECT count(*) FROM tokens"), 1);
  EXPECT_EQ(TokenIds(), std::set<std::string>{longer.id});
  EXPECT_EQ(Verify(longer.secret, 0)["active"], true);
  EXPECT_EQ(gh_.Json("", {"gc"})["deleted"], 0);
  // Revoking an expired (now deleted) token: not found.
  EXPECT_TRUE(Failed(gh_.As(kOwner, {"token", "revoke", s1.id}), 4));
}

TEST_F(ScenarioTest, AnExpiredTokenIsNeverListedAndAnyWriteSweepsIt) {
  NewToken longer = CreateToken(kOwner, kDevBot, "1h", "long");
  NewToken s = CreateToken(kOwner, kDevBot, "1s", "short");
  while (std::time(nullptr) <= s.expires_at)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(QueryInt(gh_.store, "SELECT count(*) FROM tokens"), 2);
  // Any CLI write deletes expired tokens (here: a settings change)...
  SetToggle(true);
  EXPECT_EQ(QueryInt(gh_.store, "SELECT count(*) FROM tokens"), 1);
  EXPECT_EQ(gh_.Json("", {"gc"})["deleted"], 0);
  // ... and lists never show them.
  EXPECT_EQ(TokenIds(), std::set<std::string>{longer.id});
  json mine = gh_.Json(kOwner, {"token", "list", "--apiuser", kDevBot});
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["id"], longer.id);
}

}  // namespace
}  // namespace gatehouse::testing
