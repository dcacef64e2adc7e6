// Analyses over compiled policies: the role × action matrix and the exact
// semantic diff between two policies. Both enumerate every class of inputs
// from the decision tables, so they are exact, not sampled.
// Pure functions; thread-safe over immutable policies.
#pragma once

#include <string>
#include <vector>

#include "gatehouse/policy.h"

namespace gatehouse {

enum class Verdict : uint8_t {
  kDeny = 0,         // denied for every request parameter
  kAllow = 1,        // allowed for every request parameter
  kConditional = 2,  // allowed for some request parameters only
};

// One principal group: the principals (kind × org role × workspace role)
// that behave identically for every action, workspace type and setting.
struct MatrixGroup {
  std::string label;  // e.g. "org role ≥ admin"
  struct Member {
    std::string kind, org_role, workspace_role;
  };
  std::vector<Member> members;
};

// One workspace type under one assignment of the settings the policy reads.
struct MatrixSlice {
  std::string workspace_type;
  std::vector<std::pair<std::string, bool>> settings;
  std::vector<std::vector<Verdict>> cells;  // [action][group]
  // For conditional cells: when the action is allowed, readably.
  std::vector<std::vector<std::string>> conditions;  // [action][group]
};

struct Matrix {
  std::string policy, revision;
  std::vector<std::string> actions;
  std::vector<MatrixGroup> groups;
  std::vector<MatrixSlice> slices;
  // Why no matrix was built (then groups and slices are empty): the input
  // space has more cells than an exact enumeration may visit.
  std::vector<std::string> problems;
};

// The matrix, or (problems set) nothing when principals x workspace types x
// setting assignments x each action's request-parameter classes exceed
// kMaxAnalysisCells (4,194,304 cells), checked before enumerating anything.
Matrix BuildMatrix(const CompiledPolicy& policy);
std::string RenderMatrix(const Matrix& m);

struct DiffOptions {
  bool rules = false;  // also report changes of the deciding rule when the effect is unchanged
  // Enumerate even actions whose rules are identical in both policies (they
  // cannot differ, so by default they are skipped; tests use this).
  bool exhaustive = false;
};

// One merged change: for the inputs `condition` describes, `action` went
// from `from` to `to` ("deny" → "allow", or with rules "deny (rule)").
struct DiffChange {
  std::string action;
  std::string condition;
  std::string from, to;
};

struct PolicyDiff {
  std::vector<std::string> notes;     // structural changes: actions, roles, settings, routes
  std::vector<DiffChange> changes;    // per-action decision changes
  std::vector<std::string> problems;  // what could not be compared exactly
  bool equal() const { return notes.empty() && changes.empty() && problems.empty(); }
};

PolicyDiff DiffPolicies(const CompiledPolicy& before, const CompiledPolicy& after,
                        const DiffOptions& options = {});
std::string RenderDiff(const PolicyDiff& d);

}  // namespace gatehouse
