// HttpServer over real sockets, in process: the cpp-httplib tuning (no
// delayed-ACK stalls, long keep-alive), limits, timeouts, and stopping.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "sidecar/fixture.h"
#include "sidecar/http_client.h"
#include "sidecar/http_server.h"

namespace gatehouse::sidecar {
namespace {

using gatehouse::testing::HttpCall;
using gatehouse::testing::HttpConnection;
using gatehouse::testing::HttpResponse;
using gatehouse::testing::TempDir;
using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    demo_ = gatehouse::testing::CreateDemoStore(dir_.File("gatehouse.db"));
    gatehouse::testing::WriteAll(dir_.File("policy.yaml"), gatehouse::testing::DefaultPolicyText());
    StateOptions so;
    so.store_path = demo_.path;
    so.policy_path = dir_.File("policy.yaml");
    so.clock = &clock_;
    so.policy_poll_ms = 0;
    so.sweep_interval_s = 0;
    auto state = State::Open(so, &metrics_);
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    state_ = std::move(state).value();
    handlers_ = std::make_unique<Handlers>(state_.get(), nullptr);
    ServerOptions o;
    o.port = 0;
    o.threads = 4;
    o.read_timeout_s = 1;
    o.keep_alive_timeout_s = 2;
    o.payload_max_bytes = 64 * 1024;
    auto server = HttpServer::Create(o, handlers_.get(), &metrics_);
    ASSERT_TRUE(server.ok());
    server_ = std::move(server).value();
    auto port = server_->Bind();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    thread_ = std::thread([this] { (void)server_->Run(); });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string Token(const std::string& name) { return demo_.tokens.at(name).secret; }

  TempDir dir_;
  gatehouse::testing::DemoStore demo_;
  FakeClock clock_{gatehouse::testing::kNow};
  Metrics metrics_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Handlers> handlers_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  int port_ = 0;
};

TEST_F(ServerTest, ServesTheApi) {
  HttpResponse r = HttpCall(port_, "POST", "/v1/authorize", {{"Content-Type", "application/json"}},
                            json({{"token", Token("prod-importer")},
                                  {"action", "project.import"},
                                  {"workspace", "Marketing-Production"}})
                                .dump());
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(json::parse(r.body)["allow"], true);
  r = HttpCall(port_, "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("gatehouse_http_requests_total{endpoint=\"authorize\",code=\"200\"} 1"),
            std::string::npos);
}

TEST_F(ServerTest, KeepAliveLastsAndNoDelayedAckStall) {
  // cpp-httplib's defaults close after 5 requests and, without TCP_NODELAY,
  // stall ~40 ms per reply: 200 requests would take ~8 s.
  HttpConnection c(port_);
  ASSERT_TRUE(c.connected());
  const std::string body = json({{"token", Token("prod-importer")}}).dump();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) {
    HttpResponse r =
        c.Request("POST", "/v1/tokens/verify", {{"Content-Type", "application/json"}}, body);
    ASSERT_EQ(r.status, 200) << i << ": " << r.error;
    ASSERT_NE(r.Header("connection"), "close") << i;
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(2))
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
}

TEST_F(ServerTest, OversizedBodiesAre413) {
  HttpResponse r = HttpCall(port_, "POST", "/v1/authorize", {{"Content-Type", "application/json"}},
                            std::string(64 * 1024 + 1, ' '));
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_NE(r.body.find("too large"), std::string::npos) << r.body;
  // A huge Content-Length is refused without reading it.
  HttpConnection c(port_);
  ASSERT_TRUE(c.SendRaw(
      "POST /v1/tokens/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{"));
  r = c.ReadResponse();
  EXPECT_EQ(r.status, 413) << r.error;
  // Exactly the limit is fine (whitespace around a JSON body).
  r = HttpCall(port_, "POST", "/v1/tokens/verify", {},
               json({{"token", Token("prod-importer")}}).dump() + std::string(64 * 1024 - 52, ' '));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_GE(metrics_.requests(Endpoint::kAuthorize, 413), 1u);
}

TEST_F(ServerTest, MalformedHttpNeverCrashes) {
  for (const std::string& raw : std::vector<std::string>{
           "GARBAGE\r\n\r\n", "GET\r\n\r\n", "POST /v1/authorize HTTP/9.9\r\n\r\n",
           "PROPFIND /v1/forward-auth HTTP/1.1\r\nHost: x\r\n\r\n",
           "GET /" + std::string(10000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n",
           "GET / HTTP/1.1\r\nX: " + std::string(10000, 'b') + "\r\n\r\n",
           "POST /v1/authorize HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    HttpConnection c(port_, 3000);
    ASSERT_TRUE(c.connected());
    c.SendRaw(raw);
    HttpResponse r = c.ReadResponse();
    EXPECT_TRUE(r.status == 0 || (r.status >= 400 && r.status < 500))
        << raw.substr(0, 40) << " -> " << r.status;
  }
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);
}

TEST_F(ServerTest, BodilessPostIsAnsweredAtOnce) {
  // No Content-Length, no Transfer-Encoding: no body (nginx auth subrequests).
  HttpConnection c(port_);
  ASSERT_TRUE(c.SendRaw("POST /v1/forward-auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: /x\r\n\r\n"));
  const auto start = std::chrono::steady_clock::now();
  HttpResponse r = c.ReadResponse();
  EXPECT_EQ(r.status, 401);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  // The connection stays usable.
  EXPECT_EQ(c.Request("GET", "/healthz").status, 200);
  ASSERT_TRUE(c.SendRaw("POST /v1/authorize HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(c.ReadResponse().status, 400);
}

TEST_F(ServerTest, ForwardAuthAnswersUnusualMethods) {
  for (const char* m : {"TRACE", "OPTIONS", "DELETE", "PUT", "PATCH", "HEAD"}) {
    HttpResponse r = HttpCall(port_, m, "/v1/forward-auth");
    EXPECT_EQ(r.status, 401) << m << " " << r.error;
  }
  HttpResponse r =
      HttpCall(port_, "GET", "/v1/forward-auth",
               {{"Authorization", "Bearer " + Token("prod-importer")},
                {"X-Original-Method", "POST"},
                {"X-Original-URI", "/workspaces/Marketing-Production/projects/p/import"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("x-gatehouse-subject"), "prod-importer");
}

TEST_F(ServerTest, SlowClientIsCutOffByTheReadTimeout) {
  HttpConnection c(port_, 5000);
  ASSERT_TRUE(c.SendRaw("POST /v1/authorize HTTP/1.1\r\nHost: x\r\n"));  // never finishes
  const auto start = std::chrono::steady_clock::now();
  HttpResponse r = c.ReadResponse();  // closed (or answered 4xx) after ~1 s
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(4000));
  EXPECT_TRUE(r.status == 0 || r.status >= 400);
}

TEST_F(ServerTest, StopFinishesWithAnOpenKeepAliveConnection) {
  HttpConnection c(port_);
  ASSERT_EQ(c.Request("GET", "/healthz").status, 200);
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  // cpp-httplib 0.11 lets an idle keep-alive connection run out its
  // keep-alive timeout (2 s here) before the worker sees the stop.
  thread_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(3500));
  EXPECT_TRUE(c.ClosedByPeer(1000));
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 0);  // no longer listening
}

}  // namespace
}  // namespace gatehouse::sidecar
