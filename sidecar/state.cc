#include "sidecar/state.h"

#include <sys/stat.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "sidecar/policy_watch.h"
#include "sidecar/wire.h"

namespace gatehouse::sidecar {
namespace {

// Hands the pages of freed memory back to the kernel, every arena's (glibc;
// elsewhere nothing). Off the request path: it walks the arenas.
void ReturnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string JoinErrors(const std::vector<PolicyError>& errors) {
  std::string out;
  for (const PolicyError& e : errors) {
    if (!out.empty()) out += '\n';
    out += e.ToString();
  }
  return out;
}

}  // namespace

void LogToStderr(std::string_view line) {
  std::string out = FormatTimeMs(WallMs());
  out += " gatehoused: ";
  out.append(line);
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);
  std::fflush(stderr);
}

State::State(const StateOptions& options, Metrics* metrics, LogFn log)
    : options_(options), metrics_(metrics), log_(std::move(log)) {
  if (options_.policy_path.empty()) options_.policy_path = DefaultPolicyPath();
  if (options_.clock == nullptr) options_.clock = &RealClock::Instance();
}

Result<std::unique_ptr<State>> State::Open(const StateOptions& options, Metrics* metrics,
                                           LogFn log) {
  std::unique_ptr<State> s(new State(options, metrics, log ? std::move(log) : LogFn(LogToStderr)));
  PolicyLoad load = LoadPolicy(s->options_.policy_path, LoadOptions{s->options_.invariants});
  for (const PolicyError& w : load.warnings) s->log_(w.ToString());
  if (!load.ok()) {
    return Status::InvalidArgument("policy " + s->options_.policy_path + " does not load:\n" +
                                   JoinErrors(load.errors));
  }
  s->fingerprint_ = s->PolicyFingerprint();
  s->policy_.store(load.policy);
  s->metrics_->SetPolicy(load.policy->name(), load.policy->revision());
  StoreViewOptions so;
  so.store_path = s->options_.store_path;
  so.clock = s->options_.clock;
  so.busy_timeout_ms = s->options_.busy_timeout_ms;
  so.max_staleness_ms = s->options_.max_staleness_ms;
  so.feed_heartbeat_ms = s->options_.feed_heartbeat_ms;
  so.feed_notify = s->options_.feed_notify;
  auto store = StoreView::Open(so, s->metrics_, s->log_);
  if (!store.ok()) return store.status();
  s->store_ = std::move(store).value();
  return s;
}

State::~State() { Stop(); }

Result<SnapshotPtr> State::Fresh() { return store_->Fresh(); }

Status State::CheckStore() { return store_->Check(); }

bool State::ReloadPolicy() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  fingerprint_ = PolicyFingerprint();
  PolicyLoad load = LoadPolicy(options_.policy_path, LoadOptions{options_.invariants});
  for (const PolicyError& w : load.warnings) log_(w.ToString());
  if (!load.ok()) {
    metrics_->CountReload(false);
    log_("policy reload failed; the previous policy (" + policy()->revision() +
         ") keeps serving:\n" + JoinErrors(load.errors));
    return false;
  }
  PolicyPtr old = policy_.exchange(load.policy);
  metrics_->SetPolicy(load.policy->name(), load.policy->revision());
  metrics_->CountReload(true);
  if (old->revision() != load.policy->revision()) {
    log_("policy reloaded: " + load.policy->name() + " " + load.policy->revision() + " (was " +
         old->revision() + ")");
  } else {
    log_("policy reloaded: " + load.policy->name() + " " + load.policy->revision() +
         " (unchanged)");
  }
  return true;
}

void State::RequestReload() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    reload_requested_ = true;
  }
  bg_cv_.notify_all();
}

Result<int64_t> State::SweepNow() {
  // Its own read-write connection, opened per sweep (once a minute by
  // default): a read-only store still serves, only the sweep fails.
  StoreOptions so;
  so.busy_timeout_ms = options_.busy_timeout_ms;
  so.durable_commits = false;  // it only deletes tokens that are already refused
  auto writer = OpenStore(options_.store_path, so);
  if (!writer.ok()) {
    metrics_->CountSweepFailure();
    return writer.status();
  }
  auto n = (*writer)->DeleteExpiredTokens(options_.clock->NowSeconds());
  if (!n.ok()) {
    metrics_->CountSweepFailure();
    return n.status();
  }
  metrics_->CountSwept(*n);
  // The feed keeps its last kFeedKeep rows; a sidecar further behind loads
  // everything (store_view.h). Best effort: a failure only keeps more rows.
  auto pruned = (*writer)->PruneChanges(kFeedKeep);
  if (pruned.ok()) metrics_->CountPruned(*pruned);
  writer->reset();
  // Drop the deleted tokens from memory now.
  if (*n > 0) GATEHOUSE_RETURN_IF_ERROR(store_->CatchUp());
  return n;
}

std::vector<std::string> State::PolicyFingerprint() const {
  return PolicyFilesFingerprint(options_.policy_path, options_.invariants);
}

void State::Start() {
  std::lock_guard<std::mutex> lock(bg_mu_);
  if (bg_.joinable()) return;
  bg_stop_ = false;
  bg_ = std::thread([this] { BackgroundLoop(); });
  store_->Start();
}

void State::Stop() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_.joinable()) bg_.join();
  if (store_) store_->Stop();
}

void State::BackgroundLoop() {
  using Clock = std::chrono::steady_clock;
  const auto poll =
      std::chrono::milliseconds(options_.policy_poll_ms > 0 ? options_.policy_poll_ms : 1000);
  const auto sweep_every = std::chrono::seconds(options_.sweep_interval_s);
  auto next_sweep = Clock::now() + sweep_every;
  bool sweep_failed_logged = false;
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
      log_("SIGHUP: reloading the policy");
      ReloadPolicy();
    } else if (options_.policy_poll_ms > 0) {
      std::vector<std::string> now = PolicyFingerprint();
      bool changed;
      {
        std::lock_guard<std::mutex> rl(reload_mu_);
        changed = now != fingerprint_;
      }
      if (changed) {
        // Let a writer finish: load once the files have stopped changing.
        WaitUntilPolicyFilesSettle(options_.policy_path, options_.invariants, std::move(now));
        ReloadPolicy();
      }
    }

    // Fail closed while the store cannot be read; reopen it when it is back
    // or has been replaced under its path (e.g. restored from a backup).
    // (CheckStore logs the file going and coming back; this, a failing read.)
    Status store = CheckStore();
    const bool read_failed = !store.ok() && !store_->unavailable();
    if (read_failed && !read_failed_logged) log_("reading the store failed: " + store.ToString());
    read_failed_logged = read_failed;

    // A new token base when the overlay has grown, off the request path.
    if (store.ok()) {
      auto compacted = store_->CompactIfDue();
      if (!compacted.ok()) log_("loading a new token base failed: " + compacted.status().ToString());
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

    if (options_.sweep_interval_s > 0 && Clock::now() >= next_sweep) {
      next_sweep = Clock::now() + sweep_every;
      auto n = SweepNow();
      if (!n.ok()) {
        if (!sweep_failed_logged) log_("sweeping expired tokens failed: " + n.status().ToString());
        sweep_failed_logged = true;
      } else {
        sweep_failed_logged = false;
        if (*n > 0) log_("deleted " + std::to_string(*n) + " expired token(s)");
      }
    }
    lock.lock();
  }
}

}  // namespace gatehouse::sidecar
