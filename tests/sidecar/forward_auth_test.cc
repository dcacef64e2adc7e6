// Forward-auth translation (sidecar/forward_auth.h) as pure functions: which
// source is read, and the path rule, checked over generated targets against
// an independent model of (a) which targets are unsafe and (b) what a service
// that decodes once and resolves dot segments would read.
//
// GCC 12 with -fsanitize=address reports false -Wmaybe-uninitialized inside
// libstdc++'s <regex> (std::function in the NFA), as in tokens_test.cc.
#if defined(__GNUC__) && !defined(__clang__)  // GCC 12 + ASan inside <regex>
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "sidecar/forward_auth.h"

#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>
#include <vector>

#include "gatehouse/policy.h"
#include "sidecar/fixture.h"
#include "sidecar/handlers.h"

namespace gatehouse::sidecar {
namespace {

// ---------------------------------------------------------------- sources

HttpRequest Base() {
  HttpRequest r;
  r.method = "GET";
  r.path = r.target = "/v1/forward-auth";
  return r;
}

constexpr std::string_view kPrefix = "/v1/forward-auth";
constexpr std::string_view kDev = "/workspaces/Dev/projects/7/import";
constexpr std::string_view kProd = "/workspaces/Prod/projects/7/import";

ForwardAuthTranslation Translate(const HttpRequest& r, ForwardAuthSource s) {
  return TranslateForwardAuth(r, s, kPrefix);
}

TEST(ForwardAuthSourceTest, ParseAndNameRoundTrip) {
  for (ForwardAuthSource s : {ForwardAuthSource::kAuto, ForwardAuthSource::kNginx,
                              ForwardAuthSource::kTraefik, ForwardAuthSource::kEnvoy}) {
    EXPECT_EQ(ParseForwardAuthSource(ForwardAuthSourceName(s)), s);
  }
  for (std::string_view bad : {"", "Auto", "NGINX", "caddy", "nginx ", "x"}) {
    EXPECT_FALSE(ParseForwardAuthSource(bad)) << bad;
  }
}

TEST(ForwardAuthSourceTest, EachSourceAloneIsReadUnderAutoAndWhenPinned) {
  HttpRequest nginx = Base();
  nginx.original_method = "post";
  nginx.original_uri = std::string(kDev) + "?dry=1";
  HttpRequest traefik = Base();
  traefik.forwarded_method = "POST";
  traefik.forwarded_uri = std::string(kDev);
  HttpRequest envoy = Base();
  envoy.method = "POST";
  envoy.target = std::string(kPrefix) + std::string(kDev) + "?x=%2F";
  envoy.path = std::string(kPrefix) + std::string(kDev);
  const std::vector<std::pair<HttpRequest, ForwardAuthSource>> cases = {
      {nginx, ForwardAuthSource::kNginx},
      {traefik, ForwardAuthSource::kTraefik},
      {envoy, ForwardAuthSource::kEnvoy}};
  for (const auto& [request, source] : cases) {
    for (ForwardAuthSource mode : {ForwardAuthSource::kAuto, source}) {
      ForwardAuthTranslation t = Translate(request, mode);
      ASSERT_TRUE(t.ok()) << ForwardAuthSourceName(source) << ": " << t.refusal->message;
      EXPECT_EQ(t.request.source, source);
      EXPECT_EQ(t.request.method, "POST");
      EXPECT_EQ(t.request.segments,
                (std::vector<std::string>{"workspaces", "Dev", "projects", "7", "import"}));
    }
  }
  EXPECT_EQ(Translate(nginx, ForwardAuthSource::kAuto).request.target,
            std::string(kDev) + "?dry=1");
  EXPECT_EQ(Translate(envoy, ForwardAuthSource::kAuto).request.target,
            std::string(kDev) + "?x=%2F");
}

TEST(ForwardAuthSourceTest, AutoRefusesTwoSources) {
  HttpRequest r = Base();
  r.original_method = "POST";
  r.original_uri = std::string(kDev);
  r.forwarded_method = "POST";
  r.forwarded_uri = std::string(kProd);
  ForwardAuthTranslation t = Translate(r, ForwardAuthSource::kAuto);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.refusal->status, 400);
  EXPECT_EQ(t.refusal->rule, "ambiguous-source");
  // Presence is the header's arrival, even empty (the server's bit).
  r.forwarded_method.clear();
  r.forwarded_uri.clear();
  r.present = kHdrForwardedUri;
  EXPECT_EQ(Translate(r, ForwardAuthSource::kAuto).refusal->rule, "ambiguous-source");
  // nginx headers on an Envoy-style target: two sources too.
  HttpRequest e = Base();
  e.method = "POST";
  e.path = e.target = std::string(kPrefix) + std::string(kProd);
  e.original_method = "POST";
  e.original_uri = std::string(kDev);
  EXPECT_EQ(Translate(e, ForwardAuthSource::kAuto).refusal->rule, "ambiguous-source");
}

TEST(ForwardAuthSourceTest, PinnedSourceIgnoresTheOthers) {
  HttpRequest r = Base();
  r.method = "POST";
  r.path = r.target = std::string(kPrefix) + "/workspaces/Envoy/projects/7/import";
  r.original_method = "POST";
  r.original_uri = "/workspaces/Nginx/projects/7/import";
  r.forwarded_method = "POST";
  r.forwarded_uri = "/workspaces/Traefik/projects/7/import";
  const std::pair<ForwardAuthSource, std::string> cases[] = {
      {ForwardAuthSource::kNginx, "Nginx"},
      {ForwardAuthSource::kTraefik, "Traefik"},
      {ForwardAuthSource::kEnvoy, "Envoy"}};
  for (const auto& [source, workspace] : cases) {
    ForwardAuthTranslation t = Translate(r, source);
    ASSERT_TRUE(t.ok()) << workspace;
    EXPECT_EQ(t.request.source, source);
    EXPECT_EQ(t.request.segments[1], workspace);
  }
  // A pinned source that is absent is no-original-uri, whatever else came.
  HttpRequest only_traefik = Base();
  only_traefik.forwarded_method = "POST";
  only_traefik.forwarded_uri = std::string(kDev);
  ForwardAuthTranslation t = Translate(only_traefik, ForwardAuthSource::kNginx);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.refusal->status, 403);
  EXPECT_EQ(t.refusal->rule, "no-original-uri");
}

TEST(ForwardAuthSourceTest, RepeatedOrIncompleteHeadersAre400) {
  HttpRequest r = Base();
  r.original_method = "POST";
  r.original_uri = std::string(kDev);
  r.present = kHdrOriginalMethod | kHdrOriginalUri;
  for (uint32_t bit : {kHdrOriginalUri, kHdrOriginalMethod}) {
    r.repeated = bit;
    for (ForwardAuthSource mode : {ForwardAuthSource::kAuto, ForwardAuthSource::kNginx}) {
      ForwardAuthTranslation t = Translate(r, mode);
      ASSERT_FALSE(t.ok());
      EXPECT_EQ(t.refusal->status, 400);
      EXPECT_EQ(t.refusal->rule, "repeated-header");
    }
  }
  // A repeated header of an ignored source does not matter.
  r.repeated = kHdrForwardedUri;
  EXPECT_TRUE(Translate(r, ForwardAuthSource::kNginx).ok());
  r.repeated = 0;
  HttpRequest uri_only = Base();
  uri_only.original_uri = std::string(kDev);
  EXPECT_EQ(Translate(uri_only, ForwardAuthSource::kAuto).refusal->rule, "incomplete-source");
  HttpRequest bad_method = r;
  bad_method.original_method = "PO ST";
  EXPECT_EQ(Translate(bad_method, ForwardAuthSource::kAuto).refusal->rule, "bad-method");
}

TEST(ForwardAuthSourceTest, NoSourceIsNoOriginalUri) {
  for (ForwardAuthSource mode : {ForwardAuthSource::kAuto, ForwardAuthSource::kNginx,
                                 ForwardAuthSource::kTraefik, ForwardAuthSource::kEnvoy}) {
    ForwardAuthTranslation t = Translate(Base(), mode);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.refusal->status, 403);
    EXPECT_EQ(t.refusal->rule, "no-original-uri");
  }
  HttpRequest prefix_only = Base();
  prefix_only.target = std::string(kPrefix) + "?/workspaces/Dev/projects/7/import";
  EXPECT_EQ(Translate(prefix_only, ForwardAuthSource::kEnvoy).refusal->rule, "no-original-uri");
}

// ---------------------------------------------------------------- the path rule by example

TEST(SafePathTest, Examples) {
  struct Case {
    std::string target;
    bool safe;
  };
  const Case cases[] = {
      {"/", true},
      {"/a", true},
      {"/workspaces/Marketing%2DProduction/projects/p%201/import?dry=1", true},
      {"/a/b?x=/../%2F%00", true},  // the query is never looked at
      {"/a/%41%c3%A9/~!$&'()*+,=:@.-_", true},
      {"/a/...", true},  // not a dot segment (RFC 3986)
      {"/a/.b/c.", true},
      // The issue's example: a raw '?' cuts the path, an encoded one is refused.
      {"/workspaces/Dev/projects/7/import%3F/../../../../Prod/projects/7/import", false},
      {"/workspaces/Dev/projects/7/import?/../../../../Prod/projects/7/import", true},
      {"", false},
      {"*", false},
      {"a/b", false},
      {"http://host/a", false},
      {"//host/a", false},
      {"/a//b", false},
      {"/a/", false},
      {"/a/.", false},
      {"/a/../b", false},
      {"/a/%2e/b", false},
      {"/a/%2E%2e/b", false},
      {"/a/.%2E/b", false},
      {"/a%2Fb", false},
      {"/a%2fb", false},
      {"/a%3Fb", false},
      {"/a%23b", false},
      {"/a%25b", false},
      {"/a%252Fb", false},
      {"/a%5Cb", false},
      {"/a%5cb", false},
      {"/a%3Bb", false},
      {"/a%00b", false},
      {"/a%0Ab", false},
      {"/a%1fb", false},
      {"/a%7Fb", false},
      {"/a\\b", false},
      {"/a;b", false},
      {"/a;jsessionid=1/b", false},
      {"/a#b", false},
      {"/a?x#y", false},
      {"/a b", false},
      {"/a\tb", false},
      {std::string("/a\0b", 4), false},
      {"/a\x7f", false},
      {"/caf\xc3\xa9", false},
      {"/a\"b", false},
      {"/a<b>", false},
      {"/a{b}", false},
      {"/a|b", false},
      {"/a^b", false},
      {"/a`b", false},
      {"/a[b]", false},
      {"/a%", false},
      {"/a%4", false},
      {"/a%zz", false},
      {"/a%4g", false},
      {"/a%%41", false},
  };
  for (const Case& c : cases) {
    std::string problem;
    auto segments = SafePathSegments(c.target, &problem);
    EXPECT_EQ(segments.has_value(), c.safe) << "'" << c.target << "': " << problem;
    if (!c.safe) {
      EXPECT_FALSE(problem.empty()) << c.target;
    }
  }
  EXPECT_EQ(*SafePathSegments("/", nullptr), std::vector<std::string>{});
  EXPECT_EQ(*SafePathSegments("/a/%41%c3%A9?q", nullptr),
            (std::vector<std::string>{"a", "A\xc3\xa9"}));
}

// ---------------------------------------------------------------- the generated property

// What a service does with a path: percent-decode once (all of it, '/'
// included, as many frameworks do), then RFC 3986 5.2.4 remove_dot_segments.
std::string DecodeOnce(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto hex = [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c))
                 ? std::stoi(std::string(1, c), nullptr, 16)
                 : -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string RemoveDotSegments(std::string in) {  // RFC 3986 5.2.4, step by step
  std::string out;
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.erase(0, 3);
    } else if (in.starts_with("./")) {
      in.erase(0, 2);
    } else if (in.starts_with("/./")) {
      in.replace(0, 3, "/");
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../") || in == "/..") {
      in = in == "/.." ? "/" : in.substr(3);
      const size_t last = out.rfind('/');
      out.erase(last == std::string::npos ? 0 : last);
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      const size_t next = in.find('/', 1);
      out += in.substr(0, next);
      in.erase(0, next == std::string::npos ? in.size() : next);
    }
  }
  return out;
}

std::vector<std::string> Split(std::string_view path) {
  std::vector<std::string> out;
  if (path == "/" || path.empty()) return out;
  size_t start = 1;
  while (true) {
    const size_t slash = path.find('/', start);
    out.emplace_back(
        path.substr(start, slash == std::string_view::npos ? path.npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

// The rule, written a second way (regular expressions instead of a byte
// loop): the independent model the generated targets are checked against.
bool ModelSafe(const std::string& target) {
  if (target.empty() || target[0] != '/' || target.find('#') != std::string::npos) return false;
  const std::string path = target.substr(0, target.find('?'));
  if (path == "/") return true;
  static const std::regex kSegment("([A-Za-z0-9._~!$&'()*+,=:@-]|%[0-9A-Fa-f]{2})+");
  static const std::regex kBadEscape("%(2[fF]|3[fF]|23|25|5[cC]|3[bB]|[01][0-9A-Fa-f]|7[fF])");
  for (const std::string& seg : Split(path)) {
    if (!std::regex_match(seg, kSegment) || std::regex_search(seg, kBadEscape)) return false;
    const std::string d = DecodeOnce(seg);
    if (d == "." || d == "..") return false;
  }
  return true;
}

enum class Kind {
  kSafe,           // may go anywhere in a segment
  kUnsafe,         // unsafe wherever it appears in the path
  kUnsafeSegment,  // unsafe as a whole segment (used only so)
  kUnsafeTail,     // a malformed escape: unsafe, used only at a segment's end
  kCut,            // a raw '?': the rest of the target is the query
};
struct Piece {
  std::string text;
  Kind kind;
};

const std::vector<Piece>& Pieces() {
  static const std::vector<Piece> pieces = {
      {"Dev", Kind::kSafe},
      {"Prod", Kind::kSafe},
      {"Marketing-Production", Kind::kSafe},
      {"7", Kind::kSafe},
      {"%41", Kind::kSafe},
      {"%2D", Kind::kSafe},
      {"%c3%a9", Kind::kSafe},
      {"p%201", Kind::kSafe},
      {"a.b", Kind::kSafe},
      {"~", Kind::kSafe},
      {"import", Kind::kSafe},
      {"..", Kind::kUnsafeSegment},
      {".", Kind::kUnsafeSegment},
      {"%2e%2E", Kind::kUnsafeSegment},
      {"%2E", Kind::kUnsafeSegment},
      {".%2e", Kind::kUnsafeSegment},
      {"", Kind::kUnsafeSegment},
      {"%2F", Kind::kUnsafe},
      {"%2f", Kind::kUnsafe},
      {"%252F", Kind::kUnsafe},
      {"%25", Kind::kUnsafe},
      {"%3F", Kind::kUnsafe},
      {"%23", Kind::kUnsafe},
      {"%5C", Kind::kUnsafe},
      {"%5c", Kind::kUnsafe},
      {"%3B", Kind::kUnsafe},
      {"\\", Kind::kUnsafe},
      {";x", Kind::kUnsafe},
      {"%00", Kind::kUnsafe},
      {"%0d%0A", Kind::kUnsafe},
      {"%7F", Kind::kUnsafe},
      {std::string("\0", 1), Kind::kUnsafe},
      {"\x01", Kind::kUnsafe},
      {"\x7f", Kind::kUnsafe},
      {"\xc3\xa9", Kind::kUnsafe},
      {"\xff", Kind::kUnsafe},
      {" ", Kind::kUnsafe},
      {"\"", Kind::kUnsafe},
      {"<", Kind::kUnsafe},
      {"#", Kind::kUnsafe},
      {"%", Kind::kUnsafeTail},
      {"%4", Kind::kUnsafeTail},
      {"%zz", Kind::kUnsafe},
      {"?", Kind::kCut},
  };
  return pieces;
}

struct Generated {
  std::string target;
  bool unsafe = false;
  std::vector<std::string> pieces;  // what it was built of, for failure messages
};

// Builds /workspaces/W/projects/P/import with W and P (and sometimes extra
// segments, a trailing '/', a query) made of random pieces.
Generated Generate(std::mt19937& rng) {
  const std::vector<Piece>& pieces = Pieces();
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  Generated g;
  bool in_query = false;
  auto add = [&](const std::string& text, bool unsafe_here) {
    g.target += text;
    g.pieces.push_back(text);
    if (!in_query && unsafe_here) g.unsafe = true;
    if (text.find('#') != std::string::npos) g.unsafe = true;  // anywhere in the target
  };
  auto segment = [&] {
    if (in_query) {  // past a raw '?': whatever follows is query, any bytes
      add(pieces[pick(pieces.size())].text, false);
      return;
    }
    // A whole-segment piece, or one to three pieces that may share a segment.
    if (pick(4) == 0) {
      std::vector<const Piece*> whole;
      for (const Piece& p : pieces) {
        if (p.kind == Kind::kUnsafeSegment) whole.push_back(&p);
      }
      add(whole[pick(whole.size())]->text, true);
      return;
    }
    const size_t n = 1 + pick(3);
    const size_t start = g.target.size();
    std::vector<const Piece*> safe;
    for (const Piece& p : pieces) {
      if (p.kind == Kind::kSafe) safe.push_back(&p);
    }
    for (size_t i = 0; i < n; ++i) {
      // Mostly safe pieces, so that whole targets are often safe too.
      const Piece& p = pick(5) < 4 ? *safe[pick(safe.size())] : pieces[pick(pieces.size())];
      if (p.kind == Kind::kUnsafeSegment) {
        add("x" + p.text, false);  // not alone in its segment: harmless
        continue;
      }
      if (p.kind == Kind::kUnsafeTail && i + 1 < n) continue;
      if (p.kind == Kind::kCut) {
        // The path ends here; nothing before the '?' in this segment is an
        // empty segment.
        add(p.text, g.target.size() == start && g.target != "/");  // "/?..." is the root: safe
        in_query = true;
        for (++i; i < n; ++i) add(pieces[pick(pieces.size())].text, false);
        return;
      }
      add(p.text, p.kind != Kind::kSafe);
    }
  };
  auto literal = [&](const std::string& s) { add(s, false); };
  const size_t extra_before = pick(8) == 0 ? 1 + pick(3) : 0;
  for (size_t i = 0; i < extra_before; ++i) {
    literal("/");
    segment();
  }
  literal("/workspaces/");
  segment();
  literal("/projects/");
  segment();
  literal("/import");
  const size_t extra_after = pick(6) == 0 ? 1 + pick(4) : 0;
  for (size_t i = 0; i < extra_after; ++i) {
    literal("/");
    segment();
  }
  if (pick(10) == 0) add("/", !in_query);  // a trailing '/': an empty segment
  static const char* const kQueries[] = {"",
                                         "?dry=1",
                                         "?",
                                         "?a=%2F..%2F",
                                         "?x=/../Prod",
                                         "?q=%00&r=%zz",
                                         "?/../../Prod/projects/7/import"};
  const std::string q = kQueries[pick(std::size(kQueries))];
  if (!q.empty()) {
    in_query = true;
    add(q, false);
  }
  return g;
}

class PathPropertyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PolicyLoad load = LoadPolicyFromString(testing::DefaultPolicyText(), "api-tokens.yaml");
    ASSERT_TRUE(load.policy) << "the default policy does not load";
    policy_ = load.policy;
  }
  PolicyPtr policy_;
};

TEST_F(PathPropertyTest, UnsafeTargetsAreRefusedAndAllowedOnesReadTheSameByTheService) {
  std::mt19937 rng(20260101);
  int refused = 0, allowed = 0, routed = 0;
  for (int n = 0; n < 20000; ++n) {
    const Generated g = Generate(rng);
    std::string why;
    for (const std::string& p : g.pieces) why += "[" + p + "]";
    HttpRequest r;
    r.method = "GET";
    r.path = r.target = "/v1/forward-auth";
    r.original_method = "POST";
    r.original_uri = g.target;
    const ForwardAuthTranslation t = TranslateForwardAuth(r, ForwardAuthSource::kNginx, kPrefix);

    // The two models of the rule agree with each other, and with the rule.
    ASSERT_EQ(ModelSafe(g.target), !g.unsafe) << why;
    if (g.unsafe) {
      ASSERT_FALSE(t.ok()) << "allowed an unsafe target " << why;
      ASSERT_EQ(t.refusal->rule, "unsafe-path") << why;
      ASSERT_EQ(t.refusal->status, 403) << why;
      ++refused;
      continue;
    }
    ASSERT_TRUE(t.ok()) << "refused a safe target " << why << ": " << t.refusal->message;
    ++allowed;
    // (b) What a service reads, decoding once (or even twice) and resolving
    // dot segments, is exactly the segments we match.
    const std::string path = g.target.substr(0, g.target.find('?'));
    const std::string once = RemoveDotSegments(DecodeOnce(path));
    ASSERT_EQ(Split(once), t.request.segments) << why;
    ASSERT_EQ(RemoveDotSegments(DecodeOnce(DecodeOnce(path))), once) << why;
    const auto route = policy_->MatchRoute(t.request.method, t.request.segments);
    const std::vector<std::string> service = Split(once);
    const bool service_routes = service.size() == 5 && service[0] == "workspaces" &&
                                service[2] == "projects" && service[4] == "import" &&
                                !service[1].empty() && !service[3].empty();
    ASSERT_EQ(route.has_value(), service_routes) << why;
    if (route) {
      ++routed;
      ASSERT_EQ(route->workspace, service[1]) << why;
    }
  }
  // The generator reaches every outcome often enough to mean something.
  EXPECT_GT(refused, 5000);
  EXPECT_GT(allowed, 2000);
  EXPECT_GT(routed, 1000);
}

// Every piece alone in the workspace position: exhaustive, beside the random mix.
TEST_F(PathPropertyTest, EveryPieceAsTheWorkspace) {
  for (const Piece& p : Pieces()) {
    if (p.kind == Kind::kCut) continue;
    const std::string target = "/workspaces/" + p.text + "/projects/7/import";
    std::string problem;
    const bool safe = SafePathSegments(target, &problem).has_value();
    EXPECT_EQ(safe, p.kind == Kind::kSafe) << "'" << p.text << "': " << problem;
    EXPECT_EQ(safe, ModelSafe(target)) << p.text;
  }
}

}  // namespace
}  // namespace gatehouse::sidecar
