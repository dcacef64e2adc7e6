// The sidecar's JSON codec: request bodies in, response bodies and
// decision-log lines out. The only place nlohmann/json is used; the rest of
// the sidecar sees plain structs.
//
// Parsing never throws: a body that is not what the endpoint expects gives
// an error message for a 400 reply. Encoding writes JSON by hand (it is the
// hot path) and turns invalid UTF-8 from outside into U+FFFD, so the output
// is always valid JSON.
//
// Thread safety: free functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "gatehouse/decision_json.h"
#include "gatehouse/policy.h"

namespace gatehouse::sidecar {

// Bodies nested deeper than this are refused before parsing.
inline constexpr int kMaxJsonDepth = 32;
// Checks in one /v1/authorize/batch request.
inline constexpr size_t kMaxBatchChecks = 1000;

// One authorize request ({"token"|"user", "action", "workspace", "params"}).
struct AuthorizeCheck {
  std::optional<std::string> token;
  std::optional<std::string> user;
  std::string action;
  std::string workspace;
  // Request parameters as text: strings as they are, integers in decimal,
  // booleans as true/false. Parsed checks hold them sorted by name, without
  // repeated names (a repeated name: the last one wins).
  std::vector<std::pair<std::string, std::string>> params;

  bool operator==(const AuthorizeCheck&) const = default;
};

// Parse results: the value, or the message for a 400 {"error": ...}.
template <typename T>
using Parsed = std::variant<T, std::string>;

Parsed<AuthorizeCheck> ParseAuthorize(std::string_view body);
Parsed<std::vector<AuthorizeCheck>> ParseBatch(std::string_view body);
// {"token": "..."}: the token, or nullopt when the body has no "token" field
// (the caller may find it in a header). An empty body is an empty object.
Parsed<std::optional<std::string>> ParseVerifyJson(std::string_view body);
// application/x-www-form-urlencoded: the value of `name`, percent-decoded
// ('+' is a space); nullopt when absent. Malformed escapes are an error.
Parsed<std::optional<std::string>> ParseFormField(std::string_view body, std::string_view name);

// Request bodies as a client writes them (tests, fuzzing, clients). The JSON
// ones use AppendJsonString, so they are always valid JSON; what decodes
// again is exactly this (Parse is the matching parser):
// - Parse(Encode(c)) accepts c iff at most one of token and user is set (a
//   batch: every check, and at most kMaxBatchChecks of them). The wire checks
//   the shape only: whether a name is empty, unsafe or unknown is the
//   question's to say (ParseQuestion, gatehouse/authorizer.h), in one place.
// - It then gives c itself when every string of c is valid UTF-8 and params
//   are sorted by name without repeats. Every parsed value is so (the JSON
//   parser refuses ill-formed UTF-8 and lone surrogates), hence
//   Parse(Encode(Parse(b))) == Parse(b) for every body b that parses.
// - Otherwise it gives c with each byte that starts no valid UTF-8 sequence
//   replaced by U+FFFD, and params sorted by name, the last of a repeated
//   name kept (U+FFFD can make two names equal): a value of the kind above,
//   which round-trips exactly. When the names were in order and distinct
//   after that replacement, Encode(Parse(Encode(c))) == Encode(c).
// Params are written as JSON strings: they decode to the same text as the
// integer or boolean they may have been sent as.
//
// {"token"|"user", "action", "workspace", "params"}: a /v1/authorize body;
// "params" only when there are some, token and user only when set.
std::string EncodeAuthorizeRequest(const AuthorizeCheck& c);
// {"checks": [...]}: a /v1/authorize/batch body, each check as above.
std::string EncodeBatchRequest(const std::vector<AuthorizeCheck>& checks);
// {"token": "..."}: a /v1/tokens/verify JSON body. (No token: an empty body.)
std::string EncodeVerifyRequest(std::string_view token);
// name=value as application/x-www-form-urlencoded: ' ' as '+', bytes other
// than A-Z a-z 0-9 * - . _ as %XX. Any bytes round-trip exactly:
// ParseFormField(EncodeFormField(n, v) + "&" + rest, n) == v. Join fields
// with '&'.
std::string EncodeFormField(std::string_view name, std::string_view value);

// The decision object and the JSON text primitives are the engine's
// (gatehouse/decision_json.h), shared with `gatehouse authorize --json`.
using gatehouse::AppendJsonString;
using gatehouse::DecisionView;
using gatehouse::EncodeDecision;
using gatehouse::FormatTimeMs;
using gatehouse::PrincipalView;

std::string EncodeBatch(const std::vector<DecisionView>& results);

// RFC 7662: an active token (every field) or exactly {"active": false}.
struct IntrospectionView {
  bool active = false;
  std::string sub;  // the API user's id, as a string
  std::string username;
  std::string workspace;
  std::string workspace_role;
  std::string org_role;
  std::string token_id;
  int64_t iat = 0;
  int64_t exp = 0;
};
std::string EncodeIntrospection(const IntrospectionView& v);

std::string EncodeError(std::string_view message);

// One line of the decision log (no trailing newline). Holds no secret: the
// token appears only as its public id, or redacted (RedactToken) when it
// matched nothing.
struct DecisionLogEntry {
  int64_t time_ms = 0;
  std::string_view endpoint;
  std::string_view principal_kind;  // "api_user", "user", "" when unresolved
  std::string_view principal;       // API user name or email
  std::string_view action;
  std::string_view workspace;
  bool allow = false;
  const std::vector<Reason>* reasons = nullptr;
  std::string_view message;  // the deciding rule's message
  std::string_view revision;
  std::string_view token_id;        // the token's public id when known
  std::string_view token_check;     // active, malformed, unknown, expired; "" for users
  std::string_view token_redacted;  // RedactToken(token) when the id is unknown
  std::string_view request_id;      // the request's id (X-Request-Id); always written
  // Forward-auth only (written when any is set): which source the original
  // request was read from (nginx, traefik, envoy; "" when none), its
  // method, and its raw target exactly as the proxy sent it.
  std::string_view source;
  std::string_view method;
  std::string_view uri;
  // The resolved inputs the policy decided (EncodeInputs), "" when it was
  // not asked (an unknown token, workspace or user).
  std::string_view inputs;
  // --shadow-policy, only when the candidate's effect differs from `allow`
  // (written when shadow_revision is set): the candidate's revision, effect,
  // deciding rules and message, as "shadow":{...}.
  std::string_view shadow_revision;
  bool shadow_allow = false;
  const std::vector<Reason>* shadow_reasons = nullptr;
  std::string_view shadow_message;
};
std::string EncodeDecisionLog(const DecisionLogEntry& e);

// The resolved request as names, for the decision log and `policy replay`:
// {"kind":"api_user","org_role":"viewer","workspace_role":"viewer",
//  "workspace_type":"shared","settings":{"NAME":false},"params":{"NAME":"30d"...}}
// (parameters as text: role names, integers, true/false). Never a secret.
std::string EncodeInputs(const CompiledPolicy& policy, const Request& request);

namespace internal {
// ParseAuthorize without its fast path for plain requests (for tests).
Parsed<AuthorizeCheck> ParseAuthorizeWithNlohmann(std::string_view body);
}  // namespace internal

}  // namespace gatehouse::sidecar
