// Axes of a compiled policy's input space, for the matrix and the diff.
#pragma once

#include "analysis/cells.h"
#include "compile/compiled.h"

namespace gatehouse::internal {

// The axis of one dimension of an action, labelled for people.
inline Axis AxisOf(const PolicyModel& m, const ActionModel& a, const Dim& d) {
  Axis x;
  switch (d.attr.kind) {
    case AttrKind::kPrincipalKind:
      x.kind = Axis::Kind::kKind;
      x.name = "kind";
      x.names = {"user", "api_user"};
      break;
    case AttrKind::kOrgRole:
      x.kind = Axis::Kind::kRole;
      x.name = "org role";
      x.names = m.org_roles;
      break;
    case AttrKind::kWorkspaceRole:
      x.kind = Axis::Kind::kRole;
      x.name = "workspace role";
      x.names = m.ws_roles;
      break;
    case AttrKind::kWorkspaceType:
      x.kind = Axis::Kind::kEnum;
      x.name = "workspace";
      x.names = m.ws_types;
      break;
    case AttrKind::kSetting:
      x.kind = Axis::Kind::kBool;
      x.name = m.settings[d.attr.index].name;
      x.names = {"false", "true"};
      break;
    case AttrKind::kParam: {
      const ParamInfo& p = a.params[d.attr.index];
      x.name = "request." + p.name;
      switch (p.type) {
        case ValueType::kOrgRole: x.kind = Axis::Kind::kRole; x.names = m.org_roles; break;
        case ValueType::kWorkspaceRole: x.kind = Axis::Kind::kRole; x.names = m.ws_roles; break;
        case ValueType::kBool: x.kind = Axis::Kind::kBool; x.names = {"false", "true"}; break;
        default:
          x.kind = Axis::Kind::kInt;
          x.lows = d.lows;
          x.seconds = p.name.size() > 8 && p.name.ends_with("_seconds");
      }
      break;
    }
  }
  return x;
}

}  // namespace gatehouse::internal
