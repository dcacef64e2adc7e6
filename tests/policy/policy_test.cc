// Unit tests of the policy engine on the default policy and small policies.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"
#include "gatehouse/policy_testing.h"

// Counts heap allocations so a test can prove the hot path makes none. The
// replacement new and delete pair malloc with free; GCC, after inlining,
// compares the built-in new with free and warns falsely.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
static std::atomic<long> g_allocations{0};
static void* CountedAlloc(std::size_t n) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
// The whole replaceable set, so every form of new pairs with every delete.
void* operator new(std::size_t n) {
  if (void* p = CountedAlloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = CountedAlloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace gatehouse {
namespace {

const std::string kPolicies = std::string(GATEHOUSE_SOURCE_DIR) + "/policies";

PolicyPtr Default() {
  static PolicyPtr p = [] {
    PolicyLoad l = LoadPolicy(kPolicies);
    if (!l.ok()) {
      for (const auto& e : l.errors) ADD_FAILURE() << e.ToString();
    }
    return l.policy;
  }();
  return p;
}

Request Make(const CompiledPolicy& p, const char* action, const char* org, const char* ws, const char* type,
             PrincipalKind kind = PrincipalKind::kUser) {
  Request r;
  r.action = p.FindAction(action).value();
  r.org_role = p.FindOrgRole(org).value();
  r.workspace_role = p.FindWorkspaceRole(ws).value();
  r.workspace_type = p.FindWorkspaceType(type).value();
  r.kind = kind;
  r.settings = p.default_settings();
  return r;
}

TEST(DefaultPolicy, LoadsAndAllItsTestsPass) {
  PolicyPtr p = Default();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name(), "api-tokens");
  EXPECT_EQ(p->revision().rfind("sha256:", 0), 0u);
  EXPECT_EQ(p->revision().size(), 7u + 64u);
  PolicyTestSuite suite = LoadPolicyTests(kPolicies, *p);
  ASSERT_TRUE(suite.errors.empty()) << suite.errors[0].ToString();
  EXPECT_GE(suite.cases.size(), 80u);
  for (const auto& r : RunPolicyTests(suite, *p)) {
    EXPECT_TRUE(r.passed) << r.test->file << ":" << r.test->line << " " << r.test->name << " decided by "
                          << r.actual_rule;
  }
}

TEST(DefaultPolicy, SameSourceSameRevision) {
  PolicyLoad a = LoadPolicy(kPolicies);
  PolicyLoad b = LoadPolicy(kPolicies + "/api-tokens.yaml");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a.policy->revision(), b.policy->revision());
  EXPECT_TRUE(DiffPolicies(*a.policy, *b.policy).equal());
}

TEST(DefaultPolicy, ViewerImportDeniedWithGraphqlTemplate) {
  PolicyPtr p = Default();
  Request r = Make(*p, "project.import", "viewer", "viewer", "shared", PrincipalKind::kApiUser);
  Decision d = p->Decide(r);
  EXPECT_FALSE(d.allowed());
  EXPECT_EQ(d.cause, Cause::kNoPermit);
  const ActionInfo* a = p->action(r.action);
  ASSERT_TRUE(a->graphql.has_value());
  EXPECT_EQ(a->graphql->field, "importProject");
  EXPECT_EQ(a->graphql->name, "PreconditionError");
  EXPECT_EQ(a->graphql->code, "internal_error");
  EXPECT_FALSE(p->Explain(d).empty());
  r.workspace_role = p->FindWorkspaceRole("contributor").value();
  EXPECT_TRUE(p->Decide(r).allowed());
}

TEST(DefaultPolicy, TokenLifetimeCapIsEnforcedWhateverTheRules) {
  PolicyPtr p = Default();
  Request r = Make(*p, "token.create", "admin", "none", "shared");
  int slot = p->FindParam(r.action, "lifetime_seconds").value();
  r.params[slot] = p->max_token_lifetime_seconds();
  EXPECT_TRUE(p->Decide(r).allowed());
  r.params[slot] += 1;
  Decision d = p->Decide(r);
  EXPECT_FALSE(d.allowed());
  EXPECT_EQ(p->DecidingRule(d), "tokens.max_lifetime");
}

TEST(Decide, OutOfRangeIdsDenyAsInvalid) {
  PolicyPtr p = Default();
  Request r = Make(*p, "project.import", "owner", "admin", "shared");
  ASSERT_TRUE(p->Decide(r).allowed());
  Request bad = r;
  bad.action = 9999;
  EXPECT_EQ(p->Decide(bad).cause, Cause::kInvalidRequest);
  EXPECT_FALSE(p->Decide(bad).allowed());
  bad = r;
  bad.org_role = 200;
  EXPECT_FALSE(p->Decide(bad).allowed());
  bad = r;
  bad.workspace_type = 77;
  EXPECT_FALSE(p->Decide(bad).allowed());
  bad = r;
  bad.kind = static_cast<PrincipalKind>(9);
  EXPECT_FALSE(p->Decide(bad).allowed());
}

TEST(Decide, MakesNoAllocation) {
  PolicyPtr p = Default();
  std::vector<Request> reqs;
  for (const auto& a : p->actions()) reqs.push_back(Make(*p, a.name.c_str(), "admin", "viewer", "shared"));
  long before = g_allocations.load();
  int allowed = 0;
  for (int i = 0; i < 1000; ++i)
    for (const auto& r : reqs) allowed += p->Decide(r).allowed();
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_GT(allowed, 0);
}

TEST(Decide, SafeFromManyThreads) {
  PolicyPtr p = Default();
  Request r = Make(*p, "project.export", "viewer", "contributor", "shared", PrincipalKind::kApiUser);
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i)
        if (!p->Decide(r).allowed()) wrong++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Routes, DefaultRoutesMapToActionsAndWorkspace) {
  PolicyPtr p = Default();
  auto m = p->MatchRoute("POST", "/workspaces/Marketing-Production/projects/42/import?dry=1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(p->action(m->action)->name, "project.import");
  EXPECT_EQ(m->workspace, "Marketing-Production");
  m = p->MatchRoute("POST", "/workspaces/Marketing%20Dev/projects/x/export");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(p->action(m->action)->name, "project.export");
  EXPECT_EQ(m->workspace, "Marketing Dev");
  EXPECT_FALSE(p->MatchRoute("GET", "/workspaces/a/projects/x/export"));
  EXPECT_FALSE(p->MatchRoute("POST", "/workspaces/a/projects/x/delete"));
  EXPECT_FALSE(p->MatchRoute("POST", "/workspaces//projects/x/export"));
  EXPECT_FALSE(p->MatchRoute("POST", "/workspaces/a%2Fb/projects/x/export"));  // no smuggled '/'
  EXPECT_FALSE(p->MatchRoute("POST", "/workspaces/a%zz/projects/x/export"));
  EXPECT_FALSE(p->MatchRoute("POST", "/workspaces/a%4/projects/x/export"));
  EXPECT_FALSE(p->MatchRoute("POST", ""));
  EXPECT_FALSE(p->MatchRoute("POST", "workspaces/a/projects/x/export"));
}

TEST(Durations, ParseAndFormat) {
  EXPECT_EQ(ParseDuration("90s"), 90);
  EXPECT_EQ(ParseDuration("30d"), 30 * 86400);
  EXPECT_EQ(ParseDuration("2w"), 14 * 86400);
  EXPECT_EQ(ParseDuration("1h"), 3600);
  EXPECT_EQ(ParseDuration("5m"), 300);
  for (const char* bad : {"", "0d", "-1d", "abc", "10", "5y", "d", "1.5h", " 1d", "1d ", "+1d", "99999999999999999999d", "9223372036854775807w"})
    EXPECT_FALSE(ParseDuration(bad).has_value()) << bad;
  EXPECT_EQ(FormatDuration(365 * 86400), "365d");
  EXPECT_EQ(FormatDuration(90), "90s");
  EXPECT_EQ(FormatDuration(7200), "2h");
}

TEST(PolicyTests, CasesNamingUnknownThingsArePositionedErrors) {
  PolicyPtr p = Default();
  PolicyTestSuite s = LoadPolicyTestsFromString(
      "tests:\n"
      "  - {action: project.nope, expect: allow}\n"
      "  - {action: project.import, principal: {org_role: emperor}, expect: allow}\n"
      "  - {action: project.import, expect: maybe}\n",
      "t.yaml", *p);
  ASSERT_EQ(s.errors.size(), 3u);
  EXPECT_EQ(s.errors[0].ToString(), "t.yaml:2:14: unknown action 'project.nope' in tests[0].action");
  EXPECT_EQ(s.errors[1].line, 3);
  EXPECT_EQ(s.errors[2].line, 4);
}

TEST(Loader, ARefusedPolicyYieldsNoPolicy) {
  PolicyLoad l = LoadPolicyFromString("gatehouse: v1\n", "x.yaml");  // no policy: name
  EXPECT_FALSE(l.ok());
  EXPECT_FALSE(l.errors.empty());
  l = LoadPolicy("/nonexistent/policy/dir");
  EXPECT_FALSE(l.ok());
  ASSERT_EQ(l.errors.size(), 1u);
  EXPECT_NE(l.errors[0].message.find("no such file"), std::string::npos);
}

TEST(Loader, BinaryGarbageIsAnErrorNotACrash) {
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>((i * 7919) & 0xff));
  PolicyLoad l = LoadPolicyFromString(garbage, "garbage.yaml");
  EXPECT_FALSE(l.ok());
  EXPECT_FALSE(l.errors.empty());
}

TEST(Matrix, DefaultPolicyMatrixHasTheDesignsShape) {
  PolicyPtr p = Default();
  Matrix m = BuildMatrix(*p);
  EXPECT_EQ(m.slices.size(), 3u * 2u);  // three workspace types × the toggle
  EXPECT_GE(m.groups.size(), 3u);
  std::string text = RenderMatrix(m);
  EXPECT_NE(text.find("shared workspace, workspace_admins_can_create_tokens on"), std::string::npos);
  EXPECT_NE(text.find("token.create"), std::string::npos);
}

}  // namespace
}  // namespace gatehouse

namespace gatehouse {
namespace {

// Found by fuzz_duration: 999999999999w formatted to 19 digits of days,
// which the parser then refused.
TEST(Durations, RegressionLongDurationsRoundTrip) {
  auto v = ParseDuration("999999999999w");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(ParseDuration(FormatDuration(*v)), v);
}

// Found by fuzz_expr: a stray non-ASCII byte after a literal produced a
// tokenizer error that the parser's de-duplication hid, so the expression
// loaded without it.
TEST(Loader, RegressionStrayByteAfterLiteralIsAnError) {
  PolicyLoad l = LoadPolicyFromString(
      "gatehouse: v1\npolicy: p\nroles: {organization: [admin], workspace: [admin]}\nworkspace_types: [shared]\n"
      "actions:\n  a.b:\n    description: d\n    permit:\n      - rule: r\n        when: \"principal.org_role >= admin\\xce or true\"\n",
      "p.yaml");
  EXPECT_FALSE(l.ok());
  ASSERT_FALSE(l.errors.empty());
  EXPECT_NE(l.errors[0].message.find("unexpected character"), std::string::npos) << l.errors[0].ToString();
}

}  // namespace
}  // namespace gatehouse

namespace gatehouse {
namespace {

// Found by fuzz_policy: yaml-cpp 0.7's LoadAll never stopped producing empty
// documents on this mutated default policy (a hang, then gigabytes). Loading
// now parses one document and refuses a second separator; it must return.
TEST(Loader, RegressionYamlCppLoadAllNeverEndingInputReturnsWithErrors) {
  PolicyLoad l = LoadPolicy(std::string(GATEHOUSE_SOURCE_DIR) +
                            "/tests/fuzz/corpus/policy/regression-loadall-never-ends.yaml");
  EXPECT_FALSE(l.ok());
  EXPECT_FALSE(l.errors.empty());
  PolicyLoad two = LoadPolicyFromString("gatehouse: v1\n---\npolicy: x\n", "two.yaml");
  ASSERT_EQ(two.errors.size(), 1u);
  EXPECT_EQ(two.errors[0].ToString(), "two.yaml:2:1: a policy file holds one YAML document; remove this separator");
}

}  // namespace
}  // namespace gatehouse
