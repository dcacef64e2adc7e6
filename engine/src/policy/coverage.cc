// Coverage of policy tests: which rules decided a case and which cells of
// (action × principal group × workspace type × settings) a case reached.
#include <map>
#include <tuple>

#include "compile/compiled.h"
#include "gatehouse/analysis.h"
#include "gatehouse/policy_testing.h"

namespace gatehouse {

PolicyCoverage MeasureCoverage(const CompiledPolicy& policy, const std::vector<PolicyTestResult>& results) {
  PolicyCoverage cov;
  const auto& actions = policy.actions();
  const auto& compiled = policy.impl().compiled;

  // Rules that decided a case.
  std::vector<std::vector<uint8_t>> decided(actions.size());
  for (size_t a = 0; a < actions.size(); ++a) decided[a].assign(actions[a].rules.size(), 0);
  for (const PolicyTestResult& r : results) {
    const Decision& d = r.decision;
    if (d.action >= actions.size() || d.deciding < 0) continue;
    if (d.cause != Cause::kPermitted && d.cause != Cause::kForbidden) continue;
    if (static_cast<size_t>(d.deciding) < decided[d.action].size()) decided[d.action][d.deciding] = 1;
  }
  for (size_t a = 0; a < actions.size(); ++a) {
    for (size_t i = 0; i < actions[a].rules.size(); ++i) {
      ++cov.rules;
      if (decided[a][i]) ++cov.rules_decided;
      else cov.undecided_rules.emplace_back(actions[a].name, actions[a].rules[i].id);
    }
  }

  // Cells. The principal groups come from the matrix.
  Matrix m = BuildMatrix(policy);
  if (!m.problems.empty()) {
    cov.problems = m.problems;
    return cov;
  }
  std::map<std::tuple<std::string, std::string, std::string>, size_t> group_of;
  for (size_t g = 0; g < m.groups.size(); ++g)
    for (const auto& mem : m.groups[g].members) group_of[{mem.kind, mem.org_role, mem.workspace_role}] = g;
  const size_t types = static_cast<size_t>(policy.workspace_type_count());
  for (size_t a = 0; a < actions.size(); ++a) {
    // What of the workspace and the settings this action reads.
    bool reads_type = false;
    std::vector<int> settings;
    for (const auto& d : compiled[a].dims) {
      if (d.attr.kind == internal::AttrKind::kWorkspaceType) reads_type = true;
      if (d.attr.kind == internal::AttrKind::kSetting) settings.push_back(d.attr.index);
    }
    const size_t n_types = reads_type ? types : 1;
    const size_t n_settings = size_t{1} << settings.size();
    const size_t n = m.groups.size() * n_types * n_settings;
    std::vector<uint8_t> reached(n, 0);
    for (const PolicyTestResult& r : results) {
      const Request& q = r.test->request;
      if (q.action != a) continue;
      auto it = group_of.find({q.kind == PrincipalKind::kUser ? "user" : "api_user",
                               std::string(policy.OrgRoleName(q.org_role)),
                               std::string(policy.WorkspaceRoleName(q.workspace_role))});
      if (it == group_of.end()) continue;
      size_t t = reads_type ? q.workspace_type : 0;
      if (t >= n_types) continue;
      size_t bits = 0;
      for (size_t s = 0; s < settings.size(); ++s) bits |= ((q.settings >> settings[s]) & 1u) << s;
      reached[(it->second * n_types + t) * n_settings + bits] = 1;
    }
    for (size_t c = 0; c < n; ++c) {
      ++cov.cells;
      if (reached[c]) {
        ++cov.cells_reached;
        continue;
      }
      CoverageCell cell;
      cell.action = actions[a].name;
      const size_t bits = c % n_settings, t = (c / n_settings) % n_types, g = c / (n_settings * n_types);
      cell.group = m.groups[g].label;
      if (reads_type) cell.workspace_type = std::string(policy.WorkspaceTypeName(static_cast<TypeId>(t)));
      for (size_t s = 0; s < settings.size(); ++s)
        cell.settings.emplace_back(policy.settings()[settings[s]].name, ((bits >> s) & 1u) != 0);
      cov.unreached.push_back(std::move(cell));
    }
  }
  return cov;
}

}  // namespace gatehouse
