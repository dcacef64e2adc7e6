// The exact semantic diff: both policies decide every class of the joint
// input space of each action; the cells that differ are merged into few
// readable conditions.
#include <map>
#include <set>
#include <sstream>

#include "analysis/axes.h"
#include "gatehouse/analysis.h"

namespace gatehouse {

using internal::ActionModel;
using internal::Attr;
using internal::AttrKind;
using internal::Axis;
using internal::CompiledAction;
using internal::Dim;
using internal::PolicyModel;

namespace {

constexpr uint64_t kMaxDiffCells = internal::kMaxAnalysisCells;

std::string KeyOf(const PolicyModel& m, const ActionModel& a, const Attr& attr) {
  return internal::AttrName(m, a, attr);
}

std::vector<std::string> Common(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> out;
  for (const auto& x : a)
    if (std::find(b.begin(), b.end(), x) != b.end()) out.push_back(x);
  return out;
}

void CompareLists(const char* what, const std::vector<std::string>& a, const std::vector<std::string>& b,
                  std::vector<std::string>* notes) {
  for (const auto& x : a)
    if (std::find(b.begin(), b.end(), x) == b.end()) notes->push_back(std::string(what) + " " + x + " removed");
  for (const auto& x : b)
    if (std::find(a.begin(), a.end(), x) == a.end()) notes->push_back(std::string(what) + " " + x + " added");
  std::vector<std::string> ca = Common(a, b), cb = Common(b, a);
  if (ca != cb) notes->push_back(std::string(what) + " reordered (ranks changed)");
}

// One side of the joint space: how a joint axis value reaches a policy's request.
struct Side {
  const CompiledPolicy* policy;
  const PolicyModel* m;
  const ActionModel* a;
  ActionId id;
};

struct JointAxis {
  Axis axis;
  std::string key;
  // Per side: the attribute, whether the side knows it, and per joint class
  // the value to set on that side's request.
  struct Binding {
    bool present = false;
    Attr attr;
    std::vector<int64_t> values;
  } side[2];
};

std::optional<int64_t> ValueOn(const Side& s, const Attr& attr, ValueType type, const std::string& name) {
  switch (type) {
    case ValueType::kOrgRole: if (auto id = s.policy->FindOrgRole(name)) return *id; return std::nullopt;
    case ValueType::kWorkspaceRole: if (auto id = s.policy->FindWorkspaceRole(name)) return *id; return std::nullopt;
    case ValueType::kWorkspaceType: if (auto id = s.policy->FindWorkspaceType(name)) return *id; return std::nullopt;
    default: (void)attr; return std::nullopt;
  }
}

std::string Outcome(const CompiledPolicy& p, const Decision& d, bool rules) {
  std::string s = d.allowed() ? "allow" : "deny";
  if (rules) {
    std::string_view r = p.DecidingRule(d);
    if (!r.empty()) s += " (" + std::string(r) + ")";
  }
  return s;
}

// `budget`: cells left for the whole diff, so that many actions cannot add
// up to more than one analysis may visit.
void DiffAction(const Side& sa, const Side& sb, const DiffOptions& opt, uint64_t* budget, PolicyDiff* out) {
  const CompiledAction& ca = sa.policy->impl().compiled[sa.id];
  const CompiledAction& cb = sb.policy->impl().compiled[sb.id];
  std::map<std::string, JointAxis> axes;  // by key; sorted for determinism
  std::vector<std::string> order;
  auto add_dims = [&](const Side& s, const CompiledAction& c, int k) {
    for (const Dim& d : c.dims) {
      std::string key = KeyOf(*s.m, *s.a, d.attr);
      auto [it, inserted] = axes.try_emplace(key);
      JointAxis& j = it->second;
      if (inserted) {
        order.push_back(key);
        j.key = key;
        j.axis = internal::AxisOf(*s.m, *s.a, d);
      } else if (j.axis.kind == Axis::Kind::kInt) {
        std::set<int64_t> lows(j.axis.lows.begin(), j.axis.lows.end());
        lows.insert(d.lows.begin(), d.lows.end());
        j.axis.lows.assign(lows.begin(), lows.end());
      } else if (j.axis.kind == Axis::Kind::kRole || j.axis.kind == Axis::Kind::kEnum) {
        j.axis.names = Common(j.axis.names, internal::AxisOf(*s.m, *s.a, d).names);
      }
      j.side[k].present = true;
      j.side[k].attr = d.attr;
    }
  };
  add_dims(sa, ca, 0);
  add_dims(sb, cb, 1);
  // Order: principal, workspace, settings, request — as the keys sort naturally.
  std::sort(order.begin(), order.end(), [](const std::string& x, const std::string& y) {
    auto rank = [](const std::string& k) {
      return k.starts_with("principal.") ? 0 : k.starts_with("workspace.") ? 1 : k.starts_with("settings.") ? 2 : 3;
    };
    return std::make_pair(rank(x), x) < std::make_pair(rank(y), y);
  });
  std::vector<JointAxis*> joint;
  std::vector<Axis> plain;
  std::vector<uint32_t> sizes;
  uint64_t cells = 1;
  for (const auto& key : order) {
    JointAxis& j = axes[key];
    const Side* sides[2] = {&sa, &sb};
    for (int k = 0; k < 2; ++k) {
      JointAxis::Binding& b = j.side[k];
      if (!b.present) continue;
      const PolicyModel& m = *sides[k]->m;
      ValueType type = internal::AttrType(m, *sides[k]->a, b.attr);
      for (size_t c = 0; c < j.axis.size(); ++c) {
        int64_t v = 0;
        if (j.axis.kind == Axis::Kind::kInt) v = j.axis.lows[c];
        else if (j.axis.kind == Axis::Kind::kRole || j.axis.kind == Axis::Kind::kEnum) {
          auto id = ValueOn(*sides[k], b.attr, type, j.axis.names[c]);
          if (!id) {
            // Same name, different kind of attribute on the other side.
            out->problems.push_back(sa.a->name + ": " + key + " has a different type in the two policies");
            return;
          }
          v = *id;
        } else v = static_cast<int64_t>(c);
        b.values.push_back(v);
      }
    }
    if (j.side[0].present && j.side[1].present &&
        internal::AttrType(*sa.m, *sa.a, j.side[0].attr) != internal::AttrType(*sb.m, *sb.a, j.side[1].attr)) {
      out->problems.push_back(sa.a->name + ": " + key + " has a different type in the two policies");
      return;
    }
    joint.push_back(&j);
    plain.push_back(j.axis);
    sizes.push_back(static_cast<uint32_t>(j.axis.size()));
    cells *= std::max<uint64_t>(1, j.axis.size());
    if (cells > kMaxDiffCells) {
      out->problems.push_back(sa.a->name + ": input space too large to compare exactly (over " +
                              std::to_string(kMaxDiffCells) + " classes)");
      return;
    }
  }
  if (cells > *budget) {
    out->problems.push_back(sa.a->name + ": the policies' input spaces are too large to compare exactly (over " +
                            std::to_string(kMaxDiffCells * 4) + " classes in all)");
    return;
  }
  *budget -= cells;
  Request ra, rb;
  ra.action = sa.id;
  rb.action = sb.id;
  ra.settings = sa.policy->default_settings();
  rb.settings = sb.policy->default_settings();
  std::map<std::pair<std::string, std::string>, std::vector<std::vector<uint32_t>>> changed;
  internal::ForEachCell(sizes, [&](const std::vector<uint32_t>& cell) {
    for (size_t i = 0; i < joint.size(); ++i) {
      if (joint[i]->side[0].present) internal::SetAttr(joint[i]->side[0].attr, joint[i]->side[0].values[cell[i]], &ra);
      if (joint[i]->side[1].present) internal::SetAttr(joint[i]->side[1].attr, joint[i]->side[1].values[cell[i]], &rb);
    }
    Decision da = sa.policy->Decide(ra), db = sb.policy->Decide(rb);
    std::string from = Outcome(*sa.policy, da, opt.rules), to = Outcome(*sb.policy, db, opt.rules);
    if (from != to) changed[{from, to}].push_back(cell);
  });
  for (const auto& [ft, list] : changed) {
    for (const auto& cube : internal::MergeCells(plain, list)) {
      std::string cond = internal::DescribeCube(plain, cube);
      out->changes.push_back({sa.a->name, cond.empty() ? "every request" : cond, ft.first, ft.second});
    }
  }
}

// Everything an action's decisions depend on, in canonical text. Expressions
// print role, type and setting names, so over identical role and type
// orderings equal fingerprints mean equal decisions on every input.
std::string Fingerprint(const PolicyModel& m, const ActionModel& a) {
  std::string f;
  for (const ParamInfo& p : a.params) f += "param " + p.name + " " + std::to_string(static_cast<int>(p.type)) + "\n";
  for (const auto& r : a.rules)
    f += (r.effect == Effect::kAllow ? "permit " : "forbid ") + r.id + " " + internal::ExprToString(m, a, *r.expr) + "\n";
  return f;
}

}  // namespace

PolicyDiff DiffPolicies(const CompiledPolicy& before, const CompiledPolicy& after, const DiffOptions& opt) {
  PolicyDiff out;
  const PolicyModel& ma = before.impl().model;
  const PolicyModel& mb = after.impl().model;
  if (ma.name != mb.name) out.notes.push_back("policy renamed " + ma.name + " → " + mb.name);
  CompareLists("organization role", ma.org_roles, mb.org_roles, &out.notes);
  CompareLists("workspace role", ma.ws_roles, mb.ws_roles, &out.notes);
  CompareLists("workspace type", ma.ws_types, mb.ws_types, &out.notes);
  for (const auto& s : ma.settings) {
    auto it = std::find_if(mb.settings.begin(), mb.settings.end(), [&](const SettingInfo& x) { return x.name == s.name; });
    if (it == mb.settings.end()) out.notes.push_back("setting " + s.name + " removed");
    else if (it->default_value != s.default_value)
      out.notes.push_back("setting " + s.name + " default " + (s.default_value ? "true" : "false") + " → " +
                          (it->default_value ? "true" : "false"));
  }
  for (const auto& s : mb.settings) {
    if (std::none_of(ma.settings.begin(), ma.settings.end(), [&](const SettingInfo& x) { return x.name == s.name; }))
      out.notes.push_back("setting " + s.name + " added (default " + (s.default_value ? "true" : "false") + ")");
  }
  if (ma.max_lifetime != mb.max_lifetime)
    out.notes.push_back("tokens.max_lifetime " + (ma.max_lifetime ? FormatDuration(ma.max_lifetime) : std::string("unset")) +
                        " → " + (mb.max_lifetime ? FormatDuration(mb.max_lifetime) : std::string("unset")));
  auto routes = [](const PolicyModel& m) {
    std::set<std::string> s;
    for (const auto& r : m.routes) s.insert(r.method + " " + r.path + " → " + m.actions[r.action].name);
    return s;
  };
  std::set<std::string> ra = routes(ma), rb = routes(mb);
  for (const auto& r : ra) if (!rb.count(r)) out.notes.push_back("route removed: " + r);
  for (const auto& r : rb) if (!ra.count(r)) out.notes.push_back("route added: " + r);
  uint64_t budget = kMaxDiffCells * 4;
  for (size_t i = 0; i < ma.actions.size(); ++i) {
    const ActionModel& a = ma.actions[i];
    auto j = after.FindAction(a.name);
    if (!j) {
      out.notes.push_back("action " + a.name + " removed (now denied for every request)");
      continue;
    }
    const ActionModel& b = mb.actions[*j];
    if (a.graphql.has_value() != b.graphql.has_value() ||
        (a.graphql && (a.graphql->field != b.graphql->field || a.graphql->name != b.graphql->name ||
                       a.graphql->code != b.graphql->code || a.graphql->message != b.graphql->message)))
      out.notes.push_back("action " + a.name + ": on_deny error changed");
    const bool same_domains = ma.org_roles == mb.org_roles && ma.ws_roles == mb.ws_roles && ma.ws_types == mb.ws_types;
    if (!opt.exhaustive && same_domains && Fingerprint(ma, a) == Fingerprint(mb, b)) continue;  // cannot differ
    DiffAction({&before, &ma, &a, static_cast<ActionId>(i)}, {&after, &mb, &b, *j}, opt, &budget, &out);
  }
  for (const ActionModel& b : mb.actions)
    if (!before.FindAction(b.name)) out.notes.push_back("action " + b.name + " added");
  return out;
}

std::string RenderDiff(const PolicyDiff& d) {
  std::ostringstream o;
  for (const auto& n : d.notes) o << "* " << n << "\n";
  for (const auto& c : d.changes) o << c.action << ", " << c.condition << ": " << c.from << " → " << c.to << "\n";
  for (const auto& p : d.problems) o << "! " << p << "\n";
  return o.str();
}

}  // namespace gatehouse
