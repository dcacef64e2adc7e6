// Request and Decision: the input and output of the hot path.
//
// A Request holds ids already resolved against one CompiledPolicy (see
// policy.h: FindAction, FindOrgRole, ...). A Decision is a small value with
// no pointers into the request; explain it with CompiledPolicy::Explain.
// Both are plain values, safe to copy between threads.
#pragma once

#include <array>
#include <cstdint>

namespace gatehouse {

using ActionId = uint16_t;
using RoleId = uint8_t;  // 0 is "none", ranked below every declared role
using TypeId = uint8_t;

inline constexpr ActionId kNoAction = 0xFFFF;
inline constexpr RoleId kNoRole = 0;
inline constexpr int kMaxParams = 16;    // request parameters per action
inline constexpr int kMaxSettings = 64;  // boolean settings per policy
inline constexpr int kMaxRules = 64;     // rules per action, the implicit cap included

enum class PrincipalKind : uint8_t { kUser = 0, kApiUser = 1 };

struct Request {
  ActionId action = kNoAction;
  PrincipalKind kind = PrincipalKind::kUser;
  RoleId org_role = kNoRole;        // principal.org_role
  RoleId workspace_role = kNoRole;  // principal.workspace_role
  TypeId workspace_type = 0;        // workspace.type
  uint64_t settings = 0;            // bit i = value of setting i (CompiledPolicy::FindSetting)
  // request.NAME by the action's parameter slot (CompiledPolicy::FindParam):
  // role ids for role parameters, 0/1 for booleans, the value for integers.
  // Parameters left unset are none / false / 0.
  std::array<int64_t, kMaxParams> params{};
};

enum class Effect : uint8_t { kDeny = 0, kAllow = 1 };

enum class Cause : uint8_t {
  kPermitted = 0,   // a permit matched and no forbid did
  kForbidden,       // a forbid matched (overrides every permit)
  kNoPermit,        // default deny: no permit matched
  kInvalidRequest,  // unknown action or an id outside the policy's domains
};

struct Decision {
  Effect effect = Effect::kDeny;
  Cause cause = Cause::kInvalidRequest;
  ActionId action = kNoAction;
  // The rule that decided, as an index into the action's rules (-1: none):
  // the first matching forbid, else the first matching permit, else the
  // action's first permit (the one that was missing).
  int16_t deciding = -1;
  uint64_t matched = 0;  // bit i set when rule i of the action matched

  bool allowed() const { return effect == Effect::kAllow; }
};

}  // namespace gatehouse
