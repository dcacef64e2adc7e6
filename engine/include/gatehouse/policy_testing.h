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

}  // namespace gatehouse
