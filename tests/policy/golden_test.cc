// Data-driven cases under tests/testdata/: a new case needs no new C++.
//   bad/<case>/     policy files and expected.txt: the exact FILE:LINE:COL lines
//   eval/<case>/    a policy and tests/*.yaml cases with decisions and rules
//   diff/<case>/    old.yaml, new.yaml and expected.txt: `policy diff` output
// GATEHOUSE_UPDATE_GOLDEN=1 rewrites expected.txt files (review the change!).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"
#include "gatehouse/policy_testing.h"

namespace fs = std::filesystem;

namespace gatehouse {
namespace {

const fs::path kData = fs::path(GATEHOUSE_SOURCE_DIR) / "tests" / "testdata";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> Cases(const char* stage) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kData / stage))
    if (e.is_directory()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

void CheckGolden(const fs::path& expected_file, const std::string& actual) {
  if (const char* u = std::getenv("GATEHOUSE_UPDATE_GOLDEN"); u && std::string(u) == "1") {
    std::ofstream(expected_file) << actual;
    return;
  }
  ASSERT_TRUE(fs::exists(expected_file)) << expected_file << " is missing; actual output:\n" << actual;
  EXPECT_EQ(Slurp(expected_file), actual) << "in " << expected_file;
}

TEST(Golden, BadPoliciesReportEveryErrorWithPositions) {
  auto cases = Cases("bad");
  ASSERT_GE(cases.size(), 8u);
  for (const fs::path& dir : cases) {
    SCOPED_TRACE(dir.filename().string());
    PolicyLoad load = LoadPolicy(dir.string());
    EXPECT_FALSE(load.ok()) << "a bad policy loaded";
    EXPECT_EQ(load.policy, nullptr);
    std::string actual;
    const std::string prefix = dir.string() + "/";
    for (const auto& e : load.errors) {
      std::string line = e.ToString();
      for (size_t at; (at = line.find(prefix)) != std::string::npos;) line.erase(at, prefix.size());
      actual += line + "\n";
    }
    CheckGolden(dir / "expected.txt", actual);
  }
}

TEST(Golden, EvalCasesDecideWithTheExpectedRules) {
  auto cases = Cases("eval");
  ASSERT_FALSE(cases.empty());
  for (const fs::path& dir : cases) {
    SCOPED_TRACE(dir.filename().string());
    PolicyLoad load = LoadPolicy(dir.string());
    ASSERT_TRUE(load.ok()) << (load.errors.empty() ? "" : load.errors[0].ToString());
    PolicyTestSuite suite = LoadPolicyTests(dir.string(), *load.policy);
    ASSERT_TRUE(suite.errors.empty()) << suite.errors[0].ToString();
    ASSERT_FALSE(suite.cases.empty());
    for (const auto& r : RunPolicyTests(suite, *load.policy)) {
      EXPECT_TRUE(r.passed) << r.test->file << ":" << r.test->line << " " << r.test->name << ": decided by '"
                            << r.actual_rule << "'";
    }
  }
}

TEST(Golden, DiffCasesPrintTheExpectedChanges) {
  auto cases = Cases("diff");
  ASSERT_FALSE(cases.empty());
  for (const fs::path& dir : cases) {
    SCOPED_TRACE(dir.filename().string());
    PolicyLoad a = LoadPolicy((dir / "old.yaml").string());
    PolicyLoad b = LoadPolicy((dir / "new.yaml").string());
    ASSERT_TRUE(a.ok() && b.ok());
    PolicyDiff d = DiffPolicies(*a.policy, *b.policy);
    std::string actual = d.equal() ? "equal\n" : RenderDiff(d);
    CheckGolden(dir / "expected.txt", actual);
    // The reverse diff has the same number of changes, with from/to swapped.
    PolicyDiff r = DiffPolicies(*b.policy, *a.policy);
    EXPECT_EQ(d.changes.size(), r.changes.size());
    EXPECT_EQ(d.equal(), r.equal());
  }
}

}  // namespace
}  // namespace gatehouse
