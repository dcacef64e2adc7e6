// HttpServer: cpp-httplib around Handlers. The only file that includes
// httplib.h (http_server.cc); everything it does is turn an httplib request
// into an HttpRequest, call Handlers::Handle, and write the HttpReply back.
//
// cpp-httplib 0.11.4 as Debian ships it is tuned here (../shared/NOTES.md):
// TCP_NODELAY on (otherwise every small reply waits ~40 ms for a delayed ACK),
// a high keep-alive request count (the default closes a connection after 5
// requests), a thread pool sized by `threads`, a payload limit (the default
// has none), and read/write timeouts so a slow client cannot hold a worker.
//
// The thread-pool trade-off: cpp-httplib holds one worker thread for each
// open connection, for as long as it stays open (up to keep_alive_timeout_s
// idle). Connections beyond `threads` wait in a queue until a worker frees:
// size `threads` to the number of connections your proxies keep open (nginx
// `keepalive`, Envoy's pool), or requests queue and tails grow to seconds.
// Idle threads cost little (a stack mapping, no CPU).
//
// Thread safety: Stop() may be called from any thread (e.g. a signal thread).
#pragma once

#include <cstddef>
#include <ctime>
#include <memory>
#include <string>

#include "gatehouse/status.h"
#include "sidecar/handlers.h"

namespace gatehouse::sidecar {

struct ServerOptions {
  // Address to listen on. Port 0 picks a free port (Bind() returns it).
  std::string host = "127.0.0.1";
  int port = 7878;
  // Worker threads = open connections served at once. Default 64.
  int threads = 64;
  // Requests served on one keep-alive connection before it is closed. Default 100000.
  size_t keep_alive_max_count = 100000;
  // Seconds an idle keep-alive connection is kept (holding a worker). Default 5.
  time_t keep_alive_timeout_s = 5;
  // Seconds to wait for a request's bytes / for the client to take the reply. Default 5.
  time_t read_timeout_s = 5;
  time_t write_timeout_s = 5;
  // Largest request body accepted; larger ones get 413. Default 64 KiB.
  // (Request line and each header line are limited to 8 KiB by cpp-httplib.)
  size_t payload_max_bytes = 64 * 1024;
  // TLS: both set serves HTTPS (OpenSSL through cpp-httplib).
  std::string tls_cert;
  std::string tls_key;
};

class HttpServer {
 public:
  // Errors: InvalidArgument when TLS files cannot be loaded.
  static Result<std::unique_ptr<HttpServer>> Create(const ServerOptions& options,
                                                    Handlers* handlers, Metrics* metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port (the chosen one for port 0).
  // IoError when the address cannot be bound.
  Result<int> Bind();
  // Serves until Stop(). Returns after in-flight requests have finished.
  Status Run();
  // Stops accepting at once; Run() returns once in-flight requests are
  // answered. cpp-httplib 0.11 lets an idle keep-alive connection run out its
  // keep_alive_timeout_s before its worker notices, so a stop takes at most
  // that long (5 s by default).
  void Stop();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatehouse::sidecar
