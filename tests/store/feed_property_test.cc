// The change feed and TokenView together, as a property: after any sequence
// of store changes (tokens created, revoked, expired and swept; API users
// re-roled, deleted, recreated; workspaces retyped and renamed), a view kept
// current by applying ReadChangesSince batches — with compactions (Rebase
// onto a fresh full load) at random points, and batches sometimes applied
// twice — answers every token exactly as a view loaded in full from the
// store does.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

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

// (on PostgreSQL?, seed)
class FeedPropertyTest : public ::testing::TestWithParam<std::pair<bool, uint32_t>> {};

TEST_P(FeedPropertyTest, AViewKeptByTheFeedAnswersAsAFullLoad) {
  testing::TempDir dir;
  const bool postgres = GetParam().first;
  std::string locator = dir.File("gatehouse.db");
  if (postgres) {
    testing::PostgresServer* pg = testing::PostgresServer::Get();
    ASSERT_NE(pg, nullptr);
    locator = pg->NewDatabase();
    ASSERT_FALSE(locator.empty());
  }
  auto created = CreateStore(locator, StoreOptions{.durable_commits = false});
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

INSTANTIATE_TEST_SUITE_P(Seeds, FeedPropertyTest,
                         ::testing::Values(std::pair{false, 1u}, std::pair{false, 2u},
                                           std::pair{false, 3u}, std::pair{false, 4u},
                                           std::pair{false, 5u}, std::pair{false, 6u}));
// The same property on PostgreSQL (fewer seeds: every change is a round trip).
INSTANTIATE_TEST_SUITE_P(PostgresSeeds, FeedPropertyTest,
                         ::testing::Values(std::pair{true, 1u}));

}  // namespace
}  // namespace gatehouse
