// Property test: for random policies and random invariants, the exact check
// (gatehouse/invariants.h) agrees with brute force — the reference evaluator
// (policy/reference_policy.h) run on every input — and every counterexample it
// reports is one the reference decides the way the report says. Seeds whose
// input space is too large to visit whole are checked against a random sample
// of it instead: an invariant the check calls unbroken must hold on every
// sampled input.
#include <gtest/gtest.h>

#include <iostream>
#include <random>
#include <set>

#include "gatehouse/invariants.h"
#include "gatehouse/policy.h"
#include "policy/reference_policy.h"

namespace gatehouse {
namespace {

using namespace gatehouse::reference;  // NOLINT: the shared reference model

// Brute force stays below this many inputs per action; larger random
// policies (many settings) get kSampledInputs random inputs per invariant,
// and the coverage test demands that most seeds are visited whole.
constexpr uint64_t kMaxBruteForce = 200'000;
constexpr int kSampledInputs = 20'000;

struct RandomInvariant {
  std::string id;
  bool never = true;
  size_t action = 0;
  std::shared_ptr<Node> when;
};

// Every input of an action: the reference's domains, integers at every probe.
template <typename F>
void ForEveryInput(const Gen& g, const Action& a, const std::vector<int64_t>& probes, F&& f) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> params;
  for (const Param& p : a.params) {
    std::vector<int64_t> vals;
    if (p.type == T::kInt) vals = probes;
    else for (int i = 0; i < const_cast<Gen&>(g).Size(p.type); ++i) vals.push_back(i);
    params.emplace_back(p.name, vals);
  }
  Input in;
  in.settings.assign(g.settings_n, 0);
  std::vector<size_t> pi(params.size(), 0);
  for (in.kind = 0; in.kind < 2; ++in.kind)
    for (in.org = 0; in.org <= g.org_n; ++in.org)
      for (in.ws = 0; in.ws <= g.ws_n; ++in.ws)
        for (in.type = 0; in.type < g.type_n; ++in.type)
          for (uint64_t bits = 0; bits < (uint64_t{1} << g.settings_n); ++bits) {
            for (int s = 0; s < g.settings_n; ++s) in.settings[s] = (bits >> s) & 1;
            std::fill(pi.begin(), pi.end(), 0);
            while (true) {
              for (size_t i = 0; i < params.size(); ++i) in.params[params[i].first] = params[i].second[pi[i]];
              f(in);
              size_t i = params.size();
              while (i > 0 && ++pi[i - 1] == params[i - 1].second.size()) pi[--i] = 0;
              if (i == 0) break;
            }
          }
}

// `count` inputs of an action drawn at random from the domains ForEveryInput
// visits.
template <typename F>
void ForSampledInputs(const Gen& g, const Action& a, const std::vector<int64_t>& probes, int count,
                      std::mt19937_64& rng, F&& f) {
  auto below = [&rng](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); };
  Input in;
  in.settings.assign(g.settings_n, 0);
  for (int n = 0; n < count; ++n) {
    in.kind = below(2);
    in.org = below(g.org_n + 1);
    in.ws = below(g.ws_n + 1);
    in.type = below(g.type_n);
    for (int s = 0; s < g.settings_n; ++s) in.settings[s] = below(2);
    for (const Param& p : a.params) {
      in.params[p.name] =
          p.type == T::kInt
              ? probes[static_cast<size_t>(below(static_cast<int64_t>(probes.size())))]
              : below(const_cast<Gen&>(g).Size(p.type));
    }
    f(in);
  }
}

int64_t IndexOf(std::string_view name) { return name == "none" ? 0 : std::stoll(std::string(name.substr(1))); }

// The engine's counterexample request, in the reference's terms.
Input ToInput(const Gen& g, const Action& a, const CompiledPolicy& p, const Request& r) {
  Input in;
  in.kind = static_cast<int64_t>(r.kind);
  in.org = IndexOf(p.OrgRoleName(r.org_role));
  in.ws = IndexOf(p.WorkspaceRoleName(r.workspace_role));
  in.type = IndexOf(p.WorkspaceTypeName(r.workspace_type));
  for (int s = 0; s < g.settings_n; ++s)
    in.settings.push_back((r.settings >> *p.FindSetting("s" + std::to_string(s))) & 1);
  ActionId id = *p.FindAction(a.name);
  for (const Param& prm : a.params) {
    int64_t v = r.params[*p.FindParam(id, prm.name)];
    if (prm.type == T::kOrg) v = IndexOf(p.OrgRoleName(static_cast<RoleId>(v)));
    if (prm.type == T::kWs) v = IndexOf(p.WorkspaceRoleName(static_cast<RoleId>(v)));
    in.params[prm.name] = v;
  }
  return in;
}

// A seed's policy and invariants (their constants join g.int_constants).
std::vector<RandomInvariant> Generate(Gen* g) {
  g->Generate();
  std::vector<RandomInvariant> invs;
  for (int i = 0; i < 6; ++i) {
    RandomInvariant inv;
    inv.id = "inv" + std::to_string(i);
    inv.never = g->Rand(2) == 0;
    inv.action = static_cast<size_t>(g->Rand(static_cast<int>(g->actions.size())));
    inv.when = g->Expr(g->actions[inv.action], 2);
    invs.push_back(inv);
  }
  // And two that follow from the rules, so that many invariants hold: never
  // where a forbid matches; always where a permit matches and no forbid does
  // (broken only by the lifetime cap).
  for (size_t ai = 0; ai < g->actions.size(); ++ai) {
    const Action& a = g->actions[ai];
    std::shared_ptr<Node> permit, no_forbid;
    for (const Rule& r : a.rules) {
      if (r.permit && !permit) permit = r.when;
      if (r.permit) continue;
      invs.push_back({"forbid-" + std::to_string(ai) + "-" + r.id, true, ai, r.when});
      auto n = std::make_shared<Node>();
      n->k = Node::kNot;
      n->l = r.when;
      if (no_forbid) {
        auto both = std::make_shared<Node>();
        both->k = Node::kAnd;
        both->l = no_forbid;
        both->r = n;
        n = both;
      }
      no_forbid = n;
    }
    if (permit) {
      auto n = permit;
      if (no_forbid) {
        n = std::make_shared<Node>();
        n->k = Node::kAnd;
        n->l = permit;
        n->r = no_forbid;
      }
      invs.push_back({"permit-" + std::to_string(ai), false, ai, n});
    }
  }
  return invs;
}

uint64_t Seed(int param) { return static_cast<uint64_t>(param) * 104729 + 3; }

std::vector<int64_t> Probes(const Gen& g) {
  std::set<int64_t> probe_set = {INT64_MIN, INT64_MAX, 0};
  for (int64_t c : g.int_constants) probe_set.insert({c - 1, c, c + 1});
  if (g.max_lifetime) probe_set.insert({g.max_lifetime - 1, g.max_lifetime, g.max_lifetime + 1});
  return {probe_set.begin(), probe_set.end()};
}

// The most inputs brute force visits for one invariant of the seed.
uint64_t MaxInputs(Gen& g, const std::vector<RandomInvariant>& invs) {
  const size_t n_probes = Probes(g).size();
  uint64_t most = 0;
  for (const auto& inv : invs) {
    uint64_t inputs = (2ull * (g.org_n + 1) * (g.ws_n + 1) * g.type_n) << g.settings_n;
    for (const Param& prm : g.actions[inv.action].params)
      inputs *= prm.type == T::kInt ? n_probes : static_cast<uint64_t>(g.Size(prm.type));
    most = std::max(most, inputs);
  }
  return most;
}

std::string InvariantsYaml(const Gen& g, const std::vector<RandomInvariant>& invs) {
  std::string y = "gatehouse: v1\ninvariants:\n";
  for (const auto& inv : invs)
    y += "  - id: " + inv.id + "\n    " + (inv.never ? "never" : "always") + ": {action: " +
         g.actions[inv.action].name + ", when: \"" + const_cast<Gen&>(g).Render(*inv.when) + "\"}\n";
  return y;
}

constexpr int kSeeds = 80;

// Checks one seed's invariants against the reference, over every input or,
// when `sampled`, over kSampledInputs random ones per invariant.
void CheckSeed(int seed, bool sampled) {
  Gen g(Seed(seed));
  std::vector<RandomInvariant> invs = Generate(&g);
  ASSERT_EQ(MaxInputs(g, invs) > kMaxBruteForce, sampled) << "seed " << seed;
  const std::string yaml = g.Yaml();
  PolicyLoad load = LoadPolicyFromString(yaml, "random.yaml");
  ASSERT_TRUE(load.ok()) << load.errors[0].ToString() << "\n" << yaml;
  const CompiledPolicy& p = *load.policy;
  const std::string inv_yaml = InvariantsYaml(g, invs);
  InvariantReport report = CheckInvariantsFromString(p, inv_yaml, "inv.yaml");
  ASSERT_TRUE(report.errors.empty()) << report.errors[0].ToString() << "\n" << inv_yaml;
  ASSERT_EQ(report.invariants, invs.size());
  const std::vector<int64_t> probes = Probes(g);
  std::mt19937_64 rng(Seed(seed));

  for (const auto& inv : invs) {
    const Action& a = g.actions[inv.action];
    bool holds = true;
    auto visit = [&](const Input& in) {
      if (holds && Eval(*inv.when, in) && Reference(g, a, in).first == inv.never) holds = false;
    };
    if (sampled) {
      ForSampledInputs(g, a, probes, kSampledInputs, rng, visit);
    } else {
      ForEveryInput(g, a, probes, visit);
    }
    const InvariantViolation* v = nullptr;
    for (const auto& x : report.violations)
      if (x.id == inv.id) v = &x;
    // A sample can miss a counterexample the check finds, never the reverse.
    if (!sampled || v == nullptr) {
      EXPECT_EQ(v == nullptr, holds) << inv.id << (inv.never ? " never " : " always ") << a.name
                                     << ": " << g.Render(*inv.when) << "\n"
                                     << yaml;
    }
    if (v) {
      // The counterexample is real under the reference, and decided as reported.
      Input in = ToInput(g, a, p, v->request);
      EXPECT_TRUE(Eval(*inv.when, in)) << v->ToString();
      auto [allow, rule] = Reference(g, a, in);
      EXPECT_EQ(allow, inv.never) << v->ToString();  // a broken never is an allow
      EXPECT_EQ(allow, v->decision.allowed());
    }
  }
}

// The seeds whose every input brute force visits (or, `!whole`, the others).
std::vector<int> SeedsVisitedWhole(bool whole) {
  std::vector<int> out;
  for (int seed = 0; seed < kSeeds; ++seed) {
    Gen g(Seed(seed));
    std::vector<RandomInvariant> invs = Generate(&g);
    if ((MaxInputs(g, invs) <= kMaxBruteForce) == whole) out.push_back(seed);
  }
  return out;
}

std::string SeedName(const ::testing::TestParamInfo<int>& info) {
  return "seed" + std::to_string(info.param);
}

class RandomInvariants : public ::testing::TestWithParam<int> {};

TEST_P(RandomInvariants, ExactCheckAgreesWithBruteForceOverEveryInput) {
  CheckSeed(GetParam(), /*sampled=*/false);
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomInvariants, ::testing::ValuesIn(SeedsVisitedWhole(true)),
                         SeedName);

class LargeRandomInvariants : public ::testing::TestWithParam<int> {};

TEST_P(LargeRandomInvariants, ExactCheckAgreesWithBruteForceOverASampleOfInputs) {
  CheckSeed(GetParam(), /*sampled=*/true);
}

INSTANTIATE_TEST_SUITE_P(Seeds, LargeRandomInvariants,
                         ::testing::ValuesIn(SeedsVisitedWhole(false)), SeedName);

// The sampled seeds must be few, or the agreement proves less.
TEST(RandomInvariantsCoverage, MostSeedsAreCheckedByBruteForce) {
  int checked = 0;
  size_t total = 0, violated = 0;
  for (int seed : SeedsVisitedWhole(true)) {
    Gen g(Seed(seed));
    std::vector<RandomInvariant> invs = Generate(&g);
    ++checked;
    PolicyLoad load = LoadPolicyFromString(g.Yaml(), "random.yaml");
    ASSERT_TRUE(load.ok());
    const std::string y = InvariantsYaml(g, invs);
    InvariantReport r = CheckInvariantsFromString(*load.policy, y);
    ASSERT_TRUE(r.errors.empty());
    total += invs.size();
    violated += r.violations.size();
  }
  std::cout << "seeds checked by brute force: " << checked << " of " << kSeeds << "; invariants: " << total
            << ", broken: " << violated << "\n";
  EXPECT_GE(checked, kSeeds / 2);
  // Both outcomes occur, so neither "always holds" nor "always broken" passes.
  EXPECT_GT(violated, total / 5);
  EXPECT_LT(violated, total * 4 / 5);
}

}  // namespace
}  // namespace gatehouse
