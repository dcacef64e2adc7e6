#include "sidecar/shadow.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "sidecar/policy_watch.h"

namespace gatehouse::sidecar {
namespace {

constexpr std::string_view kOtherAction = "_other";

std::string_view EffectName(bool allow) { return allow ? "allow" : "deny"; }

// Prometheus label values escape backslash, double quote and newline (as metrics.cc).
std::string Label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

bool SameInputs(const CompiledPolicy& a, const CompiledPolicy& b) {
  if (a.org_role_count() != b.org_role_count() ||
      a.workspace_role_count() != b.workspace_role_count() ||
      a.workspace_type_count() != b.workspace_type_count() ||
      a.default_settings() != b.default_settings() ||
      a.max_token_lifetime_seconds() != b.max_token_lifetime_seconds() ||
      a.actions().size() != b.actions().size() || a.settings().size() != b.settings().size())
    return false;
  for (int i = 0; i < a.org_role_count(); ++i)
    if (a.OrgRoleName(static_cast<RoleId>(i)) != b.OrgRoleName(static_cast<RoleId>(i))) return false;
  for (int i = 0; i < a.workspace_role_count(); ++i)
    if (a.WorkspaceRoleName(static_cast<RoleId>(i)) != b.WorkspaceRoleName(static_cast<RoleId>(i)))
      return false;
  for (int i = 0; i < a.workspace_type_count(); ++i)
    if (a.WorkspaceTypeName(static_cast<TypeId>(i)) != b.WorkspaceTypeName(static_cast<TypeId>(i)))
      return false;
  for (size_t i = 0; i < a.settings().size(); ++i)
    if (a.settings()[i].name != b.settings()[i].name) return false;
  for (size_t i = 0; i < a.actions().size(); ++i) {
    const ActionInfo& x = a.actions()[i];
    const ActionInfo& y = b.actions()[i];
    if (x.name != y.name || x.params.size() != y.params.size()) return false;
    for (size_t k = 0; k < x.params.size(); ++k)
      if (x.params[k].name != y.params[k].name || x.params[k].type != y.params[k].type) return false;
  }
  return true;
}

// The candidate together with the live policy it was compared with.
struct Shadow::Pair {
  PolicyPtr live;
  PolicyPtr candidate;
  uint64_t generation = 0;  // of the candidate
  bool same_inputs = false;
  std::optional<ActionId> token_use;  // the candidate's token.use
};

Shadow::Shadow(ShadowOptions options, LogFn log)
    : options_(std::move(options)), log_(std::move(log)) {}

Result<std::unique_ptr<Shadow>> Shadow::Open(const ShadowOptions& options, LogFn log) {
  if (options.policy_path.empty()) return Status::InvalidArgument("--shadow-policy needs a path");
  std::unique_ptr<Shadow> s(new Shadow(options, std::move(log)));
  s->fingerprint_ = s->Fingerprint();
  PolicyLoad load = LoadPolicy(options.policy_path, LoadOptions{options.invariants});
  for (const PolicyError& w : load.warnings)
    s->log_(LogLevel::kWarn, "shadow policy: " + w.ToString());
  if (!load.ok()) {
    return Status::InvalidArgument("shadow policy " + options.policy_path + " does not load:\n" +
                                   JoinPolicyErrors(load.errors));
  }
  s->candidate_ = load.policy;
  return s;
}

Shadow::~Shadow() { Stop(); }

PolicyPtr Shadow::candidate() const {
  std::lock_guard<std::mutex> lock(policy_mu_);
  return candidate_;
}

bool Shadow::Reload() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  fingerprint_ = Fingerprint();
  PolicyLoad load = LoadPolicy(options_.policy_path, LoadOptions{options_.invariants});
  for (const PolicyError& w : load.warnings)
    log_(LogLevel::kWarn, "shadow policy: " + w.ToString());
  const PolicyPtr old = candidate();
  if (!load.ok()) {
    reload_failures_.fetch_add(1, std::memory_order_relaxed);
    log_(LogLevel::kError, "shadow policy reload failed; the previous candidate (" +
                               old->revision() + ") keeps shadowing:\n" +
                               JoinPolicyErrors(load.errors));
    return false;
  }
  {
    std::lock_guard<std::mutex> p(policy_mu_);
    candidate_ = load.policy;
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  reloads_.fetch_add(1, std::memory_order_relaxed);
  log_(LogLevel::kInfo,
       "shadow policy reloaded: " + load.policy->name() + " " + load.policy->revision() +
           (old->revision() != load.policy->revision() ? " (was " + old->revision() + ")"
                                                       : std::string(" (unchanged)")));
  return true;
}

void Shadow::RequestReload() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    reload_requested_ = true;
  }
  bg_cv_.notify_all();
}

std::shared_ptr<const Shadow::Pair> Shadow::PairFor(const PolicyPtr& live) {
  std::shared_ptr<const Pair> pair;
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    pair = pair_;
  }
  if (pair && pair->live == live && pair->generation == generation_.load(std::memory_order_acquire))
    return pair;
  // After a reload of either side: compare once, off every later request.
  // (The pair holds the live policy, so its address is not reused while cached.)
  std::lock_guard<std::mutex> build(pair_build_mu_);
  auto fresh = std::make_shared<Pair>();
  fresh->live = live;
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    fresh->candidate = candidate_;
    fresh->generation = generation_.load(std::memory_order_acquire);
  }
  fresh->same_inputs = SameInputs(*live, *fresh->candidate);
  fresh->token_use = fresh->candidate->FindAction(kTokenUseAction);
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    pair_ = fresh;
  }
  return fresh;
}

void Shadow::Decide(const PolicyPtr& live, bool decided, const Request& request,
                    bool live_allow, const Directory& dir, const Subject& subject,
                    std::string_view action, std::string_view workspace,
                    const std::vector<std::pair<std::string, std::string>>& params,
                    ShadowVerdict* verdict) {
  const std::shared_ptr<const Pair> pair = PairFor(live);
  const CompiledPolicy& cand = *pair->candidate;
  verdict->computed = true;
  Decision decision;
  bool have_decision = false;
  Result<AuthzOutcome> slow = AuthzOutcome{};
  bool use_slow = false;
  if (pair->same_inputs) {
    if (!decided) {
      // Denied before the policy was asked (unknown workspace, type, role,
      // lifetime cap): the candidate reads the same inputs, so it would be too.
      verdict->allow = false;
    } else {
      // The hot path: the live Request means the same for the candidate.
      bool gate_denied = false;
      if (pair->token_use && request.kind == PrincipalKind::kApiUser &&
          *pair->token_use != request.action) {
        Request gate = request;
        gate.action = *pair->token_use;
        gate.params = {};
        decision = cand.Decide(gate);
        gate_denied = !decision.allowed();
      }
      if (!gate_denied) decision = cand.Decide(request);
      have_decision = true;
      verdict->allow = decision.allowed();
    }
  } else {
    slow_decisions_.fetch_add(1, std::memory_order_relaxed);
    slow = gatehouse::Authorize(cand, dir, subject, action, workspace, params);
    use_slow = true;
    verdict->allow = slow.ok() && slow->allow;
  }
  verdict->diverged = verdict->allow != live_allow;
  if (!verdict->diverged) return;
  Count(action, live_allow);
  verdict->revision = cand.revision();
  if (have_decision) {
    verdict->reasons = cand.Explain(decision);
    verdict->message = cand.DecidingMessage(decision);
  } else if (use_slow && !slow.ok()) {  // the candidate cannot even parse the question
    verdict->message = slow.status().message();
    verdict->reasons.push_back({"invalid-request", Effect::kDeny, verdict->message});
  } else if (use_slow) {
    verdict->reasons = std::move(slow->reasons);
    verdict->message = slow->decided ? cand.DecidingMessage(slow->decision)
                                     : (verdict->reasons.empty() ? "" : verdict->reasons[0].message);
  }
}

void Shadow::DecideRoute(const PolicyPtr& live, std::string_view live_action,
                         std::string_view live_workspace, bool decided, const Request& request,
                         bool live_allow, const Directory& dir, const Subject& subject,
                         std::string_view method, const std::vector<std::string>& segments,
                         ShadowVerdict* verdict) {
  const PolicyPtr cand = PairFor(live)->candidate;
  const auto route = cand->MatchRoute(method, segments);
  if (!route) {
    verdict->computed = true;
    verdict->allow = false;
    verdict->diverged = live_allow;
    if (!verdict->diverged) return;
    Count(live_action, live_allow);
    verdict->revision = cand->revision();
    verdict->message = "no route of policy " + cand->name() + " maps this request to an action";
    verdict->reasons.push_back({"no-route", Effect::kDeny, verdict->message});
    return;
  }
  const std::string& action = cand->action(route->action)->name;
  const std::string_view workspace =
      route->workspace.empty() ? std::string_view(subject.workspace_name) : std::string_view(route->workspace);
  if (!live_action.empty() && action == live_action && workspace == live_workspace) {
    Decide(live, decided, request, live_allow, dir, subject, action, workspace, {}, verdict);
    return;
  }
  // Another action or workspace than the live route's: decide it afresh.
  slow_decisions_.fetch_add(1, std::memory_order_relaxed);
  // (The candidate's own route: its action exists by construction.)
  AuthzOutcome o = gatehouse::Authorize(*cand, dir, subject, RouteQuestion(*cand, route->action, workspace));
  verdict->computed = true;
  verdict->allow = o.allow;
  verdict->diverged = verdict->allow != live_allow;
  if (!verdict->diverged) return;
  Count(live_action.empty() ? std::string_view(action) : live_action, live_allow);
  verdict->revision = cand->revision();
  verdict->reasons = std::move(o.reasons);
  if (o.decided) verdict->message = cand->DecidingMessage(o.decision);
}

void Shadow::Count(std::string_view action, bool live_allow) {
  std::lock_guard<std::mutex> lock(count_mu_);
  auto it = divergences_.find(action);
  if (it == divergences_.end()) {
    const bool full = divergences_.size() >= static_cast<size_t>(kMaxActions);
    it = divergences_.emplace(std::string(full ? kOtherAction : action), std::array<uint64_t, 2>{}).first;
  }
  ++it->second[live_allow ? 1 : 0];
}

uint64_t Shadow::divergences(std::string_view action, bool live_allow) const {
  std::lock_guard<std::mutex> lock(count_mu_);
  auto it = divergences_.find(action);
  return it == divergences_.end() ? 0 : it->second[live_allow ? 1 : 0];
}

std::string Shadow::RenderMetrics() const {
  std::string out;
  const PolicyPtr cand = candidate();
  out += "# HELP gatehouse_shadow_policy_info The candidate policy decided beside the live one (--shadow-policy).\n";
  out += "# TYPE gatehouse_shadow_policy_info gauge\n";
  out += "gatehouse_shadow_policy_info{name=\"" + Label(cand->name()) + "\",revision=\"" +
         Label(cand->revision()) + "\"} 1\n";
  out += "# HELP gatehouse_shadow_divergences_total Decisions whose effect under the candidate policy differs from the live answer.\n";
  out += "# TYPE gatehouse_shadow_divergences_total counter\n";
  {
    std::lock_guard<std::mutex> lock(count_mu_);
    for (const auto& [action, n] : divergences_) {
      for (int live_allow = 0; live_allow < 2; ++live_allow) {
        if (n[live_allow] == 0) continue;
        out += "gatehouse_shadow_divergences_total{action=\"" + Label(action) + "\",live=\"";
        out += EffectName(live_allow == 1);
        out += "\",shadow=\"";
        out += EffectName(live_allow == 0);
        out += "\"} " + std::to_string(n[live_allow]) + "\n";
      }
    }
  }
  out += "# HELP gatehouse_shadow_policy_reloads_total Candidate policy reloads by result.\n";
  out += "# TYPE gatehouse_shadow_policy_reloads_total counter\n";
  out += "gatehouse_shadow_policy_reloads_total{result=\"ok\"} " + std::to_string(reloads_.load()) + "\n";
  out += "gatehouse_shadow_policy_reloads_total{result=\"error\"} " +
         std::to_string(reload_failures_.load()) + "\n";
  out += "# HELP gatehouse_shadow_slow_decisions_total Shadow decisions that could not reuse the live request (the candidate reads other inputs, or routes elsewhere).\n";
  out += "# TYPE gatehouse_shadow_slow_decisions_total counter\n";
  out += "gatehouse_shadow_slow_decisions_total " + std::to_string(slow_decisions_.load()) + "\n";
  return out;
}

std::vector<std::string> Shadow::Fingerprint() const {
  return PolicyFilesFingerprint(options_.policy_path, options_.invariants);
}

void Shadow::Start() {
  std::lock_guard<std::mutex> lock(bg_mu_);
  if (bg_.joinable()) return;
  bg_stop_ = false;
  bg_ = std::thread([this] { BackgroundLoop(); });
}

void Shadow::Stop() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_.joinable()) bg_.join();
}

void Shadow::BackgroundLoop() {
  const auto poll =
      std::chrono::milliseconds(options_.policy_poll_ms > 0 ? options_.policy_poll_ms : 1000);
  std::unique_lock<std::mutex> lock(bg_mu_);
  while (!bg_stop_) {
    bg_cv_.wait_for(lock, poll, [this] { return bg_stop_ || reload_requested_; });
    if (bg_stop_) break;
    const bool requested = reload_requested_;
    reload_requested_ = false;
    lock.unlock();
    if (requested) {
      log_(LogLevel::kInfo, "SIGHUP: reloading the shadow policy");
      Reload();
    } else if (options_.policy_poll_ms > 0) {
      std::vector<std::string> now = Fingerprint();
      bool changed;
      {
        std::lock_guard<std::mutex> rl(reload_mu_);
        changed = now != fingerprint_;
      }
      if (changed) {
        // Let a writer finish: load once the files have stopped changing.
        WaitUntilPolicyFilesSettle(options_.policy_path, options_.invariants, std::move(now));
        Reload();
      }
    }
    lock.lock();
  }
}

}  // namespace gatehouse::sidecar
