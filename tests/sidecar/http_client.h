// A minimal HTTP/1.1 client over POSIX sockets for the sidecar's server and
// end-to-end tests (loopback only). Keep-alive or one-shot; Content-Length
// and chunked bodies. Header names in responses are lower-cased.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace gatehouse::testing {

struct HttpResponse {
  int status = 0;  // 0: no response (error says why)
  std::map<std::string, std::string> headers;
  std::string body;
  std::string error;
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// 127.0.0.1:PORT (0: any port, for a bind).
inline sockaddr_in LoopbackAddress(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A blocking TCP socket connected to 127.0.0.1:PORT with send and receive
// timeouts and TCP_NODELAY, or -1. Buffer sizes (bytes, 0: the kernel's)
// are set before the connect, so the window advertised is small from the start.
inline int ConnectLoopbackTcp(int port, int timeout_ms, int rcvbuf = 0, int sndbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (sndbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr = LoopbackAddress(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class HttpConnection {
 public:
  explicit HttpConnection(int port, int timeout_ms = 10000)
      : fd_(ConnectLoopbackTcp(port, timeout_ms)) {}
  // A connection to a Unix-domain socket.
  HttpConnection(const std::string& unix_path, int timeout_ms) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, unix_path.data(),
                std::min(unix_path.size(), sizeof addr.sun_path - 1));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~HttpConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  // Half-closes: the server sees EOF after what was sent.
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  bool connected() const { return fd_ >= 0; }

  // Sends raw bytes (for malformed requests).
  bool SendRaw(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  HttpResponse Request(const std::string& method, const std::string& target,
                       const HeaderList& headers = {}, const std::string& body = "",
                       bool close = false) {
    HttpResponse r;
    if (fd_ < 0) {
      r.error = "not connected";
      return r;
    }
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    bool has_length = false;
    for (const auto& [k, v] : headers) {
      req += k + ": " + v + "\r\n";
      if (Lower(k) == "content-length") has_length = true;
    }
    if (!has_length && (!body.empty() || method == "POST" || method == "PUT")) {
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    if (close) req += "Connection: close\r\n";
    req += "\r\n" + body;
    if (!SendRaw(req)) {
      r.error = "send failed";
      return r;
    }
    return ReadResponse(method == "HEAD");
  }

  HttpResponse ReadResponse(bool head = false) {
    HttpResponse r;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) {
        r.error = "connection closed before the headers";
        return r;
      }
    }
    std::string head_text = buf_.substr(0, header_end);
    buf_.erase(0, header_end + 4);
    size_t line_end = head_text.find("\r\n");
    std::string status_line = head_text.substr(0, line_end);
    if (status_line.size() < 12) {
      r.error = "bad status line: " + status_line;
      return r;
    }
    r.status = std::atoi(status_line.substr(9, 3).c_str());
    size_t pos = line_end == std::string::npos ? head_text.size() : line_end + 2;
    while (pos < head_text.size()) {
      size_t e = head_text.find("\r\n", pos);
      if (e == std::string::npos) e = head_text.size();
      std::string line = head_text.substr(pos, e - pos);
      pos = e + 2;
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      r.headers[Lower(line.substr(0, colon))] = v;
    }
    if (head || r.status == 204 || r.status == 304) return r;
    if (Lower(r.Header("transfer-encoding")) == "chunked") {
      while (true) {
        size_t e;
        while ((e = buf_.find("\r\n")) == std::string::npos) {
          if (!Fill()) return Broken(r);
        }
        const size_t n = std::strtoul(buf_.substr(0, e).c_str(), nullptr, 16);
        buf_.erase(0, e + 2);
        while (buf_.size() < n + 2) {
          if (!Fill()) return Broken(r);
        }
        r.body += buf_.substr(0, n);
        buf_.erase(0, n + 2);
        if (n == 0) break;
      }
    } else if (r.headers.count("content-length")) {
      const size_t n = std::strtoul(r.Header("content-length").c_str(), nullptr, 10);
      while (buf_.size() < n) {
        if (!Fill()) return Broken(r);
      }
      r.body = buf_.substr(0, n);
      buf_.erase(0, n);
    } else {
      while (Fill()) {
      }
      r.body = std::move(buf_);
      buf_.clear();
    }
    return r;
  }

  // True when the server has closed the connection (EOF within timeout_ms).
  bool ClosedByPeer(int timeout_ms) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  static std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  }
  HttpResponse Broken(HttpResponse r) {
    r.error = "connection closed in the body";
    return r;
  }
  bool Fill() {
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
};

// One request on its own connection.
inline HttpResponse HttpCall(int port, const std::string& method, const std::string& target,
                             const HeaderList& headers = {}, const std::string& body = "") {
  HttpConnection c(port);
  if (!c.connected()) {
    HttpResponse r;
    r.error = "cannot connect to port " + std::to_string(port);
    return r;
  }
  return c.Request(method, target, headers, body, /*close=*/true);
}

// A port that was free a moment ago (for programs that take a fixed port).
inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = LoopbackAddress(0);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace gatehouse::testing
