// HttpServer: the sidecar's HTTP/1.1 server, Boost.Beast over Boost.Asio.
// The only file that includes Beast or Asio is http_server.cc; everything it
// does is read a request off a socket into an HttpRequest (raw bytes, nothing
// decoded), call Handlers::Handle, and write the HttpReply back.
//
// Why not cpp-httplib (the client side still uses it): as Debian 12 ships it
// (0.11.4) it percent-decodes every header value, so forward-auth checked a
// different path than the service received; it holds one thread per open
// connection (300 slow-header connections starved everyone, 64 busy
// keep-alive clients starved fresh ones); header bytes were unbounded (400 MB
// on one connection); its payload limit missed chunked bodies; pipelined
// requests lost answers; it accepted duplicate and conflicting framing; and it
// set SO_REUSEPORT, so a second sidecar silently shared a busy port. See the
// README ("Why the sidecar's server is Beast").
//
// The design: `threads` I/O threads (default: one per core), each running its
// own io_context; one acceptor, on a small thread of its own (so that a busy
// I/O thread never delays accepting), hands each new connection to the next thread in
// turn. A connection is a chain of asynchronous operations, so an idle or slow
// one holds no thread, only its socket and a small buffer. Handlers run on the
// I/O thread (a decision is microseconds; a batch is bounded by the payload
// limit).
//
// What a request costs the server (measured; README "Performance"): Beast
// parses the request (its parser is the reviewed, hostile-input-safe part),
// and nothing else of Beast runs. Deadlines are not a timer per operation:
// each connection holds its current deadline, and every 250 ms each I/O
// thread closes those past it (so a timeout fires up to 250 ms late, never
// early). The reply is one preformatted buffer (the bytes Beast's serializer
// wrote), written at once when the socket takes it; the header fields come
// from a per-thread arena and the request's strings are reused. Per request:
// one recv, one send (the store's freshness stamp is a mapped read, no
// system call), and an epoll_wait shared
// by the requests that are ready together.
//
// Per connection, every limit is enforced by the server, not the handler:
//   - the whole request header must arrive within read_timeout_s of the
//     first byte (of the accept, for the first request): trickling bytes does
//     not extend it;
//   - header bytes are capped at header_max_bytes and fields at
//     header_max_fields (431, then close);
//   - the body is capped at payload_max_bytes in every transfer coding (413)
//     and must arrive within read_timeout_s;
//   - an idle keep-alive connection is closed after keep_alive_timeout_s;
//   - past max_connections open, a new connection gets 503 at once and is
//     closed (counted), so the open ones keep being served.
// Framing (RFC 9112): more than one Content-Length, a Content-Length list,
// Content-Length with Transfer-Encoding, a Transfer-Encoding other than a
// single `chunked`, a malformed length, and a missing or repeated Host in
// HTTP/1.1 are 400 and close. Pipelined requests are answered one by one, in
// order; a client that half-closes after sending still gets its reply. A
// reply that closes the connection is followed by a lingering close (unread
// bytes are drained for a moment) so the client reads the reply instead of a
// reset.
//
// Binding never shares an address: no SO_REUSEPORT, so a second sidecar on a
// busy port fails (main exits 1). A Unix-domain socket (unix_path) is created
// with socket_mode; a stale socket file nobody listens on is replaced, a live
// one or any other file is an error.
//
// Thread safety: Stop() may be called from any thread (e.g. a signal thread),
// any number of times, before or after Run().
#pragma once

#include <cstddef>
#include <ctime>
#include <memory>
#include <string>

#include "gatehouse/status.h"
#include "sidecar/handlers.h"

namespace gatehouse::sidecar {

struct ServerOptions {
  // TCP address to listen on. Port 0 picks a free port (Bind() returns it).
  std::string host = "127.0.0.1";
  int port = 7878;
  // When set, listen on this Unix-domain socket path instead of TCP.
  std::string unix_path;
  // Permission bits of the Unix socket file. Default 0660.
  unsigned socket_mode = 0660;
  // I/O threads. 0 (the default): one per core.
  int threads = 0;
  // Open connections served at once; more are refused with 503. Default 16384.
  size_t max_connections = 16384;
  // Listen backlog (the kernel caps it at net.core.somaxconn). Default 4096.
  int backlog = 4096;
  // Seconds the whole request header may take (from the first byte; from the
  // accept for a connection's first request), and separately the body. Default 5.
  time_t read_timeout_s = 5;
  // Seconds the client may take to read a reply. Default 5.
  time_t write_timeout_s = 5;
  // Seconds an idle keep-alive connection is kept open. Default 60.
  time_t keep_alive_timeout_s = 60;
  // Request line plus header fields, in bytes (431 past it). Default 16 KiB.
  size_t header_max_bytes = 16 * 1024;
  // Header fields in one request (431 past it). Default 100.
  size_t header_max_fields = 100;
  // Largest request body, whatever its transfer coding (413). Default 64 KiB.
  size_t payload_max_bytes = 64 * 1024;
  // Seconds Stop() waits for in-flight requests before closing them. Default 5.
  time_t drain_timeout_s = 5;
  // TLS: both set serves HTTPS (TLS 1.2 or later).
  std::string tls_cert;
  std::string tls_key;
  // With TLS: a PEM bundle of CAs; a client without a certificate signed by
  // one of them is refused at the handshake (mutual TLS).
  std::string tls_client_ca;
};

class HttpServer {
 public:
  // Errors: InvalidArgument when the TLS files cannot be loaded or the
  // options are inconsistent.
  static Result<std::unique_ptr<HttpServer>> Create(const ServerOptions& options,
                                                    Handlers* handlers, Metrics* metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; returns the port (the chosen one for port 0; 0 for a
  // Unix socket). IoError when the address is in use or cannot be bound.
  Result<int> Bind();
  // Serves until Stop(), on `threads` threads (this one among them). Returns
  // once every connection is closed.
  Status Run();
  // Stops accepting at once and closes idle connections; requests in flight
  // are answered (for at most drain_timeout_s), then Run() returns.
  void Stop();

  struct Impl;  // opaque; public only so the connection code in the .cc can name it

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatehouse::sidecar
