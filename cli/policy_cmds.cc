// gatehouse policy validate|test|matrix|diff
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <fstream>
#include <map>
#include <tuple>

#include "cli.h"
#include "html_report.h"
#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"
#include "gatehouse/policy_testing.h"
#include "gatehouse/text.h"

namespace gatehouse::cli {
namespace {

using nlohmann::json;

// Human output line by line, each escaped (gatehouse/text.h): test names,
// messages and paths come from files anyone may have written.
std::string SafeLines(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out += EscapeText(std::string_view(text).substr(start, end - start));
    if (end < text.size()) out += '\n';
    start = end + 1;
  }
  return out;
}

json ErrorsJson(const std::vector<PolicyError>& errors) {
  json a = json::array();
  for (const auto& e : errors) a.push_back({{"file", e.file}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
  return a;
}

// Loads a policy or prints its errors; nullptr on failure.
PolicyPtr LoadOrReport(Invocation& inv, const std::string& path, bool with_invariants = true,
                       size_t* invariants = nullptr) {
  PolicyLoad load = LoadPolicy(path, LoadOptions{with_invariants ? inv.invariants : std::vector<std::string>{}});
  if (invariants) *invariants = load.invariants;
  for (const auto& w : load.warnings) *inv.err << w.ToString() << "\n";  // skipped files, even with --json
  if (load.ok()) return load.policy;
  if (inv.json) {
    PrintJson(inv, {{"valid", false}, {"path", path}, {"errors", ErrorsJson(load.errors)}});
  } else {
    for (const auto& e : load.errors) *inv.err << e.ToString() << "\n";
    *inv.err << "gatehouse: policy " << EscapeText(path) << " refused: " << load.errors.size() << " error"
             << (load.errors.size() == 1 ? "" : "s") << "\n";
  }
  return nullptr;
}

// Writes --html FILE when given; false (with the one stderr line in *code) on failure.
bool WriteHtml(Invocation& inv, const std::string& html, int* code) {
  auto file = inv.opt("html");
  if (!file) return true;
  if (file->empty()) {
    *code = Fail(inv, kUsage, "--html needs a file name");
    return false;
  }
  std::ofstream out(*file, std::ios::binary | std::ios::trunc);
  out << html;
  out.close();
  if (!out) {
    *code = Fail(inv, kRuntime, "cannot write " + *file);
    return false;
  }
  return true;
}

std::string PathArg(const Invocation& inv, size_t i) { return inv.args.size() > i ? inv.args[i] : inv.policy; }

int Validate(Invocation& inv) {
  std::string path = PathArg(inv, 0);
  size_t invariants = 0;
  PolicyPtr p = LoadOrReport(inv, path, true, &invariants);
  if (!p) return kRuntime;
  if (inv.json) {
    PrintJson(inv, {{"valid", true}, {"path", path}, {"policy", p->name()}, {"revision", p->revision()},
                    {"actions", p->actions().size()}, {"invariants", invariants}});
  } else {
    *inv.out << "ok: policy " << p->name() << " (" << p->revision() << "): " << p->actions().size()
             << " actions, " << p->settings().size() << " settings, " << p->workspace_type_count()
             << " workspace types, " << invariants << " invariant" << (invariants == 1 ? "" : "s") << " hold\n";
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
      *inv.out << SafeLines("FAIL " + c.file + ":" + std::to_string(c.line) + ": " + c.name + "\n     expected " +
                            expected + ", got " + actual + " (" + p->DecidingMessage(r.decision) + ")\n");
    }
  }
  size_t passed = results.size() - failed;
  // Coverage: asked for, or needed for --min-coverage.
  std::optional<double> min_coverage;
  if (auto v = inv.opt("min-coverage")) {
    char* end = nullptr;
    errno = 0;
    const double pct = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0' || errno != 0 || !(pct >= 0 && pct <= 100))
      return Fail(inv, kUsage, "--min-coverage takes a percentage from 0 to 100, not '" + *v + "'");
    min_coverage = pct;
  }
  const bool coverage = inv.opt("coverage").has_value() || min_coverage.has_value();
  PolicyCoverage cov;
  if (coverage) cov = MeasureCoverage(*p, results);
  auto pct = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%%", x);
    return std::string(buf);
  };
  auto cell_text = [](const CoverageCell& c) {
    std::string s = c.group;
    if (!c.workspace_type.empty()) s += "; " + c.workspace_type + " workspace";
    for (const auto& [name, on] : c.settings) s += "; " + name + "=" + (on ? "true" : "false");
    return s;
  };
  if (inv.json) {
    json out = {{"passed", passed}, {"failed", failed}, {"failures", fails}, {"revision", p->revision()}};
    if (coverage) {
      json rules = json::array(), cells = json::array();
      for (const auto& [action, rule] : cov.undecided_rules) rules.push_back({{"action", action}, {"rule", rule}});
      for (const auto& c : cov.unreached) {
        json settings = json::object();
        for (const auto& [name, on] : c.settings) settings[name] = on;
        json cell = {{"action", c.action}, {"group", c.group}, {"settings", settings}};
        if (!c.workspace_type.empty()) cell["workspace_type"] = c.workspace_type;
        cells.push_back(cell);
      }
      out["coverage"] = {{"rules", cov.rules},         {"rules_decided", cov.rules_decided},
                         {"rule_percent", cov.rule_percent()}, {"undecided_rules", rules},
                         {"cells", cov.cells},         {"cells_reached", cov.cells_reached},
                         {"cell_percent", cov.cell_percent()}, {"unreached_cells", cells},
                         {"problems", cov.problems}};
    }
    PrintJson(inv, out);
  } else {
    *inv.out << passed << " passed, " << failed << " failed\n";
    if (coverage) {
      *inv.out << "coverage: " << cov.rules_decided << " of " << cov.rules << " rules decided a case ("
               << pct(cov.rule_percent()) << "); " << cov.cells_reached << " of " << cov.cells
               << " cells reached (" << pct(cov.cell_percent()) << ")\n";
      for (const auto& problem : cov.problems) *inv.out << "  cells not counted: " << problem << "\n";
      if (!cov.undecided_rules.empty()) *inv.out << "rules that decided no case:\n";
      for (const auto& [action, rule] : cov.undecided_rules) *inv.out << "  " << action << ": " << rule << "\n";
      if (!cov.unreached.empty()) *inv.out << "cells no case reaches (action: principal group; workspace; settings):\n";
      // At most kShown per action in text; --json lists them all.
      constexpr size_t kShown = 8;
      for (size_t i = 0; i < cov.unreached.size();) {
        size_t j = i;
        while (j < cov.unreached.size() && cov.unreached[j].action == cov.unreached[i].action) ++j;
        for (size_t k = i; k < std::min(j, i + kShown); ++k)
          *inv.out << "  " << cov.unreached[k].action << ": " << cell_text(cov.unreached[k]) << "\n";
        if (j - i > kShown) *inv.out << "  " << cov.unreached[i].action << ": ... and " << (j - i - kShown) << " more\n";
        i = j;
      }
    }
  }
  if (failed != 0) return kTestsFailed;
  if (min_coverage && (cov.rule_percent() < *min_coverage || cov.cell_percent() < *min_coverage)) {
    return Fail(inv, kRuntime, "coverage below " + pct(*min_coverage) + ": rules " + pct(cov.rule_percent()) +
                                   ", cells " + pct(cov.cell_percent()));
  }
  return kOk;
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
  if (int code = kOk; !WriteHtml(inv, MatrixHtml(*p, m), &code)) return code;
  if (!inv.json) {
    *inv.out << SafeLines(RenderMatrix(m));
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
  // --invariants speak for the candidate: the old policy is compared, not judged.
  PolicyPtr a = LoadOrReport(inv, inv.args[0], /*with_invariants=*/false);
  if (!a) return kUsage;
  PolicyPtr b = LoadOrReport(inv, inv.args[1]);
  if (!b) return kUsage;
  DiffOptions opt;
  opt.rules = inv.opt("rules").has_value();
  PolicyDiff d = DiffPolicies(*a, *b, opt);
  if (int code = kOk; !WriteHtml(inv, DiffHtml(*a, *b, d), &code)) return code;
  if (inv.json) {
    json changes = json::array();
    for (const auto& c : d.changes)
      changes.push_back({{"action", c.action}, {"when", c.condition}, {"from", c.from}, {"to", c.to}});
    PrintJson(inv, {{"equal", d.equal()}, {"from", a->revision()}, {"to", b->revision()}, {"notes", d.notes},
                    {"changes", changes}, {"problems", d.problems}});
  } else if (d.equal()) {
    *inv.out << "no semantic difference (" << a->revision() << " ≡ " << b->revision() << ")\n";
  } else {
    *inv.out << SafeLines(RenderDiff(d));
  }
  if (!d.problems.empty()) return kUsage;
  return d.equal() ? kOk : kRuntime;
}

// One recorded request, resolved against the candidate policy.
std::optional<Request> ReplayRequest(const CompiledPolicy& p, const json& rec, std::string* why) {
  const json& in = rec["inputs"];
  auto str = [&](const json& j, const char* key) -> std::string {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string("\x01");
  };
  Request r;
  auto action = p.FindAction(str(rec, "action"));
  if (!action) {
    *why = "action " + str(rec, "action") + " is not in the candidate policy";
    return std::nullopt;
  }
  r.action = *action;
  const std::string kind = str(in, "kind");
  if (kind != "user" && kind != "api_user") {
    *why = "no principal kind";
    return std::nullopt;
  }
  r.kind = kind == "user" ? PrincipalKind::kUser : PrincipalKind::kApiUser;
  auto org = p.FindOrgRole(str(in, "org_role"));
  auto ws = p.FindWorkspaceRole(str(in, "workspace_role"));
  auto type = p.FindWorkspaceType(str(in, "workspace_type"));
  if (!org || !ws || !type) {
    *why = "a role or workspace type the candidate policy does not declare";
    return std::nullopt;
  }
  r.org_role = *org;
  r.workspace_role = *ws;
  r.workspace_type = *type;
  // Settings the record names take its values; the others their defaults.
  r.settings = p.default_settings();
  if (in.contains("settings") && in["settings"].is_object()) {
    for (const auto& [name, value] : in["settings"].items()) {
      auto i = p.FindSetting(name);
      if (!i || !value.is_boolean()) continue;
      if (value.get<bool>()) r.settings |= uint64_t{1} << *i;
      else r.settings &= ~(uint64_t{1} << *i);
    }
  }
  const ActionInfo& info = *p.action(*action);
  if (in.contains("params") && in["params"].is_object()) {
    for (const auto& [name, value] : in["params"].items()) {
      auto slot = p.FindParam(*action, name);
      if (!slot || !value.is_string()) continue;  // parameters the candidate does not read
      const std::string v = value.get<std::string>();
      switch (info.params[*slot].type) {
        case ValueType::kOrgRole:
          if (auto id = p.FindOrgRole(v)) r.params[*slot] = *id;
          else { *why = "role " + v + " is not declared"; return std::nullopt; }
          break;
        case ValueType::kWorkspaceRole:
          if (auto id = p.FindWorkspaceRole(v)) r.params[*slot] = *id;
          else { *why = "role " + v + " is not declared"; return std::nullopt; }
          break;
        case ValueType::kBool: r.params[*slot] = v == "true"; break;
        default: {
          char* end = nullptr;
          errno = 0;
          const long long n = std::strtoll(v.c_str(), &end, 10);
          if (v.empty() || *end != '\0' || errno != 0) { *why = "parameter " + name + " is not an integer"; return std::nullopt; }
          r.params[*slot] = n;
        }
      }
    }
  }
  return r;
}

// Decides a replayed request as the sidecar does: an API user's token.use first.
Decision ReplayDecide(const CompiledPolicy& p, const Request& r) {
  auto use = p.FindAction("token.use");
  if (use && r.kind == PrincipalKind::kApiUser && *use != r.action) {
    Request gate = r;
    gate.action = *use;
    gate.params = {};
    Decision d = p.Decide(gate);
    if (!d.allowed()) return d;
  }
  return p.Decide(r);
}

int ReplayCmd(Invocation& inv) {
  auto log_path = inv.opt("decision-log");
  if (!log_path || log_path->empty()) return Fail(inv, kUsage, "policy replay needs --decision-log FILE");
  PolicyPtr p = LoadOrReport(inv, inv.args[0]);
  if (!p) return kUsage;
  std::ifstream in(*log_path, std::ios::binary);
  if (!in) return Fail(inv, kUsage, "cannot read the decision log " + *log_path);
  struct Group {
    std::string action, from, to;
    std::map<std::string, std::vector<json>> by_inputs;  // inputs text → records
    size_t count = 0;
  };
  std::map<std::tuple<std::string, std::string, std::string>, Group> groups;
  size_t lines = 0, replayed = 0, skipped = 0, malformed = 0, changed = 0;
  std::map<std::string, size_t> skip_reasons;
  std::string line;
  // Bounded by the file: one record per line, each line at most 1 MiB.
  while (std::getline(in, line)) {
    ++lines;
    if (line.size() > (size_t{1} << 20)) {
      ++malformed;
      continue;
    }
    json rec = json::parse(line, nullptr, false);
    if (rec.is_discarded() || !rec.is_object() || !rec.contains("decision") || !rec["decision"].is_string()) {
      ++malformed;
      continue;
    }
    if (!rec.contains("inputs") || !rec["inputs"].is_object()) {
      ++skipped;
      ++skip_reasons["the policy was not asked (unknown token, user or workspace), or no inputs recorded"];
      continue;
    }
    std::string why;
    auto r = ReplayRequest(*p, rec, &why);
    if (!r) {
      ++skipped;
      ++skip_reasons[why];
      continue;
    }
    ++replayed;
    const Decision d = ReplayDecide(*p, *r);
    const std::string from = rec["decision"].get<std::string>(), to = d.allowed() ? "allow" : "deny";
    if (from == to) continue;
    ++changed;
    const std::string action = rec["action"].get<std::string>();
    Group& g = groups[{action, from, to}];
    g.action = action;
    g.from = from;
    g.to = to;
    ++g.count;
    json entry = {{"time", rec.value("time", "")},
                  {"request_id", rec.value("request_id", "")},
                  {"principal", rec.value("principal", "")},
                  {"workspace", rec.value("workspace", "")},
                  {"rule", std::string(p->DecidingRule(d))}};
    g.by_inputs[rec["inputs"].dump()].push_back(std::move(entry));
  }
  if (inv.json) {
    json out_groups = json::array();
    for (const auto& [key, g] : groups) {
      json inputs = json::array();
      for (const auto& [text, recs] : g.by_inputs)
        inputs.push_back({{"inputs", json::parse(text)}, {"count", recs.size()}, {"requests", recs}});
      out_groups.push_back({{"action", g.action}, {"from", g.from}, {"to", g.to}, {"count", g.count}, {"by_inputs", inputs}});
    }
    json reasons = json::object();
    for (const auto& [why, n] : skip_reasons) reasons[why] = n;
    PrintJson(inv, {{"policy", p->name()}, {"revision", p->revision()}, {"records", lines}, {"replayed", replayed},
                    {"skipped", skipped}, {"skip_reasons", reasons}, {"malformed", malformed}, {"changed", changed},
                    {"changes", out_groups}});
  } else {
    *inv.out << "replayed " << replayed << " of " << lines << " recorded decisions under " << p->name() << " ("
             << p->revision() << "); " << changed << " would change\n";
    for (const auto& [key, g] : groups) {
      *inv.out << g.action << ": " << g.from << " → " << g.to << " (" << g.count << " request"
               << (g.count == 1 ? "" : "s") << ")\n";
      for (const auto& [text, recs] : g.by_inputs) {
        *inv.out << "  " << recs.size() << "× " << text << "\n";
        for (size_t i = 0; i < recs.size() && i < 3; ++i)
          *inv.out << "     " << recs[i]["time"].get<std::string>() << " " << recs[i]["principal"].get<std::string>()
                   << " in " << recs[i]["workspace"].get<std::string>() << " (request "
                   << recs[i]["request_id"].get<std::string>() << ", now " << g.to << " by "
                   << recs[i]["rule"].get<std::string>() << ")\n";
        if (recs.size() > 3) *inv.out << "     ... and " << recs.size() - 3 << " more\n";
      }
    }
    for (const auto& [why, n] : skip_reasons) *inv.out << "skipped " << n << ": " << why << "\n";
    if (malformed) *inv.out << "skipped " << malformed << " lines that are not decision records\n";
  }
  return changed == 0 ? kOk : kRuntime;
}

}  // namespace

void RegisterPolicyCommands(std::vector<Command>* c) {
  c->push_back({{"policy", "validate"}, "[PATH]", "Load, check and compile a policy; print every error as FILE:LINE:COL.", {}, 0, 1, Validate});
  c->push_back({{"policy", "test"}, "[PATH]", "Run the policy's tests (PATH/tests/*.yaml); print failures with the rule that decided.", {"coverage", "min-coverage"}, 0, 1, Test});
  c->push_back({{"policy", "matrix"}, "[PATH]", "Print the role × action matrix per workspace type and setting.", {"html"}, 0, 1, MatrixCmd});
  c->push_back({{"policy", "diff"}, "OLD NEW", "Print the exact semantic difference between two policies (exit 0 equal, 1 different, 2 error).", {"rules", "html"}, 2, 2, DiffCmd});
  c->push_back({{"policy", "replay"}, "NEW_POLICY", "Re-decide the decisions of a sidecar's decision log under a candidate policy; list every request whose decision would change (exit 0 none, 1 some, 2 error).", {"decision-log"}, 1, 1, ReplayCmd});
}

}  // namespace gatehouse::cli
