// Sweeper: deletes expired tokens from the store and prunes its change
// feed, every interval_s on a thread of its own (and on SweepNow()).
//
// Each sweep opens a read-write connection of its own (OpenStore; a
// read-only store still serves, only the sweep fails), deletes the tokens
// expired at the Clock's now (Store::DeleteExpiredTokens), prunes the feed
// to its last feed_keep rows (Store::PruneChanges; best effort: a failure
// only keeps more rows), and, when it deleted tokens, calls `after_delete`
// (the store view catches up, so the deleted tokens leave memory now).
// Expiry is also checked on every Verify: an expired token is refused at
// once, before it is swept.
//
// One sidecar at a time: on PostgreSQL both deletions take a
// transaction-scoped advisory lock (pg_try_advisory_xact_lock); a sweeper
// that finds it taken deletes nothing and reports 0. On SQLite the
// single writer serializes sweeps; one that waits past busy_timeout_ms
// fails (and is retried next interval).
//
// Thread safety: every public method may be called from any thread; sweeps
// run one at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "gatehouse/clock.h"
#include "gatehouse/status.h"
#include "sidecar/log.h"
#include "sidecar/metrics.h"
#include "sidecar/store_view.h"

namespace gatehouse::sidecar {

// The feed keeps its last this many rows by default (a sidecar further
// behind loads everything, store_view.h).
inline constexpr int64_t kFeedKeep = 100'000;

struct SweeperOptions {
  std::string store_path;  // a SQLite path or a PostgreSQL locator (OpenStore)
  const Clock* clock = &RealClock::Instance();
  // Seconds between sweeps on the thread; 0: no thread (SweepNow still works).
  int interval_s = 60;
  // How long a sweep waits for another writer before it fails.
  int busy_timeout_ms = 2000;
  // How many of the feed's last rows a sweep keeps (tests: fewer).
  int64_t feed_keep = kFeedKeep;
};

class Sweeper {
 public:
  // `after_delete` (may be empty): called after a sweep that deleted tokens;
  // its error is the sweep's.
  Sweeper(SweeperOptions options, Metrics* metrics, LogFn log,
          std::function<Status()> after_delete);
  ~Sweeper();
  Sweeper(const Sweeper&) = delete;
  Sweeper& operator=(const Sweeper&) = delete;

  // Sweeps now; returns how many tokens it deleted (0 while another
  // sidecar sweeps the same PostgreSQL store). Errors: the store's (counted
  // in gatehouse_sweep_failures_total).
  Result<int64_t> SweepNow();

  // Starts / stops the thread (no thread when interval_s is 0). Stop wakes
  // it at once and cuts a sweep in progress short: the sweep's connection
  // polls a stop eventfd beside its socket (StoreOptions::cancel_fd), so a
  // PostgreSQL that never answers costs Stop nothing, not the connect's
  // deadline. From Stop until the next Start, SweepNow fails at once on
  // PostgreSQL ("stopped while connecting").
  void Start();
  void Stop();

 private:
  void Loop();

  const SweeperOptions options_;
  Metrics* const metrics_;
  const LogFn log_;
  const std::function<Status()> after_delete_;

  std::mutex sweep_mu_;  // one sweep at a time
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int stop_fd_ = -1;  // an eventfd, written by Stop, drained by Start
  std::thread thread_;
};

}  // namespace gatehouse::sidecar
