#include "sidecar/handlers.h"

#include <algorithm>
#include <exception>
#include <initializer_list>
#include <string>
#include <string_view>

#include "gatehouse/authorizer.h"
#include "gatehouse/decision_json.h"
#include "gatehouse/tokens.h"
#include "sidecar/access_log.h"

namespace gatehouse::sidecar {
namespace {

int64_t SystemMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool IStartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && IEquals(s.substr(0, prefix.size()), prefix);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// Header values come from the store and from request paths: never let a
// control character (CR/LF) through into a response header.
std::string HeaderSafe(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  }
  return out;
}

// The decision as a header value nginx can hand on: the same JSON with every
// non-ASCII character as a \uXXXX escape (equivalent JSON; the encoder leaves
// non-ASCII only inside strings, always as valid UTF-8), so that the value is
// visible ASCII only. Empty when it would not fit a proxy's header buffer.
constexpr size_t kDecisionHeaderMax = 8192;
std::string AsciiJson(std::string_view json) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(json.size());
  auto escape = [&out](uint32_t unit) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(unit >> shift) & 0xF];
  };
  for (size_t i = 0; i < json.size();) {
    const unsigned char c = static_cast<unsigned char>(json[i]);
    if (c < 0x80) {
      out += static_cast<char>(c < 0x20 ? ' ' : c);
      ++i;
      continue;
    }
    const size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    uint32_t cp = len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (size_t k = 1; k < len && i + k < json.size(); ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(json[i + k]) & 0x3f);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      escape(0xd800 + (cp >> 10));
      escape(0xdc00 + (cp & 0x3ff));
    } else {
      escape(cp);
    }
    i += len;
  }
  return out.size() <= kDecisionHeaderMax ? out : std::string();
}

HttpReply JsonReply(int status, std::string body) {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpReply ErrorReply(int status, std::string_view message) {
  return JsonReply(status, EncodeError(message));
}

HttpReply MethodNotAllowed(std::string_view allow) {
  HttpReply r = ErrorReply(405, "method not allowed; use " + std::string(allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

// Compares a presented secret with the configured one in time that depends
// on the configured secret's length only: every byte of it is compared,
// whatever the presented value holds, and a length mismatch is folded into
// the result instead of returning early. (No OpenSSL here: CRYPTO_memcmp
// needs equal lengths, and the handlers stay free of it.)
bool ConstantTimeEquals(std::string_view presented, std::string_view secret) {
  unsigned diff = presented.size() == secret.size() ? 0u : 1u;
  for (size_t i = 0; i < secret.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned>(p ^ static_cast<unsigned char>(secret[i]));
  }
  return diff == 0;
}

// HttpRequest's fields, in order: a field added to HttpRequest changes its
// size against this (on every ABI, the layout rules being the same for
// both), which stops the build until Clear() clears the new field and this
// list names it.
struct HttpRequestFields {
  std::string strings[12];
  std::string_view peer;
  uint32_t present, repeated;
};

}  // namespace

static_assert(sizeof(HttpRequest) == sizeof(HttpRequestFields),
              "HttpRequest changed: clear the new field in HttpRequest::Clear");

void HttpRequest::Clear() {
  for (std::string* f :
       {&method, &path, &target, &body, &authorization, &content_type, &original_method,
        &original_uri, &forwarded_method, &forwarded_uri, &caller_secret, &request_id}) {
    f->clear();
  }
  peer = {};
  present = 0;
  repeated = 0;
}

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  std::string_view a = Trim(authorization);
  if (a.size() < 7 || !IStartsWith(a, "bearer") || (a[6] != ' ' && a[6] != '\t'))
    return std::nullopt;
  std::string_view token = Trim(a.substr(7));
  if (token.empty()) return std::nullopt;
  return token;
}

// Everything one authorize check produced: the reply's view, and what the
// decision log and the metrics need.
struct Handlers::Evaluation {
  bool bad_request = false;
  std::string error;
  DecisionView view;
  std::string action;
  std::string workspace;
  std::string principal_kind;  // "" when the principal is not resolved
  std::string principal_name;
  std::string org_role;
  std::string token_id;
  std::string token_check;
  std::string token_redacted;
  std::string message;  // the deciding message
  bool token_inactive = false;
  // The workspace decided on as the store spells it ("" until decided);
  // `workspace` keeps the request's spelling for the log.
  std::string stored_workspace;
  // The policy that decided `request` (when `decided`): the decision log
  // encodes the inputs from it, only when a record is written.
  const CompiledPolicy* decided_by = nullptr;
  // What Authorize resolved (for the shadow decision: shadow.h).
  bool decided = false;
  Request request;
  ShadowVerdict shadow;  // computed only with --shadow-policy
};

Handlers::Handlers(State* state, DecisionLog* log, HandlerOptions options)
    : state_(state), log_(log), options_(std::move(options)) {
  if (!options_.now_ms) options_.now_ms = SystemMs;
}

Endpoint Handlers::Classify(std::string_view path) const {
  if (path == "/v1/authorize") return Endpoint::kAuthorize;
  if (path == "/v1/authorize/batch") return Endpoint::kAuthorizeBatch;
  if (path == "/v1/tokens/verify") return Endpoint::kVerify;
  const std::string_view fa = options_.forward_auth_prefix;
  if (path.substr(0, fa.size()) == fa && (path.size() == fa.size() || path[fa.size()] == '/')) {
    return Endpoint::kForwardAuth;
  }
  if (path == "/healthz") return Endpoint::kHealthz;
  if (path == "/readyz") return Endpoint::kReadyz;
  if (path == "/metrics") return Endpoint::kMetrics;
  return Endpoint::kOther;
}

HttpReply Handlers::Handle(const HttpRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  Endpoint endpoint = Endpoint::kOther;
  HttpReply reply;
  try {
    reply = Route(request, &endpoint);
  } catch (const std::exception& e) {
    // Only memory exhaustion can get here; still answer, and never allow.
    reply = ErrorReply(500, std::string("internal error: ") + e.what());
  }
  const auto took = std::chrono::steady_clock::now() - start;
  state_->metrics().CountRequest(endpoint, reply.status, took);
  if (options_.access_log != nullptr) {
    // Formatted before the log's lock, into this thread's buffer: no
    // allocation per request once it has grown.
    thread_local std::string line;
    line.clear();
    AppendAccessRecord(
        line, {.time_ms = options_.now_ms(),
               .request_id = request.request_id,
               .peer = request.peer,
               .method = request.method,
               .path = request.path,
               .status = reply.status,
               .bytes = reply.body.size(),
               .duration_us = std::chrono::duration_cast<std::chrono::microseconds>(took).count()});
    (void)options_.access_log->Write(line);
  }
  return reply;
}

HttpReply Handlers::Route(const HttpRequest& request, Endpoint* endpoint) {
  *endpoint = Classify(request.path);
  // Liveness and readiness stay open (orchestrators probe them without a
  // secret); everything else, unknown paths included, needs the caller's.
  if (*endpoint != Endpoint::kHealthz && *endpoint != Endpoint::kReadyz &&
      !CallerAuthenticated(request)) {
    state_->metrics().CountCallerRejected();
    return ErrorReply(401, "this sidecar answers only callers that send the " +
                               std::string(kCallerHeader) + " header with its caller secret");
  }
  const bool get = request.method == "GET" || request.method == "HEAD";
  switch (*endpoint) {
    case Endpoint::kAuthorize:
      return request.method == "POST" ? Authorize(request) : MethodNotAllowed("POST");
    case Endpoint::kAuthorizeBatch:
      return request.method == "POST" ? AuthorizeBatch(request) : MethodNotAllowed("POST");
    case Endpoint::kVerify:
      return request.method == "POST" ? Verify(request) : MethodNotAllowed("POST");
    case Endpoint::kForwardAuth:
      return ForwardAuth(request);
    case Endpoint::kHealthz:
      return get ? Healthz(request) : MethodNotAllowed("GET");
    case Endpoint::kReadyz:
      return get ? Readyz(request) : MethodNotAllowed("GET");
    case Endpoint::kMetrics:
      return get ? MetricsText(request) : MethodNotAllowed("GET");
    default:
      return ErrorReply(404, "no such endpoint: " + request.path);
  }
}

bool Handlers::CallerAuthenticated(const HttpRequest& request) const {
  if (options_.caller_secret.empty()) return true;
  // Two copies: one may be the proxy's and one a client's; believe neither.
  if (request.repeated & kHdrCaller) return false;
  return ConstantTimeEquals(request.caller_secret, options_.caller_secret);
}

Handlers::Evaluation Handlers::Evaluate(const AuthorizeCheck& check, std::string_view header_token,
                                        const PolicyPtr& policy, const Snapshot* snapshot,
                                        const Status& store_status, int64_t now, int64_t now_ms) {
  Evaluation e;
  e.action = check.action;
  e.workspace = check.workspace;
  e.view.policy_name = policy->name();
  e.view.policy_revision = policy->revision();
  e.view.time_ms = now_ms;

  // The request itself first, resolved once: a malformed request is a 400
  // whoever asks, and nothing after this step can call it malformed.
  auto question = ParseQuestion(*policy, check.action, check.workspace, check.user, check.params);
  if (!question.ok()) {
    e.bad_request = true;
    e.error = question.status().message();
    return e;
  }
  std::optional<std::string> token = check.token;
  if (!token && !check.user && !header_token.empty()) token = std::string(header_token);
  if (!token && !check.user) {
    e.bad_request = true;
    e.error = "missing field \"token\" or \"user\" (or an Authorization: Bearer header)";
    return e;
  }

  auto deny = [&e](std::string rule, std::string message) {
    e.view.allow = false;
    e.message = message;
    e.view.reasons.push_back({std::move(rule), Effect::kDeny, std::move(message)});
  };
  if (snapshot == nullptr) {
    // Fail closed: without a fresh view of the store nothing can be checked.
    deny("store-unavailable",
         "the sidecar cannot read its store (" + store_status.ToString() + ")");
    if (token) e.token_redacted = RedactToken(*token);
    return e;
  }

  Subject subject;
  if (token) {
    const TokenLookup lookup = CheckToken(*snapshot->tokens, *token, now, &e);
    if (!lookup.active()) {
      e.token_inactive = true;
      deny(std::string(kInactiveTokenRule), std::string(kInactiveTokenMessage));
      state_->metrics().CountDecision(check.action, false);
      return e;
    }
    subject = SubjectOfToken(lookup.token);
  } else {
    auto user = SubjectOfUser(*snapshot->directory, *check.user);
    if (!user) {
      e.principal_name = *check.user;
      Reason why = UnknownUserReason(*check.user);
      deny(std::move(why.rule), std::move(why.message));
      state_->metrics().CountDecision(check.action, false);
      return e;
    }
    subject = std::move(*user);
  }
  Decide(subject, *question, *policy, *snapshot->directory, &e);
  if (options_.shadow != nullptr) {
    options_.shadow->Decide(policy, e.decided, e.request, e.view.allow, *snapshot->directory,
                            subject, check.action, check.workspace, check.params, &e.shadow);
  }
  return e;
}

void Handlers::Decide(const Subject& subject, const Question& question,
                      const CompiledPolicy& policy, const Directory& dir, Evaluation* e) {
  e->principal_kind = subject.kind == PrincipalKind::kApiUser ? "api_user" : "user";
  e->principal_name = subject.name;
  e->org_role = subject.org_role;

  // Authorize() applies the token.use gate: a token acts only as its API
  // user, and only where the policy lets it.
  AuthzOutcome outcome = gatehouse::Authorize(policy, dir, subject, question);
  e->decided = outcome.decided;
  e->request = outcome.request;
  // The lookup is case-insensitive: report the name the store has, never the
  // request's spelling of it.
  e->stored_workspace = outcome.workspace_name;
  if (outcome.decided) {
    e->decided_by = &policy;
    e->message = policy.DecidingMessage(outcome.decision);
  } else if (!outcome.reasons.empty()) {
    e->message = outcome.reasons.front().message;
  }
  // The same object `gatehouse authorize --json` prints (decision_json.h).
  e->view = DecisionViewOf(policy, *question.info, subject, std::move(outcome), e->view.time_ms);
  state_->metrics().CountDecision(question.info->name, e->view.allow);
}

bool Handlers::Log(std::string_view endpoint, const Evaluation& e, int64_t now_ms,
                   const HttpRequest& request, const OriginalRequest* original) {
  if (log_ == nullptr) return true;
  DecisionLogEntry entry;
  entry.time_ms = now_ms;
  entry.endpoint = endpoint;
  entry.principal_kind = e.principal_kind;
  entry.principal = e.principal_name;
  entry.action = e.action;
  entry.workspace = e.workspace;
  entry.allow = e.view.allow;
  entry.reasons = &e.view.reasons;
  entry.message = e.message;
  entry.revision = e.view.policy_revision;
  entry.token_id = e.token_id;
  entry.token_check = e.token_check;
  entry.token_redacted = e.token_redacted;
  entry.request_id = request.request_id;
  // "" when the policy was not asked.
  const std::string inputs =
      e.decided_by != nullptr ? EncodeInputs(*e.decided_by, e.request) : std::string();
  entry.inputs = inputs;
  if (e.shadow.diverged) {
    entry.shadow_revision = e.shadow.revision;
    entry.shadow_allow = e.shadow.allow;
    entry.shadow_reasons = &e.shadow.reasons;
    entry.shadow_message = e.shadow.message;
  }
  if (original != nullptr) {
    entry.source = original->source == ForwardAuthSource::kAuto
                       ? std::string_view("none")
                       : ForwardAuthSourceName(original->source);
    entry.method = original->method;
    entry.uri = original->target;
  }
  if (log_->Write(EncodeDecisionLog(entry))) return true;
  state_->metrics().CountLogFailure();
  return !options_.decision_log_required;
}

void Handlers::FailClosed(Evaluation* e) {
  e->view.allow = false;
  e->message = "the decision log cannot be written, and --decision-log-required is set";
  e->view.reasons.assign(1, Reason{"decision-log-unavailable", Effect::kDeny, e->message});
  e->view.graphql.reset();
}

HttpReply Handlers::Authorize(const HttpRequest& request) {
  auto parsed = ParseAuthorize(request.body);
  if (auto* error = std::get_if<std::string>(&parsed)) return ErrorReply(400, *error);
  const AuthorizeCheck& check = std::get<AuthorizeCheck>(parsed);
  const std::string_view header_token = BearerToken(request.authorization).value_or("");
  const PolicyPtr policy = state_->policy();
  auto snapshot = state_->Fresh();
  const int64_t now_ms = options_.now_ms();
  Evaluation e = Evaluate(check, header_token, policy, snapshot.ok() ? snapshot->get() : nullptr,
                          snapshot.status(), state_->clock().NowSeconds(), now_ms);
  if (e.bad_request) return ErrorReply(400, e.error);
  if (!Log("authorize", e, now_ms, request)) FailClosed(&e);
  return JsonReply(200, EncodeDecision(e.view));
}

HttpReply Handlers::AuthorizeBatch(const HttpRequest& request) {
  auto parsed = ParseBatch(request.body);
  if (auto* error = std::get_if<std::string>(&parsed)) return ErrorReply(400, *error);
  const auto& checks = std::get<std::vector<AuthorizeCheck>>(parsed);
  const std::string_view header_token = BearerToken(request.authorization).value_or("");
  const PolicyPtr policy = state_->policy();
  auto snapshot = state_->Fresh();
  const int64_t now = state_->clock().NowSeconds();
  const int64_t now_ms = options_.now_ms();
  std::vector<Evaluation> evaluations;
  evaluations.reserve(checks.size());
  for (size_t i = 0; i < checks.size(); ++i) {
    evaluations.push_back(Evaluate(checks[i], header_token, policy,
                                   snapshot.ok() ? snapshot->get() : nullptr, snapshot.status(),
                                   now, now_ms));
    if (evaluations.back().bad_request) {
      return ErrorReply(400, "checks[" + std::to_string(i) + "]: " + evaluations.back().error);
    }
  }
  std::vector<DecisionView> views;
  views.reserve(evaluations.size());
  for (Evaluation& e : evaluations) {
    if (!Log("authorize_batch", e, now_ms, request)) FailClosed(&e);
    views.push_back(std::move(e.view));
  }
  return JsonReply(200, EncodeBatch(views));
}

HttpReply Handlers::Verify(const HttpRequest& request) {
  std::optional<std::string> token;
  const std::string_view body_start = Trim(request.body);
  const bool form = IStartsWith(Trim(request.content_type), "application/x-www-form-urlencoded") &&
                    (body_start.empty() || body_start.front() != '{');
  if (form) {
    auto field = ParseFormField(request.body, "token");
    if (auto* error = std::get_if<std::string>(&field)) return ErrorReply(400, *error);
    token = std::move(std::get<0>(field));
  } else {
    auto field = ParseVerifyJson(request.body);
    if (auto* error = std::get_if<std::string>(&field)) return ErrorReply(400, *error);
    token = std::move(std::get<0>(field));
  }
  if (!token) {
    if (auto bearer = BearerToken(request.authorization)) token = std::string(*bearer);
  }
  if (!token) {
    return ErrorReply(
        400,
        "missing token: send {\"token\": ...}, the form field token=, or Authorization: Bearer");
  }

  const int64_t now_ms = options_.now_ms();
  Evaluation e;  // only for the decision log
  e.action = "token.verify";
  const PolicyPtr policy = state_->policy();  // outlives the views into it
  e.view.policy_revision = policy->revision();
  IntrospectionView v;
  auto snapshot = state_->Fresh();
  if (!snapshot.ok()) {
    e.token_check = "store-unavailable";
    e.token_redacted = RedactToken(*token);
    e.message = snapshot.status().ToString();
  } else {
    const TokenLookup lookup = CheckToken(*(*snapshot)->tokens, *token, state_->clock().NowSeconds(), &e);
    if (lookup.active()) {
      const TokenPrincipal& p = *lookup.token.principal;
      v.active = true;
      v.sub = std::to_string(p.api_user_id);
      v.username = p.api_user_name;
      v.workspace = p.workspace_name;
      v.workspace_role = p.workspace_role;
      v.org_role = p.org_role;
      v.token_id = std::string(lookup.token.token_id);
      v.iat = lookup.token.created_at;
      v.exp = lookup.token.expires_at;
      e.principal_kind = "api_user";
      e.principal_name = p.api_user_name;
      e.workspace = p.workspace_name;
      e.view.allow = true;
    }
  }
  if (!Log("verify", e, now_ms, request)) v = IntrospectionView{};  // inactive
  return JsonReply(200, EncodeIntrospection(v));
}

HttpReply Handlers::ForwardAuth(const HttpRequest& request) {
  const int64_t now_ms = options_.now_ms();
  auto unauthorized = [](std::string_view error, std::string_view message) {
    HttpReply r = ErrorReply(401, message);
    std::string challenge = "Bearer realm=\"gatehouse\"";
    if (!error.empty()) challenge += ", error=\"" + std::string(error) + "\"";
    r.headers.emplace_back("WWW-Authenticate", std::move(challenge));
    return r;
  };

  // 1. Translate: which request the proxy asks about, exactly as it saw it.
  const ForwardAuthTranslation t =
      TranslateForwardAuth(request, options_.forward_auth_source, options_.forward_auth_prefix);
  const OriginalRequest& original = t.request;
  const PolicyPtr policy = state_->policy();
  Evaluation e;
  e.view.policy_name = policy->name();
  e.view.policy_revision = policy->revision();
  e.view.time_ms = now_ms;
  auto note = [&e](std::string rule, std::string message) {
    e.message = message;
    e.view.reasons.push_back({std::move(rule), Effect::kDeny, std::move(message)});
  };
  // nginx drops an auth subrequest's body: the decision goes in a header as
  // well, which deploy/nginx.conf hands to the client, so that nginx asks
  // once per request (one decision, one record, one count).
  auto reply403 = [&original](std::string body) {
    HttpReply r = JsonReply(403, std::move(body));
    if (original.source == ForwardAuthSource::kNginx) {
      std::string header = AsciiJson(r.body);
      if (header.empty()) header = "{\"allow\":false,\"error\":\"the decision is too large for a header; the decision log has it\"}";
      r.headers.emplace_back("X-Gatehouse-Decision", std::move(header));
    }
    return r;
  };
  auto deny403 = [&](std::string rule, std::string message) {
    note(std::move(rule), std::move(message));
    (void)Log("forward_auth", e, now_ms, request, &original);  // a refusal either way
    return reply403(EncodeDecision(e.view));
  };
  // Contradictory proxy headers are a bad request whoever sends them; say so
  // before looking at the token.
  if (t.refusal && t.refusal->status == 400) {
    note(t.refusal->rule, t.refusal->message);
    (void)Log("forward_auth", e, now_ms, request, &original);  // a refusal either way
    return ErrorReply(400, t.refusal->message);
  }

  // 2. Authenticate, verifying the token once (401 before any 403).
  const auto bearer = BearerToken(request.authorization);
  if (!bearer) {
    // Refused like any other request: logged (one record per request).
    const char* why = request.authorization.empty() ? "missing Authorization: Bearer token"
                                                    : "the Authorization header is not a Bearer token";
    e.token_check = "missing";
    note("missing-token", why);
    (void)Log("forward_auth", e, now_ms, request, &original);
    return unauthorized("", why);
  }
  auto snapshot = state_->Fresh();
  if (!snapshot.ok()) {
    e.token_redacted = RedactToken(*bearer);
    return deny403("store-unavailable",
                   "the sidecar cannot read its store (" + snapshot.status().ToString() + ")");
  }
  const TokenLookup lookup =
      CheckToken(*(*snapshot)->tokens, *bearer, state_->clock().NowSeconds(), &e);
  if (!lookup.active()) {
    e.token_inactive = true;
    note(std::string(kInactiveTokenRule), std::string(kInactiveTokenMessage));
    (void)Log("forward_auth", e, now_ms, request, &original);  // a refusal either way
    return unauthorized("invalid_token", kInactiveTokenMessage);
  }
  const Subject subject = SubjectOfToken(lookup.token);
  e.principal_kind = "api_user";
  e.principal_name = subject.name;
  e.org_role = subject.org_role;

  // 3. Decide: a target refused by the path rule, or one no route maps, is
  // denied; otherwise the route's action in the route's workspace.
  if (t.refusal) return deny403(t.refusal->rule, t.refusal->message);
  const auto route = policy->MatchRoute(original.method, original.segments);
  if (!route) {
    if (options_.shadow != nullptr) {  // the candidate may map it
      options_.shadow->DecideRoute(policy, "", "", false, Request{}, false, *(*snapshot)->directory,
                                   subject, original.method, original.segments, &e.shadow);
    }
    const std::string_view path =
        std::string_view(original.target).substr(0, std::string_view(original.target).find('?'));
    return deny403("no-route", "no route of policy " + policy->name() + " maps " + original.method +
                                   " " + std::string(path) +
                                   " to an action (unmapped requests are denied)");
  }
  AuthorizeCheck check;
  check.action = policy->action(route->action)->name;
  check.workspace = route->workspace.empty() ? subject.workspace_name : route->workspace;
  e.action = check.action;
  e.workspace = check.workspace;
  Decide(subject, RouteQuestion(*policy, route->action, check.workspace), *policy,
         *(*snapshot)->directory, &e);
  if (options_.shadow != nullptr) {
    options_.shadow->DecideRoute(policy, check.action, check.workspace, e.decided, e.request,
                                 e.view.allow, *(*snapshot)->directory, subject, original.method,
                                 original.segments, &e.shadow);
  }
  if (!Log("forward_auth", e, now_ms, request, &original)) FailClosed(&e);
  if (!e.view.allow) {
    e.view.graphql_response = true;
    return reply403(EncodeDecision(e.view));
  }
  if (e.stored_workspace.empty()) {  // an allow always names a stored workspace; stay safe
    return reply403(EncodeError("the decided workspace is not in the store"));
  }
  // nginx, Traefik, Caddy and Envoy look only at the status and headers of a
  // 200. Every identity header is set, always, so a proxy that copies the
  // list never passes on a client's own copy of one.
  std::array<std::string_view, kIdentityHeaders.size()> values;
  auto set = [&values](IdentityHeader h, std::string_view v) {
    values[static_cast<size_t>(h)] = v;
  };
  set(IdentityHeader::kSubject, e.principal_name);
  set(IdentityHeader::kWorkspace, e.stored_workspace);
  set(IdentityHeader::kRole, e.view.principal ? std::string_view(e.view.principal->workspace_role)
                                              : std::string_view("none"));
  set(IdentityHeader::kOrgRole, e.org_role);
  set(IdentityHeader::kTokenId, e.token_id);
  set(IdentityHeader::kAction, check.action);
  HttpReply r = JsonReply(200, "{\"allow\":true}");
  r.headers.reserve(kIdentityHeaders.size());
  for (size_t i = 0; i < kIdentityHeaders.size(); ++i) {
    r.headers.emplace_back(std::string(kIdentityHeaders[i]), HeaderSafe(values[i]));
  }
  return r;
}

// Verifies a presented token and notes, for the decision log, why it was
// accepted or refused: its id when known, else only a redacted form.
TokenLookup Handlers::CheckToken(const TokenView& index, std::string_view token, int64_t now,
                                 Evaluation* e) {
  const TokenLookup lookup = index.Verify(token, now);
  state_->metrics().CountTokenCheck(lookup.check);
  e->token_check = std::string(TokenCheckName(lookup.check));
  if (lookup.check == TokenCheck::kActive || lookup.check == TokenCheck::kExpired) {
    e->token_id = std::string(lookup.token.token_id);
  } else {
    e->token_redacted = RedactToken(token);
  }
  return lookup;
}

HttpReply Handlers::Healthz(const HttpRequest&) { return JsonReply(200, "{\"status\":\"ok\"}"); }

HttpReply Handlers::Readyz(const HttpRequest&) {
  const PolicyPtr policy = state_->policy();
  const Status store = state_->CheckStore();
  auto snapshot = store.ok() ? state_->Fresh() : Result<SnapshotPtr>(store);
  const bool log_ok = !options_.decision_log_required || log_ == nullptr || log_->healthy();
  const bool ready = snapshot.ok() && log_ok;
  std::string body = "{\"ready\":";
  body += ready ? "true" : "false";
  body += ",\"policy\":{\"name\":";
  AppendJsonString(body, policy->name());
  body += ",\"revision\":";
  AppendJsonString(body, policy->revision());
  body += "},\"store\":";
  AppendJsonString(body, snapshot.ok() ? std::string("ok") : snapshot.status().ToString());
  if (snapshot.ok()) {
    body += ",\"tokens\":" + std::to_string((*snapshot)->tokens->size());
  }
  if (options_.shadow != nullptr) {
    const PolicyPtr candidate = options_.shadow->candidate();
    body += ",\"shadow_policy\":{\"name\":";
    AppendJsonString(body, candidate->name());
    body += ",\"revision\":";
    AppendJsonString(body, candidate->revision());
    body += '}';
  }
  body += ",\"decision_log\":";
  body += log_ok ? "\"ok\"" : "\"failing (--decision-log-required)\"";
  body += ",\"build\":{\"version\":";
  AppendJsonString(body, options_.version);
  body += ",\"revision\":";
  AppendJsonString(body, options_.revision);
  body += "}}";
  return JsonReply(ready ? 200 : 503, std::move(body));
}

HttpReply Handlers::MetricsText(const HttpRequest&) {
  HttpReply r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = state_->metrics().Render();
  if (options_.shadow != nullptr) r.body += options_.shadow->RenderMetrics();
  return r;
}

}  // namespace gatehouse::sidecar
