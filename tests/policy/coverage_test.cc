// Coverage of policy tests (`policy test --coverage`): exact counts on a small
// policy, and, generated from the matrix, one case per cell of the default
// policy reaches every cell, while leaving any one case out leaves exactly
// its cell unreached.
#include <gtest/gtest.h>

#include <random>

#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"
#include "gatehouse/policy_testing.h"

namespace gatehouse {
namespace {

const char* kSmall = R"yaml(gatehouse: v1
policy: small
roles: {organization: [viewer, admin], workspace: [viewer, admin]}
workspace_types: [personal, shared]
settings:
  toggle: {type: bool, default: false}
actions:
  a.read:
    permit:
      - rule: members
        when: principal.workspace_role >= viewer
  a.write:
    permit:
      - rule: ws-admins-with-toggle
        when: principal.workspace_role >= admin and settings.toggle
      - rule: org-admins
        when: principal.org_role >= admin
    forbid:
      - rule: shared-only
        when: workspace.type != shared
)yaml";

TEST(Coverage, CountsRulesThatDecidedAndCellsReachedExactly) {
  PolicyLoad load = LoadPolicyFromString(kSmall, "small.yaml");
  ASSERT_TRUE(load.ok());
  const CompiledPolicy& p = *load.policy;
  Matrix m = BuildMatrix(p);
  ASSERT_TRUE(m.problems.empty());
  const size_t groups = m.groups.size();
  PolicyTestSuite suite = LoadPolicyTestsFromString(R"yaml(tests:
  - {action: a.read, principal: {kind: user, org_role: viewer, workspace_role: viewer}, expect: allow}
  - {action: a.read, principal: {kind: user, org_role: viewer, workspace_role: viewer}, workspace: shared, expect: allow}
  - {action: a.write, principal: {kind: user, org_role: admin, workspace_role: none}, workspace: shared, expect: allow}
  - {action: a.write, principal: {kind: user, org_role: viewer, workspace_role: viewer}, workspace: shared, expect: deny}
)yaml", "t.yaml", p);
  ASSERT_TRUE(suite.errors.empty()) << suite.errors[0].ToString();
  PolicyCoverage c = MeasureCoverage(p, RunPolicyTests(suite, p));
  EXPECT_EQ(c.rules, 4u);
  EXPECT_EQ(c.rules_decided, 2u);  // members, org-admins; a default deny decides nothing
  ASSERT_EQ(c.undecided_rules.size(), 2u);
  EXPECT_EQ(c.undecided_rules[0], std::make_pair(std::string("a.write"), std::string("ws-admins-with-toggle")));
  EXPECT_EQ(c.undecided_rules[1], std::make_pair(std::string("a.write"), std::string("shared-only")));
  // a.read reads neither the type nor the toggle: one cell per group, and the
  // two cases that differ only in the workspace type land in the same one.
  // a.write reads both: groups x 2 types x 2 toggle values.
  EXPECT_EQ(c.cells, groups + groups * 2 * 2);
  EXPECT_EQ(c.cells_reached, 3u);
  EXPECT_EQ(c.unreached.size(), c.cells - 3);
  for (const auto& cell : c.unreached) {
    if (cell.action == "a.read") {
      EXPECT_EQ(cell.workspace_type, "");
      EXPECT_TRUE(cell.settings.empty());
    } else {
      EXPECT_NE(cell.workspace_type, "");
      EXPECT_EQ(cell.settings.size(), 1u);
    }
  }
  EXPECT_DOUBLE_EQ(c.rule_percent(), 50.0);
}

// One case per cell of the default policy, built from the matrix's groups.
TEST(Coverage, OneGeneratedCasePerCellReachesAllAndEachOmissionIsSeen) {
  PolicyLoad load = LoadPolicy(GATEHOUSE_SOURCE_DIR "/policies/api-tokens.yaml");
  ASSERT_TRUE(load.ok());
  const CompiledPolicy& p = *load.policy;
  Matrix m = BuildMatrix(p);
  ASSERT_TRUE(m.problems.empty());
  std::string yaml = "tests:\n";
  size_t n = 0;
  for (const auto& action : p.actions()) {
    for (const auto& g : m.groups) {
      const auto& mem = g.members.front();
      for (int t = 0; t < p.workspace_type_count(); ++t) {
        for (bool toggle : {false, true}) {
          yaml += "  - {action: " + action.name + ", principal: {kind: " + mem.kind + ", org_role: " + mem.org_role +
                  ", workspace_role: " + mem.workspace_role + "}, workspace: " +
                  std::string(p.WorkspaceTypeName(static_cast<TypeId>(t))) +
                  ", settings: {workspace_admins_can_create_tokens: " + (toggle ? "true" : "false") +
                  "}, expect: deny}\n";
          ++n;
        }
      }
    }
  }
  PolicyTestSuite suite = LoadPolicyTestsFromString(yaml, "generated.yaml", p);
  ASSERT_TRUE(suite.errors.empty()) << suite.errors[0].ToString();
  ASSERT_EQ(suite.cases.size(), n);
  std::vector<PolicyTestResult> results = RunPolicyTests(suite, p);
  PolicyCoverage all = MeasureCoverage(p, results);
  EXPECT_EQ(all.cells_reached, all.cells);
  EXPECT_TRUE(all.unreached.empty());
  EXPECT_DOUBLE_EQ(all.cell_percent(), 100.0);
  // Each case's cell: the one a run of that case alone leaves off the list
  // of all cells (computed once per case).
  const std::vector<CoverageCell> every = MeasureCoverage(p, {}).unreached;
  ASSERT_EQ(every.size(), all.cells);
  auto same = [](const CoverageCell& x, const CoverageCell& y) {
    return x.action == y.action && x.group == y.group && x.workspace_type == y.workspace_type && x.settings == y.settings;
  };
  std::vector<size_t> cell_of;
  for (const auto& r : results) {
    const std::vector<CoverageCell> left = MeasureCoverage(p, {r}).unreached;
    ASSERT_EQ(left.size(), every.size() - 1);
    size_t k = 0;
    while (k < left.size() && same(left[k], every[k])) ++k;
    cell_of.push_back(k);
  }
  // Leave out every case of one random cell: exactly that cell is unreached.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const size_t cell = cell_of[rng() % results.size()];
    std::vector<PolicyTestResult> kept;
    for (size_t i = 0; i < results.size(); ++i)
      if (cell_of[i] != cell) kept.push_back(results[i]);
    PolicyCoverage c = MeasureCoverage(p, kept);
    EXPECT_EQ(c.cells_reached, all.cells - 1);
    ASSERT_EQ(c.unreached.size(), 1u);
    EXPECT_TRUE(same(c.unreached[0], every[cell]));
  }
}

}  // namespace
}  // namespace gatehouse
