// PolicyHolder: the serving policy. Loads and compiles the policy files
// (and the invariants checked on every load) beside the serving one and
// swaps a shared_ptr; requests hold the pointer they started with, so
// in-flight requests finish on their policy. A policy that fails to load is
// logged with its FILE:LINE:COL errors and counted; the previous one keeps
// serving.
//
// Who reloads: the caller (State's background thread polls
// ReloadIfChanged(); SIGHUP calls Reload()).
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gatehouse/policy.h"
#include "gatehouse/status.h"
#include "sidecar/log.h"
#include "sidecar/metrics.h"
#include "sidecar/store_view.h"

namespace gatehouse::sidecar {

class PolicyHolder {
 public:
  // Loads the policy at `policy_path` (empty: DefaultPolicyPath()).
  // InvalidArgument with every error (FILE:LINE:COL: message, one per line).
  static Result<std::unique_ptr<PolicyHolder>> Open(std::string policy_path,
                                                    std::vector<std::string> invariants,
                                                    Metrics* metrics, LogFn log);
  PolicyHolder(const PolicyHolder&) = delete;
  PolicyHolder& operator=(const PolicyHolder&) = delete;

  // The serving policy. Never null.
  PolicyPtr policy() const { return policy_.load(); }
  const std::string& policy_path() const { return policy_path_; }

  // Loads the policy now. True when a valid policy was loaded (even if its
  // revision is unchanged); false after logging and counting the errors.
  bool Reload();
  // Reloads when a policy or invariant file changed since the last load
  // (once the files have stopped changing). Returns whether it reloaded.
  bool ReloadIfChanged();

 private:
  PolicyHolder(std::string policy_path, std::vector<std::string> invariants, Metrics* metrics,
               LogFn log);
  std::vector<std::string> Fingerprint() const;

  const std::string policy_path_;
  const std::vector<std::string> invariants_;
  Metrics* const metrics_;
  const LogFn log_;
  SharedCell<CompiledPolicy> policy_;
  std::mutex reload_mu_;  // one load at a time; guards fingerprint_
  std::vector<std::string> fingerprint_;
};

}  // namespace gatehouse::sidecar
