#include "sidecar/http_server.h"

#include <httplib.h>

#include <cctype>
#include <chrono>
#include <exception>

#include "sidecar/wire.h"

namespace gatehouse::sidecar {
namespace {

// Methods cpp-httplib routes itself (and reads bodies for).
bool RoutedMethod(const std::string& m) {
  return m == "GET" || m == "HEAD" || m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE" ||
         m == "OPTIONS";
}

bool IEquals(const std::string& a, const char* b, size_t n) {
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  }
  return true;
}

// One pass over the headers, copying only those the handlers read.
HttpRequest Convert(const httplib::Request& req) {
  HttpRequest r;
  r.method = req.method;
  r.path = req.path;
  r.target = req.target;
  r.body = req.body;
  for (const auto& [name, value] : req.headers) {
    std::string* field = nullptr;
    switch (name.size()) {
      case 12:
        if (IEquals(name, "content-type", 12)) field = &r.content_type;
        break;
      case 13:
        if (IEquals(name, "authorization", 13)) field = &r.authorization;
        break;
      case 14:
        if (IEquals(name, "x-original-uri", 14)) field = &r.original_uri;
        break;
      case 15:
        if (IEquals(name, "x-forwarded-uri", 15)) field = &r.forwarded_uri;
        break;
      case 17:
        if (IEquals(name, "x-original-method", 17)) field = &r.original_method;
        break;
      case 18:
        if (IEquals(name, "x-forwarded-method", 18)) field = &r.forwarded_method;
        break;
      default:
        break;
    }
    if (field != nullptr && field->empty()) *field = value;  // the first of repeated headers
  }
  return r;
}

void Write(HttpReply&& reply, httplib::Response& res) {
  res.status = reply.status;
  for (auto& [name, value] : reply.headers) res.headers.emplace(std::move(name), std::move(value));
  res.headers.emplace("Content-Type", std::move(reply.content_type));
  res.body = std::move(reply.body);
}

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  Handlers* handlers = nullptr;
  Metrics* metrics = nullptr;
  std::unique_ptr<httplib::Server> server;

  void Serve(const httplib::Request& req, httplib::Response& res) {
    Write(handlers->Handle(Convert(req)), res);
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

Result<std::unique_ptr<HttpServer>> HttpServer::Create(const ServerOptions& options,
                                                       Handlers* handlers, Metrics* metrics) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handlers = handlers;
  impl->metrics = metrics;
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return Status::InvalidArgument("TLS needs both --tls-cert and --tls-key");
    }
    auto ssl =
        std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!ssl->is_valid()) {
      return Status::InvalidArgument("cannot load the TLS certificate " + options.tls_cert +
                                     " and key " + options.tls_key);
    }
    impl->server = std::move(ssl);
  } else {
    impl->server = std::make_unique<httplib::Server>();
  }
  httplib::Server& s = *impl->server;

  // The tuning (see the header).
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(options.keep_alive_max_count);
  s.set_keep_alive_timeout(options.keep_alive_timeout_s);
  s.set_read_timeout(options.read_timeout_s, 0);
  s.set_write_timeout(options.write_timeout_s, 0);
  s.set_payload_max_length(options.payload_max_bytes);
  const size_t threads = options.threads > 0 ? static_cast<size_t>(options.threads) : 1;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  Impl* raw = impl.get();
  // Every path and the usual methods go to Handlers, which routes itself (so
  // routing is tested without sockets).
  auto serve = [raw](const httplib::Request& req, httplib::Response& res) { raw->Serve(req, res); };
  s.Get(".*", serve);
  s.Post(".*", serve);
  s.Put(".*", serve);
  s.Patch(".*", serve);
  s.Delete(".*", serve);
  s.Options(".*", serve);
  // Requests without a body are answered before cpp-httplib's routing. A
  // request with neither Content-Length nor Transfer-Encoding has no body
  // (RFC 9112 6.3), but cpp-httplib 0.11 would read a POST/PUT/PATCH like
  // that until the client closes or the read timeout fires; nginx sends
  // exactly that for auth subrequests with proxy_pass_request_body off.
  // Methods cpp-httplib does not route (TRACE, CONNECT) also arrive here.
  s.set_pre_routing_handler([raw](const httplib::Request& req, httplib::Response& res) {
    const bool has_length =
        req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0";
    const bool bodiless = !has_length && !req.has_header("Transfer-Encoding");
    if (!bodiless && RoutedMethod(req.method)) return httplib::Server::HandlerResponse::Unhandled;
    raw->Serve(req, res);
    if (!bodiless) res.set_header("Connection", "close");  // its body was not read
    return httplib::Server::HandlerResponse::Handled;
  });
  // Replies cpp-httplib makes itself (413 too large, 400 unparsable, 414 URI
  // too long, ...) get a JSON body and are counted. Ours already have a body.
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [raw](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        switch (res.status) {
          case 413:
            message = "request body too large (at most " +
                      std::to_string(raw->options.payload_max_bytes) + " bytes)";
            break;
          case 414:
            message = "request URI too long";
            break;
          case 404:
            message = "no such endpoint: " + req.path;
            break;
          default:
            message = "bad request (HTTP " + std::to_string(res.status) + ")";
        }
        res.set_content(EncodeError(message), "application/json");
        raw->metrics->CountRequest(raw->handlers->Classify(req.path), res.status,
                                   std::chrono::nanoseconds(0));
        return httplib::Server::HandlerResponse::Handled;
      }));
  s.set_exception_handler([raw](const httplib::Request& req, httplib::Response& res,
                                std::exception_ptr) {
    res.status = 500;
    res.set_content(EncodeError("internal error"), "application/json");
    raw->metrics->CountRequest(raw->handlers->Classify(req.path), 500, std::chrono::nanoseconds(0));
  });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

Result<int> HttpServer::Bind() {
  httplib::Server& s = *impl_->server;
  if (impl_->options.port == 0) {
    const int port = s.bind_to_any_port(impl_->options.host);
    if (port <= 0) return Status::IoError("cannot listen on " + impl_->options.host + ":0");
    return port;
  }
  if (!s.bind_to_port(impl_->options.host, impl_->options.port)) {
    return Status::IoError("cannot listen on " + impl_->options.host + ":" +
                           std::to_string(impl_->options.port) +
                           " (address in use, or not an address of this machine)");
  }
  return impl_->options.port;
}

Status HttpServer::Run() {
  // listen_after_bind returns false after stop() as well; only a failure
  // before any stop is an error.
  const bool ok = impl_->server->listen_after_bind();
  (void)ok;
  return Status::Ok();
}

void HttpServer::Stop() { impl_->server->stop(); }

}  // namespace gatehouse::sidecar
