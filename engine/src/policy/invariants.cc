// Invariants: read (YAML → positioned model), then checked exactly over the
// compiled tables (see gatehouse/invariants.h for the semantics).
#include "gatehouse/invariants.h"

#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "compile/compiled.h"
#include "policy/expr.h"
#include "policy/files.h"
#include "policy/model.h"
#include "policy/validate.h"
#include "policy/yaml_reader.h"

namespace gatehouse {
namespace {

using internal::Attr;
using internal::AttrKind;
using internal::Dim;
using internal::Expr;
using internal::Quote;
using internal::YDoc;
using internal::YNode;

// How many input classes one invariant may visit for one action. An exact
// check past it would take seconds; it is refused with a position instead.
constexpr uint64_t kMaxInvariantCells = uint64_t{1} << 22;

struct ParsedInvariant {
  std::string id, message, when;
  bool never = true;
  PolicyError where;
  // Per listed action: its id and `when` parsed against it.
  std::vector<std::pair<ActionId, std::unique_ptr<Expr>>> checks;
};

bool ValidId(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

class Reader {
 public:
  Reader(const YDoc& d, const CompiledPolicy& p, std::vector<PolicyError>* errors, std::set<std::string>* ids)
      : d_(d), p_(p), m_(p.impl().model), errors_(errors), ids_(ids) {}

  void Read(std::vector<ParsedInvariant>* out) {
    const YNode& root = d_.root;
    if (!root.IsMap()) {
      Err(root, "an invariants file holds 'gatehouse: v1' and 'invariants:', a list");
      return;
    }
    const YNode* list = nullptr;
    bool version = false;
    for (const auto& [k, v] : root.entries) {
      if (k.value == "gatehouse") {
        version = true;
        if (!v.IsScalar() || v.value != "v1")
          Err(v, "unsupported format version " + Quote(v.value) + " (this Gatehouse reads v1)");
      } else if (k.value == "invariants") {
        if (list) Err(k, "duplicate key 'invariants'");
        list = &v;
      } else {
        Err(k, "unknown key " + Quote(k.value) + " in an invariants file (expected: gatehouse, invariants)");
      }
    }
    if (!version) Err(root, "missing required key 'gatehouse' (the format version, v1)");
    if (!list || !list->IsSeq()) {
      Err(list ? *list : root, "'invariants' must be a list of invariants");
      return;
    }
    for (size_t i = 0; i < list->items.size(); ++i)
      ReadOne(list->items[i], "invariants[" + std::to_string(i) + "]", out);
  }

 private:
  void Err(const YNode& n, std::string msg) { errors_->push_back({d_.file, n.line, n.column, std::move(msg)}); }

  const YNode* Scalar(const YNode& n, const std::string& path) {
    if (n.IsScalar()) return &n;
    Err(n, path + " must be a single value");
    return nullptr;
  }

  void ReadOne(const YNode& n, const std::string& path, std::vector<ParsedInvariant>* out) {
    if (!n.IsMap()) {
      Err(n, path + " must be a mapping with id, never or always, and message");
      return;
    }
    const size_t before = errors_->size();
    ParsedInvariant inv;
    inv.where = {d_.file, n.line, n.column, ""};
    const YNode *id = nullptr, *body = nullptr, *body_key = nullptr;
    std::set<std::string> seen;
    for (const auto& [k, v] : n.entries) {
      if (!seen.insert(k.value).second) {
        Err(k, "duplicate key " + Quote(k.value) + " in " + path);
        continue;
      }
      if (k.value == "id") {
        id = Scalar(v, path + ".id");
      } else if (k.value == "message") {
        if (Scalar(v, path + ".message")) inv.message = v.value;
      } else if (k.value == "never" || k.value == "always") {
        if (body) {
          Err(k, path + " holds both never and always; write two invariants");
          continue;
        }
        body = &v;
        body_key = &k;
        inv.never = k.value == "never";
      } else {
        Err(k, "unknown key " + Quote(k.value) + " in " + path + " (expected: id, never, always, message)");
      }
    }
    if (!id) {
      if (!seen.count("id")) Err(n, "missing required key 'id' in " + path);
    } else if (!ValidId(id->value)) {
      Err(*id, "invalid invariant id " + Quote(id->value) + " in " + path +
                   " (lower case letters, digits, '-', '_', '.'; at most 128)");
    } else if (!ids_->insert(id->value).second) {
      Err(*id, "duplicate invariant id " + Quote(id->value));
    } else {
      inv.id = id->value;
    }
    if (!body) {
      Err(n, "missing 'never' or 'always' in " + path);
      return;
    }
    const std::string bpath = path + "." + body_key->value;
    if (!body->IsMap()) {
      Err(*body, bpath + " must be a mapping {action, when}");
      return;
    }
    const YNode *actions = nullptr, *when = nullptr;
    for (const auto& [k, v] : body->entries) {
      if (k.value == "action" && !actions) actions = &v;
      else if (k.value == "when" && !when) when = &v;
      else if (k.value == "action" || k.value == "when") Err(k, "duplicate key " + Quote(k.value) + " in " + bpath);
      else Err(k, "unknown key " + Quote(k.value) + " in " + bpath + " (expected: action, when)");
    }
    if (!actions) Err(*body, "missing required key 'action' in " + bpath);
    if (!when) Err(*body, "missing required key 'when' in " + bpath);
    std::vector<ActionId> ids;
    if (actions) {
      std::vector<const YNode*> names;
      if (actions->IsSeq()) {
        for (const YNode& a : actions->items) names.push_back(&a);
        if (names.empty()) Err(*actions, bpath + ".action lists no action");
      } else {
        names.push_back(actions);
      }
      for (const YNode* a : names) {
        if (!Scalar(*a, bpath + ".action")) continue;
        if (a->value == "*" && names.size() == 1) {  // every action
          for (size_t i = 0; i < m_.actions.size(); ++i) ids.push_back(static_cast<ActionId>(i));
        } else if (auto aid = p_.FindAction(a->value)) {
          if (std::find(ids.begin(), ids.end(), *aid) == ids.end()) ids.push_back(*aid);
        } else {
          Err(*a, "unknown action " + Quote(a->value) + " in " + bpath + ".action");
        }
      }
    }
    if (when && Scalar(*when, bpath + ".when")) {
      inv.when = when->value;
      for (ActionId aid : ids) {
        std::vector<internal::ExprError> errs;
        auto expr = internal::ParseExpr(when->value, m_, m_.actions[aid], &errs);
        for (const auto& e : errs) {
          auto [line, col] = d_.PosInScalar(*when, e.offset);
          errors_->push_back({d_.file, line, col, e.message + " (in " + bpath + ".when)"});
        }
        if (expr) inv.checks.emplace_back(aid, std::move(expr));
      }
    }
    if (errors_->size() == before) out->push_back(std::move(inv));
  }

  const YDoc& d_;
  const CompiledPolicy& p_;
  const internal::PolicyModel& m_;
  std::vector<PolicyError>* errors_;
  std::set<std::string>* ids_;
};

// The lower bounds of the classes that split int64 at `constants` (each
// constant c starts a class, and so does c + 1).
void AddSplits(std::set<int64_t>* lows, int64_t c) {
  lows->insert(c);
  if (c < std::numeric_limits<int64_t>::max()) lows->insert(c + 1);
}

// The member of [lo, hi] nearest zero: a readable representative.
int64_t NearZero(int64_t lo, int64_t hi) {
  if (lo <= 0 && hi >= 0) return 0;
  return lo > 0 ? lo : hi;
}

std::string ValueText(const CompiledPolicy& p, ValueType t, int64_t v) {
  switch (t) {
    case ValueType::kKind: return v ? "api_user" : "user";
    case ValueType::kOrgRole: return std::string(p.OrgRoleName(static_cast<RoleId>(v)));
    case ValueType::kWorkspaceRole: return std::string(p.WorkspaceRoleName(static_cast<RoleId>(v)));
    case ValueType::kWorkspaceType: return std::string(p.WorkspaceTypeName(static_cast<TypeId>(v)));
    case ValueType::kBool: return v ? "true" : "false";
    case ValueType::kInt: return std::to_string(v);
  }
  return "?";
}

std::string RequestText(const CompiledPolicy& p, const Request& r) {
  std::string s = "kind=" + ValueText(p, ValueType::kKind, static_cast<int64_t>(r.kind));
  s += " org_role=" + ValueText(p, ValueType::kOrgRole, r.org_role);
  s += " workspace_role=" + ValueText(p, ValueType::kWorkspaceRole, r.workspace_role);
  s += " workspace.type=" + ValueText(p, ValueType::kWorkspaceType, r.workspace_type);
  for (size_t i = 0; i < p.settings().size(); ++i)
    s += " settings." + p.settings()[i].name + "=" + (((r.settings >> i) & 1u) ? "true" : "false");
  if (const ActionInfo* a = p.action(r.action)) {
    for (size_t i = 0; i < a->params.size(); ++i)
      s += " request." + a->params[i].name + "=" + ValueText(p, a->params[i].type, r.params[i]);
  }
  return s;
}

// One attribute enumerated by the check: a representative value per class.
struct CheckAxis {
  Attr attr;
  std::vector<int64_t> values;
};

// Calls f() for every combination of the axes' values, each set into *r
// (the last axis fastest); stops when f returns false.
template <typename F>
void Enumerate(const std::vector<CheckAxis>& axes, Request* r, std::vector<size_t>* cls, F&& f) {
  cls->assign(axes.size(), 0);
  for (const CheckAxis& x : axes) internal::SetAttr(x.attr, x.values[0], r);
  while (true) {
    if (!f()) return;
    size_t i = axes.size();
    while (true) {
      if (i == 0) return;
      --i;
      if (++(*cls)[i] < axes[i].values.size()) {
        internal::SetAttr(axes[i].attr, axes[i].values[(*cls)[i]], r);
        break;
      }
      (*cls)[i] = 0;
      internal::SetAttr(axes[i].attr, axes[i].values[0], r);
    }
  }
}

// Checks one invariant over one action; appends a violation when it fails.
// Returns false (with an error) when the space is too large to enumerate.
//
// Exact without visiting the product of everything: the policy's decision
// reads the attributes D, the invariant's condition reads W. A counterexample
// exists iff some assignment of the shared attributes S = D ∩ W both lets the
// condition hold (for some values of W \ S) and lets the policy decide the
// wrong way (for some values of D \ S), since the rest of W and of D are
// independent. So one pass over W's classes marks the S-classes where the
// condition can hold, and one pass over D's classes looks for a wrong
// decision in a marked one: |W| + (marked classes × |D \ S|) cells, not
// |W ∪ D|, and a broken invariant stops at its first counterexample. Shared integer
// parameters are split at the constants of both sides, so a class decides
// alike on each.
bool CheckOne(const CompiledPolicy& p, const ParsedInvariant& inv, ActionId aid, const Expr& when,
              std::vector<InvariantViolation>* out, std::vector<PolicyError>* errors) {
  const internal::PolicyModel& m = p.impl().model;
  const internal::ActionModel& am = m.actions[aid];
  const internal::CompiledAction& ca = p.impl().compiled[aid];
  std::set<Attr> d_attrs, w_attrs;
  std::map<Attr, std::set<int64_t>> d_lows, w_lows;
  for (const Dim& d : ca.dims) {
    d_attrs.insert(d.attr);
    if (d.type == ValueType::kInt) d_lows[d.attr].insert(d.lows.begin(), d.lows.end());
  }
  internal::VisitAttrs(when, [&](const Attr& a) {
    w_attrs.insert(a);
    if (internal::AttrType(m, am, a) == ValueType::kInt) w_lows[a].insert(std::numeric_limits<int64_t>::min());
  });
  internal::VisitConstants(when, [&](const Attr& a, int64_t c) {
    if (internal::AttrType(m, am, a) == ValueType::kInt) AddSplits(&w_lows[a], c);
  });
  // A shared integer gets the common refinement on both sides.
  for (auto& [a, lows] : w_lows) {
    if (!d_attrs.count(a)) continue;
    lows.insert(d_lows[a].begin(), d_lows[a].end());
    d_lows[a] = lows;
  }
  auto axis_of = [&](const Attr& a, std::map<Attr, std::set<int64_t>>& int_lows) {
    CheckAxis x{a, {}};
    switch (internal::AttrType(m, am, a)) {
      case ValueType::kInt: {
        const std::vector<int64_t> lows(int_lows[a].begin(), int_lows[a].end());
        for (size_t i = 0; i < lows.size(); ++i)
          x.values.push_back(
              NearZero(lows[i], i + 1 < lows.size() ? lows[i + 1] - 1 : std::numeric_limits<int64_t>::max()));
        break;
      }
      case ValueType::kKind:
      case ValueType::kBool: x.values = {0, 1}; break;
      case ValueType::kOrgRole:
        for (int i = 0; i < p.org_role_count(); ++i) x.values.push_back(i);
        break;
      case ValueType::kWorkspaceRole:
        for (int i = 0; i < p.workspace_role_count(); ++i) x.values.push_back(i);
        break;
      case ValueType::kWorkspaceType:
        for (int i = 0; i < p.workspace_type_count(); ++i) x.values.push_back(i);
        break;
    }
    return x;
  };
  std::vector<CheckAxis> d_axes, w_axes;
  uint64_t d_cells = 1, w_cells = 1;
  for (const Attr& a : d_attrs) {
    d_axes.push_back(axis_of(a, d_lows));
    if (d_cells <= kMaxInvariantCells) d_cells *= d_axes.back().values.size();
  }
  for (const Attr& a : w_attrs) {
    w_axes.push_back(axis_of(a, w_lows));
    if (w_cells <= kMaxInvariantCells) w_cells *= w_axes.back().values.size();
  }
  if (d_cells > kMaxInvariantCells || w_cells > kMaxInvariantCells) {
    errors->push_back({inv.where.file, inv.where.line, inv.where.column,
                       "invariant " + Quote(inv.id) + " spans more than " + std::to_string(kMaxInvariantCells) +
                           " input classes of action " + am.name + "; too many to check exactly"});
    return false;
  }
  // The shared attributes: their axis index on each side and a mixed-radix key.
  std::vector<std::pair<size_t, size_t>> shared;  // (d axis, w axis)
  for (size_t i = 0; i < d_axes.size(); ++i)
    for (size_t j = 0; j < w_axes.size(); ++j)
      if (d_axes[i].attr == w_axes[j].attr) shared.emplace_back(i, j);
  auto key_of = [&](const std::vector<size_t>& w_cls) {
    uint64_t k = 0;
    for (const auto& [i, j] : shared) k = k * d_axes[i].values.size() + w_cls[j];
    return k;
  };
  uint64_t keys = 1;
  for (const auto& [i, j] : shared) keys *= d_axes[i].values.size();

  // Pass 1: where can the condition hold? The first W cell per S-class.
  Request base;
  base.action = aid;
  base.settings = p.default_settings();
  std::vector<std::vector<size_t>> first_w(keys);
  std::vector<uint8_t> sat(keys, 0);
  bool any = false;
  Request rw = base;
  std::vector<size_t> cls;
  Enumerate(w_axes, &rw, &cls, [&] {
    if (internal::Eval(when, rw)) {
      const uint64_t k = key_of(cls);
      if (!sat[k]) {
        sat[k] = 1;
        first_w[k] = cls;
        any = true;
      }
    }
    return true;
  });
  if (!any) return true;  // the condition never holds: nothing to break

  // Pass 2: a wrong decision in a class where the condition can hold. Only
  // the marked classes of the shared attributes are visited, each with every
  // class of the action's other attributes.
  std::vector<bool> is_shared(d_axes.size(), false);
  for (const auto& [i, j] : shared) is_shared[i] = true;
  std::vector<CheckAxis> rest;
  for (size_t i = 0; i < d_axes.size(); ++i)
    if (!is_shared[i]) rest.push_back(d_axes[i]);
  for (uint64_t k = 0; k < keys; ++k) {
    if (!sat[k]) continue;
    Request rd = base;
    for (const auto& [i, j] : shared) internal::SetAttr(w_axes[j].attr, w_axes[j].values[first_w[k][j]], &rd);
    bool found = false;
    Enumerate(rest, &rd, &cls, [&] {
      const Decision d = p.Decide(rd);
      if (d.allowed() != inv.never) return true;
      Request r = rd;
      for (size_t j = 0; j < w_axes.size(); ++j)
        internal::SetAttr(w_axes[j].attr, w_axes[j].values[first_w[k][j]], &r);
      InvariantViolation v;
      v.id = inv.id;
      v.message = inv.message;
      v.form = inv.never ? "never" : "always";
      v.when = inv.when;
      v.where = inv.where;
      v.action = am.name;
      v.request = r;
      v.decision = p.Decide(r);  // the same outcome: r differs from rd only outside D
      v.request_text = RequestText(p, r);
      // What decided: the matching permits of an allow, the matching forbids
      // of a deny (never the permits they overrode), or the missing permits
      // of a default deny.
      for (const Reason& reason : p.Explain(v.decision))
        if (reason.effect == v.decision.effect) v.rules.push_back(reason.rule);
      out->push_back(std::move(v));
      found = true;
      return false;
    });
    if (found) return true;
  }
  return true;
}

void ReadDoc(const CompiledPolicy& policy, const std::string& file, std::string text, InvariantReport* report,
             std::vector<ParsedInvariant>* parsed, std::set<std::string>* ids, internal::YamlBudget* budget) {
  YDoc doc;
  if (!internal::ReadYaml(file, std::move(text), &doc, &report->errors, budget)) return;
  if (doc.root.kind == YNode::Kind::kNull) {
    report->errors.push_back({file, 1, 1, "empty invariants file (expected 'gatehouse: v1' and 'invariants:')"});
    return;
  }
  Reader(doc, policy, &report->errors, ids).Read(parsed);
}

void Run(const CompiledPolicy& policy, const std::vector<ParsedInvariant>& parsed, InvariantReport* report) {
  report->invariants = parsed.size();
  if (!report->errors.empty()) return;  // check nothing unless every file reads
  for (const ParsedInvariant& inv : parsed)
    for (const auto& [aid, expr] : inv.checks)
      CheckOne(policy, inv, aid, *expr, &report->violations, &report->errors);
  internal::SortErrors(&report->errors);
}

}  // namespace

std::string InvariantViolation::ToString() const {
  std::string s = where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": invariant " +
                  id + " broken";
  if (!message.empty()) s += " (" + message + ")";
  std::string list;
  for (size_t i = 0; i < rules.size(); ++i) list += (i ? ", " : "") + rules[i];
  s += ": counterexample " + action + " with " + request_text + " is ";
  if (decision.allowed()) s += "allowed by " + list;
  else if (decision.cause == Cause::kForbidden) s += "denied by " + list;
  else s += "denied: no permit matched (" + list + ")";
  s += "; " + action + " must " + (form == "never" ? "never" : "always") + " be allowed when " + when;
  return s;
}

std::vector<PolicyError> InvariantReport::AllErrors() const {
  std::vector<PolicyError> out = errors;
  for (const InvariantViolation& v : violations) {
    std::string full = v.ToString();
    const std::string prefix =
        v.where.file + ":" + std::to_string(v.where.line) + ":" + std::to_string(v.where.column) + ": ";
    out.push_back({v.where.file, v.where.line, v.where.column, full.substr(prefix.size())});
  }
  std::stable_sort(out.begin(), out.end(), [](const PolicyError& a, const PolicyError& b) {
    return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
  });
  return out;
}

InvariantReport CheckInvariantsFromString(const CompiledPolicy& policy, std::string_view yaml,
                                          const std::string& file) {
  InvariantReport report;
  std::vector<ParsedInvariant> parsed;
  std::set<std::string> ids;
  if (yaml.size() > internal::kMaxFileBytes) {
    report.errors.push_back({file, 1, 1, "invariants text too large"});
  } else {
    ReadDoc(policy, file, std::string(yaml), &report, &parsed, &ids, nullptr);
  }
  internal::SortErrors(&report.errors);
  Run(policy, parsed, &report);
  return report;
}

InvariantReport CheckInvariants(const CompiledPolicy& policy, const std::vector<std::string>& paths) {
  InvariantReport report;
  std::vector<ParsedInvariant> parsed;
  std::set<std::string> ids;
  internal::YamlBudget budget;
  size_t bytes = 0;
  for (const std::string& path : paths) {
    for (const std::string& f : internal::InvariantFiles(path, &report.errors, &report.warnings)) {
      std::string text;
      if (!internal::ReadFile(f, internal::kMaxFileBytes, &text, &report.errors)) continue;
      bytes += text.size();
      if (bytes > internal::kMaxLoadBytes) {
        report.errors.push_back({f, 1, 1, "the invariant files hold more than " +
                                              std::to_string(internal::kMaxLoadBytes >> 20) + " MiB together"});
        break;
      }
      ReadDoc(policy, f, std::move(text), &report, &parsed, &ids, &budget);
    }
  }
  internal::SortErrors(&report.errors);
  Run(policy, parsed, &report);
  return report;
}

std::vector<std::string> InvariantPaths(const std::string& policy_path, const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  struct stat st {};
  const std::string sub = policy_path + (policy_path.ends_with("/") ? "" : "/") + "invariants";
  if (stat(policy_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && stat(sub.c_str(), &st) == 0 &&
      S_ISDIR(st.st_mode))
    out.push_back(sub);
  for (const std::string& e : extra) out.push_back(e);
  return out;
}

}  // namespace gatehouse
