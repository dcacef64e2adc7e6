#include "sidecar/sweeper.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <utility>

#include "gatehouse/store.h"

namespace gatehouse::sidecar {

Sweeper::Sweeper(SweeperOptions options, Metrics* metrics, LogFn log,
                 std::function<Status()> after_delete)
    : options_(std::move(options)),
      metrics_(metrics),
      log_(std::move(log)),
      after_delete_(std::move(after_delete)),
      stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Sweeper::~Sweeper() {
  Stop();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

Result<int64_t> Sweeper::SweepNow() {
  std::lock_guard<std::mutex> one(sweep_mu_);
  // Opened per sweep (once a minute by default), closed before catching up.
  StoreOptions so;
  so.busy_timeout_ms = options_.busy_timeout_ms;
  so.durable_commits = false;  // it only deletes tokens that are already refused
  so.cancel_fd = stop_fd_;
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
  auto pruned = (*writer)->PruneChanges(options_.feed_keep);
  if (pruned.ok()) metrics_->CountPruned(*pruned);
  writer->reset();
  if (*n > 0 && after_delete_) GATEHOUSE_RETURN_IF_ERROR(after_delete_());
  return n;
}

void Sweeper::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.interval_s <= 0 || thread_.joinable()) return;
  stop_ = false;
  uint64_t drained;
  if (stop_fd_ >= 0) (void)!::read(stop_fd_, &drained, sizeof drained);
  thread_ = std::thread([this] { Loop(); });
}

void Sweeper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  const uint64_t one = 1;
  if (stop_fd_ >= 0) (void)!::write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void Sweeper::Loop() {
  const auto every = std::chrono::seconds(options_.interval_s);
  bool failed_logged = false;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (cv_.wait_for(lock, every, [this] { return stop_; })) return;
    lock.unlock();
    auto n = SweepNow();
    lock.lock();
    if (!n.ok() && stop_) return;  // what Stop() cut short is no failure to report
    lock.unlock();
    if (!n.ok()) {
      if (!failed_logged)
        log_(LogLevel::kWarn, "sweeping expired tokens failed: " + n.status().ToString());
      failed_logged = true;
    } else {
      failed_logged = false;
      if (*n > 0) log_(LogLevel::kInfo, "deleted " + std::to_string(*n) + " expired token(s)");
    }
    lock.lock();
  }
}

}  // namespace gatehouse::sidecar
