// Metrics: the sidecar's Prometheus counters, gauges and histograms.
//
// Every update is a relaxed atomic operation: no lock on the request path.
// Render() writes the Prometheus text exposition format (version 0.0.4).
//
// Label sets are bounded: endpoints are a fixed enum, status codes a fixed
// list (anything else is "other"), and decisions are counted only for actions
// the serving policy declares (never for a name taken from a request), in a
// fixed table of kMaxActions slots.
//
// Thread safety: every method may be called from any number of threads.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "gatehouse/token_index.h"

namespace gatehouse::sidecar {

enum class Endpoint : uint8_t {
  kAuthorize = 0,
  kAuthorizeBatch,
  kVerify,
  kForwardAuth,
  kHealthz,
  kReadyz,
  kMetrics,
  kOther,  // 404s and anything else
  kCount,
};

// "authorize", "authorize_batch", "verify", "forward_auth", "healthz", ...
std::string_view EndpointName(Endpoint endpoint);

class Metrics {
 public:
  static constexpr int kMaxActions = 256;

  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One HTTP request answered with `status` after `latency`.
  void CountRequest(Endpoint endpoint, int status, std::chrono::nanoseconds latency);
  // One decision for a policy action (allow or deny).
  void CountDecision(std::string_view action, bool allow);
  // One presented token, by what the index said about it.
  void CountTokenCheck(TokenCheck check);
  // A policy load attempted by a reload (file change or SIGHUP).
  void CountReload(bool ok);
  // The build (gatehouse_build_info's labels): set once, before serving.
  void SetBuildInfo(std::string_view version, std::string_view revision);
  // The serving policy (the info metric's labels).
  void SetPolicy(std::string_view name, std::string_view revision);
  // A rebuild of the token index and directory from the store.
  void CountStoreRefresh(bool ok, std::chrono::nanoseconds took);
  // A request that found the store's WAL-index header changed (state.h).
  void CountSlowPath() { store_slow_paths_.fetch_add(1, std::memory_order_relaxed); }
  void SetTokenIndexSize(int64_t tokens) {
    token_index_size_.store(tokens, std::memory_order_relaxed);
  }
  void SetDirectorySize(int64_t users, int64_t workspaces) {
    directory_users_.store(users, std::memory_order_relaxed);
    directory_workspaces_.store(workspaces, std::memory_order_relaxed);
  }
  // The change feed (store_view.h): feed rows applied by catch-ups, the feed
  // number applied, full loads, compactions of the token overlay, and the
  // wall-clock time (ms) of the last catch-up that confirmed the view current.
  void CountFeedChanges(int64_t n) { feed_changes_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed); }
  void SetFeedApplied(int64_t head, int64_t overlay_entries, int64_t confirmed_ms) {
    feed_applied_.store(head, std::memory_order_relaxed);
    overlay_entries_.store(overlay_entries, std::memory_order_relaxed);
    feed_confirmed_ms_.store(confirmed_ms, std::memory_order_relaxed);
  }
  void CountFullLoad() { full_loads_.fetch_add(1, std::memory_order_relaxed); }
  void CountCompaction(std::chrono::nanoseconds took) {
    compactions_.fetch_add(1, std::memory_order_relaxed);
    compaction_ns_.fetch_add(static_cast<uint64_t>(took.count() < 0 ? 0 : took.count()),
                             std::memory_order_relaxed);
  }
  void CountPruned(int64_t n) { feed_pruned_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed); }
  // Expired tokens deleted by the sweeper; a failed sweep.
  void CountSwept(int64_t tokens) { swept_tokens_.fetch_add(tokens, std::memory_order_relaxed); }
  void CountSweepFailure() { sweep_failures_.fetch_add(1, std::memory_order_relaxed); }
  // Decision-log lines that could not be written.
  void CountLogFailure() { log_failures_.fetch_add(1, std::memory_order_relaxed); }
  // A request refused for a missing or wrong X-Gatehouse-Caller secret.
  void CountCallerRejected() { caller_rejected_.fetch_add(1, std::memory_order_relaxed); }
  // The server's connections: one accepted (open gauge up), one closed
  // (down), one refused at once because --max-connections were open, and
  // one closed for a reason the server names (ConnectionClose).
  void ConnectionOpened() { connections_open_.fetch_add(1, std::memory_order_relaxed); }
  void ConnectionClosed() { connections_open_.fetch_sub(1, std::memory_order_relaxed); }
  void CountConnectionRefused() { connections_refused_.fetch_add(1, std::memory_order_relaxed); }
  enum class ConnectionClose : uint8_t {
    kHeaderTimeout = 0,  // the request header did not arrive whole in time
    kBodyTimeout,        // the body did not arrive in time
    kIdleTimeout,        // a keep-alive connection idle too long
    kBadFraming,         // 400: unparsable or conflicting framing
    kHeaderTooLarge,     // 431
    kBodyTooLarge,       // 413
    kTlsHandshake,       // TLS handshake failed (e.g. no valid client certificate)
    kWriteTimeout,       // the client did not read a whole reply within the write timeout
    kCount,
  };
  void CountConnectionClose(ConnectionClose why) {
    connection_closes_[static_cast<int>(why)].fetch_add(1, std::memory_order_relaxed);
  }
  int64_t connections_open() const { return connections_open_.load(); }
  uint64_t connections_refused() const { return connections_refused_.load(); }
  uint64_t connection_closes(ConnectionClose why) const {
    return connection_closes_[static_cast<int>(why)].load();
  }
  uint64_t caller_rejected() const { return caller_rejected_.load(); }

  // The whole exposition, text format 0.0.4.
  std::string Render() const;

  // For tests.
  uint64_t requests(Endpoint endpoint, int status) const;
  uint64_t decisions(std::string_view action, bool allow) const;
  uint64_t reloads() const { return reloads_.load(); }
  uint64_t reload_failures() const { return reload_failures_.load(); }
  int64_t token_index_size() const { return token_index_size_.load(); }

 private:
  static constexpr std::array<int, 14> kCodes = {200, 204, 400, 401, 403, 404, 405,
                                                 408, 413, 414, 431, 500, 503, 0};  // 0: other
  static constexpr int kCodeCount = static_cast<int>(kCodes.size());
  // Latency buckets' upper bounds in microseconds (+Inf implied).
  static constexpr std::array<int64_t, 14> kBucketsUs = {
      50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000};
  static constexpr int kBucketCount = static_cast<int>(kBucketsUs.size()) + 1;
  static constexpr int kEndpoints = static_cast<int>(Endpoint::kCount);

  static int CodeIndex(int status);

  struct Histogram {
    std::array<std::atomic<uint64_t>, kBucketCount> buckets{};
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
  };
  struct ActionSlot {
    std::atomic<uint64_t> key{0};  // FNV-1a of the name, never 0; 0: free
    std::atomic<bool> named{false};
    std::atomic<uint64_t> allow{0};
    std::atomic<uint64_t> deny{0};
  };
  const ActionSlot* FindSlot(std::string_view action) const;

  std::array<std::array<std::atomic<uint64_t>, kCodeCount>, kEndpoints> requests_{};
  std::array<Histogram, kEndpoints> latency_{};
  std::array<ActionSlot, kMaxActions> actions_{};
  std::array<std::string, kMaxActions> action_names_;  // written once under names_mu_
  std::atomic<uint64_t> decisions_overflow_allow_{0}, decisions_overflow_deny_{0};
  std::array<std::atomic<uint64_t>, 4> token_checks_{};

  std::atomic<uint64_t> reloads_{0}, reload_failures_{0};
  std::atomic<int64_t> last_reload_ok_time_{0}, last_reload_failure_time_{0};
  std::atomic<uint64_t> store_slow_paths_{0};
  std::atomic<uint64_t> feed_changes_{0}, full_loads_{0}, compactions_{0}, compaction_ns_{0},
      feed_pruned_{0};
  std::atomic<int64_t> feed_applied_{0}, overlay_entries_{0}, feed_confirmed_ms_{0};
  std::atomic<uint64_t> store_refreshes_{0}, store_refresh_failures_{0}, store_refresh_ns_{0};
  std::atomic<int64_t> token_index_size_{0}, directory_users_{0}, directory_workspaces_{0};
  std::atomic<uint64_t> swept_tokens_{0}, sweep_failures_{0}, log_failures_{0};
  std::atomic<uint64_t> caller_rejected_{0}, connections_refused_{0};
  std::atomic<int64_t> connections_open_{0};
  std::array<std::atomic<uint64_t>, static_cast<int>(ConnectionClose::kCount)> connection_closes_{};
  const int64_t start_time_;

  mutable std::mutex names_mu_;  // guards action_names_, policy_name_, policy_revision_
  std::string policy_name_, policy_revision_;
  std::string build_version_, build_revision_;  // guarded by names_mu_
};

}  // namespace gatehouse::sidecar
