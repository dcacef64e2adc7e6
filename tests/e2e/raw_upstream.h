// A recording HTTP upstream for the edge tests: answers 200 (then closes) to
// anything on 127.0.0.1 (a free port) and records, for every request it
// received, the request line's target exactly as its bytes came (nothing
// decoded or normalised) and every header line in order, so a test can ask
// what a proxy really passed on to the protected service. POSIX sockets only;
// a few threads accept on one listening socket; Stop() (or the destructor)
// ends them. (upstream.h echoes a few fields back instead; e2e_test uses it.)
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gatehouse::testing {

struct RecordedRequest {
  std::string method;
  std::string target;                                        // raw bytes of the request line
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, in order
  // Every value of headers named `name` (case-insensitive).
  std::vector<std::string> Values(const std::string& name) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : headers)
      if (Lower(k) == Lower(name)) out.push_back(v);
    return out;
  }
  std::string Value(const std::string& name) const {
    auto v = Values(name);
    return v.empty() ? "" : v.front();
  }
  static std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  }
};

class RecordingUpstream {
 public:
  explicit RecordingUpstream(int threads = 8) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 256);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~RecordingUpstream() { Stop(); }
  RecordingUpstream(const RecordingUpstream&) = delete;
  RecordingUpstream& operator=(const RecordingUpstream&) = delete;

  int port() const { return port_; }

  std::vector<RecordedRequest> Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t Count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    for (auto& t : threads_) t.join();
    ::close(fd_);
  }

 private:
  void Loop() {
    while (!stopped_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stopped_) return;
        continue;
      }
      timeval tv{5, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      Serve(c);
      ::close(c);
    }
  }

  bool Fill(int c, std::string& buf) {
    char tmp[16384];
    ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  }

  // One request, answered with Connection: close (so a few threads never
  // wait on a proxy's idle keep-alive connection).
  void Serve(int c) {
    std::string buf;
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > (1u << 20) || !Fill(c, buf)) return;
    }
    const std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);
    RecordedRequest rec;
    const size_t line_end = std::min(head.find("\r\n"), head.size());
    const std::string line = head.substr(0, line_end);
    const size_t s1 = line.find(' ');
    const size_t s2 = line.rfind(' ');
    if (s1 == std::string::npos || s2 == s1) return;
    rec.method = line.substr(0, s1);
    rec.target = line.substr(s1 + 1, s2 - s1 - 1);
    size_t length = 0;
    bool chunked = false;
    for (size_t pos = line_end; pos < head.size();) {
      size_t e = head.find("\r\n", pos + 2);
      if (e == std::string::npos) e = head.size();
      const std::string h = head.substr(pos + 2, e - pos - 2);
      pos = e;
      const size_t colon = h.find(':');
      if (colon == std::string::npos) continue;
      std::string value = h.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
      const std::string name = h.substr(0, colon);
      const std::string lower = RecordedRequest::Lower(name);
      if (lower == "content-length") length = std::strtoul(value.c_str(), nullptr, 10);
      if (lower == "transfer-encoding" && RecordedRequest::Lower(value).find("chunked") != std::string::npos)
        chunked = true;
      rec.headers.emplace_back(name, value);
    }
    // Read the body (closing on unread bytes would reset the proxy's read).
    if (chunked) {
      while (buf.find("0\r\n\r\n") == std::string::npos) {
        if (buf.size() > (1u << 20) || !Fill(c, buf)) break;
      }
    } else {
      while (buf.size() < length) {
        if (!Fill(c, buf)) break;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(rec);
    }
    const std::string body = "{\"upstream\":\"ok\"}";
    const std::string reply =
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::shutdown(c, SHUT_WR);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  mutable std::mutex mu_;
  std::vector<RecordedRequest> requests_;
  std::vector<std::thread> threads_;
};

}  // namespace gatehouse::testing
