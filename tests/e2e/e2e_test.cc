// End-to-end: the real gatehoused binary on a free port, a real SQLite store
// made by the real gatehouse CLI, real Debian nginx (deploy/nginx.conf) in
// front of a small upstream. Every process is started by the test and
// stopped by PID in TearDown, whatever happened.
//
// The cases about decisions and the store (E2eBackendTest) run over both
// backends with the same expected outputs: on SQLite, and on a real
// PostgreSQL (support/postgres.h, a fresh database per test; the ctest entry
// e2e_test.postgres). The one difference is when a change made through the
// CLI is seen: on SQLite by the very next request, on PostgreSQL within the
// staleness lease (the sidecar follows the change feed), so there the test
// asks again for a bounded while (Seen). What only a SQLite file has
// (restore by rename, an unreadable or removed file) and the soak stay
// SQLite-only (E2eTest).
#include <gtest/gtest.h>
#include <map>
#include <mutex>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e/demo.h"
#include "gatehouse/policy.h"
#include "e2e/upstream.h"
#include "sidecar/fixture.h"
#include "sidecar/http_client.h"
#include "support/postgres.h"

namespace gatehouse::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string kNginx = "/usr/sbin/nginx";
const std::string kImport = "/workspaces/Marketing-Production/projects/p1/import";
const std::string kExport = "/workspaces/Marketing-Development/projects/p1/export";

template <typename F>
bool WaitFor(F pred, std::chrono::milliseconds limit = 5s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// 2024-01-24T12:02:40.775Z (std::regex trips GCC 12 warnings under ASan).
bool IsIsoTimeMs(const std::string& s) {
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (s.size() != shape.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(s[i])) : s[i] != shape[i])
      return false;
  }
  return true;
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "deploy/nginx.conf no longer contains '" << from << "'";
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

enum class Backend { kSqlite, kPostgres };

class E2eTest : public ::testing::Test {
 protected:
  explicit E2eTest(Backend backend = Backend::kSqlite) : backend_(backend) {}

  void SetUp() override {
    ASSERT_TRUE(fs::exists(kCli)) << kCli;
    ASSERT_TRUE(fs::exists(kSidecar)) << kSidecar;
    ASSERT_TRUE(fs::exists(kNginx)) << "nginx is not installed (scripts/setup.sh installs it)";
    if (postgres()) {
      PostgresServer* pg = PostgresServer::Get();
      ASSERT_NE(pg, nullptr);
      locator_ = pg->NewDatabase();
      ASSERT_FALSE(locator_.empty());
    } else {
      locator_ = dir_.File("gatehouse.db");
    }
    fs::create_directories(dir_.File("policies"));
    WriteAll(policy_file(), DefaultPolicyText());
    env_ = {"GATEHOUSE_STORE=" + store(), "GATEHOUSE_POLICY=" + dir_.File("policies"),
            "GATEHOUSE_AS=owner@demo.test"};
    CreateDemo();
    if (HasFatalFailure()) return;
    sidecar_ = StartSidecar({});
    ASSERT_TRUE(sidecar_.process) << Stderr();
    upstream_ = std::make_unique<Upstream>();
    StartNginx();
  }

  void TearDown() override {
    if (nginx_) {
      nginx_->Stop(5s, SIGQUIT);
      nginx_.reset();
    }
    if (sidecar_.process) {
      const ProcessResult st = sidecar_.process->Stop(10s);
      EXPECT_EQ(st.exit_code, 0) << "gatehoused did not exit 0 on SIGTERM" << st << Stderr();
      sidecar_.process.reset();
    }
    if (upstream_) upstream_->Stop();
    if (HasFailure()) {
      std::cerr << "--- gatehoused stderr ---\n"
                << Stderr() << "--- nginx error.log ---\n"
                << ReadAll(dir_.File("nginx/error.log"));
    }
  }

  // The store's locator: the SQLite file, or the PostgreSQL database.
  std::string store() const { return locator_; }
  bool postgres() const { return backend_ == Backend::kPostgres; }

  // Whether `pred` holds for the sidecar after a change committed through
  // the CLI. SQLite: asked once (the very next request sees the change).
  // PostgreSQL: asked until it holds, for at most twice the staleness lease
  // (--max-staleness-ms, default 1000; NOTIFY makes it milliseconds).
  template <typename F>
  bool Seen(F pred) {
    return postgres() ? WaitFor(pred, 2s) : pred();
  }
  std::string policy_file() const { return dir_.File("policies/api-tokens.yaml"); }
  std::string Stderr() const { return ReadAll(dir_.File("gatehoused.stderr")); }

  ProcessResult Cli(std::vector<std::string> args) { return RunCli(std::move(args), env_); }

  using Token = CliToken;
  Token CreateToken(const std::string& api_user, const std::string& expires_in = "30d") {
    ProcessResult r = Cli({"token", "create", "--apiuser", api_user, "--name",
                       "t" + std::to_string(++token_count_), "--expires-in", expires_in, "--json"});
    return CreatedToken(r);
  }

  // The README's demo (scripts/demo.sh), made with the real CLI.
  void CreateDemo() {
    for (const auto& args : DemoCommands()) {
      ProcessResult r = Cli(args);
      ASSERT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.err;
    }
    dev_ = CreateToken("dev-exporter");
    prod_ = CreateToken("prod-importer");
    viewer_ = CreateToken("prod-viewer");
  }

  Sidecar StartSidecar(std::vector<std::string> extra, const std::string& policy_dir = "") {
    // Defaults, unless `extra` gives the option itself.
    const std::vector<std::pair<std::string, std::string>> defaults = {
        {"--listen", "127.0.0.1:0"},
        {"--store", store()},
        {"--policy", policy_dir.empty() ? dir_.File("policies") : policy_dir},
        {"--policy-poll-ms", "100"},
        {"--sweep-interval", "1"},
        {"--keep-alive-timeout", "2"},
        {"--threads", "32"},
        {"--decision-log", dir_.File("decisions.jsonl")}};
    std::vector<std::string> argv = {kSidecar};
    for (const auto& [flag, value] : defaults) {
      if (std::find(extra.begin(), extra.end(), flag) != extra.end()) continue;
      argv.push_back(flag);
      argv.push_back(value);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return LaunchSidecar(argv, dir_.File("gatehoused.stderr"));
  }

  // `caller_secret`: follow the three steps at the top of deploy/nginx.conf.
  void StartNginx(const std::string& caller_secret = "") {
    const std::string root = dir_.File("nginx");
    fs::create_directories(root);
    nginx_port_ = FreePort();
    std::string conf = ReadAll(std::string(GATEHOUSE_SOURCE_DIR) + "/deploy/nginx.conf");
    if (!caller_secret.empty()) {
      WriteAll(root + "/gatehouse-caller.conf",
               "map \"\" $gatehouse_caller { default \"" + caller_secret + "\"; }\n");
      conf = Replace(conf, "    # include /etc/nginx/gatehouse-caller.conf;",
                     "    include " + root + "/gatehouse-caller.conf;");
      // The auth location (and the comment that shows the line).
      const std::string from = "proxy_set_header X-Gatehouse-Caller \"\";";
      int replaced = 0;
      for (size_t at = conf.find(from); at != std::string::npos; at = conf.find(from, at)) {
        conf.replace(at, from.size(), "proxy_set_header X-Gatehouse-Caller $gatehouse_caller;");
        ++replaced;
      }
      EXPECT_GE(replaced, 2) << "deploy/nginx.conf no longer sets the caller header twice";
    }
    conf = Replace(conf, "server 127.0.0.1:7878;",
                   "server 127.0.0.1:" + std::to_string(sidecar_.port) + ";");
    conf = Replace(conf, "server 127.0.0.1:8080;",
                   "server 127.0.0.1:" + std::to_string(upstream_->port()) + ";");
    conf = Replace(conf, "listen 127.0.0.1:8000;",
                   "listen 127.0.0.1:" + std::to_string(nginx_port_) + ";");
    // Keep every file nginx writes inside the test's directory.
    conf =
        Replace(conf, "\nhttp {\n",
                "\nhttp {\n    access_log " + root + "/access.log;\n    client_body_temp_path " +
                    root + "/body;\n    proxy_temp_path " + root +
                    "/proxy;\n    fastcgi_temp_path " + root + "/fastcgi;\n    uwsgi_temp_path " +
                    root + "/uwsgi;\n    scgi_temp_path " + root + "/scgi;\n");
    WriteAll(root + "/nginx.conf", conf);
    nginx_ = Process::Start(
        {kNginx, "-p", root + "/", "-c", root + "/nginx.conf", "-e", root + "/error.log", "-g",
         "daemon off; master_process off; pid " + root + "/nginx.pid;"},
        {.stderr_path = root + "/stderr.txt"});
    ASSERT_TRUE(nginx_);
    ASSERT_TRUE(WaitFor([&] {
      return HttpConnection(nginx_port_, 1000).connected() || !nginx_->Running();
    })) << ReadAll(root + "/stderr.txt")
        << ReadAll(root + "/error.log");
    ASSERT_TRUE(nginx_->Running()) << ReadAll(root + "/stderr.txt") << ReadAll(root + "/error.log");
  }

  // Through nginx, as a client of the protected service would call.
  HttpResponse ViaNginx(const std::string& method, const std::string& path,
                        const std::string& token, HeaderList extra = {}) {
    if (!token.empty()) extra.emplace_back("Authorization", "Bearer " + token);
    extra.emplace_back("Content-Type", "application/json");
    return HttpCall(nginx_port_, method, path, extra,
                    method == "POST" ? "{\"project\":\"p1\"}" : "");
  }
  HttpResponse Direct(const std::string& method, const std::string& path,
                      const std::string& body = "", HeaderList headers = {}, int port = 0) {
    headers.emplace_back("Content-Type", "application/json");
    return HttpCall(port ? port : sidecar_.port, method, path, headers, body);
  }
  json Verify(const std::string& token) {
    HttpResponse r = Direct("POST", "/v1/tokens/verify", json({{"token", token}}).dump());
    EXPECT_EQ(r.status, 200) << r.error;
    return json::parse(r.body, nullptr, false);
  }
  std::string Revision(int port = 0) {
    HttpResponse r = Direct("GET", "/readyz", "", {}, port);
    json j = json::parse(r.body, nullptr, false);
    return j.is_discarded() ? "" : j["policy"]["revision"].get<std::string>();
  }
  double Metric(const std::string& line_prefix) {
    HttpResponse r = Direct("GET", "/metrics");
    const size_t at = r.body.find("\n" + line_prefix + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r.body.substr(at + line_prefix.size() + 2));
  }

  const Backend backend_;
  TempDir dir_;
  std::string locator_;           // store()
  std::vector<std::string> env_;  // NAME=VALUE for the CLI
  Token dev_, prod_, viewer_;
  int token_count_ = 0;
  Sidecar sidecar_;
  std::unique_ptr<Upstream> upstream_;
  std::unique_ptr<Process> nginx_;
  int nginx_port_ = 0;
};

// The same cases, with the same expectations, on each backend.
class E2eBackendTest : public E2eTest, public ::testing::WithParamInterface<Backend> {
 protected:
  E2eBackendTest() : E2eTest(GetParam()) {}
};
INSTANTIATE_TEST_SUITE_P(Sqlite, E2eBackendTest, ::testing::Values(Backend::kSqlite),
                         [](const auto&) { return std::string("sqlite"); });
INSTANTIATE_TEST_SUITE_P(Postgres, E2eBackendTest, ::testing::Values(Backend::kPostgres),
                         [](const auto&) { return std::string("postgres"); });

// ---------------------------------------------------------------------------

TEST_P(E2eBackendTest, SeedEnvironmentPromotionThroughNginx) {
  // A contributor token of Marketing-Development exports...
  HttpResponse r = ViaNginx("POST", kExport, dev_.secret);
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["upstream"], "ok");
  EXPECT_EQ(j["path"], kExport);
  EXPECT_EQ(j["subject"], "dev-exporter");
  EXPECT_EQ(j["workspace"], "Marketing-Development");
  EXPECT_EQ(j["role"], "contributor");
  // ...a contributor token of Marketing-Production imports...
  r = ViaNginx("POST", kImport, prod_.secret);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["subject"], "prod-importer");
  // ...and a viewer token gets 403 with the PreconditionError body.
  const int upstream_before = upstream_->requests();
  r = ViaNginx("POST", kImport, viewer_.secret);
  ASSERT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  j = json::parse(r.body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.body;
  EXPECT_TRUE(j["data"].is_null());
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(
      j["errors"][0]["message"],
      "Something unexpected happened. If this problem persists, please contact support@tray.io.");
  EXPECT_EQ(j["errors"][0]["path"], json::array({"importProject"}));
  EXPECT_EQ(j["errors"][0]["locations"], json::parse(R"([{"line": 2, "column": 3}])"));
  EXPECT_EQ(j["errors"][0]["extensions"]["name"], "PreconditionError");
  EXPECT_EQ(j["errors"][0]["extensions"]["code"], "internal_error");
  EXPECT_TRUE(IsIsoTimeMs(j["errors"][0]["extensions"]["time_thrown"].get<std::string>()))
      << j.dump();
  EXPECT_EQ(upstream_->requests(), upstream_before);  // never reached the service
}

TEST_P(E2eBackendTest, NginxRefusesWhatTheSidecarRefuses) {
  // The Development token in Production.
  EXPECT_EQ(ViaNginx("POST", kImport, dev_.secret).status, 403);
  // No token, a non-Bearer header, garbage: 401 with the Bearer challenge.
  HttpResponse r = ViaNginx("POST", kImport, "");
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(r.Header("www-authenticate").starts_with("Bearer")) << r.Header("www-authenticate");
  EXPECT_EQ(ViaNginx("POST", kImport, "", {{"Authorization", "Basic dXNlcjpwYXNz"}}).status, 401);
  EXPECT_EQ(ViaNginx("POST", kImport, "gat_garbage").status, 401);
  // Unmapped routes fail closed.
  EXPECT_EQ(ViaNginx("GET", "/workspaces/Marketing-Production", prod_.secret).status, 403);
  EXPECT_EQ(ViaNginx("DELETE", kImport, prod_.secret).status, 403);
  // A client cannot claim an identity: nginx replaces X-Gatehouse-* headers.
  r = ViaNginx("POST", kImport, prod_.secret,
               {{"X-Gatehouse-Subject", "admin"}, {"X-Gatehouse-Role", "admin"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["subject"], "prod-importer");
  EXPECT_EQ(json::parse(r.body)["role"], "contributor");
}

// The caller secret set up as deploy/nginx.conf says: nginx's questions are
// answered, anyone else's are 401, and the secret never reaches the service.
TEST_F(E2eTest, CallerSecretThroughNginxAsTheConfigShowsIt) {
  nginx_->Stop(5s, SIGQUIT);
  ASSERT_EQ(sidecar_.process->Stop(10s).exit_code, 0);
  const std::string secret = "s3cr3t-only-nginx-knows-0123456789";
  WriteAll(dir_.File("caller-secret"), secret + "\n");
  sidecar_ = StartSidecar({"--caller-secret-file", dir_.File("caller-secret"),
                           "--forward-auth-source", "nginx"});
  ASSERT_TRUE(sidecar_.process) << Stderr();
  StartNginx(secret);
  HttpResponse r = ViaNginx("POST", kImport, prod_.secret, {{"X-Gatehouse-Caller", "forged"}});
  ASSERT_EQ(r.status, 200) << r.body << ReadAll(dir_.File("nginx/error.log"));
  EXPECT_EQ(json::parse(r.body)["subject"], "prod-importer");
  EXPECT_EQ(json::parse(r.body)["caller"], "") << "a caller header reached the service";
  EXPECT_EQ(ViaNginx("POST", kImport, viewer_.secret).status, 403);  // the denial path asks too
  // Straight to the sidecar: without, or with a wrong secret, 401; health stays open.
  EXPECT_EQ(Direct("POST", "/v1/tokens/verify", json({{"token", prod_.secret}}).dump()).status, 401);
  EXPECT_EQ(Direct("POST", "/v1/tokens/verify", json({{"token", prod_.secret}}).dump(),
                   {{"X-Gatehouse-Caller", secret + "x"}})
                .status,
            401);
  EXPECT_EQ(Direct("POST", "/v1/tokens/verify", json({{"token", prod_.secret}}).dump(),
                   {{"X-Gatehouse-Caller", secret}})
                .status,
            200);
  EXPECT_EQ(Direct("GET", "/metrics").status, 401);
  EXPECT_EQ(Direct("GET", "/healthz").status, 200);
  EXPECT_EQ(Direct("GET", "/readyz").status, 200);
  // Never logged.
  EXPECT_EQ(ReadAll(dir_.File("decisions.jsonl")).find(secret), std::string::npos);
  EXPECT_EQ(Stderr().find(secret), std::string::npos);
}

// (On PostgreSQL: within the staleness lease, see Seen.)
TEST_P(E2eBackendTest, RevocationThroughTheCliIsRefusedByTheNextRequest) {
  ASSERT_EQ(ViaNginx("POST", kImport, prod_.secret).status, 200);
  EXPECT_EQ(Verify(prod_.secret)["active"], true);
  ProcessResult r = Cli({"token", "revoke", prod_.id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The very next request, with no pause.
  EXPECT_TRUE(Seen([&] { return ViaNginx("POST", kImport, prod_.secret).status == 401; }));
  EXPECT_EQ(Verify(prod_.secret), json({{"active", false}}));
  HttpResponse a = Direct("POST", "/v1/authorize",
                          json({{"token", prod_.secret},
                                {"action", "project.import"},
                                {"workspace", "Marketing-Production"}})
                              .dump());
  EXPECT_EQ(json::parse(a.body)["allow"], false);
  // Deleting an API user takes its tokens with it.
  ASSERT_EQ(ViaNginx("POST", kExport, dev_.secret).status, 200);
  r = Cli({"apiuser", "delete", "dev-exporter"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Seen([&] { return ViaNginx("POST", kExport, dev_.secret).status == 401; }));
  EXPECT_EQ(Verify(dev_.secret), json({{"active", false}}));
  // A token created now works at once.
  Token fresh = CreateToken("prod-importer");
  EXPECT_TRUE(Seen([&] { return ViaNginx("POST", kImport, fresh.secret).status == 200; }));
  // A promotion through the CLI is seen at once too.
  EXPECT_EQ(ViaNginx("POST", kImport, viewer_.secret).status, 403);
  r = Cli({"apiuser", "promote", "prod-viewer", "--workspace-role", "contributor"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Seen([&] { return ViaNginx("POST", kImport, viewer_.secret).status == 200; }));
}

// Every CLI command appends an audit record; one that changes nothing else
// (a list, a denied create) must not make the sidecar rebuild its index,
// while a revocation still does, before the next answer.
TEST_P(E2eBackendTest, ReadOnlyAndDeniedCliCommandsCostTheSidecarNoRebuild) {
  EXPECT_EQ(Verify(prod_.secret)["active"], true);
  const double rebuilds = Metric("gatehouse_store_refreshes_total");
  ASSERT_GE(rebuilds, 1);
  ASSERT_EQ(Cli({"token", "list"}).exit_code, 0);
  ASSERT_EQ(Cli({"audit", "--limit", "5"}).exit_code, 0);
  // alice is a contributor: she may not create tokens.
  ProcessResult denied = Cli({"--as", "alice@demo.test", "token", "create", "--apiuser",
                              "prod-importer", "--name", "nope", "--expires-in", "1d"});
  EXPECT_EQ(denied.exit_code, 3) << denied;
  EXPECT_EQ(Verify(prod_.secret)["active"], true);
  EXPECT_EQ(Metric("gatehouse_store_refreshes_total"), rebuilds);
  ASSERT_EQ(Cli({"token", "revoke", prod_.id}).exit_code, 0);
  EXPECT_TRUE(Seen([&] { return Verify(prod_.secret) == json({{"active", false}}); }));
  // (PostgreSQL's feed thread counts the catch-up just after publishing it.)
  EXPECT_TRUE(Seen([&] { return Metric("gatehouse_store_refreshes_total") == rebuilds + 1; }));
  EXPECT_EQ(Metric("gatehouse_store_refreshes_total"), rebuilds + 1);
}

TEST_P(E2eBackendTest, ExpiredTokenIsRefusedAtOnceAndSwept) {
  Token brief = CreateToken("prod-importer", "2s");
  ASSERT_FALSE(brief.secret.empty());
  EXPECT_TRUE(Seen([&] { return ViaNginx("POST", kImport, brief.secret).status == 200; }));
  const double swept_before = Metric("gatehouse_swept_tokens_total");
  EXPECT_TRUE(WaitFor([&] { return ViaNginx("POST", kImport, brief.secret).status == 401; }, 4s));
  EXPECT_EQ(Verify(brief.secret), json({{"active", false}}));
  // The sweeper (every second here) deletes it from the store.
  EXPECT_TRUE(WaitFor([&] { return Metric("gatehouse_swept_tokens_total") > swept_before; }, 5s));
  ProcessResult list = Cli({"token", "list", "--json"});
  EXPECT_EQ(list.out.find(brief.id), std::string::npos) << list.out;
}

// The organization toggle (workspace_admins_can_create_tokens) turned on and
// off through the CLI decides for a workspace admin at the next request: the
// deciding rule, the batch and the other workspaces' answers with it.
TEST_P(E2eBackendTest, TheToggleThroughTheCliDecidesForWorkspaceAdmins) {
  ASSERT_EQ(Cli({"member", "add", "alice@demo.test", "--workspace", "Marketing-Development",
                 "--role", "admin"}).exit_code, 0);
  auto check = [](const std::string& action, const std::string& ws) {
    json params = action == "token.create" ? json({{"lifetime_seconds", "30d"}})
                                           : json({{"workspace_role", "viewer"}});
    return json({{"user", "alice@demo.test"}, {"action", action}, {"workspace", ws}, {"params", params}});
  };
  auto ask = [&](const std::string& action, const std::string& ws = "Marketing-Development") {
    HttpResponse r = Direct("POST", "/v1/authorize", check(action, ws).dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false);
  };
  auto allowed = [&](const std::string& action) { return ask(action).value("allow", false); };
  // A request before the change: alice is an admin there, the toggle is off.
  EXPECT_EQ(ask("token.create")["allow"], false);
  EXPECT_EQ(ask("api_user.create")["allow"], false);
  ASSERT_EQ(Cli({"settings", "set", "workspace-admins-can-create-tokens", "true"}).exit_code, 0);
  EXPECT_TRUE(Seen([&] { return allowed("token.create"); }));
  json on = ask("token.create");
  EXPECT_EQ(on["allow"], true) << on.dump();
  ASSERT_TRUE(on["reasons"].is_array() && !on["reasons"].empty()) << on.dump();
  EXPECT_EQ(on["reasons"][0]["rule"], "ws-admins-with-toggle") << on.dump();
  EXPECT_EQ(ask("api_user.create")["allow"], true);
  // Only where she is an admin; the batch says the same as single checks.
  EXPECT_EQ(ask("token.create", "Marketing-Production")["allow"], false);
  HttpResponse b = Direct("POST", "/v1/authorize/batch",
                          json({{"checks", {check("token.create", "Marketing-Development"),
                                            check("token.create", "Marketing-Production")}}})
                              .dump());
  ASSERT_EQ(b.status, 200) << b.body;
  json results = json::parse(b.body, nullptr, false)["results"];
  ASSERT_TRUE(results.is_array() && results.size() == 2) << b.body;
  EXPECT_EQ(results[0]["allow"], true) << b.body;
  EXPECT_EQ(results[1]["allow"], false) << b.body;
  // Off again: refused by the next request (PostgreSQL: within the lease).
  ASSERT_EQ(Cli({"settings", "set", "workspace-admins-can-create-tokens", "false"}).exit_code, 0);
  EXPECT_TRUE(Seen([&] { return !allowed("token.create"); }));
  EXPECT_EQ(ask("api_user.create")["allow"], false);
}

TEST_F(E2eTest, PolicyEditWhileRequestsFlowHasZeroFailures) {
  const std::string original = Revision();
  ASSERT_FALSE(original.empty());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      while (!stop) {
        HttpResponse r =
            i % 2 == 0 ? ViaNginx("POST", kImport, prod_.secret)
                       : Direct("POST", "/v1/tokens/verify", json({{"token", dev_.secret}}).dump());
        const bool good =
            r.status == 200 && (i % 2 == 0 ? r.body.find("\"upstream\":\"ok\"") != std::string::npos
                                           : r.body.find("\"active\":true") != std::string::npos);
        if (good) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard<std::mutex> lock(mu);
          if (failures.size() < 5)
            failures.push_back(std::to_string(r.status) + " " + r.error + " " + r.body);
        }
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  // 1. An atomic edit that lets viewers import: applied while requests flow.
  ReplaceFile(policy_file(), ViewersMayImport());
  EXPECT_TRUE(WaitFor([&] { return Revision() != original; })) << Stderr();
  const std::string permissive = Revision();
  EXPECT_EQ(ViaNginx("POST", kImport, viewer_.secret).status, 200);
  // 2. A broken edit in place: refused, counted, the last good policy serves on.
  WriteAll(policy_file(), DefaultPolicyText() + "\n  project.import: {}\n");
  EXPECT_TRUE(WaitFor([&] { return Metric("gatehouse_policy_reload_failures_total") >= 1; }))
      << Stderr();
  EXPECT_EQ(Revision(), permissive);
  EXPECT_EQ(ViaNginx("POST", kImport, viewer_.secret).status, 200);
  // 3. Back to the original.
  ReplaceFile(policy_file(), DefaultPolicyText());
  EXPECT_TRUE(WaitFor([&] { return Revision() == original; })) << Stderr();
  EXPECT_EQ(ViaNginx("POST", kImport, viewer_.secret).status, 403);
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed, 0) << (failures.empty() ? "" : failures[0]);
  EXPECT_GT(ok, 50);
  EXPECT_NE(Stderr().find("api-tokens.yaml:"), std::string::npos)
      << "the failed reload's FILE:LINE:COL";
}

TEST_F(E2eTest, SighupReloadsThePolicy) {
  fs::create_directories(dir_.File("hup"));
  WriteAll(dir_.File("hup/api-tokens.yaml"), DefaultPolicyText());
  Sidecar hup = StartSidecar({"--policy-poll-ms", "0"}, dir_.File("hup"));
  ASSERT_TRUE(hup.process);
  const std::string original = Revision(hup.port);
  ReplaceFile(dir_.File("hup/api-tokens.yaml"), ViewersMayImport());
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(Revision(hup.port), original);  // not watching
  hup.process->Kill(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return Revision(hup.port) != original; })) << Stderr();
  EXPECT_EQ(hup.process->Stop(10s).exit_code, 0);
}

// Hostile policy files dropped into a running sidecar's folder (issue 10):
// each reload fails with a reason, the sidecar lives on and keeps serving
// the last good policy.
TEST_F(E2eTest, HostilePolicyFilesDroppedIntoTheFolderNeverStopTheSidecar) {
  fs::create_directories(dir_.File("hostile"));
  const std::string file = dir_.File("hostile/api-tokens.yaml");
  WriteAll(file, DefaultPolicyText());
  Sidecar sc = StartSidecar({"--policy-poll-ms", "0"}, dir_.File("hostile"));
  ASSERT_TRUE(sc.process);
  const std::string good = Revision(sc.port);
  auto failures = [&] {
    HttpResponse r = Direct("GET", "/metrics", "", {}, sc.port);
    const std::string key = "\ngatehouse_policy_reload_failures_total ";
    const size_t at = r.body.find(key);
    return at == std::string::npos ? -1.0 : std::stod(r.body.substr(at + key.size()));
  };
  auto rule = [](const std::string& when) {
    return "gatehouse: v1\npolicy: hostile\nactions:\n  a.b:\n    permit:\n      - rule: r\n"
           "        when: \"" + when + "\"\n";
  };
  auto repeat = [](const std::string& piece, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += piece;
    return out;
  };
  std::vector<std::pair<std::string, std::string>> cases = {
      {"20,000 parentheses", rule(repeat("(", 20000) + "principal.kind == user" + repeat(")", 20000))},
      {"100,000 nots", rule(repeat("not ", 100000) + "principal.kind == user")},
      {"a 30,000-term and", rule("principal.kind == user" + repeat(" and principal.kind == user", 29999)) +
                                "    description: wide, and fine if it loads\n  broken: [\n"},
      {"an alias bomb", [&] {
         std::string y = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
         for (int i = 1; i < 9; ++i) {
           y += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
           for (int j = 0; j < 10; ++j) y += std::string(j ? ", " : "") + "*a" + std::to_string(i - 1);
           y += "]\n";
         }
         return y + DefaultPolicyText();
       }()},
      {"16 int parameters x 3 constants", [&] {
         std::string y = "gatehouse: v1\npolicy: wide\nactions:\n  a.b:\n    params: {";
         std::string when;
         for (int i = 0; i < 16; ++i) {
           y += std::string(i ? ", " : "") + "p" + std::to_string(i) + ": {type: int}";
           for (int c = 1; c <= 3; ++c)
             when += std::string(when.empty() ? "" : " or ") + "request.p" + std::to_string(i) +
                     " > " + std::to_string(c * 10);
         }
         return y + "}\n    permit:\n      - rule: r\n        when: \"" + when + "\"\n";
       }()},
      {"a 9 MB file", DefaultPolicyText() + "# " + std::string(9 << 20, 'x') + "\n"},
  };
  for (const auto& [name, text] : cases) {
    const double before = failures();
    ReplaceFile(file, text);
    sc.process->Kill(SIGHUP);
    EXPECT_TRUE(WaitFor([&] { return failures() > before; }, 20s)) << name << Stderr();
    ASSERT_TRUE(sc.process->Running()) << name << " killed the sidecar: " << Stderr();
    EXPECT_EQ(Revision(sc.port), good) << name;
    HttpResponse r = Direct("POST", "/v1/authorize",
                            json({{"token", prod_.secret}, {"action", "project.import"},
                                  {"workspace", "Marketing-Production"}}).dump(), {}, sc.port);
    EXPECT_EQ(r.status, 200) << name;
    EXPECT_NE(r.body.find("\"allow\":true"), std::string::npos) << name << r.body;
  }
  // A FIFO beside a good policy is refused, never waited on.
  WriteAll(file, DefaultPolicyText());
  ASSERT_EQ(::mkfifo(dir_.File("hostile/pipe.yaml").c_str(), 0600), 0);
  const double before = failures();
  sc.process->Kill(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return failures() > before; }, 10s)) << Stderr();
  EXPECT_TRUE(sc.process->Running());
  fs::remove(dir_.File("hostile/pipe.yaml"));
  EXPECT_EQ(sc.process->Stop(10s).exit_code, 0);
}

// --decision-log-required (issue 10, item 12): while the log cannot be
// written (here: a file-size limit, EFBIG, as a full disk would), every
// decision is a deny and /readyz is 503; the failure and the recovery are
// said on stderr.
TEST_F(E2eTest, DecisionLogRequiredDeniesWhileTheLogCannotBeWritten) {
  ASSERT_TRUE(fs::exists("/usr/bin/prlimit")) << "prlimit (util-linux) is missing";
  const std::string log = dir_.File("required.jsonl");
  WriteAll(log, "{\"time\":\"pad\",\"pad\":\"" + std::string(59000, 'p') + "\"}\n");
  Sidecar sc = LaunchSidecar({"/usr/bin/prlimit", "--fsize=60000:unlimited", kSidecar, "--listen",
                              "127.0.0.1:0", "--store", store(), "--policy", dir_.File("policies"),
                              "--sweep-interval", "0", "--policy-poll-ms", "0", "--decision-log",
                              log, "--decision-log-required"},
                             dir_.File("required.stderr"));
  ASSERT_TRUE(sc.process);
  const std::string check = json({{"token", prod_.secret}, {"action", "project.import"},
                                  {"workspace", "Marketing-Production"}}).dump();
  auto authorize = [&] {
    HttpResponse r = Direct("POST", "/v1/authorize", check, {}, sc.port);
    EXPECT_EQ(r.status, 200);
    return json::parse(r.body, nullptr, false);
  };
  EXPECT_EQ(authorize()["allow"], true);  // the first lines still fit
  json denied;
  for (int i = 0; i < 200; ++i) {
    denied = authorize();
    if (denied["allow"] == false) break;
  }
  ASSERT_EQ(denied["allow"], false) << "the log never filled";
  EXPECT_EQ(denied["reasons"][0]["rule"], "decision-log-unavailable") << denied.dump();
  EXPECT_EQ(Direct("GET", "/readyz", "", {}, sc.port).status, 503);
  HttpResponse v = Direct("POST", "/v1/tokens/verify", json({{"token", prod_.secret}}).dump(), {},
                          sc.port);
  EXPECT_EQ(v.body, "{\"active\":false}");
  const std::string err = ReadAll(dir_.File("required.stderr"));
  EXPECT_NE(err.find("decision log " + log + ": write failed"), std::string::npos) << err;
  // The disk has room again: the next decision is logged and stands.
  ProcessResult lift = RunProcess({"/usr/bin/prlimit", "--pid",
                                   std::to_string(sc.process->pid()), "--fsize=unlimited:unlimited"});
  ASSERT_EQ(lift.exit_code, 0) << lift;
  EXPECT_EQ(authorize()["allow"], true);
  EXPECT_EQ(Direct("GET", "/readyz", "", {}, sc.port).status, 200);
  EXPECT_NE(ReadAll(dir_.File("required.stderr")).find("writing again"), std::string::npos);
  EXPECT_EQ(sc.process->Stop(10s).exit_code, 0);
  // It needs a log to require.
  EXPECT_EQ(RunProcess({kSidecar, "--store", store(), "--decision-log-required"}).exit_code, 2);
}

TEST_P(E2eBackendTest, HttpApiAndBadInputOverTheWire) {
  // authorize, batch, verify (JSON, form, header), health, metrics.
  HttpResponse r =
      Direct("POST", "/v1/authorize",
             json({{"action", "project.import"}, {"workspace", "Marketing-Production"}}).dump(),
             {{"Authorization", "Bearer " + prod_.secret}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["allow"], true);
  r = Direct("POST", "/v1/authorize/batch",
             json({{"checks",
                    {{{"token", prod_.secret},
                      {"action", "project.import"},
                      {"workspace", "Marketing-Production"}},
                     {{"token", viewer_.secret},
                      {"action", "project.import"},
                      {"workspace", "Marketing-Production"}}}}})
                 .dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["results"][1]["errors"][0]["extensions"]["name"],
            "PreconditionError");
  r = HttpCall(sidecar_.port, "POST", "/v1/tokens/verify",
               {{"Content-Type", "application/x-www-form-urlencoded"}}, "token=" + viewer_.secret);
  EXPECT_EQ(json::parse(r.body)["username"], "prod-viewer");
  EXPECT_EQ(Direct("GET", "/healthz").status, 200);
  EXPECT_EQ(Direct("GET", "/readyz").status, 200);
  EXPECT_NE(Direct("GET", "/metrics").body.find("gatehouse_policy_info{"), std::string::npos);
  // 400 and 413.
  EXPECT_EQ(Direct("POST", "/v1/authorize", "{not json").status, 400);
  EXPECT_EQ(Direct("POST", "/v1/authorize", std::string(70 * 1024, '{')).status, 413);
  EXPECT_EQ(Direct("POST", "/v1/tokens/verify", std::string(1024 * 1024, ' ')).status, 413);

  // Random junk to every endpoint: never 5xx, never an allow, never a crash.
  std::mt19937 rng(7);
  const std::vector<std::string> paths = {"/v1/authorize",
                                          "/v1/authorize/batch",
                                          "/v1/tokens/verify",
                                          "/v1/forward-auth",
                                          "/v1/forward-auth" + kImport,
                                          "/readyz",
                                          "/nope"};
  const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  const std::vector<std::string> seeds = {
      R"({"token":"T","action":"project.import","workspace":"Marketing-Production"})",
      R"({"checks":[{"token":"T","action":"project.import","workspace":"Marketing-Production"}]})",
      R"({"token":"T"})", "token=T"};
  for (int i = 0; i < 300; ++i) {
    std::string body = seeds[rng() % seeds.size()];
    const std::string token = rng() % 2 ? viewer_.secret : "gat_" + std::to_string(rng());
    body.replace(body.find('T'), 1, token);
    for (int k = rng() % 4; k > 0; --k) body[rng() % body.size()] = static_cast<char>(rng());
    if (rng() % 5 == 0) body = body.substr(0, rng() % body.size());
    HeaderList headers;
    if (rng() % 2)
      headers.emplace_back("Authorization", (rng() % 3 ? "Bearer " : "Basic ") + token);
    if (rng() % 2) headers.emplace_back("X-Original-URI", rng() % 2 ? kImport : "/%ff/\x01");
    if (rng() % 3 == 0) headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    const std::string path = paths[rng() % paths.size()];
    r = HttpCall(sidecar_.port, methods[rng() % methods.size()], path, headers, body);
    ASSERT_GT(r.status, 0) << r.error;
    EXPECT_LT(r.status, 500) << path << " " << body;
    EXPECT_EQ(r.body.find("\"allow\":true"), std::string::npos) << path << " " << body;
  }
  EXPECT_TRUE(sidecar_.process->Running());
  EXPECT_EQ(Direct("GET", "/healthz").status, 200);
}

TEST_F(E2eTest, DecisionLogNeverHoldsASecret) {
  ViaNginx("POST", kImport, viewer_.secret);
  ViaNginx("POST", kImport, prod_.secret);
  Verify(dev_.secret);
  Direct("POST", "/v1/authorize",
         json({{"token", "gat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
               {"action", "project.import"},
               {"workspace", "x"}})
             .dump());
  const std::string text = ReadAll(dir_.File("decisions.jsonl"));
  int lines = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t nl = text.find('\n', pos);
    json j = json::parse(text.substr(pos, nl - pos), nullptr, false);
    EXPECT_FALSE(j.is_discarded());
    EXPECT_TRUE(j.contains("revision"));
    ++lines;
    pos = nl + 1;
  }
  EXPECT_EQ(lines, 4);  // one record per request, a 403 through nginx too
  for (const Token& t : {dev_, prod_, viewer_}) {
    EXPECT_EQ(text.find(t.secret.substr(8)), std::string::npos);
    EXPECT_NE(text.find(t.id), std::string::npos);
  }
  EXPECT_EQ(text.find("AAAAAAAAAAAA"), std::string::npos);
}

TEST_F(E2eTest, GracefulShutdownFinishesInFlightRequests) {
  Sidecar s = StartSidecar({});
  ASSERT_TRUE(s.process);
  HttpConnection c(s.port);
  const std::string body = json({{"token", prod_.secret},
                                 {"action", "project.import"},
                                 {"workspace", "Marketing-Production"}})
                               .dump();
  // Half a request, SIGTERM, then the other half: it is still answered.
  ASSERT_TRUE(c.SendRaw("POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, 10)));
  std::this_thread::sleep_for(200ms);
  s.process->Kill(SIGTERM);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(HttpConnection(s.port, 500).connected(), false);  // no longer accepting
  ASSERT_TRUE(c.SendRaw(body.substr(10)));
  HttpResponse r = c.ReadResponse();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(json::parse(r.body, nullptr, false)["allow"], true);
  const ProcessResult st = s.process->Wait(8s);
  ASSERT_FALSE(st.timed_out) << st;
  EXPECT_EQ(st.exit_code, 0) << st;
}

TEST_F(E2eTest, CommandLineConfigFileAndErrors) {
  // --help.
  ProcessResult r = RunProcess({kSidecar, "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--listen"), std::string::npos);
  // Usage errors exit 2.
  EXPECT_EQ(RunProcess({kSidecar, "--bogus"}).exit_code, 2);
  EXPECT_EQ(RunProcess({kSidecar, "--listen", "nonsense"}).exit_code, 2);
  EXPECT_EQ(RunProcess({kSidecar, "--io-threads", "5000"}).exit_code, 2);
  EXPECT_EQ(RunProcess({kSidecar, "--max-connections", "0"}).exit_code, 2);
  EXPECT_EQ(RunProcess({kSidecar, "--socket-mode", "999"}).exit_code, 2);
  EXPECT_EQ(RunProcess({kSidecar, "--forward-auth-source", "apache"}).exit_code, 2);
  EXPECT_EQ(RunProcess({kSidecar, "--listen", "unix:"}).exit_code, 2);
  // A missing store or a broken policy: exit 1 with the reason.
  r = RunProcess({kSidecar, "--store", dir_.File("none.db"), "--listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  WriteAll(dir_.File("broken.yaml"), "gatehouse: v1\npolicy: x\nactions: [\n");
  r = RunProcess({kSidecar, "--store", store(), "--policy", dir_.File("broken.yaml"), "--listen",
                  "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("broken.yaml:"), std::string::npos) << r.err;
  // A config file, with the store from the environment winning over it.
  WriteAll(dir_.File("gatehoused.yaml"),
           "# test\nlisten: 127.0.0.1:0\nstore: /nonexistent.db\npolicy: " + dir_.File("policies") +
               "\nthreads: 4\nsweep_interval: 0\n");
  auto p = Process::Start({kSidecar, "--config", dir_.File("gatehoused.yaml")},
                          {.env = ChildEnvironment({"GATEHOUSE_STORE=" + store()}),
                           .stderr_path = dir_.File("config.stderr")});
  ASSERT_TRUE(p);
  auto line = p->ReadLine(10s);
  ASSERT_TRUE(line) << ReadAll(dir_.File("config.stderr"));
  EXPECT_NE(line->find("4 I/O threads"), std::string::npos) << *line;
  EXPECT_NE(line->find(store()), std::string::npos) << *line;
  EXPECT_EQ(p->Stop(10s).exit_code, 0);
  WriteAll(dir_.File("bad.yaml"), "colour: blue\n");
  EXPECT_EQ(RunProcess({kSidecar, "--config", dir_.File("bad.yaml")}).exit_code,
            2);
}

TEST_F(E2eTest, ServesHttpsWithTls) {
  ProcessResult gen =
      RunProcess({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                  "-subj", "/CN=localhost", "-keyout", dir_.File("key.pem"), "-out",
                  dir_.File("cert.pem")});
  ASSERT_EQ(gen.exit_code, 0) << "openssl cannot make a certificate (scripts/setup.sh installs it): " << gen;
  Sidecar tls =
      StartSidecar({"--tls-cert", dir_.File("cert.pem"), "--tls-key", dir_.File("key.pem")});
  ASSERT_TRUE(tls.process);
  ASSERT_TRUE(fs::exists("/usr/bin/curl")) << "no curl (scripts/setup.sh installs it)";
  ProcessResult r =
      RunProcess({"/usr/bin/curl", "-sS", "--cacert", dir_.File("cert.pem"), "--resolve",
                  "localhost:" + std::to_string(tls.port) + ":127.0.0.1",
                  "https://localhost:" + std::to_string(tls.port) + "/v1/tokens/verify", "-H",
                  "Authorization: Bearer " + prod_.secret, "-X", "POST"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"active\":true"), std::string::npos) << r.out;
  EXPECT_EQ(tls.process->Stop(10s).exit_code, 0);
  // Unreadable key material: exit 1.
  EXPECT_EQ(RunProcess({kSidecar, "--store", store(), "--listen", "127.0.0.1:0", "--tls-cert",
                        dir_.File("nope.pem"), "--tls-key", dir_.File("key.pem")})
                .exit_code,
            1);
}

TEST_F(E2eTest, MutualTlsRefusesCallersWithoutACertificateFromTheCa) {
  auto ssl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/bin/openssl");
    ProcessResult r = RunProcess(args);
    EXPECT_EQ(r.exit_code, 0) << r;
  };
  const auto f = [&](const char* name) { return dir_.File(name); };
  ssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
       "-keyout", f("key.pem"), "-out", f("cert.pem")});
  ssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=callers-ca",
       "-keyout", f("ca.key"), "-out", f("ca.pem")});
  ssl({"req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=nginx", "-keyout", f("client.key"),
       "-out", f("client.csr")});
  ssl({"x509", "-req", "-in", f("client.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
       "-CAcreateserial", "-days", "1", "-out", f("client.pem")});
  // Signed by nobody the sidecar trusts.
  ssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rogue",
       "-keyout", f("rogue.key"), "-out", f("rogue.pem")});
  Sidecar tls = StartSidecar({"--tls-cert", f("cert.pem"), "--tls-key", f("key.pem"),
                              "--tls-client-ca", f("ca.pem")});
  ASSERT_TRUE(tls.process);
  const std::string port = std::to_string(tls.port);
  auto curl = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"/usr/bin/curl", "-sS", "--max-time", "5", "--cacert",
                                     f("cert.pem"), "--resolve",
                                     "localhost:" + port + ":127.0.0.1"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"https://localhost:" + port + "/v1/tokens/verify", "-H",
                             "Authorization: Bearer " + prod_.secret, "-X", "POST"});
    return RunProcess(args);
  };
  ProcessResult ok = curl({"--cert", f("client.pem"), "--key", f("client.key")});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("\"active\":true"), std::string::npos) << ok.out;
  ProcessResult none = curl({});
  EXPECT_NE(none.exit_code, 0) << none.out;
  EXPECT_EQ(none.out.find("active"), std::string::npos) << none.out;
  ProcessResult rogue = curl({"--cert", f("rogue.pem"), "--key", f("rogue.key")});
  EXPECT_NE(rogue.exit_code, 0) << rogue.out;
  EXPECT_EQ(rogue.out.find("active"), std::string::npos) << rogue.out;
  // The refused handshakes are counted.
  ProcessResult metrics = RunProcess(
      {"/usr/bin/curl", "-sS", "--max-time", "5", "--cacert", f("cert.pem"), "--resolve",
       "localhost:" + port + ":127.0.0.1", "--cert", f("client.pem"), "--key", f("client.key"),
       "https://localhost:" + port + "/metrics"});
  EXPECT_NE(metrics.out.find("gatehouse_http_connection_closes_total{reason=\"tls_handshake\"} 2"),
            std::string::npos)
      << metrics.out;
  EXPECT_EQ(tls.process->Stop(10s).exit_code, 0);
  // A client CA without a server certificate is a usage mistake: exit 1.
  EXPECT_EQ(RunProcess({kSidecar, "--store", store(), "--listen", "127.0.0.1:0",
                        "--tls-client-ca", f("ca.pem")})
                .exit_code,
            1);
}

TEST_F(E2eTest, HealthcheckSubcommandAndUnixSocketListener) {
  Sidecar tcp = StartSidecar({});
  ASSERT_TRUE(tcp.process);
  ProcessResult r =
      RunProcess({kSidecar, "healthcheck", "--listen", "127.0.0.1:" + std::to_string(tcp.port)});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_NE(r.out.find("ready"), std::string::npos) << r.out;
  EXPECT_EQ(tcp.process->Stop(10s).exit_code, 0);
  r = RunProcess({kSidecar, "healthcheck", "--listen", "127.0.0.1:" + std::to_string(tcp.port),
                  "--timeout-ms", "500"});
  EXPECT_EQ(r.exit_code, 1) << r;  // nobody there any more
  EXPECT_EQ(RunProcess({kSidecar, "healthcheck", "--listen", "nonsense"}).exit_code, 2);

  // The same over a Unix socket, created with --socket-mode.
  const std::string sock = dir_.File("gh.sock");
  auto p = Process::Start({kSidecar, "--listen", "unix:" + sock, "--socket-mode", "0600",
                           "--store", store(), "--policy", dir_.File("policies")},
                          {.stderr_path = dir_.File("unix.stderr")});
  ASSERT_TRUE(p);
  auto line = p->ReadLine(10s);
  ASSERT_TRUE(line) << ReadAll(dir_.File("unix.stderr"));
  EXPECT_NE(line->find("listening on unix:" + sock), std::string::npos) << *line;
  EXPECT_EQ(fs::status(sock).type(), fs::file_type::socket);
  EXPECT_EQ(static_cast<int>(fs::status(sock).permissions() & fs::perms::all), 0600);
  r = RunProcess({kSidecar, "healthcheck", "--listen", "unix:" + sock});
  EXPECT_EQ(r.exit_code, 0) << r;
  r = RunProcess({"/usr/bin/curl", "-sS", "--max-time", "5", "--unix-socket", sock,
                  "http://localhost/v1/tokens/verify", "-H", "Authorization: Bearer " + prod_.secret,
                  "-X", "POST"});
  EXPECT_NE(r.out.find("\"active\":true"), std::string::npos) << r.out << r.err;
  // A second sidecar on the live socket exits 1 and leaves the first serving.
  r = RunProcess({kSidecar, "--listen", "unix:" + sock, "--store", store(), "--policy",
                  dir_.File("policies")});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
  EXPECT_EQ(RunProcess({kSidecar, "healthcheck", "--listen", "unix:" + sock}).exit_code, 0);
  EXPECT_EQ(p->Stop(10s).exit_code, 0);
  EXPECT_FALSE(fs::exists(sock));  // removed on a clean stop
}

}  // namespace

// The soak (issue 5): 16 keep-alive connections of mixed authorize, verify
// and forward-auth traffic for GATEHOUSE_SOAK_SECONDS (default 60) while
// other processes revoke tokens, delete API users, flip the toggle and edit
// the policy (valid and broken edits). Zero 5xx, zero failed connections, no
// request started after a revocation committed is allowed, every import
// decision agrees with the policy revision it reports, RSS grows < 10% after
// warm-up and no file descriptor leaks.
long ProcStatusKb(pid_t pid, const std::string& key) {
  std::istringstream in(ReadAll("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

size_t OpenFds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

TEST_F(E2eTest, SoakUnderLoadWithRevocationsDeletionsToggleFlipsAndPolicyEdits) {
  using Clock = std::chrono::steady_clock;
  const char* env = std::getenv("GATEHOUSE_SOAK_SECONDS");
  const int seconds = env ? std::max(5, std::atoi(env)) : 60;
  const std::string strict_rev = Revision();
  // Tokens to use and revoke: 6 API users × 4 tokens, viewers and contributors.
  struct Tok {
    std::string secret, id, api_user;
    bool viewer = false;
    std::atomic<int64_t> revoked_at{INT64_MAX};  // steady ns after which it must be refused
  };
  std::vector<std::unique_ptr<Tok>> toks;
  for (int u = 0; u < 6; ++u) {
    const std::string name = "soak-" + std::to_string(u);
    const bool viewer = u % 2 == 1;
    ASSERT_EQ(Cli({"apiuser", "create", name, "--workspace", "Marketing-Production", "--workspace-role",
                   viewer ? "viewer" : "contributor"}).exit_code, 0);
    for (int k = 0; k < 4; ++k) {
      Token t = CreateToken(name);
      auto tok = std::make_unique<Tok>();
      tok->secret = t.secret;
      tok->id = t.id;
      tok->api_user = name;
      tok->viewer = viewer;
      toks.push_back(std::move(tok));
    }
  }
  auto now_ns = [] { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); };

  std::atomic<bool> stop{false};
  std::atomic<long> served{0}, failures{0}, revoked_allowed{0}, inconsistent{0};
  // Revisions are a canonical form's digest: the same in process as in the sidecar.
  const PolicyLoad permissive_load = LoadPolicyFromString(ViewersMayImport(), "permissive.yaml");
  ASSERT_TRUE(permissive_load.ok());
  const std::string permissive_rev = permissive_load.policy->revision();
  std::mutex mu;
  std::vector<std::string> notes;
  auto note = [&](std::string s) {
    std::lock_guard<std::mutex> lock(mu);
    if (notes.size() < 8) notes.push_back(std::move(s));
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(c);
      auto conn = std::make_unique<HttpConnection>(sidecar_.port);
      while (!stop) {
        Tok& t = *toks[rng() % toks.size()];
        const int kind = static_cast<int>(rng() % 3);
        const int64_t started = now_ns();
        HttpResponse r;
        if (kind == 0) {
          r = conn->Request("POST", "/v1/authorize", {{"Content-Type", "application/json"}},
                            json({{"token", t.secret}, {"action", "project.import"}, {"workspace", "Marketing-Production"}}).dump());
        } else if (kind == 1) {
          r = conn->Request("POST", "/v1/tokens/verify", {{"Content-Type", "application/json"}},
                            json({{"token", t.secret}}).dump());
        } else {
          r = conn->Request("POST", "/v1/forward-auth", {{"Authorization", "Bearer " + t.secret},
                            {"X-Original-Method", "POST"}, {"X-Original-URI", kImport}});
        }
        ++served;
        // The server ends a keep-alive connection after --keep-alive-max
        // requests with "Connection: close"; a client then reconnects.
        if (r.Header("connection") == "close") conn = std::make_unique<HttpConnection>(sidecar_.port);
        if (r.status == 0 || r.status >= 500) {
          ++failures;
          note("status " + std::to_string(r.status) + " " + r.error);
          conn = std::make_unique<HttpConnection>(sidecar_.port);
          continue;
        }
        json j = kind == 2 ? json() : json::parse(r.body, nullptr, false);
        const bool allowed = kind == 0 ? j.value("allow", false) : kind == 1 ? j.value("active", false) : r.status == 200;
        if (allowed && started > t.revoked_at.load()) {
          ++revoked_allowed;
          note("token " + t.id + " allowed after its revocation committed");
        }
        if (kind == 0 && !j.is_discarded() && j.contains("policy") && started < t.revoked_at.load() && j.contains("principal") &&
            !j["principal"].is_null()) {
          // A live token in its own workspace: contributors may import under
          // both policies, viewers only under the permissive one.
          const std::string rev = j["policy"]["revision"];
          const bool expect = !t.viewer || (rev != strict_rev && rev == permissive_rev);
          if (rev == strict_rev || rev == permissive_rev) {
            if (allowed != expect) {
              ++inconsistent;
              note("decision " + std::string(allowed ? "allow" : "deny") + " under " + rev + " for " + t.api_user);
            }
          }
        }
      }
    });
  }

  // Warm up with traffic and one round of every kind of change (a store
  // rebuild, a reload, a refused reload), then take the baseline.
  std::this_thread::sleep_for(2s);
  ASSERT_EQ(Cli({"settings", "set", "workspace-admins-can-create-tokens", "true"}).exit_code, 0);
  ReplaceFile(policy_file(), ViewersMayImport());
  ASSERT_TRUE(WaitFor([&] { return Revision() == permissive_rev; }));
  WriteAll(policy_file(), DefaultPolicyText() + "\n  project.import: {}\n");
  std::this_thread::sleep_for(500ms);
  ReplaceFile(policy_file(), DefaultPolicyText());
  ASSERT_TRUE(WaitFor([&] { return Revision() == strict_rev; }));
  std::this_thread::sleep_for(3s);
  const pid_t pid = sidecar_.process->pid();
  const long rss0 = ProcStatusKb(pid, "VmRSS");
  const size_t fds0 = OpenFds(pid);

  // The mutators: other processes change the store and the policy.
  std::mt19937 rng(42);
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  int revocations = 0, deletions = 0, flips = 0, edits = 0, broken = 0;
  bool toggle = true, permissive = false;
  std::vector<size_t> live(toks.size());
  for (size_t i = 0; i < toks.size(); ++i) live[i] = i;
  while (Clock::now() < end) {
    const int op = static_cast<int>(rng() % 6);
    if ((op == 0 || op == 1) && live.size() > 4) {
      const size_t pick = rng() % live.size();
      Tok& t = *toks[live[pick]];
      live.erase(live.begin() + static_cast<long>(pick));
      ProcessResult r = Cli({"token", "revoke", t.id});
      if (r.exit_code == 0) {
        t.revoked_at = now_ns();  // committed: every request starting now must be refused
        ++revocations;
      } else if (r.exit_code != 4) {
        ADD_FAILURE() << "revoke: " << r.err;
      }
    } else if (op == 2 && deletions < 2) {
      const std::string victim = "soak-" + std::to_string(4 + deletions);
      ASSERT_EQ(Cli({"apiuser", "delete", victim}).exit_code, 0);
      const int64_t at = now_ns();
      for (auto& t : toks)
        if (t->api_user == victim && t->revoked_at.load() == INT64_MAX) t->revoked_at = at;
      ++deletions;
    } else if (op == 3) {
      toggle = !toggle;
      ASSERT_EQ(Cli({"settings", "set", "workspace-admins-can-create-tokens", toggle ? "true" : "false"}).exit_code, 0);
      ++flips;
    } else if (op == 4) {
      permissive = !permissive;
      ReplaceFile(policy_file(), permissive ? ViewersMayImport() : DefaultPolicyText());
      ++edits;
    } else {
      WriteAll(policy_file(), DefaultPolicyText() + "\n  project.import: {}\n");  // broken: refused
      std::this_thread::sleep_for(250ms);
      ReplaceFile(policy_file(), permissive ? ViewersMayImport() : DefaultPolicyText());
      ++broken;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 200));
  }
  std::this_thread::sleep_for(1s);
  const long rss1 = ProcStatusKb(pid, "VmRSS");
  const size_t fds1 = OpenFds(pid);
  stop = true;
  for (auto& t : clients) t.join();

  std::cout << "soak " << seconds << " s: " << served << " requests, " << failures << " failed, " << revocations
            << " revocations, " << deletions << " API users deleted, " << flips << " toggle flips, " << edits
            << " policy edits, " << broken << " broken edits; RSS " << rss0 << " → " << rss1 << " kB; fds " << fds0
            << " → " << fds1 << "\n";
  for (const auto& n : notes) std::cout << "  " << n << "\n";
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(revoked_allowed, 0);
  EXPECT_EQ(inconsistent, 0);
  EXPECT_GT(served, 1000);
  EXPECT_GT(revocations, 0);
#if !defined(GATEHOUSE_SANITIZED)
  // (Under AddressSanitizer RSS is mostly its quarantine of freed memory.)
  EXPECT_LT(rss1, rss0 + rss0 / 10) << "RSS grew more than 10% after warm-up";
#endif
  EXPECT_LE(fds1, fds0 + 4) << "file descriptors leaked";
  EXPECT_GE(Metric("gatehouse_policy_reload_failures_total"), broken > 0 ? 1 : 0);
}


// Fail closed (issue 5): the store moved away while serving denies and makes
// /readyz 503, then recovers; a policy folder that vanishes keeps the last
// good policy.
TEST_F(E2eTest, StoreRemovedDeniesAndRecoversPolicyFolderVanishingKeepsTheLastGood) {
  auto import_allowed = [&] {
    HttpResponse r = Direct("POST", "/v1/authorize",
                            json({{"token", prod_.secret}, {"action", "project.import"}, {"workspace", "Marketing-Production"}}).dump());
    EXPECT_EQ(r.status, 200) << r.error;
    return json::parse(r.body, nullptr, false).value("allow", false);
  };
  ASSERT_TRUE(import_allowed());
  fs::rename(store(), store() + ".away");
  EXPECT_TRUE(WaitFor([&] { return Direct("GET", "/readyz").status == 503; }));
  EXPECT_FALSE(import_allowed()) << "a decision was allowed with the store gone";
  EXPECT_EQ(Verify(prod_.secret), json({{"active", false}}));
  fs::rename(store() + ".away", store());
  EXPECT_TRUE(WaitFor([&] { return Direct("GET", "/readyz").status == 200; }));
  EXPECT_TRUE(WaitFor([&] { return import_allowed(); }));

  const std::string rev = Revision();
  fs::rename(dir_.File("policies"), dir_.File("policies.away"));
  std::this_thread::sleep_for(500ms);  // several polls
  EXPECT_EQ(Revision(), rev);
  EXPECT_TRUE(import_allowed());
  EXPECT_EQ(Direct("GET", "/readyz").status, 200);
  fs::rename(dir_.File("policies.away"), dir_.File("policies"));
}

// Fail closed (issue 5): a store the sidecar's user may no longer read (an
// operator's chmod, a wrong owner after a restore) denies every check and
// makes /readyz 503, then recovers. Root reads whatever the mode says, so when
// the test runs as root this sidecar runs as nobody, on files nobody owns.
TEST_F(E2eTest, StoreMadeUnreadableToTheSidecarDeniesAndRecovers) {
  std::vector<std::string> argv;
  std::string binary = kSidecar;
  if (::geteuid() == 0) {
    ASSERT_EQ(::access("/usr/bin/setpriv", X_OK), 0) << "setpriv (util-linux) is missing";
    binary = dir_.File("gatehoused");  // the build tree may not be open to nobody
    fs::copy_file(kSidecar, binary);
    ASSERT_EQ(::chown(dir_.path().c_str(), 65534, 65534), 0);
    for (const auto& entry : fs::recursive_directory_iterator(dir_.path()))
      ASSERT_EQ(::lchown(entry.path().c_str(), 65534, 65534), 0) << entry.path();
    argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
  }
  argv.insert(argv.end(), {binary, "--listen", "127.0.0.1:0", "--store", store(), "--policy",
                           dir_.File("policies"), "--policy-poll-ms", "100"});
  Sidecar unprivileged = LaunchSidecar(argv, dir_.File("unprivileged.stderr"));
  ASSERT_TRUE(unprivileged.process) << ReadAll(dir_.File("unprivileged.stderr"));
  const int port = unprivileged.port;
  auto import_allowed = [&] {
    HttpResponse r = Direct("POST", "/v1/authorize",
                            json({{"token", prod_.secret},
                                  {"action", "project.import"},
                                  {"workspace", "Marketing-Production"}})
                                .dump(),
                            {}, port);
    EXPECT_EQ(r.status, 200) << r.error;
    return json::parse(r.body, nullptr, false).value("allow", false);
  };
  auto ready = [&] { return Direct("GET", "/readyz", "", {}, port).status; };
  ASSERT_TRUE(import_allowed());

  fs::permissions(store(), fs::perms::none);
  EXPECT_TRUE(WaitFor([&] { return ready() == 503; }));
  EXPECT_FALSE(import_allowed()) << "allowed from a store its user cannot read";
  EXPECT_EQ(Direct("POST", "/v1/tokens/verify", json({{"token", prod_.secret}}).dump(), {}, port)
                .body,
            "{\"active\":false}");

  fs::permissions(store(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_TRUE(WaitFor([&] { return ready() == 200; }));
  EXPECT_TRUE(WaitFor([&] { return import_allowed(); }));
  EXPECT_EQ(unprivileged.process->Stop(10s).exit_code, 0)
      << ReadAll(dir_.File("unprivileged.stderr"));
  EXPECT_NE(ReadAll(dir_.File("unprivileged.stderr")).find("cannot be read"), std::string::npos)
      << ReadAll(dir_.File("unprivileged.stderr"));
}

// Invariants on every load (issue 13): a sidecar whose policy folder gets an
// edit that breaks one of its invariants refuses the edit (counted, logged
// with the counterexample) and keeps serving the last good policy; the same
// for a policy that breaks a newly written --invariants file; and a sidecar
// cannot start on a policy that breaks one.
TEST_F(E2eTest, InvariantBreakingEditsAreRefusedAndTheLastGoodPolicyServes) {
  const std::string seed = ReadAll(std::string(GATEHOUSE_SOURCE_DIR) + "/policies/invariants/seed.yaml");
  ASSERT_FALSE(seed.empty());
  fs::create_directories(dir_.File("inv/invariants"));
  WriteAll(dir_.File("inv/api-tokens.yaml"), DefaultPolicyText());
  WriteAll(dir_.File("inv/invariants/seed.yaml"), seed);
  const std::vector<std::string> common = {kSidecar, "--listen", "127.0.0.1:0", "--store", store(),
                                           "--policy-poll-ms", "100", "--sweep-interval", "0"};
  std::vector<std::string> argv = common;
  argv.insert(argv.end(), {"--policy", dir_.File("inv")});
  Sidecar s = LaunchSidecar(argv, dir_.File("inv.stderr"));
  ASSERT_TRUE(s.process) << ReadAll(dir_.File("inv.stderr"));
  auto allowed = [&](int port, const Token& t, const std::string& action) {
    HttpResponse r = Direct("POST", "/v1/authorize",
                            json({{"token", t.secret}, {"action", action}, {"workspace", "Marketing-Production"}}).dump(),
                            {}, port);
    EXPECT_EQ(r.status, 200) << r.error;
    return json::parse(r.body, nullptr, false).value("allow", false);
  };
  auto failures = [&](int port) {
    HttpResponse r = Direct("GET", "/metrics", "", {}, port);
    const std::string key = "\ngatehouse_policy_reload_failures_total ";
    const size_t at = r.body.find(key);
    return at == std::string::npos ? -1.0 : std::stod(r.body.substr(at + key.size()));
  };
  const std::string good = Revision(s.port);
  ASSERT_FALSE(good.empty());
  EXPECT_FALSE(allowed(s.port, viewer_, "project.import"));
  EXPECT_TRUE(allowed(s.port, prod_, "project.import"));

  // The viewer-import edit: it compiles, but breaks viewers-never-import-or-export.
  ReplaceFile(dir_.File("inv/api-tokens.yaml"), ViewersMayImport());
  EXPECT_TRUE(WaitFor([&] { return failures(s.port) >= 1; })) << ReadAll(dir_.File("inv.stderr"));
  EXPECT_EQ(Revision(s.port), good);
  EXPECT_FALSE(allowed(s.port, viewer_, "project.import")) << "the refused edit is serving";
  EXPECT_TRUE(allowed(s.port, prod_, "project.import"));
  const std::string log = ReadAll(dir_.File("inv.stderr"));
  EXPECT_NE(log.find(dir_.File("inv/invariants/seed.yaml") + ":"), std::string::npos) << log;
  EXPECT_NE(log.find("invariant viewers-never-import-or-export broken"), std::string::npos) << log;
  EXPECT_NE(log.find("counterexample project.import with kind=user"), std::string::npos) << log;
  EXPECT_NE(log.find("keeps serving"), std::string::npos) << log;
  // Dropping the invariant lets the edit through: it was the invariant that refused it.
  fs::remove(dir_.File("inv/invariants/seed.yaml"));
  EXPECT_TRUE(WaitFor([&] { return Revision(s.port) != good; })) << ReadAll(dir_.File("inv.stderr"));
  EXPECT_TRUE(allowed(s.port, viewer_, "project.import"));
  EXPECT_EQ(s.process->Stop(10s).exit_code, 0);

  // --invariants: a folder of its own, watched like the policy. The permissive
  // policy serves until an invariant it breaks is written there.
  fs::create_directories(dir_.File("team-invariants"));
  argv = common;
  argv.insert(argv.end(), {"--policy", dir_.File("inv"), "--invariants", dir_.File("team-invariants")});
  Sidecar t = LaunchSidecar(argv, dir_.File("team.stderr"));
  ASSERT_TRUE(t.process) << ReadAll(dir_.File("team.stderr"));
  const std::string permissive = Revision(t.port);
  WriteAll(dir_.File("team-invariants/seed.yaml"), seed);
  EXPECT_TRUE(WaitFor([&] { return failures(t.port) >= 1; })) << ReadAll(dir_.File("team.stderr"));
  EXPECT_EQ(Revision(t.port), permissive);
  EXPECT_NE(ReadAll(dir_.File("team.stderr")).find(dir_.File("team-invariants/seed.yaml") + ":"), std::string::npos);
  EXPECT_EQ(t.process->Stop(10s).exit_code, 0);

  // Starting on a policy that breaks an invariant: exit 1 with the counterexample.
  ProcessResult r = RunProcess(argv);
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("invariant viewers-never-import-or-export broken"), std::string::npos) << r;
}

// ---------------------------------------------------------------------------
// Backup and restore with a sidecar running (issue 10, item 14): a file swap
// would let SQLite replay the old -wal onto the restored file; `store
// restore` writes the backup into the live database instead, so the running
// sidecar sees one more commit and a token made after the backup is gone for
// it and for the CLI alike.

TEST_F(E2eTest, RestoreWhileTheSidecarRunsTakesEffectForItAtOnce) {
  const std::string backup = dir_.File("backup.db");
  ProcessResult r = Cli({"store", "backup", backup});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Token later = CreateToken("prod-importer");
  ASSERT_EQ(Verify(later.secret)["active"], true);
  ASSERT_EQ(ViaNginx("POST", kImport, later.secret).status, 200);
  // A change of role after the backup, too.
  ASSERT_EQ(Cli({"apiuser", "promote", "prod-viewer", "--workspace-role", "contributor"}).exit_code, 0);
  ASSERT_EQ(ViaNginx("POST", kImport, viewer_.secret).status, 200);

  r = Cli({"store", "restore", backup});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The very next requests, with no pause: the sidecar follows the restore.
  EXPECT_EQ(Verify(later.secret), json({{"active", false}}));
  EXPECT_EQ(ViaNginx("POST", kImport, later.secret).status, 401);
  EXPECT_EQ(ViaNginx("POST", kImport, viewer_.secret).status, 403);  // the viewer again
  EXPECT_EQ(ViaNginx("POST", kImport, prod_.secret).status, 200);    // made before the backup
  std::vector<std::string> env = env_;
  env.push_back("GATEHOUSE_TOKEN=" + later.secret);
  ProcessResult v = RunCli({"token", "verify"}, env);
  EXPECT_EQ(v.exit_code, 3) << v.out << v.err;
  EXPECT_EQ(Direct("GET", "/readyz").status, 200);
  // The store goes on working for both after the restore.
  const Token fresh = CreateToken("prod-importer");
  EXPECT_EQ(ViaNginx("POST", kImport, fresh.secret).status, 200);
}

// ---------------------------------------------------------------------------
// Through nginx, one request is one question to the sidecar (issue 10, item
// 13): allowed, denied, without a token, with a bad token, each gives exactly
// one decision-log record and one forward-auth count, under the request id
// the client sent (or one the sidecar made up), which the client gets back.

TEST_F(E2eTest, OneRequestThroughNginxIsOneDecisionRecordAndOneCount) {
  auto forward_auth_requests = [&] {
    HttpResponse r = Direct("GET", "/metrics");
    double sum = 0;
    const std::string prefix = "gatehouse_http_requests_total{endpoint=\"forward_auth\"";
    for (size_t at = r.body.find("\n" + prefix); at != std::string::npos; at = r.body.find("\n" + prefix, at + 1)) {
      const size_t space = r.body.find(' ', at + 1);
      sum += std::stod(r.body.substr(space + 1));
    }
    return sum;
  };
  const double counted_before = forward_auth_requests();
  struct Case {
    std::string id, method, path, token;
    int status;
    std::string decision, rule;
  };
  const std::vector<Case> cases = {
      {"req-allowed-1", "POST", kImport, prod_.secret, 200, "allow", ""},
      {"req-denied-1", "POST", kImport, viewer_.secret, 403, "deny", "contributors-and-up"},
      {"req-no-token-1", "POST", kImport, "", 401, "deny", "missing-token"},
      {"req-bad-token-1", "POST", kImport, "gat_garbage", 401, "deny", "inactive-token"},
      {"req-unmapped-1", "GET", "/nowhere", prod_.secret, 403, "deny", "no-route"},
      {"req-unsafe-1", "POST", "/workspaces/Marketing-Production/projects/%2e%2e/import", prod_.secret, 403,
       "deny", "unsafe-path"},
  };
  for (const Case& c : cases) {
    HttpResponse r = ViaNginx(c.method, c.path, c.token, {{"X-Request-Id", c.id}});
    EXPECT_EQ(r.status, c.status) << c.id << " " << r.body;
    EXPECT_EQ(r.Header("x-request-id"), c.id) << c.id;
    if (c.status == 403) {  // the decision's body reaches the client
      json j = json::parse(r.body, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << c.id << ": " << r.body;
      EXPECT_EQ(r.Header("content-type"), "application/json");
    }
  }
  // No id, or a malformed one: the sidecar makes one up, and the client gets it.
  HttpResponse made_up = ViaNginx("POST", kImport, viewer_.secret);
  const std::string made_up_id = made_up.Header("x-request-id");
  EXPECT_FALSE(made_up_id.empty());
  HttpResponse malformed = ViaNginx("POST", kImport, prod_.secret, {{"X-Request-Id", "bad id with spaces"}});
  const std::string replaced_id = malformed.Header("x-request-id");
  EXPECT_FALSE(replaced_id.empty());
  EXPECT_NE(replaced_id, "bad id with spaces");
  EXPECT_NE(replaced_id, made_up_id);
  // The service received the same id as the client.
  EXPECT_EQ(json::parse(malformed.body, nullptr, false).value("request_id", ""), replaced_id) << malformed.body;

  std::map<std::string, std::vector<json>> by_id;
  const std::string text = ReadAll(dir_.File("decisions.jsonl"));
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    json j = json::parse(text.substr(pos, nl - pos), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << text.substr(pos, nl - pos);
    if (j.value("endpoint", "") == "forward_auth") by_id[j.value("request_id", "")].push_back(j);
    pos = nl + 1;
  }
  for (const Case& c : cases) {
    ASSERT_EQ(by_id[c.id].size(), 1u) << c.id << " has " << by_id[c.id].size() << " records:\n" << text;
    const json& rec = by_id[c.id][0];
    EXPECT_EQ(rec["decision"], c.decision) << rec.dump();
    if (!c.rule.empty()) {
      ASSERT_FALSE(rec["rules"].empty()) << rec.dump();
      EXPECT_EQ(rec["rules"][0], c.rule) << rec.dump();
    }
    EXPECT_EQ(rec["method"], c.method) << rec.dump();
  }
  EXPECT_EQ(by_id[made_up_id].size(), 1u) << text;
  EXPECT_EQ(by_id[replaced_id].size(), 1u) << text;
  EXPECT_EQ(by_id.size(), cases.size() + 2) << text;  // nothing else asked
  EXPECT_EQ(forward_auth_requests() - counted_before, static_cast<double>(cases.size() + 2));
}

// Replay (issue 13): the decision log records the resolved inputs of every
// decision the policy made; `gatehouse policy replay` re-decides a log under a
// candidate policy and lists exactly the requests whose decision would change
// — under the viewer-import edit, exactly the viewer's imports.
TEST_F(E2eTest, ReplayingTheDecisionLogUnderTheViewerImportEditListsExactlyTheViewerImports) {
  auto authorize = [&](const Token& t, const std::string& action, const std::string& ws) {
    return Direct("POST", "/v1/authorize", json({{"token", t.secret}, {"action", action}, {"workspace", ws}}).dump());
  };
  const std::string prod = "Marketing-Production", dev = "Marketing-Development";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(authorize(viewer_, "project.import", prod).status, 200);
  EXPECT_EQ(authorize(viewer_, "project.export", prod).status, 200);
  EXPECT_EQ(authorize(prod_, "project.import", prod).status, 200);
  EXPECT_EQ(authorize(dev_, "project.export", dev).status, 200);
  EXPECT_EQ(authorize(dev_, "project.import", prod).status, 200);  // denied by token.use, stays denied
  EXPECT_EQ(ViaNginx("POST", kImport, viewer_.secret).status, 403);  // forward-auth, logged too
  EXPECT_EQ(ViaNginx("POST", kExport, dev_.secret).status, 200);
  EXPECT_EQ(Direct("POST", "/v1/authorize",
                   json({{"user", "alice@demo.test"}, {"action", "token.create"}, {"workspace", dev},
                         {"params", {{"lifetime_seconds", "30d"}}}}).dump())
                .status,
            200);
  EXPECT_EQ(authorize(Token{"gat_notarealtoken", ""}, "project.import", prod).status, 200);  // no inputs
  // The log's own view: which records are the viewer's denied imports.
  const std::string log_path = dir_.File("decisions.jsonl");
  // Each line is written before its reply is sent (decision_log.h).
  std::set<std::string> viewer_imports;
  size_t with_inputs = 0;
  const std::string log_text = ReadAll(log_path);
  for (size_t at = 0, nl; (nl = log_text.find('\n', at)) != std::string::npos; at = nl + 1) {
    const std::string line = log_text.substr(at, nl - at);
    json rec = json::parse(line, nullptr, false);
    ASSERT_TRUE(rec.is_object()) << line;
    if (rec.contains("inputs")) {
      ++with_inputs;
      EXPECT_TRUE(rec["inputs"].contains("workspace_type") && rec["inputs"].contains("settings")) << line;
    }
    if (rec["action"] == "project.import" && rec["principal"] == "prod-viewer" && rec["decision"] == "deny")
      viewer_imports.insert(rec["request_id"].get<std::string>());
  }
  ASSERT_GE(viewer_imports.size(), 4u);  // ours (the proxy may add its own)
  ASSERT_GE(with_inputs, 9u);

  WriteAll(dir_.File("viewer-import.yaml"), ViewersMayImport());
  ProcessResult r = Cli({"policy", "replay", "--decision-log", log_path, dir_.File("viewer-import.yaml"), "--json"});
  ASSERT_EQ(r.exit_code, 1) << r;
  json out = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(out.is_object()) << r;
  EXPECT_EQ(out["changed"].get<size_t>(), viewer_imports.size());
  EXPECT_EQ(out["replayed"].get<size_t>(), with_inputs);
  ASSERT_EQ(out["changes"].size(), 1u) << out.dump(2);
  const json& g = out["changes"][0];
  EXPECT_EQ(g["action"], "project.import");
  EXPECT_EQ(g["from"], "deny");
  EXPECT_EQ(g["to"], "allow");
  std::set<std::string> listed;
  for (const auto& by : g["by_inputs"]) {
    EXPECT_EQ(by["inputs"]["workspace_role"], "viewer");
    for (const auto& req : by["requests"]) listed.insert(req["request_id"].get<std::string>());
  }
  EXPECT_EQ(listed, viewer_imports);
  // The policy the log was recorded under changes nothing; text output names the group.
  EXPECT_EQ(Cli({"policy", "replay", "--decision-log", log_path, policy_file()}).exit_code, 0);
  r = Cli({"policy", "replay", "--decision-log", log_path, dir_.File("viewer-import.yaml")});
  EXPECT_NE(r.out.find("project.import: deny → allow (" + std::to_string(viewer_imports.size()) + " requests)"), std::string::npos) << r;
  EXPECT_EQ(Cli({"policy", "replay", "--decision-log", dir_.File("nope.jsonl"), policy_file()}).exit_code, 2);
}


// ---------------------------------------------------------------------------
// Shadow evaluation (issue 13, item 2): gatehoused --shadow-policy decides
// every request on a candidate too. Candidates are made by flipping cells of
// the default policy (a permit or a forbid added under one condition, a
// route dropped, a setting added so the candidate reads other inputs, random
// flips). For each one the same requests (authorize, batch, forward-auth;
// every principal of the demo × every action × every workspace) go to three
// sidecars: the live one without a shadow (the fixture's), the live one with
// the candidate as shadow, and one serving the candidate as its live policy.
// The shadow sidecar must answer exactly as the live one, and its divergences
// (decision-log records with "shadow", the counter) must be exactly the
// requests the other two answer differently — with the candidate's own rules
// — and, for the cell flips, exactly the (action, from, to) `policy diff`
// lists.

TEST_F(E2eTest, ShadowPolicyDivergencesAreExactlyTheCellsTheCandidateDecidesDifferently) {
  // More cells: a person who administers a workspace, and a personal workspace.
  ASSERT_EQ(Cli({"member", "add", "alice@demo.test", "--workspace", "Marketing-Development", "--role", "admin"}).exit_code, 0);
  ASSERT_EQ(Cli({"workspace", "create", "Alice-Personal", "--type", "personal", "--owner", "alice@demo.test"}).exit_code, 0);
  const std::string live_text = DefaultPolicyText();
  const PolicyLoad live = LoadPolicyFromString(live_text, "live.yaml");
  ASSERT_TRUE(live.ok());

  struct Candidate {
    std::string name, text;
    bool cells_only;  // only cells change: `policy diff` lists exactly the divergences
  };
  std::vector<Candidate> candidates = {
      {"viewer-import", AddRule(live_text, "project.import", true, "principal.workspace_role == viewer", "shadow-viewers"), true},
      {"no-api-export", AddRule(live_text, "project.export", false, "principal.kind == api_user", "shadow-no-api"), true},
      {"viewers-use-no-token", AddRule(live_text, "token.use", false, "principal.workspace_role == viewer", "shadow-no-viewer-tokens"), true},
      // The token.use gate: every action an API contributor was allowed diverges
      // (`policy diff` lists the gate's own cells only, so not cells_only).
      {"contributors-use-no-token", AddRule(live_text, "token.use", false, "principal.workspace_role == contributor", "shadow-no-contributor-tokens"), false},
      {"contributor-tokens-new-setting",
       Replace(AddRule(live_text, "token.create", true, "principal.org_role == contributor and workspace.type == shared", "shadow-contributors"),
               "\nsettings:\n", "\nsettings:\n  shadow_extra: {type: bool, default: false}\n"),
       false},
      {"no-import-route", Replace(live_text, "  - {method: POST, path: \"/workspaces/{workspace}/projects/{project}/import\", action: project.import}\n", ""), false},
      {"equal", "# the same policy, a comment apart\n" + live_text, true},
  };
  // Random flips of one cell class each (fixed seed: a failure reproduces).
  const std::vector<std::string> atoms = {
      "principal.kind == user", "principal.kind == api_user", "principal.workspace_role == viewer",
      "principal.workspace_role == contributor", "principal.workspace_role == admin",
      "principal.workspace_role == none", "principal.org_role == contributor", "principal.org_role == owner",
      "workspace.type == organization", "workspace.type == shared", "workspace.type == personal"};
  std::mt19937 rng(20261201);
  for (int i = 0; i < 3; ++i) {
    const ActionInfo& a = live.policy->actions()[rng() % live.policy->actions().size()];
    const std::string when = atoms[rng() % atoms.size()] + " and " + atoms[rng() % atoms.size()];
    candidates.push_back({"random-" + std::to_string(i), AddRule(live_text, a.name, rng() % 2 == 0, when, "shadow-random"), true});
  }

  // The requests: every principal × action × workspace, alone and as batches,
  // and forward-auth for every token × route × workspace.
  struct Probe {
    std::string id, path, body;
    HeaderList headers;
  };
  std::vector<Probe> probes;
  const std::vector<std::string> workspaces = {"Organization", "Marketing-Development", "Marketing-Production", "Alice-Personal"};
  std::vector<std::pair<std::string, std::string>> principals = {
      {"token", dev_.secret}, {"token", prod_.secret}, {"token", viewer_.secret},
      {"user", "owner@demo.test"}, {"user", "alice@demo.test"}};
  auto params_of = [](const ActionInfo& a) {
    json params = json::object();
    for (const ParamInfo& p : a.params) {
      if (p.name == "lifetime_seconds") params[p.name] = "30d";
      else if (p.type == ValueType::kOrgRole) params[p.name] = "admin";
      else if (p.type == ValueType::kWorkspaceRole) params[p.name] = "viewer";
    }
    return params;
  };
  for (size_t pi = 0; pi < principals.size(); ++pi) {
    for (const std::string& ws : workspaces) {
      json batch = json::array();
      for (const ActionInfo& a : live.policy->actions()) {
        json check = {{principals[pi].first, principals[pi].second}, {"action", a.name}, {"workspace", ws}, {"params", params_of(a)}};
        batch.push_back(check);
        probes.push_back({"a" + std::to_string(probes.size()), "/v1/authorize", check.dump(), {}});
      }
      probes.push_back({"b" + std::to_string(probes.size()), "/v1/authorize/batch", json({{"checks", batch}}).dump(), {}});
    }
  }
  for (const Token* t : {&dev_, &prod_, &viewer_}) {
    for (const std::string what : {"import", "export"}) {
      for (const std::string ws : {"Marketing-Development", "Marketing-Production"}) {
        probes.push_back({"f" + std::to_string(probes.size()), "/v1/forward-auth", "",
                          {{"Authorization", "Bearer " + t->secret}, {"X-Original-Method", "POST"},
                           {"X-Original-URI", "/workspaces/" + ws + "/projects/p1/" + what}}});
      }
    }
  }
  // One answer per decision of a probe, in order: allow, and the rules.
  using Answer = std::pair<bool, std::vector<std::string>>;
  auto rules_of = [](const json& d) {
    std::vector<std::string> out;
    if (d.is_object() && d.contains("reasons") && d["reasons"].is_array())
      for (const auto& r : d["reasons"]) out.push_back(r.value("rule", ""));
    return out;
  };
  auto ask = [&](int port) {
    std::map<std::string, std::vector<Answer>> out;
    for (const Probe& p : probes) {
      HeaderList h = p.headers;
      h.emplace_back("X-Request-Id", p.id);
      HttpResponse r = Direct(p.body.empty() ? "GET" : "POST", p.path, p.body, h, port);
      json j = json::parse(r.body, nullptr, false);
      if (p.path == "/v1/forward-auth") {
        EXPECT_TRUE(r.status == 200 || r.status == 403) << p.id << " " << r.status << " " << r.body;
        out[p.id].push_back({r.status == 200, r.status == 200 ? std::vector<std::string>{} : rules_of(j)});
      } else if (p.path == "/v1/authorize/batch") {
        EXPECT_EQ(r.status, 200) << p.body << " " << r.body;
        if (j.is_object() && j["results"].is_array())
          for (const auto& d : j["results"]) out[p.id].push_back({d.value("allow", false), rules_of(d)});
      } else {
        EXPECT_EQ(r.status, 200) << p.body << " " << r.body;
        out[p.id].push_back({j.is_object() && j.value("allow", false), rules_of(j)});
      }
    }
    return out;
  };
  // The records of a decision log by request id, in order.
  auto records = [&](const std::string& path) {
    std::map<std::string, std::vector<json>> out;
    const std::string text = ReadAll(path);
    for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
      json rec = json::parse(text.substr(at, nl - at), nullptr, false);
      EXPECT_TRUE(rec.is_object());
      if (rec.is_object()) out[rec.value("request_id", "")].push_back(rec);
    }
    return out;
  };
  auto divergence_metrics = [&](int port) {
    std::map<std::tuple<std::string, std::string, std::string>, double> out;
    const std::string body = Direct("GET", "/metrics", "", {}, port).body;
    const std::string key = "gatehouse_shadow_divergences_total{action=\"";
    for (size_t at = body.find("\n" + key); at != std::string::npos; at = body.find("\n" + key, at + 1)) {
      const size_t a = at + 1 + key.size();
      const size_t a_end = body.find('"', a);
      const size_t l = body.find("live=\"", a_end) + 6;
      const size_t s = body.find("shadow=\"", l) + 8;
      const size_t v = body.find("} ", s) + 2;
      out[{body.substr(a, a_end - a), body.substr(l, body.find('"', l) - l), body.substr(s, body.find('"', s) - s)}] =
          std::stod(body.substr(v));
    }
    return out;
  };

  const auto live_answers = ask(sidecar_.port);
  ASSERT_EQ(live_answers.size(), probes.size());
  for (size_t ci = 0; ci < candidates.size(); ++ci) {
    const Candidate& c = candidates[ci];
    SCOPED_TRACE("candidate " + c.name + ":\n" + c.text.substr(0, 0));
    const std::string dir = dir_.File("cand-" + std::to_string(ci));
    fs::create_directories(dir);
    WriteAll(dir + "/api-tokens.yaml", c.text);
    const PolicyLoad cand = LoadPolicyFromString(c.text, "cand.yaml");
    ASSERT_TRUE(cand.ok()) << c.name << ": " << (cand.errors.empty() ? "" : cand.errors[0].ToString());
    const std::vector<std::string> common = {kSidecar, "--listen", "127.0.0.1:0", "--store", store(),
                                             "--sweep-interval", "0", "--threads", "8"};
    std::vector<std::string> argv = common;
    argv.insert(argv.end(), {"--policy", dir_.File("policies"), "--shadow-policy", dir,
                             "--decision-log", dir + ".shadow.jsonl"});
    Sidecar shadow = LaunchSidecar(argv, dir + ".shadow.stderr");
    ASSERT_TRUE(shadow.process) << ReadAll(dir + ".shadow.stderr");
    argv = common;
    argv.insert(argv.end(), {"--policy", dir, "--decision-log", dir + ".cand.jsonl"});
    Sidecar as_live = LaunchSidecar(argv, dir + ".cand.stderr");
    ASSERT_TRUE(as_live.process) << ReadAll(dir + ".cand.stderr");

    const auto shadow_answers = ask(shadow.port);
    const auto cand_answers = ask(as_live.port);
    EXPECT_EQ(shadow_answers, live_answers) << c.name << ": a shadow changed an answer";
    const auto shadow_log = records(dir + ".shadow.jsonl");
    const auto cand_log = records(dir + ".cand.jsonl");
    // Expected: every decision the candidate answers differently.
    std::map<std::tuple<std::string, std::string, std::string>, double> expected_counts;
    std::set<std::tuple<std::string, std::string, std::string>> cells;
    size_t diverged = 0, logged = 0;
    for (const Probe& p : probes) {
      const auto& l = live_answers.at(p.id);
      const auto& k = cand_answers.at(p.id);
      ASSERT_EQ(l.size(), k.size()) << p.id;
      const auto& recs = shadow_log.count(p.id) ? shadow_log.at(p.id) : std::vector<json>{};
      const auto& krecs = cand_log.count(p.id) ? cand_log.at(p.id) : std::vector<json>{};
      ASSERT_EQ(recs.size(), l.size()) << p.id << ": one record per decision";
      ASSERT_EQ(krecs.size(), l.size()) << p.id;
      for (size_t i = 0; i < l.size(); ++i) {
        const json& rec = recs[i];
        EXPECT_EQ(rec["decision"], l[i].first ? "allow" : "deny") << rec.dump();
        if (rec.contains("shadow")) ++logged;
        if (l[i].first == k[i].first) {
          EXPECT_FALSE(rec.contains("shadow")) << c.name << " " << p.id << ": no divergence, yet " << rec.dump();
          continue;
        }
        ++diverged;
        const std::string action = rec.value("action", "");
        const std::string from = l[i].first ? "allow" : "deny", to = k[i].first ? "allow" : "deny";
        ++expected_counts[{action, from, to}];
        if (p.path != "/v1/forward-auth") cells.insert({action, from, to});
        ASSERT_TRUE(rec.contains("shadow")) << c.name << " " << p.id << ": the candidate answers " << to << ", not logged: " << rec.dump();
        EXPECT_EQ(rec["shadow"]["decision"], to);
        EXPECT_EQ(rec["shadow"]["revision"], cand.policy->revision());
        EXPECT_EQ(rec["shadow"]["rules"], krecs[i]["rules"]) << "the candidate's own deciding rules";
      }
    }
    EXPECT_EQ(logged, diverged) << c.name;
    EXPECT_EQ(divergence_metrics(shadow.port), expected_counts) << c.name;
    // `policy diff` lists exactly these cells (every flipped cell is one the requests reach).
    ProcessResult d = Cli({"--json", "policy", "diff", policy_file(), dir + "/api-tokens.yaml"});
    json diff = json::parse(d.out, nullptr, false);
    ASSERT_TRUE(diff.is_object()) << d;
    std::set<std::tuple<std::string, std::string, std::string>> listed;
    for (const auto& ch : diff["changes"])
      listed.emplace(ch["action"].get<std::string>(), ch["from"].get<std::string>(), ch["to"].get<std::string>());
    if (c.cells_only) {
      if (c.name.rfind("random-", 0) == 0) {
        for (const auto& cell : cells) EXPECT_TRUE(listed.count(cell)) << c.name << ": " << std::get<0>(cell) << " not in the diff " << d.out;
      } else {
        EXPECT_EQ(cells, listed) << c.name << ": " << d.out;
      }
    }
    if (c.name == "equal") {
      EXPECT_EQ(d.exit_code, 0) << d;
      EXPECT_EQ(diverged, 0u);
      EXPECT_TRUE(divergence_metrics(shadow.port).empty());
    } else if (c.cells_only && c.name.rfind("random-", 0) != 0) {
      EXPECT_GT(diverged, 0u) << c.name << ": the requests should reach the flipped cells";
    }
    json ready = json::parse(Direct("GET", "/readyz", "", {}, shadow.port).body, nullptr, false);
    EXPECT_EQ(ready["shadow_policy"]["revision"], cand.policy->revision());
    EXPECT_EQ(ready["policy"]["revision"], live.policy->revision());
    std::cerr << "candidate " << c.name << ": " << diverged << " divergent decisions of "
              << [&] { size_t n = 0; for (const auto& [id, a] : live_answers) n += a.size(); return n; }() << "\n";
    EXPECT_EQ(shadow.process->Stop(10s).exit_code, 0);
    EXPECT_EQ(as_live.process->Stop(10s).exit_code, 0);
  }
}

TEST_F(E2eTest, ShadowPolicyReloadsLikeTheLiveOneAndABrokenCandidateIsRefused) {
  // The candidate is a folder with the seed's invariants, as a team would keep it.
  const std::string seed = ReadAll(std::string(GATEHOUSE_SOURCE_DIR) + "/policies/invariants/seed.yaml");
  ASSERT_FALSE(seed.empty());
  fs::create_directories(dir_.File("cand/invariants"));
  const std::string candidate = dir_.File("cand/api-tokens.yaml");
  // API users may list tokens: deny → allow for dev-exporter, and no invariant breaks.
  const std::string api_lists =
      AddRule(DefaultPolicyText(), "token.list", true, "principal.kind == api_user", "shadow-api-lists");
  WriteAll(candidate, api_lists);
  WriteAll(dir_.File("cand/invariants/seed.yaml"), seed);
  Sidecar s = LaunchSidecar({kSidecar, "--listen", "127.0.0.1:0", "--store", store(), "--policy", dir_.File("policies"),
                             "--shadow-policy", dir_.File("cand"), "--policy-poll-ms", "100", "--sweep-interval", "0",
                             "--decision-log", dir_.File("reload.jsonl")},
                            dir_.File("reload.stderr"));
  ASSERT_TRUE(s.process) << ReadAll(dir_.File("reload.stderr"));
  auto shadow_revision = [&] {
    json j = json::parse(Direct("GET", "/readyz", "", {}, s.port).body, nullptr, false);
    return j.is_object() && j.contains("shadow_policy") ? j["shadow_policy"]["revision"].get<std::string>() : "";
  };
  auto metric = [&](const std::string& line) {
    const std::string body = Direct("GET", "/metrics", "", {}, s.port).body;
    const size_t at = body.find("\n" + line + " ");
    return at == std::string::npos ? 0.0 : std::stod(body.substr(at + line.size() + 2));
  };
  const std::string list_divergence =
      "gatehouse_shadow_divergences_total{action=\"token.list\",live=\"deny\",shadow=\"allow\"}";
  const std::string import_divergence =
      "gatehouse_shadow_divergences_total{action=\"project.import\",live=\"deny\",shadow=\"allow\"}";
  auto ask = [&](const Token& t, const std::string& action) {
    HttpResponse r = Direct("POST", "/v1/authorize",
                            json({{"token", t.secret}, {"action", action}, {"workspace", "Marketing-Development"}}).dump(),
                            {}, s.port);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false).value("allow", false);
  };
  const std::string first = shadow_revision();
  ASSERT_FALSE(first.empty());
  EXPECT_NE(first, Revision(s.port));
  EXPECT_FALSE(ask(dev_, "token.list")) << "the answer is the live policy's";
  EXPECT_EQ(metric(list_divergence), 1);

  // A candidate that does not parse: refused, logged, counted; the last good one keeps shadowing.
  ReplaceFile(candidate, api_lists + "\nactions: [\n");
  EXPECT_TRUE(WaitFor([&] { return metric("gatehouse_shadow_policy_reloads_total{result=\"error\"}") >= 1; }))
      << ReadAll(dir_.File("reload.stderr"));
  EXPECT_EQ(shadow_revision(), first);
  EXPECT_FALSE(ask(dev_, "token.list"));
  EXPECT_EQ(metric(list_divergence), 2) << "the refused candidate is shadowing";
  std::string log = ReadAll(dir_.File("reload.stderr"));
  EXPECT_NE(log.find("shadow policy reload failed; the previous candidate (" + first + ") keeps shadowing"), std::string::npos) << log;
  EXPECT_NE(log.find(candidate + ":"), std::string::npos) << "FILE:LINE:COL errors: " << log;

  // A candidate that breaks one of its invariants: refused the same way, with the counterexample.
  ReplaceFile(candidate, AddRule(DefaultPolicyText(), "project.import", true, "principal.workspace_role == viewer", "shadow-viewers"));
  EXPECT_TRUE(WaitFor([&] { return metric("gatehouse_shadow_policy_reloads_total{result=\"error\"}") >= 2; }))
      << ReadAll(dir_.File("reload.stderr"));
  EXPECT_EQ(shadow_revision(), first);
  log = ReadAll(dir_.File("reload.stderr"));
  EXPECT_NE(log.find("invariant viewers-never-import-or-export broken"), std::string::npos) << log;
  EXPECT_FALSE(ask(viewer_, "project.import"));
  EXPECT_EQ(metric(import_divergence), 0) << "the refused candidate is shadowing";

  // A good candidate (SIGHUP as well as the file watch): shadowed from the next request on.
  ReplaceFile(candidate, DefaultPolicyText());
  s.process->Kill(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return shadow_revision() == Revision(s.port); })) << ReadAll(dir_.File("reload.stderr"));
  EXPECT_GE(metric("gatehouse_shadow_policy_reloads_total{result=\"ok\"}"), 1);
  EXPECT_FALSE(ask(dev_, "token.list"));
  EXPECT_EQ(metric(list_divergence), 2) << "an equal candidate diverges nowhere";

  // The live policy moves: the shadow compares with the new live one.
  ReplaceFile(policy_file(), api_lists);
  EXPECT_TRUE(WaitFor([&] { return Revision(s.port) != shadow_revision(); })) << ReadAll(dir_.File("reload.stderr"));
  EXPECT_TRUE(ask(dev_, "token.list")) << "the live policy answers";
  EXPECT_EQ(metric("gatehouse_shadow_divergences_total{action=\"token.list\",live=\"allow\",shadow=\"deny\"}"), 1);
  EXPECT_EQ(s.process->Stop(10s).exit_code, 0);

  // Starting on a candidate that does not load: exit 1 with its errors.
  ReplaceFile(candidate, "gatehouse: v1\npolicy: [\n");
  ProcessResult r = RunProcess({kSidecar, "--listen", "127.0.0.1:0", "--store", store(), "--shadow-policy", dir_.File("cand")});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("shadow policy " + dir_.File("cand") + " does not load"), std::string::npos) << r;
  EXPECT_NE(r.err.find(candidate + ":"), std::string::npos) << r;
}

}  // namespace gatehouse::testing
