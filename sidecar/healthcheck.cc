#include "sidecar/healthcheck.h"

#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace gatehouse::sidecar {
namespace {

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (s.size() > 300) s.resize(300);
  return s;
}

// cpp-httplib 0.11 has no Unix-socket client: one request by hand.
HealthcheckResult OverUnixSocket(const std::string& path, int timeout_ms) {
  HealthcheckResult out;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {false, std::string("socket: ") + std::strerror(errno)};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof addr.sun_path - 1));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    out.detail = "cannot connect to unix:" + path + ": " + std::strerror(errno);
    ::close(fd);
    return out;
  }
  const std::string request = "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  while (reply.size() < 64 * 1024) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (reply.compare(0, 9, "HTTP/1.1 ") != 0 && reply.compare(0, 9, "HTTP/1.0 ") != 0) {
    out.detail = "no HTTP answer from unix:" + path;
    return out;
  }
  const size_t body = reply.find("\r\n\r\n");
  out.ready = reply.compare(9, 3, "200") == 0;
  out.detail = "HTTP " + reply.substr(9, 3) + " " +
               OneLine(body == std::string::npos ? "" : reply.substr(body + 4));
  return out;
}

}  // namespace

HealthcheckResult Healthcheck(const ListenAddress& address, int timeout_ms) {
  if (!address.unix_path.empty()) return OverUnixSocket(address.unix_path, timeout_ms);
  std::string host = address.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  httplib::Client client(host, address.port);
  const time_t sec = timeout_ms / 1000;
  const time_t usec = (timeout_ms % 1000) * 1000;
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
  auto res = client.Get("/readyz");
  if (!res) {
    return {false, "no answer from " + host + ":" + std::to_string(address.port) + ": " +
                       httplib::to_string(res.error())};
  }
  return {res->status == 200, "HTTP " + std::to_string(res->status) + " " + OneLine(res->body)};
}

}  // namespace gatehouse::sidecar
