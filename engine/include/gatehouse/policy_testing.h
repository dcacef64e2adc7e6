// Policy tests: cases in policies/tests/*.yaml run against a compiled policy.
//
// A case names a principal (kind, org role, workspace role), a workspace type,
// settings, request parameters and an action, with the expected decision and,
// optionally, the rule expected to decide. Loading resolves every name against
// the policy, so a case that names an unknown role is an error with a position.
#pragma once

#include <string>
#include <vector>

#include "gatehouse/policy.h"

namespace gatehouse {

struct PolicyTestCase {
  std::string file;
  int line = 0;
  std::string name;
  Request request;
  Effect expect = Effect::kDeny;
  std::string rule;  // expected deciding rule; empty = not checked
};

struct PolicyTestResult {
  const PolicyTestCase* test = nullptr;
  Decision decision;
  bool passed = false;
  std::string actual_rule;  // the rule that actually decided
};

struct PolicyTestSuite {
  std::vector<PolicyTestCase> cases;
  std::vector<PolicyError> errors;  // sorted; non-empty means the suite cannot run
  std::vector<PolicyError> warnings;  // test files skipped (see PolicyLoad::warnings)
};

// Loads the test files of `path` (a policy folder's tests/, a tests folder, or
// one file) against `policy`.
PolicyTestSuite LoadPolicyTests(const std::string& path, const CompiledPolicy& policy);
PolicyTestSuite LoadPolicyTestsFromString(std::string_view yaml, const std::string& file,
                                          const CompiledPolicy& policy);

// Runs every case; results in the suite's order.
std::vector<PolicyTestResult> RunPolicyTests(const PolicyTestSuite& suite, const CompiledPolicy& policy);

// Coverage of a test run (`policy test --coverage`).
//
// Rules: a rule is covered when it decided at least one case (the matching
// forbid of a denial or the matching permit of an allow; a permit that was
// only "missing" in a default deny decided nothing). Cells: per action, the
// principal groups of the role × action matrix (principals that behave alike
// everywhere) × the workspace types × the settings, each of the last two only
// when the action's rules read it (an action that ignores the workspace type
// has one cell per group and setting assignment, not one per type). A cell is
// reached when a case lands in it.
struct CoverageCell {
  std::string action;
  std::string group;           // the matrix group's label, e.g. "org role ≥ admin"
  std::string workspace_type;  // "" when the action does not read it
  std::vector<std::pair<std::string, bool>> settings;  // those the action reads
};

struct PolicyCoverage {
  size_t rules = 0, rules_decided = 0;
  std::vector<std::pair<std::string, std::string>> undecided_rules;  // (action, rule id), in policy order
  size_t cells = 0, cells_reached = 0;
  std::vector<CoverageCell> unreached;  // in policy order
  std::vector<std::string> problems;    // why no cells were counted (the matrix is too large)
  double rule_percent() const { return rules ? 100.0 * static_cast<double>(rules_decided) / static_cast<double>(rules) : 100.0; }
  double cell_percent() const { return cells ? 100.0 * static_cast<double>(cells_reached) / static_cast<double>(cells) : 100.0; }
};

PolicyCoverage MeasureCoverage(const CompiledPolicy& policy, const std::vector<PolicyTestResult>& results);

}  // namespace gatehouse
