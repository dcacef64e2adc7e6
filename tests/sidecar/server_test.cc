// HttpServer (Beast) over real sockets, in process: framing (RFC 9112),
// limits, deadlines, pipelining, half-close, connection limits, binding, the
// Unix socket, and stopping. Every malformed case goes over a raw socket so
// that no client library normalises it first.
#include <gtest/gtest.h>

#include <dirent.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "sidecar/fixture.h"
#include "sidecar/http_client.h"
#include "sidecar/http_server.h"

namespace gatehouse::sidecar {
namespace {

using gatehouse::testing::ConnectLoopbackTcp;
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
    if (start_in_setup_) Start(DefaultOptions());
  }
  static ServerOptions DefaultOptions() {
    ServerOptions o;
    o.port = 0;
    o.threads = 2;
    o.read_timeout_s = 1;
    o.keep_alive_timeout_s = 2;
    o.payload_max_bytes = 64 * 1024;
    return o;
  }
  void Start(const ServerOptions& o) {
    auto server = HttpServer::Create(o, handlers_.get(), &metrics_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
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
  bool start_in_setup_ = true;
};

// Sends `raw` on a fresh connection and reads one reply.
HttpResponse Raw(int port, const std::string& raw) {
  HttpConnection c(port, 3000);
  if (!c.connected() || !c.SendRaw(raw)) return HttpResponse{};
  return c.ReadResponse();
}

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
  // Without TCP_NODELAY every reply would wait ~40 ms for a delayed ACK: 200
  // requests would take ~8 s.
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
  ASSERT_TRUE(c.SendRaw(
      "POST /v1/forward-auth HTTP/1.1\r\nHost: x\r\nX-Original-Method: GET\r\nX-Original-URI: /x\r\n\r\n"));
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
  // Idle connections are closed at once, not after their keep-alive timeout.
  thread_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
  EXPECT_TRUE(c.ClosedByPeer(1000));
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 0);  // no longer listening
}

TEST_F(ServerTest, ConflictingOrMalformedFramingIs400AndCloses) {
  const std::string start = "POST /v1/tokens/verify HTTP/1.1\r\nHost: x\r\n";
  const std::string body = "{}";
  for (const std::string& framing : std::vector<std::string>{
           "Content-Length: 2\r\nContent-Length: 2\r\n",           // duplicate, equal
           "Content-Length: 2\r\nContent-Length: 3\r\n",           // duplicate, different
           "Content-Length: 2, 2\r\n",                              // a list
           "Content-Length: +2\r\n",                                // a sign
           "Content-Length: -1\r\n",                                // negative
           "Content-Length: 99999999999999999999999\r\n",           // 23 digits
           "Content-Length: 0x2\r\n",                               // not decimal
           "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",  // both
           "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",  // both, other order
           "Transfer-Encoding: gzip\r\n",                           // unknown coding
           "Transfer-Encoding: gzip, chunked\r\n",                  // a coding before chunked
           "Transfer-Encoding: chunked, chunked\r\n",               // chunked twice
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
       }) {
    HttpConnection c(port_, 3000);
    ASSERT_TRUE(c.SendRaw(start + framing + "\r\n" + body));
    HttpResponse r = c.ReadResponse();
    EXPECT_EQ(r.status, 400) << framing << r.error;
    EXPECT_EQ(r.Header("connection"), "close") << framing;
    EXPECT_TRUE(c.ClosedByPeer(2000)) << framing;
  }
  // Host: missing or repeated in HTTP/1.1.
  EXPECT_EQ(Raw(port_, "GET /healthz HTTP/1.1\r\n\r\n").status, 400);
  EXPECT_EQ(Raw(port_, "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status, 400);
  EXPECT_EQ(Raw(port_, "GET /healthz HTTP/1.0\r\n\r\n").status, 200);  // 1.0 needs none
  EXPECT_EQ(Raw(port_, "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n").status, 400);
  EXPECT_GE(metrics_.connection_closes(Metrics::ConnectionClose::kBadFraming), 13u);
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);  // still serving
}

TEST_F(ServerTest, PipelinedRequestsAreEachAnsweredInOrder) {
  const std::string verify = json({{"token", Token("prod-importer")}}).dump();
  std::string batch;
  for (int i = 0; i < 20; ++i) {
    const std::string id = "req-" + std::to_string(i);
    if (i % 2 == 0) {
      batch += "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + id + "\r\n\r\n";
    } else {
      batch += "POST /v1/tokens/verify HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + id +
               "\r\nContent-Length: " + std::to_string(verify.size()) + "\r\n\r\n" + verify;
    }
  }
  HttpConnection c(port_, 3000);
  ASSERT_TRUE(c.SendRaw(batch));  // one write: every request arrives together
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = c.ReadResponse();
    ASSERT_EQ(r.status, 200) << i << " " << r.error;
    EXPECT_EQ(r.Header("x-request-id"), "req-" + std::to_string(i));
    if (i % 2 == 1) {
      EXPECT_EQ(json::parse(r.body)["active"], true) << i;
    }
  }
}

TEST_F(ServerTest, HalfClosedClientStillGetsItsReply) {
  HttpConnection c(port_, 3000);
  const std::string body = json({{"token", Token("prod-importer")}}).dump();
  ASSERT_TRUE(c.SendRaw("POST /v1/tokens/verify HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body));
  c.ShutdownWrite();
  HttpResponse r = c.ReadResponse();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(json::parse(r.body)["active"], true);
  EXPECT_TRUE(c.ClosedByPeer(2000));
}

TEST_F(ServerTest, HeaderBytesAndFieldsAreCappedWith431) {
  HttpResponse r = Raw(port_, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                  std::string(20 * 1024, 'a') + "\r\n\r\n");
  EXPECT_EQ(r.status, 431) << r.error;
  std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 120; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
  r = Raw(port_, many + "\r\n");
  EXPECT_EQ(r.status, 431) << r.error;
  EXPECT_NE(r.body.find("too many header fields"), std::string::npos) << r.body;
  // A header that never ends is cut at the limit, not buffered.
  HttpConnection c(port_, 3000);
  ASSERT_TRUE(c.SendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: "));
  bool answered = false;
  for (int i = 0; i < 64 && !answered; ++i) {
    if (!c.SendRaw(std::string(4096, 'z'))) answered = true;  // closed on us
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) answered = true;
  }
  EXPECT_TRUE(answered) << "256 KiB of one header line were accepted";
  EXPECT_EQ(c.ReadResponse().status, 431);
}

TEST_F(ServerTest, ChunkedBodiesObeyThePayloadLimit) {
  // Within the limit: a chunked verify works.
  const std::string body = json({{"token", Token("prod-importer")}}).dump();
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  HttpResponse r = Raw(port_, "POST /v1/tokens/verify HTTP/1.1\r\nHost: x\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n" +
                                  std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  // Past it: 413, whatever the chunking.
  HttpConnection c(port_, 3000);
  ASSERT_TRUE(c.SendRaw("POST /v1/authorize/batch HTTP/1.1\r\nHost: x\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"));
  bool refused = false;
  for (int i = 0; i < 64 && !refused; ++i) {  // up to 4 MiB in 64 KiB chunks
    if (!c.SendRaw("10000\r\n" + std::string(0x10000, ' ') + "\r\n")) refused = true;
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) refused = true;
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(c.ReadResponse().status, 413);
}

TEST_F(ServerTest, TricklingDoesNotExtendTheHeaderDeadline) {
  HttpConnection c(port_, 5000);
  ASSERT_TRUE(c.SendRaw("POST /v1/authorize HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() - start < std::chrono::seconds(4)) {
    if (!c.SendRaw("a")) closed = true;
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 200) > 0) closed = c.ClosedByPeer(100);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(closed) << "a byte every 200 ms kept the connection for 4 s";
  EXPECT_LT(took, std::chrono::milliseconds(2500));  // read timeout 1 s
  // The client sees the close before the server's handler counts it.
  for (int i = 0; i < 100; ++i) {
    if (metrics_.connection_closes(Metrics::ConnectionClose::kHeaderTimeout) >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(metrics_.connection_closes(Metrics::ConnectionClose::kHeaderTimeout), 1u);
}

// The deadlines are enforced by each I/O thread's periodic sweep, not a timer
// per operation: each kind of stalled connection is closed no earlier than its
// timeout (read 1 s, keep-alive 2 s here) and not much later, and counted
// under its own reason.
TEST_F(ServerTest, DeadlineSweepClosesEachStalledConnectionAtItsTimeout) {
  using std::chrono::milliseconds;
  const auto start = std::chrono::steady_clock::now();
  HttpConnection silent(port_, 5000);  // connects, never sends: header deadline from the accept
  HttpConnection slow(port_, 5000);    // half a header
  ASSERT_TRUE(slow.SendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  HttpConnection body(port_, 5000);  // a whole header, 2 of its 10 body bytes
  ASSERT_TRUE(body.SendRaw("POST /v1/tokens/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\""));
  HttpConnection idle(port_, 5000);  // one request answered, then idle
  ASSERT_EQ(idle.Request("GET", "/healthz").status, 200);
  const auto idle_since = std::chrono::steady_clock::now();
  struct Watched {
    HttpConnection* c;
    std::chrono::steady_clock::time_point from;
    milliseconds timeout;
    std::optional<milliseconds> closed_after;
  };
  std::vector<Watched> watched = {{&silent, start, milliseconds(1000), {}},
                                  {&slow, start, milliseconds(1000), {}},
                                  {&body, start, milliseconds(1000), {}},
                                  {&idle, idle_since, milliseconds(2000), {}}};
  // Bounded: every connection is closed within 5 s, or the test fails.
  for (int round = 0; round < 500; ++round) {
    bool open = false;
    for (auto& w : watched) {
      if (w.closed_after) continue;
      pollfd p{w.c->fd(), POLLIN, 0};
      if (::poll(&p, 1, 0) > 0 && w.c->ClosedByPeer(10)) {
        w.closed_after = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - w.from);
      } else {
        open = true;
      }
    }
    if (!open) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  for (const auto& w : watched) {
    ASSERT_TRUE(w.closed_after.has_value()) << "a connection with a " << w.timeout.count()
                                            << " ms timeout was still open after 5 s";
    EXPECT_GE(*w.closed_after, w.timeout - milliseconds(50));
    // The sweep's granularity is 250 ms; the rest is a loaded machine's slack.
    EXPECT_LT(*w.closed_after, w.timeout + milliseconds(1500));
  }
  for (int i = 0; i < 100; ++i) {  // the client may see the close before it is counted
    if (metrics_.connection_closes(Metrics::ConnectionClose::kIdleTimeout) >= 1) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kHeaderTimeout), 2u);
  EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kBodyTimeout), 1u);
  EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kIdleTimeout), 1u);
}

// Connections opened together expire together (a client that opens many
// slow-header connections at once): each is closed at its own deadline and
// counted, in slices of the sweep, while connections with later deadlines
// (idle keep-alive ones, opened in between, so the sweep's table is
// reshuffled as the others end) keep theirs and keep being served.
TEST_F(ServerTest, ConnectionsExpiringTogetherAreAllClosedAndOthersKeepTheirDeadlines) {
  using std::chrono::milliseconds;
  constexpr int kSlow = 240;  // per I/O thread, several of the sweep's slices
  constexpr int kIdle = 24;
  std::vector<std::unique_ptr<HttpConnection>> slow, idle;
  const auto first_open = std::chrono::steady_clock::now();
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<HttpConnection>(port_, 5000));
    ASSERT_TRUE(slow.back()->SendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\n")) << i;
    if (i % (kSlow / kIdle) == 0) {
      idle.push_back(std::make_unique<HttpConnection>(port_, 5000));
      ASSERT_EQ(idle.back()->Request("GET", "/healthz").status, 200);
    }
  }
  const auto idle_since = std::chrono::steady_clock::now();
  // Bounded: read timeout (1 s) + 2 s.
  int open = kSlow;
  std::vector<bool> closed(kSlow, false);
  while (open > 0 && std::chrono::steady_clock::now() - idle_since < milliseconds(3000)) {
    for (int i = 0; i < kSlow; ++i) {
      if (closed[i]) continue;
      pollfd p{slow[i]->fd(), POLLIN, 0};
      if (::poll(&p, 1, 0) > 0 && slow[i]->ClosedByPeer(10)) {
        closed[i] = true;
        --open;
      }
    }
    EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(open, 0) << "slow-header connections still open 3 s after their 1 s deadline";
  for (int i = 0; i < 100; ++i) {
    if (metrics_.connection_closes(Metrics::ConnectionClose::kHeaderTimeout) >= kSlow) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kHeaderTimeout),
            static_cast<uint64_t>(kSlow));
  // The idle ones (keep-alive timeout 2 s) are open and served, if there is
  // time left before their timeout to ask (a loaded machine may take it).
  if (std::chrono::steady_clock::now() - first_open < milliseconds(1700)) {
    for (auto& c : idle) {
      pollfd p{c->fd(), POLLIN, 0};
      EXPECT_EQ(::poll(&p, 1, 0), 0) << "an idle connection was closed before its timeout";
    }
    EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kIdleTimeout), 0u);
    for (auto& c : idle) EXPECT_EQ(c->Request("GET", "/healthz").status, 200);
  }
}

TEST_F(ServerTest, RequestIdIsTheCallersWhenWellFormed) {
  HttpResponse r = HttpCall(port_, "GET", "/healthz", {{"X-Request-Id", "3f2a-b9:c.d_e"}});
  EXPECT_EQ(r.Header("x-request-id"), "3f2a-b9:c.d_e");
  for (const std::string& bad : {std::string("has space"), std::string(200, 'a'),
                                 std::string("quote\""), std::string("\x1b[31m")}) {
    r = HttpCall(port_, "GET", "/healthz", {{"X-Request-Id", bad}});
    EXPECT_FALSE(r.Header("x-request-id").empty());
    EXPECT_NE(r.Header("x-request-id"), bad);
  }
  // Made-up ids differ.
  EXPECT_NE(HttpCall(port_, "GET", "/healthz").Header("x-request-id"),
            HttpCall(port_, "GET", "/healthz").Header("x-request-id"));
}

TEST_F(ServerTest, ExpectContinueAndHead) {
  const std::string body = json({{"token", Token("prod-importer")}}).dump();
  HttpConnection c(port_, 3000);
  ASSERT_TRUE(c.SendRaw("POST /v1/tokens/verify HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  HttpResponse r = c.ReadResponse(/*head=*/true);
  EXPECT_EQ(r.status, 100);
  ASSERT_TRUE(c.SendRaw(body));
  r = c.ReadResponse();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["active"], true);
  // HEAD: the length of the body, and no body.
  r = c.Request("HEAD", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.Header("content-length"), "0");
  EXPECT_EQ(c.Request("GET", "/healthz").status, 200);  // the stream is still in step
}

// One reply's bytes off a raw socket, exactly as sent: the header block and
// Content-Length bytes of body (none for HEAD), or all until the server
// closes when `until_close`.
std::string RawReply(int fd, bool head, bool until_close) {
  std::string got;
  char buf[4096];
  for (int i = 0; i < 1000; ++i) {  // bounded; each recv waits at most the socket timeout
    const size_t end = got.find("\r\n\r\n");
    if (!until_close && end != std::string::npos) {
      size_t length = 0;
      const size_t at = got.find("\r\nContent-Length: ");
      if (at != std::string::npos && at < end) length = std::stoul(got.substr(at + 18));
      if (head || got.size() >= end + 4 + length) return got;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// The server writes its replies itself (one preformatted buffer), no longer
// through Beast's serializer: every class of reply keeps the bytes it had
// (these are the old server's replies, captured before the change), down to
// the order of the fields and the Connection header of each HTTP version.
TEST_F(ServerTest, ReplyBytesAreThoseOfTheBeastSerializer) {
  const std::string token = Token("prod-importer");
  const std::string id = demo_.tokens.at("prod-importer").id;
  const std::string rid = "X-Request-Id: rid-1\r\n";
  auto ask = [&](const std::string& raw, bool head = false, bool until_close = false) {
    HttpConnection c(port_, 3000);
    EXPECT_TRUE(c.SendRaw(raw));
    return RawReply(c.fd(), head, until_close);
  };
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + rid;
  const std::string healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n" + rid + "\r\n";
  EXPECT_EQ(ask(healthz), ok + "Content-Length: 15\r\n\r\n{\"status\":\"ok\"}");
  EXPECT_EQ(ask("HEAD /healthz HTTP/1.1\r\nHost: x\r\n" + rid + "\r\n", true),
            ok + "Content-Length: 15\r\n\r\n");
  EXPECT_EQ(ask("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + rid + "\r\n", false, true),
            ok + "Connection: close\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}");
  EXPECT_EQ(ask("GET /healthz HTTP/1.0\r\n" + rid + "\r\n", false, true),
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n" + rid +
                "Content-Length: 15\r\n\r\n{\"status\":\"ok\"}");
  EXPECT_EQ(ask("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n" + rid + "\r\n"),
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n" + rid +
                "Connection: keep-alive\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}");
  EXPECT_EQ(ask("GET /nope HTTP/1.1\r\nHost: x\r\n" + rid + "\r\n"),
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n" + rid +
                "Content-Length: 35\r\n\r\n{\"error\":\"no such endpoint: /nope\"}");
  EXPECT_EQ(ask("DELETE /v1/authorize HTTP/1.1\r\nHost: x\r\n" + rid + "\r\n"),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nAllow: POST\r\n" +
                rid + "Content-Length: 40\r\n\r\n{\"error\":\"method not allowed; use POST\"}");
  const std::string fa = "GET /v1/forward-auth HTTP/1.1\r\nHost: x\r\n";
  const std::string import_uri =
      "X-Original-Method: POST\r\nX-Original-URI: /workspaces/Marketing-Production/projects/p1/import\r\n";
  EXPECT_EQ(ask(fa + import_uri + rid + "\r\n"),
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
            "WWW-Authenticate: Bearer realm=\"gatehouse\"\r\n" + rid +
                "Content-Length: 47\r\n\r\n{\"error\":\"missing Authorization: Bearer token\"}");
  EXPECT_EQ(ask(fa + "Authorization: Bearer " + token + "\r\n" + import_uri + rid + "\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            "X-Gatehouse-Subject: prod-importer\r\nX-Gatehouse-Workspace: Marketing-Production\r\n"
            "X-Gatehouse-Role: contributor\r\nX-Gatehouse-Org-Role: viewer\r\n"
            "X-Gatehouse-Token-Id: " + id + "\r\nX-Gatehouse-Action: project.import\r\n" + rid +
                "Content-Length: 14\r\n\r\n{\"allow\":true}");
  // Bodies that carry the policy's revision: the header block, and a body of
  // the length it announces.
  auto header_block = [](const std::string& reply) {
    return reply.substr(0, reply.find("\r\n\r\n") + 4);
  };
  auto body_of = [](const std::string& reply) { return reply.substr(reply.find("\r\n\r\n") + 4); };
  const std::string deny = ask(fa + "Authorization: Bearer " + token +
                               "\r\nX-Original-Method: DELETE\r\nX-Original-URI: "
                               "/workspaces/Marketing-Production\r\n" + rid + "\r\n");
  const std::string decision = body_of(deny);
  EXPECT_EQ(header_block(deny), "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                                "X-Gatehouse-Decision: " + decision + "\r\n" + rid +
                                    "Content-Length: " + std::to_string(decision.size()) + "\r\n\r\n");
  const std::string authorize_body =
      json({{"token", token}, {"action", "project.import"}, {"workspace", "Marketing-Production"}}).dump();
  const std::string allow =
      ask("POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + rid +
          "Content-Length: " + std::to_string(authorize_body.size()) + "\r\n\r\n" + authorize_body);
  EXPECT_EQ(header_block(allow),
            ok + "Content-Length: " + std::to_string(body_of(allow).size()) + "\r\n\r\n");
  EXPECT_EQ(json::parse(body_of(allow))["allow"], true);
  // The server's own refusals: a made-up request id, then close.
  auto without_id = [](std::string reply) {
    const size_t at = reply.find("X-Request-Id: ");
    if (at != std::string::npos) reply.erase(at + 14, reply.find("\r\n", at) - at - 14);
    return reply;
  };
  const std::string refused = "Content-Type: application/json\r\nX-Request-Id: \r\nConnection: close\r\n";
  EXPECT_EQ(without_id(ask("POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                           "Content-Length: 2\r\n\r\nab", false, true)),
            "HTTP/1.1 400 Bad Request\r\n" + refused +
                "Content-Length: 54\r\n\r\n{\"error\":\"malformed HTTP request: bad Content-Length\"}");
  EXPECT_EQ(without_id(ask("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                           "\r\n\r\n", false, true)),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n" + refused +
                "Content-Length: 58\r\n\r\n{\"error\":\"request header too large (at most 16384 bytes)\"}");
  EXPECT_EQ(without_id(ask("POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
                           false, true)),
            "HTTP/1.1 413 Payload Too Large\r\n" + refused +
                "Content-Length: 56\r\n\r\n{\"error\":\"request body too large (at most 65536 bytes)\"}");
}

class ServerLimitsTest : public ServerTest {
 protected:
  ServerLimitsTest() { start_in_setup_ = false; }
};

TEST_F(ServerLimitsTest, IdleAndSlowConnectionsHoldNoThread) {
  // Two I/O threads; 300 idle keep-alive and 300 half-sent connections,
  // with timeouts far past the test's length: on a loaded machine opening
  // 600 connections can take longer than the usual 1 s header deadline,
  // and then the count below would miss the ones the server rightly closed.
  ServerOptions o = DefaultOptions();
  o.read_timeout_s = 30;
  o.keep_alive_timeout_s = 30;
  Start(o);
  std::vector<std::unique_ptr<HttpConnection>> held;
  for (int i = 0; i < 300; ++i) {
    auto c = std::make_unique<HttpConnection>(port_, 3000);
    ASSERT_EQ(c->Request("GET", "/healthz").status, 200);
    held.push_back(std::move(c));
    auto s = std::make_unique<HttpConnection>(port_, 3000);
    ASSERT_TRUE(s->SendRaw("POST /v1/authorize HTTP/1.1\r\nHost: x\r\n"));
    held.push_back(std::move(s));
  }
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  }
  EXPECT_GE(metrics_.connections_open(), 600);
}

TEST_F(ServerLimitsTest, PastMaxConnectionsNewOnesGet503AtOnce) {
  ServerOptions o = DefaultOptions();
  o.max_connections = 8;
  Start(o);
  std::vector<std::unique_ptr<HttpConnection>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(std::make_unique<HttpConnection>(port_, 3000));
    ASSERT_EQ(held.back()->Request("GET", "/healthz").status, 200);
  }
  const auto start = std::chrono::steady_clock::now();
  HttpResponse r = Raw(port_, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_EQ(metrics_.connections_refused(), 1u);
  // The open ones keep being served; closing one makes room.
  EXPECT_EQ(held[3]->Request("GET", "/healthz").status, 200);
  held.pop_back();
  for (int i = 0; i < 50; ++i) {  // the close reaches the server asynchronously
    if (metrics_.connections_open() < 8) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);
}

TEST_F(ServerLimitsTest, ASecondServerOnABusyPortFailsToBind) {
  Start(DefaultOptions());
  ServerOptions o = DefaultOptions();
  o.port = port_;
  auto second = HttpServer::Create(o, handlers_.get(), &metrics_);
  ASSERT_TRUE(second.ok());
  auto bound = (*second)->Bind();
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().ToString().find("in use"), std::string::npos)
      << bound.status().ToString();
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);
}

TEST_F(ServerLimitsTest, UnixSocketWithItsModeAndNoStaleFileProblem) {
  const std::string path = dir_.File("gatehoused.sock");
  gatehouse::testing::WriteAll(path + ".not-a-socket", "x");
  ServerOptions o = DefaultOptions();
  o.unix_path = path + ".not-a-socket";
  auto refused = HttpServer::Create(o, handlers_.get(), &metrics_);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE((*refused)->Bind().ok());  // never removes a file that is not a socket

  o.unix_path = path;
  o.socket_mode = 0600;
  Start(o);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  HttpConnection c(path, 3000);
  ASSERT_TRUE(c.connected());
  const std::string body = json({{"token", Token("prod-importer")}}).dump();
  HttpResponse r = c.Request("POST", "/v1/tokens/verify", {}, body);
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(json::parse(r.body)["active"], true);
  // A second server on the live socket fails; the first keeps its file.
  auto second = HttpServer::Create(o, handlers_.get(), &metrics_);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE((*second)->Bind().ok());
  EXPECT_EQ(HttpConnection(path, 3000).Request("GET", "/healthz").status, 200);
}


// ---------------------------------------------------------------------------
// Replies the socket does not take at once: the write timeout, and the
// keep-alive connection whose reply was only partly taken.

// A loopback client socket whose receive buffer is set before the connection
// (so the window it advertises is small from the start); raw, for clients
// that stop reading.
class RawClient {
 public:
  RawClient(int port, int rcvbuf, int sndbuf = 0, int timeout_ms = 5000)
      : fd_(ConnectLoopbackTcp(port, timeout_ms, rcvbuf, sndbuf)) {}
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  int fd() const { return fd_; }

  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Sends what the socket takes without waiting; how much it took.
  size_t SendSome(const std::string& bytes) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  // Exactly n more bytes of the stream (fewer if it ends or times out).
  std::string Take(size_t n) {
    std::string got;
    while (got.size() < n) {
      if (buf_.empty() && !Fill()) break;
      const size_t k = std::min(n - got.size(), buf_.size());
      got.append(buf_, 0, k);
      buf_.erase(0, k);
    }
    return got;
  }
  // The next whole reply's bytes: the header block and Content-Length bytes.
  std::string NextReply() {
    for (int i = 0; i < 100000; ++i) {  // bounded; each Fill waits at most the timeout
      const size_t end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const size_t at = buf_.find("\r\nContent-Length: ");
        if (at != std::string::npos && at < end) length = std::stoul(buf_.substr(at + 18));
        if (buf_.size() >= end + 4 + length) {
          std::string reply = buf_.substr(0, end + 4 + length);
          buf_.erase(0, end + 4 + length);
          return reply;
        }
      }
      if (!Fill()) break;
    }
    return std::exchange(buf_, std::string());
  }
  // Bytes received and not read yet (by the kernel's count).
  size_t Queued() const {
    int n = 0;
    return ::ioctl(fd_, FIONREAD, &n) == 0 ? static_cast<size_t>(n) : 0;
  }
  // The server reset or closed the connection (seen without reading).
  bool HungUp() const {
    pollfd p{fd_, 0, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
  }

 private:
  bool Fill() {
    char tmp[16384];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
};

bool SameEndpoint(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_family == b.sin_family && a.sin_port == b.sin_port &&
         a.sin_addr.s_addr == b.sin_addr.s_addr;
}

// The server's end of a loopback connection: the server runs in this
// process, so its accepted socket is one of our descriptors (the one whose
// local address is the client's peer and whose peer is the client). -1 if
// the server has not accepted it (yet).
int ServerEndOf(int client_fd) {
  sockaddr_in local{}, peer{};
  socklen_t len = sizeof local;
  if (::getsockname(client_fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return -1;
  len = sizeof peer;
  if (::getpeername(client_fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return -1;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = ::readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == client_fd || fd == ::dirfd(dir)) continue;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_in a{}, b{};
    socklen_t la = sizeof a, lb = sizeof b;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &la) != 0 || la != sizeof a) continue;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&b), &lb) != 0 || lb != sizeof b) continue;
    if (SameEndpoint(a, peer) && SameEndpoint(b, local)) {
      found = fd;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// Bytes a socket holds that its peer has not acknowledged yet.
size_t Unsent(int fd) {
  int n = 0;
  return ::ioctl(fd, SIOCOUTQ, &n) == 0 ? static_cast<size_t>(n) : 0;
}

class ServerWriteTest : public ServerTest {
 protected:
  ServerWriteTest() { start_in_setup_ = false; }

  // A batch of n checks, allowed and denied in turn, as one raw request.
  std::string BatchRequest(int n, const std::string& request_id) {
    json checks = json::array();
    for (int i = 0; i < n; ++i) {
      checks.push_back({{"token", Token("prod-importer")},
                        {"action", i % 2 == 0 ? "project.import" : "token.revoke"},
                        {"workspace", "Marketing-Production"}});
    }
    const std::string body = json({{"checks", checks}}).dump();
    return "POST /v1/authorize/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "X-Request-Id: " + request_id + "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }
  static std::string Healthz(const std::string& request_id) {
    return "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + request_id + "\r\n\r\n";
  }
  // A reply's bytes as a client that reads at once gets them.
  std::string Reference(const std::string& raw) {
    RawClient c(port_, 0);
    EXPECT_TRUE(c.Send(raw));
    return c.NextReply();
  }
};

// A client that sends requests but never reads the replies is closed once the
// write has been stalled for --write-timeout, counted as write_timeout, while
// everyone else keeps being served. Several kinds of stalled clients at once:
// pipelined /metrics, pipelined batches, pipelined small replies, each with
// its own small receive buffer.
TEST_F(ServerWriteTest, ClientThatNeverReadsIsClosedByTheWriteTimeout) {
  ServerOptions o = DefaultOptions();
  o.read_timeout_s = 4;  // longer than the write timeout: only the write timeout can close them
  o.keep_alive_timeout_s = 4;
  o.write_timeout_s = 1;
  o.payload_max_bytes = 1 << 20;
  Start(o);
  struct Stalled {
    std::string name;
    std::string requests;  // sent over and over
    int rcvbuf;
    std::unique_ptr<RawClient> c;
    size_t sent = 0, offset = 0;
    std::chrono::steady_clock::time_point progress_at{};  // when it last sent a byte
    std::optional<std::chrono::milliseconds> closed_after, closed_since_progress;
  };
  std::vector<Stalled> stalled;
  std::string metrics_requests, batch_requests, small_requests;
  for (int i = 0; i < 32; ++i) metrics_requests += "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 4; ++i) batch_requests += BatchRequest(200, "batch-" + std::to_string(i));
  for (int i = 0; i < 64; ++i) small_requests += Healthz("h" + std::to_string(i));
  stalled.push_back({"metrics", metrics_requests, 4096, nullptr, 0, 0, {}, {}, {}});
  stalled.push_back({"batch", batch_requests, 16384, nullptr, 0, 0, {}, {}, {}});
  stalled.push_back({"healthz", small_requests, 2048, nullptr, 0, 0, {}, {}, {}});
  stalled.push_back({"metrics-large-rcvbuf", metrics_requests, 65536, nullptr, 0, 0, {}, {}, {}});
  const auto start = std::chrono::steady_clock::now();
  for (auto& s : stalled) {
    s.c = std::make_unique<RawClient>(port_, s.rcvbuf, 65536);
    ASSERT_GE(s.c->fd(), 0) << s.name;
    s.progress_at = start;
  }
  // Each sends until its socket takes no more (the server has stopped
  // reading: its write is stalled), then waits; others ask meanwhile.
  // Bounded: 64 MiB sent each, and write timeout + 2 s after the last byte
  // a stalled client could send.
  int served = 0;
  for (int round = 0; round < 20000; ++round) {
    const auto now = std::chrono::steady_clock::now();
    bool open = false;
    for (auto& s : stalled) {
      if (s.closed_after) continue;
      if (s.c->HungUp()) {
        s.closed_after = std::chrono::duration_cast<std::chrono::milliseconds>(now - start);
        s.closed_since_progress =
            std::chrono::duration_cast<std::chrono::milliseconds>(now - s.progress_at);
        continue;
      }
      open = true;
      if (s.sent < (64u << 20)) {
        size_t took = 0;
        for (int k = 0; k < 64; ++k) {  // the requests over and over, as one stream
          const size_t want = s.requests.size() - s.offset;
          const size_t n = s.c->SendSome(s.requests.substr(s.offset));
          took += n;
          s.offset = (s.offset + n) % s.requests.size();
          if (n < want) break;
        }
        s.sent += took;
        if (took > 0) s.progress_at = now;
      }
    }
    if (!open) break;
    bool overdue = false;
    for (auto& s : stalled) {
      overdue |= !s.closed_after &&
                 now - s.progress_at > std::chrono::seconds(o.write_timeout_s + 2);
    }
    if (overdue) break;
    if (round % 10 == 0) {
      HttpResponse r = HttpCall(port_, "GET", "/healthz");
      EXPECT_EQ(r.status, 200) << r.error;
      ++served;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_GE(served, 1);
  for (const auto& s : stalled) {
    EXPECT_LT(s.sent, 64u << 20) << s.name << ": the server kept reading a client that never reads";
    ASSERT_TRUE(s.closed_after.has_value())
        << s.name << ": still open " << o.write_timeout_s + 2 << " s after its write stalled";
    // Not before: its last write started after its first request was sent.
    EXPECT_GE(*s.closed_after, std::chrono::milliseconds(1000 * o.write_timeout_s - 50)) << s.name;
    EXPECT_LT(*s.closed_since_progress, std::chrono::seconds(o.write_timeout_s + 2)) << s.name;
  }
  for (int i = 0; i < 100; ++i) {  // the client may see the reset before it is counted
    if (metrics_.connection_closes(Metrics::ConnectionClose::kWriteTimeout) >= stalled.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kWriteTimeout), stalled.size());
  EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kHeaderTimeout), 0u);
  EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kIdleTimeout), 0u);
  HttpResponse m = HttpCall(port_, "GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("gatehouse_http_connection_closes_total{reason=\"write_timeout\"} " +
                        std::to_string(stalled.size()) + "\n"),
            std::string::npos)
      << m.body.substr(m.body.find("gatehouse_http_connection_closes_total"), 800);
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);
}

// A reply the socket takes only in part (the rest kept by the session and
// written as the client reads): once the client reads again it gets the whole
// reply byte for byte, and the connection goes on, pipelined requests in
// order. Generated over reply sizes around the socket buffers (the server's
// send buffer is made small so that the sizes are too) and the points at
// which the client starts and pauses reading.
TEST_F(ServerWriteTest, PartlyWrittenReplyArrivesWholeAndTheConnectionGoesOn) {
  ServerOptions o = DefaultOptions();
  o.read_timeout_s = 5;
  o.keep_alive_timeout_s = 5;
  o.write_timeout_s = 10;  // never reached here
  o.payload_max_bytes = 1 << 20;
  Start(o);
  std::mt19937 rng(20261202);
  int pending_cases = 0, direct_cases = 0, total_cases = 0;
  // ~510 bytes of reply a check: from one check to 1,000 (500 KB), most near
  // what the two sockets hold (~10-12 KB here).
  for (const int checks : {1, 18, 20, 22, 40, 150, 1000}) {
    const std::string big = Reference(BatchRequest(checks, "big-1"));
    ASSERT_NE(big.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << big.substr(0, 200);
    const std::string big2 = Reference(BatchRequest(checks, "big-2"));
    const std::string health = Reference(Healthz("h-1"));
    ASSERT_EQ(health.find("HTTP/1.1 200 OK\r\n"), 0u);
    for (int variant = 0; variant < 3; ++variant) {
      SCOPED_TRACE("checks " + std::to_string(checks) + ", reply " + std::to_string(big.size()) +
                   " bytes, variant " + std::to_string(variant));
      ++total_cases;
      RawClient c(port_, 4096);
      ASSERT_GE(c.fd(), 0);
      // One request first: the server has accepted the connection.
      ASSERT_TRUE(c.Send(Healthz("h-1")));
      ASSERT_EQ(c.NextReply(), health);
      const int server_fd = ServerEndOf(c.fd());
      ASSERT_GE(server_fd, 0) << "the server's end of the connection was not found";
      int small = 4096;  // the kernel doubles it, and keeps it (no autotuning once set)
      ASSERT_EQ(::setsockopt(server_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
      // The big reply, then (variant 1, 2) more requests right behind it.
      std::string sent = BatchRequest(checks, "big-1");
      std::string expected = big;
      if (variant >= 1) {
        sent += Healthz("h-1");
        expected += health;
      }
      if (variant == 2) {
        sent += BatchRequest(checks, "big-2") + Healthz("h-1");
        expected += big2 + health;
      }
      ASSERT_TRUE(c.Send(sent));
      // Not reading: wait until the bytes in flight stop growing.
      size_t in_flight = 0;
      for (int i = 0, still = 0; i < 500 && still < 5; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        const size_t now = c.Queued() + Unsent(server_fd);
        still = now == in_flight && now > 0 ? still + 1 : 0;
        in_flight = now;
      }
      ASSERT_GT(in_flight, 0u);
      // What is neither in the client's nor in the server's socket is held
      // by the server's session (pending_) or not yet answered.
      const bool partly_taken = in_flight < big.size();
      (partly_taken ? pending_cases : direct_cases) += 1;
      // Read in pieces: up to a split point (inside what the sockets hold,
      // at their edge, or past it), pause so that the server writes more,
      // then at random sizes to the end.
      std::vector<size_t> splits = {1, in_flight, std::uniform_int_distribution<size_t>(
                                                      1, expected.size() - 1)(rng)};
      std::string got = c.Take(std::min(splits[variant], expected.size()));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      for (int i = 0; i < 100000 && got.size() < expected.size(); ++i) {
        const size_t want = std::uniform_int_distribution<size_t>(1, 64 * 1024)(rng);
        const std::string piece = c.Take(std::min(want, expected.size() - got.size()));
        if (piece.empty()) break;
        got += piece;
      }
      ASSERT_EQ(got.size(), expected.size());
      EXPECT_TRUE(got == expected) << "first difference at byte "
                                   << std::mismatch(got.begin(), got.end(), expected.begin()).first -
                                          got.begin();
      // The connection goes on: the next requests, pipelined, in order.
      ASSERT_TRUE(c.Send(Healthz("h-1") + BatchRequest(checks, "big-1") + Healthz("h-1")));
      EXPECT_EQ(c.NextReply(), health);
      EXPECT_TRUE(c.NextReply() == big);
      EXPECT_EQ(c.NextReply(), health);
      EXPECT_EQ(c.Queued(), 0u);
      EXPECT_FALSE(c.HungUp());
    }
  }
  // The generated sizes cover both paths: written at once (one check: 511
  // bytes) and partly taken (at least the three sizes far past the buffers).
  EXPECT_GE(pending_cases, 9) << direct_cases << " of " << total_cases << " written at once";
  EXPECT_GE(direct_cases, 3) << pending_cases << " of " << total_cases << " partly taken";
  EXPECT_EQ(metrics_.connection_closes(Metrics::ConnectionClose::kWriteTimeout), 0u);
}

}  // namespace
}  // namespace gatehouse::sidecar
