// The reference for bench/load.sh: a cpp-httplib hello-world with exactly the
// tuning gatehoused uses (sidecar/http_server.cc): TCP_NODELAY, a long
// keep-alive, a thread pool of --threads workers, a payload limit and 5 s
// timeouts. The sidecar's figures are read against this server's, measured
// in the same run on the same machine.
//
//   hello_server [--listen HOST:PORT] [--threads N]   (port 0: a free port, printed)
#include <httplib.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) {
      threads = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--listen") == 0) {
      std::string l = argv[i + 1];
      const size_t colon = l.rfind(':');
      host = l.substr(0, colon);
      port = std::atoi(l.c_str() + colon + 1);
    } else {
      std::fprintf(stderr, "usage: hello_server [--listen HOST:PORT] [--threads N]\n");
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  httplib::Server server;
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(5);
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_payload_max_length(64 * 1024);
  const size_t n = threads > 0 ? static_cast<size_t>(threads) : 1;
  server.new_task_queue = [n] { return new httplib::ThreadPool(n); };
  server.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"hello\":\"world\"}", "application/json");
  });
  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    std::fprintf(stderr, "hello_server: cannot listen on %s\n", host.c_str());
    return 1;
  }
  std::printf("hello_server listening on %s:%d (%d threads)\n", host.c_str(), port, threads);
  std::fflush(stdout);
  server.listen_after_bind();
  return 0;
}
