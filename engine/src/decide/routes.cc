// Route matching for forward-auth: method + request target → action + workspace.
#include "compile/compiled.h"
#include "gatehouse/text.h"

namespace gatehouse {
namespace {

// Percent-decodes one path segment; false on a malformed escape or a decoded
// '/' or NUL (which would let a segment smuggle structure).
bool DecodeSegment(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexDigitValue(in[i + 1]), lo = HexDigitValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      char d = static_cast<char>(hi * 16 + lo);
      if (d == '/' || d == '\0') return false;
      out->push_back(d);
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

}  // namespace

std::optional<RouteMatch> CompiledPolicy::MatchRoute(std::string_view method,
                                                     std::string_view target) const {
  size_t cut = target.find_first_of("?#");
  std::string_view path = target.substr(0, cut);
  if (path.empty() || path[0] != '/') return std::nullopt;
  // Split into decoded segments once.
  std::vector<std::string> segs;
  size_t start = 1;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view raw = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    std::string decoded;
    if (!DecodeSegment(raw, &decoded)) return std::nullopt;
    segs.push_back(std::move(decoded));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return MatchRoute(method, segs);
}

std::optional<RouteMatch> CompiledPolicy::MatchRoute(std::string_view method,
                                                     const std::vector<std::string>& segs) const {
  for (const internal::RouteModel& r : impl_->model.routes) {
    if (r.method != "*" && r.method != method) continue;
    if (r.segments.size() != segs.size()) continue;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const internal::RouteSegment& s = r.segments[i];
      ok = s.placeholder.empty() ? s.literal == segs[i] : !segs[i].empty();
    }
    if (!ok) continue;
    RouteMatch m;
    m.action = r.action;
    if (r.workspace_segment >= 0) m.workspace = segs[r.workspace_segment];
    return m;
  }
  return std::nullopt;
}

}  // namespace gatehouse
