#include <map>

#include "gatehouse/policy_testing.h"
#include "policy/files.h"
#include "policy/model.h"
#include "policy/validate.h"
#include "policy/yaml_reader.h"

namespace gatehouse {
namespace {

using internal::Quote;
using internal::YDoc;
using internal::YNode;

class CaseReader {
 public:
  CaseReader(const YDoc& d, const CompiledPolicy& p, std::vector<PolicyError>* errors)
      : d_(d), p_(p), errors_(errors) {}

  void Read(std::vector<PolicyTestCase>* out) {
    const YNode& root = d_.root;
    const YNode* tests = nullptr;
    if (root.IsMap()) {
      for (const auto& [k, v] : root.entries) {
        if (k.value == "tests") tests = &v;
        else Err(k, "unknown key " + Quote(k.value) + " in a policy test file (expected: tests)");
      }
    }
    if (!tests || !tests->IsSeq()) {
      Err(root, "a policy test file holds 'tests:', a list of cases");
      return;
    }
    for (size_t i = 0; i < tests->items.size(); ++i) ReadCase(tests->items[i], "tests[" + std::to_string(i) + "]", out);
  }

 private:
  void Err(const YNode& n, std::string msg) { errors_->push_back({d_.file, n.line, n.column, std::move(msg)}); }

  bool Str(const YNode& n, const std::string& path, std::string* out) {
    if (!n.IsScalar()) {
      Err(n, path + " must be a single value");
      return false;
    }
    *out = n.value;
    return true;
  }

  void ReadCase(const YNode& n, const std::string& path, std::vector<PolicyTestCase>* out) {
    if (!n.IsMap()) {
      Err(n, path + " must be a mapping");
      return;
    }
    PolicyTestCase c;
    c.file = d_.file;
    c.line = n.line;
    c.request.settings = p_.default_settings();
    const YNode *action = nullptr, *request = nullptr;
    bool has_expect = false;
    size_t before = errors_->size();
    std::map<std::string, const YNode*> seen;
    for (const auto& [k, v] : n.entries) {
      if (!seen.emplace(k.value, &k).second) {
        Err(k, "duplicate key " + Quote(k.value) + " in " + path);
        continue;
      }
      std::string s;
      if (k.value == "name") {
        Str(v, path + ".name", &c.name);
      } else if (k.value == "action") {
        action = &v;
      } else if (k.value == "principal") {
        ReadPrincipal(v, path + ".principal", &c.request);
      } else if (k.value == "workspace") {
        const YNode* type = &v;
        if (v.IsMap()) {
          type = nullptr;
          for (const auto& [wk, wv] : v.entries) {
            if (wk.value == "type") type = &wv;
            else Err(wk, "unknown key " + Quote(wk.value) + " in " + path + ".workspace (expected: type)");
          }
          if (!type) continue;
        }
        if (Str(*type, path + ".workspace", &s)) {
          if (auto t = p_.FindWorkspaceType(s)) c.request.workspace_type = *t;
          else Err(*type, "unknown workspace type " + Quote(s) + " in " + path + ".workspace");
        }
      } else if (k.value == "settings") {
        ReadSettings(v, path + ".settings", &c.request);
      } else if (k.value == "request") {
        request = &v;
      } else if (k.value == "expect") {
        if (Str(v, path + ".expect", &s)) {
          if (s == "allow") c.expect = Effect::kAllow;
          else if (s == "deny") c.expect = Effect::kDeny;
          else Err(v, path + ".expect must be allow or deny, not " + Quote(s));
          has_expect = true;
        }
      } else if (k.value == "rule") {
        Str(v, path + ".rule", &c.rule);
      } else {
        Err(k, "unknown key " + Quote(k.value) + " in " + path +
                   " (expected: name, action, principal, workspace, settings, request, expect, rule)");
      }
    }
    if (!action) Err(n, "missing required key 'action' in " + path);
    if (!has_expect) Err(n, "missing required key 'expect' in " + path);
    std::string s;
    if (action && Str(*action, path + ".action", &s)) {
      if (auto id = p_.FindAction(s)) c.request.action = *id;
      else Err(*action, "unknown action " + Quote(s) + " in " + path + ".action");
    }
    if (request && c.request.action != kNoAction) ReadParams(*request, path + ".request", &c.request);
    if (c.name.empty()) c.name = path;
    if (errors_->size() == before) out->push_back(std::move(c));
  }

  void ReadPrincipal(const YNode& n, const std::string& path, Request* r) {
    if (!n.IsMap()) {
      Err(n, path + " must be a mapping {kind, org_role, workspace_role}");
      return;
    }
    for (const auto& [k, v] : n.entries) {
      std::string s;
      if (!Str(v, path + "." + k.value, &s)) continue;
      if (k.value == "kind") {
        if (s == "user") r->kind = PrincipalKind::kUser;
        else if (s == "api_user") r->kind = PrincipalKind::kApiUser;
        else Err(v, "unknown principal kind " + Quote(s) + " (user, api_user)");
      } else if (k.value == "org_role") {
        if (auto id = p_.FindOrgRole(s)) r->org_role = *id;
        else Err(v, "unknown organization role " + Quote(s) + " in " + path + ".org_role");
      } else if (k.value == "workspace_role") {
        if (auto id = p_.FindWorkspaceRole(s)) r->workspace_role = *id;
        else Err(v, "unknown workspace role " + Quote(s) + " in " + path + ".workspace_role");
      } else {
        Err(k, "unknown key " + Quote(k.value) + " in " + path + " (expected: kind, org_role, workspace_role)");
      }
    }
  }

  void ReadSettings(const YNode& n, const std::string& path, Request* r) {
    if (!n.IsMap()) {
      Err(n, path + " must be a mapping NAME: true|false");
      return;
    }
    for (const auto& [k, v] : n.entries) {
      auto id = p_.FindSetting(k.value);
      if (!id) {
        Err(k, "unknown setting " + Quote(k.value) + " in " + path);
        continue;
      }
      if (!v.IsScalar() || (v.value != "true" && v.value != "false")) {
        Err(v, path + "." + k.value + " must be true or false");
        continue;
      }
      if (v.value == "true") r->settings |= uint64_t{1} << *id;
      else r->settings &= ~(uint64_t{1} << *id);
    }
  }

  void ReadParams(const YNode& n, const std::string& path, Request* r) {
    if (!n.IsMap()) {
      Err(n, path + " must be a mapping of request parameters");
      return;
    }
    const ActionInfo* a = p_.action(r->action);
    for (const auto& [k, v] : n.entries) {
      auto slot = p_.FindParam(r->action, k.value);
      if (!slot) {
        Err(k, "action " + a->name + " declares no parameter " + Quote(k.value));
        continue;
      }
      std::string s;
      if (!Str(v, path + "." + k.value, &s)) continue;
      int64_t value = 0;
      bool ok = true;
      switch (a->params[*slot].type) {
        case ValueType::kOrgRole:
          if (auto id = p_.FindOrgRole(s)) value = *id;
          else ok = false;
          break;
        case ValueType::kWorkspaceRole:
          if (auto id = p_.FindWorkspaceRole(s)) value = *id;
          else ok = false;
          break;
        case ValueType::kBool:
          ok = s == "true" || s == "false";
          value = s == "true";
          break;
        default: {
          if (auto d = ParseDuration(s)) {
            value = *d;
          } else {
            try {
              size_t used = 0;
              value = std::stoll(s, &used);
              ok = used == s.size();
            } catch (...) {
              ok = false;
            }
          }
        }
      }
      if (!ok) Err(v, "invalid value " + Quote(s) + " for " + path + "." + k.value);
      else r->params[*slot] = value;
    }
  }

  const YDoc& d_;
  const CompiledPolicy& p_;
  std::vector<PolicyError>* errors_;
};

}  // namespace

PolicyTestSuite LoadPolicyTestsFromString(std::string_view yaml, const std::string& file,
                                          const CompiledPolicy& policy) {
  PolicyTestSuite suite;
  YDoc doc;
  if (internal::ReadYaml(file, std::string(yaml), &doc, &suite.errors)) {
    CaseReader(doc, policy, &suite.errors).Read(&suite.cases);
  }
  internal::SortErrors(&suite.errors);
  return suite;
}

PolicyTestSuite LoadPolicyTests(const std::string& path, const CompiledPolicy& policy) {
  PolicyTestSuite suite;
  std::vector<std::string> files = internal::PolicyTestFiles(path, &suite.errors, &suite.warnings);
  if (files.empty() && suite.errors.empty())
    suite.errors.push_back({path, 1, 1, "no policy test files (expected tests/*.yaml)"});
  for (const std::string& f : files) {
    std::string text;
    if (!internal::ReadFile(f, internal::kMaxFileBytes, &text, &suite.errors)) continue;
    PolicyTestSuite one = LoadPolicyTestsFromString(text, f, policy);
    for (auto& c : one.cases) suite.cases.push_back(std::move(c));
    for (auto& e : one.errors) suite.errors.push_back(std::move(e));
  }
  internal::SortErrors(&suite.errors);
  return suite;
}

std::vector<PolicyTestResult> RunPolicyTests(const PolicyTestSuite& suite, const CompiledPolicy& policy) {
  std::vector<PolicyTestResult> out;
  out.reserve(suite.cases.size());
  for (const PolicyTestCase& c : suite.cases) {
    PolicyTestResult r;
    r.test = &c;
    r.decision = policy.Decide(c.request);
    r.actual_rule = std::string(policy.DecidingRule(r.decision));
    r.passed = r.decision.effect == c.expect && (c.rule.empty() || c.rule == r.actual_rule);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace gatehouse
