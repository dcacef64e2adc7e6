#include "sidecar/state.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "sidecar/wire.h"

namespace gatehouse::sidecar {
namespace {

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
  {
    std::lock_guard<std::mutex> lock(s->refresh_mu_);
    GATEHOUSE_RETURN_IF_ERROR(s->OpenMaintenance());
    GATEHOUSE_RETURN_IF_ERROR(s->RefreshLocked(/*force=*/true));
  }
  return s;
}

State::~State() { Stop(); }

Status State::OpenMaintenance() {
  // Read-only: the sidecar never writes through it (the sweeper opens its
  // own read-write connection), so a store the sidecar may only read works.
  StoreOptions so;
  so.busy_timeout_ms = options_.busy_timeout_ms;
  so.read_only = true;
  auto store = OpenSqliteStore(options_.store_path, so);
  if (!store.ok()) return store.status();
  maintenance_ = std::move(store).value();
  struct stat st;
  store_inode_ = ::stat(options_.store_path.c_str(), &st) == 0 ? st.st_ino : 0;
  // A first query makes SQLite create and map the -shm file.
  auto version = maintenance_->DataVersion();
  if (!version.ok()) return version.status();
  // Requests holding a view of the old watch keep it open until they finish.
  watch_ = StoreWatch::Open(options_.store_path);
  return Status::Ok();
}

void State::ForgetStamp() {
  auto view = std::make_shared<View>();
  const std::shared_ptr<const View> current = view_.load();
  if (current) view->snapshot = current->snapshot;
  view_.store(std::move(view));
}

Status State::RefreshLocked(bool force) {
  const auto start = std::chrono::steady_clock::now();
  auto fail = [&](Status s) {
    store_ok_.store(false, std::memory_order_relaxed);
    metrics_->CountStoreRefresh(false, std::chrono::steady_clock::now() - start);
    maintenance_.reset();  // reopen on the next attempt (the file may have been replaced)
    ForgetStamp();         // the next request retries
    return s;
  };
  if (!maintenance_) {
    Status s = OpenMaintenance();
    if (!s.ok()) return fail(s);
    force = true;  // a new connection's data_version says nothing about the old one's
  }
  // The stamp first, then data_version, then the build's reads: a stamp
  // equal to this one later means no commit since, so none the build missed.
  auto view = std::make_shared<View>();
  view->watch = watch_;
  view->has_stamp = watch_ && watch_->Read(&view->stamp);
  auto version = maintenance_->DataVersion();
  if (!version.ok()) return fail(version.status());
  const std::shared_ptr<const View> current_view = view_.load();
  SnapshotPtr current = current_view ? current_view->snapshot : nullptr;
  if (!force && current && current->maintenance_version == *version) {
    view->snapshot = std::move(current);
    view_.store(std::move(view));
    store_ok_.store(true, std::memory_order_relaxed);
    return Status::Ok();
  }
  // A commit. Only audit records (a denied or read-only CLI command)? Then
  // the snapshot is still current: keep it, without a rebuild.
  auto generation = maintenance_->ContentGeneration();
  if (!generation.ok()) return fail(generation.status());
  if (!force && current && current->generation == *generation) {
    auto same = std::make_shared<Snapshot>(*current);
    same->maintenance_version = *version;
    view->snapshot = std::move(same);
    view_.store(std::move(view));
    store_ok_.store(true, std::memory_order_relaxed);
    return Status::Ok();
  }
  auto snap = std::make_shared<Snapshot>();
  snap->maintenance_version = *version;
  snap->generation = *generation;
  snap->built_at = options_.clock->NowSeconds();
  auto dir = Directory::Load(*maintenance_);
  if (!dir.ok()) return fail(dir.status());
  snap->directory = std::move(dir).value();
  TokenIndexBuilder builder;
  if (current && current->tokens) builder.Reserve(current->tokens->size());
  Status scan = maintenance_->ScanActiveTokens(snap->built_at, [&builder](const TokenRecord& t) {
    builder.Add(t);
    return Status::Ok();
  });
  if (!scan.ok()) return fail(scan);
  snap->tokens = builder.Build();
  metrics_->SetTokenIndexSize(static_cast<int64_t>(snap->tokens->size()));
  metrics_->SetDirectorySize(static_cast<int64_t>(snap->directory->user_count()),
                             static_cast<int64_t>(snap->directory->workspace_count()));
  view->snapshot = std::move(snap);
  view_.store(std::move(view));
  store_ok_.store(true, std::memory_order_relaxed);
  metrics_->CountStoreRefresh(true, std::chrono::steady_clock::now() - start);
  return Status::Ok();
}

bool State::View::Current() const {
  if (!has_stamp || !snapshot) return false;
  StoreStamp now;
  return watch->Read(&now) && now == stamp;
}

Result<SnapshotPtr> State::Fresh() {
  // Fail closed: an in-memory snapshot of a store that cannot be read must
  // not keep allowing (it could no longer see a revocation).
  if (store_unavailable_.load(std::memory_order_relaxed))
    return Status::FailedPrecondition("store " + options_.store_path + " is unavailable");
  const std::shared_ptr<const View> view = view_.load();
  if (view && view->Current()) return view->snapshot;
  return SlowPath();
}

Result<SnapshotPtr> State::SlowPath() {
  std::lock_guard<std::mutex> lock(refresh_mu_);
  // After a commit every busy thread gets here; the first one refreshed.
  const std::shared_ptr<const View> view = view_.load();
  if (view && view->Current()) return view->snapshot;
  metrics_->CountSlowPath();
  GATEHOUSE_RETURN_IF_ERROR(RefreshLocked(/*force=*/false));
  return view_.load()->snapshot;
}

Status State::CheckStore() {
  std::lock_guard<std::mutex> lock(refresh_mu_);
  const bool was_unavailable = store_unavailable_.load(std::memory_order_relaxed);
  Status probe = ProbeStoreFile(options_.store_path);
  if (!probe.ok()) {
    if (!was_unavailable) log_(probe.message() + ": refusing every check until it is back");
    store_unavailable_.store(true, std::memory_order_relaxed);
    store_ok_.store(false, std::memory_order_relaxed);
    ForgetStamp();  // so nothing serves the old snapshot once the flag is cleared
    return probe;
  }
  struct stat st;
  const bool replaced = store_inode_ != 0 && ::stat(options_.store_path.c_str(), &st) == 0 &&
                        st.st_ino != store_inode_;
  if (was_unavailable || replaced) {
    // Its content may be another file's now (a restore, even in place):
    // reopen every connection and rebuild from scratch.
    log_("store " + options_.store_path + (replaced ? " was replaced" : " is back") +
         "; reopening it");
    maintenance_.reset();
  }
  Status refreshed = RefreshLocked(/*force=*/false);  // a real query, whatever the stamp says
  // Cleared only after a rebuild from the file as it is now.
  if (refreshed.ok()) store_unavailable_.store(false, std::memory_order_relaxed);
  return refreshed;
}

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
  auto writer = OpenSqliteStore(options_.store_path, so);
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
  writer->reset();
  // Drop the deleted tokens from memory now.
  if (*n > 0) {
    std::lock_guard<std::mutex> lock(refresh_mu_);
    GATEHOUSE_RETURN_IF_ERROR(RefreshLocked(/*force=*/true));
  }
  return n;
}

std::vector<std::string> State::PolicyFingerprint() const {
  // Every file under the policy path with its size, mtime (ns) and inode,
  // sorted: any edit, rename-over, addition or removal changes it.
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  auto add = [&out](const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      out.push_back(path + " missing");
      return;
    }
    out.push_back(path + " " + std::to_string(st.st_size) + " " +
                  std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) +
                  " " + std::to_string(st.st_ino));
  };
  std::vector<std::string> roots = options_.invariants;
  roots.insert(roots.begin(), options_.policy_path);
  for (const std::string& root : roots) {
    std::error_code ec;
    if (fs::is_directory(root, ec)) {
      add(root);
      for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
           !ec && it != end; it.increment(ec)) {
        add(it->path().string());
      }
    } else {
      add(root);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void State::Start() {
  std::lock_guard<std::mutex> lock(bg_mu_);
  if (bg_.joinable()) return;
  bg_stop_ = false;
  bg_ = std::thread([this] { BackgroundLoop(); });
}

void State::Stop() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_.joinable()) bg_.join();
}

void State::BackgroundLoop() {
  using Clock = std::chrono::steady_clock;
  const auto poll =
      std::chrono::milliseconds(options_.policy_poll_ms > 0 ? options_.policy_poll_ms : 1000);
  const auto sweep_every = std::chrono::seconds(options_.sweep_interval_s);
  auto next_sweep = Clock::now() + sweep_every;
  bool sweep_failed_logged = false;
  bool read_failed_logged = false;
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
        for (int i = 0; i < 10; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          std::vector<std::string> again = PolicyFingerprint();
          if (again == now) break;
          now = std::move(again);
        }
        ReloadPolicy();
      }
    }

    // Fail closed while the store cannot be read; reopen it when it is back
    // or has been replaced under its path (e.g. restored from a backup).
    // (CheckStore logs the file going and coming back; this, a failing read.)
    Status store = CheckStore();
    const bool read_failed = !store.ok() && !store_unavailable_.load(std::memory_order_relaxed);
    if (read_failed && !read_failed_logged) log_("reading the store failed: " + store.ToString());
    read_failed_logged = read_failed;

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
