// The compiled form of a policy: per action, the dimensions its rules read and
// a total decision table over them. Immutable once built.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gatehouse/policy.h"
#include "policy/model.h"

namespace gatehouse::internal {

inline constexpr int kMaxDims = 4 + kMaxSettings + kMaxParams;
// Actions whose input space has at most this many classes get one dense
// table (at most 128 KiB each); larger ones get a table per rule (each over
// the few attributes that rule reads) and combine the rule bits at decision
// time, so no policy can make the tables explode.
inline constexpr uint64_t kDenseCellLimit = 1u << 16;
// No single rule may span more classes than this (a validation error).
inline constexpr uint64_t kRuleCellLimit = 1u << 22;
// All of a policy's tables together: at most this many cells (a dense cell is
// 2 bytes, a rule-table cell 1), so no policy makes the compiler hold more
// than ~64 MiB however many actions and rules it has (the default: ~1,000).
inline constexpr uint64_t kPolicyCellLimit = uint64_t{1} << 25;
// Building a rule's table evaluates its expression once per class: at most
// this many expression nodes evaluated per policy (~1 s of compile time).
inline constexpr uint64_t kCompileWorkLimit = uint64_t{1} << 28;

// One attribute an action's rules read, and its finite domain of classes.
struct Dim {
  Attr attr;
  ValueType type = ValueType::kInt;
  uint32_t size = 0;
  // Integer parameters only: the lower bound of each class, ascending. The
  // classes partition int64 at the constants the policy compares with, so
  // every member of a class decides alike.
  std::vector<int64_t> lows;
};

// The hot path's view of one dimension of a dense table: the class is
// (the 64-bit word at `offset` in the Request >> shift) & mask, compared with
// `size`; bool parameters are v != 0; int parameters scan `lows`.
// HotAxis reads the one-byte fields of a Request as one little-endian word.
static_assert(std::endian::native == std::endian::little, "HotAxis assumes a little-endian machine");
static_assert(offsetof(Request, workspace_type) < 8 && offsetof(Request, kind) < 8 &&
                  offsetof(Request, org_role) < 8 && offsetof(Request, workspace_role) < 8,
              "HotAxis reads these fields from the Request's first word");
static_assert(sizeof(PrincipalKind) == 1 && sizeof(RoleId) == 1 && sizeof(TypeId) == 1);

struct HotAxis {
  enum class Read : uint8_t { kMasked, kNonZero, kLows };
  Read read = Read::kMasked;
  uint8_t shift = 0;
  uint16_t offset = 0;
  uint32_t size = 0;
  uint32_t stride = 0;
  uint32_t dim = 0;  // index into dims (for lows)
  uint64_t mask = 0;
};

struct Outcome {
  Effect effect = Effect::kDeny;
  Cause cause = Cause::kNoPermit;
  int16_t deciding = -1;
  uint64_t matched = 0;
};

struct RuleTable {
  std::vector<uint8_t> dims;      // indices into CompiledAction::dims
  std::vector<uint32_t> strides;  // parallel to dims
  std::vector<uint8_t> bits;      // 1 when the rule matches the class
};

struct CompiledAction {
  std::vector<Dim> dims;
  std::vector<uint32_t> strides;  // dense tables: the stride of each dim
  bool dense = true;
  std::vector<HotAxis> axes;         // dense: dims as the hot path reads them
  std::vector<uint16_t> table;    // dense: outcome index per class
  std::vector<Outcome> outcomes;  // dense: the distinct outcomes
  std::vector<RuleTable> rules;   // factored: one table per rule
  uint64_t permit_mask = 0;
  uint64_t forbid_mask = 0;
  int16_t first_permit = -1;
  uint64_t cells = 1;  // the size of the action's input space
};

// Heterogeneous lookup so string_view keys need no allocation.
struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using NameMap = std::unordered_map<std::string, int, NameHash, std::equal_to<>>;

// Combines matched-rule bits into an outcome: forbids override permits;
// default deny.
inline Outcome OutcomeOf(uint64_t matched, uint64_t permit_mask, uint64_t forbid_mask,
                         int16_t first_permit) {
  Outcome o;
  o.matched = matched;
  if (uint64_t f = matched & forbid_mask) {
    o.effect = Effect::kDeny;
    o.cause = Cause::kForbidden;
    o.deciding = static_cast<int16_t>(__builtin_ctzll(f));
  } else if (uint64_t p = matched & permit_mask) {
    o.effect = Effect::kAllow;
    o.cause = Cause::kPermitted;
    o.deciding = static_cast<int16_t>(__builtin_ctzll(p));
  } else {
    o.effect = Effect::kDeny;
    o.cause = Cause::kNoPermit;
    o.deciding = first_permit;
  }
  return o;
}

// The class of a request along one dimension; >= dim.size when out of range.
inline uint32_t ClassOf(const Dim& d, const Request& r) {
  int64_t v = AttrValue(d.attr, r);
  if (d.type == ValueType::kInt) {
    // Few classes: a linear scan beats a binary search here.
    uint32_t c = 0;
    const size_t n = d.lows.size();
    while (c + 1 < n && d.lows[c + 1] <= v) ++c;
    return c;
  }
  if (d.type == ValueType::kBool) return v != 0 ? 1u : 0u;
  return v >= 0 && v < static_cast<int64_t>(d.size) ? static_cast<uint32_t>(v) : UINT32_MAX;
}

// A representative value of class `c` of `d` (its lowest member).
inline int64_t RepresentativeOf(const Dim& d, uint32_t c) {
  return d.type == ValueType::kInt ? d.lows[c] : static_cast<int64_t>(c);
}

inline void SetAttr(const Attr& attr, int64_t v, Request* r) {
  switch (attr.kind) {
    case AttrKind::kPrincipalKind: r->kind = static_cast<PrincipalKind>(v); break;
    case AttrKind::kOrgRole: r->org_role = static_cast<RoleId>(v); break;
    case AttrKind::kWorkspaceRole: r->workspace_role = static_cast<RoleId>(v); break;
    case AttrKind::kWorkspaceType: r->workspace_type = static_cast<TypeId>(v); break;
    case AttrKind::kSetting:
      if (v) r->settings |= (uint64_t{1} << attr.index);
      else r->settings &= ~(uint64_t{1} << attr.index);
      break;
    case AttrKind::kParam: r->params[attr.index] = v; break;
  }
}

}  // namespace gatehouse::internal

namespace gatehouse {

struct CompiledPolicy::Impl {
  internal::PolicyModel model;
  std::string revision;
  std::vector<internal::CompiledAction> compiled;  // by ActionId
  std::vector<ActionInfo> infos;                  // by ActionId
  internal::NameMap action_ids, org_role_ids, ws_role_ids, type_ids, setting_ids;
  std::vector<internal::NameMap> param_ids;  // by ActionId
  uint64_t default_settings = 0;
};

}  // namespace gatehouse
