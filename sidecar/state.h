// State: what the sidecar serves from, as three parts with one job each,
// and the thread that ticks the first two:
//
//  - PolicyHolder (policy_holder.h): the serving policy, reloaded beside the
//    old one and swapped; a policy that fails to load keeps the old serving.
//  - StoreView (store_view.h): the directory and tokens, kept current by the
//    store's change feed; owns freshness, the feed thread and the staleness
//    lease, and fails closed while the store is gone.
//  - Sweeper (sweeper.h): deletes expired tokens and prunes the feed, on a
//    thread of its own, one sidecar at a time.
//
// The background thread polls the policy files' mtimes (every
// policy_poll_ms; RequestReload(), for SIGHUP, wakes it), and every poll has
// the store view check the store (probe, catch up, reopen a replaced file)
// and load a new token base when the overlay has grown (off the request
// path), returning the old base's pages to the kernel.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gatehouse/clock.h"
#include "gatehouse/policy.h"
#include "gatehouse/status.h"
#include "sidecar/log.h"
#include "sidecar/metrics.h"
#include "sidecar/policy_holder.h"
#include "sidecar/store_view.h"
#include "sidecar/sweeper.h"

namespace gatehouse::sidecar {

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
  // Loads the policy, opens the store and builds the first snapshot. Errors:
  // InvalidArgument with every policy error (FILE:LINE:COL: message, one per
  // line); the store's errors (FailedPrecondition when it does not exist).
  static Result<std::unique_ptr<State>> Open(const StateOptions& options, Metrics* metrics,
                                             LogFn log = Log);
  ~State();
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // The parts.
  PolicyHolder& policies() { return *policies_; }
  StoreView& store() { return *store_; }
  Sweeper& sweeper() { return *sweeper_; }

  // What the handlers use (forwarded to the parts).
  PolicyPtr policy() const { return policies_->policy(); }
  Result<SnapshotPtr> Fresh() { return store_->Fresh(); }
  Status CheckStore() { return store_->Check(); }
  bool ReloadPolicy() { return policies_->Reload(); }
  Result<int64_t> SweepNow() { return sweeper_->SweepNow(); }
  bool store_ok() const { return store_->ok(); }
  const Clock& clock() const { return *options_.clock; }
  Metrics& metrics() { return *metrics_; }
  const StateOptions& options() const { return options_; }

  // Asks the background thread to reload (for SIGHUP). Async-signal-unsafe:
  // call it from a normal thread (gatehoused uses a sigwait thread).
  void RequestReload();

  // Starts / stops the background thread, the store view's feed thread and
  // the sweeper's thread.
  void Start();
  void Stop();

 private:
  State(const StateOptions& options, Metrics* metrics, LogFn log);
  void BackgroundLoop();

  StateOptions options_;
  Metrics* metrics_;
  LogFn log_;

  std::unique_ptr<PolicyHolder> policies_;
  std::unique_ptr<StoreView> store_;
  std::unique_ptr<Sweeper> sweeper_;

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  bool reload_requested_ = false;
  std::thread bg_;
};

}  // namespace gatehouse::sidecar
