#include "sidecar/http_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <random>
#include <thread>
#include <unordered_set>
#include <vector>

#include "sidecar/decision_log.h"
#include "sidecar/log.h"
#include "sidecar/wire.h"

namespace gatehouse::sidecar {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using local = net::local::stream_protocol;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using UnixStream = beast::basic_stream<local>;

// What a new connection gets when max_connections are already open.
constexpr std::string_view kRefusal =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    "Content-Length: 50\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    "{\"error\":\"too many open connections; retry later\"}";
static_assert(kRefusal.size() - kRefusal.find("\r\n\r\n") - 4 == 50);

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// A lingering close reads and drops what the client still sends for at most
// this long (and this much), so that closing does not reset the connection
// before the client has read the reply.
constexpr auto kLinger = std::chrono::seconds(1);
constexpr size_t kLingerMaxBytes = 1 << 20;
// What the first read of a request asks for; the parser reads the rest.
constexpr size_t kFirstRead = 512;

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// A caller's X-Request-Id is kept when it is 1-128 characters of
// [A-Za-z0-9._:-] (UUIDs, ULIDs, trace ids); anything else is replaced, so
// the id can go into logs and a reply header as it is.
bool WellFormedRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsParseError(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Called on the session's own thread when the server stops.
  virtual void CloseIfIdle() = 0;
};

// One I/O thread: its io_context and the connections it serves. Everything
// but `ioc` is touched only from that thread. The session set is declared
// before the io_context so that it outlives the handlers (and sessions) the
// io_context destroys with itself.
struct Worker {
  std::unordered_set<SessionBase*> sessions;
  bool stopping = false;
  bool destroying = false;  // ~Worker runs: the drain timer is gone
  std::array<char, 16 * 1024> scratch;  // lingering closes read into it and drop it
  uint64_t next_request = 0;
  int index = 0;
  net::io_context ioc{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard{
      net::make_work_guard(ioc)};
  net::steady_timer drain_timer{ioc};
  ~Worker() {
    destroying = true;
    guard.reset();
  }
};

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  Handlers* handlers = nullptr;
  Metrics* metrics = nullptr;
  std::vector<std::unique_ptr<Worker>> workers;
  // The acceptor's own thread: a busy I/O thread (up to 128 ready
  // connections per loop) would otherwise take one new connection per loop.
  std::unique_ptr<Worker> accepting = std::make_unique<Worker>();
  std::optional<ssl::context> tls;
  std::optional<tcp::acceptor> tcp_acceptor;
  std::optional<local::acceptor> unix_acceptor;
  std::optional<net::steady_timer> accept_retry;
  size_t next_worker = 0;
  std::atomic<size_t> open{0};
  std::atomic<bool> stop_requested{false};
  std::string request_id_prefix;

  ~Impl() {
    // Sessions die with their worker's io_context; everything they touch
    // (the open count, the metrics) must still be alive then.
    accept_retry.reset();
    tcp_acceptor.reset();
    unix_acceptor.reset();
    workers.clear();
    accepting.reset();
  }

  Worker& NextWorker() { return *workers[next_worker++ % workers.size()]; }
  template <class Acceptor>
  void Accept(Acceptor& acceptor);
  template <class Socket>
  void OnAccepted(Socket&& socket, Worker& worker);
  void StopOnWorker(Worker& worker);

  std::string NewRequestId(Worker& w) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%s-%x-%llx", request_id_prefix.c_str(), w.index,
                  static_cast<unsigned long long>(++w.next_request));
    return buf;
  }
};

namespace {

template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// One connection: a chain of asynchronous reads and writes, never more than
// one outstanding, all on its worker's thread.
template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  Session(HttpServer::Impl* server, Worker* worker, Args&&... args)
      : server_(server), worker_(worker), stream_(std::forward<Args>(args)...) {}

  ~Session() override {
    worker_->sessions.erase(this);
    server_->open.fetch_sub(1, std::memory_order_relaxed);
    server_->metrics->ConnectionClosed();
    if (worker_->stopping && !worker_->destroying && worker_->sessions.empty()) {
      worker_->drain_timer.cancel();  // drained: Run() may return now
    }
  }

  void Start() {
    worker_->sessions.insert(this);
    if (worker_->stopping) return Close();
    accepted_at_ = Clock::now();
    if constexpr (kIsTls<Stream>) {
      beast::get_lowest_layer(stream_).expires_at(accepted_at_ + ReadTimeout());
      idle_ = true;  // a handshake that has not finished holds no request
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](const error_code& ec) {
                                self->idle_ = false;
                                if (ec) {
                                  self->server_->metrics->CountConnectionClose(
                                      Metrics::ConnectionClose::kTlsHandshake);
                                  return self->Close();
                                }
                                self->WaitForRequest();
                              });
    } else {
      WaitForRequest();
    }
  }

  void CloseIfIdle() override {
    if (idle_) beast::get_lowest_layer(stream_).cancel();
  }

 private:
  // "ADDRESS:PORT" of a TCP client ("[v6]:PORT"), "unix" for a Unix socket.
  std::string PeerName() {
    error_code ec;
    const auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    if (ec) return "-";
    if constexpr (std::is_same_v<Stream, UnixStream>) {
      return "unix";
    } else {
      const auto a = ep.address();
      return a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(ep.port())
                       : a.to_string() + ":" + std::to_string(ep.port());
    }
  }

  std::chrono::seconds ReadTimeout() const {
    return std::chrono::seconds(server_->options.read_timeout_s);
  }

  // Waits for the first bytes of the next request (idle: the keep-alive
  // timeout applies), unless pipelined bytes are already buffered.
  void WaitForRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(server_->options.header_max_bytes, UINT32_MAX)));
    parser_->body_limit(server_->options.payload_max_bytes);
    if (buffer_.size() > 0) return ReadHeader(Clock::now() + ReadTimeout());
    if (buffer_.capacity() > 8 * 1024) buffer_.shrink_to_fit();
    if (worker_->stopping) return Close();
    idle_ = true;
    auto& lowest = beast::get_lowest_layer(stream_);
    if (served_ == 0) {
      lowest.expires_at(accepted_at_ + ReadTimeout());
    } else {
      lowest.expires_after(std::chrono::seconds(server_->options.keep_alive_timeout_s));
    }
    stream_.async_read_some(
        buffer_.prepare(kFirstRead),
        [self = this->shared_from_this()](const error_code& ec, size_t n) {
          self->idle_ = false;
          if (ec) {
            if (ec == beast::error::timeout) {
              self->server_->metrics->CountConnectionClose(
                  self->served_ == 0 ? Metrics::ConnectionClose::kHeaderTimeout
                                     : Metrics::ConnectionClose::kIdleTimeout);
            }
            return self->Close();
          }
          self->buffer_.commit(n);
          self->ReadHeader(self->served_ == 0 ? self->accepted_at_ + self->ReadTimeout()
                                              : Clock::now() + self->ReadTimeout());
        });
  }

  // The whole header must arrive by `deadline`, however slowly it trickles.
  void ReadHeader(Clock::time_point deadline) {
    beast::get_lowest_layer(stream_).expires_at(deadline);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](const error_code& ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(const error_code& ec) {
    if (ec) {
      if (ec == http::error::header_limit) {
        return Refuse(431, Metrics::ConnectionClose::kHeaderTooLarge,
                      "request header too large (at most " +
                          std::to_string(server_->options.header_max_bytes) + " bytes)");
      }
      if (ec == http::error::body_limit) {  // a Content-Length past the limit
        return Refuse(413, Metrics::ConnectionClose::kBodyTooLarge, BodyTooLarge());
      }
      if (ec == beast::error::timeout) {
        server_->metrics->CountConnectionClose(Metrics::ConnectionClose::kHeaderTimeout);
        return Close();
      }
      if (IsParseError(ec)) {
        return Refuse(400, Metrics::ConnectionClose::kBadFraming,
                      "malformed HTTP request: " + ec.message());
      }
      return Close();  // the client went away
    }
    if (auto refusal = CheckHeader()) {
      return Refuse(refusal->first, refusal->first == 431
                                        ? Metrics::ConnectionClose::kHeaderTooLarge
                                        : Metrics::ConnectionClose::kBadFraming,
                    refusal->second);
    }
    if (parser_->is_done()) return Serve();
    // A body follows. A client that asked to wait for 100 Continue gets it
    // only when the body is within the limit (else the parser says 413).
    const auto& h = parser_->get();
    const auto expect = h.find(http::field::expect);
    const auto length = parser_->content_length();
    if (expect != h.end() && IEquals(expect->value(), "100-continue") &&
        (!length || *length <= server_->options.payload_max_bytes)) {
      beast::get_lowest_layer(stream_).expires_after(
          std::chrono::seconds(server_->options.write_timeout_s));
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = this->shared_from_this()](const error_code& ec, size_t) {
                         if (ec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    beast::get_lowest_layer(stream_).expires_after(ReadTimeout());
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](const error_code& ec, size_t) {
                       if (!ec) return self->Serve();
                       if (ec == http::error::body_limit) {
                         return self->Refuse(413, Metrics::ConnectionClose::kBodyTooLarge,
                                             self->BodyTooLarge());
                       }
                       if (ec == beast::error::timeout) {
                         self->server_->metrics->CountConnectionClose(
                             Metrics::ConnectionClose::kBodyTimeout);
                         return self->Close();
                       }
                       if (IsParseError(ec)) {
                         return self->Refuse(400, Metrics::ConnectionClose::kBadFraming,
                                             "malformed HTTP body: " + ec.message());
                       }
                       self->Close();
                     });
  }

  std::string BodyTooLarge() const {
    return "request body too large (at most " +
           std::to_string(server_->options.payload_max_bytes) + " bytes)";
  }

  // RFC 9112 framing rules Beast leaves to the application (it accepts a
  // repeated identical Content-Length, a Content-Length list, and a
  // Transfer-Encoding without a final chunked, which would leave the body to
  // be read as the next request), plus the field-count limit.
  std::optional<std::pair<int, std::string>> CheckHeader() const {
    const auto& h = parser_->get();
    size_t fields = 0, lengths = 0, codings = 0, hosts = 0;
    for (const auto& f : h) {
      ++fields;
      switch (f.name()) {
        case http::field::content_length:
          ++lengths;
          if (f.value().find(',') != beast::string_view::npos) ++lengths;
          break;
        case http::field::transfer_encoding:
          ++codings;
          if (!IEquals(f.value(), "chunked")) {
            return std::pair(400, "unsupported Transfer-Encoding '" +
                                      std::string(f.value().substr(0, 64)) +
                                      "' (only chunked is accepted)");
          }
          break;
        case http::field::host:
          ++hosts;
          break;
        default:
          break;
      }
    }
    if (fields > server_->options.header_max_fields) {
      return std::pair(431, "too many header fields (at most " +
                                std::to_string(server_->options.header_max_fields) + ")");
    }
    if (h.version() != 11 && h.version() != 10) {
      return std::pair(400, std::string("unsupported HTTP version (1.0 and 1.1 are served)"));
    }
    if (lengths > 1) return std::pair(400, std::string("conflicting Content-Length"));
    if (codings > 1) return std::pair(400, std::string("repeated Transfer-Encoding"));
    if (lengths > 0 && codings > 0) {
      return std::pair(400, std::string("both Content-Length and Transfer-Encoding"));
    }
    if (h.version() == 11 && hosts != 1) {
      return std::pair(400, std::string(hosts == 0 ? "missing Host header" : "repeated Host header"));
    }
    return std::nullopt;
  }

  static void SetField(std::string& field, uint32_t bit, beast::string_view value,
                       HttpRequest& r) {
    if (r.present & bit) {
      r.repeated |= bit;
      return;  // the first of repeated headers is kept
    }
    r.present |= bit;
    field.assign(value.data(), value.size());
  }

  HttpRequest ToRequest() {
    auto& h = parser_->get();
    HttpRequest r;
    r.method.assign(h.method_string().data(), h.method_string().size());
    r.target.assign(h.target().data(), h.target().size());
    r.path = r.target.substr(0, r.target.find('?'));
    r.body = std::move(h.body());
    std::string caller_request_id;
    for (const auto& f : h) {
      switch (f.name()) {
        case http::field::authorization:
          SetField(r.authorization, kHdrAuthorization, f.value(), r);
          continue;
        case http::field::content_type:
          if (r.content_type.empty()) r.content_type.assign(f.value().data(), f.value().size());
          continue;
        default:
          break;
      }
      const beast::string_view name = f.name_string();
      if (name.size() < 12 || (name[0] != 'x' && name[0] != 'X')) continue;
      if (IEquals(name, "x-original-uri")) {
        SetField(r.original_uri, kHdrOriginalUri, f.value(), r);
      } else if (IEquals(name, "x-original-method")) {
        SetField(r.original_method, kHdrOriginalMethod, f.value(), r);
      } else if (IEquals(name, "x-forwarded-uri")) {
        SetField(r.forwarded_uri, kHdrForwardedUri, f.value(), r);
      } else if (IEquals(name, "x-forwarded-method")) {
        SetField(r.forwarded_method, kHdrForwardedMethod, f.value(), r);
      } else if (IEquals(name, "x-gatehouse-caller")) {
        SetField(r.caller_secret, kHdrCaller, f.value(), r);
      } else if (IEquals(name, "x-request-id") && caller_request_id.empty()) {
        caller_request_id.assign(f.value().data(), f.value().size());
      }
    }
    r.request_id = WellFormedRequestId(caller_request_id) ? std::move(caller_request_id)
                                                          : server_->NewRequestId(*worker_);
    if (peer_.empty()) peer_ = PeerName();  // once per connection, for the access log
    r.peer = peer_;
    return r;
  }

  void Serve() {
    const auto& h = parser_->get();
    const bool head = h.method() == http::verb::head;
    const unsigned version = h.version();
    const bool keep_alive = h.keep_alive() && !worker_->stopping;
    HttpRequest request = ToRequest();
    HttpReply reply;
    try {
      reply = server_->handlers->Handle(request);
    } catch (const std::exception& e) {  // Handle catches everything; stay safe anyway
      reply.status = 500;
      reply.body = EncodeError("internal error");
    }
    parser_.reset();
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(reply.status));
    res_.set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res_.insert(name, value);
    res_.set("X-Request-Id", request.request_id);
    res_.keep_alive(keep_alive);
    if (head) {
      res_.content_length(reply.body.size());
    } else {
      res_.body() = std::move(reply.body);
      res_.prepare_payload();
    }
    ++served_;
    Write(!keep_alive);
  }

  // Answers with an error the server itself decides (the handler never saw
  // the request), then closes.
  void Refuse(int status, Metrics::ConnectionClose why, const std::string& message) {
    server_->metrics->CountConnectionClose(why);
    std::string path;
    if (parser_) {  // the request line may have been read (e.g. a Content-Length too large)
      const auto target = parser_->get().target();
      path.assign(target.data(), std::min(target.size(), target.find('?')));
    }
    server_->metrics->CountRequest(server_->handlers->Classify(path), status,
                                   std::chrono::nanoseconds(0));
    parser_.reset();
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(status));
    res_.set(http::field::content_type, "application/json");
    res_.set("X-Request-Id", server_->NewRequestId(*worker_));
    res_.keep_alive(false);
    res_.body() = EncodeError(message);
    res_.prepare_payload();
    buffer_.consume(buffer_.size());  // whatever follows is not a request we will read
    Write(true);
  }

  void Write(bool close) {
    beast::get_lowest_layer(stream_).expires_after(
        std::chrono::seconds(server_->options.write_timeout_s));
    http::async_write(stream_, res_,
                      [self = this->shared_from_this(), close](const error_code& ec, size_t) {
                        self->res_ = {};
                        if (ec) return self->Close();
                        if (close) return self->Linger();
                        self->WaitForRequest();
                      });
  }

  // Half-closes, then drops whatever the client still sends until it closes
  // too (or kLinger passes), so the reply is read rather than reset.
  void Linger() {
    auto& lowest = beast::get_lowest_layer(stream_);
    lowest.expires_after(kLinger);
    idle_ = true;
    if constexpr (kIsTls<Stream>) {
      stream_.async_shutdown([self = this->shared_from_this()](const error_code&) {
        self->Close();
      });
    } else {
      error_code ignored;
      lowest.socket().shutdown(net::socket_base::shutdown_send, ignored);
      Drain();
    }
  }

  void Drain() {
    stream_.async_read_some(net::buffer(worker_->scratch),
                            [self = this->shared_from_this()](const error_code& ec, size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > kLingerMaxBytes) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    idle_ = false;
    error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(ignored);
  }

  HttpServer::Impl* server_;
  Worker* worker_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  Clock::time_point accepted_at_;
  std::string peer_;  // the client, named on the first request (PeerName)
  uint64_t served_ = 0;
  size_t lingered_ = 0;
  bool idle_ = false;  // waiting for a request (or lingering): Stop may close it
};

}  // namespace

template <class Acceptor>
void HttpServer::Impl::Accept(Acceptor& acceptor) {
  Worker& worker = NextWorker();
  // The new socket lives on the worker's io_context, typed with the
  // polymorphic executor Beast's streams use.
  const net::any_io_executor executor = worker.ioc.get_executor();
  acceptor.async_accept(executor, [this, &acceptor, &worker](const error_code& ec, auto socket) {
    if (ec == net::error::operation_aborted || stop_requested.load()) return;
    if (ec) {
      // Out of descriptors or memory: wait a little instead of spinning;
      // anything else (a connection reset before accept) just goes on.
      if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
          ec == net::error::no_memory || ec.value() == ENFILE) {
        accept_retry->expires_after(std::chrono::milliseconds(50));
        accept_retry->async_wait([this, &acceptor](const error_code& wait_ec) {
          if (!wait_ec && !stop_requested.load()) Accept(acceptor);
        });
        return;
      }
      return Accept(acceptor);
    }
    OnAccepted(std::move(socket), worker);
    Accept(acceptor);
  });
}

template <class Socket>
void HttpServer::Impl::OnAccepted(Socket&& socket, Worker& worker) {
  if (open.load(std::memory_order_relaxed) >= options.max_connections) {
    // A fast, counted refusal; the open connections keep being served.
    metrics->CountConnectionRefused();
    (void)::send(socket.native_handle(), kRefusal.data(), kRefusal.size(),
                 MSG_DONTWAIT | MSG_NOSIGNAL);
    error_code ignored;
    socket.shutdown(net::socket_base::shutdown_both, ignored);
    socket.close(ignored);
    return;
  }
  open.fetch_add(1, std::memory_order_relaxed);
  metrics->ConnectionOpened();
  if constexpr (std::is_same_v<typename std::decay_t<Socket>::protocol_type, tcp>) {
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (tls) {
      auto s = std::make_shared<Session<TlsStream>>(this, &worker, std::move(socket), *tls);
      net::post(worker.ioc, [s] { s->Start(); });
    } else {
      auto s = std::make_shared<Session<TcpStream>>(this, &worker, std::move(socket));
      net::post(worker.ioc, [s] { s->Start(); });
    }
  } else {
    auto s = std::make_shared<Session<UnixStream>>(this, &worker, std::move(socket));
    net::post(worker.ioc, [s] { s->Start(); });
  }
}

void HttpServer::Impl::StopOnWorker(Worker& w) {
  w.stopping = true;
  // Copy: closing a session may end it, which erases it from the set.
  const std::vector<SessionBase*> sessions(w.sessions.begin(), w.sessions.end());
  for (SessionBase* s : sessions) s->CloseIfIdle();
  w.guard.reset();
  if (!w.sessions.empty()) {
    w.drain_timer.expires_after(std::chrono::seconds(options.drain_timeout_s));
    w.drain_timer.async_wait([&w](const error_code& ec) {
      if (!ec) w.ioc.stop();  // in-flight requests outlived the drain timeout
    });
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

Result<std::unique_ptr<HttpServer>> HttpServer::Create(const ServerOptions& options,
                                                       Handlers* handlers, Metrics* metrics) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handlers = handlers;
  impl->metrics = metrics;
  if (options.max_connections < 1) return Status::InvalidArgument("max_connections must be >= 1");
  const bool want_tls = !options.tls_cert.empty() || !options.tls_key.empty();
  if (want_tls || !options.tls_client_ca.empty()) {
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return Status::InvalidArgument(
          "TLS needs both --tls-cert and --tls-key (--tls-client-ca needs them too)");
    }
    if (!options.unix_path.empty()) {
      return Status::InvalidArgument("TLS is served on TCP only, not on a Unix socket");
    }
    try {
      impl->tls.emplace(ssl::context::tls_server);
      impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
      impl->tls->use_certificate_chain_file(options.tls_cert);
      impl->tls->use_private_key_file(options.tls_key, ssl::context::pem);
      if (!options.tls_client_ca.empty()) {
        impl->tls->load_verify_file(options.tls_client_ca);
        impl->tls->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
      }
    } catch (const std::exception& e) {
      return Status::InvalidArgument("cannot load the TLS files (" + options.tls_cert + ", " +
                                     options.tls_key +
                                     (options.tls_client_ca.empty() ? "" : ", " + options.tls_client_ca) +
                                     "): " + e.what());
    }
  }
  int threads = options.threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) {
    impl->workers.push_back(std::make_unique<Worker>());
    impl->workers.back()->index = i;
  }
  impl->accept_retry.emplace(impl->accepting->ioc);
  std::random_device rd;
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "%08x", rd());
  impl->request_id_prefix = prefix;
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

Result<int> HttpServer::Bind() {
  Impl& m = *impl_;
  net::io_context& ioc = m.accepting->ioc;
  error_code ec;
  if (!m.options.unix_path.empty()) {
    const std::string& path = m.options.unix_path;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return Status::IoError("cannot listen on unix:" + path + ": the path exists and is not a socket");
      }
      // A socket file: in use if something answers on it, else stale.
      local::socket probe(ioc);
      probe.connect(local::endpoint(path), ec);
      if (!ec) return Status::IoError("cannot listen on unix:" + path + ": address in use");
      ::unlink(path.c_str());
    }
    m.unix_acceptor.emplace(ioc);
    m.unix_acceptor->open(local(), ec);
    // Created with no access for anyone, then given socket_mode: there is
    // no moment at which the umask's looser mode applies.
    const mode_t old_mask = ::umask(0177);
    if (!ec) m.unix_acceptor->bind(local::endpoint(path), ec);
    ::umask(old_mask);
    if (!ec && ::chmod(path.c_str(), static_cast<mode_t>(m.options.socket_mode)) != 0) {
      ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) m.unix_acceptor->listen(m.options.backlog, ec);
    if (ec) return Status::IoError("cannot listen on unix:" + path + ": " + ec.message());
    return 0;
  }
  const std::string where = (m.options.host.find(':') != std::string::npos
                                 ? "[" + m.options.host + "]"
                                 : m.options.host) +
                            ":" + std::to_string(m.options.port);
  tcp::endpoint endpoint;
  auto address = net::ip::make_address(m.options.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, static_cast<unsigned short>(m.options.port));
  } else {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(m.options.host, std::to_string(m.options.port),
                                    tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return Status::IoError("cannot listen on " + where + ": cannot resolve the host");
    }
    endpoint = results.begin()->endpoint();
  }
  m.tcp_acceptor.emplace(ioc);
  m.tcp_acceptor->open(endpoint.protocol(), ec);
  // SO_REUSEADDR only (restart past TIME_WAIT); never SO_REUSEPORT, so a
  // second listener on a busy address fails instead of sharing it.
  if (!ec) m.tcp_acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) m.tcp_acceptor->bind(endpoint, ec);
  if (!ec) m.tcp_acceptor->listen(m.options.backlog, ec);
  if (ec) {
    return Status::IoError("cannot listen on " + where + ": " + ec.message() +
                           (ec == net::error::address_in_use ? "" : " (not an address of this machine?)"));
  }
  return static_cast<int>(m.tcp_acceptor->local_endpoint().port());
}

Status HttpServer::Run() {
  Impl& m = *impl_;
  if (!m.tcp_acceptor && !m.unix_acceptor) return Status::FailedPrecondition("Run() before Bind()");
  net::post(m.accepting->ioc, [&m] {
    if (m.stop_requested.load()) return;
    if (m.tcp_acceptor) m.Accept(*m.tcp_acceptor);
    if (m.unix_acceptor) m.Accept(*m.unix_acceptor);
  });
  auto run = [](Worker& w) {
    while (true) {
      try {
        w.ioc.run();
        return;
      } catch (const std::exception& e) {
        Log(LogLevel::kError, std::string("internal error in the HTTP server (serving on): ") + e.what());
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(run, std::ref(*m.accepting));
  for (size_t i = 1; i < m.workers.size(); ++i) threads.emplace_back(run, std::ref(*m.workers[i]));
  run(*m.workers[0]);
  for (auto& t : threads) t.join();
  return Status::Ok();
}

void HttpServer::Stop() {
  Impl& m = *impl_;
  if (m.stop_requested.exchange(true)) return;
  net::post(m.accepting->ioc, [&m] {
    error_code ignored;
    if (m.tcp_acceptor) m.tcp_acceptor->close(ignored);
    if (m.unix_acceptor) {
      m.unix_acceptor->close(ignored);
      ::unlink(m.options.unix_path.c_str());
    }
    m.accept_retry->cancel();
    m.accepting->guard.reset();  // its thread returns once the accepts are cancelled
  });
  for (auto& w : m.workers) {
    Worker* worker = w.get();
    net::post(worker->ioc, [&m, worker] { m.StopOnWorker(*worker); });
  }
}

}  // namespace gatehouse::sidecar
