// The change feed and TokenView together, as a property: after any sequence
// of store changes (tokens created, revoked, expired and swept; API users
// re-roled, deleted, recreated; workspaces retyped and renamed), a view kept
// current by applying ReadChangesSince batches — with compactions (Rebase
// onto a fresh full load) at random points, and batches sometimes applied
// twice — answers every token exactly as a view loaded in full from the
// store does.
//
// And the directory: after random directory changes across several
// organizations (users added, deleted, re-roled, moved; memberships set and
// dropped; workspaces added, renamed, deleted; settings toggled;
// organizations deleted and created), a Directory kept by Directory::Reload
// of the organizations each batch names answers every lookup exactly as
// Directory::Load of the same store, and every organization the batch did
// not name keeps the very same part.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gatehouse/authorizer.h"
#include "gatehouse/policy.h"
#include "gatehouse/store.h"
#include "gatehouse/token_view.h"
#include "gatehouse/tokens.h"
#include "store/pg_store.h"
#include "store/sqlite_store_testing.h"
#include "support/postgres.h"
#include "support/assert_ok.h"
#include "support/temp_dir.h"

namespace gatehouse {
namespace {

constexpr int64_t kNow = 1'767'225'600;  // 2026-01-01T00:00:00Z

std::shared_ptr<const TokenView> LoadAll(Store& store, int64_t now) {
  std::shared_ptr<const TokenView> view;
  Status s = store.ReadSnapshot([&]() -> Status {
    auto head = store.ChangeHead();
    if (!head.ok()) return head.status();
    TokenIndexBuilder builder;
    GATEHOUSE_RETURN_IF_ERROR(store.ScanActiveTokens(now, [&](const TokenRecord& t) {
      builder.Add(t);
      return Status::Ok();
    }));
    view = std::make_shared<const TokenView>(builder.Build(), *head);
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return view;
}

// What a lookup says, flattened for comparison. An expired token may still
// be held by a view (until swept) but never reads as active.
std::string Describe(const TokenLookup& l) {
  if (!l.active()) return "inactive";
  const TokenPrincipal& p = *l.token.principal;
  return std::string(l.token.token_id) + " " + std::string(l.token.name) + " " +
         std::to_string(l.token.expires_at) + " " + std::to_string(p.api_user_id) + " " +
         p.api_user_name + " " + std::to_string(p.org_id) + " " + p.org_role + " " +
         std::to_string(p.workspace_id) + " " + p.workspace_name + " " + p.workspace_type + " " +
         p.workspace_role;
}

// The store a case runs on: a SQLite file in `dir`, or a fresh database on
// the binary's throwaway PostgreSQL server.
Result<std::unique_ptr<Store>> NewStore(const testing::TempDir& dir, bool postgres) {
  std::string locator = dir.File("gatehouse.db");
  if (postgres) {
    testing::PostgresServer* pg = testing::PostgresServer::Get();
    if (pg == nullptr) return Status::FailedPrecondition("no PostgreSQL server for the tests");
    locator = pg->NewDatabase();
    if (locator.empty()) return Status::FailedPrecondition("no fresh PostgreSQL database");
  }
  return CreateStore(locator, StoreOptions{.durable_commits = false});
}

// (on PostgreSQL?, seed)
class FeedPropertyTest : public ::testing::TestWithParam<std::pair<bool, uint32_t>> {};

TEST_P(FeedPropertyTest, AViewKeptByTheFeedAnswersAsAFullLoad) {
  testing::TempDir dir;
  const bool postgres = GetParam().first;
  auto created = NewStore(dir, postgres);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Store& store = **created;
  std::mt19937 rng(GetParam().second);
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };

  ASSERT_OK_AND_ASSIGN(org, store.CreateOrganization("Acme"));
  std::vector<int64_t> workspaces;
  for (const char* name : {"Dev", "Prod"}) {
    ASSERT_OK_AND_ASSIGN(ws, store.CreateWorkspace(org.id, name, "shared", std::nullopt));
    workspaces.push_back(ws.id);
  }
  const std::vector<std::string> roles = {"viewer", "contributor", "admin"};
  std::vector<int64_t> api_users;
  int next_name = 0;
  auto add_api_user = [&]() -> int64_t {
    auto a = store.CreateApiUser(NewApiUser{workspaces[pick(workspaces.size())],
                                            "bot-" + std::to_string(next_name++),
                                            roles[pick(roles.size())], roles[pick(roles.size())],
                                            "o@example.com", kNow});
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->id : 0;
  };
  for (int i = 0; i < 3; ++i) api_users.push_back(add_api_user());

  struct Minted {
    std::string secret, id;
  };
  std::vector<Minted> minted;  // every token ever made, live or not
  int64_t now = kNow;
  std::shared_ptr<const TokenView> view = LoadAll(store, now);
  ASSERT_NE(view, nullptr);

  for (int step = 0; step < 300; ++step) {
    // A few changes, sometimes in one transaction.
    const int changes = 1 + static_cast<int>(pick(4));
    auto change = [&]() -> Status {
      switch (pick(10)) {
        case 0:
        case 1:
        case 2: {  // a token, sometimes short-lived
          MintedToken m = MintToken().value();
          const int64_t expires = now + (pick(4) == 0 ? 5 : 3600);
          GATEHOUSE_RETURN_IF_ERROR(store.InsertToken(NewToken{
              m.id, api_users[pick(api_users.size())], "t" + std::to_string(step), m.hash, now,
              expires, "o@example.com"}));
          minted.push_back({m.secret, m.id});
          return Status::Ok();
        }
        case 3:  // a revocation
          if (minted.empty()) return Status::Ok();
          (void)store.DeleteToken(minted[pick(minted.size())].id);
          return Status::Ok();
        case 4:  // a role change
          return store.SetApiUserWorkspaceRole(api_users[pick(api_users.size())],
                                               roles[pick(roles.size())]);
        case 5:
          return store.SetApiUserOrgRole(api_users[pick(api_users.size())], roles[pick(roles.size())]);
        case 6: {  // an API user deleted (with its tokens) and another made
          const size_t i = pick(api_users.size());
          auto n = store.DeleteApiUser(api_users[i]);
          if (!n.ok()) return n.status();
          api_users[i] = add_api_user();
          return Status::Ok();
        }
        case 7: {  // a workspace retyped or renamed
          const int64_t ws = workspaces[pick(workspaces.size())];
          const std::string type = pick(2) == 0 ? "shared" : "personal";
          return (postgres ? internal::ExecPostgresForTesting : internal::ExecSqliteForTesting)(
              store, "UPDATE workspaces SET type = '" + type + "', name = 'W" +
                         std::to_string(step) + "-" + std::to_string(ws) + "' WHERE id = " +
                         std::to_string(ws));
        }
        case 8:  // time passes; the sweeper deletes what expired
          now += static_cast<int64_t>(pick(8));
          return store.DeleteExpiredTokens(now).status();
        default:  // an audit-only commit
          return store
              .AppendAudit(AuditRecord{0, now, org.id, "a@example.com", "token.list", "", 
                                       AuditDecision::kAllow, "", "", ""})
              .status();
      }
    };
    if (pick(3) == 0) {
      ASSERT_OK(store.Transaction([&]() -> Status {
        for (int c = 0; c < changes; ++c) GATEHOUSE_RETURN_IF_ERROR(change());
        return Status::Ok();
      }));
    } else {
      for (int c = 0; c < changes; ++c) ASSERT_OK(change());
    }

    // Catch up, as the sidecar does; sometimes apply the batch twice, or
    // compact onto a full load that may be ahead of the view.
    ASSERT_OK_AND_ASSIGN(batch, store.ReadChangesSince(view->head(), 100'000));
    view = view->Apply(batch);
    if (pick(5) == 0) view = view->Apply(batch);
    if (pick(7) == 0) {
      std::shared_ptr<const TokenView> full = LoadAll(store, now);
      view = view->Rebase(full->base(), full->base_head());
    }

    std::shared_ptr<const TokenView> expected = LoadAll(store, now);
    ASSERT_EQ(view->head(), expected->head()) << "step " << step;
    for (const Minted& m : minted) {
      ASSERT_EQ(Describe(view->Verify(m.secret, now)), Describe(expected->Verify(m.secret, now)))
          << "seed " << GetParam().second << " step " << step << " token " << m.id;
    }
  }
}

std::string Describe(const Directory::UserEntry* u) {
  if (u == nullptr) return "none";
  std::string out = std::to_string(u->id) + " " + std::to_string(u->org_id) + " " + u->email + " " + u->org_role;
  std::map<int64_t, std::string> roles(u->workspace_roles.begin(), u->workspace_roles.end());
  for (const auto& [ws, role] : roles) out += " " + std::to_string(ws) + "=" + role;
  return out;
}

std::string Describe(const Directory::WorkspaceEntry* w) {
  if (w == nullptr) return "none";
  return std::to_string(w->id) + " " + std::to_string(w->org_id) + " " + w->name + " " + w->type;
}

TEST_P(FeedPropertyTest, ADirectoryKeptByTheFeedAnswersAsAFullLoad) {
  testing::TempDir dir;
  const bool postgres = GetParam().first;
  auto created = NewStore(dir, postgres);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Store& store = **created;
  PolicyLoad policy = LoadPolicy(std::string(GATEHOUSE_SOURCE_DIR) + "/policies/api-tokens.yaml");
  ASSERT_NE(policy.policy, nullptr);
  std::mt19937 rng(GetParam().second);
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  auto raw = [&](const std::string& sql) {
    return (postgres ? internal::ExecPostgresForTesting : internal::ExecSqliteForTesting)(store, sql);
  };
  const std::vector<std::string> roles = {"viewer", "contributor", "admin", "owner"};

  // Everything ever named, for the lookups.
  std::set<int64_t> orgs_ever;
  std::set<std::string> emails_ever, names_ever;
  std::set<int64_t> workspaces_ever;
  int next = 0;
  auto name = [&](const char* prefix) {
    std::string n = prefix + std::to_string(next++);
    if (pick(2) == 0) n[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(n[0])));
    return n;
  };
  auto add_org = [&]() -> Status {
    auto org = store.CreateOrganization(name("org"));
    if (!org.ok()) return org.status();
    orgs_ever.insert(org->id);
    return Status::Ok();
  };
  // The live rows, read back from the store (raw SQL changes them too).
  auto live_orgs = [&]() { return store.ListOrganizations().value(); };
  auto users_of = [&](int64_t org) { return store.ListUsers(org).value(); };
  auto workspaces_of = [&](int64_t org) { return store.ListWorkspaces(org).value(); };
  for (int i = 0; i < 4; ++i) ASSERT_OK(add_org());

  auto change = [&]() -> Status {
    std::vector<Organization> orgs = live_orgs();
    if (orgs.empty()) return add_org();
    const int64_t org = orgs[pick(orgs.size())].id;
    std::vector<User> users = users_of(org);
    std::vector<Workspace> wss = workspaces_of(org);
    switch (pick(12)) {
      case 0:
      case 1: {  // a user, in whatever case
        std::string email = name("user") + "@Example.com";
        emails_ever.insert(email);
        return store.AddUser(org, email, roles[pick(roles.size())]).status();
      }
      case 2:  // a user deleted (its memberships go with it)
        if (users.empty()) return Status::Ok();
        return raw("DELETE FROM users WHERE id = " + std::to_string(users[pick(users.size())].id));
      case 3:  // a user's organization role
        if (users.empty()) return Status::Ok();
        return raw("UPDATE users SET org_role = '" + roles[pick(roles.size())] +
                   "' WHERE id = " + std::to_string(users[pick(users.size())].id));
      case 4: {  // a user moved to another organization (memberships dropped first)
        if (users.empty()) return Status::Ok();
        const std::string id = std::to_string(users[pick(users.size())].id);
        return raw("DELETE FROM memberships WHERE user_id = " + id + "; UPDATE users SET org_id = " +
                   std::to_string(orgs[pick(orgs.size())].id) + " WHERE id = " + id);
      }
      case 5:
      case 6:  // a membership set or dropped
        if (users.empty() || wss.empty()) return Status::Ok();
        if (pick(3) == 0) {
          return raw("DELETE FROM memberships WHERE user_id = " + std::to_string(users[pick(users.size())].id) +
                     " AND workspace_id = " + std::to_string(wss[pick(wss.size())].id));
        }
        return store.SetMembership(wss[pick(wss.size())].id, users[pick(users.size())].id,
                                   roles[pick(roles.size())]);
      case 7: {  // a workspace
        std::string n = name("ws");
        names_ever.insert(n);
        auto ws = store.CreateWorkspace(org, n, pick(2) == 0 ? "shared" : "personal", std::nullopt);
        if (!ws.ok()) return ws.status();
        workspaces_ever.insert(ws->id);
        return Status::Ok();
      }
      case 8: {  // a workspace renamed, or deleted (its memberships go with it)
        if (wss.empty()) return Status::Ok();
        const std::string id = std::to_string(wss[pick(wss.size())].id);
        if (pick(2) == 0) return raw("DELETE FROM workspaces WHERE id = " + id);
        std::string n = name("ws");
        names_ever.insert(n);
        return raw("UPDATE workspaces SET name = '" + n + "' WHERE id = " + id);
      }
      case 9:
      case 10: {  // a setting toggled (or set to something that is not a boolean)
        const char* values[] = {"true", "false", "maybe"};
        return store.SetSetting(org, pick(4) == 0 ? "undeclared" : "workspace_admins_can_create_tokens",
                                values[pick(3)]);
      }
      default: {  // an organization deleted with everything in it, another created
        if (pick(3) != 0) return Status::Ok();
        const std::string id = std::to_string(org);
        GATEHOUSE_RETURN_IF_ERROR(raw(
            "DELETE FROM memberships WHERE workspace_id IN (SELECT id FROM workspaces WHERE org_id = " + id +
            "); DELETE FROM workspaces WHERE org_id = " + id + "; DELETE FROM users WHERE org_id = " + id +
            "; DELETE FROM settings WHERE org_id = " + id + "; DELETE FROM organizations WHERE id = " + id));
        return add_org();
      }
    }
  };

  std::shared_ptr<const Directory> kept;
  int64_t head = 0;
  ASSERT_OK(store.ReadSnapshot([&]() -> Status {
    head = store.ChangeHead().value();
    auto d = Directory::Load(store);
    if (!d.ok()) return d.status();
    kept = std::move(d).value();
    return Status::Ok();
  }));
  for (int step = 0; step < 80; ++step) {
    const int changes = 1 + static_cast<int>(pick(3));
    if (pick(3) == 0) {
      ASSERT_OK(store.Transaction([&]() -> Status {
        for (int c = 0; c < changes; ++c) GATEHOUSE_RETURN_IF_ERROR(change());
        return Status::Ok();
      }));
    } else {
      for (int c = 0; c < changes; ++c) ASSERT_OK(change());
    }
    // Catch up as the sidecar does: the batch and the reload in one snapshot.
    std::shared_ptr<const Directory> next;
    std::vector<int64_t> named;
    ASSERT_OK(store.ReadSnapshot([&]() -> Status {
      auto batch = store.ReadChangesSince(head, 100'000);
      if (!batch.ok()) return batch.status();
      head = batch->head;
      if (!batch->directory_changed) {
        next = kept;
        return Status::Ok();
      }
      named = kept->OrgsChangedBy(*batch);
      auto d = Directory::Reload(store, *kept, named);
      if (!d.ok()) return d.status();
      next = std::move(d).value();
      return Status::Ok();
    }));
    ASSERT_OK_AND_ASSIGN(expected, Directory::Load(store));
    const std::string where = "seed " + std::to_string(GetParam().second) + " step " + std::to_string(step);
    // Untouched organizations keep their very part.
    for (int64_t org : orgs_ever) {
      if (!std::binary_search(named.begin(), named.end(), org)) {
        ASSERT_EQ(next->org_part(org), kept->org_part(org)) << where << " org " << org;
      }
    }
    kept = next;
    ASSERT_EQ(kept->org_count(), expected->org_count()) << where;
    ASSERT_EQ(kept->user_count(), expected->user_count()) << where;
    ASSERT_EQ(kept->workspace_count(), expected->workspace_count()) << where;
    for (const std::string& email : emails_ever) {
      for (const std::string& asked : {email, std::string(email).replace(0, 1, 1, 'U')}) {
        ASSERT_EQ(Describe(kept->FindUser(asked)), Describe(expected->FindUser(asked)))
            << where << " email " << asked;
      }
    }
    for (int64_t org : orgs_ever) {
      ASSERT_EQ(kept->SettingsMask(*policy.policy, org), expected->SettingsMask(*policy.policy, org))
          << where << " org " << org;
      ASSERT_EQ(kept->org_part(org) == nullptr, expected->org_part(org) == nullptr) << where << " org " << org;
      for (const std::string& n : names_ever) {
        ASSERT_EQ(Describe(kept->FindWorkspace(org, n)), Describe(expected->FindWorkspace(org, n)))
            << where << " org " << org << " workspace " << n;
      }
    }
    for (int64_t id : workspaces_ever) {
      ASSERT_EQ(Describe(kept->WorkspaceById(id)), Describe(expected->WorkspaceById(id)))
          << where << " workspace " << id;
    }
  }
}

// The directory folds names as the store does (ASCII only, whatever the
// bytes around 'A'..'Z' or beyond 0x7f): for generated names and generated
// case variants of them, Directory lookups find exactly what the store's
// own lookups find.
TEST_P(FeedPropertyTest, TheDirectoryFoldsNamesAsTheStoreDoes) {
  testing::TempDir dir;
  const bool postgres = GetParam().first;
  auto created = NewStore(dir, postgres);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Store& store = **created;
  std::mt19937 rng(GetParam().second);
  // Letters, the bytes just outside 'A'..'Z' and 'a'..'z', and UTF-8 letters.
  const std::vector<std::string> pieces = {"a", "A", "z", "Z", "m", "M", "@", "[", "`", "{",
                                           "\xc3\xa9", "\xc3\x89", "-", "0"};
  auto word = [&](size_t max) {
    std::string w;
    const size_t n = 1 + rng() % max;
    for (size_t i = 0; i < n; ++i) w += pieces[rng() % pieces.size()];
    return w;
  };
  ASSERT_OK_AND_ASSIGN(org, store.CreateOrganization("Acme"));
  std::vector<std::string> names;
  for (int i = 0; i < 60; ++i) {
    std::string n = word(i % 2 == 0 ? 4 : 20);  // short and longer than 8 bytes
    auto ws = store.CreateWorkspace(org.id, n, "shared", std::nullopt);
    if (ws.ok()) {
      names.push_back(n);
    } else {
      ASSERT_EQ(ws.status().code(), StatusCode::kAlreadyExists) << ws.status().ToString();
    }
    auto u = store.AddUser(org.id, n + "@x", "member");
    if (!u.ok()) {
      ASSERT_EQ(u.status().code(), StatusCode::kAlreadyExists) << u.status().ToString();
    }
  }
  ASSERT_OK_AND_ASSIGN(directory, Directory::Load(store));
  auto vary = [&](std::string n) {
    for (char& c : n) {
      if (rng() % 2 == 0) continue;
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
      else if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    }
    return n;
  };
  for (int i = 0; i < 300; ++i) {
    const std::string q = i % 3 == 0 ? word(20) : vary(names[rng() % names.size()]);
    auto ws = store.FindWorkspace(org.id, q);
    const Directory::WorkspaceEntry* found = directory->FindWorkspace(org.id, q);
    ASSERT_EQ(found != nullptr, ws.ok()) << q;
    if (found) {
      EXPECT_EQ(found->id, ws->id) << q;
    }
    auto u = store.FindUserByEmail(q + "@x");
    const Directory::UserEntry* user = directory->FindUser(q + "@x");
    ASSERT_EQ(user != nullptr, u.ok()) << q;
    if (user) {
      EXPECT_EQ(user->id, u->id) << q;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, FeedPropertyTest,
                         ::testing::Values(std::pair{false, 1u}, std::pair{false, 2u},
                                           std::pair{false, 3u}, std::pair{false, 4u},
                                           std::pair{false, 5u}, std::pair{false, 6u}));
// The same property on PostgreSQL (fewer seeds: every change is a round trip).
INSTANTIATE_TEST_SUITE_P(PostgresSeeds, FeedPropertyTest,
                         ::testing::Values(std::pair{true, 1u}));

}  // namespace
}  // namespace gatehouse
