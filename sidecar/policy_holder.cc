#include "sidecar/policy_holder.h"

#include <utility>

#include "sidecar/policy_watch.h"

namespace gatehouse::sidecar {

PolicyHolder::PolicyHolder(std::string policy_path, std::vector<std::string> invariants,
                           Metrics* metrics, LogFn log)
    : policy_path_(policy_path.empty() ? DefaultPolicyPath() : std::move(policy_path)),
      invariants_(std::move(invariants)),
      metrics_(metrics),
      log_(std::move(log)) {}

Result<std::unique_ptr<PolicyHolder>> PolicyHolder::Open(std::string policy_path,
                                                         std::vector<std::string> invariants,
                                                         Metrics* metrics, LogFn log) {
  std::unique_ptr<PolicyHolder> h(
      new PolicyHolder(std::move(policy_path), std::move(invariants), metrics, std::move(log)));
  h->fingerprint_ = h->Fingerprint();
  PolicyLoad load = LoadPolicy(h->policy_path_, LoadOptions{h->invariants_});
  for (const PolicyError& w : load.warnings) h->log_(LogLevel::kWarn, w.ToString());
  if (!load.ok()) {
    return Status::InvalidArgument("policy " + h->policy_path_ + " does not load:\n" +
                                   JoinPolicyErrors(load.errors));
  }
  h->policy_.store(load.policy);
  h->metrics_->SetPolicy(load.policy->name(), load.policy->revision());
  return h;
}

std::vector<std::string> PolicyHolder::Fingerprint() const {
  return PolicyFilesFingerprint(policy_path_, invariants_);
}

bool PolicyHolder::Reload() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  fingerprint_ = Fingerprint();
  PolicyLoad load = LoadPolicy(policy_path_, LoadOptions{invariants_});
  for (const PolicyError& w : load.warnings) log_(LogLevel::kWarn, w.ToString());
  if (!load.ok()) {
    metrics_->CountReload(false);
    log_(LogLevel::kError, "policy reload failed; the previous policy (" + policy()->revision() +
                               ") keeps serving:\n" + JoinPolicyErrors(load.errors));
    return false;
  }
  PolicyPtr old = policy_.exchange(load.policy);
  metrics_->SetPolicy(load.policy->name(), load.policy->revision());
  metrics_->CountReload(true);
  if (old->revision() != load.policy->revision()) {
    log_(LogLevel::kInfo, "policy reloaded: " + load.policy->name() + " " +
                              load.policy->revision() + " (was " + old->revision() + ")");
  } else {
    log_(LogLevel::kInfo, "policy reloaded: " + load.policy->name() + " " +
                              load.policy->revision() + " (unchanged)");
  }
  return true;
}

bool PolicyHolder::ReloadIfChanged() {
  std::vector<std::string> now = Fingerprint();
  {
    std::lock_guard<std::mutex> lock(reload_mu_);
    if (now == fingerprint_) return false;
  }
  // Let a writer finish: load once the files have stopped changing.
  WaitUntilPolicyFilesSettle(policy_path_, invariants_, std::move(now));
  Reload();
  return true;
}

}  // namespace gatehouse::sidecar
