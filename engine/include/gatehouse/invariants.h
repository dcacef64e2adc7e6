// Invariants: statements over a policy that must hold for every input,
// proven exactly over its compiled decision tables (no sampling, no solver).
//
//   gatehouse: v1
//   invariants:
//     - id: viewers-never-create-tokens
//       never: {action: [token.create], when: "principal.workspace_role <= viewer"}
//       message: Viewers never mint credentials.
//     - id: org-admins-can-always-revoke
//       always: {action: token.revoke, when: "principal.org_role >= admin and workspace.type == shared"}
//
// `never`: no allowed input satisfies `when`. `always`: every input that
// satisfies `when` is allowed. `when` is the policy's expression language,
// type-checked against the policy (and against each listed action's request
// parameters), so an unknown attribute, role or setting is a positioned error.
//
// The check enumerates, per listed action, every class of inputs over the
// attributes that the action's rules and the invariant read together (an
// integer parameter is split at the constants both compare it with), so one
// representative per class decides for all its members. Load time only: the
// hot path (Decide) never sees an invariant. Pure functions over immutable
// policies; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/policy.h"

namespace gatehouse {

// One input for which an invariant fails: a concrete request and how the
// policy decided it.
struct InvariantViolation {
  std::string id;       // the invariant's id
  std::string message;  // its message ("" when none)
  std::string form;     // "never" or "always"
  std::string when;     // its condition as written
  PolicyError where;    // the invariant's position (message empty)
  std::string action;
  Request request;  // the counterexample, ids resolved against the policy
  Decision decision;
  // The request in words: "kind=api_user org_role=viewer workspace_role=admin
  // workspace.type=shared settings.x=true request.lifetime_seconds=0".
  std::string request_text;
  std::vector<std::string> rules;  // the rules that decided it (Explain)
  // "FILE:LINE:COL: invariant ID broken: ... " — one line for people.
  std::string ToString() const;
};

struct InvariantReport {
  size_t invariants = 0;  // how many were read (and checked, when errors is empty)
  std::vector<PolicyError> errors;    // unreadable files, bad YAML, bad expressions (sorted)
  std::vector<PolicyError> warnings;  // skipped files (see PolicyLoad::warnings)
  std::vector<InvariantViolation> violations;  // one per broken invariant and action
  bool ok() const { return errors.empty() && violations.empty(); }
  // errors, then each violation as a positioned error, sorted.
  std::vector<PolicyError> AllErrors() const;
};

// Reads the invariant files of each path (a file, or a folder's *.yaml and
// *.yml) and checks them against `policy`. A path that does not exist is an
// error. Ids must be unique across all the files.
InvariantReport CheckInvariants(const CompiledPolicy& policy, const std::vector<std::string>& paths);
// The same for one file's text held in memory; `file` names it in errors.
InvariantReport CheckInvariantsFromString(const CompiledPolicy& policy, std::string_view yaml,
                                          const std::string& file = "<memory>");

// The invariant folders a load of `policy_path` checks: its invariants/
// subfolder when `policy_path` is a folder that has one, then `extra`.
std::vector<std::string> InvariantPaths(const std::string& policy_path, const std::vector<std::string>& extra);

}  // namespace gatehouse
