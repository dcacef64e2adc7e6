#include "sidecar/forward_auth.h"

#include <array>

#include "gatehouse/text.h"
#include "sidecar/handlers.h"

namespace gatehouse::sidecar {
namespace {

std::string Hex(unsigned char c) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  return std::string{kDigits[c >> 4], kDigits[c & 15]};
}

// RFC 3986 pchar bytes that may appear unencoded, minus ';' (see the header).
bool IsRawPathByte(unsigned char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':  // unreserved
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':  // sub-delims
    case '*':
    case '+':
    case ',':
    case '=':
    case ':':
    case '@':
      return true;
    default:
      return false;
  }
}

// Bytes that must not arrive percent-encoded: each changes the path's
// structure for a service that decodes before splitting (/ ? # \ ;), decodes
// twice (%), or stops at it (control characters).
bool IsForbiddenDecoded(unsigned char d) {
  return d == '/' || d == '?' || d == '#' || d == '%' || d == '\\' || d == ';' || d < 0x20 ||
         d == 0x7F;
}

// RFC 9110 tchar: what a method may be made of.
bool IsToken(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (unsigned char c : s) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// One source's view of a request: whether it is present, and its method
// and target as sent.
struct SourceView {
  ForwardAuthSource source = ForwardAuthSource::kAuto;
  bool present = false;
  bool method_present = false;
  bool target_present = false;
  bool repeated = false;
  std::string_view method;
  std::string_view target;
  std::string_view repeated_name;
};

bool Has(const HttpRequest& r, uint32_t bit, std::string_view value) {
  return (r.present & bit) != 0 || !value.empty();
}

SourceView HeaderSource(const HttpRequest& r, ForwardAuthSource source, uint32_t method_bit,
                        std::string_view method, std::string_view method_name, uint32_t uri_bit,
                        std::string_view uri, std::string_view uri_name) {
  SourceView v;
  v.source = source;
  v.method_present = Has(r, method_bit, method);
  v.target_present = Has(r, uri_bit, uri);
  v.present = v.method_present || v.target_present;
  v.method = method;
  v.target = uri;
  if (r.repeated & uri_bit) {
    v.repeated = true;
    v.repeated_name = uri_name;
  } else if (r.repeated & method_bit) {
    v.repeated = true;
    v.repeated_name = method_name;
  }
  return v;
}

SourceView EnvoySource(const HttpRequest& r, std::string_view prefix) {
  SourceView v;
  v.source = ForwardAuthSource::kEnvoy;
  const std::string_view target = r.target.empty() ? std::string_view(r.path) : r.target;
  if (!prefix.empty() && target.size() > prefix.size() && target.starts_with(prefix) &&
      target[prefix.size()] == '/') {
    v.present = v.method_present = v.target_present = true;
    v.method = r.method;
    v.target = target.substr(prefix.size());
  }
  return v;
}

ForwardAuthRefusal Refuse(int status, std::string rule, std::string message) {
  return {status, std::move(rule), std::move(message)};
}

}  // namespace

std::optional<ForwardAuthSource> ParseForwardAuthSource(std::string_view name) {
  for (ForwardAuthSource s : {ForwardAuthSource::kAuto, ForwardAuthSource::kNginx,
                              ForwardAuthSource::kTraefik, ForwardAuthSource::kEnvoy}) {
    if (name == ForwardAuthSourceName(s)) return s;
  }
  return std::nullopt;
}

std::string_view ForwardAuthSourceName(ForwardAuthSource source) {
  switch (source) {
    case ForwardAuthSource::kAuto:
      return "auto";
    case ForwardAuthSource::kNginx:
      return "nginx";
    case ForwardAuthSource::kTraefik:
      return "traefik";
    case ForwardAuthSource::kEnvoy:
      return "envoy";
  }
  return "auto";
}

std::optional<std::vector<std::string>> SafePathSegments(std::string_view target,
                                                         std::string* problem) {
  auto fail = [problem](std::string why) -> std::optional<std::vector<std::string>> {
    if (problem != nullptr) *problem = std::move(why);
    return std::nullopt;
  };
  if (target.empty() || target.front() != '/')
    return fail("the target is not a path (origin form starts with '/')");
  if (target.find('#') != std::string_view::npos)
    return fail("the target has a raw '#' (a request target carries no fragment)");
  const std::string_view path = target.substr(0, target.find('?'));
  std::vector<std::string> segments;
  if (path == "/") return segments;
  size_t start = 1;  // just after a '/'
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string_view raw = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    const std::string where = "segment " + std::to_string(segments.size() + 1);
    if (raw.empty()) return fail(where + " is empty ('//' or a trailing '/')");
    std::string decoded;
    decoded.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(raw[i]);
      if (c == '%') {
        if (raw.size() - i < 3 || HexDigitValue(raw[i + 1]) < 0 || HexDigitValue(raw[i + 2]) < 0)
          return fail(where + " has a malformed percent escape");
        const unsigned char d =
            static_cast<unsigned char>(HexDigitValue(raw[i + 1]) * 16 + HexDigitValue(raw[i + 2]));
        if (IsForbiddenDecoded(d)) return fail(where + " has an encoded byte 0x" + Hex(d));
        decoded.push_back(static_cast<char>(d));
        i += 2;
      } else if (!IsRawPathByte(c)) {
        return fail(where + " has a raw byte 0x" + Hex(c) + " that a path may not carry");
      } else {
        decoded.push_back(static_cast<char>(c));
      }
    }
    if (decoded == "." || decoded == "..") return fail(where + " is a dot segment");
    segments.push_back(std::move(decoded));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return segments;
}

ForwardAuthTranslation TranslateForwardAuth(const HttpRequest& request, ForwardAuthSource source,
                                            std::string_view prefix) {
  ForwardAuthTranslation t;
  const std::array<SourceView, 3> views = {
      HeaderSource(request, ForwardAuthSource::kNginx, kHdrOriginalMethod, request.original_method,
                   "X-Original-Method", kHdrOriginalUri, request.original_uri, "X-Original-URI"),
      HeaderSource(request, ForwardAuthSource::kTraefik, kHdrForwardedMethod,
                   request.forwarded_method, "X-Forwarded-Method", kHdrForwardedUri,
                   request.forwarded_uri, "X-Forwarded-Uri"),
      EnvoySource(request, prefix),
  };

  const SourceView* chosen = nullptr;
  if (source == ForwardAuthSource::kAuto) {
    std::string names;
    for (const SourceView& v : views) {
      if (!v.present) continue;
      if (chosen != nullptr) {
        // Two proxies' headers: one of them came from the client. Which one
        // cannot be told, so neither is believed.
        names += ", ";
        names += ForwardAuthSourceName(v.source);
        t.refusal =
            Refuse(400, "ambiguous-source",
                   "forward-auth got the original request from more than one source (" + names +
                       "); pin one with --forward-auth-source or have the proxy drop "
                       "the others");
      } else {
        chosen = &v;
        names = ForwardAuthSourceName(v.source);
      }
    }
    if (t.refusal) return t;
  } else {
    for (const SourceView& v : views) {
      if (v.source == source && v.present) chosen = &v;
    }
  }
  if (chosen == nullptr) {
    t.refusal = Refuse(
        403, "no-original-uri",
        "forward-auth needs the original request: X-Original-Method and X-Original-URI "
        "(nginx), X-Forwarded-Method and X-Forwarded-Uri (Traefik, Caddy), or the original "
        "path under " +
            std::string(prefix) + "/ (Envoy)" +
            (source == ForwardAuthSource::kAuto
                 ? std::string()
                 : "; this sidecar reads only " + std::string(ForwardAuthSourceName(source))));
    return t;
  }
  t.request.source = chosen->source;
  t.request.method = Upper(chosen->method);
  t.request.target = std::string(chosen->target);
  if (chosen->repeated) {
    t.refusal = Refuse(400, "repeated-header",
                       "forward-auth got " + std::string(chosen->repeated_name) +
                           " more than once; which one the proxy meant cannot be told");
    return t;
  }
  if (!chosen->method_present || !chosen->target_present) {
    t.refusal = Refuse(400, "incomplete-source",
                       std::string("forward-auth got only one of the two headers of ") +
                           std::string(ForwardAuthSourceName(chosen->source)) +
                           " (the original method and the original URI go together)");
    return t;
  }
  if (!IsToken(chosen->method)) {
    t.refusal = Refuse(400, "bad-method", "the original method is not an HTTP method token");
    return t;
  }
  std::string problem;
  auto segments = SafePathSegments(chosen->target, &problem);
  if (!segments) {
    t.refusal =
        Refuse(403, "unsafe-path", "the original target is refused as unsafe to match: " + problem);
    return t;
  }
  t.request.segments = std::move(*segments);
  return t;
}

}  // namespace gatehouse::sidecar
