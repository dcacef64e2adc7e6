// Checking invariants (issue 13): the time of one exact check of 20
// invariants, parsing included, over
//   - the default policy: the 13 shipped in policies/invariants/seed.yaml and
//     7 more, all of which hold (so every class is visited);
//   - the generated large policy (500 actions x 20 rules, 16 settings): 20
//     invariants over every action ("*"), each read against all 500, so
//     10,000 (invariant, action) checks. Half hold on every action (visited
//     in full), half break on some (each broken check stops at its first
//     counterexample). The counters say how many held and broke.
// Targets: <= 5 ms on the default policy, <= 200 ms on the large one. Figures,
// not tests: nothing here fails on a wall-clock number.
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>
#include <string>

#include "gatehouse/invariants.h"
#include "gatehouse/policy.h"
#include "large_policy.h"

namespace gatehouse::bench {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* kMoreDefault = R"yaml(
  - id: extra-owners-create-tokens
    always: {action: token.create, when: "principal.org_role == owner and workspace.type == shared and request.lifetime_seconds <= 31536000"}
  - id: extra-non-members-never-list-tokens
    never: {action: token.list, when: "principal.workspace_role == none and principal.org_role < admin"}
  - id: extra-only-admins-change-settings
    never: {action: settings.update, when: "principal.org_role < admin"}
  - id: extra-only-admins-read-audit
    never: {action: audit.read, when: "principal.org_role < admin"}
  - id: extra-members-use-tokens
    always: {action: token.use, when: "principal.workspace_role >= viewer"}
  - id: extra-admins-create-workspaces
    always: {action: workspace.create, when: "principal.org_role >= admin"}
  - id: extra-no-owner-api-user
    never: {action: api_user.set_org_role, when: "request.org_role == owner"}
)yaml";

void BM_CheckInvariantsDefaultPolicy(benchmark::State& state) {
  PolicyLoad load = LoadPolicy(GATEHOUSE_SOURCE_DIR "/policies/api-tokens.yaml");
  if (!load.ok()) {
    state.SkipWithError("the default policy does not load");
    return;
  }
  const std::string text = Slurp(GATEHOUSE_SOURCE_DIR "/policies/invariants/seed.yaml") + kMoreDefault;
  size_t n = 0, broken = 0;
  for (auto _ : state) {
    InvariantReport r = CheckInvariantsFromString(*load.policy, text, "bench.yaml");
    n = r.invariants;
    broken = r.violations.size() + r.errors.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["invariants"] = static_cast<double>(n);
  state.counters["broken"] = static_cast<double>(broken);
}
BENCHMARK(BM_CheckInvariantsDefaultPolicy)->Unit(benchmark::kMillisecond);

// Conditions over what every action of the large policy has.
const char* kLarge = R"yaml(gatehouse: v1
invariants:
  - {id: l00, never: {action: "*", when: "principal.org_role == none and principal.workspace_role == none and principal.kind == api_user and workspace.type == personal and settings.s0 and settings.s1 and false"}}
  - {id: l01, never: {action: "*", when: "principal.org_role >= admin and principal.org_role < admin"}}
  - {id: l02, always: {action: "*", when: "settings.s2 and not settings.s2"}}
  - {id: l03, never: {action: "*", when: "(settings.s3 or settings.s4) and not (settings.s3 or settings.s4)"}}
  - {id: l04, always: {action: "*", when: "principal.workspace_role > admin"}}
  - {id: l05, never: {action: "*", when: "workspace.type == personal and workspace.type == shared"}}
  - {id: l06, always: {action: "*", when: "principal.kind == user and principal.kind == api_user and settings.s5"}}
  - {id: l07, never: {action: "*", when: "settings.s6 and settings.s7 and settings.s8 and not settings.s6"}}
  - {id: l08, always: {action: "*", when: "principal.org_role < none"}}
  - {id: l09, never: {action: "*", when: "principal.workspace_role in [viewer] and principal.workspace_role in [admin]"}}
  - {id: l10, never: {action: "*", when: "principal.org_role == none and principal.workspace_role == none"}}
  - {id: l11, always: {action: "*", when: "principal.org_role == owner"}}
  - {id: l12, never: {action: "*", when: "principal.kind == api_user and workspace.type != shared"}}
  - {id: l13, always: {action: "*", when: "principal.workspace_role >= admin and settings.s9"}}
  - {id: l14, never: {action: "*", when: "principal.workspace_role <= viewer and settings.s10"}}
  - {id: l15, always: {action: "*", when: "principal.org_role >= admin and workspace.type == shared"}}
  - {id: l16, never: {action: "*", when: "principal.org_role <= contributor and not settings.s11"}}
  - {id: l17, always: {action: "*", when: "principal.kind == user and settings.s12 and settings.s13"}}
  - {id: l18, never: {action: "*", when: "workspace.type == organization and settings.s14"}}
  - {id: l19, always: {action: "*", when: "principal.workspace_role == contributor and not settings.s15"}}
)yaml";

void BM_CheckInvariantsLargePolicy(benchmark::State& state) {
  static const PolicyLoad load = LoadPolicyFromString(GenerateLargePolicy(), "large.yaml");
  if (!load.ok()) {
    state.SkipWithError("the large policy does not load");
    return;
  }
  size_t n = 0, broken = 0, errors = 0;
  for (auto _ : state) {
    InvariantReport r = CheckInvariantsFromString(*load.policy, kLarge, "large-invariants.yaml");
    n = r.invariants;
    broken = r.violations.size();
    errors = r.errors.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["invariants"] = static_cast<double>(n);
  state.counters["checks"] = static_cast<double>(n * load.policy->actions().size());
  state.counters["broken_checks"] = static_cast<double>(broken);
  state.counters["errors"] = static_cast<double>(errors);
}
BENCHMARK(BM_CheckInvariantsLargePolicy)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gatehouse::bench
