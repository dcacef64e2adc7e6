#include "sidecar/store_view.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace gatehouse::sidecar {

StoreView::StoreView(const StoreViewOptions& options, Metrics* metrics, LogFn log)
    : options_(options), metrics_(metrics), log_(std::move(log)) {
  heartbeat_ms_ = options_.feed_heartbeat_ms > 0 ? options_.feed_heartbeat_ms
                                                 : std::max(1, options_.max_staleness_ms / 4);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

StoreView::~StoreView() {
  Stop();
  // The connections poll it: closed after them.
  feed_.reset();
  maintenance_.reset();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

Result<std::unique_ptr<StoreView>> StoreView::Open(const StoreViewOptions& options,
                                                   Metrics* metrics, LogFn log) {
  std::unique_ptr<StoreView> v(new StoreView(options, metrics, std::move(log)));
  std::lock_guard<std::mutex> lock(v->refresh_mu_);
  GATEHOUSE_RETURN_IF_ERROR(v->OpenMaintenance());
  if (!v->watch_) {
    // No per-request stamp: follow the store by subscription. Subscribe
    // before the load, so that a commit after its snapshot wakes the feed.
    v->subscribed_ = true;
    v->feed_ = std::move(v->maintenance_);
    if (options.feed_notify) GATEHOUSE_RETURN_IF_ERROR(v->feed_->Subscribe());
    GATEHOUSE_RETURN_IF_ERROR(v->Refresh(*v->feed_, /*full=*/true, -1, std::make_shared<View>()));
    // A full load of a big store takes longer than the staleness bound
    // (seconds at 1,000,000 tokens): confirmed by a catch-up sent after it
    // (a few rows), or the sidecar would start refusing until the feed
    // thread's first heartbeat.
    const int64_t sent = v->options_.clock->MonotonicMillis();
    GATEHOUSE_RETURN_IF_ERROR(v->Refresh(*v->feed_, /*full=*/false, -1, std::make_shared<View>()));
    v->confirmed_at_ms_.store(sent, std::memory_order_relaxed);
    return v;
  }
  GATEHOUSE_RETURN_IF_ERROR(v->RefreshLocked(/*full=*/true));
  return v;
}

Result<std::unique_ptr<Store>> StoreView::OpenReader() const {
  // Read-only: the sidecar never writes through it (the sweeper opens its
  // own read-write connection), so a store the sidecar may only read works.
  StoreOptions so;
  so.busy_timeout_ms = options_.busy_timeout_ms;
  so.read_only = true;
  so.cancel_fd = stop_fd_;
  return OpenStore(options_.store_path, so);
}

Status StoreView::OpenMaintenance() {
  auto store = OpenReader();
  if (!store.ok()) return store.status();
  maintenance_ = std::move(store).value();
  // Requests holding a view of the old watch keep it open until they finish.
  watch_ = maintenance_->Watch();
  return Status::Ok();
}

void StoreView::ForgetStamp() {
  auto view = std::make_shared<View>();
  const std::shared_ptr<const View> current = view_.load();
  if (current) view->snapshot = current->snapshot;
  view_.store(std::move(view));
}

Result<std::shared_ptr<Snapshot>> StoreView::LoadAll(Store& store, LoadScope scope) const {
  auto snap = std::make_shared<Snapshot>();
  snap->loaded_at = options_.clock->NowSeconds();
  std::shared_ptr<const TokenIndex> base;
  Status read = store.ReadSnapshot([&]() -> Status {
    auto head = store.ChangeHead();
    if (!head.ok()) return head.status();
    snap->head = *head;
    auto epoch = store.FeedEpoch();
    if (!epoch.ok()) return epoch.status();
    snap->epoch = *epoch;
    if (scope.directory) {
      auto dir = Directory::Load(store);
      if (!dir.ok()) return dir.status();
      snap->directory = std::move(dir).value();
    }
    TokenIndexBuilder builder;
    // A little room over the estimate: tokens created since it was taken.
    if (scope.expected_tokens > 0) builder.Reserve(scope.expected_tokens + scope.expected_tokens / 32);
    GATEHOUSE_RETURN_IF_ERROR(
        store.ScanActiveTokens(snap->loaded_at, [&builder](const TokenRecord& t) {
          builder.Add(t);
          return Status::Ok();
        }));
    base = builder.Build();
    return Status::Ok();
  });
  if (!read.ok()) return read;
  snap->tokens = std::make_shared<const TokenView>(std::move(base), snap->head);
  return snap;
}

void StoreView::Publish(SnapshotPtr snapshot, std::shared_ptr<View> view) {
  metrics_->SetFeedApplied(
      snapshot->head, static_cast<int64_t>(snapshot->tokens->overlay_size()),
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  metrics_->SetTokenIndexSize(static_cast<int64_t>(snapshot->tokens->size()));
  metrics_->SetDirectorySize(static_cast<int64_t>(snapshot->directory->user_count()),
                             static_cast<int64_t>(snapshot->directory->workspace_count()));
  view->snapshot = std::move(snapshot);
  view_.store(std::move(view));
  store_ok_.store(true, std::memory_order_relaxed);
}

Status StoreView::RefreshLocked(bool full) {
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
    full = true;  // a new connection's data_version says nothing about the old one's
  }
  // The stamp first, then data_version, then the reads: a stamp equal to
  // this one later means no commit since, so none the reads missed.
  auto view = std::make_shared<View>();
  view->watch = watch_;
  view->has_stamp = watch_ && watch_->Read(&view->stamp);
  auto version = maintenance_->DataVersion();
  if (!version.ok()) return fail(version.status());
  Status s = Refresh(*maintenance_, full, *version, std::move(view));
  if (!s.ok()) {
    maintenance_.reset();
    ForgetStamp();
  }
  return s;
}

Status StoreView::Refresh(Store& store, bool full, int64_t version, std::shared_ptr<View> view) {
  const auto start = std::chrono::steady_clock::now();
  auto fail = [&](Status s) {
    store_ok_.store(false, std::memory_order_relaxed);
    metrics_->CountStoreRefresh(false, std::chrono::steady_clock::now() - start);
    return s;
  };
  const std::shared_ptr<const View> current_view = view_.load();
  SnapshotPtr current = current_view ? current_view->snapshot : nullptr;
  if (!full && current && version >= 0 && current->maintenance_version == version) {
    Publish(std::move(current), std::move(view));
    return Status::Ok();
  }
  if (!full && current) {
    // Catch up: what changed after the snapshot's feed number, and the
    // directory's parts of the organizations it changed (every other
    // organization's part is shared with the current directory), in one
    // snapshot of the store.
    ChangeBatch batch;
    std::shared_ptr<const Directory> directory;
    Status read = store.ReadSnapshot([&]() -> Status {
      auto b = store.ReadChangesSince(current->head, kMaxCatchUp);
      if (!b.ok()) return b.status();
      batch = std::move(b).value();
      if (batch.epoch != current->epoch) {
        return Status::FailedPrecondition("the store's feed has a new epoch (a restore, a failover, a "
                                          "renewal)");
      }
      if (batch.directory_changed) {
        auto dir = Directory::Reload(store, *current->directory,
                                     current->directory->OrgsChangedBy(batch));
        if (!dir.ok()) return dir.status();
        directory = std::move(dir).value();
      }
      return Status::Ok();
    });
    if (read.ok()) {
      auto next = std::make_shared<Snapshot>(*current);
      next->maintenance_version = version;
      if (batch.head > current->head) {
        next->tokens = current->tokens->Apply(batch);
        next->head = batch.head;
        metrics_->CountFeedChanges(batch.changes);
      }
      const bool changed = batch.head > current->head || directory;
      if (directory) next->directory = std::move(directory);
      Publish(std::move(next), std::move(view));
      // Counted when something was applied (not for an audit-only commit).
      if (changed) metrics_->CountStoreRefresh(true, std::chrono::steady_clock::now() - start);
      return Status::Ok();
    }
    // The feed cannot say what changed: load everything, here and now (a
    // revocation among those changes must not be served).
    // (InvalidArgument: the store's feed is behind the view — its content
    // was replaced.)
    if (read.code() != StatusCode::kFailedPrecondition &&
        read.code() != StatusCode::kInvalidArgument) {
      return fail(read);
    }
    log_(LogLevel::kWarn,
         "catching up with the store failed (" + read.message() + "); loading everything");
  }
  auto snap = LoadAll(store, LoadScope{});
  if (!snap.ok()) return fail(snap.status());
  (*snap)->maintenance_version = version;
  metrics_->CountFullLoad();
  Publish(std::move(snap).value(), std::move(view));
  metrics_->CountStoreRefresh(true, std::chrono::steady_clock::now() - start);
  return Status::Ok();
}

bool StoreView::View::Current() const {
  if (!has_stamp || !snapshot) return false;
  StoreStamp now;
  return watch->Read(&now) && now == stamp;
}

Result<SnapshotPtr> StoreView::Fresh() {
  // Fail closed: an in-memory snapshot of a store that cannot be read must
  // not keep allowing (it could no longer see a revocation).
  if (store_unavailable_.load(std::memory_order_relaxed))
    return Status::FailedPrecondition("store " + RedactLocator(options_.store_path) +
                                      " is unavailable");
  if (subscribed_) {
    GATEHOUSE_RETURN_IF_ERROR(Lease());
    return view_.load()->snapshot;
  }
  const std::shared_ptr<const View> view = view_.load();
  if (view && view->Current()) return view->snapshot;
  return SlowPath();
}

Status StoreView::Lease() const {
  const int64_t age =
      options_.clock->MonotonicMillis() - confirmed_at_ms_.load(std::memory_order_relaxed);
  if (age <= options_.max_staleness_ms) return Status::Ok();
  return Status::FailedPrecondition("the store was last confirmed " + std::to_string(age) +
                                    " ms ago (bound: --max-staleness-ms " +
                                    std::to_string(options_.max_staleness_ms) + ")");
}

bool StoreView::unavailable() const {
  return store_unavailable_.load(std::memory_order_relaxed) || (subscribed_ && !Lease().ok());
}

Result<SnapshotPtr> StoreView::SlowPath() {
  std::lock_guard<std::mutex> lock(refresh_mu_);
  // After a commit every busy thread gets here; the first one caught up.
  const std::shared_ptr<const View> view = view_.load();
  if (view && view->Current()) return view->snapshot;
  metrics_->CountSlowPath();
  GATEHOUSE_RETURN_IF_ERROR(RefreshLocked(/*full=*/false));
  return view_.load()->snapshot;
}

Status StoreView::CatchUp() {
  // Subscribed: the commit's notification (or the heartbeat) wakes the feed.
  if (subscribed_) return Status::Ok();
  std::lock_guard<std::mutex> lock(refresh_mu_);
  return RefreshLocked(/*full=*/false);
}

Status StoreView::Check() {
  if (subscribed_) return Lease();  // the feed thread does the reading
  std::lock_guard<std::mutex> lock(refresh_mu_);
  const bool was_unavailable = store_unavailable_.load(std::memory_order_relaxed);
  Result<bool> replaced = maintenance_ ? maintenance_->Replaced() : Result<bool>(true);
  if (replaced.ok() && *replaced) {
    // Reopened below; a store that cannot be opened is as good as gone.
    maintenance_.reset();
    Status opened = OpenMaintenance();
    if (!opened.ok()) replaced = opened;
  }
  if (!replaced.ok()) {
    if (!was_unavailable) {
      log_(LogLevel::kError,
           replaced.status().message() + ": refusing every check until it is back");
    }
    store_unavailable_.store(true, std::memory_order_relaxed);
    store_ok_.store(false, std::memory_order_relaxed);
    ForgetStamp();  // so nothing serves the old snapshot once the flag is cleared
    return replaced.status();
  }
  // Reopened (`maintenance_` is new) or back: its content may be another
  // file's now (a restore, even in place): load everything.
  const bool reopened = *replaced || was_unavailable;
  if (reopened) {
    log_(LogLevel::kWarn, "store " + RedactLocator(options_.store_path) +
                              (was_unavailable ? " is back" : " was replaced") + "; reopening it");
  }
  Status refreshed = RefreshLocked(/*full=*/reopened);  // a real query, whatever the stamp says
  // Cleared only after a load from the file as it is now.
  if (refreshed.ok()) store_unavailable_.store(false, std::memory_order_relaxed);
  return refreshed;
}

void StoreView::Start() {
  std::lock_guard<std::mutex> lock(feed_mu_);
  if (!subscribed_ || feed_thread_.joinable()) return;
  feed_stop_ = false;
  uint64_t drained;
  if (stop_fd_ >= 0) (void)!::read(stop_fd_, &drained, sizeof drained);
  feed_thread_ = std::thread([this] { FeedLoop(); });
}

void StoreView::Stop() {
  {
    std::lock_guard<std::mutex> lock(feed_mu_);
    feed_stop_ = true;
  }
  feed_cv_.notify_all();
  const uint64_t one = 1;
  if (stop_fd_ >= 0) (void)!::write(stop_fd_, &one, sizeof one);
  if (feed_thread_.joinable()) feed_thread_.join();
}

bool StoreView::Pause(int ms) {
  std::unique_lock<std::mutex> lock(feed_mu_);
  return !feed_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return feed_stop_; });
}

Status StoreView::OpenFeed() {
  auto store = OpenReader();
  if (!store.ok()) return store.status();
  if (options_.feed_notify) GATEHOUSE_RETURN_IF_ERROR((*store)->Subscribe());
  feed_ = std::move(store).value();
  return Status::Ok();
}

void StoreView::FeedLoop() {
  constexpr int kFirstBackoffMs = 50, kMaxBackoffMs = 1000;
  int backoff_ms = kFirstBackoffMs;
  bool failing = false;
  auto stopping = [&] {
    std::lock_guard<std::mutex> lock(feed_mu_);
    return feed_stop_;
  };
  auto failed = [&](const Status& s, std::string_view doing) {
    feed_.reset();
    if (stopping()) return;  // what Stop() cut short is no failure
    if (!failing)
      log_(LogLevel::kError, std::string(doing) + " failed (" + s.ToString() + "); retrying");
    failing = true;
    metrics_->CountStoreRefresh(false, std::chrono::nanoseconds(0));
  };
  for (;;) {
    if (stopping()) return;
    if (!feed_) {
      Status opened = OpenFeed();
      if (!opened.ok()) {
        failed(opened, "connecting to the store");
        if (!Pause(backoff_ms)) return;
        backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
        continue;
      }
      // Then catch up at once: whatever committed while disconnected.
    } else if (options_.feed_notify) {
      Result<bool> woke = feed_->WaitForChange(heartbeat_ms_);
      if (!woke.ok()) {
        failed(woke.status(), "waiting for the store's changes");
        continue;
      }
      if (stopping()) return;  // woken by Stop()
    } else if (!Pause(heartbeat_ms_)) {
      return;
    }
    // Confirmed as of when the catch-up was sent: anything committed before
    // this instant is in what it reads.
    const int64_t sent = options_.clock->MonotonicMillis();
    Status caught_up;
    {
      std::lock_guard<std::mutex> lock(refresh_mu_);
      caught_up = Refresh(*feed_, /*full=*/false, -1, std::make_shared<View>());
    }
    if (!caught_up.ok()) {
      failed(caught_up, "catching up with the store");
      continue;
    }
    confirmed_at_ms_.store(sent, std::memory_order_relaxed);
    backoff_ms = kFirstBackoffMs;
    if (failing) log_(LogLevel::kInfo, "caught up with the store again");
    failing = false;
  }
}

Result<bool> StoreView::CompactIfDue() {
  std::lock_guard<std::mutex> one(compact_mu_);
  size_t tokens = 0;
  {
    const std::shared_ptr<const View> view = view_.load();
    if (!view || !view->snapshot || !view->snapshot->tokens->CompactionDue()) return false;
    tokens = view->snapshot->tokens->size();
  }
  const auto start = std::chrono::steady_clock::now();
  // A connection of its own: requests keep catching up on the maintenance
  // connection while this one scans every token. The new base is loaded
  // beside the serving one, so it is sized up front and without a directory:
  // that is the compaction's peak memory.
  auto reader = OpenReader();
  if (!reader.ok()) return reader.status();
  auto loaded = LoadAll(**reader, LoadScope{tokens, /*directory=*/false});
  if (!loaded.ok()) return loaded.status();
  reader->reset();
  std::lock_guard<std::mutex> lock(refresh_mu_);
  const std::shared_ptr<const View> current = view_.load();
  if (!current || !current->snapshot) return false;
  const Snapshot& now = *current->snapshot;
  if ((*loaded)->head < now.tokens->base_head()) return false;  // a full load overtook it
  auto next = std::make_shared<Snapshot>(now);
  // The tokens only: the directory stays the one the feed keeps current.
  // Loaded ahead of `now`? The next catch-up re-applies those changes, harmlessly.
  next->tokens = now.tokens->Rebase((*loaded)->tokens->base(), (*loaded)->head);
  next->loaded_at = (*loaded)->loaded_at;
  auto view = std::make_shared<View>(*current);
  metrics_->CountCompaction(std::chrono::steady_clock::now() - start);
  Publish(std::move(next), std::move(view));
  return true;
}

}  // namespace gatehouse::sidecar
