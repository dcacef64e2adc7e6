// Holds connections open against a server for bench/load.sh's edge
// measurement, as a careless or hostile neighbour would:
//   --idle K   keep-alive connections that made one request (GET /healthz),
//              read the reply, and then sit idle;
//   --slow S   connections that send a partial request header and trickle one
//              more byte every --trickle-ms, never finishing it.
// A connection the server closes (the slow ones at its header deadline, the
// idle ones at its keep-alive timeout) is opened again, so K and S stay held
// for the whole run; reconnections are counted.
//
//   conn_holder --port P [--host 127.0.0.1] [--idle K] [--slow S]
//               [--trickle-ms 300] [--hold-s 120] [--connect-batch 256]
//
// One thread, epoll. Bounded: it exits after --hold-s seconds (or on
// SIGTERM/SIGINT), and at most --connect-batch connects are in flight at once.
// Prints "ready idle=K slow=S" once everything is held the first time, then a
// "status ..." line every second, and "done ..." at exit (stdout, flushed).
// Needs K + S + a few descriptors (raise ulimit -n).
#include <signal.h>
#include <sys/epoll.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "http_mini.h"

namespace {

using Clock = std::chrono::steady_clock;
volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

enum class Kind { kIdle, kSlow };
enum class State { kConnecting, kRequesting, kHeld };

struct Conn {
  int fd = -1;
  Kind kind = Kind::kIdle;
  State state = State::kConnecting;
  std::string in;
};

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  long idle = 0, slow = 0, trickle_ms = 300, batch = 256;
  double hold_s = 120;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--port") port = std::atoi(v.c_str());
    else if (a == "--host") host = v;
    else if (a == "--idle") idle = std::atol(v.c_str());
    else if (a == "--slow") slow = std::atol(v.c_str());
    else if (a == "--trickle-ms") trickle_ms = std::atol(v.c_str());
    else if (a == "--hold-s") hold_s = std::atof(v.c_str());
    else if (a == "--connect-batch") batch = std::atol(v.c_str());
    else {
      std::fprintf(stderr, "conn_holder: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (port <= 0 || idle + slow <= 0 || batch <= 0) {
    std::fprintf(stderr, "usage: conn_holder --port P [--idle K] [--slow S] ... (see bench/conn_holder.cc)\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTERM, OnSignal);
  ::signal(SIGINT, OnSignal);

  const std::string idle_request = "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  const std::string slow_prefix = "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nX-Slow: ";
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(idle + slow);  // slot i: idle if i < idle
  std::deque<size_t> to_open;
  for (size_t i = 0; i < conns.size(); ++i) {
    conns[i].kind = static_cast<long>(i) < idle ? Kind::kIdle : Kind::kSlow;
    to_open.push_back(i);
  }
  long connecting = 0, idle_held = 0, slow_held = 0;
  long idle_reopened = 0, slow_reopened = 0, connect_errors = 0, non200 = 0;
  bool ready = false;

  auto drop = [&](size_t i, bool reopen) {
    Conn& c = conns[i];
    if (c.state == State::kConnecting || c.state == State::kRequesting) --connecting;
    if (c.state == State::kHeld) (c.kind == Kind::kIdle ? idle_held : slow_held)--;
    if (c.state == State::kHeld && reopen) (c.kind == Kind::kIdle ? idle_reopened : slow_reopened)++;
    ::close(c.fd);
    c.fd = -1;
    c.state = State::kConnecting;
    c.in.clear();
    if (reopen) to_open.push_back(i);
  };
  auto open_more = [&] {
    while (connecting < batch && !to_open.empty()) {
      const size_t i = to_open.front();
      to_open.pop_front();
      Conn& c = conns[i];
      c.fd = bench::StartConnect(host, port);
      if (c.fd < 0) {
        ++connect_errors;
        to_open.push_back(i);
        return;  // out of descriptors or ports: try again on the next tick
      }
      c.state = State::kConnecting;
      epoll_event e{};
      e.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
      e.data.u64 = i;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &e);
      ++connecting;
    }
  };

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(hold_s));
  auto next_trickle = start, next_status = start + std::chrono::seconds(1);
  std::vector<epoll_event> events(1024);
  char buf[4096];
  while (!g_stop && Clock::now() < end) {
    open_more();
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 50);
    for (int k = 0; k < n; ++k) {
      const size_t i = events[k].data.u64;
      Conn& c = conns[i];
      if (c.fd < 0) continue;
      const uint32_t ev = events[k].events;
      if (c.state == State::kConnecting) {
        if (bench::ConnectError(c.fd) != 0) {
          ++connect_errors;
          drop(i, true);
          continue;
        }
        const std::string& first = c.kind == Kind::kIdle ? idle_request : slow_prefix;
        if (::send(c.fd, first.data(), first.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(first.size())) {
          ++connect_errors;
          drop(i, true);
          continue;
        }
        epoll_event e{};
        e.events = EPOLLIN | EPOLLRDHUP;
        e.data.u64 = i;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &e);
        if (c.kind == Kind::kIdle) {
          c.state = State::kRequesting;
        } else {
          c.state = State::kHeld;
          --connecting;
          ++slow_held;
        }
        continue;
      }
      // Readable or closed: read what there is.
      bool closed = (ev & (EPOLLERR | EPOLLHUP)) != 0;
      while (true) {
        const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
        if (r > 0) {
          if (c.state == State::kRequesting) c.in.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r == 0 || errno != EAGAIN) closed = true;
        break;
      }
      if (c.state == State::kRequesting) {
        const int status = bench::CompleteReply(c.in);
        if (status >= 0) {
          if (status != 200) ++non200;
          c.in.clear();
          c.state = State::kHeld;
          --connecting;
          ++idle_held;
        }
      }
      if (closed || (ev & EPOLLRDHUP)) drop(i, true);
    }
    const auto now = Clock::now();
    if (now >= next_trickle) {
      for (size_t i = idle; i < conns.size(); ++i) {
        if (conns[i].fd >= 0 && conns[i].state == State::kHeld &&
            ::send(conns[i].fd, "a", 1, MSG_NOSIGNAL) != 1)
          drop(i, true);
      }
      next_trickle = now + std::chrono::milliseconds(trickle_ms);
    }
    if (!ready && idle_held == idle && slow_held == slow) {
      ready = true;
      std::printf("ready idle=%ld slow=%ld after_s=%.1f\n", idle_held, slow_held,
                  std::chrono::duration<double>(now - start).count());
      std::fflush(stdout);
    }
    if (now >= next_status) {
      std::printf("status idle=%ld slow=%ld connecting=%ld idle_reopened=%ld slow_reopened=%ld connect_errors=%ld non200=%ld\n",
                  idle_held, slow_held, connecting, idle_reopened, slow_reopened, connect_errors, non200);
      std::fflush(stdout);
      next_status = now + std::chrono::seconds(1);
    }
  }
  std::printf("done idle=%ld slow=%ld idle_reopened=%ld slow_reopened=%ld connect_errors=%ld non200=%ld\n",
              idle_held, slow_held, idle_reopened, slow_reopened, connect_errors, non200);
  std::fflush(stdout);
  for (auto& c : conns)
    if (c.fd >= 0) ::close(c.fd);
  return 0;
}
