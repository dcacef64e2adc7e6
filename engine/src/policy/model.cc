#include "policy/model.h"

#include "gatehouse/text.h"

#include <algorithm>
#include <charconv>
#include <limits>

namespace gatehouse {

std::string PolicyError::ToString() const {
  // A problem with a whole file (a skipped file, say) has no line. A file's
  // name may hold anything but '/' and NUL: escaped, like the message.
  if (line <= 0) return EscapeText(file + ": " + message);
  return EscapeText(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message);
}

std::optional<int64_t> ParseDuration(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return std::nullopt;
  }
  std::string_view digits = text.substr(0, text.size() - 1);
  if (digits.empty()) return std::nullopt;
  int64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    // Refuse, never wrap: n * unit must fit in int64.
    if (n > (INT64_MAX / unit - (c - '0')) / 10) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n <= 0) return std::nullopt;
  return n * unit;
}

std::string FormatDuration(int64_t seconds) {
  // Days rather than weeks: "365d" reads better than "52w1d".
  if (seconds > 0 && seconds % 86400 == 0) return std::to_string(seconds / 86400) + "d";
  if (seconds > 0 && seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  if (seconds > 0 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

namespace internal {

namespace {

bool Compare(CmpOp op, int64_t x, int64_t y) {
  switch (op) {
    case CmpOp::kEq: return x == y;
    case CmpOp::kNe: return x != y;
    case CmpOp::kLt: return x < y;
    case CmpOp::kLe: return x <= y;
    case CmpOp::kGt: return x > y;
    case CmpOp::kGe: return x >= y;
  }
  return false;
}

const char* CmpName(CmpOp op) {
  switch (op) {
    case CmpOp::kEq: return "==";
    case CmpOp::kNe: return "!=";
    case CmpOp::kLt: return "<";
    case CmpOp::kLe: return "<=";
    case CmpOp::kGt: return ">";
    case CmpOp::kGe: return ">=";
  }
  return "?";
}

}  // namespace

bool Eval(const Expr& e, const Request& r) {
  switch (e.op) {
    case Expr::Op::kConst: return e.const_value;
    case Expr::Op::kBoolAttr: return AttrValue(e.lhs, r) != 0;
    case Expr::Op::kCmpConst: return Compare(e.cmp, AttrValue(e.lhs, r), e.value);
    case Expr::Op::kCmpAttr: return Compare(e.cmp, AttrValue(e.lhs, r), AttrValue(e.rhs, r));
    case Expr::Op::kIn: {
      int64_t v = AttrValue(e.lhs, r);
      return std::find(e.list.begin(), e.list.end(), v) != e.list.end();
    }
    case Expr::Op::kAnd:
      for (const auto& x : e.args)
        if (!Eval(*x, r)) return false;
      return true;
    case Expr::Op::kOr:
      for (const auto& x : e.args)
        if (Eval(*x, r)) return true;
      return false;
    case Expr::Op::kNot: return !Eval(*e.a, r);
  }
  return false;
}

void VisitAttrs(const Expr& e, const std::function<void(const Attr&)>& f) {
  switch (e.op) {
    case Expr::Op::kConst: return;
    case Expr::Op::kBoolAttr:
    case Expr::Op::kCmpConst:
    case Expr::Op::kIn: f(e.lhs); return;
    case Expr::Op::kCmpAttr: f(e.lhs); f(e.rhs); return;
    case Expr::Op::kAnd:
    case Expr::Op::kOr:
      for (const auto& x : e.args) VisitAttrs(*x, f);
      return;
    case Expr::Op::kNot: VisitAttrs(*e.a, f); return;
  }
}

void VisitConstants(const Expr& e, const std::function<void(const Attr&, int64_t)>& g) {
  switch (e.op) {
    case Expr::Op::kConst:
    case Expr::Op::kBoolAttr:
    case Expr::Op::kCmpAttr: return;
    case Expr::Op::kCmpConst: g(e.lhs, e.value); return;
    case Expr::Op::kIn:
      for (int64_t v : e.list) g(e.lhs, v);
      return;
    case Expr::Op::kAnd:
    case Expr::Op::kOr:
      for (const auto& x : e.args) VisitConstants(*x, g);
      return;
    case Expr::Op::kNot: VisitConstants(*e.a, g); return;
  }
}

ValueType AttrType(const PolicyModel&, const ActionModel& a, const Attr& attr) {
  switch (attr.kind) {
    case AttrKind::kPrincipalKind: return ValueType::kKind;
    case AttrKind::kOrgRole: return ValueType::kOrgRole;
    case AttrKind::kWorkspaceRole: return ValueType::kWorkspaceRole;
    case AttrKind::kWorkspaceType: return ValueType::kWorkspaceType;
    case AttrKind::kSetting: return ValueType::kBool;
    case AttrKind::kParam:
      return attr.index < a.params.size() ? a.params[attr.index].type : ValueType::kInt;
  }
  return ValueType::kInt;
}

std::string AttrName(const PolicyModel& m, const ActionModel& a, const Attr& attr) {
  switch (attr.kind) {
    case AttrKind::kPrincipalKind: return "principal.kind";
    case AttrKind::kOrgRole: return "principal.org_role";
    case AttrKind::kWorkspaceRole: return "principal.workspace_role";
    case AttrKind::kWorkspaceType: return "workspace.type";
    case AttrKind::kSetting:
      return "settings." + (attr.index < m.settings.size() ? m.settings[attr.index].name : "?");
    case AttrKind::kParam:
      return "request." + (attr.index < a.params.size() ? a.params[attr.index].name : "?");
  }
  return "?";
}

std::string ValueName(const PolicyModel& m, ValueType type, int64_t v) {
  auto pick = [v](const std::vector<std::string>& names) {
    return v >= 0 && static_cast<size_t>(v) < names.size() ? names[v] : std::string("?");
  };
  switch (type) {
    case ValueType::kKind: return v == 0 ? "user" : v == 1 ? "api_user" : "?";
    case ValueType::kOrgRole: return pick(m.org_roles);
    case ValueType::kWorkspaceRole: return pick(m.ws_roles);
    case ValueType::kWorkspaceType: return pick(m.ws_types);
    case ValueType::kBool: return v ? "true" : "false";
    case ValueType::kInt: return std::to_string(v);
  }
  return "?";
}

namespace {

void AppendExpr(const PolicyModel& m, const ActionModel& a, const Expr& e, bool nested, std::string* out) {
  switch (e.op) {
    case Expr::Op::kConst: *out += e.const_value ? "true" : "false"; return;
    case Expr::Op::kBoolAttr: *out += AttrName(m, a, e.lhs); return;
    case Expr::Op::kCmpConst:
      *out += AttrName(m, a, e.lhs) + " " + CmpName(e.cmp) + " " + ValueName(m, AttrType(m, a, e.lhs), e.value);
      return;
    case Expr::Op::kCmpAttr:
      *out += AttrName(m, a, e.lhs) + " " + CmpName(e.cmp) + " " + AttrName(m, a, e.rhs);
      return;
    case Expr::Op::kIn:
    case Expr::Op::kNot: {
      // `x not in [...]` prints as written: no deeper than the input was.
      const bool not_in = e.op == Expr::Op::kNot && e.a->op == Expr::Op::kIn;
      if (e.op == Expr::Op::kNot && !not_in) {
        *out += "not ";
        AppendExpr(m, a, *e.a, true, out);
        return;
      }
      const Expr& in = not_in ? *e.a : e;
      *out += AttrName(m, a, in.lhs) + (not_in ? " not in [" : " in [");
      for (size_t i = 0; i < in.list.size(); ++i) {
        if (i) *out += ", ";
        *out += ValueName(m, AttrType(m, a, in.lhs), in.list[i]);
      }
      *out += "]";
      return;
    }
    case Expr::Op::kAnd:
    case Expr::Op::kOr: {
      if (nested) *out += "(";
      for (size_t i = 0; i < e.args.size(); ++i) {
        if (i) *out += e.op == Expr::Op::kAnd ? " and " : " or ";
        AppendExpr(m, a, *e.args[i], true, out);
      }
      if (nested) *out += ")";
      return;
    }
  }
  *out += "?";
}

// Appends the UTF-8 sequence at s[i..] (valid, else one byte) and returns
// its length; escapes what a terminal would act on.
size_t AppendChar(std::string_view s, size_t i, std::string* out) {
  auto hex = [out](unsigned v, int digits) {
    static const char* kHex = "0123456789abcdef";
    for (int d = digits - 1; d >= 0; --d) *out += kHex[(v >> (4 * d)) & 0xf];
  };
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    if (c < 0x20 || c == 0x7f) {
      *out += "\\x";
      hex(c, 2);
    } else {
      *out += static_cast<char>(c);
    }
    return 1;
  }
  size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
  if (c >= 0xf5) len = 0;
  uint32_t cp = len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
  bool ok = len > 0 && i + len <= s.size();
  for (size_t k = 1; ok && k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) ok = false;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if (ok && ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
             (cp >= 0xd800 && cp <= 0xdfff)))
    ok = false;  // overlong or a surrogate
  if (!ok) {
    *out += "\\x";
    hex(c, 2);
    return 1;
  }
  const bool hidden = (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x200b && cp <= 0x200f) ||
                      (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff;
  if (hidden) {
    *out += "\\u{";
    hex(cp, 4);
    *out += "}";
  } else {
    out->append(s.substr(i, len));
  }
  return len;
}

}  // namespace

std::string ExprToString(const PolicyModel& m, const ActionModel& a, const Expr& e) {
  std::string out;
  AppendExpr(m, a, e, false, &out);
  return out;
}

std::string Quote(std::string_view text) {
  std::string out = "'";
  size_t chars = 0, i = 0;
  while (i < text.size() && chars < kQuoteLimit) {
    i += AppendChar(text, i, &out);
    ++chars;
  }
  if (i < text.size()) out += "…";
  out += "'";
  if (i < text.size()) out += " (" + std::to_string(text.size()) + " bytes)";
  return out;
}

namespace {

void AppendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
}

const char* TypeName(ValueType t) {
  switch (t) {
    case ValueType::kKind: return "kind";
    case ValueType::kOrgRole: return "org_role";
    case ValueType::kWorkspaceRole: return "workspace_role";
    case ValueType::kWorkspaceType: return "workspace_type";
    case ValueType::kBool: return "bool";
    case ValueType::kInt: return "int";
  }
  return "?";
}

}  // namespace

std::string CanonicalForm(const PolicyModel& m) {
  // One line per fact, in a fixed order, with expressions in canonical form:
  // the revision then ignores layout, comments, quoting and file splits.
  std::string out = "gatehouse v1\npolicy ";
  AppendQuoted(out, m.name);
  out += "\norg_roles";
  for (const auto& r : m.org_roles) out += " " + r;
  out += "\nworkspace_roles";
  for (const auto& r : m.ws_roles) out += " " + r;
  out += "\nworkspace_types";
  for (const auto& t : m.ws_types) out += " " + t;
  std::vector<const SettingInfo*> settings;
  for (const auto& s : m.settings) settings.push_back(&s);
  std::sort(settings.begin(), settings.end(),
            [](const SettingInfo* x, const SettingInfo* y) { return x->name < y->name; });
  for (const SettingInfo* s : settings) {
    out += "\nsetting " + s->name + " bool " + (s->default_value ? "true " : "false ");
    AppendQuoted(out, s->description);
  }
  out += "\nmax_lifetime " + std::to_string(m.max_lifetime);
  for (const ActionModel& a : m.actions) {
    out += "\naction " + a.name + " ";
    AppendQuoted(out, a.description);
    std::vector<const ParamInfo*> params;
    for (const auto& p : a.params) params.push_back(&p);
    std::sort(params.begin(), params.end(),
              [](const ParamInfo* x, const ParamInfo* y) { return x->name < y->name; });
    for (const ParamInfo* p : params) out += "\n param " + p->name + " " + TypeName(p->type);
    for (const RuleModel& r : a.rules) {
      out += r.effect == Effect::kAllow ? "\n permit " : "\n forbid ";
      out += r.id + " " + (r.expr ? ExprToString(m, a, *r.expr) : std::string("?")) + " ";
      AppendQuoted(out, r.message);
    }
    if (a.graphql) {
      out += "\n graphql " + a.graphql->field + " " + a.graphql->name + " " + a.graphql->code + " " +
             std::to_string(a.graphql->line) + " " + std::to_string(a.graphql->column) + " ";
      AppendQuoted(out, a.graphql->message);
    }
  }
  for (const RouteModel& r : m.routes) {
    out += "\nroute " + r.method + " " + r.path + " " +
           (r.action < m.actions.size() ? m.actions[r.action].name : std::string("?"));
  }
  out += "\n";
  return out;
}

}  // namespace internal
}  // namespace gatehouse
