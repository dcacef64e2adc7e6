#include "sidecar/state.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <mutex>

namespace gatehouse::sidecar {
namespace {

// Hands the pages of freed memory back to the kernel, every arena's (glibc;
// elsewhere nothing). Off the request path: it walks the arenas.
void ReturnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// Fixed allocator thresholds instead of glibc's sliding ones. By default
// freeing a large mmapped block (a token base's tables are tens of MiB)
// raises the mmap threshold to its size and the trim threshold to twice
// that (up to 32 and 64 MiB), for the life of the process: the next base
// is then allocated inside an arena instead of mapped, and when it is freed
// the arena keeps it, since a thread arena's free top is given back only
// past the trim threshold and malloc_trim never touches it. Measured at
// 1,000,000 tokens: 148 -> 194-200 MiB after two compactions, 56 MiB of it
// free at the top of one thread arena. Fixed: blocks of 1 MiB and more are
// mapped and unmapped on free, and an arena gives back a free top past
// 2 MiB (146.2 -> 146.6 MiB after the same compactions).
void ConfigureAllocator() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 2 << 20);
  });
#endif
}

}  // namespace

State::State(const StateOptions& options, Metrics* metrics, LogFn log)
    : options_(options), metrics_(metrics), log_(std::move(log)) {
  if (options_.policy_path.empty()) options_.policy_path = DefaultPolicyPath();
  if (options_.clock == nullptr) options_.clock = &RealClock::Instance();
}

Result<std::unique_ptr<State>> State::Open(const StateOptions& options, Metrics* metrics,
                                           LogFn log) {
  ConfigureAllocator();  // before the first token base is loaded
  std::unique_ptr<State> s(new State(options, metrics, log ? std::move(log) : LogFn(Log)));
  const StateOptions& o = s->options_;
  auto policies = PolicyHolder::Open(o.policy_path, o.invariants, metrics, s->log_);
  if (!policies.ok()) return policies.status();
  s->policies_ = std::move(policies).value();
  StoreViewOptions so;
  so.store_path = o.store_path;
  so.clock = o.clock;
  so.busy_timeout_ms = o.busy_timeout_ms;
  so.max_staleness_ms = o.max_staleness_ms;
  so.feed_heartbeat_ms = o.feed_heartbeat_ms;
  so.feed_notify = o.feed_notify;
  auto store = StoreView::Open(so, metrics, s->log_);
  if (!store.ok()) return store.status();
  s->store_ = std::move(store).value();
  SweeperOptions sw;
  sw.store_path = o.store_path;
  sw.clock = o.clock;
  sw.interval_s = o.sweep_interval_s;
  sw.busy_timeout_ms = o.busy_timeout_ms;
  // Drop the deleted tokens from memory now.
  StoreView* view = s->store_.get();
  s->sweeper_ = std::make_unique<Sweeper>(sw, metrics, s->log_, [view] { return view->CatchUp(); });
  return s;
}

State::~State() { Stop(); }

void State::RequestReload() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    reload_requested_ = true;
  }
  bg_cv_.notify_all();
}

void State::Start() {
  std::lock_guard<std::mutex> lock(bg_mu_);
  if (bg_.joinable()) return;
  bg_stop_ = false;
  bg_ = std::thread([this] { BackgroundLoop(); });
  store_->Start();
  sweeper_->Start();
}

void State::Stop() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (sweeper_) sweeper_->Stop();  // before the view it catches up
  if (bg_.joinable()) bg_.join();
  if (store_) store_->Stop();
}

void State::BackgroundLoop() {
  const auto poll =
      std::chrono::milliseconds(options_.policy_poll_ms > 0 ? options_.policy_poll_ms : 1000);
  bool read_failed_logged = false;
  int trims_left = 0;
  std::unique_lock<std::mutex> lock(bg_mu_);
  while (!bg_stop_) {
    bg_cv_.wait_for(lock, poll, [this] { return bg_stop_ || reload_requested_; });
    if (bg_stop_) break;
    const bool requested = reload_requested_;
    reload_requested_ = false;
    lock.unlock();

    if (requested) {
      log_(LogLevel::kInfo, "SIGHUP: reloading the policy");
      policies_->Reload();
    } else if (options_.policy_poll_ms > 0) {
      policies_->ReloadIfChanged();
    }

    // Fail closed while the store cannot be read; reopen it when it is back
    // or has been replaced under its path (e.g. restored from a backup).
    // (Check logs the file going and coming back; this, a failing read.)
    Status store = store_->Check();
    const bool read_failed = !store.ok() && !store_->unavailable();
    if (read_failed && !read_failed_logged)
      log_(LogLevel::kError, "reading the store failed: " + store.ToString());
    read_failed_logged = read_failed;

    // A new token base when the overlay has grown, off the request path.
    if (store.ok()) {
      auto compacted = store_->CompactIfDue();
      if (!compacted.ok())
        log_(LogLevel::kWarn, "loading a new token base failed: " + compacted.status().ToString());
      // The old base (a hundred MiB at 1,000,000 tokens) was freed in this
      // thread's arena, where glibc keeps it: without a trim the RSS stays
      // at two bases after every compaction (measured: 148 -> 274-309 MiB).
      // Again on the next ticks: a request may have held the old base until
      // just after this one.
      if (compacted.ok() && *compacted) trims_left = 3;
      if (trims_left > 0) {
        --trims_left;
        ReturnFreedMemory();
      }
    }
    lock.lock();
  }
}

}  // namespace gatehouse::sidecar
