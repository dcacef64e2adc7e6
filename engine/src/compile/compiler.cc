#include "compile/compiler.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "compile/compiled.h"

namespace gatehouse::internal {
namespace {

uint32_t DomainSize(const PolicyModel& m, ValueType t) {
  switch (t) {
    case ValueType::kKind: return 2;
    case ValueType::kOrgRole: return static_cast<uint32_t>(m.org_roles.size());
    case ValueType::kWorkspaceRole: return static_cast<uint32_t>(m.ws_roles.size());
    case ValueType::kWorkspaceType: return static_cast<uint32_t>(m.ws_types.size());
    case ValueType::kBool: return 2;
    case ValueType::kInt: return 0;  // from the partition
  }
  return 0;
}

// The lower bounds of the classes that partition int64 at `constants`.
std::vector<int64_t> Partition(const std::set<int64_t>& constants) {
  std::vector<int64_t> lows = {std::numeric_limits<int64_t>::min()};
  auto push = [&](int64_t x) {
    if (x > lows.back()) lows.push_back(x);
  };
  for (int64_t c : constants) {
    push(c);
    if (c < std::numeric_limits<int64_t>::max()) push(c + 1);
  }
  return lows;
}

// Every attribute the action's rules read, in a canonical order, with domains.
std::vector<Dim> ActionDims(const PolicyModel& m, const ActionModel& a) {
  std::set<Attr> attrs;
  std::map<Attr, std::set<int64_t>> constants;
  for (const RuleModel& r : a.rules) {
    VisitAttrs(*r.expr, [&](const Attr& x) { attrs.insert(x); });
    VisitConstants(*r.expr, [&](const Attr& x, int64_t v) { constants[x].insert(v); });
  }
  std::vector<Dim> dims;
  for (const Attr& x : attrs) {
    Dim d;
    d.attr = x;
    d.type = AttrType(m, a, x);
    if (d.type == ValueType::kInt) {
      d.lows = Partition(constants[x]);
      d.size = static_cast<uint32_t>(d.lows.size());
    } else {
      d.size = DomainSize(m, d.type);
    }
    dims.push_back(std::move(d));
  }
  return dims;
}

// Calls f(classes) for every combination of classes over `sizes` (odometer).
template <typename F>
void ForEachCell(const std::vector<uint32_t>& sizes, F&& f) {
  std::vector<uint32_t> cls(sizes.size(), 0);
  for (uint32_t s : sizes)
    if (s == 0) return;
  while (true) {
    f(cls);
    size_t i = sizes.size();
    while (i > 0) {
      --i;
      if (++cls[i] < sizes[i]) break;
      cls[i] = 0;
      if (i == 0) return;
    }
    if (sizes.empty()) return;
  }
}

RuleTable BuildRuleTable(const PolicyModel&, const ActionModel&, const RuleModel& rule,
                         const std::vector<Dim>& dims, ActionId id) {
  std::set<Attr> used;
  VisitAttrs(*rule.expr, [&](const Attr& x) { used.insert(x); });
  RuleTable t;
  std::vector<uint32_t> sizes;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (used.count(dims[i].attr)) {
      t.dims.push_back(static_cast<uint8_t>(i));
      sizes.push_back(dims[i].size);
    }
  }
  t.strides.assign(sizes.size(), 1);
  uint64_t cells = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    t.strides[i] = static_cast<uint32_t>(cells);
    cells *= sizes[i];
  }
  t.bits.reserve(cells);
  Request req;
  req.action = id;
  ForEachCell(sizes, [&](const std::vector<uint32_t>& cls) {
    for (size_t j = 0; j < cls.size(); ++j) {
      const Dim& d = dims[t.dims[j]];
      SetAttr(d.attr, RepresentativeOf(d, cls[j]), &req);
    }
    t.bits.push_back(Eval(*rule.expr, req) ? 1 : 0);
  });
  return t;
}

uint64_t CellCount(const std::vector<uint32_t>& sizes) {
  uint64_t n = 1;
  for (uint32_t s : sizes) {
    n *= s;
    if (n > (uint64_t{1} << 62)) return n;  // saturate well before overflow
  }
  return n;
}

CompiledAction CompileAction(const PolicyModel& m, const ActionModel& a, ActionId id) {
  CompiledAction c;
  c.dims = ActionDims(m, a);
  for (size_t i = 0; i < a.rules.size(); ++i) {
    if (a.rules[i].effect == Effect::kAllow) {
      c.permit_mask |= uint64_t{1} << i;
      if (c.first_permit < 0) c.first_permit = static_cast<int16_t>(i);
    } else {
      c.forbid_mask |= uint64_t{1} << i;
    }
    c.rules.push_back(BuildRuleTable(m, a, a.rules[i], c.dims, id));
  }
  std::vector<uint32_t> sizes;
  for (const Dim& d : c.dims) sizes.push_back(d.size);
  c.cells = CellCount(sizes);
  c.dense = c.cells <= kDenseCellLimit;
  if (!c.dense) return c;

  // Fold the per-rule tables into one table over all the action's classes.
  c.strides.assign(sizes.size(), 1);
  uint64_t stride = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    c.strides[i] = static_cast<uint32_t>(stride);
    stride *= sizes[i];
  }
  for (size_t i = 0; i < c.dims.size(); ++i) {
    const Dim& d = c.dims[i];
    HotAxis x;
    x.size = d.size;
    x.stride = c.strides[i];
    x.dim = static_cast<uint32_t>(i);
    switch (d.attr.kind) {
      case AttrKind::kPrincipalKind: x.offset = 0; x.shift = 8 * offsetof(Request, kind); x.mask = 0xff; break;
      case AttrKind::kOrgRole: x.offset = 0; x.shift = 8 * offsetof(Request, org_role); x.mask = 0xff; break;
      case AttrKind::kWorkspaceRole: x.offset = 0; x.shift = 8 * offsetof(Request, workspace_role); x.mask = 0xff; break;
      case AttrKind::kWorkspaceType: x.offset = 0; x.shift = 8 * offsetof(Request, workspace_type); x.mask = 0xff; break;
      case AttrKind::kSetting: x.offset = offsetof(Request, settings); x.shift = d.attr.index; x.mask = 1; break;
      case AttrKind::kParam:
        x.offset = static_cast<uint16_t>(offsetof(Request, params) + 8 * d.attr.index);
        x.mask = ~uint64_t{0};
        if (d.type == ValueType::kInt) x.read = HotAxis::Read::kLows;
        else if (d.type == ValueType::kBool) x.read = HotAxis::Read::kNonZero;
        break;
    }
    c.axes.push_back(x);
  }
  c.table.reserve(c.cells);
  std::unordered_map<uint64_t, uint16_t> outcome_index;
  ForEachCell(sizes, [&](const std::vector<uint32_t>& cls) {
    uint64_t matched = 0;
    for (size_t r = 0; r < c.rules.size(); ++r) {
      const RuleTable& t = c.rules[r];
      uint32_t idx = 0;
      for (size_t j = 0; j < t.dims.size(); ++j) idx += cls[t.dims[j]] * t.strides[j];
      if (t.bits[idx]) matched |= uint64_t{1} << r;
    }
    auto [it, inserted] = outcome_index.try_emplace(matched, static_cast<uint16_t>(c.outcomes.size()));
    if (inserted) c.outcomes.push_back(OutcomeOf(matched, c.permit_mask, c.forbid_mask, c.first_permit));
    c.table.push_back(it->second);
  });
  c.rules.clear();  // the dense table answers alone
  c.rules.shrink_to_fit();
  return c;
}

std::string Describe(const std::vector<Dim>& dims, const PolicyModel& m, const ActionModel& a) {
  std::string s;
  for (const Dim& d : dims) {
    s += (s.empty() ? "" : ", ") + AttrName(m, a, d.attr) + " (" + std::to_string(d.size) + ")";
  }
  return s;
}

}  // namespace

namespace {

uint64_t ExprNodes(const Expr& e) {
  uint64_t n = 1;
  if (e.a) n += ExprNodes(*e.a);  // depth is bounded by the parser (kMaxExprDepth)
  for (const auto& x : e.args) n += ExprNodes(*x);
  return n;
}

uint64_t SaturatingAdd(uint64_t x, uint64_t y) { return x > UINT64_MAX - y ? UINT64_MAX : x + y; }
uint64_t SaturatingMul(uint64_t x, uint64_t y) { return y != 0 && x > UINT64_MAX / y ? UINT64_MAX : x * y; }

}  // namespace

void CheckCompileLimits(const PolicyModel& m, std::vector<PolicyError>* errors) {
  uint64_t policy_cells = 0, work = 0;
  bool reported_cells = false, reported_work = false;
  for (const ActionModel& a : m.actions) {
    if (a.rules.size() > static_cast<size_t>(kMaxRules)) {
      errors->push_back({a.pos.file, a.pos.line, a.pos.column,
                         "actions." + a.name + ": " + std::to_string(a.rules.size()) +
                             " rules; at most " + std::to_string(kMaxRules) +
                             " (the implicit tokens.max_lifetime rule included)"});
      continue;
    }
    std::vector<Dim> dims = ActionDims(m, a);
    for (const RuleModel& r : a.rules) {
      std::set<Attr> used;
      VisitAttrs(*r.expr, [&](const Attr& x) { used.insert(x); });
      std::vector<uint32_t> sizes;
      std::vector<Dim> rule_dims;
      for (const Dim& d : dims) {
        if (used.count(d.attr)) {
          sizes.push_back(d.size);
          rule_dims.push_back(d);
        }
      }
      uint64_t cells = CellCount(sizes);
      policy_cells = SaturatingAdd(policy_cells, cells);
      work = SaturatingAdd(work, SaturatingMul(cells, ExprNodes(*r.expr)));
      if (work > kCompileWorkLimit && cells <= kRuleCellLimit && !reported_work) {
        reported_work = true;
        errors->push_back({r.pos.file, r.pos.line, r.pos.column,
                           "the policy is too costly to compile from rule " + r.id + " on: " +
                               std::to_string(cells) + " input classes x " + std::to_string(ExprNodes(*r.expr)) +
                               " expression terms here, over " + std::to_string(kCompileWorkLimit) +
                               " evaluations in all; shorten or split its conditions"});
      }
      if (cells > kRuleCellLimit) {
        errors->push_back({r.pos.file, r.pos.line, r.pos.column,
                           "rule " + r.id + " reads too many attributes at once: " +
                               std::to_string(cells) + " input classes (at most " +
                               std::to_string(kRuleCellLimit) + "): " + Describe(rule_dims, m, a) +
                               "; split it into several rules"});
      }
    }
    // The action's own dense table, when it gets one.
    std::vector<uint32_t> all;
    for (const Dim& d : dims) all.push_back(d.size);
    const uint64_t action_cells = CellCount(all);
    if (action_cells <= kDenseCellLimit) policy_cells = SaturatingAdd(policy_cells, 2 * action_cells);
    if (policy_cells > kPolicyCellLimit && !reported_cells) {
      reported_cells = true;
      errors->push_back({a.pos.file, a.pos.line, a.pos.column,
                         "the policy's decision tables grow past " + std::to_string(kPolicyCellLimit) +
                             " cells at actions." + a.name + " (" + std::to_string(policy_cells) +
                             " so far); rules read too many attributes at once"});
    }
  }
}

std::shared_ptr<const CompiledPolicy> Compile(PolicyModel model, std::string revision) {
  auto impl = std::make_unique<CompiledPolicy::Impl>();
  impl->revision = std::move(revision);
  for (size_t i = 0; i < model.actions.size(); ++i) {
    const ActionModel& a = model.actions[i];
    impl->compiled.push_back(CompileAction(model, a, static_cast<ActionId>(i)));
    ActionInfo info;
    info.name = a.name;
    info.description = a.description;
    info.params = a.params;
    info.graphql = a.graphql;
    NameMap params;
    for (size_t p = 0; p < a.params.size(); ++p) params.emplace(a.params[p].name, static_cast<int>(p));
    impl->param_ids.push_back(std::move(params));
    for (const RuleModel& r : a.rules) info.rules.push_back({r.id, r.effect, r.when, r.message});
    impl->infos.push_back(std::move(info));
    impl->action_ids.emplace(a.name, static_cast<int>(i));
  }
  for (size_t i = 0; i < model.org_roles.size(); ++i) impl->org_role_ids.emplace(model.org_roles[i], static_cast<int>(i));
  for (size_t i = 0; i < model.ws_roles.size(); ++i) impl->ws_role_ids.emplace(model.ws_roles[i], static_cast<int>(i));
  for (size_t i = 0; i < model.ws_types.size(); ++i) impl->type_ids.emplace(model.ws_types[i], static_cast<int>(i));
  for (size_t i = 0; i < model.settings.size(); ++i) {
    impl->setting_ids.emplace(model.settings[i].name, static_cast<int>(i));
    if (model.settings[i].default_value) impl->default_settings |= uint64_t{1} << i;
  }
  impl->model = std::move(model);
  return std::make_shared<const CompiledPolicy>(std::move(impl));
}

}  // namespace gatehouse::internal
