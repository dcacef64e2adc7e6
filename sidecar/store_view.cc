#include "sidecar/store_view.h"

#include <sys/stat.h>

#include <chrono>
#include <utility>

namespace gatehouse::sidecar {

StoreView::StoreView(const StoreViewOptions& options, Metrics* metrics, LogFn log)
    : options_(options), metrics_(metrics), log_(std::move(log)) {}

Result<std::unique_ptr<StoreView>> StoreView::Open(const StoreViewOptions& options,
                                                   Metrics* metrics, LogFn log) {
  std::unique_ptr<StoreView> v(new StoreView(options, metrics, std::move(log)));
  std::lock_guard<std::mutex> lock(v->refresh_mu_);
  GATEHOUSE_RETURN_IF_ERROR(v->OpenMaintenance());
  GATEHOUSE_RETURN_IF_ERROR(v->RefreshLocked(/*full=*/true));
  return v;
}

Result<std::unique_ptr<Store>> StoreView::OpenReader() const {
  // Read-only: the sidecar never writes through it (the sweeper opens its
  // own read-write connection), so a store the sidecar may only read works.
  StoreOptions so;
  so.busy_timeout_ms = options_.busy_timeout_ms;
  so.read_only = true;
  return OpenSqliteStore(options_.store_path, so);
}

Status StoreView::OpenMaintenance() {
  auto store = OpenReader();
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

void StoreView::ForgetStamp() {
  auto view = std::make_shared<View>();
  const std::shared_ptr<const View> current = view_.load();
  if (current) view->snapshot = current->snapshot;
  view_.store(std::move(view));
}

Result<std::shared_ptr<Snapshot>> StoreView::LoadAll(Store& store) const {
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
    auto dir = Directory::Load(store);
    if (!dir.ok()) return dir.status();
    snap->directory = std::move(dir).value();
    TokenIndexBuilder builder;
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
  const std::shared_ptr<const View> current_view = view_.load();
  SnapshotPtr current = current_view ? current_view->snapshot : nullptr;
  if (!full && current && current->maintenance_version == *version) {
    Publish(std::move(current), std::move(view));
    return Status::Ok();
  }
  if (!full && current) {
    // Catch up: what changed after the snapshot's feed number, and the
    // directory when it changed, in one snapshot of the store.
    ChangeBatch batch;
    std::shared_ptr<const Directory> directory;
    Status read = maintenance_->ReadSnapshot([&]() -> Status {
      auto b = maintenance_->ReadChangesSince(current->head, kMaxCatchUp);
      if (!b.ok()) return b.status();
      batch = std::move(b).value();
      if (batch.epoch != current->epoch) {
        return Status::FailedPrecondition("the store's content was replaced (a restore?)");
      }
      if (batch.directory_changed) {
        auto dir = Directory::Load(*maintenance_);
        if (!dir.ok()) return dir.status();
        directory = std::move(dir).value();
      }
      return Status::Ok();
    });
    if (read.ok()) {
      auto next = std::make_shared<Snapshot>(*current);
      next->maintenance_version = *version;
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
    log_("catching up with the store failed (" + read.message() + "); loading everything");
  }
  auto snap = LoadAll(*maintenance_);
  if (!snap.ok()) return fail(snap.status());
  (*snap)->maintenance_version = *version;
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
    return Status::FailedPrecondition("store " + options_.store_path + " is unavailable");
  const std::shared_ptr<const View> view = view_.load();
  if (view && view->Current()) return view->snapshot;
  return SlowPath();
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
  std::lock_guard<std::mutex> lock(refresh_mu_);
  return RefreshLocked(/*full=*/false);
}

Status StoreView::Check() {
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
    // reopen every connection and load everything.
    log_("store " + options_.store_path + (replaced ? " was replaced" : " is back") +
         "; reopening it");
    maintenance_.reset();
  }
  Status refreshed = RefreshLocked(/*full=*/false);  // a real query, whatever the stamp says
  // Cleared only after a load from the file as it is now.
  if (refreshed.ok()) store_unavailable_.store(false, std::memory_order_relaxed);
  return refreshed;
}

Result<bool> StoreView::CompactIfDue() {
  std::lock_guard<std::mutex> one(compact_mu_);
  {
    const std::shared_ptr<const View> view = view_.load();
    if (!view || !view->snapshot || !view->snapshot->tokens->CompactionDue()) return false;
  }
  const auto start = std::chrono::steady_clock::now();
  // A connection of its own: requests keep catching up on the maintenance
  // connection while this one scans every token.
  auto reader = OpenReader();
  if (!reader.ok()) return reader.status();
  auto loaded = LoadAll(**reader);
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
