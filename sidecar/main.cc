// gatehoused: the Gatehouse sidecar. See CONTRACT.md "Sidecar HTTP API" and
// the README for the API; http_server.h for the tuning and its trade-offs.
//
// Exit status: 0 after a clean shutdown (SIGTERM or SIGINT), 1 when the
// policy or the store cannot be loaded or the address cannot be bound,
// 2 for a usage error.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "gatehouse/policy.h"
#include "gatehouse/version.h"
#include "sidecar/config.h"
#include "sidecar/decision_log.h"
#include "sidecar/forward_auth.h"
#include "sidecar/handlers.h"
#include "sidecar/healthcheck.h"
#include "sidecar/http_server.h"
#include "sidecar/metrics.h"
#include "sidecar/state.h"

namespace po = boost::program_options;
using namespace gatehouse;
using namespace gatehouse::sidecar;

namespace {

int Usage(const std::string& message) {
  std::cerr << "gatehoused: " << message << " (see gatehoused --help)\n";
  return 2;
}

int Fail(const std::string& message) {
  std::cerr << "gatehoused: " << message << "\n";
  return 1;
}

// Every open connection is a descriptor: take the hard limit, not the
// shell's usual soft 1024 (max_connections defaults to 16384).
void RaiseDescriptorLimit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &r);
  }
}

// gatehoused healthcheck [--listen ADDR] [--timeout-ms N]: exit 0 when the
// sidecar there says it is ready, 1 when not (or no answer), 2 usage.
int HealthcheckMain(int argc, char** argv) {
  std::string listen;
  int timeout_ms = 2000;
  po::options_description desc(
      "usage: gatehoused healthcheck [--listen ADDR] [--timeout-ms N]\n\n"
      "Asks the sidecar at ADDR for GET /readyz; exits 0 when it is ready, 1 when not.\n"
      "For container and systemd health checks without curl.\n\noptions");
  // clang-format off
  desc.add_options()
      ("help,h", "this help")
      ("listen", po::value(&listen)->default_value("127.0.0.1:7878"),
       "HOST:PORT or unix:PATH of the sidecar (env GATEHOUSE_LISTEN)")
      ("timeout-ms", po::value(&timeout_ms)->default_value(timeout_ms), "how long to wait for the answer");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc - 1, argv + 1).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::store(po::parse_environment(desc,
                                    [](const std::string& var) -> std::string {
                                      return var == "GATEHOUSE_LISTEN" ? "listen" : "";
                                    }),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return Usage(e.what());
  }
  auto address = ParseListen(listen);
  if (!address.ok()) return Usage(address.status().ToString());
  if (timeout_ms < 1 || timeout_ms > 600000) return Usage("--timeout-ms must be 1-600000");
  const HealthcheckResult r = Healthcheck(*address, timeout_ms);
  if (!r.ready) return Fail("not ready: " + r.detail);
  std::cout << "ready: " << r.detail << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "healthcheck") return HealthcheckMain(argc, argv);
  // Signals are taken by one thread with sigwait, so block them before any
  // thread starts (every thread inherits the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // A file-size limit reached by the decision log is a failed write (EFBIG),
  // reported and counted, not the end of the process.
  signal(SIGXFSZ, SIG_IGN);

  ServerOptions server_options;
  StateOptions state_options;
  HandlerOptions handler_options;
  std::string listen, decision_log_path, config_path, socket_mode = "0660", forward_auth_source,
      caller_secret_file;
  int threads = server_options.threads;
  size_t payload_max = server_options.payload_max_bytes;
  size_t max_connections = server_options.max_connections;
  size_t header_max = server_options.header_max_bytes;
  size_t header_fields = server_options.header_max_fields;
  int read_timeout = static_cast<int>(server_options.read_timeout_s);
  int keep_alive_timeout = static_cast<int>(server_options.keep_alive_timeout_s);

  po::options_description desc(
      "usage: gatehoused [options]\n\n"
      "The Gatehouse sidecar: answers authorization, token-verification and forward-auth\n"
      "requests over HTTP from the policy and the store.\n\noptions");
  // clang-format off
  desc.add_options()
      ("help,h", "this help")
      ("version", "print the version and the git revision it was built from, and exit")
      ("listen", po::value(&listen)->default_value("127.0.0.1:7878"),
       "HOST:PORT to listen on (port 0 picks a free port, printed on stdout), or unix:PATH "
       "for a Unix-domain socket")
      ("socket-mode", po::value(&socket_mode)->default_value(socket_mode),
       "permissions of the unix:PATH socket file (octal)")
      ("store", po::value(&state_options.store_path)->default_value("./gatehouse.db"),
       "the SQLite store (env GATEHOUSE_STORE)")
      ("policy", po::value(&state_options.policy_path),
       "a policy file or folder (env GATEHOUSE_POLICY; default: the installed policies/)")
      ("io-threads", po::value(&threads)->default_value(threads),
       "I/O threads serving every connection (0: one per core); an idle or slow connection "
       "holds none")
      ("threads", po::value(&threads), "the same as --io-threads (the older name)")
      ("max-connections", po::value(&max_connections)->default_value(max_connections),
       "open connections served at once; more are refused at once with 503")
      ("header-max", po::value(&header_max)->default_value(header_max),
       "largest request line plus header, in bytes (larger: 431)")
      ("header-max-fields", po::value(&header_fields)->default_value(header_fields),
       "most header fields in one request (more: 431)")
      ("forward-auth-source", po::value(&forward_auth_source)->default_value("auto"),
       "which proxy's headers forward-auth reads: nginx (X-Original-*), traefik "
       "(X-Forwarded-*, also Caddy), envoy (the path under /v1/forward-auth), or auto (exactly "
       "one of them must be present; two are refused)")
      ("caller-secret-file", po::value(&caller_secret_file),
       "require the header X-Gatehouse-Caller: SECRET (the file's one line) on every endpoint "
       "but /healthz and /readyz")
      ("decision-log", po::value(&decision_log_path),
       "write one JSON line per decision to PATH (mode 0600, never through a symlink), or to "
       "stdout with -")
      ("decision-log-required", po::bool_switch(&handler_options.decision_log_required),
       "deny every decision whose log line cannot be written (rule decision-log-unavailable) and "
       "report not ready while the log fails")
      ("tls-cert", po::value(&server_options.tls_cert), "serve HTTPS with this PEM certificate (needs --tls-key)")
      ("tls-key", po::value(&server_options.tls_key), "the PEM private key of --tls-cert")
      ("tls-client-ca", po::value(&server_options.tls_client_ca),
       "with --tls-cert: require a client certificate signed by a CA in this PEM file "
       "(mutual TLS; others are refused at the handshake)")
      ("payload-max", po::value(&payload_max)->default_value(payload_max),
       "largest request body in bytes (larger: 413)")
      ("read-timeout", po::value(&read_timeout)->default_value(read_timeout),
       "seconds a client may take to send a whole request header (trickling does not extend it), "
       "and again its body")
      ("keep-alive-timeout", po::value(&keep_alive_timeout)->default_value(keep_alive_timeout),
       "seconds an idle keep-alive connection is kept open")
      ("sweep-interval", po::value(&state_options.sweep_interval_s)->default_value(state_options.sweep_interval_s),
       "seconds between deletions of expired tokens (0: never)")
      ("policy-poll-ms", po::value(&state_options.policy_poll_ms)->default_value(state_options.policy_poll_ms),
       "how often the policy files are checked for changes, in ms (0: only on SIGHUP)")
      ("config", po::value(&config_path), "read options from a YAML file of `option: value` lines");
  // clang-format on

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout
          << desc << "\n"
          << "Endpoints: POST /v1/authorize, POST /v1/authorize/batch, POST /v1/tokens/verify,\n"
          << "ANY /v1/forward-auth[/PATH], GET /healthz, /readyz, /metrics.\n"
          << "Subcommand: gatehoused healthcheck [--listen ADDR] (exit 0 when ready).\n"
          << "Signals: SIGHUP reloads the policy and reopens the decision log; SIGTERM/SIGINT\n"
          << "stop accepting, finish in-flight requests and exit 0.\n";
      return 0;
    }
    if (vm.count("version")) {
      std::cout << VersionLine("gatehoused") << "\n";
      return 0;
    }
    // Then the environment (only what the command line did not set).
    po::store(po::parse_environment(desc,
                                    [](const std::string& var) -> std::string {
                                      if (var == "GATEHOUSE_STORE") return "store";
                                      if (var == "GATEHOUSE_POLICY") return "policy";
                                      return "";
                                    }),
              vm);
    // Then the config file.
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      auto entries = ParseConfigFile(path);
      if (!entries.ok()) return Fail(entries.status().ToString());
      std::vector<std::string> args;
      for (const auto& [key, value] : entries.value()) {
        if (key == "config" || key == "help")
          return Usage(path + ": option '" + key + "' is not allowed in a config file");
        if (desc.find_nothrow(key, false) == nullptr)
          return Usage(path + ": unknown option '" + key + "'");
        args.push_back("--" + key + "=" + value);
      }
      po::store(po::command_line_parser(args).options(desc).run(), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return Usage(e.what());
  }

  auto address = ParseListen(listen);
  if (!address.ok()) return Usage(address.status().ToString());
  server_options.host = address->host;
  server_options.port = address->port;
  server_options.unix_path = address->unix_path;
  auto mode = ParseSocketMode(socket_mode);
  if (!mode.ok()) return Usage(mode.status().ToString());
  server_options.socket_mode = *mode;
  if (threads < 0 || threads > 1024) return Usage("--io-threads must be between 0 and 1024");
  if (max_connections < 1 || max_connections > 1000000)
    return Usage("--max-connections must be between 1 and 1000000");
  if (header_max < 1024 || header_max > 1024 * 1024)
    return Usage("--header-max must be between 1024 and 1048576 bytes");
  if (header_fields < 8 || header_fields > 10000)
    return Usage("--header-max-fields must be between 8 and 10000");
  server_options.max_connections = max_connections;
  server_options.header_max_bytes = header_max;
  server_options.header_max_fields = header_fields;
  auto source = ParseForwardAuthSource(forward_auth_source);
  if (!source) {
    return Usage("--forward-auth-source must be auto, nginx, traefik or envoy, not '" +
                 forward_auth_source.substr(0, 32) + "'");
  }
  handler_options.forward_auth_source = *source;
  if (!caller_secret_file.empty()) {
    auto secret = ReadCallerSecret(caller_secret_file);
    if (!secret.ok()) return Fail(secret.status().ToString());
    handler_options.caller_secret = std::move(secret).value();
  }
  if (payload_max < 1) return Usage("--payload-max must be positive");
  if (read_timeout < 1 || keep_alive_timeout < 1)
    return Usage("timeouts must be at least 1 second");
  if (state_options.sweep_interval_s < 0 || state_options.policy_poll_ms < 0) {
    return Usage("--sweep-interval and --policy-poll-ms must not be negative");
  }
  server_options.threads = threads;
  server_options.payload_max_bytes = payload_max;
  server_options.read_timeout_s = read_timeout;
  server_options.write_timeout_s = read_timeout;
  server_options.keep_alive_timeout_s = keep_alive_timeout;

  Metrics metrics;
  metrics.SetBuildInfo(Version(), Revision());
  handler_options.version = std::string(Version());
  handler_options.revision = std::string(Revision());
  auto state = State::Open(state_options, &metrics);
  if (!state.ok()) return Fail(state.status().ToString());

  std::unique_ptr<DecisionLog> decision_log;
  if (!decision_log_path.empty()) {
    auto log = DecisionLog::Open(decision_log_path);
    if (!log.ok()) return Fail(log.status().ToString());
    decision_log = std::move(log).value();
  }

  if (handler_options.decision_log_required && !decision_log) {
    return Usage("--decision-log-required needs --decision-log");
  }
  RaiseDescriptorLimit();
  Handlers handlers(state->get(), decision_log.get(), std::move(handler_options));
  auto server = HttpServer::Create(server_options, &handlers, &metrics);
  if (!server.ok()) return Fail(server.status().ToString());
  auto port = (*server)->Bind();
  if (!port.ok()) return Fail(port.status().ToString());

  const PolicyPtr policy = (*state)->policy();
  const bool v6 = server_options.host.find(':') != std::string::npos;
  const std::string where =
      !server_options.unix_path.empty()
          ? "unix:" + server_options.unix_path
          : (v6 ? "[" : "") + server_options.host + (v6 ? "]" : "") + ":" + std::to_string(*port);
  const unsigned io_threads =
      threads > 0 ? static_cast<unsigned>(threads) : std::max(1u, std::thread::hardware_concurrency());
  std::printf(
      "gatehoused listening on %s (%s%s) policy %s %s, store %s, forward-auth source %s, %u I/O "
      "threads, version %s (revision %s)\n",
              where.c_str(), server_options.tls_cert.empty() ? "http" : "https",
              server_options.tls_client_ca.empty() ? "" : ", client certificates required",
              policy->name().c_str(), policy->revision().c_str(), state_options.store_path.c_str(),
              std::string(ForwardAuthSourceName(*source)).c_str(), io_threads,
              std::string(Version()).c_str(), std::string(Revision()).c_str());
  std::fflush(stdout);

  (*state)->Start();
  std::atomic<bool> run_returned{false};
  std::atomic<bool> signalled{false};
  std::thread signal_thread([&] {
    while (true) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGHUP) {
        (*state)->RequestReload();
        if (decision_log) {
          Status s = decision_log->Reopen();
          if (!s.ok()) LogToStderr(s.ToString());
        }
        continue;
      }
      signalled = true;
      if (!run_returned)
        LogToStderr(sig == SIGTERM ? "SIGTERM: finishing in-flight requests"
                                   : "SIGINT: finishing in-flight requests");
      // Stop until Run has returned: a stop that lands before the server
      // loop has started would otherwise be lost.
      while (!run_returned) {
        (*server)->Stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      return;
    }
  });

  Status run = (*server)->Run();
  run_returned = true;
  if (!signalled) pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  (*state)->Stop();
  if (!run.ok()) return Fail(run.ToString());
  LogToStderr("stopped");
  return 0;
}
