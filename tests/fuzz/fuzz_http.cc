// Arbitrary bytes on a real connection to the sidecar's HTTP server (Beast,
// in process, on a loopback port), the client half-closing after them:
//   - the server closes within 3 s (no hang on any input);
//   - it never answers more requests than the bytes could hold (each request
//     line needs an "HTTP/1." version; plus one refusal of what follows, after
//     which it closes), so framing cannot be made to split one request in two;
//   - nothing follows a reply that says Connection: close;
//   - every reply it sends is well-formed HTTP/1.x with a status below 500;
//   - nothing is allowed or active unless the bytes carry the real token
//     (the corpus spells it TOKEN; the target substitutes it).
#include <fuzzer/FuzzedDataProvider.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "fuzz_check.h"
#include "gatehouse/store.h"
#include "gatehouse/tokens.h"
#include "sidecar/handlers.h"
#include "sidecar/http_server.h"

using namespace gatehouse;
using namespace gatehouse::sidecar;

namespace {

struct World {
  std::string dir, token;
  Metrics metrics;
  std::unique_ptr<State> state;
  std::unique_ptr<Handlers> handlers;
  std::unique_ptr<HttpServer> server;
  int port = 0;

  World() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/gatehouse-fuzz-http-XXXXXX";
    FUZZ_CHECK(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    static std::string to_remove;
    to_remove = dir;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(to_remove, ec);
    });
    auto store = CreateStore(dir + "/g.db");
    FUZZ_CHECK(store.ok());
    Store& s = **store;
    auto org = s.CreateOrganization("Demo");
    auto orgws = s.CreateWorkspace(org->id, "Organization", "organization", std::nullopt);
    auto dev = s.CreateWorkspace(org->id, "Dev", "shared", std::nullopt);
    FUZZ_CHECK(s.AddUser(org->id, "owner@demo.test", "owner").ok() && orgws.ok() && dev.ok());
    auto bot =
        s.CreateApiUser(NewApiUser{dev->id, "bot", "viewer", "contributor", "owner@demo.test", 0});
    FUZZ_CHECK(bot.ok());
    auto minted = MintToken();
    token = minted->secret;
    FUZZ_CHECK(s.InsertToken(NewToken{minted->id, bot->id, "t", minted->hash, 0, 4102444800,
                                      "owner@demo.test"})
                   .ok());
    store->reset();
    StateOptions o;
    o.store_path = dir + "/g.db";
    o.policy_path = GATEHOUSE_SOURCE_DIR "/policies";
    o.policy_poll_ms = 0;
    o.sweep_interval_s = 0;
    auto st = State::Open(o, &metrics, [](LogLevel, std::string_view) {});
    FUZZ_CHECK(st.ok());
    state = std::move(st).value();
    handlers = std::make_unique<Handlers>(state.get(), nullptr);
    ServerOptions so;
    so.port = 0;
    so.threads = 1;
    so.read_timeout_s = 2;
    so.keep_alive_timeout_s = 2;
    so.payload_max_bytes = 2048;  // small, so that inputs reach the limit
    so.header_max_bytes = 1024;
    so.header_max_fields = 16;
    auto sv = HttpServer::Create(so, handlers.get(), &metrics);
    FUZZ_CHECK(sv.ok());
    server = std::move(sv).value();
    auto bound = server->Bind();
    FUZZ_CHECK(bound.ok());
    port = *bound;
    std::thread([s = server.get()] { (void)s->Run(); }).detach();  // lives for the process
  }
};

World& TheWorld() {
  static World* w = new World();
  return *w;
}

size_t Count(const std::string& s, std::string_view what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = TheWorld();
  std::string bytes(reinterpret_cast<const char*>(data), size);
  for (size_t at = bytes.find("TOKEN"); at != std::string::npos; at = bytes.find("TOKEN", at))
    bytes.replace(at, 5, w.token);

  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  FUZZ_CHECK(fd >= 0);
  timeval tv{10, 0};  // the server's own deadlines are 2 s; the margin is for a loaded CI machine
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(w.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  FUZZ_CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server refused and closed: fine
    off += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[8192];
  bool eof = false;
  while (out.size() < (1u << 22)) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      eof = true;
      break;
    }
    if (n < 0) break;  // the 10 s timeout
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  FUZZ_CHECK(eof);  // the server closed: no hang

  // One X-Request-Id per reply; bodies are JSON, so a raw CRLF never
  // appears inside one.
  const size_t replies = Count(out, "\r\nX-Request-Id: ");
  FUZZ_CHECK(replies <= Count(bytes, "HTTP/1.") + 1);
  // Walk the replies while their framing is known (a HEAD reply has a
  // Content-Length but no body: stop there).
  size_t at = 0;
  while (at < out.size()) {
    FUZZ_CHECK(out.compare(at, 7, "HTTP/1.") == 0);
    const int status = std::atoi(out.c_str() + at + 9);
    FUZZ_CHECK(status >= 100 && status < 500);
    const size_t end = out.find("\r\n\r\n", at);
    FUZZ_CHECK(end != std::string::npos);
    if (status == 100) {
      at = end + 4;
      continue;
    }
    const std::string head = out.substr(at, end - at);
    const bool closing = head.find("\r\nConnection: close") != std::string::npos;
    const size_t cl = head.find("\r\nContent-Length: ");
    FUZZ_CHECK(cl != std::string::npos);
    const size_t length = std::strtoul(head.c_str() + cl + 18, nullptr, 10);
    const std::string body = out.substr(end + 4, length);
    if (body.find("\"allow\":true") != std::string::npos ||
        body.find("\"active\":true") != std::string::npos) {
      FUZZ_CHECK(bytes.find(w.token) != std::string::npos || bytes.find("user") != std::string::npos);
    }
    at = end + 4 + length;
    if (closing) FUZZ_CHECK(at >= out.size());
    if (at < out.size() && out.compare(at, 7, "HTTP/1.") != 0) break;  // a HEAD reply
  }
  return 0;
}
