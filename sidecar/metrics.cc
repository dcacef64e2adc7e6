#include "sidecar/metrics.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "sidecar/exposition.h"
#include "sidecar/process_metrics.h"

namespace gatehouse::sidecar {
namespace {

using prom::Header;
using prom::Line;
using prom::Metric;

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h == 0 ? 1 : h;
}

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Prometheus label values escape backslash, double quote and newline.
std::string LabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string Seconds(uint64_t ns) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9f", static_cast<double>(ns) / 1e9);
  return buf;
}

}  // namespace

std::string_view EndpointName(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kAuthorize:
      return "authorize";
    case Endpoint::kAuthorizeBatch:
      return "authorize_batch";
    case Endpoint::kVerify:
      return "verify";
    case Endpoint::kForwardAuth:
      return "forward_auth";
    case Endpoint::kHealthz:
      return "healthz";
    case Endpoint::kReadyz:
      return "readyz";
    case Endpoint::kMetrics:
      return "metrics";
    default:
      return "other";
  }
}

Metrics::Metrics() : start_time_(WallSeconds()) {}

int Metrics::CodeIndex(int status) {
  for (int i = 0; i < kCodeCount - 1; ++i) {
    if (kCodes[i] == status) return i;
  }
  return kCodeCount - 1;
}

void Metrics::CountRequest(Endpoint endpoint, int status, std::chrono::nanoseconds latency) {
  const int e =
      static_cast<int>(endpoint) < kEndpoints ? static_cast<int>(endpoint) : kEndpoints - 1;
  requests_[e][CodeIndex(status)].fetch_add(1, std::memory_order_relaxed);
  Histogram& h = latency_[e];
  const int64_t ns = latency.count() < 0 ? 0 : latency.count();
  int b = 0;
  while (b < kBucketCount - 1 && ns > kBucketsUs[b] * 1000) ++b;
  h.buckets[b].fetch_add(1, std::memory_order_relaxed);
  h.count.fetch_add(1, std::memory_order_relaxed);
  h.sum_ns.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

void Metrics::CountDecision(std::string_view action, bool allow) {
  const uint64_t key = Fnv1a(action);
  for (int i = 0; i < kMaxActions; ++i) {
    ActionSlot& slot = actions_[(key + i) % kMaxActions];
    uint64_t seen = slot.key.load(std::memory_order_acquire);
    if (seen == 0) {
      if (slot.key.compare_exchange_strong(seen, key, std::memory_order_acq_rel)) {
        // Claimed: name it. Rare (once per action name over the process's life).
        std::lock_guard<std::mutex> lock(names_mu_);
        action_names_[(key + i) % kMaxActions] = std::string(action);
        slot.named.store(true, std::memory_order_release);
        seen = key;
      }
      // Lost the race: `seen` holds the winner's key.
    }
    if (seen == key) {
      (allow ? slot.allow : slot.deny).fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  (allow ? decisions_overflow_allow_ : decisions_overflow_deny_)
      .fetch_add(1, std::memory_order_relaxed);
}

const Metrics::ActionSlot* Metrics::FindSlot(std::string_view action) const {
  const uint64_t key = Fnv1a(action);
  for (int i = 0; i < kMaxActions; ++i) {
    const ActionSlot& slot = actions_[(key + i) % kMaxActions];
    const uint64_t seen = slot.key.load(std::memory_order_acquire);
    if (seen == key) return &slot;
    if (seen == 0) return nullptr;
  }
  return nullptr;
}

void Metrics::CountTokenCheck(TokenCheck check) {
  const size_t i = static_cast<size_t>(check);
  if (i < token_checks_.size()) token_checks_[i].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::CountReload(bool ok) {
  if (ok) {
    reloads_.fetch_add(1, std::memory_order_relaxed);
    last_reload_ok_time_.store(WallSeconds(), std::memory_order_relaxed);
  } else {
    reload_failures_.fetch_add(1, std::memory_order_relaxed);
    last_reload_failure_time_.store(WallSeconds(), std::memory_order_relaxed);
  }
}

void Metrics::SetPolicy(std::string_view name, std::string_view revision) {
  std::lock_guard<std::mutex> lock(names_mu_);
  policy_name_ = std::string(name);
  policy_revision_ = std::string(revision);
}

void Metrics::SetBuildInfo(std::string_view version, std::string_view revision) {
  std::lock_guard<std::mutex> lock(names_mu_);
  build_version_ = std::string(version);
  build_revision_ = std::string(revision);
}

void Metrics::CountStoreRefresh(bool ok, std::chrono::nanoseconds took) {
  (ok ? store_refreshes_ : store_refresh_failures_).fetch_add(1, std::memory_order_relaxed);
  store_refresh_ns_.fetch_add(static_cast<uint64_t>(took.count() < 0 ? 0 : took.count()),
                              std::memory_order_relaxed);
}

uint64_t Metrics::requests(Endpoint endpoint, int status) const {
  return requests_[static_cast<int>(endpoint)][CodeIndex(status)].load();
}

uint64_t Metrics::decisions(std::string_view action, bool allow) const {
  const ActionSlot* slot = FindSlot(action);
  if (slot == nullptr) return 0;
  return (allow ? slot->allow : slot->deny).load();
}

std::string Metrics::Render() const {
  std::string out;
  out.reserve(16 * 1024);

  Header(out, "gatehouse_http_requests_total", "counter",
         "HTTP requests answered, by endpoint and status code.");
  for (int e = 0; e < kEndpoints; ++e) {
    for (int c = 0; c < kCodeCount; ++c) {
      const uint64_t v = requests_[e][c].load(std::memory_order_relaxed);
      if (v == 0) continue;
      std::string labels =
          "endpoint=\"" + std::string(EndpointName(static_cast<Endpoint>(e))) + "\",code=\"" +
          (kCodes[c] == 0 ? std::string("other") : std::to_string(kCodes[c])) + "\"";
      Line(out, "gatehouse_http_requests_total", labels, v);
    }
  }

  Header(out, "gatehouse_http_request_duration_seconds", "histogram",
         "Time spent answering a request inside the sidecar, by endpoint.");
  for (int e = 0; e < kEndpoints; ++e) {
    const Histogram& h = latency_[e];
    const uint64_t count = h.count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    const std::string ep =
        "endpoint=\"" + std::string(EndpointName(static_cast<Endpoint>(e))) + "\"";
    uint64_t cumulative = 0;
    for (int b = 0; b < kBucketCount; ++b) {
      cumulative += h.buckets[b].load(std::memory_order_relaxed);
      std::string le =
          b < kBucketCount - 1 ? Seconds(static_cast<uint64_t>(kBucketsUs[b]) * 1000) : "+Inf";
      // Trim trailing zeros for readability: 0.000050000 -> 0.00005.
      if (le != "+Inf") {
        while (le.size() > 1 && le.back() == '0') le.pop_back();
        if (le.back() == '.') le.pop_back();
      }
      Line(out, "gatehouse_http_request_duration_seconds_bucket", ep + ",le=\"" + le + "\"",
           cumulative);
    }
    Line(out, "gatehouse_http_request_duration_seconds_sum", ep,
         Seconds(h.sum_ns.load(std::memory_order_relaxed)));
    Line(out, "gatehouse_http_request_duration_seconds_count", ep, count);
  }

  Header(out, "gatehouse_decisions_total", "counter",
         "Authorization decisions, by policy action and outcome.");
  {
    std::lock_guard<std::mutex> lock(names_mu_);
    for (int i = 0; i < kMaxActions; ++i) {
      const ActionSlot& slot = actions_[i];
      if (!slot.named.load(std::memory_order_acquire)) continue;
      const std::string a = "action=\"" + LabelValue(action_names_[i]) + "\"";
      Line(out, "gatehouse_decisions_total", a + ",outcome=\"allow\"",
           slot.allow.load(std::memory_order_relaxed));
      Line(out, "gatehouse_decisions_total", a + ",outcome=\"deny\"",
           slot.deny.load(std::memory_order_relaxed));
    }
  }
  if (const uint64_t a = decisions_overflow_allow_.load(), d = decisions_overflow_deny_.load();
      a + d > 0) {
    Line(out, "gatehouse_decisions_total", "action=\"other\",outcome=\"allow\"", a);
    Line(out, "gatehouse_decisions_total", "action=\"other\",outcome=\"deny\"", d);
  }

  Header(out, "gatehouse_token_checks_total", "counter",
         "Presented tokens, by result (active, malformed, unknown: never issued, revoked or "
         "deleted; expired).");
  for (size_t i = 0; i < token_checks_.size(); ++i) {
    Line(out, "gatehouse_token_checks_total",
         "result=\"" + std::string(TokenCheckName(static_cast<TokenCheck>(i))) + "\"",
         token_checks_[i].load(std::memory_order_relaxed));
  }

  {
    std::lock_guard<std::mutex> lock(names_mu_);
    Header(out, "gatehouse_build_info", "gauge",
           "The running build: always 1, labelled with its version and git revision.");
    Line(out, "gatehouse_build_info",
         "version=\"" + LabelValue(build_version_) + "\",revision=\"" +
             LabelValue(build_revision_) + "\"",
         1);
    Header(out, "gatehouse_policy_info", "gauge",
           "The serving policy: always 1, labelled with its name and revision.");
    Line(out, "gatehouse_policy_info",
         "name=\"" + LabelValue(policy_name_) + "\",revision=\"" + LabelValue(policy_revision_) +
             "\"",
         1);
  }
  Metric(out, "gatehouse_policy_reloads_total", "counter",
         "Policy reloads that loaded a valid policy.", reloads_.load(std::memory_order_relaxed));
  Metric(out, "gatehouse_policy_reload_failures_total", "counter",
         "Policy reloads refused because the new policy failed to load (the previous one kept "
         "serving).",
         reload_failures_.load(std::memory_order_relaxed));
  Metric(out, "gatehouse_policy_last_reload_success_timestamp_seconds", "gauge",
         "When a reload last succeeded (0: never).",
         static_cast<uint64_t>(last_reload_ok_time_.load(std::memory_order_relaxed)));
  Metric(out, "gatehouse_policy_last_reload_failure_timestamp_seconds", "gauge",
         "When a reload last failed (0: never).",
         static_cast<uint64_t>(last_reload_failure_time_.load(std::memory_order_relaxed)));

  Metric(out, "gatehouse_token_index_size", "gauge", "Tokens held in the in-memory token index.",
         static_cast<uint64_t>(token_index_size_.load()));
  Metric(out, "gatehouse_directory_users", "gauge", "Human users in the in-memory directory.",
         static_cast<uint64_t>(directory_users_.load()));
  Metric(out, "gatehouse_directory_workspaces", "gauge", "Workspaces in the in-memory directory.",
         static_cast<uint64_t>(directory_workspaces_.load()));
  Metric(out, "gatehouse_store_checks_total", "counter",
         "Requests that found the store changed (or unknown) and asked SQLite (data_version) under "
         "the refresh lock.",
         store_slow_paths_.load());
  Metric(out, "gatehouse_store_refreshes_total", "counter",
         "Catch-ups and loads after the store changed.", store_refreshes_.load());
  Metric(out, "gatehouse_store_refresh_failures_total", "counter",
         "Catch-ups or loads that failed (requests were refused meanwhile).",
         store_refresh_failures_.load());
  Metric(out, "gatehouse_store_refresh_seconds_total", "counter",
         "Time spent catching up with and loading from the store.",
         Seconds(store_refresh_ns_.load()));
  Metric(out, "gatehouse_feed_changes_applied_total", "counter",
         "Change-feed rows applied by catch-ups (no full load).", feed_changes_.load());
  Metric(out, "gatehouse_feed_applied", "gauge",
         "The store's change-feed number the serving view holds every change up to.",
         static_cast<uint64_t>(feed_applied_.load()));
  Metric(out, "gatehouse_feed_pruned_total", "counter",
         "Change-feed rows pruned by this sidecar's sweeper.", feed_pruned_.load());
  Header(out, "gatehouse_store_catch_up_age_seconds", "gauge",
         "Seconds since a catch-up last confirmed the serving view current (requests confirm it "
         "too, by the WAL stamp, without a catch-up).");
  {
    const int64_t confirmed = feed_confirmed_ms_.load();
    const int64_t age_ms = confirmed > 0 ? std::max<int64_t>(0, NowMs() - confirmed) : 0;
    Line(out, "gatehouse_store_catch_up_age_seconds", "",
         Seconds(static_cast<uint64_t>(age_ms) * 1000000));
  }
  Metric(out, "gatehouse_store_full_loads_total", "counter",
         "Full loads of the directory and every token (at start, on reopen, or when the feed "
         "could not say what changed).",
         full_loads_.load());
  Metric(out, "gatehouse_token_overlay_entries", "gauge",
         "Entries in the token overlay on top of the last full token load.",
         static_cast<uint64_t>(overlay_entries_.load()));
  Metric(out, "gatehouse_token_compactions_total", "counter",
         "New token bases loaded off the request path because the overlay had grown.",
         compactions_.load());
  Metric(out, "gatehouse_token_compaction_seconds_total", "counter",
         "Time spent loading new token bases (off the request path).",
         Seconds(compaction_ns_.load()));
  Metric(out, "gatehouse_swept_tokens_total", "counter",
         "Expired tokens deleted by the background sweeper.", swept_tokens_.load());
  Metric(out, "gatehouse_sweep_failures_total", "counter",
         "Sweeps that failed (e.g. the store is not writable).", sweep_failures_.load());
  Metric(out, "gatehouse_decision_log_failures_total", "counter",
         "Decision-log lines that could not be written.", log_failures_.load());
  Metric(out, "gatehouse_caller_rejected_total", "counter",
         "Requests refused for a missing or wrong X-Gatehouse-Caller secret.",
         caller_rejected_.load());
  Metric(out, "gatehouse_http_connections_open", "gauge", "Client connections open now.",
         static_cast<uint64_t>(std::max<int64_t>(0, connections_open_.load())));
  Metric(out, "gatehouse_http_connections_refused_total", "counter",
         "Connections refused at once because --max-connections were open.",
         connections_refused_.load());
  Header(out, "gatehouse_http_connection_closes_total", "counter",
         "Connections the server closed, by reason.");
  static constexpr std::array<const char*, static_cast<int>(ConnectionClose::kCount)> kWhy = {
      "header_timeout", "body_timeout",   "idle_timeout", "bad_framing",
      "header_too_large", "body_too_large", "tls_handshake", "write_timeout"};
  for (size_t i = 0; i < kWhy.size(); ++i) {
    Line(out, "gatehouse_http_connection_closes_total",
         std::string("reason=\"") + kWhy[i] + "\"", connection_closes_[i].load());
  }
  Metric(out, "gatehouse_start_time_seconds", "gauge",
         "When the sidecar started, seconds since the epoch (deprecated: use "
         "process_start_time_seconds; kept until the next release).",
         static_cast<uint64_t>(start_time_));
  AppendProcessMetrics(out);
  return out;
}

}  // namespace gatehouse::sidecar
