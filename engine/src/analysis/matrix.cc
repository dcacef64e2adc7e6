#include <algorithm>
#include <map>
#include <sstream>

#include "analysis/axes.h"
#include "gatehouse/analysis.h"

namespace gatehouse {

using internal::Axis;
using internal::AttrKind;
using internal::CompiledAction;

namespace {

struct Principal {
  PrincipalKind kind;
  RoleId org, ws;
};

// Settings the policy's rules read anywhere, by index.
std::vector<int> ReadSettings(const CompiledPolicy::Impl& impl) {
  std::vector<int> out;
  for (const CompiledAction& a : impl.compiled)
    for (const auto& d : a.dims)
      if (d.attr.kind == AttrKind::kSetting &&
          std::find(out.begin(), out.end(), d.attr.index) == out.end())
        out.push_back(d.attr.index);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Matrix BuildMatrix(const CompiledPolicy& policy) {
  const CompiledPolicy::Impl& impl = policy.impl();
  const internal::PolicyModel& m = impl.model;
  Matrix out;
  out.policy = m.name;
  out.revision = impl.revision;
  for (const auto& a : m.actions) out.actions.push_back(a.name);

  // Slices: every workspace type × the setting assignments worth showing: all
  // of them for up to three settings, else the defaults and each one flipped.
  std::vector<int> settings = ReadSettings(impl);
  std::vector<uint64_t> assignments;
  if (settings.size() <= 3) {
    for (uint64_t bits = 0; bits < (uint64_t{1} << settings.size()); ++bits) {
      uint64_t s = impl.default_settings;
      for (size_t i = 0; i < settings.size(); ++i) {
        if (bits >> i & 1) s |= uint64_t{1} << settings[i];
        else s &= ~(uint64_t{1} << settings[i]);
      }
      assignments.push_back(s);
    }
  } else {
    assignments.push_back(impl.default_settings);
    for (int s : settings) assignments.push_back(impl.default_settings ^ (uint64_t{1} << s));
  }

  // Principals, most powerful first.
  std::vector<Principal> principals;
  for (int k = 0; k < 2; ++k)
    for (int o = static_cast<int>(m.org_roles.size()) - 1; o >= 0; --o)
      for (int w = static_cast<int>(m.ws_roles.size()) - 1; w >= 0; --w)
        principals.push_back({static_cast<PrincipalKind>(k), static_cast<RoleId>(o), static_cast<RoleId>(w)});

  // Bound the whole enumeration before starting it.
  {
    const uint64_t per_action_base =
        internal::CellProduct({static_cast<uint32_t>(principals.size()), static_cast<uint32_t>(m.ws_types.size()),
                               static_cast<uint32_t>(assignments.size())});
    uint64_t total = 0, worst = 0;
    size_t worst_action = 0;
    for (size_t ai = 0; ai < m.actions.size(); ++ai) {
      std::vector<uint32_t> sizes = {1};
      for (const auto& d : impl.compiled[ai].dims)
        if (d.attr.kind == AttrKind::kParam) sizes.push_back(d.size);
      uint64_t params = internal::CellProduct(sizes);
      uint64_t cells = params > UINT64_MAX / std::max<uint64_t>(per_action_base, 1) ? UINT64_MAX : params * per_action_base;
      total = total > UINT64_MAX - cells ? UINT64_MAX : total + cells;
      if (cells > worst) {
        worst = cells;
        worst_action = ai;
      }
    }
    if (total > internal::kMaxAnalysisCells) {
      auto count = [](uint64_t n) { return n == UINT64_MAX ? std::string("more than 2^64") : std::to_string(n); };
      out.problems.push_back("the policy's input space is too large to enumerate exactly: " + count(total) +
                             " cells (at most " + std::to_string(internal::kMaxAnalysisCells) + "); the largest is " +
                             m.actions[worst_action].name + " with " + count(worst) +
                             " (principals x workspace types x settings x request-parameter classes)");
      return out;
    }
  }

  // verdicts[principal][slice * actions + action], conditions alongside.
  std::vector<std::vector<Verdict>> verdicts(principals.size());
  std::vector<std::vector<std::string>> conds(principals.size());
  for (size_t p = 0; p < principals.size(); ++p) {
    for (size_t t = 0; t < m.ws_types.size(); ++t) {
      for (uint64_t s : assignments) {
        for (size_t ai = 0; ai < m.actions.size(); ++ai) {
          const CompiledAction& ca = impl.compiled[ai];
          std::vector<size_t> param_dims;
          std::vector<Axis> axes;
          for (size_t d = 0; d < ca.dims.size(); ++d) {
            if (ca.dims[d].attr.kind == AttrKind::kParam) {
              param_dims.push_back(d);
              axes.push_back(internal::AxisOf(m, m.actions[ai], ca.dims[d]));
            }
          }
          Request r;
          r.action = static_cast<ActionId>(ai);
          r.kind = principals[p].kind;
          r.org_role = principals[p].org;
          r.workspace_role = principals[p].ws;
          r.workspace_type = static_cast<TypeId>(t);
          r.settings = s;
          std::vector<uint32_t> sizes;
          for (size_t d : param_dims) sizes.push_back(ca.dims[d].size);
          const std::vector<std::vector<uint32_t>> cells = internal::AllCells(sizes);
          const size_t total = cells.size();
          std::vector<std::vector<uint32_t>> allowed;
          for (const auto& cls : cells) {
            for (size_t j = 0; j < param_dims.size(); ++j) {
              const internal::Dim& d = ca.dims[param_dims[j]];
              internal::SetAttr(d.attr, internal::RepresentativeOf(d, cls[j]), &r);
            }
            if (policy.Decide(r).allowed()) allowed.push_back(cls);
          }
          Verdict v = allowed.empty() ? Verdict::kDeny : allowed.size() == total ? Verdict::kAllow : Verdict::kConditional;
          std::string cond;
          if (v == Verdict::kConditional) {
            for (const auto& cube : internal::MergeCells(axes, allowed))
              cond += (cond.empty() ? "" : "; or ") + internal::DescribeCube(axes, cube);
          }
          verdicts[p].push_back(v);
          conds[p].push_back(cond);
        }
      }
    }
  }

  // Group principals that behave alike everywhere.
  std::map<std::pair<std::vector<Verdict>, std::vector<std::string>>, size_t> group_of;
  std::vector<size_t> representative;
  std::vector<std::vector<std::vector<uint32_t>>> member_cells;
  for (size_t p = 0; p < principals.size(); ++p) {
    auto [it, inserted] = group_of.try_emplace({verdicts[p], conds[p]}, out.groups.size());
    if (inserted) {
      out.groups.emplace_back();
      representative.push_back(p);
      member_cells.emplace_back();
    }
    const Principal& pr = principals[p];
    out.groups[it->second].members.push_back({pr.kind == PrincipalKind::kUser ? "user" : "api_user",
                                              m.org_roles[pr.org], m.ws_roles[pr.ws]});
    member_cells[it->second].push_back({static_cast<uint32_t>(pr.kind), pr.org, pr.ws});
  }
  std::vector<Axis> paxes(3);
  paxes[0].kind = Axis::Kind::kKind;
  paxes[0].names = {"user", "api_user"};
  paxes[1].kind = Axis::Kind::kRole;
  paxes[1].name = "org role";
  paxes[1].names = m.org_roles;
  paxes[2].kind = Axis::Kind::kRole;
  paxes[2].name = "workspace role";
  paxes[2].names = m.ws_roles;
  for (size_t g = 0; g < out.groups.size(); ++g) {
    std::string label;
    for (const auto& cube : internal::MergeCells(paxes, member_cells[g])) {
      std::string d = internal::DescribeCube(paxes, cube);
      label += (label.empty() ? "" : "; ") + (d.empty() ? std::string("everyone") : d);
    }
    out.groups[g].label = label;
  }

  size_t slice = 0;
  for (size_t t = 0; t < m.ws_types.size(); ++t) {
    for (uint64_t s : assignments) {
      MatrixSlice sl;
      sl.workspace_type = m.ws_types[t];
      for (int i : settings) sl.settings.push_back({m.settings[i].name, (s >> i & 1) != 0});
      sl.cells.assign(m.actions.size(), std::vector<Verdict>(out.groups.size()));
      sl.conditions.assign(m.actions.size(), std::vector<std::string>(out.groups.size()));
      for (size_t ai = 0; ai < m.actions.size(); ++ai) {
        for (size_t g = 0; g < out.groups.size(); ++g) {
          size_t idx = slice * m.actions.size() + ai;
          sl.cells[ai][g] = verdicts[representative[g]][idx];
          sl.conditions[ai][g] = conds[representative[g]][idx];
        }
      }
      out.slices.push_back(std::move(sl));
      ++slice;
    }
  }
  return out;
}

namespace {
std::string GroupCode(size_t g) {
  std::string s;
  do {
    s.insert(s.begin(), static_cast<char>('A' + g % 26));
    g /= 26;
  } while (g-- > 0);
  return s;
}
}  // namespace

std::string RenderMatrix(const Matrix& m) {
  std::ostringstream o;
  o << "Policy " << m.policy << " (" << m.revision << ")\n\n";
  o << "Principal groups (principals that behave alike for every action, workspace and setting):\n";
  for (size_t g = 0; g < m.groups.size(); ++g) o << "  " << GroupCode(g) << "  " << m.groups[g].label << "\n";
  o << "\nallow = allowed · cond = allowed for some request parameters (listed below) · - = denied\n";
  size_t width = 6;
  for (const auto& a : m.actions) width = std::max(width, a.size());
  for (const MatrixSlice& sl : m.slices) {
    o << "\n== " << sl.workspace_type << " workspace";
    for (const auto& [name, on] : sl.settings) o << ", " << name << " " << (on ? "on" : "off");
    o << " ==\n  " << std::string(width, ' ');
    for (size_t g = 0; g < m.groups.size(); ++g) {
      std::string c = GroupCode(g);
      o << "  " << c << std::string(c.size() < 5 ? 5 - c.size() : 0, ' ');
    }
    o << "\n";
    std::vector<std::string> notes;
    for (size_t a = 0; a < m.actions.size(); ++a) {
      o << "  " << m.actions[a] << std::string(width - m.actions[a].size(), ' ');
      for (size_t g = 0; g < m.groups.size(); ++g) {
        Verdict v = sl.cells[a][g];
        o << "  " << (v == Verdict::kAllow ? "allow" : v == Verdict::kConditional ? "cond " : "-    ");
        if (v == Verdict::kConditional)
          notes.push_back(m.actions[a] + " [" + GroupCode(g) + "]: when " + sl.conditions[a][g]);
      }
      o << "\n";
    }
    for (const auto& n : notes) o << "    " << n << "\n";
  }
  return o.str();
}

}  // namespace gatehouse
