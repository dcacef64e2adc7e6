// The answer to one authorize question as callers see it: the JSON object
// `POST /v1/authorize` answers and `gatehouse authorize --json` prints
// (CONTRACT.md: "the same object"). Both surfaces check the question with
// ParseQuestion (authorizer.h), build the answer with DecisionViewOf or DenialView and write
// it with EncodeDecision, so field names, order and values cannot drift
// apart. Also the JSON text primitives the sidecar's other encoders share.
//
// JSON is written by hand (the sidecar's hot path); invalid UTF-8 from
// outside becomes U+FFFD, so the output is always valid JSON.
//
// Thread safety: free functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gatehouse/authorizer.h"
#include "gatehouse/policy.h"

namespace gatehouse {

// The principal of a decision as shown to callers.
struct PrincipalView {
  std::string kind;  // "user" or "api_user"
  std::string name;
  std::string org_role;
  std::string workspace_role;  // in the target workspace; "none" when not a member
};

// A decision as /v1/authorize returns it.
struct DecisionView {
  bool allow = false;
  std::vector<Reason> reasons;
  std::optional<PrincipalView> principal;  // null when no principal was resolved
  // Views into the deciding policy (the caller holds it).
  std::string_view policy_name;
  std::string_view policy_revision;
  // The action's on_deny GraphQL error, when the action was denied.
  std::optional<GraphqlTemplate> graphql;
  int64_t time_ms = 0;  // time_thrown of the GraphQL error, ms since the epoch
  // Add "data": null (a GraphQL response body) when `graphql` is set:
  // forward-auth's 403 body, which nginx passes on to the client.
  bool graphql_response = false;
};

// The rule and message of a denial for a token that matched nothing active.
inline constexpr std::string_view kInactiveTokenRule = "inactive-token";
inline constexpr std::string_view kInactiveTokenMessage =
    "the token is unknown, expired, revoked or malformed";
// The denial for an email no user of the store has (rule unknown-user).
Reason UnknownUserReason(std::string_view email);

// A denial before any principal is known (an inactive token, an unknown
// user, an unreadable store): principal null, no GraphQL error.
DecisionView DenialView(const CompiledPolicy& policy, Reason reason, int64_t time_ms);

// The answer for a resolved `subject`: its principal (workspace role "none"
// unless the policy was asked), the outcome's reasons, and `action`'s
// GraphQL error with any denial. `outcome` must not be a bad request.
DecisionView DecisionViewOf(const CompiledPolicy& policy, const ActionInfo& action,
                            const Subject& subject, AuthzOutcome&& outcome, int64_t time_ms);

// {"allow":..., "reasons":[...], "principal":{...}|null, "policy":{...}
//  [, "errors":[GraphQL error]]} on one line, no trailing newline.
std::string EncodeDecision(const DecisionView& d);

// The JSON of a string: quotes, escapes, invalid UTF-8 replaced by U+FFFD.
void AppendJsonString(std::string& out, std::string_view s);
// [,]"name":"value" (the comma unless `comma` is false).
void AppendJsonField(std::string& out, std::string_view name, std::string_view value,
                     bool comma = true);
// ISO-8601 UTC with milliseconds: 2024-01-24T12:02:40.775Z.
std::string FormatTimeMs(int64_t ms_since_epoch);

}  // namespace gatehouse
