// gatehouse policy validate|test|matrix|diff
#include <iostream>

#include "cli.h"
#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"
#include "gatehouse/policy_testing.h"

namespace gatehouse::cli {
namespace {

using nlohmann::json;

json ErrorsJson(const std::vector<PolicyError>& errors) {
  json a = json::array();
  for (const auto& e : errors) a.push_back({{"file", e.file}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
  return a;
}

// Loads a policy or prints its errors; nullptr on failure.
PolicyPtr LoadOrReport(Invocation& inv, const std::string& path) {
  PolicyLoad load = LoadPolicy(path);
  for (const auto& w : load.warnings) *inv.err << w.ToString() << "\n";  // skipped files, even with --json
  if (load.ok()) return load.policy;
  if (inv.json) {
    PrintJson(inv, {{"valid", false}, {"path", path}, {"errors", ErrorsJson(load.errors)}});
  } else {
    for (const auto& e : load.errors) *inv.err << e.ToString() << "\n";
    *inv.err << "gatehouse: policy " << path << " refused: " << load.errors.size() << " error"
             << (load.errors.size() == 1 ? "" : "s") << "\n";
  }
  return nullptr;
}

std::string PathArg(const Invocation& inv, size_t i) { return inv.args.size() > i ? inv.args[i] : inv.policy; }

int Validate(Invocation& inv) {
  std::string path = PathArg(inv, 0);
  PolicyPtr p = LoadOrReport(inv, path);
  if (!p) return kRuntime;
  if (inv.json) {
    PrintJson(inv, {{"valid", true}, {"path", path}, {"policy", p->name()}, {"revision", p->revision()},
                    {"actions", p->actions().size()}});
  } else {
    *inv.out << "ok: policy " << p->name() << " (" << p->revision() << "): " << p->actions().size()
             << " actions, " << p->settings().size() << " settings, " << p->workspace_type_count()
             << " workspace types\n";
  }
  return kOk;
}

int Test(Invocation& inv) {
  std::string path = PathArg(inv, 0);
  PolicyPtr p = LoadOrReport(inv, path);
  if (!p) return kRuntime;
  PolicyTestSuite suite = LoadPolicyTests(path, *p);
  for (const auto& w : suite.warnings) *inv.err << w.ToString() << "\n";
  if (!suite.errors.empty()) {
    if (inv.json) PrintJson(inv, {{"errors", ErrorsJson(suite.errors)}});
    for (const auto& e : suite.errors) *inv.err << e.ToString() << "\n";
    return Fail(inv, kRuntime, "policy tests of " + path + " refused: " + std::to_string(suite.errors.size()) + " errors");
  }
  std::vector<PolicyTestResult> results = RunPolicyTests(suite, *p);
  size_t failed = 0;
  json fails = json::array();
  auto effect = [](Effect e) { return e == Effect::kAllow ? "allow" : "deny"; };
  for (const auto& r : results) {
    if (r.passed) continue;
    ++failed;
    const PolicyTestCase& c = *r.test;
    std::string expected = effect(c.expect);
    if (!c.rule.empty()) expected += " by " + c.rule;
    std::string actual = std::string(effect(r.decision.effect)) + (r.actual_rule.empty() ? "" : " by " + r.actual_rule);
    if (inv.json) {
      fails.push_back({{"file", c.file}, {"line", c.line}, {"name", c.name}, {"expected", expected}, {"actual", actual},
                       {"message", p->DecidingMessage(r.decision)}});
    } else {
      *inv.out << "FAIL " << c.file << ":" << c.line << ": " << c.name << "\n     expected " << expected
               << ", got " << actual << " (" << p->DecidingMessage(r.decision) << ")\n";
    }
  }
  size_t passed = results.size() - failed;
  if (inv.json) {
    PrintJson(inv, {{"passed", passed}, {"failed", failed}, {"failures", fails}, {"revision", p->revision()}});
  } else {
    *inv.out << passed << " passed, " << failed << " failed\n";
  }
  return failed == 0 ? kOk : kTestsFailed;
}

const char* VerdictName(Verdict v) {
  return v == Verdict::kAllow ? "allow" : v == Verdict::kConditional ? "conditional" : "deny";
}

int MatrixCmd(Invocation& inv) {
  PolicyPtr p = LoadOrReport(inv, PathArg(inv, 0));
  if (!p) return kRuntime;
  Matrix m = BuildMatrix(*p);
  if (!m.problems.empty()) {
    if (inv.json) PrintJson(inv, {{"policy", m.policy}, {"revision", m.revision}, {"problems", m.problems}});
    return Fail(inv, kUsage, "policy matrix: " + m.problems[0]);
  }
  if (!inv.json) {
    *inv.out << RenderMatrix(m);
    return kOk;
  }
  json groups = json::array();
  for (const auto& g : m.groups) {
    json members = json::array();
    for (const auto& mem : g.members)
      members.push_back({{"kind", mem.kind}, {"org_role", mem.org_role}, {"workspace_role", mem.workspace_role}});
    groups.push_back({{"label", g.label}, {"members", members}});
  }
  json slices = json::array();
  for (const auto& s : m.slices) {
    json settings = json::object();
    for (const auto& [k, v] : s.settings) settings[k] = v;
    json cells = json::array();
    for (size_t a = 0; a < m.actions.size(); ++a) {
      for (size_t g = 0; g < m.groups.size(); ++g) {
        json c = {{"action", m.actions[a]}, {"group", g}, {"verdict", VerdictName(s.cells[a][g])}};
        if (!s.conditions[a][g].empty()) c["allowed_when"] = s.conditions[a][g];
        cells.push_back(c);
      }
    }
    slices.push_back({{"workspace_type", s.workspace_type}, {"settings", settings}, {"cells", cells}});
  }
  PrintJson(inv, {{"policy", m.policy}, {"revision", m.revision}, {"actions", m.actions}, {"groups", groups},
                  {"slices", slices}});
  return kOk;
}

int DiffCmd(Invocation& inv) {
  PolicyPtr a = LoadOrReport(inv, inv.args[0]);
  if (!a) return kUsage;
  PolicyPtr b = LoadOrReport(inv, inv.args[1]);
  if (!b) return kUsage;
  DiffOptions opt;
  opt.rules = inv.opt("rules").has_value();
  PolicyDiff d = DiffPolicies(*a, *b, opt);
  if (inv.json) {
    json changes = json::array();
    for (const auto& c : d.changes)
      changes.push_back({{"action", c.action}, {"when", c.condition}, {"from", c.from}, {"to", c.to}});
    PrintJson(inv, {{"equal", d.equal()}, {"from", a->revision()}, {"to", b->revision()}, {"notes", d.notes},
                    {"changes", changes}, {"problems", d.problems}});
  } else if (d.equal()) {
    *inv.out << "no semantic difference (" << a->revision() << " ≡ " << b->revision() << ")\n";
  } else {
    *inv.out << RenderDiff(d);
  }
  if (!d.problems.empty()) return kUsage;
  return d.equal() ? kOk : kRuntime;
}

}  // namespace

void RegisterPolicyCommands(std::vector<Command>* c) {
  c->push_back({{"policy", "validate"}, "[PATH]", "Load, check and compile a policy; print every error as FILE:LINE:COL.", {}, 0, 1, Validate});
  c->push_back({{"policy", "test"}, "[PATH]", "Run the policy's tests (PATH/tests/*.yaml); print failures with the rule that decided.", {}, 0, 1, Test});
  c->push_back({{"policy", "matrix"}, "[PATH]", "Print the role × action matrix per workspace type and setting.", {}, 0, 1, MatrixCmd});
  c->push_back({{"policy", "diff"}, "OLD NEW", "Print the exact semantic difference between two policies (exit 0 equal, 1 different, 2 error).", {"rules"}, 2, 2, DiffCmd});
}

}  // namespace gatehouse::cli
