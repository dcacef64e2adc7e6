// The validated policy model: what the YAML reader builds and the compiler
// consumes. Internal to the engine; names are resolved to ids here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gatehouse/decision.h"
#include "gatehouse/policy.h"

namespace gatehouse::internal {

// What an expression can read.
enum class AttrKind : uint8_t { kPrincipalKind, kOrgRole, kWorkspaceRole, kWorkspaceType, kSetting, kParam };

struct Attr {
  AttrKind kind = AttrKind::kPrincipalKind;
  uint16_t index = 0;  // the setting index or parameter slot; 0 otherwise
  friend bool operator==(const Attr&, const Attr&) = default;
  friend auto operator<=>(const Attr&, const Attr&) = default;
};

enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

struct Expr {
  enum class Op : uint8_t { kConst, kBoolAttr, kCmpConst, kCmpAttr, kIn, kAnd, kOr, kNot };
  Op op = Op::kConst;
  bool const_value = false;  // kConst
  CmpOp cmp = CmpOp::kEq;    // kCmpConst, kCmpAttr
  Attr lhs;                  // kBoolAttr, kCmpConst, kCmpAttr, kIn
  Attr rhs;                  // kCmpAttr
  int64_t value = 0;         // kCmpConst: a role/type/kind id, 0/1, or an integer
  std::vector<int64_t> list; // kIn
  std::unique_ptr<Expr> a;   // kNot
  // kAnd, kOr: two or more operands. A chain `x and y and z` is one node
  // with three operands (never a left-deep tree), so a long chain costs no
  // depth; parentheses nest. The parser refuses nesting deeper than
  // kMaxExprDepth, which bounds every recursive walk below.
  std::vector<std::unique_ptr<Expr>> args;
};

// How deeply parentheses and `not` may nest in a `when` expression. Deeper
// input is refused with a position, so parsing, printing, evaluating and
// visiting an expression recurse at most this deep (plus a small constant).
inline constexpr int kMaxExprDepth = 64;

// A position inside a policy file, 1-based.
struct Pos {
  std::string file;
  int line = 0;
  int column = 0;
};

struct RuleModel {
  std::string id;
  Effect effect = Effect::kAllow;
  std::string when;
  std::string message;
  std::unique_ptr<Expr> expr;
  Pos pos;  // of the rule's `when`
};

struct ActionModel {
  std::string name;
  std::string description;
  std::vector<ParamInfo> params;
  std::vector<RuleModel> rules;  // permits first, then forbids, then the implicit cap
  std::optional<GraphqlTemplate> graphql;
  Pos pos;  // of the action's key
};

struct RouteSegment {
  std::string literal;      // when not a placeholder
  std::string placeholder;  // the name inside {...}, or empty
};

struct RouteModel {
  std::string method;  // upper case, or "*" for any
  std::string path;
  std::vector<RouteSegment> segments;
  ActionId action = kNoAction;
  int workspace_segment = -1;  // index of {workspace}, -1 if none
};

struct PolicyModel {
  std::string name;
  std::vector<std::string> org_roles;  // [0] = "none", then lowest rank first
  std::vector<std::string> ws_roles;   // [0] = "none", then lowest rank first
  std::vector<std::string> ws_types;
  std::vector<SettingInfo> settings;
  int64_t max_lifetime = 0;  // seconds; 0 = no cap
  std::vector<ActionModel> actions;  // sorted by name: ActionId = index
  std::vector<RouteModel> routes;
};

// The id of the implicit rule enforcing tokens.max_lifetime.
inline constexpr const char* kMaxLifetimeRule = "tokens.max_lifetime";
// The parameter through which a token lifetime reaches the rules.
inline constexpr const char* kLifetimeParam = "lifetime_seconds";

// The value of an attribute for a request (roles by rank id, bools 0/1).
inline int64_t AttrValue(const Attr& attr, const Request& r) {
  switch (attr.kind) {
    case AttrKind::kPrincipalKind: return static_cast<int64_t>(r.kind);
    case AttrKind::kOrgRole: return r.org_role;
    case AttrKind::kWorkspaceRole: return r.workspace_role;
    case AttrKind::kWorkspaceType: return r.workspace_type;
    case AttrKind::kSetting: return static_cast<int64_t>((r.settings >> attr.index) & 1u);
    case AttrKind::kParam: return r.params[attr.index];
  }
  return 0;
}

// Evaluates an expression over a request (the compiler's evaluator; the
// hot path never calls it).
bool Eval(const Expr& e, const Request& r);

// Calls f(attr) for every attribute an expression reads, and g(attr, value)
// for every constant an attribute is compared with (list members included).
void VisitAttrs(const Expr& e, const std::function<void(const Attr&)>& f);
void VisitConstants(const Expr& e, const std::function<void(const Attr&, int64_t)>& g);

// The type of an attribute in a model and action.
ValueType AttrType(const PolicyModel& m, const ActionModel& a, const Attr& attr);
// The attribute's name as written ("principal.org_role", "request.org_role").
std::string AttrName(const PolicyModel& m, const ActionModel& a, const Attr& attr);
// The name of a value of a type ("admin", "shared", "true", "42").
std::string ValueName(const PolicyModel& m, ValueType type, int64_t value);
// A canonical rendering of an expression: every nested and/or operand list
// in parentheses, the top level without; it parses back to the same tree.
std::string ExprToString(const PolicyModel& m, const ActionModel& a, const Expr& e);
// The canonical form of the whole model, whose SHA-256 is the revision.
std::string CanonicalForm(const PolicyModel& m);

// User input quoted for a message: in single quotes, cut after
// kQuoteLimit characters with an ellipsis, control characters, invalid
// UTF-8, bidirectional overrides and zero-width characters escaped (\xNN,
// \u{NNNN}), so that an error line is short and prints safely on a terminal.
inline constexpr size_t kQuoteLimit = 80;
std::string Quote(std::string_view text);

}  // namespace gatehouse::internal
