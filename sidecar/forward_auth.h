// Forward-auth translation: from the request a proxy sends to
// /v1/forward-auth to the original request it stands for (method and raw
// target), and the rule that decides whether that target's path is safe to
// authorize at all. Pure functions over values: no socket, no policy, no
// token; the handler (handlers.cc) verifies the token and decides after this.
//
// Sources. A proxy tells us the original request in one of three ways:
//   nginx    X-Original-Method / X-Original-URI   (auth_request, deploy/nginx.conf)
//   traefik  X-Forwarded-Method / X-Forwarded-Uri (Traefik ForwardAuth, Caddy forward_auth)
//   envoy    the request's own method, and the raw target under the
//            forward-auth prefix: /v1/forward-auth/workspaces/... (ext_authz, HTTP mode)
// A source counts as present when any of its headers arrived (even empty),
// or, for envoy, when the target continues past the prefix with a '/'.
// A pinned source (--forward-auth-source nginx|traefik|envoy) reads only its
// own headers; whatever else the client managed to send is ignored. Under
// kAuto exactly one source may be present: the headers of two are refused
// (400), because a proxy that passes a client's headers on (Traefik does by
// default, Envoy when allowed) would otherwise let the client choose which
// URI is checked. A repeated header of the source read is refused (400), and
// so is a source with only one of its two headers. No source at all is
// rule `no-original-uri` (403).
//
// The path rule (403, rule `unsafe-path`). The target is matched as the raw
// bytes the proxy sent, never as something a library decoded. It must be in
// origin form (start with '/': no `http://host/...`, no `*`) and contain no
// raw '#' anywhere. Its path is everything before the first '?'; the query
// string takes no part in matching and is not checked further. The path "/"
// has no segments; any other path is split at '/' into segments, and each
// segment must:
//   - be non-empty (no "//", no trailing '/');
//   - consist of RFC 3986 pchar bytes only, minus ';': A-Z a-z 0-9 - . _ ~
//     ! $ & ' ( ) * + , = : @ and percent escapes. So no raw space, control
//     character, non-ASCII byte, '"', '<', '>', '\', '^', '`', '{', '|', '}',
//     '[', ']', and no ';' (path parameters, which Java servers strip before
//     matching their own routes);
//   - have only well-formed escapes (%HH, hex of either case) that do not
//     decode to '/', '?', '#', '%', '\', ';' or a control character
//     (00-1F, 7F): each of those would let a service that decodes once, or
//     twice, or splits before decoding, see a different path than we match;
//   - once decoded, not be "." or ".." (nor %2E, %2e%2E, ...).
// Each segment is then percent-decoded exactly once, here; route
// placeholders match these decoded segments and nothing decodes them again
// (CompiledPolicy::MatchRoute's segment overload). A service that decodes the
// path once and resolves dot segments (RFC 3986 5.2.4) therefore reads the
// very segments we matched (tests/sidecar/forward_auth_test.cc checks that
// property over generated targets).
//
// Thread safety: free functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::sidecar {

struct HttpRequest;  // handlers.h

// Which proxy's headers forward-auth reads (--forward-auth-source).
enum class ForwardAuthSource : uint8_t {
  kAuto,     // whichever one is present; two present is a 400
  kNginx,    // X-Original-Method / X-Original-URI
  kTraefik,  // X-Forwarded-Method / X-Forwarded-Uri (Traefik, Caddy)
  kEnvoy,    // the path under the forward-auth prefix, the request's own method
};

// "auto", "nginx", "traefik", "envoy" (exactly, lower case); nullopt otherwise.
std::optional<ForwardAuthSource> ParseForwardAuthSource(std::string_view name);
// The name ParseForwardAuthSource accepts for `source`.
std::string_view ForwardAuthSourceName(ForwardAuthSource source);

// Why a forward-auth request cannot be authorized as sent.
struct ForwardAuthRefusal {
  int status = 403;  // 400: the proxy's headers are contradictory; 403: refuse the request
  std::string rule;  // ambiguous-source, repeated-header, incomplete-source, bad-method,
                     // no-original-uri, unsafe-path
  std::string message;
};

// The original request as the proxy sent it.
struct OriginalRequest {
  ForwardAuthSource source = ForwardAuthSource::kAuto;  // the one read; kAuto when none
  std::string method;                                   // upper-cased
  std::string target;                                   // raw: path and query, exactly as sent
  std::vector<std::string> segments;  // the path's segments, each decoded once (when safe)
};

// What TranslateForwardAuth found: the request (as far as it could be read,
// for the decision log) and, when it must not be authorized, why.
struct ForwardAuthTranslation {
  OriginalRequest request;
  std::optional<ForwardAuthRefusal> refusal;
  bool ok() const { return !refusal.has_value(); }
};

// Reads the original request from `request` as `source` says (see the
// header comment) and checks its target with the path rule. `prefix` is the
// forward-auth prefix (HandlerOptions::forward_auth_prefix). Never fails
// otherwise; a refusal is a value.
ForwardAuthTranslation TranslateForwardAuth(const HttpRequest& request, ForwardAuthSource source,
                                            std::string_view prefix);

// The path rule alone. On success, the decoded segments of `target`'s path
// (empty for "/"); on failure, nullopt and, in `problem`, why (for the
// decision log and the 403 message; it quotes no raw bytes unescaped).
std::optional<std::vector<std::string>> SafePathSegments(std::string_view target,
                                                         std::string* problem);

}  // namespace gatehouse::sidecar
