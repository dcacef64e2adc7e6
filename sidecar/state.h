// State: what the sidecar serves from — the current policy and a view of
// the store (StoreView, store_view.h: the directory and tokens, kept current
// by the store's change feed, failing closed while the store is gone) — and
// the background thread that reloads the policy and sweeps expired tokens.
//
// Expiry is checked against the Clock on every Verify, so an expired token
// is refused at once, before the sweeper deletes it.
//
// Policy reload. A background thread polls the policy files' mtimes (every
// policy_poll_ms) and RequestReload() (SIGHUP) wakes it; it loads and compiles
// the new policy beside the old one and swaps a shared_ptr atomically.
// Requests hold the shared_ptr they started with, so in-flight requests finish
// on their policy. A policy that fails to load is logged with its
// FILE:LINE:COL errors and counted; the previous one keeps serving.
//
// Sweeper. The same thread deletes expired tokens every sweep_interval_s
// through a read-write connection of its own, prunes the change feed to its
// last kFeedKeep rows, and catches up. Every poll it also has the store view
// check the store (probe, catch up, reopen a replaced file) and load a new
// token base when the overlay has grown (off the request path).
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gatehouse/authorizer.h"
#include "gatehouse/clock.h"
#include "gatehouse/policy.h"
#include "gatehouse/status.h"
#include "gatehouse/store.h"
#include "sidecar/metrics.h"
#include "sidecar/store_view.h"

namespace gatehouse::sidecar {

// Writes "2026-01-01T00:00:00.000Z gatehoused: LINE" to stderr.
void LogToStderr(std::string_view line);

struct StateOptions {
  // The store: a SQLite path or a PostgreSQL locator. Default ./gatehouse.db.
  std::string store_path = "./gatehouse.db";
  // A store followed by subscription (PostgreSQL): the staleness lease, the
  // heartbeat (0: a quarter of the lease) and LISTEN on or off
  // (StoreViewOptions).
  int max_staleness_ms = 1000;
  int feed_heartbeat_ms = 0;
  bool feed_notify = true;
  // A policy file or folder. Empty: DefaultPolicyPath().
  std::string policy_path;
  // Invariant files or folders checked on every load besides the policy
  // folder's invariants/ (--invariants); watched like the policy. Default: none.
  std::vector<std::string> invariants;
  // The source of "now" for token expiry. Default: the real clock.
  const Clock* clock = &RealClock::Instance();
  // How often the background thread checks the policy files for changes, in
  // milliseconds; 0 turns file watching off (SIGHUP still reloads). Default 500.
  int policy_poll_ms = 500;
  // How often expired tokens are deleted, in seconds; 0 turns the sweeper
  // off. Default 60.
  int sweep_interval_s = 60;
  // How long the sweeper waits for a CLI write to finish before its sweep
  // fails (reads never wait in WAL mode). Default 2000 ms.
  int busy_timeout_ms = 2000;
};

class State {
 public:
  // The sweeper keeps the change feed's last this many rows (a sidecar that
  // fell further behind loads everything).
  static constexpr int64_t kFeedKeep = 100'000;

  // Loads the policy, opens the store and builds the first snapshot. Errors:
  // InvalidArgument with every policy error (FILE:LINE:COL: message, one per
  // line); the store's errors (FailedPrecondition when it does not exist).
  static Result<std::unique_ptr<State>> Open(const StateOptions& options, Metrics* metrics,
                                             LogFn log = LogToStderr);
  ~State();
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // The serving policy. Never null.
  PolicyPtr policy() const { return policy_.load(); }

  // A snapshot holding every change committed to the store before this call
  // (see the header comment). Errors: the store's (the caller fails closed).
  Result<SnapshotPtr> Fresh();
  // For /readyz: the store file can be read and answers a query. Also what
  // the background thread does every poll.
  Status CheckStore();

  // Loads the policy now. Returns true when a valid policy was loaded (even
  // if its revision is unchanged); false after logging the errors.
  bool ReloadPolicy();
  // Asks the background thread to reload (for SIGHUP). Async-signal-unsafe:
  // call it from a normal thread (gatehoused uses a sigwait thread).
  void RequestReload();
  // Deletes expired tokens now and rebuilds; returns how many were deleted.
  Result<int64_t> SweepNow();

  // Starts / stops the background thread (policy watcher and sweeper).
  void Start();
  void Stop();

  // /readyz: the policy is loaded and the store answered the last time it was asked.
  bool store_ok() const { return store_->ok(); }
  const Clock& clock() const { return *options_.clock; }
  Metrics& metrics() { return *metrics_; }
  const StateOptions& options() const { return options_; }

 private:
  State(const StateOptions& options, Metrics* metrics, LogFn log);
  void BackgroundLoop();
  std::vector<std::string> PolicyFingerprint() const;

  StateOptions options_;
  Metrics* metrics_;
  LogFn log_;

  SharedCell<CompiledPolicy> policy_;
  std::unique_ptr<StoreView> store_;

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  bool reload_requested_ = false;
  std::thread bg_;
  std::mutex reload_mu_;  // one policy load at a time
  std::vector<std::string> fingerprint_;
};

}  // namespace gatehouse::sidecar
