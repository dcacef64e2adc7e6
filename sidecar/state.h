// State: what the sidecar serves from — the current policy, and a snapshot
// of the store (directory and token index) kept coherent with the file.
//
// Freshness. A token revoked, deleted or expired through the CLI (another
// process) must be refused by the very next request. Every request calls
// Fresh(), which reads the store's StoreStamp (gatehouse/store.h: one
// pread() of the WAL-index header, no SQLite call, no lock) and compares it
// with the stamp read just before the serving snapshot was confirmed: equal
// means nothing has committed since, so the snapshot is current. Any
// difference (a commit, a checkpoint restarting the WAL, a torn read of a
// header being written) takes the slow path: under the refresh mutex, read
// the stamp again, then the maintenance connection's `PRAGMA data_version`
// (it changes when another connection has committed) and the store's
// ContentGeneration (it changes when the commit touched anything but the
// audit log), and rebuild the directory and token index only if both
// changed: a denied or read-only CLI command appends audit records only. Because a commit's header
// write is its last step, a request that arrives after a CLI command has
// returned always sees the new stamp. Without a stamp (not WAL, unusual VFS)
// every request takes the slow path.
//
// (SQLite's own per-request check, `PRAGMA data_version` on a connection per
// thread, was measured first: it costs a read transaction with file locks and
// a process-wide SQLite mutex, and capped throughput ~30% lower.)
//
// Fail closed. The background thread probes the store file every poll
// (ProbeStoreFile: there, readable by this process, a SQLite file). While it
// is not, every request is refused (an in-memory snapshot of a store that is
// gone could no longer see a revocation) and /readyz answers 503. When it
// is back, every connection is reopened and the snapshot rebuilt from
// scratch (the file may have been restored under the same inode).
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
// through a read-write connection of its own, then rebuilds. (The
// maintenance connection that rebuilds is read-only.) It also
// notices when the store file has been replaced (a new inode at the path,
// e.g. a restore by rename) and reopens everything.
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
#include <vector>

#include "gatehouse/authorizer.h"
#include "gatehouse/clock.h"
#include "gatehouse/policy.h"
#include "gatehouse/status.h"
#include "gatehouse/store.h"
#include "gatehouse/token_index.h"
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

// Operational log lines (stderr by default): reloads, failures, sweeps.
using LogFn = std::function<void(std::string_view line)>;
// Writes "2026-01-01T00:00:00.000Z gatehoused: LINE" to stderr.
void LogToStderr(std::string_view line);

struct StateOptions {
  // The SQLite store. Default ./gatehouse.db.
  std::string store_path = "./gatehouse.db";
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

// An immutable view of the store, shared by the requests that use it.
struct Snapshot {
  std::shared_ptr<const Directory> directory;
  std::shared_ptr<const TokenIndex> tokens;
  int64_t maintenance_version = -1;  // the maintenance connection's data_version before the build
  int64_t generation = -1;           // the store's ContentGeneration before the build
  int64_t built_at = 0;              // clock seconds
};
using SnapshotPtr = std::shared_ptr<const Snapshot>;

class State {
 public:
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
  bool store_ok() const { return store_ok_.load(std::memory_order_relaxed); }
  const Clock& clock() const { return *options_.clock; }
  Metrics& metrics() { return *metrics_; }
  const StateOptions& options() const { return options_; }

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

  State(const StateOptions& options, Metrics* metrics, LogFn log);
  Status OpenMaintenance();
  // A view without a stamp around the current snapshot: the next request
  // takes the slow path.
  void ForgetStamp();
  Result<SnapshotPtr> SlowPath();
  // With refresh_mu_ held: rebuild unless the snapshot is current (or always, if `force`).
  Status RefreshLocked(bool force);
  void BackgroundLoop();
  std::vector<std::string> PolicyFingerprint() const;

  StateOptions options_;
  Metrics* metrics_;
  LogFn log_;

  SharedCell<CompiledPolicy> policy_;
  SharedCell<View> view_;
  std::atomic<bool> store_ok_{true};
  // Set while ProbeStoreFile fails (checked by the background loop every poll
  // and by /readyz): every request is then refused.
  std::atomic<bool> store_unavailable_{false};

  std::mutex refresh_mu_;                     // guards maintenance_, watch_, store_inode_ and rebuilds
  std::unique_ptr<Store> maintenance_;        // read-only: data_version and rebuilds
  std::shared_ptr<const StoreWatch> watch_;   // null: no stamp, always the slow path
  ino_t store_inode_ = 0;                     // of the file the connections opened

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  bool reload_requested_ = false;
  std::thread bg_;
  std::mutex reload_mu_;  // one policy load at a time
  std::vector<std::string> fingerprint_;
};

}  // namespace gatehouse::sidecar
