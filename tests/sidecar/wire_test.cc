// The JSON codec, the config parsers and the metrics text.
#include "sidecar/wire.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "sidecar/config.h"
#include "sidecar/metrics.h"

namespace gatehouse::sidecar {
namespace {

using nlohmann::json;
using namespace std::string_literals;

TEST(WireTest, JsonStringsAreAlwaysValid) {
  std::string out;
  AppendJsonString(out, std::string("a\"b\\c\n\t\x01\x7f", 9));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\"");
  EXPECT_EQ(json::parse(out).get<std::string>(), std::string("a\"b\\c\n\t\x01\x7f", 9));
  // Valid UTF-8 passes through; invalid bytes become U+FFFD.
  out.clear();
  AppendJsonString(out, "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(json::parse(out).get<std::string>(), "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80");
  for (std::string bad :
       {"\xff", "\xC3", "\xE2\x82", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80"}) {
    out.clear();
    AppendJsonString(out, "x" + bad + "y");
    json j = json::parse(out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << out;
    EXPECT_NE(j.get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);
  }
  // Random bytes never make invalid JSON.
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 16, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    out.clear();
    AppendJsonString(out, s);
    EXPECT_FALSE(json::parse(out, nullptr, false).is_discarded());
  }
}

// The shadow object is written only for a divergence, after the record's own
// fields, and its strings are escaped like the rest (random rule names).
TEST(WireTest, DecisionLogShadowObjectOnlyWhenSetAndAlwaysValidJson) {
  std::mt19937 rng(13);
  for (int i = 0; i < 200; ++i) {
    std::vector<Reason> live = {{"live-rule", Effect::kAllow, "m"}};
    std::vector<Reason> shadow;
    for (int k = 0, n = static_cast<int>(rng() % 4); k < n; ++k) {
      std::string rule;
      for (int c = 0, len = static_cast<int>(rng() % 12); c < len; ++c) rule += static_cast<char>(rng() % 256);
      shadow.push_back({rule, Effect::kDeny, "x"});
    }
    DecisionLogEntry e;
    e.endpoint = "authorize";
    e.action = "project.import";
    e.allow = true;
    e.reasons = &live;
    e.revision = "sha256:live";
    const bool diverged = i % 2 == 0;
    if (diverged) {
      e.shadow_revision = "sha256:cand";
      e.shadow_allow = false;
      e.shadow_reasons = &shadow;
      e.shadow_message = "denied \"by\" the candidate\n";
    }
    json j = json::parse(EncodeDecisionLog(e), nullptr, false);
    ASSERT_TRUE(j.is_object()) << EncodeDecisionLog(e);
    EXPECT_EQ(j["decision"], "allow");
    EXPECT_EQ(j["rules"], json::array({"live-rule"}));
    ASSERT_EQ(j.contains("shadow"), diverged);
    if (!diverged) continue;
    EXPECT_EQ(j["shadow"]["decision"], "deny");
    EXPECT_EQ(j["shadow"]["revision"], "sha256:cand");
    EXPECT_EQ(j["shadow"]["message"], "denied \"by\" the candidate\n");
    ASSERT_EQ(j["shadow"]["rules"].size(), shadow.size());
  }
}

TEST(WireTest, FormatTimeMs) {
  EXPECT_EQ(FormatTimeMs(1706097760775), "2024-01-24T12:02:40.775Z");  // the seed's time_thrown
  EXPECT_EQ(FormatTimeMs(0), "1970-01-01T00:00:00.000Z");
}

TEST(WireTest, ParseAuthorize) {
  auto p = ParseAuthorize(
      R"({"token":"t","action":"a","workspace":"w","params":{"n":5,"b":false,"s":"x"},"extra":1})");
  ASSERT_TRUE(std::holds_alternative<AuthorizeCheck>(p));
  const auto& c = std::get<AuthorizeCheck>(p);
  EXPECT_EQ(*c.token, "t");
  EXPECT_FALSE(c.user);
  EXPECT_EQ(c.action, "a");
  EXPECT_EQ(c.workspace, "w");
  ASSERT_EQ(c.params.size(), 3u);
  EXPECT_EQ(c.params[0], (std::pair<std::string, std::string>{"b", "false"}));
  EXPECT_EQ(c.params[1], (std::pair<std::string, std::string>{"n", "5"}));
  EXPECT_EQ(c.params[2], (std::pair<std::string, std::string>{"s", "x"}));
  auto e = ParseAuthorize("{\"a\":");
  ASSERT_TRUE(std::holds_alternative<std::string>(e));
  EXPECT_TRUE(std::get<std::string>(e).starts_with("invalid JSON: ")) << std::get<std::string>(e);
}

// The fast path for plain authorize bodies agrees with nlohmann on every
// input: the same checks, or the same error.
TEST(WireTest, FastAuthorizeParsingAgreesWithNlohmann) {
  const std::vector<std::string> seeds = {
      R"({"token":"gat_x","action":"project.import","workspace":"Marketing-Production"})",
      R"(  { "user" : "a@b.c" , "action":"a.b", "workspace" :"W" }  )",
      R"({"token":"t","token":"u","action":"a","workspace":"w"})",
      R"({"token":"t","action":"a","workspace":"w","extra":"x"})",
      R"({"token":"t","user":"u","action":"a","workspace":"w"})",
      R"({"token":"t","action":"","workspace":"w"})",
      R"({"token":"t","action":"a"})",
      R"({"token":"t\u0041","action":"a","workspace":"w"})",
      R"({"token":"t","action":"a","workspace":"w","params":{"x":1}})",
      R"({"token":"t","action":"a","workspace":"w","params":"x"})",
      R"({"token":1,"action":"a","workspace":"w"})",
      R"({"token":"t","action":"a","workspace":"w"} x)",
      R"({"token":"t","action":"a","workspace":"w",})",
      R"({})",
      R"([])",
      "",
  };
  auto same = [](const std::string& body) {
    auto a = ParseAuthorize(body);
    auto b = internal::ParseAuthorizeWithNlohmann(body);
    if (a.index() != b.index()) return false;
    if (auto* e = std::get_if<std::string>(&a)) return *e == std::get<std::string>(b);
    const auto& x = std::get<AuthorizeCheck>(a);
    const auto& y = std::get<AuthorizeCheck>(b);
    return x.token == y.token && x.user == y.user && x.action == y.action &&
           x.workspace == y.workspace && x.params == y.params;
  };
  for (const std::string& s : seeds) EXPECT_TRUE(same(s)) << s;
  // Mutations of the seeds: flipped, dropped and inserted bytes.
  std::mt19937 rng(11);
  const std::string alphabet = "{}[]\":, \t\n\\atokenuserwpcx0129\x01\x7f\xc3\xa9";
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    for (int k = 1 + rng() % 3; k > 0; --k) {
      const size_t at = s.empty() ? 0 : rng() % s.size();
      switch (rng() % 3) {
        case 0:
          if (!s.empty()) s[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          if (!s.empty()) s.erase(at, 1);
          break;
        default:
          s.insert(at, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    ASSERT_TRUE(same(s)) << s;
  }
}

TEST(WireTest, ParseFormField) {
  auto v = ParseFormField("a=1&token=gat%5Fx+y&token=second", "token");
  ASSERT_TRUE(std::holds_alternative<std::optional<std::string>>(v));
  EXPECT_EQ(*std::get<0>(v), "gat_x y");
  EXPECT_FALSE(std::get<0>(ParseFormField("a=1&&b", "token")));
  EXPECT_EQ(*std::get<0>(ParseFormField("token", "token")), "");
  EXPECT_TRUE(std::holds_alternative<std::string>(ParseFormField("token=%2", "token")));
}

// A parsed string field (not the error alternative, which a std::string
// would select).
Parsed<std::optional<std::string>> Field(std::string s) {
  return std::optional<std::string>(std::move(s));
}

AuthorizeCheck Check(std::optional<std::string> token, std::optional<std::string> user,
                     std::string action, std::string workspace,
                     std::vector<std::pair<std::string, std::string>> params = {}) {
  return AuthorizeCheck{std::move(token), std::move(user), std::move(action), std::move(workspace),
                        std::move(params)};
}

TEST(WireTest, AuthorizeRequestsRoundTrip) {
  const AuthorizeCheck by_token =
      Check("gat_x", std::nullopt, "project.import", "Marketing-Production");
  EXPECT_EQ(EncodeAuthorizeRequest(by_token),
            R"({"token":"gat_x","action":"project.import","workspace":"Marketing-Production"})");
  const AuthorizeCheck by_user =
      Check(std::nullopt, "a@b.c", "token.create", "Dev", {{"b", "true"}, {"n", "-5"}, {"s", "x"}});
  EXPECT_EQ(EncodeAuthorizeRequest(by_user),
            R"({"user":"a@b.c","action":"token.create","workspace":"Dev",)"
            R"("params":{"b":"true","n":"-5","s":"x"}})");
  for (const AuthorizeCheck& c : {by_token, by_user}) {
    EXPECT_EQ(ParseAuthorize(EncodeAuthorizeRequest(c)), Parsed<AuthorizeCheck>(c));
    EXPECT_EQ(internal::ParseAuthorizeWithNlohmann(EncodeAuthorizeRequest(c)),
              Parsed<AuthorizeCheck>(c));
  }
  // Parse(Encode(Parse(b))) == Parse(b): integers and booleans come back as
  // the same text, written as strings.
  for (const char* body : {
           R"({"token":"t","action":"a","workspace":"w"})",
           R"({"user":"u","action":"a","workspace":"w","params":{"s":"x","n":-0,"b":false,)"
           R"("big":18446744073709551615,"neg":-9223372036854775808},"extra":[1]})",
           R"({"token":"t","action":"a","workspace":"w","params":null})",
       }) {
    auto parsed = ParseAuthorize(body);
    ASSERT_TRUE(std::holds_alternative<AuthorizeCheck>(parsed)) << body;
    EXPECT_EQ(ParseAuthorize(EncodeAuthorizeRequest(std::get<AuthorizeCheck>(parsed))), parsed)
        << body;
  }
  // Params come back sorted by name, the last of a repeated name kept.
  auto unsorted = ParseAuthorize(EncodeAuthorizeRequest(
      Check("t", std::nullopt, "a", "w", {{"z", "1"}, {"a", "2"}, {"z", "3"}})));
  EXPECT_EQ(unsorted,
            Parsed<AuthorizeCheck>(Check("t", std::nullopt, "a", "w", {{"a", "2"}, {"z", "3"}})));
  // What the parser refuses stays refused.
  EXPECT_TRUE(std::holds_alternative<std::string>(
      ParseAuthorize(EncodeAuthorizeRequest(Check("t", "u", "a", "w")))));
  // An empty action is the question's to refuse (ParseQuestion), not the wire's.
  EXPECT_EQ(ParseAuthorize(EncodeAuthorizeRequest(Check("t", std::nullopt, "", "w"))),
            Parsed<AuthorizeCheck>(Check("t", std::nullopt, "", "w")));
}

TEST(WireTest, RequestEncodersEscape) {
  const std::string nasty = "q\"b\\s/n\nt\tc\x01\x7f nul\0 \xC3\xA9\xF0\x9F\x98\x80"s;
  const AuthorizeCheck c = Check(nasty, std::nullopt, nasty, "w", {{nasty, nasty}, {"", ""}});
  const std::string body = EncodeAuthorizeRequest(c);
  EXPECT_TRUE(json::accept(body)) << body;
  EXPECT_NE(body.find(R"(q\"b\\s/n\nt\tc\u0001\u007f nul\u0000 )"), std::string::npos) << body;
  auto sorted = c;
  std::swap(sorted.params[0], sorted.params[1]);
  EXPECT_EQ(ParseAuthorize(body), Parsed<AuthorizeCheck>(sorted));
  EXPECT_EQ(EncodeVerifyRequest("gat_\"x\""), R"({"token":"gat_\"x\""})");
  EXPECT_EQ(ParseVerifyJson(EncodeVerifyRequest(nasty)), Field(nasty));
}

TEST(WireTest, BatchRequestsRoundTrip) {
  const std::vector<AuthorizeCheck> checks = {
      Check("gat_x", std::nullopt, "project.import", "Dev"),
      Check(std::nullopt, "a@b.c", "project.delete", "Prod", {{"id", "42"}, {"force", "false"}}),
  };
  std::vector<AuthorizeCheck> expected = checks;
  std::swap(expected[1].params[0], expected[1].params[1]);  // sorted by name
  EXPECT_EQ(ParseBatch(EncodeBatchRequest(checks)), Parsed<std::vector<AuthorizeCheck>>(expected));
  EXPECT_EQ(EncodeBatchRequest({}), R"({"checks":[]})");
  EXPECT_EQ(ParseBatch(EncodeBatchRequest({})), Parsed<std::vector<AuthorizeCheck>>());
  // One check of the wrong shape fails the batch, as it would when sent.
  auto bad = ParseBatch(R"({"checks":[{"token":"t","action":"a","workspace":"w"},)"
                        R"({"token":"t","action":"a","workspace":7}]})");
  ASSERT_TRUE(std::holds_alternative<std::string>(bad));
  EXPECT_EQ(std::get<std::string>(bad), "checks[1]: field \"workspace\" must be a string, not an integer");
  // Names are the question's to refuse (ParseQuestion, in one place), not
  // the wire's: an empty workspace parses.
  EXPECT_TRUE(std::holds_alternative<std::vector<AuthorizeCheck>>(
      ParseBatch(EncodeBatchRequest({checks[0], Check("t", std::nullopt, "a", "")}))));
}

TEST(WireTest, FormFieldsPercentEncode) {
  EXPECT_EQ(EncodeFormField("token", "gat_x y&z=1%+~"), "token=gat_x+y%26z%3D1%25%2B%7E");
  EXPECT_EQ(EncodeFormField("a b", ""), "a+b=");
  EXPECT_EQ(EncodeFormField("k", "\xC3\xA9\xFF"), "k=%C3%A9%FF");
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  const std::string body =
      "a=1&" + EncodeFormField(every_byte, every_byte) + "&" + EncodeFormField(every_byte, "later");
  EXPECT_EQ(ParseFormField(body, every_byte), Field(every_byte));
  EXPECT_EQ(ParseFormField(EncodeFormField("", ""), ""), Field(""));
}

// Invalid UTF-8 cannot be in JSON: each bad byte comes back as U+FFFD, after
// which the value round-trips exactly. Form bodies keep any bytes.
TEST(WireTest, InvalidUtf8RoundTripsAsReplacement) {
  const std::string fffd = "\xEF\xBF\xBD";
  auto parsed = ParseAuthorize(EncodeAuthorizeRequest(
      Check("ab\xFF"s + "cd", std::nullopt, "a\xC3", "w\xE2\x82", {{"\xFE", "1"}, {"\xFF", "2"}})));
  const AuthorizeCheck replaced =
      Check("ab" + fffd + "cd", std::nullopt, "a" + fffd, "w" + fffd + fffd, {{fffd, "2"}});
  EXPECT_EQ(parsed, Parsed<AuthorizeCheck>(replaced));
  EXPECT_EQ(ParseAuthorize(EncodeAuthorizeRequest(replaced)), parsed);
  EXPECT_EQ(ParseVerifyJson(EncodeVerifyRequest("\xED\xA0\x80")), Field(fffd + fffd + fffd));
  EXPECT_EQ(ParseFormField(EncodeFormField("token", "\xED\xA0\x80"), "token"),
            Field("\xED\xA0\x80"));
}

TEST(WireTest, EncodeDecisionIsValidJson) {
  DecisionView d;
  d.allow = false;
  d.reasons = {{"r\"1", Effect::kDeny, "m\n"}, {"r2", Effect::kAllow, ""}};
  d.principal = PrincipalView{"api_user", "n\xff", "viewer", "none"};
  d.policy_name = "p";
  d.policy_revision = "sha256:00";
  d.graphql = GraphqlTemplate{"importProject", "PreconditionError", "internal_error", "msg", 2, 3};
  d.time_ms = 1706097760775;
  d.graphql_response = true;
  json j = json::parse(EncodeDecision(d));
  EXPECT_TRUE(j["data"].is_null());
  EXPECT_EQ(j["reasons"][0]["rule"], "r\"1");
  EXPECT_EQ(j["reasons"][1]["effect"], "allow");
  EXPECT_EQ(j["errors"][0]["extensions"]["time_thrown"], "2024-01-24T12:02:40.775Z");
  json batch = json::parse(EncodeBatch({d, d}));
  EXPECT_EQ(batch["results"].size(), 2u);
  EXPECT_EQ(EncodeIntrospection({}), "{\"active\":false}");
  EXPECT_EQ(json::parse(EncodeError("bad \"x\""))["error"], "bad \"x\"");
}

TEST(ConfigTest, ParseListen) {
  auto a = ParseListen("127.0.0.1:7878");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7878);
  a = ParseListen("[::1]:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  a = ParseListen(":9000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "0.0.0.0");
  for (const char* bad :
       {"", "7878", "host:", "host:x", "host:70000", "host:-1", "::1:80", "[::1]80", "[::1"}) {
    EXPECT_FALSE(ParseListen(bad).ok()) << bad;
  }
}

TEST(ConfigTest, ParseConfigText) {
  auto c = ParseConfigText(
      "# comment\n---\nlisten: 127.0.0.1:0\nstore: \"/tmp/a b.db\"  # the store\n"
      "decision_log: '-'\nthreads: 8 # eight\n\n",
      "gatehoused.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 4u);
  EXPECT_EQ((*c)[0], (std::pair<std::string, std::string>{"listen", "127.0.0.1:0"}));
  EXPECT_EQ((*c)[1], (std::pair<std::string, std::string>{"store", "/tmp/a b.db"}));
  EXPECT_EQ((*c)[2], (std::pair<std::string, std::string>{"decision-log", "-"}));
  EXPECT_EQ((*c)[3], (std::pair<std::string, std::string>{"threads", "8"}));
  for (const char* bad :
       {"listen\n", "a: 1\na: 2\n", "a:\n  b: 1\n", "a: [1, 2]\n", "a: \"x\n", ": x\n"}) {
    auto r = ParseConfigText(bad, "f.yaml");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_TRUE(r.status().ToString().starts_with("f.yaml:")) << r.status().ToString();
    }
  }
}

TEST(MetricsTest, ConcurrentCountsAddUp) {
  // More threads than the request counters have shards: shards are shared
  // then, and every total must still be exact.
  constexpr int kThreads = 20, kEach = 5000;
  Metrics m;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        m.CountRequest(Endpoint::kAuthorize, 200, std::chrono::microseconds(i % 3000));
        m.CountDecision(i % 2 ? "a.one" : "a.two", i % 3 == 0);
        m.CountTokenCheck(i % 4 == 0 ? TokenCheck::kUnknown : TokenCheck::kActive);
      }
    });
  }
  for (auto& t : ts) t.join();
  // What one thread counted, from the same loop.
  uint64_t one_allow = 0, one_deny = 0, under_100us = 0, sum_us = 0;
  for (int i = 0; i < kEach; ++i) {
    if (i % 2) (i % 3 == 0 ? one_allow : one_deny) += 1;
    if (i % 3000 <= 100) ++under_100us;
    sum_us += i % 3000;
  }
  EXPECT_EQ(m.requests(Endpoint::kAuthorize, 200), uint64_t{kThreads} * kEach);
  EXPECT_EQ(m.decisions("a.one", true), kThreads * one_allow);
  EXPECT_EQ(m.decisions("a.one", false), kThreads * one_deny);
  EXPECT_EQ(m.decisions("a.two", true) + m.decisions("a.two", false), uint64_t{kThreads} * kEach / 2);
  const std::string text = m.Render();
  auto has = [&text](const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
  };
  const std::string total = std::to_string(kThreads * kEach);
  EXPECT_TRUE(has("gatehouse_http_request_duration_seconds_count{endpoint=\"authorize\"} " + total)) << text;
  EXPECT_TRUE(has("gatehouse_http_request_duration_seconds_bucket{endpoint=\"authorize\",le=\"+Inf\"} " + total));
  EXPECT_TRUE(has("gatehouse_http_request_duration_seconds_bucket{endpoint=\"authorize\",le=\"0.0001\"} " +
                  std::to_string(kThreads * under_100us)));
  char sum[64];
  std::snprintf(sum, sizeof sum, "%.9f", static_cast<double>(kThreads * sum_us) / 1e6);
  EXPECT_TRUE(has("gatehouse_http_request_duration_seconds_sum{endpoint=\"authorize\"} " + std::string(sum)));
  EXPECT_TRUE(has("gatehouse_http_requests_total{endpoint=\"authorize\",code=\"200\"} " + total));
  EXPECT_TRUE(has("gatehouse_token_checks_total{result=\"unknown\"} " + std::to_string(kThreads * kEach / 4)));
  EXPECT_TRUE(has("gatehouse_token_checks_total{result=\"active\"} " + std::to_string(kThreads * kEach * 3 / 4)));
  EXPECT_TRUE(has("gatehouse_decisions_total{action=\"a.one\",outcome=\"allow\"} " +
                  std::to_string(kThreads * one_allow)));
  EXPECT_NE(text.find("le=\"0.00005\""), std::string::npos) << text;
  // Every sample line is NAME{labels} VALUE or NAME VALUE.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.starts_with("#")) continue;
    EXPECT_NE(line.rfind(' '), std::string::npos) << line;
  }
}

TEST(MetricsTest, ActionTableOverflowGoesToOther) {
  Metrics m;
  for (int i = 0; i < Metrics::kMaxActions + 10; ++i)
    m.CountDecision("action." + std::to_string(i), true);
  EXPECT_NE(m.Render().find("gatehouse_decisions_total{action=\"other\",outcome=\"allow\"} 10"),
            std::string::npos);
}

}  // namespace
}  // namespace gatehouse::sidecar
