// Fresh-request probe for bench/load.sh: while wrk keeps N connections busy
// (or conn_holder keeps thousands idle or slow), opens one new connection at a
// time, sends one request (Connection: close), and times connect-to-last-byte.
// wrk only times the requests that complete; a starved client never shows in
// its figures. This does: an unanswered probe counts as a timeout.
//
//   probe --port P [--host 127.0.0.1] [--count 100] [--interval-ms 50]
//         [--start-delay-ms 0] [--timeout-ms 5000] [--deadline-s 60]
//         [--method GET] [--path /] [--header 'K: V']... [--body STR]
//         [--out FILE]
//   probe --free-port      prints a free loopback port and exits
//
// Bounded: at most --count probes, each at most --timeout-ms (cut to what is
// left of --deadline-s); probes not started by the deadline are reported as
// not_started (a slow probe before them used the time), not as sent.
// Prints one line:
//   probe sent=N answered=A ok=O within1s=X within3s=Y p50_ms=.. p99_ms=.. max_ms=.. not_started=M
// where answered is any complete reply, ok a 2xx one, and the percentiles are
// over all N with an unanswered probe counted as infinitely slow ("inf").
// --out writes one line per probe: "MS STATUS" (STATUS 0: no reply), then
// "skip -1" per probe not started.
//
//   probe --port P --until-refused ... [--interval-ms 1] [--deadline-s 60]
// instead asks again and again, --interval-ms apart on one keep-alive
// connection, until the sidecar answers 200 with {"allow":false,...} whose
// first rule is not store-unavailable, then prints the moment that answer arrived,
// on the wall clock shared by every network namespace of the machine:
//   refused_at_unix_ms=1764644000123.456
// and exits 0; exit 1 when the deadline passes first. bench/multihost.sh
// starts one per sidecar host before a revocation: a compiled poller per host
// instead of one shell loop polling the hosts in turn, whose own latency
// (process and /dev/tcp set-up under load) was inside the figure.
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http_mini.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Milliseconds left until `deadline` (0 once it passed), for poll().
int Left(Clock::time_point deadline) {
  return static_cast<int>(std::max<long>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
}

// A connected socket to HOST:PORT by `deadline`, or -1.
int Connect(const std::string& host, int port, Clock::time_point deadline) {
  const int fd = bench::StartConnect(host, port);
  if (fd < 0) return -1;
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, Left(deadline)) == 1 && bench::ConnectError(fd) == 0) return fd;
  ::close(fd);
  return -1;
}

// Sends `request` on `fd` and reads one whole reply into `reply` by
// `deadline`: its status, or 0 when none came (the connection is then unusable).
int Exchange(int fd, const std::string& request, Clock::time_point deadline, std::string* reply) {
  reply->clear();
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    if (n == 0 || errno != EAGAIN || ::poll(&p, 1, Left(deadline)) != 1) return 0;
  }
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, Left(deadline)) != 1) return 0;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) continue;
      return 0;
    }
    reply->append(buf, static_cast<size_t>(n));
    const int s = bench::CompleteReply(*reply);
    if (s >= 0) return s;
  }
}

// One probe on a fresh connection: returns the reply's status (0: none) and
// sets `ms`, connect to last byte.
int ProbeOnce(const std::string& host, int port, const std::string& request, int timeout_ms,
              double* ms) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  const int fd = Connect(host, port, deadline);
  if (fd >= 0) {
    std::string reply;
    status = Exchange(fd, request, deadline, &reply);
    ::close(fd);
  }
  *ms = Ms(Clock::now() - t0);
  return status;
}

// A decision that refuses for a reason other than the store being
// unreachable (a partitioned or lagging sidecar denies everything).
bool IsRefusal(int status, const std::string& reply) {
  const size_t body = reply.find("\r\n\r\n");
  if (status != 200 || body == std::string::npos) return false;
  const std::string_view b = std::string_view(reply).substr(body + 4);
  return b.starts_with("{\"allow\":false") &&
         !b.starts_with("{\"allow\":false,\"reasons\":[{\"rule\":\"store-unavailable\"");
}

// --until-refused: see the header. One keep-alive connection, opened again
// when it fails: a fresh connection per request would use up the ephemeral
// ports towards the host within a minute at one request a millisecond.
int UntilRefused(const std::string& host, int port, const std::string& request, int interval_ms,
                 int timeout_ms, Clock::time_point end) {
  int fd = -1;
  std::string reply;
  while (Clock::now() < end) {
    const auto t = Clock::now();
    const auto deadline = std::min(end, t + std::chrono::milliseconds(timeout_ms));
    if (fd < 0) fd = Connect(host, port, deadline);
    const int status = fd >= 0 ? Exchange(fd, request, deadline, &reply) : 0;
    if (IsRefusal(status, reply)) {
      const double at = std::chrono::duration<double, std::milli>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
      std::printf("refused_at_unix_ms=%.3f\n", at);
      ::close(fd);
      return 0;
    }
    if (status == 0 && fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    const auto next = t + std::chrono::milliseconds(interval_ms);
    if (Clock::now() < next) std::this_thread::sleep_until(next);
  }
  if (fd >= 0) ::close(fd);
  std::fprintf(stderr, "probe: %s:%d never refused before the deadline\n", host.c_str(), port);
  return 1;
}

std::string Percentile(std::vector<double> v, double q) {
  if (v.empty()) return "-";
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(std::ceil(q * v.size())) - 1);
  if (std::isinf(v[i])) return "inf";
  char out[32];
  std::snprintf(out, sizeof out, "%.3f", v[i]);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", method = "GET", path = "/", body, out_path;
  std::vector<std::string> headers;
  int port = 0, count = 100, interval_ms = -1, start_delay_ms = 0, timeout_ms = 5000;
  double deadline_s = 60;
  bool until_refused = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--until-refused") {
      until_refused = true;
      continue;
    }
    if (a == "--free-port") {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in s{};
      s.sin_family = AF_INET;
      s.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof s;
      if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) != 0 ||
          ::getsockname(fd, reinterpret_cast<sockaddr*>(&s), &len) != 0)
        return 1;
      std::printf("%d\n", ntohs(s.sin_port));
      ::close(fd);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "probe: %s needs a value\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--port") port = std::atoi(v.c_str());
    else if (a == "--host") host = v;
    else if (a == "--count") count = std::atoi(v.c_str());
    else if (a == "--interval-ms") interval_ms = std::atoi(v.c_str());
    else if (a == "--start-delay-ms") start_delay_ms = std::atoi(v.c_str());
    else if (a == "--timeout-ms") timeout_ms = std::atoi(v.c_str());
    else if (a == "--deadline-s") deadline_s = std::atof(v.c_str());
    else if (a == "--method") method = v;
    else if (a == "--path") path = v;
    else if (a == "--header") headers.push_back(v);
    else if (a == "--body") body = v;
    else if (a == "--out") out_path = v;
    else {
      std::fprintf(stderr, "probe: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (port <= 0 || count <= 0) {
    std::fprintf(stderr, "usage: probe --port P [--count N] ... (see bench/probe.cc)\n");
    return 2;
  }
  if (interval_ms < 0) interval_ms = until_refused ? 1 : 50;
  ::signal(SIGPIPE, SIG_IGN);
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\n";
  if (!until_refused) request += "Connection: close\r\n";
  for (const auto& h : headers) request += h + "\r\n";
  if (!body.empty() || method == "POST") request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n" + body;

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(deadline_s));
  if (until_refused) return UntilRefused(host, port, request, interval_ms, timeout_ms, end);
  std::this_thread::sleep_for(std::chrono::milliseconds(start_delay_ms));
  std::vector<double> all;
  std::vector<int> statuses;
  int skipped = 0;
  for (int i = 0; i < count; ++i) {
    const auto t = Clock::now();
    if (t >= end) {  // not started: the run's deadline passed (a slow probe before it)
      ++skipped;
      continue;
    }
    const int left_ms = static_cast<int>(Ms(end - t));
    double ms = 0;
    const int status = ProbeOnce(host, port, request, std::min(timeout_ms, std::max(1, left_ms)), &ms);
    all.push_back(status ? ms : INFINITY);
    statuses.push_back(status);
    const auto next = t + std::chrono::milliseconds(interval_ms);
    if (Clock::now() < next) std::this_thread::sleep_until(next);
  }
  int answered = 0, ok = 0, within1 = 0, within3 = 0;
  double max = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (statuses[i]) ++answered;
    if (statuses[i] >= 200 && statuses[i] < 300) ++ok;
    if (statuses[i] && all[i] <= 1000) ++within1;
    if (statuses[i] && all[i] <= 3000) ++within3;
    max = std::max(max, all[i]);
  }
  if (!out_path.empty()) {
    if (FILE* f = std::fopen(out_path.c_str(), "w")) {
      for (size_t i = 0; i < all.size(); ++i)
        std::fprintf(f, "%s %d\n", std::isinf(all[i]) ? "inf" : std::to_string(all[i]).c_str(), statuses[i]);
      for (int i = 0; i < skipped; ++i) std::fprintf(f, "skip -1\n");
      std::fclose(f);
    }
  }
  std::printf("probe sent=%d answered=%d ok=%d within1s=%d within3s=%d p50_ms=%s p99_ms=%s max_ms=%s not_started=%d\n",
              static_cast<int>(all.size()), answered, ok, within1, within3, Percentile(all, 0.5).c_str(),
              Percentile(all, 0.99).c_str(), Percentile(all, 1.0).c_str(), skipped);
  return 0;
}
