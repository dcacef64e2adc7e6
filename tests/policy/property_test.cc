// Property tests: for random valid policies, the compiled tables agree with a
// straightforward reference evaluator (policy/reference_policy.h, not the engine), on
// every input class; and diff(P, P) is empty.
#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <set>

#include "compile/compiled.h"  // to see which table layout an action got
#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"
#include "policy/reference_policy.h"

namespace gatehouse {
namespace {

using namespace gatehouse::reference;  // NOLINT: the reference model, shared with invariant_property_test

class RandomPolicies : public ::testing::TestWithParam<int> {};

TEST_P(RandomPolicies, CompiledTableAgreesWithReferenceOnEveryClass) {
  Gen g(static_cast<uint64_t>(GetParam()) * 7919 + 17);
  g.Generate();
  std::string yaml = g.Yaml();
  PolicyLoad load = LoadPolicyFromString(yaml, "random.yaml");
  ASSERT_TRUE(load.ok()) << (load.errors.empty() ? "" : load.errors[0].ToString()) << "\n" << yaml;
  const CompiledPolicy& p = *load.policy;
  EXPECT_TRUE(DiffPolicies(p, p).equal());
  // The exhaustive comparison finds no change either (or says the space is
  // too large to enumerate; it never invents a difference).
  PolicyDiff exhaustive = DiffPolicies(p, p, DiffOptions{.rules = true, .exhaustive = true});
  EXPECT_TRUE(exhaustive.changes.empty() && exhaustive.notes.empty());

  // Integer probes: every constant, its neighbours and the extremes.
  std::set<int64_t> probes = {INT64_MIN, INT64_MAX, 0};
  for (int64_t c : g.int_constants) probes.insert({c - 1, c, c + 1});
  if (g.max_lifetime) probes.insert({g.max_lifetime - 1, g.max_lifetime, g.max_lifetime + 1});
  std::mt19937_64 rng(GetParam());
  long checked = 0;
  for (const Action& a : g.actions) {
    ActionId id = p.FindAction(a.name).value();
    for (int sample = 0; sample < 3000; ++sample) {
      Input in;
      in.kind = rng() % 2;
      in.org = rng() % (g.org_n + 1);
      in.ws = rng() % (g.ws_n + 1);
      in.type = rng() % g.type_n;
      for (int s = 0; s < g.settings_n; ++s) in.settings.push_back(rng() % 2);
      Request r;
      r.action = id;
      r.kind = static_cast<PrincipalKind>(in.kind);
      r.org_role = p.FindOrgRole(g.OrgName(in.org)).value();
      r.workspace_role = p.FindWorkspaceRole(g.WsName(in.ws)).value();
      r.workspace_type = p.FindWorkspaceType(g.TypeName(in.type)).value();
      for (int s = 0; s < g.settings_n; ++s)
        if (in.settings[s]) r.settings |= uint64_t{1} << p.FindSetting("s" + std::to_string(s)).value();
      for (const Param& prm : a.params) {
        int64_t v;
        if (prm.type == T::kInt) {
          auto it = probes.begin();
          std::advance(it, rng() % probes.size());
          v = *it;
        } else {
          v = rng() % g.Size(prm.type);
        }
        in.params[prm.name] = v;
        int slot = p.FindParam(id, prm.name).value();
        // Role parameters by name → this policy's id.
        if (prm.type == T::kOrg) v = p.FindOrgRole(g.OrgName(v)).value();
        if (prm.type == T::kWs) v = p.FindWorkspaceRole(g.WsName(v)).value();
        r.params[slot] = v;
      }
      auto [allow, rule] = Reference(g, a, in);
      Decision d = p.Decide(r);
      ASSERT_EQ(d.allowed(), allow) << "action " << a.name << " sample " << sample << "\n" << yaml;
      ASSERT_EQ(std::string(p.DecidingRule(d)), rule) << "action " << a.name << "\n" << yaml;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomPolicies, ::testing::Range(0, 60));

// The seeds above must cover both table layouts, or the agreement proves less.
TEST(RandomPoliciesCoverage, BothDenseAndPerRuleTablesAreExercised) {
  int dense = 0, per_rule = 0;
  for (int seed = 0; seed < 60; ++seed) {
    Gen g(static_cast<uint64_t>(seed) * 7919 + 17);
    g.Generate();
    PolicyLoad load = LoadPolicyFromString(g.Yaml(), "random.yaml");
    ASSERT_TRUE(load.ok());
    for (const auto& a : load.policy->impl().compiled) (a.dense ? dense : per_rule)++;
  }
  EXPECT_GT(dense, 10);
  EXPECT_GT(per_rule, 2);
  std::cout << "dense actions: " << dense << ", per-rule actions: " << per_rule << "\n";
}

}  // namespace
}  // namespace gatehouse
