// StoreView: the sidecar's view of the store — the directory and the tokens
// it decides from — kept coherent with the store by following its change
// feed (Store::ReadChangesSince), never by re-reading everything on the
// request path.
//
// Freshness. A token revoked, deleted or expired through the CLI (another
// process) must be refused by the very next request. Every request calls
// Fresh(), which reads the store's StoreStamp (Store::Watch(); SQLite's is
// the WAL-index header read through a shared mapping of the -shm file: no
// system call, no SQLite call, no lock) and compares it with the stamp read
// just before the serving snapshot was confirmed: equal means nothing has
// committed since, so the snapshot is current. Any
// difference (a commit, a checkpoint restarting the WAL, a torn read of a
// header being written) takes the slow path: under the refresh mutex, read
// the stamp again, then the maintenance connection's `PRAGMA data_version`
// (it changes when another connection has committed); when it moved, catch
// up: read the changes after the snapshot's feed number in one snapshot of
// the store (an audit-only commit — a denied or read-only CLI command — has
// none) and publish a new snapshot with them applied: the token overlay
// extended, sharing all but the changed keys' paths with the previous one
// (TokenView::Apply, O(changes × log overlay)), and, when directory
// rows changed, only the changed organizations' parts of the directory read
// again (Directory::Reload; the others are shared). Because a commit's header write is its
// last step, a request that arrives after a CLI command has returned always
// sees the new stamp. Without a stamp (not WAL, unusual VFS) every request
// takes the slow path.
//
// (SQLite's own per-request check, `PRAGMA data_version` on a connection per
// thread, was measured first: it costs a read transaction with file locks and
// a process-wide SQLite mutex, and capped throughput ~30% lower.)
//
// A full load (directory, every active token, the feed head, in one read
// transaction) happens at open, when the store is reopened, and when the feed
// cannot say what changed (pruned past the snapshot, or a backlog of more
// than kMaxCatchUp changes) — then on the thread that needs it, because a
// revocation must never be served after it is committed. Compaction — a new
// base when the overlay has grown (TokenView::CompactionDue) — runs on the
// caller of Compact() (the background thread) through a connection of its
// own, so requests keep being served, and caught up, meanwhile.
//
// Fail closed. Check() (the background thread, every poll, and /readyz)
// asks the store whether what it opened is still there (Store::Replaced:
// for SQLite, the file probed — there, readable by this process, a SQLite
// file — and its inode compared). While it is not, every request is refused
// (an in-memory snapshot of a store that is gone could no longer see a
// revocation). When it is back, or its name holds another store (a restore
// by rename), every connection is reopened and everything loaded again.
//
// A store without a per-request stamp (Store::Watch() is null: PostgreSQL,
// on another host) is followed by subscription instead, on a feed thread
// with a connection of its own: Subscribe (LISTEN) first, then load
// everything, then loop on WaitForChange(heartbeat) and catch up after every
// wake-up, notified or not. Each catch-up that succeeds confirms the view as
// of the time it was sent. The staleness lease: a request is served only
// while the last confirmation is younger than max_staleness_ms; otherwise it
// is refused (rule store-unavailable) and /readyz is 503 until a catch-up
// succeeds again. One atomic load and a clock read per request; the feed
// thread's blocked connect or query never delays the refusal. Reconnects
// back off (50 ms doubling to 1 s) and catch up from the applied number;
// every connect and query has a deadline (the store's), and Stop() ends any
// of them, and the wait for a notification, at once (an eventfd the view's
// connections poll beside their sockets: StoreOptions::cancel_fd). A
// full load (pruned feed, epoch changed, big backlog) runs on the feed
// thread while the old view keeps serving within the lease.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "gatehouse/authorizer.h"
#include "gatehouse/clock.h"
#include "gatehouse/status.h"
#include "gatehouse/store.h"
#include "gatehouse/token_view.h"
#include "sidecar/log.h"
#include "sidecar/metrics.h"

namespace gatehouse::sidecar {

// A shared_ptr that readers copy under a short mutex and writers replace.
// (libstdc++ 12 implements std::atomic<std::shared_ptr> with a spin lock on
// a bit of the pointer: under load on two cores a reader preempted while
// holding it makes every other reader spin out its time slice. A mutex
// holder that is preempted makes the others sleep instead.)
template <typename T>
class SharedCell {
 public:
  std::shared_ptr<const T> load() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ptr_;
  }
  // Returns the previous value (released by the caller, outside the lock).
  std::shared_ptr<const T> exchange(std::shared_ptr<const T> p) {
    std::lock_guard<std::mutex> lock(mu_);
    ptr_.swap(p);
    return p;
  }
  void store(std::shared_ptr<const T> p) { exchange(std::move(p)); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const T> ptr_;
};

// An immutable view of the store, shared by the requests that use it.
struct Snapshot {
  std::shared_ptr<const Directory> directory;
  std::shared_ptr<const TokenView> tokens;
  int64_t head = 0;                  // the change feed number it holds everything up to
  int64_t epoch = 0;                 // the feed's epoch at the last full load
  int64_t maintenance_version = -1;  // the maintenance connection's data_version it was confirmed at
  int64_t loaded_at = 0;             // clock seconds of the last full load
};
using SnapshotPtr = std::shared_ptr<const Snapshot>;

struct StoreViewOptions {
  std::string store_path;  // a SQLite path or a PostgreSQL locator (OpenStore)
  const Clock* clock = &RealClock::Instance();
  int busy_timeout_ms = 2000;
  // Subscription (a store without a per-request stamp): the lease, the
  // heartbeat (0: a quarter of the lease), and whether to LISTEN at all
  // (off for a pooler in transaction mode, which breaks LISTEN: then every
  // catch-up waits for the heartbeat).
  int max_staleness_ms = 1000;
  int feed_heartbeat_ms = 0;
  bool feed_notify = true;
};

class StoreView {
 public:
  // At most this many feed rows are applied one by one; more (a huge API
  // user deletion, a long-stopped sidecar) load everything instead.
  static constexpr int64_t kMaxCatchUp = 200'000;

  // Opens the store read-only and loads everything. Errors: the store's.
  static Result<std::unique_ptr<StoreView>> Open(const StoreViewOptions& options, Metrics* metrics,
                                                 LogFn log);
  ~StoreView();
  StoreView(const StoreView&) = delete;
  StoreView& operator=(const StoreView&) = delete;

  // Starts / stops the feed thread (subscription only; no-ops otherwise).
  void Start();
  void Stop();
  // Whether this view follows its store by subscription and a lease.
  bool subscribed() const { return subscribed_; }

  // A snapshot holding every change committed to the store before this call.
  // Errors: the store's (the caller fails closed).
  Result<SnapshotPtr> Fresh();
  // Probes the store file and catches up (reopening everything when the file
  // came back or was replaced). For the background loop and /readyz.
  Status Check();
  // Catches up now (after this process wrote, e.g. the sweeper).
  Status CatchUp();
  // Loads a new token base when the overlay has grown past
  // TokenView::CompactionDue(); returns whether it did. Slow (a full token
  // scan): call it from the background thread, never a request.
  Result<bool> CompactIfDue();

  // The store answered the last time it was asked.
  bool ok() const { return store_ok_.load(std::memory_order_relaxed); }
  // The store failed its last probe, or (subscription) the lease ran out;
  // Check() or the feed thread logged it.
  bool unavailable() const;

 private:
  // What Fresh() compares: the snapshot and the store's stamp read just
  // before the snapshot was last confirmed current. The view holds the watch
  // it was read with, so a request never reads a watch that was replaced.
  struct View {
    SnapshotPtr snapshot;
    std::shared_ptr<const StoreWatch> watch;
    StoreStamp stamp{};
    bool has_stamp = false;
    // True when the snapshot is current: nothing has committed since `stamp`.
    bool Current() const;
  };

  StoreView(const StoreViewOptions& options, Metrics* metrics, LogFn log);
  Result<std::unique_ptr<Store>> OpenReader() const;
  Status OpenMaintenance();
  // A view without a stamp around the current snapshot: the next request
  // takes the slow path.
  void ForgetStamp();
  Result<SnapshotPtr> SlowPath();
  // With refresh_mu_ held, on the maintenance connection (reopened when it
  // failed): catch up unless the snapshot is current; load everything when
  // `full` (or when the feed cannot tell).
  Status RefreshLocked(bool full);
  // With refresh_mu_ held: catch up through `store`, or load everything,
  // and publish the result in `view` (which may carry a stamp). `version`:
  // the store's DataVersion() when the caller read one (equal to the
  // snapshot's: nothing to read), -1 otherwise.
  Status Refresh(Store& store, bool full, int64_t version, std::shared_ptr<View> view);
  // Subscription: the lease's verdict now.
  Status Lease() const;
  void FeedLoop();
  // Opens the feed connection and subscribes (unless notify is off).
  Status OpenFeed();
  // Sleeps up to `ms` unless Stop() is called; false when stopping.
  bool Pause(int ms);
  // What LoadAll reads besides every active token and the feed head.
  struct LoadScope {
    // Tokens expected (0: unknown): the index is sized for them up front, so
    // that it is not regrown, and held twice, while it fills.
    size_t expected_tokens = 0;
    // Whether to read the directory too (a compaction keeps the one the feed
    // keeps current, so it does not).
    bool directory = true;
  };
  // Reads (the directory,) every active token and the feed head in one snapshot.
  Result<std::shared_ptr<Snapshot>> LoadAll(Store& store, LoadScope scope) const;
  void Publish(SnapshotPtr snapshot, std::shared_ptr<View> view);

  const StoreViewOptions options_;
  Metrics* const metrics_;
  const LogFn log_;

  SharedCell<View> view_;
  std::atomic<bool> store_ok_{true};
  // Set while Store::Replaced() fails: every request is then refused.
  std::atomic<bool> store_unavailable_{false};

  std::mutex refresh_mu_;                    // guards maintenance_, watch_, publishing
  std::unique_ptr<Store> maintenance_;       // read-only: data_version, catch-ups, full loads
  std::shared_ptr<const StoreWatch> watch_;  // null: no stamp (subscription)
  std::mutex compact_mu_;                    // one compaction at a time

  // Subscription.
  bool subscribed_ = false;
  int heartbeat_ms_ = 250;
  std::atomic<int64_t> confirmed_at_ms_{0};  // Clock::MonotonicMillis of the last confirmed catch-up
  std::unique_ptr<Store> feed_;              // the feed thread's own connection
  std::mutex feed_mu_;
  std::condition_variable feed_cv_;
  bool feed_stop_ = false;
  std::thread feed_thread_;
  // Readable from Stop() to Start(): ends the connections' network waits
  // (StoreOptions::cancel_fd). -1 when no eventfd could be made.
  int stop_fd_ = -1;
};

}  // namespace gatehouse::sidecar
