// Invariants: data-driven cases under tests/testdata/invariants/<case>/ (a
// policy.yaml, its invariants/ folder and expected.txt: "holds: N invariants"
// or the exact FILE:LINE:COL lines, counterexamples included), the shipped
// invariants of the default policy, and --invariants paths.
// GATEHOUSE_UPDATE_GOLDEN=1 rewrites expected.txt files (review the change!).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gatehouse/invariants.h"
#include "gatehouse/policy.h"

namespace fs = std::filesystem;

namespace gatehouse {
namespace {

const fs::path kData = fs::path(GATEHOUSE_SOURCE_DIR) / "tests" / "testdata" / "invariants";
const fs::path kPolicies = fs::path(GATEHOUSE_SOURCE_DIR) / "policies";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Outcome(const PolicyLoad& load, const std::string& prefix) {
  if (load.ok()) return "holds: " + std::to_string(load.invariants) + " invariants\n";
  std::string out;
  for (const auto& e : load.errors) {
    std::string line = e.ToString();
    for (size_t at; (at = line.find(prefix)) != std::string::npos;) line.erase(at, prefix.size());
    out += line + "\n";
  }
  return out;
}

TEST(InvariantCases, EachCaseHoldsOrGivesExactlyTheExpectedCounterexamplesAndErrors) {
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(kData))
    if (e.is_directory()) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  ASSERT_GE(cases.size(), 8u);
  for (const fs::path& dir : cases) {
    SCOPED_TRACE(dir.filename().string());
    PolicyLoad load = LoadPolicy(dir.string());
    const std::string actual = Outcome(load, dir.string() + "/");
    const fs::path expected = dir / "expected.txt";
    if (const char* u = std::getenv("GATEHOUSE_UPDATE_GOLDEN"); u && std::string(u) == "1") {
      std::ofstream(expected) << actual;
      continue;
    }
    ASSERT_TRUE(fs::exists(expected)) << "missing; actual:\n" << actual;
    EXPECT_EQ(Slurp(expected), actual);
    // The policy alone (no invariants) always loads: the cases are about invariants.
    EXPECT_TRUE(LoadPolicy((dir / "policy.yaml").string()).ok());
    // The same invariants given with --invariants to the bare policy file decide alike.
    PolicyLoad by_path = LoadPolicy((dir / "policy.yaml").string(), LoadOptions{{(dir / "invariants").string()}});
    EXPECT_EQ(by_path.ok(), load.ok());
    EXPECT_EQ(by_path.errors.size(), load.errors.size());
  }
}

TEST(InvariantCases, TheCounterexampleIsARequestThePolicyReallyDecidesThatWay) {
  PolicyLoad bare = LoadPolicy((kData / "never_broken_viewer_import" / "policy.yaml").string());
  ASSERT_TRUE(bare.ok());
  InvariantReport r = CheckInvariants(*bare.policy, {(kData / "never_broken_viewer_import" / "invariants").string()});
  ASSERT_EQ(r.violations.size(), 1u);
  const InvariantViolation& v = r.violations[0];
  EXPECT_EQ(v.id, "viewers-never-import");
  EXPECT_EQ(v.action, "project.import");
  Decision d = bare.policy->Decide(v.request);
  EXPECT_TRUE(d.allowed());
  EXPECT_EQ(bare.policy->DecidingRule(d), "contributors-and-up");
  EXPECT_EQ(bare.policy->WorkspaceRoleName(v.request.workspace_role), "viewer");
}

TEST(DefaultPolicyInvariants, TheShippedInvariantsHoldOnTheDefaultPolicy) {
  PolicyLoad load = LoadPolicy(kPolicies.string());
  ASSERT_TRUE(load.ok()) << (load.errors.empty() ? "" : load.errors[0].ToString());
  EXPECT_GE(load.invariants, 10u);
  // The policy file alone checks nothing; the folder given by --invariants the same ones.
  PolicyLoad file = LoadPolicy((kPolicies / "api-tokens.yaml").string());
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file.invariants, 0u);
  PolicyLoad extra = LoadPolicy((kPolicies / "api-tokens.yaml").string(),
                                LoadOptions{{(kPolicies / "invariants").string()}});
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ(extra.invariants, load.invariants);
}

// Each seed rule the shipped invariants state: an edit that breaks it is refused
// by the invariant that states it (a generated family of one-line edits).
TEST(DefaultPolicyInvariants, EveryEditBreakingASeedRuleIsRefusedByItsInvariant) {
  const std::string text = Slurp(kPolicies / "api-tokens.yaml");
  struct EditCase {
    std::string from, to, invariant;
  };
  const std::vector<EditCase> edits = {
      {"- rule: api-users-only-in-shared-workspaces\n        when: workspace.type != shared",
       "- rule: api-users-only-in-shared-workspaces\n        when: workspace.type == personal",
       "api-users-and-tokens-only-in-shared-workspaces"},
      {"principal.workspace_role >= admin and settings.workspace_admins_can_create_tokens\n        message: Only organization owners and admins may revoke",
       "principal.workspace_role >= admin\n        message: Only organization owners and admins may revoke",
       "credentials-need-org-admin-or-the-toggle"},
      {"when: principal.workspace_role >= contributor\n        message: Exporting",
       "when: principal.workspace_role >= viewer\n        message: Exporting", "viewers-never-import-or-export"},
      {"when: principal.workspace_role >= contributor\n        message: Importing",
       "when: principal.workspace_role >= admin\n        message: Importing",
       "contributors-can-always-import-and-export"},
      {"      - rule: org-admins\n        when: principal.org_role >= admin\n        message: Only organization owners and admins may delete",
       "      - rule: org-admins\n        when: principal.org_role >= contributor\n        message: Only organization owners and admins may delete",
       "only-org-admins-delete-api-users"},
      {"      - rule: one-owner-per-organization\n        when: request.org_role >= owner",
       "      - rule: one-owner-per-organization\n        when: request.org_role >= owner and principal.org_role < owner",
       "no-owner-by-delegation"},
      {"  max_lifetime: 365d", "  max_lifetime: 366d", "tokens-never-outlive-a-year"},
  };
  for (const EditCase& e : edits) {
    SCOPED_TRACE(e.invariant);
    const size_t at = text.find(e.from);
    ASSERT_NE(at, std::string::npos);
    ASSERT_EQ(text.find(e.from, at + 1), std::string::npos);
    std::string edited = text;
    edited.replace(at, e.from.size(), e.to);
    PolicyLoad bare = LoadPolicyFromString(edited, "edited.yaml");
    ASSERT_TRUE(bare.ok()) << (bare.errors.empty() ? "" : bare.errors[0].ToString());
    InvariantReport r = CheckInvariants(*bare.policy, {(kPolicies / "invariants").string()});
    ASSERT_FALSE(r.violations.empty());
    bool named = false;
    for (const auto& v : r.violations) {
      named |= v.id == e.invariant;
      // Every counterexample is decided as it says.
      EXPECT_EQ(bare.policy->Decide(v.request).allowed(), v.form == "never") << v.ToString();
    }
    EXPECT_TRUE(named);
  }
}

TEST(InvariantPaths, AMissingInvariantsPathIsAnErrorAndTheFolderOnlyWhenPresent) {
  PolicyLoad load = LoadPolicy((kPolicies / "api-tokens.yaml").string(), LoadOptions{{"/nonexistent/inv"}});
  ASSERT_FALSE(load.ok());
  ASSERT_EQ(load.errors.size(), 1u);
  EXPECT_EQ(load.errors[0].ToString(), "/nonexistent/inv:1:1: no such file or directory");
  EXPECT_EQ(InvariantPaths((kPolicies / "api-tokens.yaml").string(), {}).size(), 0u);
  EXPECT_EQ(InvariantPaths(kPolicies.string(), {"x"}),
            (std::vector<std::string>{(kPolicies / "invariants").string(), "x"}));
}

}  // namespace
}  // namespace gatehouse
