// A tiny HTTP upstream for end-to-end tests: answers 200 (then closes) to anything on
// 127.0.0.1 (a free port), with a JSON body echoing the method, the path and
// the X-Gatehouse-* headers nginx passed on. POSIX sockets only; a few
// threads accept on one listening socket; Stop() (or the destructor) ends them.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::testing {

class Upstream {
 public:
  explicit Upstream(int threads = 4) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 128);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~Upstream() { Stop(); }
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  int port() const { return port_; }
  int requests() const { return requests_.load(); }

  void Stop() {
    if (stopped_.exchange(true)) return;
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    for (auto& t : threads_) t.join();
    ::close(fd_);
  }

 private:
  static std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  }
  static std::string Escape(const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      if (static_cast<unsigned char>(c) >= 0x20) out += c;
    }
    return out;
  }

  void Loop() {
    while (!stopped_) {
      int c = ::accept(fd_, nullptr, nullptr);
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

  // Serves one request and closes (so a few threads never wait on idle
  // keep-alive connections).
  void Serve(int c) {
    std::string buf;
    char tmp[8192];
    {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
      }
      const std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      std::string method = head.substr(0, head.find(' '));
      size_t p1 = head.find(' ');
      std::string path = head.substr(p1 + 1, head.find(' ', p1 + 1) - p1 - 1);
      std::string subject, workspace, role, caller, request_id;
      size_t length = 0;
      size_t pos = head.find("\r\n");
      while (pos != std::string::npos && pos < head.size()) {
        size_t e = head.find("\r\n", pos + 2);
        std::string line =
            head.substr(pos + 2, (e == std::string::npos ? head.size() : e) - pos - 2);
        pos = e;
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = Lower(line.substr(0, colon));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        if (name == "content-length") length = std::stoul(value);
        if (name == "x-gatehouse-subject") subject = value;
        if (name == "x-gatehouse-workspace") workspace = value;
        if (name == "x-gatehouse-role") role = value;
        if (name == "x-gatehouse-caller") caller = value;
        if (name == "x-request-id") request_id = value;
      }
      while (buf.size() < length) {
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
      }
      buf.erase(0, length);
      ++requests_;
      const std::string body = "{\"upstream\":\"ok\",\"method\":\"" + Escape(method) +
                               "\",\"path\":\"" + Escape(path) + "\",\"subject\":\"" +
                               Escape(subject) + "\",\"workspace\":\"" + Escape(workspace) +
                               "\",\"role\":\"" + Escape(role) + "\",\"caller\":\"" +
                               Escape(caller) + "\",\"request_id\":\"" + Escape(request_id) + "\"}";
      const std::string reply =
          "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: "
          "application/json\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<int> requests_{0};
  std::vector<std::thread> threads_;
};

}  // namespace gatehouse::testing
