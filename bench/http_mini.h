// A few lines of raw-socket HTTP/1.1 for bench/probe.cc and bench/conn_holder.cc:
// loopback TCP connect and "is this buffer one complete reply". Deliberately
// not a client library: these programs must see exactly when bytes arrive.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace bench {

// A non-blocking socket with connect() started to HOST:PORT; -1 on failure.
inline int StartConnect(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    ::close(fd);
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// 0 once a started connect succeeded, else its errno.
inline int ConnectError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

// The status code when `buf` holds one whole reply (header and, by
// Content-Length, body), -1 while more is needed. Chunked replies are not
// expected from the servers measured here; one is treated as complete at the
// terminating "0\r\n\r\n".
inline int CompleteReply(std::string_view buf) {
  const size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return -1;
  if (buf.size() < 12 || buf.substr(0, 5) != "HTTP/") return -1;
  const int status = std::atoi(std::string(buf.substr(9, 3)).c_str());
  const std::string_view head = buf.substr(0, end);
  size_t length = 0;
  bool chunked = false;
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    const std::string_view line = head.substr(pos, head.find("\r\n", pos) - pos);
    if (line.size() > 15 && ::strncasecmp(line.data(), "content-length:", 15) == 0)
      length = std::strtoul(std::string(line.substr(15)).c_str(), nullptr, 10);
    if (line.size() > 18 && ::strncasecmp(line.data(), "transfer-encoding:", 18) == 0)
      chunked = line.find("chunked") != std::string_view::npos;
  }
  const std::string_view body = buf.substr(end + 4);
  if (chunked) return body.find("0\r\n\r\n") != std::string_view::npos ? status : -1;
  return body.size() >= length ? status : -1;
}

}  // namespace bench
