// The policy-safety commands through the real binary (issue 13): invariants
// on validate and --invariants, `policy test --coverage` / --min-coverage.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

class PolicySafetyTest : public CliTest {
 protected:
  std::string policy_file() const { return DefaultPolicyDir() + "/api-tokens.yaml"; }
  std::string invariants() const { return DefaultPolicyDir() + "/invariants"; }
  // The default policy with viewers allowed to import, as a bare file.
  std::string ViewerImportFile() {
    std::string text = ReadFileBytes(policy_file());
    const std::string from = "when: principal.workspace_role >= contributor\n        message: Importing";
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos);
    text.replace(at, from.size(), "when: principal.workspace_role >= viewer\n        message: Importing");
    const std::string path = dir_.File("viewer-import.yaml");
    WriteFileBytes(path, text);
    return path;
  }
};

TEST_F(PolicySafetyTest, ValidateChecksTheFolderInvariantsAndThoseGivenWithInvariants) {
  json ok = gh_.Json("", {"policy", "validate", DefaultPolicyDir()});
  EXPECT_EQ(ok["valid"], true);
  EXPECT_GE(ok["invariants"].get<int>(), 10);
  ProcessResult r = gh_.Run({"policy", "validate", DefaultPolicyDir()});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_NE(r.out.find("invariants hold"), std::string::npos) << r;

  const std::string edited = ViewerImportFile();
  EXPECT_TRUE(Succeeded(gh_.Run({"policy", "validate", edited})));  // a bare file has no invariants/
  r = gh_.Run({"policy", "validate", edited, "--invariants", invariants()});
  EXPECT_TRUE(PolicyLoadFailed(r, invariants() + "/seed.yaml"));
  EXPECT_NE(r.err.find("invariant viewers-never-import-or-export broken"), std::string::npos) << r;
  EXPECT_NE(r.err.find("counterexample project.import with kind=user org_role=none workspace_role=viewer"),
            std::string::npos)
      << r;
  // Global: also before the command words, and for every command that loads the policy.
  r = gh_.Run({"--invariants", invariants(), "--policy", edited, "token", "list"});
  EXPECT_TRUE(PolicyLoadFailed(r, invariants() + "/seed.yaml"));
  // A missing --invariants path refuses the policy; an empty one is a usage error.
  r = gh_.Run({"policy", "validate", policy_file(), "--invariants", dir_.File("nope")});
  EXPECT_TRUE(PolicyLoadFailed(r, dir_.File("nope")));
  EXPECT_TRUE(Failed(gh_.Run({"policy", "validate", "--invariants", ""}), 2));
  // diff judges only the candidate: the old side may break the new invariants.
  r = gh_.Run({"policy", "diff", edited, policy_file(), "--invariants", invariants()});
  EXPECT_EQ(r.exit_code, 1) << r;  // different, and compared
  r = gh_.Run({"policy", "diff", policy_file(), edited, "--invariants", invariants()});
  EXPECT_EQ(r.exit_code, 2) << r;  // the candidate is refused
}

TEST_F(PolicySafetyTest, CoverageInTextAndJsonAndMinCoverage) {
  ProcessResult r = gh_.Run({"policy", "test", DefaultPolicyDir(), "--coverage"});
  ASSERT_TRUE(Succeeded(r)) << r;
  EXPECT_NE(r.out.find(" rules decided a case ("), std::string::npos) << r;
  EXPECT_NE(r.out.find(" cells reached ("), std::string::npos) << r;
  json j = gh_.Json("", {"policy", "test", DefaultPolicyDir(), "--coverage"});
  ASSERT_TRUE(j["coverage"].is_object()) << j;
  const json& c = j["coverage"];
  EXPECT_EQ(c["cells"].get<size_t>(), c["cells_reached"].get<size_t>() + c["unreached_cells"].size());
  EXPECT_EQ(c["rules"].get<size_t>(), c["rules_decided"].get<size_t>() + c["undecided_rules"].size());
  EXPECT_GT(c["cells_reached"].get<size_t>(), 0u);
  EXPECT_FALSE(gh_.Json("", {"policy", "test", DefaultPolicyDir()}).contains("coverage"));
  for (const json& cell : c["unreached_cells"]) {
    EXPECT_TRUE(cell["action"].is_string() && cell["group"].is_string() && cell["settings"].is_object()) << cell;
  }
  const double cells = c["cell_percent"].get<double>();
  ASSERT_LT(cells, 100.0);
  // --min-coverage: at or below the figure passes, above it fails with one line.
  EXPECT_TRUE(Succeeded(gh_.Run({"policy", "test", DefaultPolicyDir(), "--min-coverage", "0"})));
  EXPECT_TRUE(Succeeded(gh_.Run({"policy", "test", DefaultPolicyDir(), "--min-coverage",
                                 std::to_string(static_cast<int>(cells))})));
  r = gh_.Run({"policy", "test", DefaultPolicyDir(), "--min-coverage", std::to_string(static_cast<int>(cells) + 1)});
  EXPECT_TRUE(Failed(r, 1));
  EXPECT_NE(r.err.find("coverage below"), std::string::npos) << r;
  for (const char* bad : {"abc", "101", "-1", "", "50%", "nan"})
    EXPECT_TRUE(Failed(gh_.Run({"policy", "test", DefaultPolicyDir(), "--min-coverage", bad}), 2)) << bad;
  // A policy whose tests cover every cell: a small one written here.
  const std::string dir = dir_.File("small");
  std::filesystem::create_directories(dir + "/tests");
  WriteFileBytes(dir + "/p.yaml",
                 "gatehouse: v1\npolicy: small\nroles: {organization: [viewer], workspace: [viewer]}\n"
                 "workspace_types: [shared]\nactions:\n  a.read:\n    permit:\n      - rule: members\n"
                 "        when: principal.workspace_role >= viewer\n");
  WriteFileBytes(dir + "/tests/t.yaml",
                 "tests:\n  - {action: a.read, principal: {kind: user, org_role: none, workspace_role: viewer}, expect: allow}\n"
                 "  - {action: a.read, principal: {kind: user, org_role: none, workspace_role: none}, expect: deny}\n");
  json small = gh_.Json("", {"policy", "test", dir, "--min-coverage", "100"});
  EXPECT_EQ(small["coverage"]["cell_percent"], 100.0) << small;
  EXPECT_EQ(small["coverage"]["rule_percent"], 100.0) << small;
}

}  // namespace
}  // namespace gatehouse::testing
