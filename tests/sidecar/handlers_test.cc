// Handler tests: every endpoint and every bad input, without sockets.
#include "sidecar/handlers.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/stat.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/fixture.h"
#include "store/sqlite_store.h"

namespace gatehouse::sidecar {
namespace {

using gatehouse::testing::AddRule;
using gatehouse::testing::CreateDemoStore;
using gatehouse::testing::DefaultPolicyText;
using gatehouse::testing::DemoStore;
using gatehouse::testing::kDay;
using gatehouse::testing::kNow;
using gatehouse::testing::TempDir;
using gatehouse::testing::WriteAll;
using nlohmann::json;

constexpr int64_t kNowMs = kNow * 1000 + 775;

class HandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    demo_ = CreateDemoStore(dir_.File("gatehouse.db"));
    ASSERT_FALSE(demo_.tokens.empty());
    WriteAll(dir_.File("policy.yaml"), DefaultPolicyText());
    StateOptions o;
    o.store_path = dir_.File("gatehouse.db");
    o.policy_path = dir_.File("policy.yaml");
    o.clock = &clock_;
    o.policy_poll_ms = 0;
    o.sweep_interval_s = 0;
    auto state = State::Open(o, &metrics_, [this](LogLevel, std::string_view line) {
      std::lock_guard<std::mutex> lock(logs_mu_);
      logs_.emplace_back(line);
    });
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    state_ = std::move(state).value();
    HandlerOptions ho;
    ho.now_ms = [] { return kNowMs; };
    handlers_ = std::make_unique<Handlers>(state_.get(), nullptr, ho);
  }

  HttpReply Call(const std::string& method, const std::string& path, const std::string& body = "",
                 const std::string& authorization = "",
                 const std::string& content_type = "application/json") {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.target = path;
    r.body = body;
    r.authorization = authorization;
    r.content_type = content_type;
    return handlers_->Handle(r);
  }
  HttpReply Post(const std::string& path, const json& body, const std::string& authorization = "") {
    return Call("POST", path, body.dump(), authorization);
  }
  HttpReply Authorize(const std::string& token, const std::string& action,
                      const std::string& workspace) {
    return Post("/v1/authorize", {{"token", token}, {"action", action}, {"workspace", workspace}});
  }
  HttpReply ForwardAuth(const std::string& authorization, const std::string& method,
                        const std::string& uri) {
    HttpRequest r;
    r.method = "GET";
    r.path = r.target = "/v1/forward-auth";
    r.authorization = authorization;
    r.original_method = method;
    r.original_uri = uri;
    return handlers_->Handle(r);
  }
  static json Json(const HttpReply& r) {
    json j = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
  }
  std::string Token(const std::string& api_user) { return demo_.tokens.at(api_user).secret; }
  std::string Bearer(const std::string& api_user) { return "Bearer " + Token(api_user); }
  std::unique_ptr<Store> Writer() {
    auto s = OpenSqliteStore(demo_.path);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::string Header(const HttpReply& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }

  TempDir dir_;
  DemoStore demo_;
  FakeClock clock_{kNow};
  Metrics metrics_;
  std::mutex logs_mu_;
  std::vector<std::string> logs_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Handlers> handlers_;
};

// Every bad-token shape, by name, for tests that check all of them.
std::vector<std::pair<std::string, std::string>> BadTokens(const std::string& good) {
  std::string wrong_checksum = good;
  wrong_checksum.back() = wrong_checksum.back() == 'A' ? 'B' : 'A';
  std::string flipped = good;
  flipped[10] = flipped[10] == 'x' ? 'y' : 'x';
  auto never = MintToken();
  return {
      {"empty", ""},
      {"garbage", "not-a-token"},
      {"prefix only", "gat_"},
      {"truncated", good.substr(0, good.size() - 1)},
      {"extended", good + "0"},
      {"wrong checksum", wrong_checksum},
      {"typo in body", flipped},
      {"lower-cased",
       [&] {
         std::string s = good;
         for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
         return s;
       }()},
      {"never issued", never.ok() ? never->secret : "x"},
      {"token id instead of secret", "tok_AAAAAAAAAAAA"},
      {"with NUL", std::string("gat_\0abc", 8)},
      {"huge", std::string(10000, 'a')},
  };
}

// ---------------------------------------------------------------- authorize

TEST_F(HandlersTest, ContributorTokenExportsFromDevelopment) {
  HttpReply r = Authorize(Token("dev-exporter"), "project.export", "Marketing-Development");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = Json(r);
  EXPECT_EQ(j["allow"], true);
  ASSERT_FALSE(j["reasons"].empty());
  EXPECT_EQ(j["reasons"][0]["rule"], "contributors-and-up");
  EXPECT_EQ(j["reasons"][0]["effect"], "allow");
  EXPECT_EQ(j["principal"], json({{"kind", "api_user"},
                                  {"name", "dev-exporter"},
                                  {"org_role", "viewer"},
                                  {"workspace_role", "contributor"}}));
  EXPECT_EQ(j["policy"]["name"], "api-tokens");
  EXPECT_EQ(j["policy"]["revision"], state_->policy()->revision());
  EXPECT_TRUE(j["policy"]["revision"].get<std::string>().starts_with("sha256:"));
  EXPECT_FALSE(j.contains("errors"));
  EXPECT_EQ(metrics_.decisions("project.export", true), 1u);
}

TEST_F(HandlersTest, ContributorTokenImportsIntoProduction) {
  HttpReply r = Authorize(Token("prod-importer"), "project.import", "Marketing-Production");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Json(r)["allow"], true);
}

TEST_F(HandlersTest, ViewerImportDeniedWithTheSeedsPreconditionError) {
  HttpReply r = Authorize(Token("prod-viewer"), "project.import", "Marketing-Production");
  ASSERT_EQ(r.status, 200);
  json j = Json(r);
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["reasons"][0]["rule"], "contributors-and-up");
  EXPECT_EQ(j["reasons"][0]["effect"], "deny");
  EXPECT_EQ(j["reasons"][0]["message"],
            "Importing a project needs workspace role contributor or higher; viewers cannot import "
            "projects.");
  EXPECT_EQ(j["principal"]["workspace_role"], "viewer");
  ASSERT_EQ(j["errors"].size(), 1u);
  // The seed page's error, field by field.
  const json expected = json::parse(R"({
    "message": "Something unexpected happened. If this problem persists, please contact support@tray.io.",
    "path": ["importProject"],
    "locations": [{"line": 2, "column": 3}],
    "extensions": {"name": "PreconditionError", "code": "internal_error", "time_thrown": "2026-01-01T00:00:00.775Z"}
  })");
  EXPECT_EQ(j["errors"][0], expected);
  EXPECT_FALSE(j.contains("data"));  // /v1/authorize is a decision, not a GraphQL response
  EXPECT_EQ(metrics_.decisions("project.import", false), 1u);
}

TEST_F(HandlersTest, ViewerExportDeniedWithExportProjectError) {
  json j = Json(Authorize(Token("prod-viewer"), "project.export", "Marketing-Production"));
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["errors"][0]["path"], json::array({"exportProject"}));
}

TEST_F(HandlersTest, TokenBoundToAnotherWorkspaceIsDenied) {
  json j = Json(Authorize(Token("dev-exporter"), "project.import", "Marketing-Production"));
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["reasons"][0]["rule"], "own-workspace");
  EXPECT_EQ(j["principal"]["workspace_role"], "none");
  EXPECT_EQ(j["errors"][0]["extensions"]["name"], "PreconditionError");
}

TEST_F(HandlersTest, TokenUseDeniesOtherWorkspacesEvenForActionsViewersMayDo) {
  // token.use itself: the own workspace yes, another no.
  EXPECT_EQ(Json(Authorize(Token("prod-viewer"), "token.use", "Marketing-Production"))["allow"],
            true);
  EXPECT_EQ(Json(Authorize(Token("prod-viewer"), "token.use", "Marketing-Development"))["allow"],
            false);
}

TEST_F(HandlersTest, OrganizationAdminTokenWorksInEveryWorkspace) {
  for (const char* ws : {"Marketing-Development", "Marketing-Production"}) {
    json j = Json(Authorize(Token("org-bot"), "project.import", ws));
    EXPECT_EQ(j["allow"], true) << ws << ": " << j.dump();
  }
}

TEST_F(HandlersTest, BearerHeaderCarriesTheToken) {
  HttpReply r =
      Post("/v1/authorize", {{"action", "project.import"}, {"workspace", "Marketing-Production"}},
           Bearer("prod-importer"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json(r)["allow"], true);
  // Scheme is case-insensitive; extra spaces are fine.
  r = Post("/v1/authorize", {{"action", "project.import"}, {"workspace", "Marketing-Production"}},
           "bearer   " + Token("prod-importer") + "  ");
  EXPECT_EQ(Json(r)["allow"], true);
}

TEST_F(HandlersTest, BodyTokenWinsOverHeader) {
  HttpReply r = Post("/v1/authorize",
                     {{"token", Token("prod-viewer")},
                      {"action", "project.import"},
                      {"workspace", "Marketing-Production"}},
                     Bearer("prod-importer"));
  EXPECT_EQ(Json(r)["allow"], false);
  EXPECT_EQ(Json(r)["principal"]["name"], "prod-viewer");
}

TEST_F(HandlersTest, UserPrincipal) {
  json j = Json(Post("/v1/authorize", {{"user", "owner@demo.test"},
                                       {"action", "token.create"},
                                       {"workspace", "Marketing-Development"}}));
  EXPECT_EQ(j["allow"], true);
  EXPECT_EQ(j["principal"]["kind"], "user");
  EXPECT_EQ(j["principal"]["org_role"], "owner");
  // alice is a workspace admin, but the toggle is off.
  j = Json(Post("/v1/authorize", {{"user", "ALICE@demo.test"},
                                  {"action", "token.create"},
                                  {"workspace", "Marketing-Development"}}));
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["principal"]["workspace_role"], "admin");
  EXPECT_EQ(j["reasons"][0]["rule"], "ws-admins-with-toggle");
}

TEST_F(HandlersTest, UnknownUserIsADenyNotAnError) {
  HttpReply r = Post("/v1/authorize", {{"user", "mallory@evil.test"},
                                       {"action", "project.import"},
                                       {"workspace", "Marketing-Production"}});
  ASSERT_EQ(r.status, 200);
  json j = Json(r);
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["reasons"][0]["rule"], "unknown-user");
  EXPECT_TRUE(j["principal"].is_null());
  EXPECT_FALSE(j.contains("errors"));
}

TEST_F(HandlersTest, UnknownWorkspaceIsADeny) {
  json j = Json(Authorize(Token("org-bot"), "project.import", "No-Such-Workspace"));
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["reasons"][0]["rule"], "unknown-workspace");
}

TEST_F(HandlersTest, RequestParameters) {
  auto create = [&](const json& params) {
    return Post("/v1/authorize", {{"user", "owner@demo.test"},
                                  {"action", "token.create"},
                                  {"workspace", "Marketing-Development"},
                                  {"params", params}});
  };
  EXPECT_EQ(Json(create({{"lifetime_seconds", "30d"}}))["allow"], true);
  EXPECT_EQ(Json(create({{"lifetime_seconds", 3600}}))["allow"], true);
  json j = Json(create({{"lifetime_seconds", "400d"}}));
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["reasons"][0]["rule"], "tokens.max_lifetime");
  // Undeclared parameters are ignored, whatever their value.
  EXPECT_EQ(Json(create({{"color", "blue"}, {"flag", true}}))["allow"], true);
  // A declared parameter with a value of the wrong kind is a bad request.
  HttpReply r = create({{"lifetime_seconds", "forever"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Json(r)["error"].get<std::string>().find("lifetime_seconds"), std::string::npos);
  // A lifetime that is not positive is a bad request, never an allow (issue 10, item 4).
  for (const json& v : {json(-1), json(0), json(INT64_MIN), json("-1"), json("0s")}) {
    HttpReply bad = create({{"lifetime_seconds", v}});
    EXPECT_EQ(bad.status, 400) << v.dump() << " -> " << bad.body;
  }
}

TEST_F(HandlersTest, MalformedAuthorizeRequestsAre400) {
  const std::string t = Token("prod-importer");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"invalid JSON", "{\"token\": "},
      {"not JSON", "token=abc"},
      {"empty body", ""},
      {"array", "[]"},
      {"string", "\"hello\""},
      {"number", "42"},
      {"null", "null"},
      {"trailing garbage", R"({"token":"x","action":"project.import","workspace":"w"} x)"},
      {"token is a number", R"({"token":42,"action":"project.import","workspace":"w"})"},
      {"token is null", R"({"token":null,"action":"project.import","workspace":"w"})"},
      {"user is an object", R"({"user":{},"action":"project.import","workspace":"w"})"},
      {"action is a number", R"({"token":"x","action":1,"workspace":"w"})"},
      {"action is an array", R"({"token":"x","action":["project.import"],"workspace":"w"})"},
      {"workspace is a bool", R"({"token":"x","action":"project.import","workspace":true})"},
      {"params is an array",
       R"({"token":"x","action":"project.import","workspace":"w","params":[]})"},
      {"param is a float",
       R"({"token":"x","action":"token.create","workspace":"w","params":{"lifetime_seconds":1.5}})"},
      {"param is null",
       R"({"token":"x","action":"token.create","workspace":"w","params":{"lifetime_seconds":null}})"},
      {"param is an object",
       R"({"token":"x","action":"token.create","workspace":"w","params":{"a":{}}})"},
      {"missing action", R"({"token":"x","workspace":"w"})"},
      {"missing workspace", R"({"token":"x","action":"project.import"})"},
      {"empty action", R"({"token":"x","action":"","workspace":"w"})"},
      {"empty workspace", R"({"token":"x","action":"project.import","workspace":""})"},
      {"unknown action", R"({"token":"x","action":"project.delete","workspace":"w"})"},
      {"both token and user",
       R"({"token":"x","user":"owner@demo.test","action":"project.import","workspace":"w"})"},
      {"no principal", R"({"action":"project.import","workspace":"w"})"},
      {"invalid UTF-8", "{\"token\":\"\xff\",\"action\":\"project.import\",\"workspace\":\"w\"}"},
      {"deep nesting", std::string(100, '[') + std::string(100, ']')},
      {"deep nesting in params", R"({"action":"project.import","workspace":"w","params":{"a":)" +
                                     std::string(50, '[') + std::string(50, ']') + "}}"},
  };
  for (const auto& [name, body] : cases) {
    HttpReply r = Call("POST", "/v1/authorize", body);
    EXPECT_EQ(r.status, 400) << name << ": " << r.body;
    json j = Json(r);
    ASSERT_TRUE(j.is_object()) << name;
    EXPECT_TRUE(j["error"].is_string()) << name << ": " << r.body;
    EXPECT_FALSE(j["error"].get<std::string>().empty()) << name;
  }
  EXPECT_GE(metrics_.requests(Endpoint::kAuthorize, 400), cases.size());
}

// A question is refused as malformed in one step only (ParseQuestion), with
// its words, and everything it accepts is decided, never refused later:
// generated questions — known, unknown and unsafe actions and workspace
// names, declared and undeclared parameters with valid and invalid values,
// token lifetimes of every sign — asked by a user and by a token.
TEST_F(HandlersTest, MalformedIsDecidedInOneStepWithTheSameWords) {
  const PolicyPtr policy = state_->policy();
  auto snapshot = state_->Fresh();
  ASSERT_TRUE(snapshot.ok());
  const Directory& dir = *(*snapshot)->directory;
  std::vector<std::string> actions = {"project.delete", "", "Project.Import", "token.create ",
                                      "x\u0000y"};
  for (const ActionInfo& a : policy->actions()) actions.push_back(a.name);
  const std::vector<std::string> workspaces = {
      "Marketing-Production", "marketing-development", "Nowhere", "", "tab\there", "a\u200bb",
      std::string(300, 'w'), "Organization"};
  const std::vector<std::string> names = {"lifetime_seconds", "role", "org_role", "workspace_role",
                                          "enabled", "undeclared"};
  const std::vector<std::string> values = {"30d", "90s", "0", "-5", "+3", "1e3", "", "true", "no",
                                           "viewer", "owner", "admin", "9223372036854775807",
                                           "99999999999999999999", std::string(200, '7')};
  const std::vector<std::optional<std::string>> users = {"owner@demo.test", "nobody@demo.test",
                                                         std::nullopt};
  std::mt19937 rng(9);
  int malformed = 0, decided = 0;
  for (int i = 0; i < 600; ++i) {
    const std::string& action = actions[rng() % actions.size()];
    const std::string& ws = workspaces[rng() % workspaces.size()];
    std::vector<std::pair<std::string, std::string>> params;
    for (int k = static_cast<int>(rng() % 3); k > 0; --k)
      params.emplace_back(names[rng() % names.size()], values[rng() % values.size()]);
    const std::optional<std::string> user = users[rng() % users.size()];
    json body = {{"action", action}, {"workspace", ws}};
    if (user) body["user"] = *user;
    else body["token"] = demo_.tokens.at("prod-importer").secret;
    if (!params.empty()) {
      body["params"] = json::object();
      for (const auto& [n, v] : params) body["params"][n] = v;
    }
    // JSON objects keep one value per name: the last one written.
    std::vector<std::pair<std::string, std::string>> sent;
    const json sent_params = body.value("params", json::object());
    for (auto it = sent_params.begin(); it != sent_params.end(); ++it)
      sent.emplace_back(it.key(), it.value().get<std::string>());
    const std::string where = body.dump();
    const HttpReply r = Post("/v1/authorize", body);
    const auto q = ParseQuestion(*policy, action, ws, user, sent);
    if (!q.ok()) {
      ++malformed;
      EXPECT_EQ(r.status, 400) << where << ": " << r.body;
      EXPECT_EQ(Json(r)["error"], q.status().message()) << where;
      continue;
    }
    ++decided;
    ASSERT_EQ(r.status, 200) << where << ": " << r.body;
    if (!user || !dir.FindUser(*user)) continue;
    const AuthzOutcome o = gatehouse::Authorize(*policy, dir, *SubjectOfUser(dir, *user), *q);
    EXPECT_EQ(Json(r)["allow"], o.allow) << where;
    EXPECT_EQ(Json(r)["reasons"][0]["rule"], o.reasons.at(0).rule) << where;
  }
  EXPECT_GT(malformed, 100);
  EXPECT_GT(decided, 100);
}

TEST_F(HandlersTest, UnknownActionIs400EvenForABadToken) {
  HttpReply r = Authorize("garbage", "project.delete", "Marketing-Production");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Json(r)["error"].get<std::string>().find("unknown action 'project.delete'"),
            std::string::npos);
}

TEST_F(HandlersTest, NonBearerAuthorizationWithoutBodyTokenIs400) {
  for (const std::string auth :
       {"", "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearertoken"}) {
    HttpReply r = Post("/v1/authorize",
                       {{"action", "project.import"}, {"workspace", "Marketing-Production"}}, auth);
    EXPECT_EQ(r.status, 400) << "'" << auth << "'";
  }
}

TEST_F(HandlersTest, EveryBadTokenIsADenyNeverAnError) {
  for (const auto& [name, token] : BadTokens(Token("prod-importer"))) {
    HttpReply r = Authorize(token, "project.import", "Marketing-Production");
    ASSERT_EQ(r.status, 200) << name << ": " << r.body;
    json j = Json(r);
    EXPECT_EQ(j["allow"], false) << name;
    EXPECT_EQ(j["reasons"][0]["rule"], "inactive-token") << name;
    EXPECT_TRUE(j["principal"].is_null()) << name;
    // Nothing of the presented token comes back.
    if (token.size() > 8) {
      EXPECT_EQ(r.body.find(token), std::string::npos) << name;
    }
  }
}

TEST_F(HandlersTest, ExpiredTokenIsDeniedAtOnceWithoutASweep) {
  EXPECT_EQ(Json(Authorize(Token("expiring"), "project.import", "Marketing-Production"))["allow"],
            true);
  clock_.Advance(59);
  EXPECT_EQ(Json(Authorize(Token("expiring"), "project.import", "Marketing-Production"))["allow"],
            true);
  clock_.Advance(1);  // now == expires_at: no longer valid
  json j = Json(Authorize(Token("expiring"), "project.import", "Marketing-Production"));
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["reasons"][0]["rule"], "inactive-token");
}

TEST_F(HandlersTest, RevokedTokenIsRefusedByTheVeryNextRequest) {
  EXPECT_EQ(
      Json(Authorize(Token("prod-importer"), "project.import", "Marketing-Production"))["allow"],
      true);
  auto writer = Writer();
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->DeleteToken(demo_.tokens["prod-importer"].id).ok());
  EXPECT_EQ(
      Json(Authorize(Token("prod-importer"), "project.import", "Marketing-Production"))["allow"],
      false);
  // The other token of the same API user still works.
  EXPECT_EQ(Json(Authorize(Token("expiring"), "project.import", "Marketing-Production"))["allow"],
            true);
}

TEST_F(HandlersTest, TokenOfADeletedApiUserIsRefused) {
  EXPECT_EQ(Json(Authorize(Token("doomed"), "project.import", "Marketing-Production"))["allow"],
            true);
  auto writer = Writer();
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->DeleteApiUser(demo_.api_users["doomed"]).ok());
  EXPECT_EQ(Json(Authorize(Token("doomed"), "project.import", "Marketing-Production"))["allow"],
            false);
}

TEST_F(HandlersTest, NewTokenAndPromotionSeenByTheNextRequest) {
  auto writer = Writer();
  ASSERT_TRUE(writer);
  auto fresh = gatehouse::testing::AddToken(*writer, demo_.api_users["prod-viewer"], "new", kNow,
                                            kNow + kDay);
  EXPECT_EQ(Json(Authorize(fresh.secret, "token.use", "Marketing-Production"))["allow"], true);
  EXPECT_EQ(Json(Authorize(fresh.secret, "project.import", "Marketing-Production"))["allow"],
            false);
  ASSERT_TRUE(writer->SetApiUserWorkspaceRole(demo_.api_users["prod-viewer"], "contributor").ok());
  EXPECT_EQ(Json(Authorize(fresh.secret, "project.import", "Marketing-Production"))["allow"], true);
}

TEST_F(HandlersTest, RevocationSeenByEveryThread) {
  // Each thread has its own connection; each must notice the commit.
  std::vector<std::thread> threads;
  std::atomic<int> allowed{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (Json(Authorize(Token("prod-importer"), "project.import",
                         "Marketing-Production"))["allow"] == true)
        ++allowed;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed, 4);
  auto writer = Writer();
  ASSERT_TRUE(writer->DeleteToken(demo_.tokens["prod-importer"].id).ok());
  threads.clear();
  std::atomic<int> denied{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (Json(Authorize(Token("prod-importer"), "project.import",
                         "Marketing-Production"))["allow"] == false)
        ++denied;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(denied, 4);
}

TEST_F(HandlersTest, WrongMethodsAndUnknownPaths) {
  EXPECT_EQ(Call("GET", "/v1/authorize").status, 405);
  HttpReply r = Call("PUT", "/v1/tokens/verify");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Header(r, "Allow"), "POST");
  EXPECT_EQ(Call("POST", "/healthz").status, 405);
  EXPECT_EQ(Call("GET", "/v1/nothing").status, 404);
  EXPECT_EQ(Call("GET", "/").status, 404);
  EXPECT_EQ(Call("GET", "/v1/forward-authx").status, 404);
}

// ---------------------------------------------------------------- batch

TEST_F(HandlersTest, BatchAnswersInOrder) {
  json body = {
      {"checks",
       {{{"token", Token("prod-importer")},
         {"action", "project.import"},
         {"workspace", "Marketing-Production"}},
        {{"token", Token("prod-viewer")},
         {"action", "project.import"},
         {"workspace", "Marketing-Production"}},
        {{"token", "garbage"}, {"action", "project.export"}, {"workspace", "Marketing-Production"}},
        {{"user", "owner@demo.test"}, {"action", "audit.read"}, {"workspace", "Organization"}},
        {{"action", "project.export"}, {"workspace", "Marketing-Development"}}}}};
  HttpReply r = Post("/v1/authorize/batch", body, Bearer("dev-exporter"));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = Json(r);
  ASSERT_EQ(j["results"].size(), 5u);
  EXPECT_EQ(j["results"][0]["allow"], true);
  EXPECT_EQ(j["results"][1]["allow"], false);
  EXPECT_EQ(j["results"][1]["errors"][0]["path"][0], "importProject");
  EXPECT_EQ(j["results"][2]["allow"], false);
  EXPECT_EQ(j["results"][3]["allow"], true);
  EXPECT_EQ(j["results"][4]["allow"], true);  // the header's token
  EXPECT_EQ(j["results"][4]["principal"]["name"], "dev-exporter");
}

TEST_F(HandlersTest, BatchBadInput) {
  EXPECT_EQ(Json(Post("/v1/authorize/batch", {{"checks", json::array()}}))["results"],
            json::array());
  const std::vector<std::string> bad = {
      "",
      "[]",
      "{}",
      R"({"checks": {}})",
      R"({"checks": [1]})",
      R"({"checks": [{"token": "x"}]})",
      R"({"checks": [{"token":"x","action":"project.nope","workspace":"w"}]})",
  };
  for (const std::string& body : bad) {
    HttpReply r = Call("POST", "/v1/authorize/batch", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
  }
  HttpReply r = Call(
      "POST", "/v1/authorize/batch",
      R"({"checks": [{"token":"x","action":"project.import","workspace":"w"}, {"token":"x"}]})");
  EXPECT_NE(Json(r)["error"].get<std::string>().find("checks[1]"), std::string::npos) << r.body;
  json many = {{"checks", json::array()}};
  for (size_t i = 0; i <= kMaxBatchChecks; ++i) {
    many["checks"].push_back({{"token", "x"}, {"action", "project.import"}, {"workspace", "w"}});
  }
  EXPECT_EQ(Post("/v1/authorize/batch", many).status, 400);
}

// ---------------------------------------------------------------- verify

TEST_F(HandlersTest, VerifyActiveTokenGivesTheIntrospectionObject) {
  HttpReply r = Post("/v1/tokens/verify", {{"token", Token("prod-importer")}});
  ASSERT_EQ(r.status, 200);
  json j = Json(r);
  const json expected = {{"active", true},
                         {"token_type", "api_token"},
                         {"sub", std::to_string(demo_.api_users["prod-importer"])},
                         {"username", "prod-importer"},
                         {"workspace", "Marketing-Production"},
                         {"workspace_role", "contributor"},
                         {"org_role", "viewer"},
                         {"token_id", demo_.tokens["prod-importer"].id},
                         {"iat", kNow - kDay},
                         {"exp", kNow + 30 * kDay}};
  EXPECT_EQ(j, expected);
}

TEST_F(HandlersTest, VerifyAcceptsHeaderAndForm) {
  HttpReply r = Call("POST", "/v1/tokens/verify", "", Bearer("prod-viewer"));
  EXPECT_EQ(Json(r)["username"], "prod-viewer");
  r = Call("POST", "/v1/tokens/verify",
           "token=" + Token("prod-viewer") + "&token_type_hint=access_token", "",
           "application/x-www-form-urlencoded");
  EXPECT_EQ(Json(r)["username"], "prod-viewer");
  // Percent-encoded form values are decoded.
  std::string encoded = Token("prod-viewer");
  encoded.replace(3, 1, "%5F");  // '_'
  r = Call("POST", "/v1/tokens/verify", "token=" + encoded, "",
           "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(Json(r)["active"], true) << r.body;
  // curl -d '{"token": ...}' sends JSON labelled as a form: it is read as JSON.
  r = Call("POST", "/v1/tokens/verify", json({{"token", Token("prod-viewer")}}).dump(), "",
           "application/x-www-form-urlencoded");
  EXPECT_EQ(Json(r)["active"], true) << r.body;
}

TEST_F(HandlersTest, VerifyInactiveIsExactlyActiveFalse) {
  std::vector<std::pair<std::string, std::string>> cases = BadTokens(Token("prod-importer"));
  for (const auto& [name, token] : cases) {
    HttpReply r = Post("/v1/tokens/verify", {{"token", token}});
    EXPECT_EQ(r.status, 200) << name;
    EXPECT_EQ(r.body, "{\"active\":false}") << name;
    EXPECT_EQ(Json(r), json({{"active", false}}));
  }
  // Expired.
  clock_.Advance(60);
  EXPECT_EQ(Post("/v1/tokens/verify", {{"token", Token("expiring")}}).body, "{\"active\":false}");
  // Revoked, and of a deleted API user.
  auto writer = Writer();
  ASSERT_TRUE(writer->DeleteToken(demo_.tokens["prod-importer"].id).ok());
  ASSERT_TRUE(writer->DeleteApiUser(demo_.api_users["doomed"]).ok());
  EXPECT_EQ(Post("/v1/tokens/verify", {{"token", Token("prod-importer")}}).body,
            "{\"active\":false}");
  EXPECT_EQ(Post("/v1/tokens/verify", {{"token", Token("doomed")}}).body, "{\"active\":false}");
  EXPECT_EQ(Post("/v1/tokens/verify", {{"token", Token("prod-viewer")}}).status, 200);
  EXPECT_EQ(Json(Post("/v1/tokens/verify", {{"token", Token("prod-viewer")}}))["active"], true);
}

TEST_F(HandlersTest, VerifyMalformedRequestsAre400) {
  for (const std::string body :
       {"{", "[]", "42", R"({"token": 42})", R"({"token": null})", R"({"token": ["x"]})"}) {
    HttpReply r = Call("POST", "/v1/tokens/verify", body);
    EXPECT_EQ(r.status, 400) << body;
  }
  // No token anywhere.
  EXPECT_EQ(Call("POST", "/v1/tokens/verify", "").status, 400);
  EXPECT_EQ(Call("POST", "/v1/tokens/verify", "{}").status, 400);
  EXPECT_EQ(Call("POST", "/v1/tokens/verify", "", "Basic dXNlcjpwYXNz").status, 400);
  EXPECT_EQ(
      Call("POST", "/v1/tokens/verify", "other=1", "", "application/x-www-form-urlencoded").status,
      400);
  EXPECT_EQ(Call("POST", "/v1/tokens/verify", "token=%zz", "", "application/x-www-form-urlencoded")
                .status,
            400);
  EXPECT_EQ(
      Call("POST", "/v1/tokens/verify", "token=%4", "", "application/x-www-form-urlencoded").status,
      400);
}

// ---------------------------------------------------------------- forward-auth

TEST_F(HandlersTest, ForwardAuthAllowsWithIdentityHeaders) {
  HttpReply r = ForwardAuth(Bearer("dev-exporter"), "POST",
                            "/workspaces/Marketing-Development/projects/p1/export");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Header(r, "X-Gatehouse-Subject"), "dev-exporter");
  EXPECT_EQ(Header(r, "X-Gatehouse-Workspace"), "Marketing-Development");
  EXPECT_EQ(Header(r, "X-Gatehouse-Role"), "contributor");
  EXPECT_EQ(Header(r, "X-Gatehouse-Token-Id"), demo_.tokens["dev-exporter"].id);
  EXPECT_EQ(Header(r, "X-Gatehouse-Action"), "project.export");
}

TEST_F(HandlersTest, ForwardAuthViewerGets403WithTheGraphqlBody) {
  HttpReply r = ForwardAuth(Bearer("prod-viewer"), "POST",
                            "/workspaces/Marketing-Production/projects/p1/import");
  ASSERT_EQ(r.status, 403);
  json j = Json(r);
  EXPECT_TRUE(j.contains("data"));
  EXPECT_TRUE(j["data"].is_null());
  EXPECT_EQ(
      j["errors"][0]["message"],
      "Something unexpected happened. If this problem persists, please contact support@tray.io.");
  EXPECT_EQ(j["errors"][0]["path"], json::array({"importProject"}));
  EXPECT_EQ(j["errors"][0]["locations"], json::parse(R"([{"line":2,"column":3}])"));
  EXPECT_EQ(j["errors"][0]["extensions"]["name"], "PreconditionError");
  EXPECT_EQ(j["errors"][0]["extensions"]["code"], "internal_error");
  EXPECT_EQ(j["errors"][0]["extensions"]["time_thrown"], "2026-01-01T00:00:00.775Z");
  EXPECT_EQ(j["allow"], false);
}

TEST_F(HandlersTest, ForwardAuthWorkspaceFromThePathDecidesBinding) {
  HttpReply r = ForwardAuth(Bearer("dev-exporter"), "POST",
                            "/workspaces/Marketing-Production/projects/p1/import");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Json(r)["reasons"][0]["rule"], "own-workspace");
  // Percent-encoded workspace names and query strings.
  r = ForwardAuth(Bearer("prod-importer"), "post",
                  "/workspaces/Marketing%2DProduction/projects/p%201/import?dry=1");
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(HandlersTest, ForwardAuthMissingOrBadTokenIs401) {
  const std::string uri = "/workspaces/Marketing-Production/projects/p1/import";
  for (const std::string auth : {"", "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token x"}) {
    HttpReply r = ForwardAuth(auth, "POST", uri);
    EXPECT_EQ(r.status, 401) << auth;
    EXPECT_TRUE(Header(r, "WWW-Authenticate").starts_with("Bearer")) << auth;
  }
  for (const auto& [name, token] : BadTokens(Token("prod-importer"))) {
    if (token.empty()) continue;
    HttpReply r = ForwardAuth("Bearer " + token, "POST", uri);
    EXPECT_EQ(r.status, 401) << name;
    EXPECT_NE(Header(r, "WWW-Authenticate").find("invalid_token"), std::string::npos) << name;
  }
  clock_.Advance(60);
  EXPECT_EQ(ForwardAuth(Bearer("expiring"), "POST", uri).status, 401);
}

TEST_F(HandlersTest, ForwardAuthNoOriginalUriOrUnmappedRouteIs403) {
  HttpReply r = ForwardAuth(Bearer("prod-importer"), "", "");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Json(r)["reasons"][0]["rule"], "no-original-uri");
  EXPECT_EQ(Json(r)["allow"], false);
  for (auto [method, uri] : {std::pair<const char*, const char*>{
                                 "GET", "/workspaces/Marketing-Production/projects/p1/import"},
                             {"POST", "/workspaces/Marketing-Production/projects/p1/delete"},
                             {"POST", "/"},
                             {"POST", "/workspaces/Marketing-Production/projects/p1/import/x"}}) {
    r = ForwardAuth(Bearer("prod-importer"), method, uri);
    EXPECT_EQ(r.status, 403) << method << " " << uri << ": " << r.body;
    EXPECT_EQ(Json(r)["reasons"][0]["rule"], "no-route") << uri;
  }
}

// The issue's bypass, and its class: targets a service could read as
// another path than the one matched are refused before any route is tried
// (tests/sidecar/forward_auth_test.cc checks the rule over generated targets).
TEST_F(HandlersTest, ForwardAuthRefusesUnsafeTargetsWithTheUnsafePathRule) {
  const char* const unsafe[] = {
      "/workspaces/Marketing-Development/projects/7/import%3F/../../../../Marketing-Production/"
      "projects/7/import",
      "/workspaces/Marketing-Development/projects/7/import%23/../../../../Marketing-Production/"
      "projects/7/import",
      "/workspaces/Marketing-Development/projects/..%2F..%2FMarketing-Production/import",
      "/workspaces/Marketing-Development/projects/%252E%252E/import",
      "/workspaces/Marketing-Development/projects/../import",
      "/workspaces/Marketing-Development/projects/%2e%2E/import",
      "/workspaces/Marketing-Development/projects/./import",
      "/workspaces/Marketing-Development;x=1/projects/7/export",
      "/workspaces/Marketing-Development/projects/7/export/",
      "/workspaces//projects/p1/import",
      "/workspaces/%zz/projects/p1/import",
      "/workspaces/Marketing-Development\\..\\Marketing-Production/projects/7/export",
      "/workspaces/Marketing%00Development/projects/7/export",
      "no-leading-slash",
      "http://sidecar/workspaces/Marketing-Development/projects/7/export",
  };
  for (const char* uri : unsafe) {
    HttpReply r = ForwardAuth(Bearer("dev-exporter"), "POST", uri);
    EXPECT_EQ(r.status, 403) << uri << ": " << r.body;
    EXPECT_EQ(Json(r)["reasons"][0]["rule"], "unsafe-path") << uri;
    EXPECT_EQ(Json(r)["allow"], false) << uri;
  }
  // 401 still comes first: an unsafe target tells a tokenless client nothing new.
  EXPECT_EQ(ForwardAuth("", "POST", unsafe[0]).status, 401);
  // The raw '?' form is the same request a service sees: the path ends at it.
  EXPECT_EQ(ForwardAuth(Bearer("dev-exporter"), "POST",
                        "/workspaces/Marketing-Development/projects/7/export?/../../../../"
                        "Marketing-Production/projects/7/export")
                .status,
            200);
}

TEST_F(HandlersTest, ForwardAuthTraefikHeaders) {
  HttpRequest req;
  req.method = "GET";
  req.path = req.target = "/v1/forward-auth";
  req.authorization = Bearer("prod-importer");
  req.forwarded_method = "POST";
  req.forwarded_uri = "/workspaces/Marketing-Production/projects/p1/import";
  EXPECT_EQ(handlers_->Handle(req).status, 200);
  req.authorization = Bearer("prod-viewer");
  EXPECT_EQ(handlers_->Handle(req).status, 403);
}

TEST_F(HandlersTest, ForwardAuthEnvoyPathMode) {
  HttpRequest req;
  req.method = "POST";
  req.target = "/v1/forward-auth/workspaces/Marketing-Production/projects/p1/import?x=1";
  req.path = "/v1/forward-auth/workspaces/Marketing-Production/projects/p1/import";
  req.authorization = Bearer("prod-importer");
  EXPECT_EQ(handlers_->Handle(req).status, 200);
  req.method = "GET";  // no route for GET
  EXPECT_EQ(handlers_->Handle(req).status, 403);
  req.method = "PATCH";
  EXPECT_EQ(handlers_->Handle(req).status, 403);
}

TEST_F(HandlersTest, ForwardAuthHeaderValuesNeverCarryControlCharacters) {
  // Names with CR/LF can only come from the store (a request path carrying
  // one is unsafe-path): make an API user with one, and a token for it.
  auto writer = Writer();
  NewApiUser nu;
  nu.workspace_id = demo_.workspaces["Marketing-Production"];
  nu.name = "evil\r\nX-Injected: 1";
  nu.org_role = "viewer";
  nu.workspace_role = "contributor";
  nu.created_by = "owner@demo.test";
  nu.created_at = kNow - kDay;
  auto au = writer->CreateApiUser(nu);
  ASSERT_TRUE(au.ok()) << au.status().ToString();
  auto token = gatehouse::testing::AddToken(*writer, au->id, "main", kNow - kDay, kNow + kDay);
  HttpReply r = ForwardAuth("Bearer " + token.secret, "POST",
                            "/workspaces/Marketing-Production/projects/p/import");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Header(r, "X-Gatehouse-Subject"), "evil??X-Injected: 1");
  for (const auto& [k, v] : r.headers) {
    EXPECT_EQ(v.find('\r'), std::string::npos) << k;
    EXPECT_EQ(v.find('\n'), std::string::npos) << k;
  }
  EXPECT_EQ(ForwardAuth("Bearer " + token.secret, "POST",
                        "/workspaces/Evil%0D%0AX-Injected:%201/projects/p/import")
                .status,
            403);
}

HttpRequest Source(const std::string& authorization) {
  HttpRequest r;
  r.method = "GET";
  r.path = r.target = "/v1/forward-auth";
  r.authorization = authorization;
  return r;
}

TEST_F(HandlersTest, ForwardAuthUnderAutoRefusesTwoSourcesWith400) {
  // The Traefik attack: a client adds its own X-Original-URI for a workspace
  // its token may use, to a request for another one.
  HttpRequest r = Source(Bearer("dev-exporter"));
  r.forwarded_method = "POST";
  r.forwarded_uri = "/workspaces/Marketing-Production/projects/7/import";
  r.original_method = "POST";
  r.original_uri = "/workspaces/Marketing-Development/projects/7/export";
  r.present = kHdrForwardedMethod | kHdrForwardedUri | kHdrOriginalMethod | kHdrOriginalUri;
  HttpReply reply = handlers_->Handle(r);
  EXPECT_EQ(reply.status, 400) << reply.body;
  EXPECT_TRUE(Json(reply)["error"].is_string());
  // And Envoy's path mode with a client's X-Forwarded-Uri.
  HttpRequest e = Source(Bearer("dev-exporter"));
  e.method = "POST";
  e.path = e.target = "/v1/forward-auth/workspaces/Marketing-Production/projects/7/import";
  e.forwarded_method = "POST";
  e.forwarded_uri = "/workspaces/Marketing-Development/projects/7/export";
  EXPECT_EQ(handlers_->Handle(e).status, 400);
  EXPECT_EQ(metrics_.requests(Endpoint::kForwardAuth, 400), 2u);
}

TEST_F(HandlersTest, ForwardAuthPinnedSourceReadsOnlyItsOwnHeaders) {
  HttpRequest r = Source(Bearer("dev-exporter"));
  r.original_method = "POST";
  r.original_uri = "/workspaces/Marketing-Production/projects/7/import";  // denied for dev-exporter
  r.forwarded_method = "POST";
  r.forwarded_uri = "/workspaces/Marketing-Development/projects/7/export";  // allowed
  HandlerOptions ho;
  ho.now_ms = [] { return kNowMs; };
  ho.forward_auth_source = ForwardAuthSource::kNginx;
  Handlers nginx(state_.get(), nullptr, ho);
  HttpReply reply = nginx.Handle(r);
  EXPECT_EQ(reply.status, 403) << "nginx mode must not read X-Forwarded-Uri";
  EXPECT_EQ(Json(reply)["reasons"][0]["rule"], "own-workspace");
  ho.forward_auth_source = ForwardAuthSource::kTraefik;
  Handlers traefik(state_.get(), nullptr, ho);
  r.original_uri = "/workspaces/Marketing-Development/projects/7/export";
  r.forwarded_uri = "/workspaces/Marketing-Production/projects/7/import";
  reply = traefik.Handle(r);
  EXPECT_EQ(reply.status, 403) << "traefik mode must not read X-Original-URI";
  EXPECT_EQ(Json(reply)["reasons"][0]["rule"], "own-workspace");
  r.forwarded_uri = "/workspaces/Marketing-Development/projects/7/export";
  EXPECT_EQ(traefik.Handle(r).status, 200);
  // Pinned Envoy: only the path under the prefix counts.
  ho.forward_auth_source = ForwardAuthSource::kEnvoy;
  Handlers envoy(state_.get(), nullptr, ho);
  EXPECT_EQ(Json(envoy.Handle(r))["reasons"][0]["rule"], "no-original-uri");
}

TEST_F(HandlersTest, ForwardAuthRepeatedSourceHeaderIs400) {
  HttpRequest r = Source(Bearer("dev-exporter"));
  r.original_method = "POST";
  r.original_uri = "/workspaces/Marketing-Development/projects/7/export";
  r.present = kHdrOriginalMethod | kHdrOriginalUri;
  ASSERT_EQ(handlers_->Handle(r).status, 200);
  r.repeated = kHdrOriginalUri;
  EXPECT_EQ(handlers_->Handle(r).status, 400);
  r.repeated = kHdrOriginalMethod;
  EXPECT_EQ(handlers_->Handle(r).status, 400);
}

TEST_F(HandlersTest, ForwardAuthAnswersEveryIdentityHeaderWithTheStoredWorkspaceName) {
  // The request spells the workspace its own way; the header has the store's.
  HttpReply r =
      ForwardAuth(Bearer("org-bot"), "POST", "/workspaces/MARKETING-production/projects/p1/import");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.headers.size(), kIdentityHeaders.size());
  for (size_t i = 0; i < kIdentityHeaders.size(); ++i) {
    EXPECT_EQ(r.headers[i].first, kIdentityHeaders[i]);
    EXPECT_FALSE(r.headers[i].second.empty()) << kIdentityHeaders[i];
  }
  EXPECT_EQ(Header(r, "X-Gatehouse-Workspace"), "Marketing-Production");
  EXPECT_EQ(Header(r, "X-Gatehouse-Subject"), "org-bot");
  EXPECT_EQ(Header(r, "X-Gatehouse-Role"), "none");  // not its own workspace
  EXPECT_EQ(Header(r, "X-Gatehouse-Org-Role"), "admin");
  EXPECT_EQ(Header(r, "X-Gatehouse-Token-Id"), demo_.tokens["org-bot"].id);
  EXPECT_EQ(Header(r, "X-Gatehouse-Action"), "project.import");
  for (std::string_view h : kIdentityHeaders) EXPECT_TRUE(h.starts_with("X-Gatehouse-")) << h;
}

// The token-check counters count every verification: forward-auth makes
// exactly one per request, whatever the outcome.
TEST_F(HandlersTest, ForwardAuthVerifiesTheTokenOnce) {
  auto active = [&] {
    const std::string m = metrics_.Render();
    const std::string key = "gatehouse_token_checks_total{result=\"active\"} ";
    const size_t at = m.find(key);
    return at == std::string::npos ? -1 : std::stoll(m.substr(at + key.size()));
  };
  const int64_t before = active();
  ASSERT_GE(before, 0);
  ASSERT_EQ(ForwardAuth(Bearer("dev-exporter"), "POST",
                        "/workspaces/Marketing-Development/projects/p1/export")
                .status,
            200);
  EXPECT_EQ(active(), before + 1) << "an allowed request verified the token more than once";
  ASSERT_EQ(ForwardAuth(Bearer("prod-viewer"), "POST",
                        "/workspaces/Marketing-Production/projects/p1/import")
                .status,
            403);
  EXPECT_EQ(active(), before + 2);
  ForwardAuth(Bearer("prod-viewer"), "POST", "/workspaces/a/projects/p1/delete");   // no route
  ForwardAuth(Bearer("prod-viewer"), "POST", "/workspaces/../projects/p1/import");  // unsafe
  EXPECT_EQ(active(), before + 4);
}

TEST_F(HandlersTest, CallerSecretGuardsEveryEndpointButHealthAndReadiness) {
  HandlerOptions ho;
  ho.now_ms = [] { return kNowMs; };
  ho.caller_secret = "s3cret-caller-value";
  Handlers h(state_.get(), nullptr, ho);
  auto call = [&](const std::string& method, const std::string& path, const std::string& body,
                  std::optional<std::string> secret, uint32_t repeated = 0) {
    HttpRequest r;
    r.method = method;
    r.path = r.target = path;
    r.body = body;
    r.authorization = Bearer("dev-exporter");
    r.original_method = "POST";
    r.original_uri = "/workspaces/Marketing-Development/projects/p1/export";
    if (secret) {
      r.caller_secret = *secret;
      r.present |= kHdrCaller;
    }
    r.repeated = repeated;
    return h.Handle(r);
  };
  const std::string authz =
      json({{"action", "project.export"}, {"workspace", "Marketing-Development"}}).dump();
  const std::string verify = json({{"token", Token("dev-exporter")}}).dump();
  struct Endpoint_ {
    std::string method, path, body;
  };
  const Endpoint_ guarded[] = {
      {"POST", "/v1/authorize", authz},
      {"POST", "/v1/authorize/batch", json({{"checks", json::array()}}).dump()},
      {"POST", "/v1/tokens/verify", verify},
      {"GET", "/v1/forward-auth", ""},
      {"GET", "/metrics", ""},
      {"GET", "/v1/nothing", ""},
  };
  const uint64_t rejected_before = metrics_.caller_rejected();
  int refusals = 0;
  for (const Endpoint_& e : guarded) {
    const std::optional<std::string> wrong[] = {std::nullopt,
                                                "",
                                                "s3cret-caller-valuE",
                                                "s3cret-caller-value ",
                                                "s3cret-caller-valu",
                                                "s3cret-caller-value-and-more",
                                                std::string("s3cret-caller-value\0", 20)};
    for (const auto& secret : wrong) {
      HttpReply r = call(e.method, e.path, e.body, secret);
      EXPECT_EQ(r.status, 401) << e.path << " with '" << secret.value_or("(none)") << "'";
      EXPECT_TRUE(Json(r)["error"].is_string()) << e.path;
      EXPECT_EQ(r.body.find("s3cret"), std::string::npos) << "the secret leaked: " << r.body;
      EXPECT_EQ(Header(r, "WWW-Authenticate"), "") << e.path;
      ++refusals;
    }
    // Two copies of the header: refused even when the first is right.
    EXPECT_EQ(call(e.method, e.path, e.body, "s3cret-caller-value", kHdrCaller).status, 401);
    ++refusals;
    HttpReply ok = call(e.method, e.path, e.body, "s3cret-caller-value");
    EXPECT_NE(ok.status, 401) << e.path << ": " << ok.body;
  }
  EXPECT_EQ(call("POST", "/v1/authorize", authz, "s3cret-caller-value").status, 200);
  EXPECT_EQ(call("GET", "/v1/forward-auth", "", "s3cret-caller-value").status, 200);
  EXPECT_EQ(metrics_.caller_rejected() - rejected_before, static_cast<uint64_t>(refusals));
  EXPECT_GE(metrics_.requests(Endpoint::kAuthorize, 401), 8u);
  // Liveness and readiness stay open.
  EXPECT_EQ(call("GET", "/healthz", "", std::nullopt).status, 200);
  EXPECT_EQ(call("GET", "/readyz", "", std::nullopt).status, 200);
  // Without a configured secret nobody is asked for one.
  EXPECT_EQ(Call("GET", "/metrics").status, 200);
}

// ---------------------------------------------------------------- health, readiness, metrics

TEST_F(HandlersTest, HealthAndReadiness) {
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  HttpReply r = Call("GET", "/readyz");
  EXPECT_EQ(r.status, 200);
  json j = Json(r);
  EXPECT_EQ(j["ready"], true);
  EXPECT_EQ(j["policy"]["revision"], state_->policy()->revision());
  EXPECT_EQ(j["tokens"], 6);
  EXPECT_EQ(Call("HEAD", "/healthz").status, 200);
}

TEST_F(HandlersTest, NotReadyAndFailClosedWhenTheStoreIsGoneOrDamaged) {
  auto refused = [&](const std::string& why) {
    HttpReply r = Authorize(Token("prod-importer"), "project.import", "Marketing-Production");
    EXPECT_EQ(r.status, 200) << why;
    EXPECT_EQ(Json(r)["allow"], false) << why;
    EXPECT_EQ(Json(r)["reasons"][0]["rule"], "store-unavailable") << why;
    EXPECT_EQ(Post("/v1/tokens/verify", {{"token", Token("prod-importer")}}).body,
              "{\"active\":false}")
        << why;
    EXPECT_EQ(ForwardAuth(Bearer("prod-importer"), "POST",
                          "/workspaces/Marketing-Production/projects/p/import")
                  .status,
              403)
        << why;
    EXPECT_FALSE(state_->store_ok()) << why;
  };
  auto serving = [&](const std::string& why) {
    EXPECT_EQ(Call("GET", "/readyz").status, 200) << why;
    EXPECT_EQ(
        Json(Authorize(Token("prod-importer"), "project.import", "Marketing-Production"))["allow"],
        true)
        << why;
  };
  serving("before");
  // The store file moved away: /readyz says so at once, and every check is refused.
  std::filesystem::rename(demo_.path, demo_.path + ".moved");
  EXPECT_EQ(Call("GET", "/readyz").status, 503);
  refused("moved away");
  std::filesystem::rename(demo_.path + ".moved", demo_.path);
  serving("moved back");

  // Damaged in place (same inode, the connections still open): refused too.
  const std::string head = testing::ReadAll(demo_.path).substr(0, 100);
  testing::OverwriteStart(demo_.path, std::string(100, 'x'));
  EXPECT_EQ(Call("GET", "/readyz").status, 503);
  refused("damaged");
  testing::OverwriteStart(demo_.path, head);
  serving("repaired");
}

TEST_F(HandlersTest, MetricsCountRequestsDecisionsAndTokens) {
  Authorize(Token("prod-importer"), "project.import", "Marketing-Production");
  Authorize(Token("prod-viewer"), "project.import", "Marketing-Production");
  Authorize("garbage", "project.import", "Marketing-Production");
  Call("POST", "/v1/authorize", "{");
  HttpReply r = Call("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.content_type.starts_with("text/plain; version=0.0.4"));
  const std::string& m = r.body;
  EXPECT_NE(m.find("gatehouse_http_requests_total{endpoint=\"authorize\",code=\"200\"} 3"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("gatehouse_http_requests_total{endpoint=\"authorize\",code=\"400\"} 1"),
            std::string::npos);
  EXPECT_NE(m.find("gatehouse_decisions_total{action=\"project.import\",outcome=\"allow\"} 1"),
            std::string::npos);
  EXPECT_NE(m.find("gatehouse_decisions_total{action=\"project.import\",outcome=\"deny\"} 2"),
            std::string::npos);
  EXPECT_NE(m.find("gatehouse_token_checks_total{result=\"malformed\"} 1"), std::string::npos);
  EXPECT_NE(
      m.find(
          "gatehouse_http_request_duration_seconds_bucket{endpoint=\"authorize\",le=\"+Inf\"} 4"),
      std::string::npos);
  EXPECT_NE(m.find("gatehouse_policy_info{name=\"api-tokens\",revision=\"" +
                   state_->policy()->revision() + "\"} 1"),
            std::string::npos);
  EXPECT_NE(m.find("gatehouse_token_index_size 6"), std::string::npos);
  EXPECT_NE(m.find("gatehouse_policy_reload_failures_total 0"), std::string::npos);
  // Unknown action names never become labels.
  Authorize(Token("prod-importer"), "made.up", "Marketing-Production");
  EXPECT_EQ(Call("GET", "/metrics").body.find("made.up"), std::string::npos);
}

// ---------------------------------------------------------------- decision log

// A sidecar killed inside a line's write leaves it without its end; the next
// one must not glue its first line onto that (found by SidecarCrashTest).
TEST_F(HandlersTest, DecisionLogCutsATornLastLineOffWhenOpened) {
  namespace t = gatehouse::testing;
  const std::string path = dir_.File("decisions.jsonl");
  const std::string whole = "{\"time\":\"a\",\"n\":1}\n{\"time\":\"b\",\"n\":2}\n";
  struct Case {
    std::string before, kept;
  } cases[] = {
      {whole + "{\"time\":\"2026-01-0", whole},                  // torn short line
      {whole + "{\"uri\":\"" + std::string(10000, 'a'), whole},  // torn past a 4 KiB page
      {"{\"time\":", ""},                                        // nothing whole
      {whole, whole},                                              // nothing torn
      {"", ""},
  };
  for (const Case& c : cases) {
    t::WriteAll(path, c.before);
    auto log = DecisionLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    ASSERT_TRUE((*log)->Write("{\"n\":3}"));
    EXPECT_EQ(t::ReadAll(path), c.kept + "{\"n\":3}\n") << c.before.substr(0, 40);
    // Reopening (log rotation, SIGHUP) repairs the same way.
    t::WriteAll(path, c.before);
    ASSERT_TRUE((*log)->Reopen().ok());
    ASSERT_TRUE((*log)->Write("{\"n\":4}"));
    EXPECT_EQ(t::ReadAll(path), c.kept + "{\"n\":4}\n") << c.before.substr(0, 40);
  }
}

// --decision-log pointed at the wrong thing (issue 10, item 11): never
// through a symlink, never a FIFO or device, never a file that is not ours
// (its tail is not cut), and always 0600.
TEST_F(HandlersTest, DecisionLogRefusesLinksFifosAndForeignFilesAndIsMade0600) {
  namespace t = gatehouse::testing;
  const std::string target = dir_.File("precious.txt");
  t::WriteAll(target, "line one\nno newline at the end");
  ASSERT_EQ(::symlink(target.c_str(), dir_.File("link.jsonl").c_str()), 0);
  auto linked = DecisionLog::Open(dir_.File("link.jsonl"));
  ASSERT_FALSE(linked.ok());
  EXPECT_NE(linked.status().ToString().find("symbolic link"), std::string::npos);
  auto foreign = DecisionLog::Open(target);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().ToString().find("other than Gatehouse"), std::string::npos);
  EXPECT_EQ(t::ReadAll(target), "line one\nno newline at the end");  // its tail kept
  ASSERT_EQ(::mkfifo(dir_.File("fifo.jsonl").c_str(), 0600), 0);
  EXPECT_FALSE(DecisionLog::Open(dir_.File("fifo.jsonl")).ok());  // at once, no hang
  EXPECT_FALSE(DecisionLog::Open("/dev/null").ok());
  // An existing log of ours with a loose mode is made 0600.
  const std::string path = dir_.File("decisions.jsonl");
  t::WriteAll(path, "{\"time\":\"x\"}\n");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto log = DecisionLog::Open(path);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_TRUE((*log)->healthy());
}

TEST_F(HandlersTest, DecisionLogHasTheDecisionAndNeverASecret) {
  auto log = DecisionLog::Open(dir_.File("decisions.jsonl"));
  ASSERT_TRUE(log.ok());
  HandlerOptions ho;
  ho.now_ms = [] { return kNowMs; };
  Handlers h(state_.get(), log->get(), ho);
  auto post = [&](const std::string& path, const json& body) {
    HttpRequest r;
    r.method = "POST";
    r.path = r.target = path;
    r.body = body.dump();
    return h.Handle(r);
  };
  post("/v1/authorize", {{"token", Token("prod-viewer")},
                         {"action", "project.import"},
                         {"workspace", "Marketing-Production"}});
  post("/v1/authorize", {{"token", "gat_notarealtokenatall"},
                         {"action", "project.import"},
                         {"workspace", "Marketing-Production"}});
  post("/v1/tokens/verify", {{"token", Token("prod-importer")}});
  HttpRequest fa;
  fa.method = "GET";
  fa.path = fa.target = "/v1/forward-auth";
  fa.authorization = Bearer("dev-exporter");
  fa.original_method = "POST";
  fa.original_uri = "/workspaces/Marketing-Development/projects/p1/export";
  fa.request_id = "req-fa-1";
  h.Handle(fa);
  // An unsafe target is logged as the raw bytes the proxy sent.
  fa.original_uri = "/workspaces/Marketing-Development/projects/p1/export%2F..%2F..%2Fx?q=1";
  fa.request_id = "req-fa-2";
  h.Handle(fa);
  log->reset();

  const std::string text = gatehouse::testing::ReadAll(dir_.File("decisions.jsonl"));
  std::vector<json> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    lines.push_back(json::parse(text.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  ASSERT_EQ(lines.size(), 5u) << text;
  EXPECT_EQ(lines[0]["time"], "2026-01-01T00:00:00.775Z");
  EXPECT_EQ(lines[0]["endpoint"], "authorize");
  EXPECT_EQ(lines[0]["principal"], "prod-viewer");
  EXPECT_EQ(lines[0]["action"], "project.import");
  EXPECT_EQ(lines[0]["workspace"], "Marketing-Production");
  EXPECT_EQ(lines[0]["decision"], "deny");
  EXPECT_EQ(lines[0]["rules"][0], "contributors-and-up");
  EXPECT_EQ(lines[0]["message"],
            "Importing a project needs workspace role contributor or higher; viewers cannot import "
            "projects.");
  EXPECT_EQ(lines[0]["revision"], state_->policy()->revision());
  EXPECT_EQ(lines[0]["token_id"], demo_.tokens["prod-viewer"].id);
  EXPECT_EQ(lines[0]["token_check"], "active");
  EXPECT_EQ(lines[1]["token_check"], "malformed");
  EXPECT_EQ(lines[1]["token"], "gat_nota...");
  EXPECT_EQ(lines[2]["endpoint"], "verify");
  EXPECT_EQ(lines[2]["decision"], "allow");
  EXPECT_EQ(lines[3]["endpoint"], "forward_auth");
  EXPECT_EQ(lines[3]["uri"], "/workspaces/Marketing-Development/projects/p1/export");
  EXPECT_EQ(lines[3]["decision"], "allow");
  EXPECT_EQ(lines[3]["source"], "nginx");
  EXPECT_EQ(lines[3]["method"], "POST");
  EXPECT_EQ(lines[3]["request_id"], "req-fa-1");
  EXPECT_EQ(lines[4]["request_id"], "req-fa-2");
  EXPECT_EQ(lines[4]["uri"],
            "/workspaces/Marketing-Development/projects/p1/export%2F..%2F..%2Fx?q=1");
  EXPECT_EQ(lines[4]["decision"], "deny");
  EXPECT_EQ(lines[4]["rules"][0], "unsafe-path");
  EXPECT_EQ(lines[4]["principal"], "dev-exporter");
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(lines[i]["request_id"].is_string()) << i;  // every record has the field
    EXPECT_FALSE(lines[i].contains("source")) << i;
  }
  for (const auto& [name, t] : demo_.tokens) {
    EXPECT_EQ(text.find(t.secret), std::string::npos) << name;
    EXPECT_EQ(text.find(t.secret.substr(4, 20)), std::string::npos) << name;
  }
  EXPECT_EQ(text.find("notarealtokenatall"), std::string::npos);
}


// Names obey one rule everywhere (gatehouse/text.h): a workspace or user
// name that could never have been stored is a malformed request.
TEST_F(HandlersTest, HostileNamesInRequestFieldsAre400) {
  const std::vector<std::string> hostile = {"\x1b[2J", "\x7f", "\xc2\x9b", "\xe2\x80\xae", "\xe2\x81\xa6",
                                            "\xe2\x80\x8b", "\xef\xbb\xbf", "\xe2\x80\xa8"};
  for (const std::string& h : hostile) {
    HttpReply r = Post("/v1/authorize", {{"user", "owner@demo.test"},
                                         {"action", "project.import"},
                                         {"workspace", "Marketing" + h}});
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("must not contain"), std::string::npos) << r.body;
    r = Post("/v1/authorize", {{"user", "owner" + h + "@demo.test"},
                               {"action", "project.import"},
                               {"workspace", "Marketing-Production"}});
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("must not contain"), std::string::npos) << r.body;
  }
  // Invalid UTF-8 never gets as far as a name.
  HttpReply r = Call("POST", "/v1/authorize",
                     "{\"user\":\"owner@demo.test\",\"action\":\"project.import\",\"workspace\":\"M\xff\"}");
  EXPECT_EQ(r.status, 400) << r.body;
}

// nginx drops an auth subrequest's body: a 403 carries the same decision in
// X-Gatehouse-Decision (ASCII only), so deploy/nginx.conf never asks twice.
TEST_F(HandlersTest, ForwardAuthDenialCarriesTheDecisionInAHeaderForNginx) {
  HttpReply r = ForwardAuth(Bearer("prod-viewer"), "POST", "/workspaces/Marketing-Production/projects/p/import");
  ASSERT_EQ(r.status, 403);
  const std::string header = Header(r, "X-Gatehouse-Decision");
  ASSERT_FALSE(header.empty());
  for (unsigned char c : header) ASSERT_TRUE(c >= 0x20 && c < 0x7f) << header;
  EXPECT_EQ(json::parse(header), json::parse(r.body));
  r = ForwardAuth(Bearer("prod-importer"), "POST", "/workspaces/Marketing-Production/projects/p/import");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Header(r, "X-Gatehouse-Decision"), "");
}

// Shadow evaluation's fast path (the live Request decided on the candidate,
// shadow.h) agrees with deciding the candidate afresh, for random cell flips
// of the default policy and every principal × action × workspace of the demo
// store; a candidate reading other inputs takes the slow path, just as exact.
TEST_F(HandlersTest, ShadowFastPathAgreesWithAuthorizingTheCandidateAfresh) {
  auto snapshot = state_->Fresh();
  ASSERT_TRUE(snapshot.ok());
  const Directory& dir = *(*snapshot)->directory;
  const PolicyPtr live = state_->policy();
  std::vector<Subject> subjects;
  for (const auto& [name, token] : demo_.tokens) {
    const TokenLookup lookup = (*snapshot)->tokens->Verify(token.secret, kNow);
    if (lookup.active()) subjects.push_back(SubjectOfToken(lookup.token));
  }
  for (const char* email : {"owner@demo.test", "alice@demo.test"}) subjects.push_back(*SubjectOfUser(dir, email));
  ASSERT_GE(subjects.size(), 7u);
  const std::vector<std::string> atoms = {
      "principal.kind == user", "principal.kind == api_user", "principal.workspace_role == viewer",
      "principal.workspace_role == contributor", "principal.workspace_role >= admin", "principal.workspace_role == none",
      "principal.org_role == viewer", "principal.org_role == contributor", "principal.org_role >= admin",
      "workspace.type == organization", "workspace.type == shared", "workspace.type == personal",
      "not settings.workspace_admins_can_create_tokens"};
  std::mt19937 rng(2026);
  size_t diverged_total = 0;
  for (int round = 0; round < 24; ++round) {
    std::string text = DefaultPolicyText();
    for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
      const ActionInfo& a = live->actions()[rng() % live->actions().size()];
      text = AddRule(text, a.name, rng() % 2 == 0, atoms[rng() % atoms.size()] + " and " + atoms[rng() % atoms.size()],
                     "shadow-" + std::to_string(k));
    }
    const bool other_inputs = round % 6 == 5;  // a role added: the slow path
    if (other_inputs) text = gatehouse::testing::AddRule(text, "audit.read", true, "principal.org_role == auditor", "auditors");
    if (other_inputs) {
      const std::string from = "organization: [viewer, contributor, admin, owner]";
      ASSERT_NE(text.find(from), std::string::npos);
      text.replace(text.find(from), from.size(), "organization: [viewer, auditor, contributor, admin, owner]");
    }
    const std::string path = dir_.File("cand-" + std::to_string(round) + ".yaml");
    WriteAll(path, text);
    ShadowOptions so;
    so.policy_path = path;
    so.policy_poll_ms = 0;
    auto shadow = Shadow::Open(so, [](LogLevel, std::string_view) {});
    ASSERT_TRUE(shadow.ok()) << shadow.status().ToString() << "\n" << text;
    const PolicyPtr cand = (*shadow)->candidate();
    EXPECT_EQ(SameInputs(*live, *cand), !other_inputs);
    size_t diverged = 0;
    for (const Subject& subject : subjects) {
      for (const ActionInfo& a : live->actions()) {
        std::vector<std::pair<std::string, std::string>> params;
        for (const ParamInfo& p : a.params) {
          if (p.name == "lifetime_seconds") params.emplace_back(p.name, rng() % 2 ? "30d" : "400d");
          else if (p.type == ValueType::kOrgRole) params.emplace_back(p.name, rng() % 2 ? "owner" : "viewer");
          else if (p.type == ValueType::kWorkspaceRole) params.emplace_back(p.name, "admin");
        }
        for (const auto& [ws, id] : demo_.workspaces) {
          const auto live_outcome = gatehouse::Authorize(*live, dir, subject, a.name, ws, params);
          ASSERT_TRUE(live_outcome.ok()) << live_outcome.status().ToString();
          const AuthzOutcome& l = *live_outcome;
          const auto cand_outcome = gatehouse::Authorize(*cand, dir, subject, a.name, ws, params);
          const AuthzOutcome c = cand_outcome.ok() ? *cand_outcome : AuthzOutcome{};
          ShadowVerdict v;
          (*shadow)->Decide(live, l.decided, l.request, l.allow, dir, subject, a.name, ws, params, &v);
          const std::string where = subject.name + " " + a.name + " in " + ws + " (round " + std::to_string(round) + ")";
          ASSERT_TRUE(v.computed) << where;
          EXPECT_EQ(v.allow, c.allow) << where;
          EXPECT_EQ(v.diverged, v.allow != l.allow) << where;
          if (!v.diverged) {
            EXPECT_TRUE(v.reasons.empty() && v.revision.empty()) << where << ": nothing is filled without a divergence";
            continue;
          }
          ++diverged;
          EXPECT_EQ(v.revision, cand->revision());
          std::vector<std::string> got, want;
          for (const Reason& r : v.reasons) got.push_back(r.rule);
          for (const Reason& r : c.reasons) want.push_back(r.rule);
          EXPECT_EQ(got, want) << where;
        }
      }
    }
    // The counter holds exactly these, and the fast path took every one of a same-inputs candidate.
    const std::string metrics = (*shadow)->RenderMetrics();
    uint64_t counted = 0;
    for (const ActionInfo& a : live->actions()) counted += (*shadow)->divergences(a.name, true) + (*shadow)->divergences(a.name, false);
    EXPECT_EQ(counted, diverged);
    EXPECT_EQ(metrics.find("gatehouse_shadow_slow_decisions_total 0\n") != std::string::npos, !other_inputs) << metrics;
    diverged_total += diverged;
  }
  EXPECT_GT(diverged_total, 50u) << "the random flips should reach many cells";
}

// The server reuses one HttpRequest per I/O thread: Clear() must leave
// nothing of the previous request in any field.
TEST(HttpRequestTest, ClearLeavesNoFieldOfThePreviousRequest) {
  HttpRequest r;
  int n = 0;
  for (std::string* f : {&r.method, &r.path, &r.target, &r.body, &r.authorization, &r.content_type,
                         &r.original_method, &r.original_uri, &r.forwarded_method, &r.forwarded_uri,
                         &r.caller_secret, &r.request_id}) {
    *f = "value " + std::to_string(++n) + std::string(64, 'x');  // past the small-string buffer
  }
  r.peer = "127.0.0.1:4000";
  r.present = kHdrOriginalUri | kHdrCaller;
  r.repeated = kHdrAuthorization;
  ASSERT_NE(r, HttpRequest{});
  const size_t kept = r.body.capacity();
  r.Clear();
  EXPECT_EQ(r, HttpRequest{});
  EXPECT_EQ(r.body.capacity(), kept);
}

}  // namespace
}  // namespace gatehouse::sidecar
