// The driver: files (policy/files.h) → YAML (policy/yaml_reader.h) →
// validation (policy/validate.h) → compile limits and compiling
// (compile/compiler.h). Each stage knows nothing of the others; only this
// file sees them all.
#include <cstdlib>
#include <filesystem>

#include "compile/compiler.h"
#include "gatehouse/invariants.h"
#include "gatehouse/policy.h"
#include "policy/files.h"
#include "policy/validate.h"
#include "policy/yaml_reader.h"
#include "tokens/sha256.h"

namespace fs = std::filesystem;

namespace gatehouse {
namespace {

PolicyLoad Finish(const std::vector<internal::YDoc>& docs, std::vector<PolicyError> errors) {
  PolicyLoad out;
  internal::PolicyModel model;
  if (errors.empty()) {
    internal::BuildModel(docs, &model, &errors);
    if (errors.empty()) internal::CheckCompileLimits(model, &errors);
  }
  if (!errors.empty()) {
    internal::SortErrors(&errors);
    out.errors = std::move(errors);
    return out;
  }
  std::string revision = "sha256:" + internal::Sha256Hex(internal::CanonicalForm(model));
  out.policy = internal::Compile(std::move(model), std::move(revision));
  return out;
}

}  // namespace

PolicyLoad LoadPolicy(const std::string& path) { return LoadPolicy(path, LoadOptions{}); }

PolicyLoad LoadPolicy(const std::string& path, const LoadOptions& options) {
  std::vector<PolicyError> errors, warnings;
  std::vector<internal::YDoc> docs;
  internal::YamlBudget budget;
  size_t bytes = 0;
  for (const std::string& file : internal::PolicyFiles(path, &errors, &warnings)) {
    std::string text;
    if (!internal::ReadFile(file, internal::kMaxFileBytes, &text, &errors)) continue;
    bytes += text.size();
    if (bytes > internal::kMaxLoadBytes) {
      errors.push_back({file, 1, 1, "the policy's files hold more than " +
                                        std::to_string(internal::kMaxLoadBytes >> 20) + " MiB together"});
      break;
    }
    internal::YDoc doc;
    if (internal::ReadYaml(file, std::move(text), &doc, &errors, &budget)) docs.push_back(std::move(doc));
  }
  PolicyLoad out = Finish(docs, std::move(errors));
  if (out.ok()) {
    // Load time only: the check reads the finished tables; Decide never sees it.
    const std::vector<std::string> paths = InvariantPaths(path, options.invariants);
    if (!paths.empty()) {
      InvariantReport report = CheckInvariants(*out.policy, paths);
      for (auto& w : report.warnings) warnings.push_back(std::move(w));
      if (!report.ok()) {
        out.errors = report.AllErrors();
        out.policy.reset();
      } else {
        out.invariants = report.invariants;
      }
    }
  }
  out.warnings = std::move(warnings);
  return out;
}

PolicyLoad LoadPolicyFromString(std::string_view yaml, const std::string& file) {
  std::vector<PolicyError> errors;
  std::vector<internal::YDoc> docs(1);
  if (yaml.size() > internal::kMaxFileBytes) {
    errors.push_back({file, 1, 1, "policy text too large: " + std::to_string(yaml.size()) +
                                      " bytes; a policy file holds at most " +
                                      std::to_string(internal::kMaxFileBytes >> 20) + " MiB"});
    docs.clear();
  } else if (!internal::ReadYaml(file, std::string(yaml), &docs[0], &errors)) {
    docs.clear();
  }
  return Finish(docs, std::move(errors));
}

std::string DefaultPolicyPath() {
  if (const char* env = std::getenv("GATEHOUSE_POLICY"); env && *env) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path installed = exe.parent_path().parent_path() / "share" / "gatehouse" / "policies";
    if (fs::is_directory(installed, ec)) return installed.string();
  }
  return GATEHOUSE_POLICY_DIR;
}

}  // namespace gatehouse
