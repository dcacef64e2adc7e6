// Shadow: a candidate policy decided beside the live one (gatehoused
// --shadow-policy PATH), so that a policy change can be watched on real
// traffic before it ships. Answers always come from the live policy; the
// candidate's decision is only compared with it, counted when its effect
// differs (gatehouse_shadow_divergences_total{action, live, shadow}) and
// written into the decision-log record (handlers.cc, wire.h "shadow").
//
// Reload. The candidate is reloaded exactly like the live policy (state.h):
// a thread of its own polls the candidate's files (and the --invariants
// folders) every policy_poll_ms, letting a writer finish first, and
// RequestReload() (SIGHUP) wakes it. A candidate that fails to load or breaks
// an invariant is refused with its FILE:LINE:COL errors on the log and
// counted; the last good candidate stays.
//
// Cost. Decide() takes what the live decision already resolved (the
// AuthzOutcome with its Request of ids) and, when the candidate reads the same
// inputs as the live policy (same actions, parameters, roles, workspace types,
// settings with their defaults, token lifetime cap: SameInputs, worked out
// once per pair of policies, off the request path), decides that very Request
// on the candidate: one table lookup, two with the token.use gate, no
// allocation unless the effect differs. A candidate that reads other inputs
// (a role added, a setting renamed) is decided by gatehouse::Authorize from
// the resolved subject instead: exact, but it allocates.
//
// Bounded labels: actions are names the policies declare (the divergences of
// more than kMaxActions distinct actions share action="_other"), effects
// allow/deny.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gatehouse/authorizer.h"
#include "gatehouse/policy.h"
#include "gatehouse/status.h"
#include "sidecar/log.h"

namespace gatehouse::sidecar {

struct ShadowOptions {
  // The candidate policy file or folder (--shadow-policy). Required.
  std::string policy_path;
  // Invariant files or folders checked on every load besides the candidate
  // folder's invariants/ (the sidecar's --invariants). Default: none.
  std::vector<std::string> invariants;
  // How often the candidate's files are checked for changes, in ms; 0: only
  // RequestReload (SIGHUP). Default 500 (the sidecar passes --policy-poll-ms).
  int policy_poll_ms = 500;
};

// What the candidate decided for one request.
struct ShadowVerdict {
  bool computed = false;  // false: no candidate decision (the live one did not decide)
  bool allow = false;
  bool diverged = false;  // allow differs from the live answer
  // Filled only when diverged (the decision log's "shadow" object):
  std::vector<Reason> reasons;  // the candidate's deciding rules
  std::string message;          // the candidate's deciding message
  std::string revision;         // the candidate's revision
};

// True when a Request resolved against `a` means the same inputs for `b`:
// equal action names and order, parameters (names, types, order), roles,
// workspace types, settings (names, order, defaults) and tokens.max_lifetime.
bool SameInputs(const CompiledPolicy& a, const CompiledPolicy& b);

class Shadow {
 public:
  static constexpr int kMaxActions = 256;

  // Loads the candidate. Errors: InvalidArgument with every policy error
  // (FILE:LINE:COL: message, one per line), as the live policy's.
  static Result<std::unique_ptr<Shadow>> Open(const ShadowOptions& options, LogFn log);
  ~Shadow();
  Shadow(const Shadow&) = delete;
  Shadow& operator=(const Shadow&) = delete;

  // The candidate serving as shadow. Never null.
  PolicyPtr candidate() const;

  // Loads the candidate now: true when it loaded (even unchanged), false after
  // logging the errors (the last good candidate stays).
  bool Reload();
  void RequestReload();
  void Start();
  void Stop();

  // Decides on the candidate what `live` decided for `subject`: `decided`
  // and `request` are gatehouse::Authorize's outcome for these arguments
  // (AuthzOutcome::decided, ::request), `live_allow` the answer the live
  // policy gave. Counts a divergence and, then, fills the verdict's reasons.
  void Decide(const PolicyPtr& live, bool decided, const Request& request, bool live_allow,
              const Directory& dir, const Subject& subject, std::string_view action,
              std::string_view workspace,
              const std::vector<std::pair<std::string, std::string>>& params,
              ShadowVerdict* verdict);

  // Forward-auth: under the candidate the request's route may map elsewhere.
  // The live policy mapped `method` + `segments` to `live_action` in
  // `live_workspace` (live_action empty: no route, a deny) and answered
  // `live_allow` (`decided` and `request` as for Decide). Decides the
  // candidate's route for `subject` the same way (no route: a deny).
  void DecideRoute(const PolicyPtr& live, std::string_view live_action,
                   std::string_view live_workspace, bool decided, const Request& request,
                   bool live_allow, const Directory& dir, const Subject& subject,
                   std::string_view method, const std::vector<std::string>& segments,
                   ShadowVerdict* verdict);

  // The Prometheus text of the shadow metrics (appended to /metrics).
  std::string RenderMetrics() const;
  // For tests: the divergences counted for one label set.
  uint64_t divergences(std::string_view action, bool live_allow) const;

 private:
  struct Pair;
  explicit Shadow(ShadowOptions options, LogFn log);
  std::shared_ptr<const Pair> PairFor(const PolicyPtr& live);
  void Count(std::string_view action, bool live_allow);
  void BackgroundLoop();
  std::vector<std::string> Fingerprint() const;

  const ShadowOptions options_;
  LogFn log_;

  mutable std::mutex policy_mu_;  // guards candidate_ and pair_ (held only to copy them)
  PolicyPtr candidate_;
  std::shared_ptr<const Pair> pair_;
  std::atomic<uint64_t> generation_{0};  // bumped by every candidate loaded
  std::mutex pair_build_mu_;  // one pair built at a time

  mutable std::mutex count_mu_;  // guards divergences_
  // action → [live deny→shadow allow, live allow→shadow deny]
  std::map<std::string, std::array<uint64_t, 2>, std::less<>> divergences_;
  std::atomic<uint64_t> reloads_{0}, reload_failures_{0}, slow_decisions_{0};

  std::mutex reload_mu_;  // one load at a time; guards fingerprint_
  std::vector<std::string> fingerprint_;
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  bool reload_requested_ = false;
  std::thread bg_;
};

}  // namespace gatehouse::sidecar
