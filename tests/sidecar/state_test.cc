// State: policy reload (file change, request, failure), the sweeper, freshness.
#include "sidecar/state.h"

#include <gtest/gtest.h>
#include <signal.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/fixture.h"
#include "sidecar/sweeper.h"
#include "support/postgres.h"
#include "store/pg_schema.h"
#include "store/pg_store.h"
#include "store/sqlite_store.h"
#include "store/sqlite_store_testing.h"

namespace gatehouse::sidecar {
namespace {

// The hardening build's sanitizers (CMake defines GATEHOUSE_SANITIZED there).
#if defined(GATEHOUSE_SANITIZED)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

using gatehouse::testing::AddToken;
using gatehouse::testing::CreateDemoStore;
using gatehouse::testing::DemoToken;
using gatehouse::testing::DefaultPolicyText;
using gatehouse::testing::DemoStore;
using gatehouse::testing::kNow;
using gatehouse::testing::ReplaceFile;
using gatehouse::testing::TempDir;
using gatehouse::testing::ViewersMayImport;
using gatehouse::testing::WriteAll;

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    demo_ = CreateDemoStore(dir_.File("gatehouse.db"));
    std::filesystem::create_directory(dir_.File("policies"));
    WriteAll(policy_file(), DefaultPolicyText());
  }
  std::string policy_file() const { return dir_.File("policies/api-tokens.yaml"); }
  std::unique_ptr<State> Open(int poll_ms = 0, int sweep_s = 0) {
    StateOptions o;
    o.store_path = demo_.path;
    o.policy_path = dir_.File("policies");
    o.clock = clock_override_ ? clock_override_ : &clock_;
    o.max_staleness_ms = max_staleness_ms_;
    o.feed_heartbeat_ms = feed_heartbeat_ms_;
    o.feed_notify = feed_notify_;
    o.policy_poll_ms = poll_ms;
    o.sweep_interval_s = sweep_s;
    auto s = State::Open(o, &metrics_, Log());
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  // Records each line as "LEVEL: message".
  LogFn Log() {
    return [this](LogLevel level, std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      logs_.push_back(std::string(LogLevelName(level)) + ": " + std::string(line));
    };
  }
  SweeperOptions SweeperAt(const Clock* clock) const {
    SweeperOptions so;
    so.store_path = demo_.path;
    so.clock = clock;
    so.interval_s = 0;  // SweepNow only
    return so;
  }
  // One Sweeper, one sweep, over generated tokens expiring around the sweep's
  // now: exactly the expired ones go, the feed is pruned to feed_keep rows,
  // and the view is told (after_delete) once; a second sweep finds nothing.
  void CheckOneSweepDeletesTheExpiredAndPrunesTheFeed() {
    auto writer = OpenStore(demo_.path);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    Store& w = **writer;
    std::mt19937 rng(11);
    std::vector<std::pair<DemoToken, int64_t>> made;
    made.emplace_back(demo_.tokens["expiring"], kNow + 60);
    made.emplace_back(demo_.tokens["org-bot"], kNow + 30 * 86400);
    for (int i = 0; i < 24; ++i) {
      const int64_t expires = kNow + 1 + static_cast<int64_t>(rng() % 200);
      made.emplace_back(AddToken(w, demo_.api_users["org-bot"], "gen" + std::to_string(i),
                                 kNow - 10, expires),
                        expires);
    }
    clock_.Advance(100);
    const int64_t now = clock_.NowSeconds();
    int64_t expired = 0;
    for (const auto& [t, expires] : made) expired += expires <= now ? 1 : 0;
    ASSERT_GT(expired, 1);
    int told = 0;
    SweeperOptions so = SweeperAt(&clock_);
    so.feed_keep = 3;
    Sweeper sweeper(so, &metrics_, Log(), [&] {
      ++told;
      return Status::Ok();
    });
    auto n = sweeper.SweepNow();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, expired);
    EXPECT_EQ(told, 1);
    for (const auto& [t, expires] : made) {
      EXPECT_EQ(w.FindTokenById(t.id).ok(), expires > now) << t.id << " expires " << expires;
    }
    // Pruned: the feed's start is gone (a reader there loads everything),
    // its head still reads.
    auto from_start = w.ReadChangesSince(0, INT64_MAX);
    ASSERT_FALSE(from_start.ok());
    EXPECT_EQ(from_start.status().code(), StatusCode::kFailedPrecondition)
        << from_start.status().ToString();
    EXPECT_TRUE(w.ReadChangesSince(w.ChangeHead().value(), INT64_MAX).ok());
    EXPECT_GT(MetricValue(metrics_.Render(), "gatehouse_feed_pruned_total"), 0) << metrics_.Render();
    EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_swept_tokens_total"), expired);
    n = sweeper.SweepNow();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, 0);
    EXPECT_EQ(told, 1);
  }
  // A metric's value in the exposition (-1 when absent).
  static double MetricValue(const std::string& text, const std::string& name) {
    const std::string key = "\n" + name + " ";
    const size_t at = text.find(key);
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + key.size()));
  }
  std::string Logs() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& l : logs_) out += l + "\n";
    return out;
  }
  template <typename F>
  static bool WaitFor(F pred, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  TempDir dir_;
  DemoStore demo_;
  FakeClock clock_{kNow};
  const Clock* clock_override_ = nullptr;
  int max_staleness_ms_ = 1000, feed_heartbeat_ms_ = 0;
  bool feed_notify_ = true;
  Metrics metrics_;
  std::mutex mu_;
  std::vector<std::string> logs_;
};

TEST_F(StateTest, OpenRefusesABrokenPolicyWithPositions) {
  WriteAll(policy_file(),
           "gatehouse: v1\npolicy: x\nactions:\n  a:\n    permit:\n      - rule: r\n        when: "
           "nonsense >= 1\n");
  StateOptions o;
  o.store_path = demo_.path;
  o.policy_path = dir_.File("policies");
  auto s = State::Open(o, &metrics_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().ToString().find("api-tokens.yaml:"), std::string::npos)
      << s.status().ToString();
}

TEST_F(StateTest, OpenRefusesAMissingStore) {
  StateOptions o;
  o.store_path = dir_.File("nope.db");
  o.policy_path = dir_.File("policies");
  auto s = State::Open(o, &metrics_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().ToString().find("does not exist"), std::string::npos);
}

TEST_F(StateTest, ReloadSwapsAndKeepsInFlightPolicies) {
  auto state = Open();
  ASSERT_TRUE(state);
  PolicyPtr before = state->policy();
  ReplaceFile(policy_file(), ViewersMayImport());
  ASSERT_TRUE(state->ReloadPolicy());
  PolicyPtr after = state->policy();
  EXPECT_NE(before->revision(), after->revision());
  // A request holding the old policy still decides with it.
  EXPECT_TRUE(before->FindAction("project.import").has_value());
  EXPECT_EQ(metrics_.reloads(), 1u);
  EXPECT_NE(Logs().find("info: policy reloaded"), std::string::npos);
}

TEST_F(StateTest, FailedReloadKeepsTheLastGoodPolicyAndIsCountedAndLogged) {
  auto state = Open();
  ASSERT_TRUE(state);
  const std::string revision = state->policy()->revision();
  std::string broken = DefaultPolicyText();
  broken.replace(broken.find("principal.workspace_role >= contributor"), 39,
                 "principal.workspace_role >= wizard");
  WriteAll(policy_file(), broken);
  EXPECT_FALSE(state->ReloadPolicy());
  EXPECT_EQ(state->policy()->revision(), revision);
  EXPECT_EQ(metrics_.reload_failures(), 1u);
  const std::string logs = Logs();
  EXPECT_NE(logs.find("error: policy reload failed"), std::string::npos) << logs;
  EXPECT_NE(logs.find("api-tokens.yaml:"), std::string::npos) << logs;  // FILE:LINE:COL
  EXPECT_NE(logs.find("wizard"), std::string::npos) << logs;
  // Still serving.
  EXPECT_TRUE(state->Fresh().ok());
  // YAML syntax error too.
  WriteAll(policy_file(), "gatehouse: v1\npolicy: [unclosed\n");
  EXPECT_FALSE(state->ReloadPolicy());
  EXPECT_EQ(state->policy()->revision(), revision);
  EXPECT_EQ(metrics_.reload_failures(), 2u);
}

TEST_F(StateTest, FileChangeIsPickedUpByTheWatcher) {
  auto state = Open(/*poll_ms=*/50);
  ASSERT_TRUE(state);
  state->Start();
  const std::string revision = state->policy()->revision();
  ReplaceFile(policy_file(), ViewersMayImport());
  EXPECT_TRUE(WaitFor([&] { return state->policy()->revision() != revision; })) << Logs();
  // An edit in place (truncate + write) too.
  const std::string second = state->policy()->revision();
  WriteAll(policy_file(), DefaultPolicyText());
  EXPECT_TRUE(WaitFor([&] { return state->policy()->revision() != second; })) << Logs();
  EXPECT_EQ(state->policy()->revision(), revision);
  // A new file in the folder that breaks the policy is refused.
  WriteAll(dir_.File("policies/extra.yaml"), "actions:\n  project.import: {}\n");
  EXPECT_TRUE(WaitFor([&] { return metrics_.reload_failures() >= 1; })) << Logs();
  EXPECT_EQ(state->policy()->revision(), revision);
  state->Stop();
}

TEST_F(StateTest, RequestReloadWakesTheBackgroundThread) {
  auto state = Open(/*poll_ms=*/0);
  ASSERT_TRUE(state);
  state->Start();
  ReplaceFile(policy_file(), ViewersMayImport());
  const std::string revision = state->policy()->revision();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(state->policy()->revision(), revision);  // no watching
  state->RequestReload();
  EXPECT_TRUE(WaitFor([&] { return state->policy()->revision() != revision; })) << Logs();
  state->Stop();
}

TEST_F(StateTest, SweeperDeletesExpiredTokens) {
  auto state = Open();
  ASSERT_TRUE(state);
  EXPECT_EQ(metrics_.token_index_size(), 6);
  auto n = state->SweepNow();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  clock_.Advance(61);
  n = state->SweepNow();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(metrics_.token_index_size(), 5);
  auto reader = OpenSqliteStore(demo_.path);
  ASSERT_TRUE(reader.ok());
  EXPECT_FALSE((*reader)->FindTokenById(demo_.tokens["expiring"].id).ok());
}

TEST_F(StateTest, BackgroundSweeperRuns) {
  clock_.Advance(61);
  auto state = Open(/*poll_ms=*/20, /*sweep_s=*/1);
  ASSERT_TRUE(state);
  state->Start();
  EXPECT_TRUE(
      WaitFor([&] { return metrics_.token_index_size() == 5; }, std::chrono::milliseconds(4000)));
  state->Stop();
}

TEST_F(StateTest, OneSweepDeletesTheExpiredTokensAndPrunesTheFeed) {
  CheckOneSweepDeletesTheExpiredAndPrunesTheFeed();
}

TEST_F(StateTest, ASweepThatDeletedTokensDropsThemFromTheView) {
  auto state = Open();
  ASSERT_TRUE(state);
  clock_.Advance(61);
  auto n = state->sweeper().SweepNow();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  // Caught up by the sweep itself, not by a request's slow path.
  EXPECT_EQ(metrics_.token_index_size(), 5);
}

// A change the feed does not show (a row deleted by hand, the feed row gone
// with it) is served on until the feed is renewed (`gatehouse store
// renew-feed`); then the next catch-up loads everything and refuses it.
TEST_F(StateTest, ARenewedFeedIsLoadedAgain) {
  auto state = Open();
  ASSERT_TRUE(state);
  auto writer = OpenSqliteStore(demo_.path);
  ASSERT_TRUE(writer.ok());
  Store& w = **writer;
  const std::string secret = demo_.tokens["org-bot"].secret;
  ASSERT_TRUE(internal::ExecSqliteForTesting(
                  w, "BEGIN; DELETE FROM tokens WHERE public_id = '" + demo_.tokens["org-bot"].id +
                         "'; DELETE FROM changes WHERE seq = (SELECT max(seq) FROM changes); COMMIT;")
                  .ok());
  ASSERT_TRUE((*state->Fresh())->tokens->Verify(secret, kNow).active());  // unseen
  ASSERT_TRUE(w.RenewFeedEpoch().ok());
  auto fresh = state->Fresh();
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_FALSE((*fresh)->tokens->Verify(secret, kNow).active());
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_store_full_loads_total"), 2);
  EXPECT_NE(Logs().find("new epoch"), std::string::npos) << Logs();
}

TEST_F(StateTest, FreshRebuildsOncePerCommitNotOncePerThread) {
  auto state = Open();
  ASSERT_TRUE(state);
  auto writer = OpenSqliteStore(demo_.path);
  ASSERT_TRUE(writer.ok());
  // Warm up four threads' connections.
  auto run = [&] {
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; ++i) ts.emplace_back([&] { EXPECT_TRUE(state->Fresh().ok()); });
    for (auto& t : ts) t.join();
  };
  run();
  const SnapshotPtr before = *state->Fresh();
  ASSERT_TRUE((*writer)->DeleteToken(demo_.tokens["prod-viewer"].id).ok());
  run();
  const SnapshotPtr after = *state->Fresh();
  EXPECT_NE(before.get(), after.get());
  EXPECT_EQ(after->tokens->size(), 5u);
  // Nothing changed: the same snapshot.
  run();
  EXPECT_EQ(state->Fresh()->get(), after.get());
}

TEST_F(StateTest, NoStoreQueryWhileNothingCommits) {
  // The WAL-index header decides: unchanged, no SQLite call at all.
  auto state = Open();
  ASSERT_TRUE(state);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(state->Fresh().ok());
  EXPECT_NE(metrics_.Render().find("gatehouse_store_checks_total 0\n"), std::string::npos);
  auto writer = OpenSqliteStore(demo_.path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->DeleteToken(demo_.tokens["prod-viewer"].id).ok());
  auto fresh = state->Fresh();
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ((*fresh)->tokens->size(), 5u);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(state->Fresh().ok());
  EXPECT_NE(metrics_.Render().find("gatehouse_store_checks_total 1\n"), std::string::npos)
      << metrics_.Render();
}

// A commit that only appends audit records (a denied or read-only CLI
// command) keeps the snapshot; any change to what decisions read rebuilds it.
TEST_F(StateTest, AnAuditOnlyCommitKeepsTheSnapshotAnyOtherRebuildsIt) {
  auto state = Open();
  ASSERT_TRUE(state);
  auto writer = OpenSqliteStore(demo_.path);
  ASSERT_TRUE(writer.ok());
  Store& w = **writer;
  auto rebuilt = [&](const SnapshotPtr& before) {
    auto now = state->Fresh();
    EXPECT_TRUE(now.ok());
    return now.ok() && ((*now)->tokens.get() != before->tokens.get() ||
                        (*now)->directory.get() != before->directory.get());
  };
  SnapshotPtr before = *state->Fresh();
  AuditRecord audit;
  audit.time = kNow;
  audit.actor = "owner@demo.test";
  audit.action = "token.list";
  audit.decision = AuditDecision::kAllow;
  ASSERT_TRUE(w.AppendAudit(audit).ok());
  EXPECT_FALSE(rebuilt(before)) << "an audit record alone rebuilt the index";
  const std::string refreshes = "gatehouse_store_refreshes_total 1\n";  // the first build
  EXPECT_NE(metrics_.Render().find(refreshes), std::string::npos) << metrics_.Render();

  before = *state->Fresh();
  ASSERT_TRUE(w.SetSetting(demo_.org_id, "workspace_admins_can_create_tokens", "on").ok());
  EXPECT_TRUE(rebuilt(before)) << "a settings change";
  before = *state->Fresh();
  ASSERT_TRUE(w.DeleteToken(demo_.tokens["prod-viewer"].id).ok());
  EXPECT_TRUE(rebuilt(before)) << "a revocation";
  EXPECT_EQ((*state->Fresh())->tokens->size(), 5u);
  // A revocation committed together with its audit record, as the CLI does.
  before = *state->Fresh();
  ASSERT_TRUE(w.Transaction([&] {
                 GATEHOUSE_RETURN_IF_ERROR(w.DeleteToken(demo_.tokens["prod-importer"].id));
                 return w.AppendAudit(audit).status();
               }).ok());
  EXPECT_TRUE(rebuilt(before)) << "a revocation with its audit record";
  EXPECT_EQ((*state->Fresh())->tokens->size(), 4u);
}


TEST_F(StateTest, ChangesAreAppliedFromTheFeedWithoutLoadingEverything) {
  auto state = Open();
  ASSERT_TRUE(state);
  auto writer = OpenSqliteStore(demo_.path);
  ASSERT_TRUE(writer.ok());
  Store& w = **writer;
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_store_full_loads_total"), 1);
  const std::string secret = demo_.tokens["prod-viewer"].secret;
  // Re-roles, a new token, a revocation, a directory change: each seen by the
  // next request, none loading everything again.
  ASSERT_TRUE(w.SetApiUserWorkspaceRole(demo_.api_users["prod-viewer"], "admin").ok());
  auto seen = state->Fresh();
  ASSERT_TRUE(seen.ok());
  TokenLookup l = (*seen)->tokens->Verify(secret, kNow);
  ASSERT_TRUE(l.active());
  EXPECT_EQ(l.token.principal->workspace_role, "admin");
  MintedToken fresh = MintToken().value();
  ASSERT_TRUE(w.InsertToken(NewToken{fresh.id, demo_.api_users["prod-viewer"], "new", fresh.hash,
                                     kNow, kNow + 3600, "owner@demo.test"})
                  .ok());
  EXPECT_TRUE((*state->Fresh())->tokens->Verify(fresh.secret, kNow).active());
  ASSERT_TRUE(w.SetSetting(demo_.org_id, "workspace_admins_can_create_tokens", "on").ok());
  ASSERT_TRUE(w.DeleteApiUser(demo_.api_users["prod-viewer"]).ok());
  SnapshotPtr after = *state->Fresh();
  EXPECT_FALSE(after->tokens->Verify(secret, kNow).active());
  EXPECT_FALSE(after->tokens->Verify(fresh.secret, kNow).active());
  EXPECT_EQ(after->head, w.ChangeHead().value());
  const std::string m = metrics_.Render();
  EXPECT_EQ(MetricValue(m, "gatehouse_store_full_loads_total"), 1) << m;
  EXPECT_GE(MetricValue(m, "gatehouse_feed_changes_applied_total"), 4) << m;
  EXPECT_EQ(MetricValue(m, "gatehouse_feed_applied"), static_cast<double>(after->head)) << m;
}

TEST_F(StateTest, AFeedPrunedPastTheViewLoadsEverythingAndStillRefusesARevocation) {
  auto state = Open();
  ASSERT_TRUE(state);
  auto writer = OpenSqliteStore(demo_.path);
  ASSERT_TRUE(writer.ok());
  Store& w = **writer;
  ASSERT_TRUE(w.DeleteToken(demo_.tokens["prod-viewer"].id).ok());
  ASSERT_TRUE(w.SetSetting(demo_.org_id, "workspace_admins_can_create_tokens", "on").ok());
  ASSERT_TRUE(w.PruneChanges(0).ok());
  SnapshotPtr after = *state->Fresh();
  EXPECT_FALSE(after->tokens->Verify(demo_.tokens["prod-viewer"].secret, kNow).active());
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_store_full_loads_total"), 2);
  EXPECT_NE(Logs().find("pruned"), std::string::npos) << Logs();
}

TEST_F(StateTest, AGrownOverlayIsCompactedOffTheRequestPath) {
  auto state = Open();
  ASSERT_TRUE(state);
  auto writer = OpenSqliteStore(demo_.path, StoreOptions{.durable_commits = false});
  ASSERT_TRUE(writer.ok());
  Store& w = **writer;
  std::vector<MintedToken> made;
  ASSERT_TRUE(w.Transaction([&]() -> Status {
                 for (int i = 0; i < 5000; ++i) {
                   made.push_back(MintToken().value());
                   GATEHOUSE_RETURN_IF_ERROR(
                       w.InsertToken(NewToken{made.back().id, demo_.api_users["prod-viewer"], "n",
                                              made.back().hash, kNow, kNow + 3600, "o@demo.test"}));
                 }
                 return Status::Ok();
               }).ok());
  SnapshotPtr caught_up = *state->Fresh();
  EXPECT_GT(caught_up->tokens->overlay_size(), 4096u);
  EXPECT_TRUE(caught_up->tokens->CompactionDue());
  ASSERT_TRUE(w.DeleteToken(made[7].id).ok());  // a change the compaction must keep
  // Requests catch up but never compact: that is the background thread's.
  SnapshotPtr before = *state->Fresh();
  EXPECT_FALSE(before->tokens->Verify(made[7].secret, kNow).active());
  EXPECT_GT(before->tokens->overlay_size(), 4096u);
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_token_compactions_total"), 0);
  state->Start();  // the background thread compacts on its next poll
  ASSERT_TRUE(WaitFor([&] { return (*state->Fresh())->tokens->overlay_size() == 0; }));
  state->Stop();
  SnapshotPtr after = *state->Fresh();
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_token_compactions_total"), 1);
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_store_full_loads_total"), 1);
  EXPECT_FALSE(after->tokens->Verify(made[7].secret, kNow).active());
  EXPECT_TRUE(after->tokens->Verify(made[8].secret, kNow).active());
  EXPECT_TRUE(after->tokens->Verify(made[4999].secret, kNow).active());
}

TEST_F(StateTest, ContentReplacedUnderANewFeedEpochIsLoadedAgain) {
  auto state = Open();
  ASSERT_TRUE(state);
  auto writer = OpenSqliteStore(demo_.path);
  ASSERT_TRUE(writer.ok());
  Store& w = **writer;
  const std::string secret = demo_.tokens["prod-viewer"].secret;
  ASSERT_TRUE((*state->Fresh())->tokens->Verify(secret, kNow).active());
  // What a restore does: other content, the feed's numbers rewound, a new
  // epoch — all in one commit. Here the token goes without a feed row, and
  // the feed number even stays the same: only the epoch tells.
  const int64_t head = w.ChangeHead().value();
  ASSERT_TRUE(internal::ExecSqliteForTesting(
                  w, "BEGIN; DELETE FROM tokens WHERE public_id = '" +
                         demo_.tokens["prod-viewer"].id +
                         "'; DELETE FROM changes; UPDATE sqlite_sequence SET seq = " +
                         std::to_string(head) +
                         " WHERE name = 'changes'; UPDATE change_feed SET epoch = epoch + 1; COMMIT;")
                  .ok());
  EXPECT_FALSE((*state->Fresh())->tokens->Verify(secret, kNow).active());
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_store_full_loads_total"), 2);
  // A store whose feed is behind the view (rewound further) is loaded again too.
  ASSERT_TRUE(internal::ExecSqliteForTesting(
                  w, "UPDATE sqlite_sequence SET seq = 1 WHERE name = 'changes'").ok());
  auto again = state->Fresh();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_store_full_loads_total"), 3);
}


// The same State over PostgreSQL: no per-request stamp, so a feed thread
// follows the store (LISTEN, heartbeat) and a staleness lease bounds what is
// served (store_view.h).
class PostgresStateTest : public StateTest {
 protected:
  void SetUp() override {
    pg_ = gatehouse::testing::PostgresServer::Get();
    ASSERT_NE(pg_, nullptr);
    demo_ = CreateDemoStore(pg_->NewDatabase());
    std::filesystem::create_directory(dir_.File("policies"));
    WriteAll(policy_file(), DefaultPolicyText());
  }
  std::unique_ptr<Store> Writer() {
    auto w = OpenStore(demo_.path);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  bool Refused(State& state, const std::string& secret) {
    auto fresh = state.Fresh();
    return fresh.ok() && !(*fresh)->tokens->Verify(secret, kNow).active();
  }
  // The postmaster stopped with SIGSTOP while this lives: its socket still
  // takes connections into its backlog, nothing ever replies to them.
  struct Frozen {
    explicit Frozen(pid_t p) : pid(p), ok(::kill(p, SIGSTOP) == 0) {}
    ~Frozen() { ::kill(pid, SIGCONT); }
    pid_t pid;
    bool ok;
  };
  // How long `stop` took to return, in ms (a Stop() that waits for a
  // heartbeat or a connect's deadline takes seconds).
  template <class F>
  static int64_t MsToReturn(F&& stop) {
    const auto start = std::chrono::steady_clock::now();
    stop();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
        .count();
  }
  gatehouse::testing::PostgresServer* pg_ = nullptr;
};

TEST_F(PostgresStateTest, ChangesArriveByNotificationAndAreAppliedWithoutLoadingEverything) {
  feed_heartbeat_ms_ = 2000;  // long: the notification, not the heartbeat, must wake the feed
  max_staleness_ms_ = 60'000;
  auto state = Open();
  ASSERT_TRUE(state);
  state->Start();
  auto w = Writer();
  ASSERT_TRUE(w);
  const std::string secret = demo_.tokens["prod-viewer"].secret;
  ASSERT_TRUE((*state->Fresh())->tokens->Verify(secret, kNow).active());
  ASSERT_TRUE(w->DeleteToken(demo_.tokens["prod-viewer"].id).ok());
  EXPECT_TRUE(WaitFor([&] { return Refused(*state, secret); }, std::chrono::milliseconds(1500)));
  // An API user's deletion refuses every token of it; a setting reaches the directory.
  ASSERT_TRUE(w->DeleteApiUser(demo_.api_users["prod-importer"]).ok());
  EXPECT_TRUE(WaitFor([&] { return Refused(*state, demo_.tokens["prod-importer"].secret); }));
  ASSERT_TRUE(w->SetSetting(demo_.org_id, "workspace_admins_can_create_tokens", "on").ok());
  const int64_t head = w->ChangeHead().value();
  EXPECT_TRUE(WaitFor([&] { return (*state->Fresh())->head == head; }));
  state->Stop();
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_store_full_loads_total"), 1)
      << metrics_.Render();
}

TEST_F(PostgresStateTest, WithNotifyOffTheHeartbeatCatchesUp) {
  feed_notify_ = false;
  feed_heartbeat_ms_ = 50;
  auto state = Open();
  ASSERT_TRUE(state);
  state->Start();
  auto w = Writer();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->DeleteToken(demo_.tokens["dev-exporter"].id).ok());
  EXPECT_TRUE(WaitFor([&] { return Refused(*state, demo_.tokens["dev-exporter"].secret); }));
  state->Stop();
}

TEST_F(PostgresStateTest, PastTheLeaseEveryCheckIsRefusedUntilACatchUpConfirmsTheView) {
  max_staleness_ms_ = 1000;
  feed_heartbeat_ms_ = 20;
  auto state = Open();  // not started: nothing confirms the view after the load
  ASSERT_TRUE(state);
  ASSERT_TRUE(state->Fresh().ok());
  clock_.AdvanceMillis(1000);
  ASSERT_TRUE(state->Fresh().ok());  // exactly the bound: still served
  ASSERT_TRUE(state->CheckStore().ok());
  clock_.AdvanceMillis(1);
  auto stale = state->Fresh();
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.status().message().find("last confirmed 1001 ms ago"), std::string::npos)
      << stale.status().ToString();
  EXPECT_FALSE(state->CheckStore().ok());  // /readyz: 503
  state->Start();  // the feed catches up at the fake clock's now
  EXPECT_TRUE(WaitFor([&] { return state->Fresh().ok(); }));
  state->Stop();
}

TEST_F(PostgresStateTest, OneSweepDeletesTheExpiredTokensAndPrunesTheFeed) {
  CheckOneSweepDeletesTheExpiredAndPrunesTheFeed();
}

// Over PostgreSQL: a row deleted with the triggers off (no feed row, no
// notification) is served on; a renewal wakes the feed, which loads
// everything, in the background, and refuses it.
TEST_F(PostgresStateTest, ARenewedFeedIsLoadedAgain) {
  feed_heartbeat_ms_ = 5000;  // the renewal's notification wakes the feed
  max_staleness_ms_ = 60'000;
  auto state = Open();
  ASSERT_TRUE(state);
  state->Start();
  auto w = Writer();
  ASSERT_TRUE(w);
  const std::string secret = demo_.tokens["org-bot"].secret;
  ASSERT_TRUE(internal::ExecPostgresForTesting(
                  *w, "BEGIN; SET LOCAL session_replication_role = replica; DELETE FROM tokens "
                      "WHERE public_id = '" + demo_.tokens["org-bot"].id + "'; COMMIT")
                  .ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE((*state->Fresh())->tokens->Verify(secret, kNow).active());  // unseen
  ASSERT_TRUE(w->RenewFeedEpoch().ok());
  EXPECT_TRUE(WaitFor([&] { return Refused(*state, secret); }, std::chrono::milliseconds(3000)))
      << Logs();
  state->Stop();
  EXPECT_EQ(MetricValue(metrics_.Render(), "gatehouse_store_full_loads_total"), 2);
}

// One sidecar sweeps at a time: while another holds the sweep's (or the
// prune's) advisory lock — as a sidecar does for the length of its sweep —
// a sweeper deletes (prunes) nothing; once it is released, the next sweeps.
TEST_F(PostgresStateTest, WhileAnotherSidecarSweepsASweeperLeavesTheStoreAlone) {
  auto other = Writer();
  auto check = Writer();
  ASSERT_TRUE(other && check);
  clock_.Advance(61);
  SweeperOptions so = SweeperAt(&clock_);
  so.feed_keep = 0;
  Sweeper first(so, &metrics_, Log(), nullptr), second(so, &metrics_, Log(), nullptr);
  const int64_t head = check->ChangeHead().value();
  ASSERT_TRUE(internal::ExecPostgresForTesting(
                  *other, "BEGIN; SELECT pg_advisory_xact_lock(" +
                              std::to_string(internal::kPgSweeperLock) +
                              "); SELECT pg_advisory_xact_lock(" +
                              std::to_string(internal::kPgPruneLock) + ")")
                  .ok());
  for (Sweeper* s : {&first, &second}) {
    auto n = s->SweepNow();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, 0);
  }
  EXPECT_TRUE(check->FindTokenById(demo_.tokens["expiring"].id).ok());
  EXPECT_TRUE(check->ReadChangesSince(0, INT64_MAX).ok()) << "pruned while another sidecar held the lock";
  EXPECT_EQ(check->ChangeHead().value(), head);
  ASSERT_TRUE(internal::ExecPostgresForTesting(*other, "COMMIT").ok());
  auto n = second.SweepNow();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  EXPECT_FALSE(check->FindTokenById(demo_.tokens["expiring"].id).ok());
  EXPECT_FALSE(check->ReadChangesSince(0, INT64_MAX).ok());
  n = first.SweepNow();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 0);
}

// The demo's tokens' time, with real intervals (the lease runs on them).
class DemoTimeRealIntervals final : public Clock {
 public:
  int64_t NowSeconds() const override { return kNow; }
  int64_t MonotonicMillis() const override { return RealClock::Instance().MonotonicMillis(); }
};

// Stop() does not wait for the feed's heartbeat (a sidecar's SIGTERM): the
// wait for a notification polls a stop eventfd beside the socket. The
// heartbeat is long, so waiting for it would take seconds.
TEST_F(PostgresStateTest, StopDoesNotWaitForTheFeedsHeartbeat) {
  feed_heartbeat_ms_ = 5000;
  max_staleness_ms_ = 60'000;
  auto state = Open();
  ASSERT_TRUE(state);
  state->Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the feed is waiting now
  EXPECT_LT(MsToReturn([&] { state->Stop(); }), 2500);
  EXPECT_EQ(Logs().find("failed"), std::string::npos) << Logs();
}

// A reconnect into a server that never answers (its postmaster stopped with
// SIGSTOP: the socket takes the connection into its backlog, nothing replies
// to the startup packet) delays neither requests — served within the lease —
// nor Stop(), which cuts the connect short instead of waiting for its 5 s
// deadline.
TEST_F(PostgresStateTest, AConnectThatNeverAnswersDelaysNeitherRequestsNorStop) {
  static const DemoTimeRealIntervals clock;
  clock_override_ = &clock;
  feed_heartbeat_ms_ = 50;
  max_staleness_ms_ = 60'000;
  auto state = Open();
  ASSERT_TRUE(state);
  auto killer = Writer();  // connected before the postmaster stops
  ASSERT_TRUE(killer);
  state->Start();
  Frozen frozen(pg_->pid());
  ASSERT_TRUE(frozen.ok);
  // Drop the feed's connection (every other backend of this database).
  auto dropped = internal::QueryPostgresIntForTesting(
      *killer,
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
      "current_database() AND pid <> pg_backend_pid()");
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  ASSERT_GE(*dropped, 1);
  ASSERT_TRUE(WaitFor([&] { return Logs().find("error: ") != std::string::npos; })) << Logs();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // reconnecting now, into nothing
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(state->Fresh().ok());
  ASSERT_TRUE(state->CheckStore().ok());
  EXPECT_LT(MsToReturn([&] { state->Stop(); }), 2500) << Logs();
}

// Stop() cuts a sweep in progress short (a sidecar's SIGTERM): the sweep's
// connect, into a postmaster stopped with SIGSTOP (nothing ever replies),
// polls the sweeper's stop eventfd, so Stop() does not wait for the
// connect's 5 s deadline. The sweep starts 1 s after Start(); Stop() comes
// while it connects, and nothing is reported as a failure.
TEST_F(PostgresStateTest, StopCutsASweepThatIsConnectingShort) {
  SweeperOptions so = SweeperAt(&clock_);
  so.interval_s = 1;
  Sweeper sweeper(so, &metrics_, Log(), nullptr);
  sweeper.Start();
  Frozen frozen(pg_->pid());
  ASSERT_TRUE(frozen.ok);
  std::this_thread::sleep_for(std::chrono::milliseconds(1400));  // the sweep is connecting now
  EXPECT_LT(MsToReturn([&] { sweeper.Stop(); }), 2000);
  EXPECT_EQ(Logs().find("failed"), std::string::npos) << Logs();
}

TEST_F(PostgresStateTest, ALostServerIsRefusedWithinTheBoundAndWhatChangedMeanwhileIsRefusedAfter) {
  static const DemoTimeRealIntervals clock;
  clock_override_ = &clock;
  max_staleness_ms_ = 300;
  feed_heartbeat_ms_ = 50;
  auto state = Open();
  ASSERT_TRUE(state);
  state->Start();
  ASSERT_TRUE((*state->Fresh())->tokens->Verify(demo_.tokens["org-bot"].secret, kNow).active());
  ASSERT_TRUE(pg_->Crash());
  EXPECT_TRUE(WaitFor([&] { return !state->Fresh().ok(); }, std::chrono::milliseconds(3000)));
  EXPECT_FALSE(state->CheckStore().ok());
  ASSERT_TRUE(pg_->Start());
  // Revoked while this sidecar was still reconnecting.
  auto w = Writer();
  ASSERT_TRUE(w);
  Status revoked = w->DeleteToken(demo_.tokens["org-bot"].id);
  ASSERT_TRUE(revoked.ok()) << revoked.ToString();
  EXPECT_TRUE(WaitFor([&] { return Refused(*state, demo_.tokens["org-bot"].secret); },
                      std::chrono::milliseconds(10'000)))
      << Logs();
  EXPECT_TRUE((*state->Fresh())->tokens->Verify(demo_.tokens["doomed"].secret, kNow).active());
  state->Stop();
  EXPECT_NE(Logs().find("info: caught up with the store again"), std::string::npos) << Logs();
}

// A token base freed after a compaction goes back to the kernel, not into
// the allocator's free lists. With glibc's sliding thresholds, freeing one
// large mapped block (up to 32 MiB) moved the mmap threshold to its size and
// the trim threshold to twice that; the next base, built on the compaction's
// thread, then came from that thread's arena and, once freed, stayed there
// free and resident (56 MiB at 1,000,000 tokens), since a thread arena's top
// is trimmed only past the trim threshold and malloc_trim never trims it.
// State::Open fixes the thresholds. The same pattern here: a 30 MiB block
// freed, then base-sized tables made and freed on another thread, three
// times; none of it may be left free in any arena.
TEST_F(StateTest, TokenBasesFreedOnAnotherThreadLeaveNoFreeMemoryInTheArenas) {
  // Not under ASan (the hardening build): it replaces glibc's allocator, so
  // there are no arenas to look at; the plain build runs it.
  if (kSanitized) GTEST_SKIP() << "ASan replaces glibc's allocator";
#if defined(__GLIBC__)
  auto state = Open();
  ASSERT_NE(state, nullptr);
  { std::vector<char> block(30 << 20, 1); }
  const size_t before = mallinfo2().fordblks;
  std::thread([] {
    for (int i = 0; i < 3; ++i) {
      std::vector<char> entries(24 << 20, 1), slots(8 << 20, 1), strings(9 << 20, 1);
      ASSERT_EQ(entries[i] + slots[i] + strings[i], 3);
    }
  }).join();
  const size_t after = mallinfo2().fordblks;
  EXPECT_LT(after, before + (4 << 20)) << "free bytes in the arenas grew from " << before << " to "
                                      << after;
#endif
}

}  // namespace
}  // namespace gatehouse::sidecar
