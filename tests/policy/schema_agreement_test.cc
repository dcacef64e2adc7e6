// policies/schema.json agrees with the loader: what the schema lets an
// editor accept, the loader accepts, and the other way round, over generated
// inputs (issue 12: the route methods disagreed).
#if defined(__GNUC__) && !defined(__clang__)  // GCC 12 + ASan inside <regex>
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "gatehouse/policy.h"

namespace gatehouse {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(SchemaAgreementTest, RouteMethodsTheSchemaAllowsAreTheOnesTheLoaderAccepts) {
  const std::string dir = std::string(GATEHOUSE_SOURCE_DIR) + "/policies";
  const nlohmann::json schema = nlohmann::json::parse(ReadAll(dir + "/schema.json"));
  // The route's method property, wherever the schema defines it.
  std::string pattern;
  std::function<void(const nlohmann::json&)> find = [&](const nlohmann::json& j) {
    if (j.is_object()) {
      if (j.contains("required") && j.contains("properties") && j["properties"].contains("method") &&
          j["properties"].contains("path"))
        pattern = j["properties"]["method"].value("pattern", "");
      for (const auto& [k, v] : j.items()) find(v);
    } else if (j.is_array()) {
      for (const auto& v : j) find(v);
    }
  };
  find(schema);
  ASSERT_FALSE(pattern.empty()) << "the route method in schema.json has no pattern";
  const std::regex re(pattern, std::regex::ECMAScript);

  const std::string policy = ReadAll(dir + "/api-tokens.yaml");
  const std::string route = "{method: POST, path: \"/workspaces/{workspace}/projects/{project}/export\"";
  ASSERT_NE(policy.find(route), std::string::npos);
  std::set<std::string> methods = {"GET", "POST", "PROPFIND", "*", "", "get", "Post", "**", "G*", "GET ",
                                   "M-SEARCH", "A1", "X_Y", "\u00c9T\u00c9"};
  std::mt19937 rng(7);
  const std::string alphabet = "ABCXYZabz*-_1 .";
  while (methods.size() < 300) {
    std::string m;
    const int n = static_cast<int>(rng() % 7);
    for (int i = 0; i < n; ++i) m += alphabet[rng() % alphabet.size()];
    methods.insert(m);
  }
  for (const std::string& m : methods) {
    std::string text = policy;
    text.replace(text.find(route), route.size(),
                 "{method: '" + m + "', path: \"/workspaces/{workspace}/projects/{project}/export\"");
    const PolicyLoad load = LoadPolicyFromString(text, "api-tokens.yaml");
    const bool schema_ok = std::regex_match(m, re);
    std::string errors;
    for (const auto& e : load.errors) errors += e.ToString() + "\n";
    EXPECT_EQ(load.ok(), schema_ok) << "method '" << m << "': schema " << (schema_ok ? "accepts" : "refuses")
                                    << ", loader:\n"
                                    << (errors.empty() ? "accepts" : errors);
  }
}

}  // namespace
}  // namespace gatehouse
