// Handlers: the sidecar's HTTP API as pure functions from a parsed request to
// a reply. No socket and no cpp-httplib type here, so every endpoint and every
// bad input is tested without a server (tests/sidecar/handlers_test.cc).
//
//   POST /v1/authorize         {"token"|"user", "action", "workspace", "params"?} -> decision
//   POST /v1/authorize/batch   {"checks": [...]} -> {"results": [...]}
//   POST /v1/tokens/verify     RFC 7662 introspection (JSON, form or Bearer)
//   ANY  /v1/forward-auth[/ORIGINAL-PATH]   nginx auth_request, Traefik ForwardAuth, Envoy
//   ext_authz GET  /healthz  /readyz  /metrics
//
// Fail closed: a bad token is a deny (or {"active": false}, or 401), never an
// error status; a store that cannot be read denies everything (the reason
// says so) and makes /readyz 503. Nothing here throws on any input.
//
// Forward-auth runs in three steps: translate the proxy's request into the
// original method and raw target (forward_auth.h: the source rule and the
// path rule), verify the token once, decide. Callers may have to present a
// shared secret first (HandlerOptions::caller_secret).
//
// Thread safety: Handle() may be called from any number of threads at once.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sidecar/decision_log.h"
#include "sidecar/forward_auth.h"
#include "sidecar/metrics.h"
#include "sidecar/shadow.h"
#include "sidecar/state.h"
#include "sidecar/wire.h"

namespace gatehouse::sidecar {

// Bits of HttpRequest::present / ::repeated: which of the headers that
// choose a forward-auth source arrived, and which arrived more than once.
enum HeaderBit : uint32_t {
  kHdrOriginalMethod = 1u << 0,   // X-Original-Method (nginx)
  kHdrOriginalUri = 1u << 1,      // X-Original-URI (nginx)
  kHdrForwardedMethod = 1u << 2,  // X-Forwarded-Method (Traefik, Caddy)
  kHdrForwardedUri = 1u << 3,     // X-Forwarded-Uri (Traefik, Caddy)
  kHdrAuthorization = 1u << 4,    // Authorization
  kHdrCaller = 1u << 5,           // X-Gatehouse-Caller
};

// A request as the server parsed it. Every value is the exact bytes the
// client sent: nothing here is percent-decoded or otherwise rewritten.
// Header fields are "" when absent (see `present` to tell absent from empty);
// of a repeated header the first value is kept and its bit set in `repeated`.
struct HttpRequest {
  std::string method;  // GET, POST, ... as sent
  std::string path;    // the raw path of the target: up to the first '?', not decoded
  std::string target;  // the raw request target: path and query as sent
  std::string body;
  std::string authorization;     // Authorization
  std::string content_type;      // Content-Type
  std::string original_method;   // X-Original-Method (nginx)
  std::string original_uri;      // X-Original-URI (nginx)
  std::string forwarded_method;  // X-Forwarded-Method (Traefik, Caddy)
  std::string forwarded_uri;     // X-Forwarded-Uri (Traefik, Caddy)
  std::string caller_secret;     // X-Gatehouse-Caller
  // The request id: the caller's X-Request-Id when well-formed, else one the
  // server made up. The reply carries it back as X-Request-Id.
  std::string request_id;
  // The client ("ADDRESS:PORT", "unix"), for the access log; valid while
  // the request is handled. Empty when the server did not say.
  std::string_view peer;
  uint32_t present = 0;   // HeaderBit: headers that arrived (even empty)
  uint32_t repeated = 0;  // HeaderBit: headers that arrived more than once

  // Every field back to its default, the strings' capacity kept: the server
  // reuses one request per I/O thread, and a field left set would show one
  // request another's value. A field added above must be cleared there too
  // (handlers.cc stops the build until it is).
  void Clear();
  bool operator==(const HttpRequest&) const = default;
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HandlerOptions {
  // Milliseconds since the epoch, for GraphQL time_thrown and the decision
  // log. Default: the system clock. (Token expiry uses the State's Clock.)
  std::function<int64_t()> now_ms;
  // The path prefix of forward-auth; what follows it is the original path
  // (Envoy ext_authz HTTP mode sends the original path under a prefix).
  std::string forward_auth_prefix = "/v1/forward-auth";
  // Which proxy's headers forward-auth believes (--forward-auth-source;
  // forward_auth.h). Default kAuto: exactly one source must be present.
  ForwardAuthSource forward_auth_source = ForwardAuthSource::kAuto;
  // The shared secret callers must send as X-Gatehouse-Caller on every
  // endpoint but /healthz and /readyz (--caller-secret-file). Empty (the
  // default): callers are not asked for one.
  std::string caller_secret;
  // --decision-log-required: a decision whose log line cannot be written is
  // a deny (rule decision-log-unavailable; verify: inactive), and /readyz is
  // 503 while the log fails. Default off: a failed write is counted and
  // reported on stderr, the answer stands.
  bool decision_log_required = false;
  // The build's version and git revision, reported by /readyz. Default
  // empty (tests that do not care).
  std::string version, revision;
  // --access-log: one line per answered request (access_log.h). Not owned;
  // null (the default): no access log.
  DecisionLog* access_log = nullptr;
  // --shadow-policy: every decision is also made on this candidate, its
  // divergences counted and logged (shadow.h); answers never change. Not
  // owned; null (the default): no shadow.
  Shadow* shadow = nullptr;
};

// The identity headers of a forward-auth 200, all of them: the one list a
// proxy configuration must copy to the service and clear of a client's own
// copies (deploy/nginx.conf, deploy/Caddyfile). The reply carries each, in
// this order; IdentityHeader indexes it.
enum class IdentityHeader : uint8_t {
  kSubject,    // the API user's name
  kWorkspace,  // the workspace decided on, as the store spells it
  kRole,       // the API user's role in that workspace ("none" when not a member)
  kOrgRole,    // the API user's organization role
  kTokenId,    // the token's public id
  kAction,     // the policy action the route mapped to
  kCount,
};
inline constexpr std::array<std::string_view, static_cast<size_t>(IdentityHeader::kCount)>
    kIdentityHeaders = {
        "X-Gatehouse-Subject",  "X-Gatehouse-Workspace", "X-Gatehouse-Role",
        "X-Gatehouse-Org-Role", "X-Gatehouse-Token-Id",  "X-Gatehouse-Action",
};
// The header that carries the caller secret (HandlerOptions::caller_secret).
inline constexpr std::string_view kCallerHeader = "X-Gatehouse-Caller";

class Handlers {
 public:
  // `log` may be null (no decision log).
  Handlers(State* state, DecisionLog* log, HandlerOptions options = {});

  // Routes and answers; counts the request in the metrics.
  HttpReply Handle(const HttpRequest& request);

  // Which endpoint a path belongs to (for metrics of replies made by the server itself).
  Endpoint Classify(std::string_view path) const;

  HttpReply Authorize(const HttpRequest& request);
  HttpReply AuthorizeBatch(const HttpRequest& request);
  HttpReply Verify(const HttpRequest& request);
  HttpReply ForwardAuth(const HttpRequest& request);
  HttpReply Healthz(const HttpRequest& request);
  HttpReply Readyz(const HttpRequest& request);
  HttpReply MetricsText(const HttpRequest& request);

 private:
  struct Evaluation;
  // Checks the request, resolves its principal (verifying a token), then Decide.
  Evaluation Evaluate(const AuthorizeCheck& check, std::string_view header_token,
                      const PolicyPtr& policy, const Snapshot* snapshot, const Status& store_status,
                      int64_t now, int64_t now_ms);
  // Decides a question already resolved (ParseQuestion or RouteQuestion) for
  // a principal already resolved (and a token already verified): the second
  // half of Evaluate, and forward-auth's last step. It cannot fail: it
  // allows or denies.
  void Decide(const Subject& subject, const Question& question, const CompiledPolicy& policy,
              const Directory& dir, Evaluation* e);
  // Writes e's decision-log line. False when it could not be written and
  // decision_log_required: the caller must then not allow (FailClosed).
  [[nodiscard]] bool Log(std::string_view endpoint, const Evaluation& e, int64_t now_ms,
                         const HttpRequest& request, const OriginalRequest* original = nullptr);
  // Turns e into a deny by rule decision-log-unavailable.
  static void FailClosed(Evaluation* e);
  HttpReply Route(const HttpRequest& request, Endpoint* endpoint);
  // True when no caller secret is set, or the request carries it (once).
  bool CallerAuthenticated(const HttpRequest& request) const;
  TokenLookup CheckToken(const TokenView& index, std::string_view token, int64_t now, Evaluation* e);

  State* state_;
  DecisionLog* log_;
  HandlerOptions options_;
};

// Parses "Bearer TOKEN" (scheme case-insensitive). nullopt for anything else.
std::optional<std::string_view> BearerToken(std::string_view authorization);

}  // namespace gatehouse::sidecar
