#include "sidecar/http_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <random>
#include <thread>
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

// Plain Asio sockets bound to their worker's io_context (no polymorphic
// executor), not beast::basic_stream: its per-operation timeouts cost a
// timer per read and write (0.7 timerfd_settime per request, measured);
// deadlines are kept per connection instead and enforced by each worker's
// sweep (Worker::Sweep).
using Executor = net::io_context::executor_type;
using TcpStream = net::basic_stream_socket<tcp, Executor>;
using UnixStream = net::basic_stream_socket<local, Executor>;
using TlsStream = ssl::stream<TcpStream>;

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
// The largest single read; the parser bounds what a request may buffer.
constexpr size_t kMaxRead = 64 * 1024;
// How often each worker looks for connections past their deadline: a
// deadline is enforced within this much of its time.
constexpr auto kSweepInterval = std::chrono::milliseconds(250);
// At most this many connections closed by the sweep in one handler (a close
// costs a few microseconds of the thread's time).
constexpr size_t kExpirePerTurn = 32;

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

// A bump allocator for the parser's header fields, one per I/O thread. Beast
// allocates every field (and the target) separately; a parser only gets its
// fields once the whole header is there, and is destroyed once the request
// is answered, so nearly always every allocation of the previous request is
// gone when the next one starts and the block is reused from its start: a
// request's header costs no malloc. Past the block (a large header, or
// several requests waiting for their bodies at once) it falls back to
// operator new.
class FieldArena {
 public:
  void* Allocate(size_t n, size_t align) {
    const size_t at = (used_ + align - 1) & ~(align - 1);
    if (align <= alignof(std::max_align_t) && at + n <= sizeof block_) {
      used_ = at + n;
      ++live_;
      return block_ + at;
    }
    return ::operator new(n);
  }
  void Deallocate(void* p) noexcept {
    auto* c = static_cast<char*>(p);
    if (c >= block_ && c < block_ + sizeof block_) {
      if (--live_ == 0) used_ = 0;
      return;
    }
    ::operator delete(p);  // unsized: clang does not declare the sized one by default
  }

 private:
  alignas(std::max_align_t) char block_[4096];
  size_t used_ = 0;
  size_t live_ = 0;
};

template <class T>
struct ArenaAllocator {
  using value_type = T;
  FieldArena* arena;
  explicit ArenaAllocator(FieldArena* a) noexcept : arena(a) {}
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& other) noexcept : arena(other.arena) {}
  T* allocate(size_t n) { return static_cast<T*>(arena->Allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, size_t) noexcept { arena->Deallocate(p); }
  template <class U>
  bool operator==(const ArenaAllocator<U>& other) const noexcept {
    return arena == other.arena;
  }
};

using Parser = http::request_parser<http::string_body, ArenaAllocator<char>>;

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Called on the session's own thread when the server stops.
  virtual void CloseIfIdle() = 0;
  // Called by the sweep once its deadline has passed: counts why and closes.
  virtual void Expire() = 0;
  // Its place in its worker's session table (Worker::sessions); npos: none.
  size_t slot = npos;
  static constexpr size_t npos = static_cast<size_t>(-1);
};

// A session's deadline: when the operation in progress (handshake, waiting
// for a request, its header, its body, writing, lingering) must be over;
// max(): none. Kept beside the session's pointer in one contiguous table,
// not in the session: the sweep reads only the table (with 10,000 idle
// connections, walking a node-based set of sessions and loading a cache
// line of each was the largest user-space cost of the server, and held the
// thread ~1 ms per sweep while fresh requests waited).
struct SessionSlot {
  Clock::time_point deadline = Clock::time_point::max();
  SessionBase* session = nullptr;
};

// One I/O thread: its io_context and the connections it serves. Everything
// but `ioc` is touched only from that thread. The session set is declared
// before the io_context so that it outlives the handlers (and sessions) the
// io_context destroys with itself.
struct Worker {
  std::vector<SessionSlot> sessions;  // unordered; a session knows its slot
  void AddSession(SessionBase* s) {
    s->slot = sessions.size();
    sessions.push_back({Clock::time_point::max(), s});
  }
  void RemoveSession(SessionBase* s) {
    if (s->slot >= sessions.size() || sessions[s->slot].session != s) return;
    sessions[s->slot] = sessions.back();
    sessions[s->slot].session->slot = s->slot;
    sessions.pop_back();
    s->slot = SessionBase::npos;
  }
  void SetDeadline(SessionBase* s, Clock::time_point at) {
    if (s->slot < sessions.size()) sessions[s->slot].deadline = at;
  }
  bool stopping = false;
  bool destroying = false;  // ~Worker runs: the drain timer is gone
  std::array<char, 16 * 1024> scratch;  // lingering closes read into it and drop it
  uint64_t next_request = 0;
  int index = 0;
  FieldArena arena;  // the parsers' header fields (FieldArena)
  // The request being handled: reused, so that its strings keep their
  // capacity from one request to the next (a handler runs to completion on
  // this thread, so one is enough per thread).
  HttpRequest request;
  std::string spare_body;  // a body buffer with capacity, for the next parser
  // Replies are formatted here and, nearly always, written at once from here:
  // only a reply the socket does not take whole moves into its session, so
  // an idle connection holds no reply buffer.
  std::string out;
  net::io_context ioc{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard{
      net::make_work_guard(ioc)};
  net::steady_timer drain_timer{ioc};
  net::steady_timer sweep_timer{ioc};
  // One coarse timer per thread instead of one per operation: every
  // kSweepInterval, close the connections whose deadline has passed. Runs
  // until the worker stops and its last connection is gone.
  void Sweep() {
    sweep_timer.expires_after(kSweepInterval);
    sweep_timer.async_wait([this](const error_code& ec) {
      if (ec) return;
      ExpireDue(Clock::now());
    });
  }
  // Closes the connections whose deadline had passed at `now`, at most
  // kExpirePerTurn per turn of the event loop: connections opened together
  // expire together (a client that opens 1,000 slow-header connections at
  // once), and closing them all in one handler would hold the thread while
  // the requests that arrived meanwhile wait. Between turns it serves those.
  void ExpireDue(Clock::time_point now) {
    size_t closed = 0;
    // Expire() only closes a socket (and clears its deadline); the session
    // ends later, in its completion handler, so the table does not change
    // while it is walked, and each turn makes progress.
    for (size_t i = 0; i < sessions.size(); ++i) {
      if (sessions[i].deadline > now) continue;
      sessions[i].session->Expire();
      if (++closed == kExpirePerTurn) {
        net::post(ioc, [this, now] { ExpireDue(now); });
        return;
      }
    }
    if (stopping && sessions.empty()) return;
    Sweep();
  }
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

  // PREFIX-WORKER-N, in hex; written into `out` (no printf: it showed in
  // the profile).
  void NewRequestId(Worker& w, std::string& out) {
    static constexpr char kHex[] = "0123456789abcdef";
    char buf[48];
    char* end = buf + sizeof buf;
    char* p = end;
    uint64_t n = ++w.next_request;
    do {
      *--p = kHex[n & 15];
      n >>= 4;
    } while (n > 0);
    *--p = '-';
    unsigned i = static_cast<unsigned>(w.index);
    do {
      *--p = kHex[i & 15];
      i >>= 4;
    } while (i > 0);
    *--p = '-';
    out.assign(request_id_prefix);
    out.append(p, static_cast<size_t>(end - p));
  }
  std::string NewRequestId(Worker& w) {
    std::string id;
    NewRequestId(w, id);
    return id;
  }
};

namespace {

template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// Beast trims a field value's leading and trailing spaces and tabs; the
// reply keeps doing so.
std::string_view TrimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

void AppendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(TrimOws(value));
  out.append("\r\n", 2);
}

void AppendDecimal(std::string& out, size_t n) {
  char digits[24];
  char* end = digits + sizeof digits;
  char* p = end;
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n > 0);
  out.append(p, static_cast<size_t>(end - p));
}

// Fields the server writes itself; a handler's header of one of these names
// is dropped (a handler never sends one: this keeps the framing the server's).
bool ServerOwnedField(std::string_view name) {
  return IEquals(name, "content-type") || IEquals(name, "content-length") ||
         IEquals(name, "transfer-encoding") || IEquals(name, "connection") ||
         IEquals(name, "x-request-id");
}

// The reply's bytes, exactly as Beast's serializer wrote them for the
// http::response this server used to build (the tests compare them):
//   HTTP/1.x CODE REASON
//   Content-Type, the handler's headers in order (repeated names kept
//   together, as Beast's field list does), X-Request-Id,
//   Connection: close (1.1, not kept alive) / keep-alive (1.0, kept alive),
//   Content-Length (none on 1xx, 204, 304 unless HEAD),
// then the body (none for HEAD). Appended to `out`.
void AppendHttpReply(std::string& out, unsigned version, const HttpReply& reply,
                     std::string_view request_id, bool keep_alive, bool head) {
  const auto status = static_cast<unsigned>(reply.status);
  out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
  const char code[3] = {static_cast<char>('0' + status / 100 % 10),
                        static_cast<char>('0' + status / 10 % 10),
                        static_cast<char>('0' + status % 10)};
  out.append(code, 3);
  out.push_back(' ');
  const auto reason = http::obsolete_reason(http::int_to_status(status));
  out.append(reason.data(), reason.size());
  out.append("\r\n", 2);
  AppendField(out, "Content-Type", reply.content_type);
  const auto& headers = reply.headers;
  // Beast's list keeps fields of one name together, at the first's place.
  // Replies carry a handful of distinct names: the quadratic check is a few
  // comparisons.
  for (size_t i = 0; i < headers.size(); ++i) {
    const std::string& name = headers[i].first;
    if (ServerOwnedField(name)) continue;
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = IEquals(headers[j].first, name);
    if (seen) continue;
    AppendField(out, name, headers[i].second);
    for (size_t j = i + 1; j < headers.size(); ++j) {
      if (IEquals(headers[j].first, name)) AppendField(out, headers[j].first, headers[j].second);
    }
  }
  AppendField(out, "X-Request-Id", request_id);
  if (version >= 11 && !keep_alive) out.append("Connection: close\r\n");
  if (version < 11 && keep_alive) out.append("Connection: keep-alive\r\n");
  const bool no_body_status = status / 100 == 1 || status == 204 || status == 304;
  if (head || !no_body_status) {
    out.append("Content-Length: ");
    AppendDecimal(out, reply.body.size());
    out.append("\r\n", 2);
  }
  out.append("\r\n", 2);
  if (!head) out.append(reply.body);
}

// One connection: a chain of asynchronous reads and writes, never more than
// one outstanding, all on its worker's thread. Its deadline (SessionBase) is
// set as it moves from one stage to the next; the worker's sweep closes it
// once that has passed.
template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  Session(HttpServer::Impl* server, Worker* worker, Args&&... args)
      : server_(server), worker_(worker), stream_(std::forward<Args>(args)...) {}

  ~Session() override {
    worker_->RemoveSession(this);
    server_->open.fetch_sub(1, std::memory_order_relaxed);
    server_->metrics->ConnectionClosed();
    if (worker_->stopping && !worker_->destroying && worker_->sessions.empty()) {
      worker_->drain_timer.cancel();  // drained: Run() may return now
      worker_->sweep_timer.cancel();
    }
  }

  void Start() {
    worker_->AddSession(this);
    if (worker_->stopping) return Close();
    accepted_at_ = Clock::now();
    error_code ignored;
    // Writes are tried at once, without a round through the event loop
    // (Write); they must not block the thread.
    Lowest().non_blocking(true, ignored);
    if constexpr (kIsTls<Stream>) {
      Arm(accepted_at_ + ReadTimeout(), Metrics::ConnectionClose::kTlsHandshake);
      idle_ = true;  // a handshake that has not finished holds no request
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](const error_code& ec) {
                                self->idle_ = false;
                                if (ec) {
                                  if (self->Lowest().is_open()) {  // else the sweep counted it
                                    self->server_->metrics->CountConnectionClose(
                                        Metrics::ConnectionClose::kTlsHandshake);
                                  }
                                  return self->Close();
                                }
                                self->WaitForRequest();
                              });
    } else {
      WaitForRequest();
    }
  }

  void CloseIfIdle() override {
    if (idle_) Close();
  }

  void Expire() override {
    if (deadline_reason_) server_->metrics->CountConnectionClose(*deadline_reason_);
    Close();
  }

 private:
  auto& Lowest() {
    if constexpr (kIsTls<Stream>) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  // The deadline of what starts now, and the reason counted when the sweep
  // finds it passed (none: a lingering close).
  void Arm(Clock::time_point at, std::optional<Metrics::ConnectionClose> why) {
    worker_->SetDeadline(this, at);
    deadline_reason_ = why;
  }

  // "ADDRESS:PORT" of a TCP client ("[v6]:PORT"), "unix" for a Unix socket.
  std::string PeerName() {
    error_code ec;
    const auto ep = Lowest().remote_endpoint(ec);
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
    parser_.emplace(std::piecewise_construct, std::make_tuple(),
                    std::make_tuple(ArenaAllocator<char>(&worker_->arena)));
    parser_->get().body().swap(worker_->spare_body);  // its capacity, if any
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(server_->options.header_max_bytes, UINT32_MAX)));
    parser_->body_limit(server_->options.payload_max_bytes);
    header_done_ = false;
    if (buffer_.size() > 0) {
      // Pipelined: the header's deadline runs from now. Posted, so that a
      // buffer of many small requests is not answered by recursion.
      Arm(Clock::now() + ReadTimeout(), Metrics::ConnectionClose::kHeaderTimeout);
      reading_header_ = true;
      net::post(Lowest().get_executor(), [self = this->shared_from_this()] { self->Parse(); });
      return;
    }
    if (buffer_.capacity() > 8 * 1024) buffer_.shrink_to_fit();
    if (worker_->stopping) return Close();
    idle_ = true;
    reading_header_ = false;
    if (served_ == 0) {
      Arm(accepted_at_ + ReadTimeout(), Metrics::ConnectionClose::kHeaderTimeout);
    } else {
      Arm(Clock::now() + std::chrono::seconds(server_->options.keep_alive_timeout_s),
          Metrics::ConnectionClose::kIdleTimeout);
    }
    Read();
  }

  void Read() {
    // Idle, ask for little (an idle connection holds only this buffer); in
    // the middle of a request, for what the buffer holds already (it grows).
    const size_t want = std::min(
        kMaxRead, std::max(kFirstRead, buffer_.size() == 0 ? buffer_.capacity() : buffer_.size()));
    stream_.async_read_some(buffer_.prepare(want),
                            [self = this->shared_from_this()](const error_code& ec, size_t n) {
                              self->OnRead(ec, n);
                            });
  }

  void OnRead(const error_code& ec, size_t n) {
    idle_ = false;
    // The client went away, the sweep closed the connection (and counted
    // why), or the server stops: nothing to answer.
    if (ec) return Close();
    buffer_.commit(n);
    if (!reading_header_) {
      // The first bytes of a request: the whole header must be here by
      // then, however slowly it trickles (for the first request, the
      // deadline already runs from the accept).
      reading_header_ = true;
      if (served_ > 0) Arm(Clock::now() + ReadTimeout(), Metrics::ConnectionClose::kHeaderTimeout);
    }
    Parse();
  }

  // Feeds what is buffered to the parser: the header first (checked before
  // any body byte is parsed), then the body; reads more when it needs more.
  void Parse() {
    while (true) {
      error_code ec;
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) break;
      if (ec) return OnParseError(ec);
      if (!header_done_ && parser_->is_header_done()) {
        header_done_ = true;
        if (!OnHeader()) return;
      }
      if (parser_->is_done()) return Serve();
      if (buffer_.size() == 0 || used == 0) break;
    }
    Read();
  }

  void OnParseError(const error_code& ec) {
    if (ec == http::error::header_limit) {
      return Refuse(431, Metrics::ConnectionClose::kHeaderTooLarge,
                    "request header too large (at most " +
                        std::to_string(server_->options.header_max_bytes) + " bytes)");
    }
    if (ec == http::error::body_limit) {  // a Content-Length or chunks past the limit
      return Refuse(413, Metrics::ConnectionClose::kBodyTooLarge, BodyTooLarge());
    }
    if (IsParseError(ec)) {
      return Refuse(400, Metrics::ConnectionClose::kBadFraming,
                    (header_done_ ? "malformed HTTP body: " : "malformed HTTP request: ") +
                        ec.message());
    }
    Close();
  }

  // The header is whole: checks it, then lets the body follow. False when
  // the connection is answered or waits for something else (100 Continue).
  bool OnHeader() {
    if (auto refusal = CheckHeader()) {
      Refuse(refusal->first, refusal->first == 431 ? Metrics::ConnectionClose::kHeaderTooLarge
                                                   : Metrics::ConnectionClose::kBadFraming,
             refusal->second);
      return false;
    }
    if (parser_->is_done()) return true;
    parser_->eager(true);  // the body, as it arrives
    // A client that asked to wait for 100 Continue gets it only when the
    // body is within the limit (else the parser already said 413).
    const auto& h = parser_->get();
    const auto expect = h.find(http::field::expect);
    const auto length = parser_->content_length();
    if (expect != h.end() && IEquals(expect->value(), "100-continue") &&
        (!length || *length <= server_->options.payload_max_bytes)) {
      Arm(Clock::now() + std::chrono::seconds(server_->options.write_timeout_s),
          Metrics::ConnectionClose::kWriteTimeout);
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = this->shared_from_this()](const error_code& ec, size_t) {
                         if (ec) return self->Close();
                         self->Arm(Clock::now() + self->ReadTimeout(),
                                   Metrics::ConnectionClose::kBodyTimeout);
                         self->Parse();
                       });
      return false;
    }
    Arm(Clock::now() + ReadTimeout(), Metrics::ConnectionClose::kBodyTimeout);
    return true;
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

  // Fills the worker's reused request from the parsed one.
  HttpRequest& ToRequest() {
    auto& h = parser_->get();
    HttpRequest& r = worker_->request;
    r.Clear();
    r.method.assign(h.method_string().data(), h.method_string().size());
    r.target.assign(h.target().data(), h.target().size());
    r.path.assign(r.target, 0, r.target.find('?'));
    r.body.swap(h.body());
    beast::string_view caller_request_id;
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
        caller_request_id = f.value();
      }
    }
    if (WellFormedRequestId(caller_request_id)) {
      r.request_id.assign(caller_request_id.data(), caller_request_id.size());
    } else {
      server_->NewRequestId(*worker_, r.request_id);
    }
    if (peer_.empty()) peer_ = PeerName();  // once per connection, for the access log
    r.peer = peer_;
    return r;
  }

  void Serve() {
    const auto& h = parser_->get();
    const bool head = h.method() == http::verb::head;
    const unsigned version = h.version();
    const bool keep_alive = h.keep_alive() && !worker_->stopping;
    HttpRequest& request = ToRequest();
    HttpReply reply;
    try {
      reply = server_->handlers->Handle(request);
    } catch (const std::exception& e) {  // Handle catches everything; stay safe anyway
      reply.status = 500;
      reply.body = EncodeError("internal error");
    }
    parser_.reset();
    std::string& out = worker_->out;
    out.clear();
    AppendHttpReply(out, version, reply, request.request_id, keep_alive, head);
    // The body's buffer goes to the next parser (a large one is let go).
    if (request.body.capacity() <= 64 * 1024) {
      request.body.clear();
      request.body.swap(worker_->spare_body);
    }
    request.body.clear();
    ++served_;
    Write(!keep_alive);
  }

  // Answers with an error the server itself decides (the handler never saw
  // the request), then closes.
  void Refuse(int status, Metrics::ConnectionClose why, const std::string& message) {
    server_->metrics->CountConnectionClose(why);
    refused_ = true;  // counted once: a refusal the client does not read is not counted again
    std::string path;
    if (parser_) {  // the request line may have been read (e.g. a Content-Length too large)
      const auto target = parser_->get().target();
      path.assign(target.data(), std::min(target.size(), target.find('?')));
    }
    server_->metrics->CountRequest(server_->handlers->Classify(path), status,
                                   std::chrono::nanoseconds(0));
    parser_.reset();
    HttpReply reply;
    reply.status = status;
    reply.body = EncodeError(message);
    std::string& out = worker_->out;
    out.clear();
    AppendHttpReply(out, 11, reply, server_->NewRequestId(*worker_), false, false);
    buffer_.consume(buffer_.size());  // whatever follows is not a request we will read
    Write(true);
  }

  // Writes the worker's formatted reply: at once when the socket takes it all
  // (the usual case: a reply is a few hundred bytes), which saves a
  // completion handler and a round through the event loop per request; else
  // what is left moves into the session and is written asynchronously.
  void Write(bool close) {
    // The whole reply must be taken within the write timeout: a client that
    // sends requests but never reads the replies is closed (and counted),
    // not kept with its reply buffered.
    Arm(Clock::now() + std::chrono::seconds(server_->options.write_timeout_s),
        refused_ ? std::nullopt : std::optional(Metrics::ConnectionClose::kWriteTimeout));
    std::string& out = worker_->out;
    size_t written = 0;
    if constexpr (!kIsTls<Stream>) {
      error_code ec;
      written = stream_.write_some(net::buffer(out), ec);
      if (ec && ec != net::error::would_block && ec != net::error::try_again) return Close();
      if (ec) written = 0;
      if (written == out.size()) {
        if (out.capacity() > 64 * 1024) std::string().swap(out);  // a batch's reply: let it go
        return AfterWrite(close);
      }
    }
    pending_.assign(out, written);
    net::async_write(stream_, net::buffer(pending_),
                     [self = this->shared_from_this(), close](const error_code& ec, size_t) {
                       std::string().swap(self->pending_);
                       if (ec) return self->Close();
                       self->AfterWrite(close);
                     });
  }

  void AfterWrite(bool close) {
    if (close) return Linger();
    WaitForRequest();
  }

  // Half-closes, then drops whatever the client still sends until it closes
  // too (or kLinger passes), so the reply is read rather than reset.
  void Linger() {
    Arm(Clock::now() + kLinger, std::nullopt);
    idle_ = true;
    if constexpr (kIsTls<Stream>) {
      stream_.async_shutdown([self = this->shared_from_this()](const error_code&) {
        self->Close();
      });
    } else {
      error_code ignored;
      stream_.shutdown(net::socket_base::shutdown_send, ignored);
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
    worker_->SetDeadline(this, Clock::time_point::max());
    error_code ignored;
    Lowest().close(ignored);
  }

  HttpServer::Impl* server_;
  Worker* worker_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  std::string pending_;  // what is left of a reply the socket did not take at once
  std::optional<Metrics::ConnectionClose> deadline_reason_;
  Clock::time_point accepted_at_;
  std::string peer_;  // the client, named on the first request (PeerName)
  uint64_t served_ = 0;
  size_t lingered_ = 0;
  bool refused_ = false;  // Refuse counted why this connection closes
  bool idle_ = false;  // waiting for a request (or lingering): Stop may close it
  bool reading_header_ = false;  // the current request's first bytes arrived
  bool header_done_ = false;     // ... and its whole header, checked
};

}  // namespace

template <class Acceptor>
void HttpServer::Impl::Accept(Acceptor& acceptor) {
  Worker& worker = NextWorker();
  // The new socket lives on the worker's io_context.
  using Socket = net::basic_stream_socket<typename Acceptor::protocol_type, Executor>;
  acceptor.async_accept(worker.ioc, [this, &acceptor, &worker](const error_code& ec, Socket socket) {
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
  std::vector<SessionBase*> sessions;
  sessions.reserve(w.sessions.size());
  for (const SessionSlot& slot : w.sessions) sessions.push_back(slot.session);
  for (SessionBase* s : sessions) s->CloseIfIdle();
  w.guard.reset();
  if (w.sessions.empty()) w.sweep_timer.cancel();
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
  for (auto& w : m.workers) {
    Worker* worker = w.get();
    net::post(worker->ioc, [worker] { worker->Sweep(); });
  }
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
