// The sidecar's edge, tried as an attacker would (issue 9): the real
// gatehoused binary behind real nginx (deploy/nginx.conf) and real Caddy
// (deploy/Caddyfile, or a minimal forward_auth site until it exists), in front
// of an upstream that records the raw request target it received and every
// X-Gatehouse-* header. Every client request goes over a raw socket, so
// nothing between the test and the proxy normalises its target.
//
// The property, over a generated set of encoded, dotted and doubled targets:
// whatever reaches the upstream was (i) authorized by the sidecar for that
// exact raw target (its decision log holds an allow for it) and carries the
// sidecar's identity headers, and (ii) names, however the service decodes it
// once and resolves dot segments, the workspace the token is bound to. So a
// Marketing-Development token can never make the service act on
// Marketing-Production.
//
// Also: forged X-Gatehouse-* headers never reach the upstream; a client's own
// X-Original-URI / X-Forwarded-Uri never chooses what is checked; a second
// sidecar on a busy port exits 1 while the first keeps serving. Every process
// is started by the test and stopped by PID.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e/demo.h"
#include "e2e/raw_upstream.h"
#include "sidecar/fixture.h"
#include "sidecar/http_client.h"

namespace gatehouse::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

#if defined(GATEHOUSE_SANITIZED)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
bool Sanitized() { return kSanitized || std::getenv("GATEHOUSE_SANITIZED") != nullptr; }

const std::string kNginx = "/usr/sbin/nginx";
const std::string kCaddy = "/usr/bin/caddy";
const std::string kDev = "Marketing-Development";
const std::string kProd = "Marketing-Production";
const std::string kCaseHeader = "X-Edge-Case";

// The identity headers the sidecar answers with (sidecar/handlers.h).
const std::vector<std::string> kIdentityHeaders = {
    "X-Gatehouse-Subject",  "X-Gatehouse-Workspace", "X-Gatehouse-Role",
    "X-Gatehouse-Org-Role", "X-Gatehouse-Token-Id",  "X-Gatehouse-Action"};

template <typename F>
bool WaitFor(F pred, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Replaces every occurrence; returns how many.
int ReplaceAll(std::string& text, const std::string& from, const std::string& to) {
  int n = 0;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
    ++n;
  }
  return n;
}

// --- How a service could read a target ------------------------------------

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes once; a '%' not followed by two hex digits stays as it is.
std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// RFC 3986 section 5.2.4.
std::string RemoveDotSegments(std::string in) {
  std::string out;
  auto pop_last = [&out] {
    const size_t slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.erase(0, 3);
    } else if (in.starts_with("./")) {
      in.erase(0, 2);
    } else if (in.starts_with("/./")) {
      in.replace(0, 3, "/");
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.replace(0, 4, "/");
      pop_last();
    } else if (in == "/..") {
      in = "/";
      pop_last();
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      const size_t next = in.find('/', in[0] == '/' ? 1 : 0);
      const size_t n = next == std::string::npos ? in.size() : next;
      out += in.substr(0, n);
      in.erase(0, n);
    }
  }
  return out;
}

// The ways a service behind the proxy might turn the target it received into
// a path: RFC 3986 (decode once, resolve dot segments) and a few common
// variants. Each yields a resolved path.
std::vector<std::pair<std::string, std::string>> Readings(const std::string& target) {
  const std::string path = target.substr(0, target.find_first_of("?#"));
  const std::string decoded = PercentDecode(path);
  std::string cut = decoded.substr(0, decoded.find_first_of("?#"));
  std::string backslash = decoded;
  std::replace(backslash.begin(), backslash.end(), '\\', '/');
  std::string params;  // Tomcat-style ;parameters dropped from each segment
  for (size_t i = 0; i < decoded.size(); ++i) {
    if (decoded[i] == ';') {
      while (i < decoded.size() && decoded[i] != '/') ++i;
      if (i < decoded.size()) params += '/';
      continue;
    }
    params += decoded[i];
  }
  return {{"decode once, resolve dot segments", RemoveDotSegments(decoded)},
          {"decode once, cut at ?/#, resolve", RemoveDotSegments(cut)},
          {"resolve dot segments, then decode", PercentDecode(RemoveDotSegments(path))},
          {"decode once, backslash as slash, resolve", RemoveDotSegments(backslash)},
          {"decode once, drop ;params, resolve", RemoveDotSegments(params)},
          {"decode twice, resolve", RemoveDotSegments(PercentDecode(decoded))}};
}

// The workspace segment of /workspaces/{workspace}/..., or "<none>". (The
// store's names ignore ASCII case, COLLATE NOCASE: the property compares
// them so; X-Gatehouse-Workspace must still be the stored spelling.)
std::string WorkspaceOf(const std::string& resolved) {
  std::vector<std::string> segs;
  std::string cur;
  for (char c : resolved + "/") {
    if (c == '/') {
      if (!cur.empty()) segs.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (segs.size() < 2 || segs[0] != "workspaces") return "<none>";
  return segs[1];
}

// --- The generated targets ---------------------------------------------------

std::vector<std::string> HandPicked() {
  const std::string d = "/workspaces/" + kDev, p = "/workspaces/" + kProd;
  const std::string jump = "/../../../../" + kProd + "/projects/7/import";
  return {
      d + "/projects/7/export",
      d + "/projects/7/import",
      p + "/projects/7/import",
      p + "/projects/7/export",
      // The issue's example, and its siblings.
      d + "/projects/7/import%3F" + jump,
      d + "/projects/7/import%3f" + jump,
      d + "/projects/7/import%23" + jump,
      d + "/projects/7/import%2F" + jump,
      d + "/projects/7/import%252F" + jump,
      d + "/projects/7/import%25" + jump,
      d + "/projects/7/import?" + jump,
      d + "/projects/7/import#" + jump,
      d + "/projects/7/import" + jump,
      d + "/projects/7/import/" + jump,
      d + "/projects/7/import;x" + jump,
      d + "/projects/7/import%00" + jump,
      d + "/projects/7/import%0d%0a" + jump,
      d + "/projects/7/import\\..\\..\\..\\..\\" + kProd + "\\projects\\7\\import",
      d + "/projects/7/import%5C..%5C..%5C..%5C..%5C" + kProd + "%5Cprojects%5C7%5Cimport",
      d + "/projects/7/import%2F..%2F..%2F..%2F..%2F" + kProd + "%2Fprojects%2F7%2Fimport",
      d + "/projects/7/import/%2e%2e/%2e%2e/%2e%2e/%2e%2e/" + kProd + "/projects/7/import",
      d + "/projects/7/import/%2E./%2E./.%2E/%2E%2E/" + kProd + "/projects/7/import",
      // A {project} of "..", "." and their spellings.
      d + "/projects/../import",
      d + "/projects/./import",
      d + "/projects/%2e%2e/import",
      d + "/projects/%2E./import",
      "/workspaces/" + kDev + "/projects/..%2F..%2F" + kProd + "/import",
      "/workspaces/" + kDev + "%2F..%2F" + kProd + "/projects/7/import",
      "/workspaces/" + kDev + "/..%2F" + kProd + "/projects/7/import",
      "/workspaces/" + kDev + "/../" + kProd + "/projects/7/import",
      "/workspaces/./" + kDev + "/../" + kProd + "/projects/7/import",
      "//workspaces/" + kDev + "/projects/7/export",
      "/workspaces//" + kDev + "/projects/7/export",
      d + "//projects/7/export",
      d + "/projects/7/export/",
      d + "/projects/7/export?x=/../../../../" + kProd + "/projects/7/import",
      d + "/projects/7/export#/../../../../" + kProd + "/projects/7/import",
      // Harmless escapes, both cases of hex.
      "/workspaces/Marketing-%44evelopment/projects/7/export",
      "/workspaces/Marketing%2dDevelopment/projects/7/export",
      "/workspaces/Marketing%2DProduction/projects/7/import",
      "/workspaces/" + kDev + "/projects/%37/ex%70ort",
      "/workspaces/" + kDev + "/proj%65cts/p%31/%69mport",
  };
}

std::vector<std::string> GeneratedTargets(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  const std::vector<std::string> workspaces = {
      kDev, kDev, kProd, "Marketing-%44evelopment", "Marketing%2dDevelopment", "Marketing%2DProduction",
      "%4Darketing-Development", "Marketing-Pr%6Fduction", "marketing-development", kDev + ";x"};
  const std::vector<std::string> seps = {"//",  "/./",  "/%2e/", "/%2E/", "%2F", "%2f",
                                         "\\", "%5C", "%5c", "/;x/", "/../", "/%2e%2e/"};
  const std::vector<std::string> projects = {
      "7",   "p1",       "42",    "..",   ".",      "%2e%2e", "%2E.",  ".%2e",  "%2e",    "7;x",
      "7%3B", "%37",     "p%31",  "7%2F..", "",     "%00",    "%0d%0a", "%25",  "%2541", "7%3F",
      "7%23", "%2e%2E",  "7\\..", "7%5C..", "%252e%252e"};
  const std::vector<std::string> actions = {"import", "export", "import", "export", "%69mport",
                                            "ex%70ort", "IMPORT"};
  const std::vector<std::string> injections = {
      "%3F", "%3f", "%23", "?",  "#",   "%2F",   "%2f",  "%252F", "%252f", "%25",  "%5C",
      "%5c", "\\", ";x",  "%00", "%0d%0a", "%0D%0A", "%09", "/",    "//",    "%2F%2E%2E", "%3F/",
      "%23/", "?/", "#/", "%2e", "."};
  const std::vector<std::string> ups = {"/..",   "/.",     "/%2e%2e", "/%2E%2E", "/%2E.",
                                        "/.%2e", "\\..",   "%5C..",   "%2F..",   "%2f%2e%2e",
                                        "/%252e%252e", "//..", "/..;x"};
  const std::vector<std::string> trails = {"",  "",  "",    "",     "/",  "?", "?x=1", "#f",
                                           "?a=/../" + kProd, "%3Fx", "%2F", "/."};
  auto sep = [&] { return chance(80) ? std::string("/") : pick(seps); };
  std::set<std::string> seen;
  std::vector<std::string> out;
  for (size_t tries = 0; out.size() < count && tries < count * 20; ++tries) {
    std::string t = "/workspaces" + sep() + pick(workspaces) + sep() + "projects" + sep() +
                    (chance(60) ? std::string("7") : pick(projects)) + sep() + pick(actions);
    if (chance(55)) t += pick(injections);
    if (chance(60)) {
      for (int k = 1 + static_cast<int>(rng() % 6); k > 0; --k) t += pick(ups);
      t += (chance(50) ? "/" : "/workspaces/") + pick(workspaces) + sep() + "projects/7/" +
           pick(actions);
    }
    t += pick(trails);
    if (seen.insert(t).second) out.push_back(t);
  }
  return out;
}

// --- The fixture -------------------------------------------------------------

class EdgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kCli)) << kCli;
    ASSERT_TRUE(fs::exists(kSidecar)) << kSidecar;
    ASSERT_TRUE(fs::exists(kNginx)) << "nginx is not installed (scripts/setup.sh installs it)";
    ASSERT_TRUE(fs::exists(kCaddy)) << "caddy is not installed (scripts/setup.sh installs it)";
    fs::create_directories(dir_.File("policies"));
    WriteAll(dir_.File("policies/api-tokens.yaml"), DefaultPolicyText());
    env_ = {"GATEHOUSE_STORE=" + store(), "GATEHOUSE_POLICY=" + dir_.File("policies"),
            "GATEHOUSE_AS=owner@demo.test"};
    for (const auto& args : DemoCommands()) {
      ProcessResult r = RunCli(args, env_);
      ASSERT_EQ(r.exit_code, 0) << r;
    }
    dev_ = CreateToken("dev-exporter");
    prod_ = CreateToken("prod-importer");
    ASSERT_FALSE(dev_.secret.empty() || prod_.secret.empty());
    std::vector<std::string> argv = {kSidecar, "--listen", "127.0.0.1:0", "--store", store(), "--policy",
                                     dir_.File("policies"), "--decision-log", decision_log()};
    // The source the proxy's deployment file says to pin (nginx: nginx,
    // Caddy: traefik), or the default auto, which must hold as well.
    if (!source_.empty() && source_ != "auto") {
      if (RunProcess({kSidecar, "--help"}).out.find("--forward-auth-source") != std::string::npos) {
        argv.insert(argv.end(), {"--forward-auth-source", source_});
      } else {
        std::cout << "(this gatehoused has no --forward-auth-source: running with its default)\n";
      }
    }
    sidecar_ = LaunchSidecar(argv, dir_.File("gatehoused.stderr"));
    ASSERT_TRUE(sidecar_.process) << ReadAll(dir_.File("gatehoused.stderr"));
    upstream_ = std::make_unique<RecordingUpstream>();
    StartNginx();
    if (HasFatalFailure()) return;
    StartCaddy();
  }

  void TearDown() override {
    if (caddy_) caddy_->Stop(5s);
    if (nginx_) nginx_->Stop(5s, SIGQUIT);
    if (sidecar_.process) {
      const ProcessResult st = sidecar_.process->Stop(10s);
      EXPECT_EQ(st.exit_code, 0) << "gatehoused did not exit 0 on SIGTERM" << st;
    }
    if (upstream_) upstream_->Stop();
    if (HasFailure()) {
      std::cerr << "--- gatehoused stderr ---\n"
                << ReadAll(dir_.File("gatehoused.stderr")) << "--- nginx error.log (tail) ---\n"
                << Tail(ReadAll(dir_.File("nginx/error.log")), 3000) << "--- caddy stderr (tail) ---\n"
                << Tail(ReadAll(dir_.File("caddy/stderr.txt")), 3000);
    }
  }

  static std::string Tail(const std::string& s, size_t n) {
    return s.size() > n ? s.substr(s.size() - n) : s;
  }
  std::string store() const { return dir_.File("gatehouse.db"); }
  std::string decision_log() const { return dir_.File("decisions.jsonl"); }

  CliToken CreateToken(const std::string& api_user) {
    return CreatedToken(RunCli({"token", "create", "--apiuser", api_user, "--name",
                                "t" + std::to_string(++token_count_), "--expires-in", "30d", "--json"},
                               env_));
  }

  void StartNginx() {
    const std::string root = dir_.File("nginx");
    fs::create_directories(root);
    nginx_port_ = FreePort();
    std::string conf = ReadAll(std::string(GATEHOUSE_SOURCE_DIR) + "/deploy/nginx.conf");
    auto sub = [&](const std::string& from, const std::string& to) {
      EXPECT_GT(ReplaceAll(conf, from, to), 0) << "deploy/nginx.conf no longer contains '" << from << "'";
    };
    sub("server 127.0.0.1:7878", "server 127.0.0.1:" + std::to_string(sidecar_.port));
    sub("server 127.0.0.1:8080", "server 127.0.0.1:" + std::to_string(upstream_->port()));
    sub("listen 127.0.0.1:8000", "listen 127.0.0.1:" + std::to_string(nginx_port_));
    // Keep every file nginx writes inside the test's directory.
    sub("\nhttp {\n", "\nhttp {\n    access_log " + root + "/access.log;\n    client_body_temp_path " +
                          root + "/body;\n    proxy_temp_path " + root + "/proxy;\n    fastcgi_temp_path " +
                          root + "/fastcgi;\n    uwsgi_temp_path " + root + "/uwsgi;\n    scgi_temp_path " +
                          root + "/scgi;\n");
    WriteAll(root + "/nginx.conf", conf);
    nginx_ = Process::Start(
        {kNginx, "-p", root + "/", "-c", root + "/nginx.conf", "-e", root + "/error.log", "-g",
         "daemon off; master_process off; pid " + root + "/nginx.pid;"},
        {.stderr_path = root + "/stderr.txt"});
    ASSERT_TRUE(nginx_);
    ASSERT_TRUE(WaitFor([&] { return HttpConnection(nginx_port_, 1000).connected() || !nginx_->Running(); }));
    ASSERT_TRUE(nginx_->Running()) << ReadAll(root + "/stderr.txt") << ReadAll(root + "/error.log");
  }

  // deploy/Caddyfile with the test's ports, or (until it exists) a minimal
  // forward_auth site. Either way Caddy listens on loopback only, with no
  // admin endpoint, no automatic HTTPS and nothing written outside the test's
  // directory.
  std::string CaddyConfig() {
    const std::string sidecar = "127.0.0.1:" + std::to_string(sidecar_.port);
    const std::string upstream = "127.0.0.1:" + std::to_string(upstream_->port());
    const std::string site = "http://127.0.0.1:" + std::to_string(caddy_port_);
    const std::string globals = "\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n";
    const std::string deployed = std::string(GATEHOUSE_SOURCE_DIR) + "/deploy/Caddyfile";
    if (!fs::exists(deployed)) {
      caddy_source_ = "a minimal forward_auth site (deploy/Caddyfile does not exist yet)";
      return "{\n" + globals + "}\n" + site + " {\n\tforward_auth " + sidecar +
             " {\n\t\turi /v1/forward-auth\n\t\tcopy_headers X-Gatehouse-Subject "
             "X-Gatehouse-Workspace X-Gatehouse-Role X-Gatehouse-Org-Role X-Gatehouse-Token-Id "
             "X-Gatehouse-Action\n\t}\n\treverse_proxy " +
             upstream + "\n}\n";
    }
    caddy_source_ = "deploy/Caddyfile";
    std::string text = ReadAll(deployed);
    int n = ReplaceAll(text, "127.0.0.1:7878", sidecar) + ReplaceAll(text, "localhost:7878", sidecar);
    EXPECT_GT(n, 0) << "deploy/Caddyfile does not name the sidecar as 127.0.0.1:7878";
    n = ReplaceAll(text, "127.0.0.1:8080", upstream) + ReplaceAll(text, "localhost:8080", upstream);
    EXPECT_GT(n, 0) << "deploy/Caddyfile does not name the service as 127.0.0.1:8080";
    n = ReplaceAll(text, "\n:8000 {", "\n:" + std::to_string(caddy_port_) + " {");
    if (n == 0) n = ReplaceAll(text, "http://127.0.0.1:8000", site);
    if (n == 0) n = ReplaceAll(text, "http://localhost:8000", site);
    if (n == 0) n = ReplaceAll(text, "127.0.0.1:8000", site);
    if (n == 0) n = ReplaceAll(text, "localhost:8000", site);
    if (n == 0) n = ReplaceAll(text, ":8000", site);
    EXPECT_GT(n, 0) << "deploy/Caddyfile does not serve on :8000";
    // The test's global options: into the file's own block, else a new one.
    std::istringstream in(text);
    std::string line, out;
    bool merged = false, first = true;
    while (std::getline(in, line)) {
      std::string trimmed = line;
      trimmed.erase(0, trimmed.find_first_not_of(" \t"));
      if (first && !trimmed.empty() && trimmed[0] != '#') {
        first = false;
        if (trimmed == "{") {
          out += line + "\n" + globals;
          merged = true;
          continue;
        }
      }
      // Options the test sets itself.
      if (merged && (trimmed.starts_with("admin ") || trimmed.starts_with("auto_https ") ||
                     trimmed.starts_with("default_bind ")))
        continue;
      out += line + "\n";
    }
    return merged ? out : "{\n" + globals + "}\n" + out;
  }

  void StartCaddy() {
    const std::string root = dir_.File("caddy");
    fs::create_directories(root + "/data");
    fs::create_directories(root + "/config");
    caddy_port_ = FreePort();
    WriteAll(root + "/Caddyfile", CaddyConfig());
    caddy_ = Process::Start({kCaddy, "run", "--config", root + "/Caddyfile", "--adapter", "caddyfile"},
                            {.env = ChildEnvironment({"HOME=" + root, "XDG_DATA_HOME=" + root + "/data",
                                                      "XDG_CONFIG_HOME=" + root + "/config"}),
                             .stderr_path = root + "/stderr.txt"});
    ASSERT_TRUE(caddy_);
    ASSERT_TRUE(WaitFor([&] { return HttpConnection(caddy_port_, 1000).connected() || !caddy_->Running(); }));
    ASSERT_TRUE(caddy_->Running()) << "Caddy (" << caddy_source_ << ") did not start:\n"
                                   << ReadAll(root + "/stderr.txt") << ReadAll(root + "/Caddyfile");
  }

  int ProxyPort(const std::string& proxy) const { return proxy == "nginx" ? nginx_port_ : caddy_port_; }

  // One request over a raw socket, on its own connection: the target goes out
  // byte for byte.
  HttpResponse Send(int port, const std::string& method, const std::string& target, const std::string& token,
                    HeaderList headers = {}) {
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    headers.emplace_back("Content-Type", "application/json");
    HttpConnection c(port, 10000);
    if (!c.connected()) {
      HttpResponse r;
      r.error = "cannot connect";
      return r;
    }
    return c.Request(method, target, headers, "{}", /*close=*/true);
  }

  struct Decision {
    std::string target, workspace, decision;
  };
  // The forward-auth decisions of the decision log. The raw target is `uri`
  // (or `target`, should the log name it so).
  std::vector<Decision> ForwardAuthDecisions() const {
    std::vector<Decision> out;
    std::istringstream in(ReadAll(decision_log()));
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || j.value("endpoint", "") != "forward_auth") continue;
      Decision d;
      for (const char* key : {"raw_target", "target", "uri"}) {
        if (j.contains(key) && j[key].is_string()) {
          d.target = j[key].get<std::string>();
          break;
        }
      }
      d.workspace = j.value("workspace", "");
      d.decision = j.value("decision", "");
      out.push_back(std::move(d));
    }
    return out;
  }

  // A request a test sent, by the X-Edge-Case id the upstream sees.
  struct Case {
    Case(std::string p, std::string m, std::string t, std::string tok, std::string ws, HeaderList h)
        : proxy(std::move(p)), method(std::move(m)), target(std::move(t)), token_name(std::move(tok)),
          workspace(std::move(ws)), extra(std::move(h)) {}
    std::string proxy, method, target, token_name, workspace;  // workspace: the token's
    HeaderList extra;
    int status = 0;
    std::string error;
  };

  // Sends every case (a few threads; each on its own connection).
  void SendAll(std::vector<Case>& cases, int threads = 4) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (size_t i; (i = next++) < cases.size();) {
          Case& c = cases[i];
          HeaderList h = c.extra;
          h.emplace_back(kCaseHeader, std::to_string(i));
          HttpResponse r = Send(ProxyPort(c.proxy), c.method, c.target,
                                c.token_name == "dev" ? dev_.secret : prod_.secret, h);
          c.status = r.status;
          c.error = r.error;
        }
      });
    }
    for (auto& t : pool) t.join();
  }

  // Checks the property for every request the upstream received; returns
  // the violations (empty when it holds).
  std::vector<std::string> Violations(const std::vector<Case>& cases) {
    std::set<std::pair<std::string, std::string>> allowed;  // (raw target, workspace)
    std::set<std::string> allowed_targets;
    for (const Decision& d : ForwardAuthDecisions()) {
      if (d.decision != "allow") continue;
      allowed.insert({d.target, Lower(d.workspace)});
      allowed_targets.insert(d.target);
    }
    std::vector<std::string> out;
    for (const RecordedRequest& rec : upstream_->Requests()) {
      const std::string id = rec.Value(kCaseHeader);
      char* end = nullptr;
      const unsigned long index = std::strtoul(id.c_str(), &end, 10);
      if (id.empty() || *end != '\0' || index >= cases.size()) {
        out.push_back("the upstream received a request the test did not send: " + rec.method + " " + rec.target);
        continue;
      }
      const Case& c = cases[index];
      const std::string what = c.proxy + ": " + c.method + " " + c.target + " (" + c.token_name +
                               " token) reached the upstream as " + rec.method + " " + rec.target;
      const auto subjects = rec.Values("X-Gatehouse-Subject");
      const auto workspaces = rec.Values("X-Gatehouse-Workspace");
      if (subjects.size() != 1 || subjects[0].empty() || workspaces.size() != 1) {
        out.push_back(what + " without the sidecar's X-Gatehouse-Subject/-Workspace");
        continue;
      }
      std::vector<std::string> problems;
      if (workspaces[0] != c.workspace)
        problems.push_back("X-Gatehouse-Workspace " + workspaces[0] + ", not " + c.workspace);
      if (!allowed.count({rec.target, Lower(c.workspace)})) {
        problems.push_back("no allow in the decision log for that exact target" +
                           std::string(allowed_targets.count(rec.target) ? " (only in another workspace)" : ""));
      }
      for (const auto& [reading, resolved] : Readings(rec.target)) {
        const std::string ws = WorkspaceOf(resolved);
        if (Lower(ws) != Lower(c.workspace)) problems.push_back("read as '" + reading + "': " + resolved);
      }
      if (problems.empty()) continue;
      std::string line = what + ":";
      for (const std::string& p : problems) line += "\n      " + p;
      out.push_back(line);
    }
    return out;
  }

  TempDir dir_;
  std::vector<std::string> env_;
  CliToken dev_, prod_;
  int token_count_ = 0;
  Sidecar sidecar_;
  std::unique_ptr<RecordingUpstream> upstream_;
  std::unique_ptr<Process> nginx_, caddy_;
  int nginx_port_ = 0, caddy_port_ = 0;
  std::string caddy_source_;
  std::string source_ = "auto";  // gatehoused --forward-auth-source
};

// Parameters: PROXY_SOURCE, e.g. nginx_auto, caddy_pinned (the sidecar's
// --forward-auth-source pinned to what the proxy's deployment file says).
class EdgeProxyTest : public EdgeTest, public ::testing::WithParamInterface<std::string> {
 protected:
  EdgeProxyTest() {
    const std::string param = GetParam();
    proxy_ = param.substr(0, param.find('_'));
    const bool pinned = param.ends_with("_pinned");
    source_ = !pinned ? "auto" : proxy_ == "nginx" ? "nginx" : "traefik";
  }
  std::string proxy_;
};

std::string Report(const std::vector<std::string>& violations, size_t limit = 25) {
  std::string s;
  for (size_t i = 0; i < violations.size() && i < limit; ++i) s += "\n  " + violations[i];
  if (violations.size() > limit) s += "\n  ... and " + std::to_string(violations.size() - limit) + " more";
  return s;
}

// ---------------------------------------------------------------------------

TEST(EdgeReadingsTest, RemoveDotSegmentsFollowsRfc3986) {
  EXPECT_EQ(RemoveDotSegments("/a/b/c/./../../g"), "/a/g");
  EXPECT_EQ(RemoveDotSegments("mid/content=5/../6"), "mid/6");
  EXPECT_EQ(RemoveDotSegments("/../../x"), "/x");
  EXPECT_EQ(RemoveDotSegments("/a/.."), "/");
  EXPECT_EQ(RemoveDotSegments("/a/b/."), "/a/b/");
  EXPECT_EQ(PercentDecode("%2e%2E%2f%zz%4"), "../%zz%4");
  EXPECT_EQ(WorkspaceOf(RemoveDotSegments(PercentDecode(
                "/workspaces/Dev/projects/7/import%3F/../../../../Prod/projects/7/import"))),
            "Prod");
  EXPECT_EQ(WorkspaceOf("/workspaces/Marketing-Development/projects/7/export"), kDev);
}

// The property over hundreds of generated targets, each sent with the
// Development token and some with the Production one.
TEST_P(EdgeProxyTest, GeneratedTargetsReachTheServiceOnlyAuthorizedAndInTheTokensWorkspace) {
  const std::string proxy = proxy_;
  std::vector<std::string> targets = HandPicked();
  const size_t generated = Sanitized() ? 150 : 900;
  for (auto& t : GeneratedTargets(generated, 9)) targets.push_back(t);
  std::vector<Case> cases;
  for (size_t i = 0; i < targets.size(); ++i) {
    cases.push_back({proxy, "POST", targets[i], "dev", kDev, {}});
    if (i % 3 == 0) cases.push_back({proxy, "POST", targets[i], "prod", kProd, {}});
  }
  const auto start = std::chrono::steady_clock::now();
  SendAll(cases);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::map<int, int> statuses;
  for (const Case& c : cases) ++statuses[c.status];
  std::cout << proxy << " (" << (proxy == "caddy" ? caddy_source_ : "deploy/nginx.conf")
            << ", --forward-auth-source " << source_ << "): "
            << cases.size() << " requests over " << targets.size() << " targets in " << seconds
            << " s; upstream received " << upstream_->Count() << "; client statuses:";
  for (const auto& [s, n] : statuses) std::cout << " " << s << "×" << n;
  std::cout << "\n";

  // The controls: plain requests in the token's own workspace pass.
  for (const Case& c : cases) {
    const std::string own = "/workspaces/" + c.workspace + "/projects/7/";
    if (c.target == own + "import" || c.target == own + "export") {
      EXPECT_EQ(c.status, 200) << proxy << ": " << c.target << " (" << c.token_name << " token) " << c.error;
    }
  }
  const std::vector<std::string> violations = Violations(cases);
  EXPECT_TRUE(violations.empty()) << violations.size() << " requests reached the service unauthorized or in "
                                  << "another workspace:" << Report(violations);
  EXPECT_TRUE(sidecar_.process->Running());
}

// The issue's example, adapted to the demo's names: a Development token
// importing into Production through the shipped proxy configuration.
TEST_P(EdgeProxyTest, IssueExampleIsRefused) {
  const std::string target = "/workspaces/" + kDev + "/projects/7/import%3F/../../../../" + kProd +
                             "/projects/7/import";
  std::vector<Case> cases = {{proxy_, "POST", target, "dev", kDev, {}}};
  SendAll(cases, 1);
  EXPECT_NE(cases[0].status, 200);
  EXPECT_TRUE(Violations(cases).empty()) << Report(Violations(cases));
}

// A client's own X-Gatehouse-* headers never reach the service: each of the
// sidecar's names, in other letter cases, and twice.
TEST_P(EdgeProxyTest, ForgedIdentityHeadersNeverReachTheUpstream) {
  const std::string proxy = proxy_;
  struct Want {
    std::string token, target, subject, workspace, role, action;
  };
  const std::vector<Want> wants = {
      {"prod", "/workspaces/" + kProd + "/projects/7/import", "prod-importer", kProd, "contributor",
       "project.import"},
      {"dev", "/workspaces/" + kDev + "/projects/7/export", "dev-exporter", kDev, "contributor",
       "project.export"}};
  std::vector<Case> cases;
  for (const Want& w : wants) {
    HeaderList forged, lower, twice;
    for (const std::string& name : kIdentityHeaders) {
      const std::string value = name == "X-Gatehouse-Org-Role" || name == "X-Gatehouse-Role" ? "owner"
                                                                                              : "forged-" + name;
      forged.emplace_back(name, value);
      lower.emplace_back(Lower(name), value);
      twice.emplace_back(name, value);
      twice.emplace_back(name, value + "-again");
    }
    for (const HeaderList& h : {forged, lower, twice})
      cases.push_back({proxy, "POST", w.target, w.token, w.workspace, h});
  }
  SendAll(cases, 1);
  for (const Case& c : cases) EXPECT_EQ(c.status, 200) << c.target << " " << c.error;
  const auto recs = upstream_->Requests();
  EXPECT_EQ(recs.size(), cases.size());
  for (const RecordedRequest& rec : recs) {
    const size_t index = std::strtoul(rec.Value(kCaseHeader).c_str(), nullptr, 10);
    ASSERT_LT(index, cases.size());
    const Want& w = wants[index / 3];
    const std::string what = proxy + ", case " + std::to_string(index) + " (" + w.token + "): ";
    for (const auto& [name, value] : rec.headers) {
      if (!Lower(name).starts_with("x-gatehouse-")) continue;
      EXPECT_TRUE(value.find("forged") == std::string::npos && value != "owner")
          << what << "the client's " << name << ": " << value << " reached the service";
    }
    for (const std::string& name : kIdentityHeaders)
      EXPECT_LE(rec.Values(name).size(), 1u) << what << name << " reached the service more than once";
    EXPECT_EQ(rec.Values("X-Gatehouse-Subject"), std::vector<std::string>{w.subject}) << what;
    EXPECT_EQ(rec.Values("X-Gatehouse-Workspace"), std::vector<std::string>{w.workspace}) << what;
    EXPECT_EQ(rec.Values("X-Gatehouse-Role"), std::vector<std::string>{w.role}) << what;
    EXPECT_EQ(rec.Values("X-Gatehouse-Org-Role"), std::vector<std::string>{"viewer"}) << what;
    EXPECT_EQ(rec.Values("X-Gatehouse-Token-Id"),
              std::vector<std::string>{w.token == "prod" ? prod_.id : dev_.id})
        << what;
    EXPECT_EQ(rec.Values("X-Gatehouse-Action"), std::vector<std::string>{w.action}) << what;
  }
}

// X_Gatehouse_Org_Role: many service stacks (CGI, WSGI, Rack, PHP) read it as
// X-Gatehouse-Org-Role.
TEST_P(EdgeProxyTest, UnderscoreSpellingsOfIdentityHeadersNeverReachTheUpstream) {
  const std::string proxy = proxy_;
  HeaderList h;
  for (std::string name : kIdentityHeaders) {
    std::replace(name.begin(), name.end(), '-', '_');
    h.emplace_back(name, "owner");
  }
  std::vector<Case> cases = {
      {proxy, "POST", "/workspaces/" + kProd + "/projects/7/import", "prod", kProd, h}};
  SendAll(cases, 1);
  EXPECT_EQ(cases[0].status, 200) << cases[0].error;
  for (const RecordedRequest& rec : upstream_->Requests()) {
    for (const auto& [name, value] : rec.headers) {
      std::string norm = Lower(name);
      std::replace(norm.begin(), norm.end(), '_', '-');
      if (norm.starts_with("x-gatehouse-")) {
        EXPECT_NE(value, "owner") << proxy << ": the client's " << name << ": " << value
                                  << " reached the service";
      }
    }
  }
}

// A client adds X-Original-URI / X-Forwarded-Uri naming Development to a
// request for Production: the sidecar must check the request the proxy
// forwards, never the one the client names.
TEST_P(EdgeProxyTest, ClientOriginalUriHeadersNeverChooseTheCheckedRequest) {
  const std::string proxy = proxy_;
  const std::string prod_import = "/workspaces/" + kProd + "/projects/7/import";
  const std::string dev_import = "/workspaces/" + kDev + "/projects/7/import";
  const std::vector<HeaderList> extras = {
      {{"X-Original-URI", dev_import}},
      {{"X-Original-URI", dev_import}, {"X-Original-Method", "POST"}},
      {{"X-Forwarded-Uri", dev_import}},
      {{"X-Forwarded-Uri", dev_import}, {"X-Forwarded-Method", "POST"}},
      {{"X-Original-URI", dev_import}, {"X-Forwarded-Uri", dev_import}},
      {{"x-original-uri", dev_import}, {"x-forwarded-uri", dev_import}},
      {{"X-Original-URI", dev_import}, {"X-Original-URI", dev_import}},
      {{"X-Envoy-Original-Path", dev_import}},
      {{"X-Original-URL", dev_import}, {"X-Rewrite-URL", dev_import}},
  };
  std::vector<Case> cases;
  for (const HeaderList& h : extras) cases.push_back({proxy, "POST", prod_import, "dev", kDev, h});
  // The control: the plain request is refused too.
  cases.push_back({proxy, "POST", prod_import, "dev", kDev, {}});
  SendAll(cases, 1);
  for (const Case& c : cases) {
    std::string names;
    for (const auto& [k, v] : c.extra) names += k + " ";
    EXPECT_NE(c.status, 200) << proxy << ": a Development token imported into Production with " << names;
  }
  const auto recs = upstream_->Requests();
  EXPECT_TRUE(recs.empty()) << recs.size() << " reached the service, the first: " << recs[0].target;
  EXPECT_TRUE(Violations(cases).empty()) << Report(Violations(cases));
}

INSTANTIATE_TEST_SUITE_P(Proxies, EdgeProxyTest,
                         ::testing::Values("nginx_auto", "nginx_pinned", "caddy_auto", "caddy_pinned"),
                         [](const auto& info) { return info.param; });

// Binding an address already in use fails (exit 1); the first sidecar keeps
// serving every request (no SO_REUSEPORT splitting traffic between two).
TEST_F(EdgeTest, SecondSidecarOnABusyPortExitsOneAndTheFirstKeepsServing) {
  for (const std::string host : {"127.0.0.1", "0.0.0.0"}) {
    ProcessResult r = RunProcess({kSidecar, "--listen", host + ":" + std::to_string(sidecar_.port), "--store",
                                  store(), "--policy", dir_.File("policies")},
                                 {.timeout = 5s});
    EXPECT_FALSE(r.timed_out) << "a second gatehoused on busy " << host << ":" << sidecar_.port
                              << " kept running" << r;
    EXPECT_EQ(r.exit_code, 1) << r;
  }
  ASSERT_TRUE(sidecar_.process->Running());
  const std::string body = json({{"token", prod_.secret},
                                 {"action", "project.import"},
                                 {"workspace", kProd}})
                               .dump();
  for (int i = 0; i < 50; ++i) {
    HttpResponse r = HttpCall(sidecar_.port, "POST", "/v1/authorize", {{"Content-Type", "application/json"}}, body);
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(json::parse(r.body, nullptr, false).value("allow", false), true) << r.body;
  }
  // And through the proxies, which reach it by the same port.
  EXPECT_EQ(Send(nginx_port_, "POST", "/workspaces/" + kProd + "/projects/7/import", prod_.secret).status, 200);
  EXPECT_EQ(Send(caddy_port_, "POST", "/workspaces/" + kProd + "/projects/7/import", prod_.secret).status, 200);
}

}  // namespace
}  // namespace gatehouse::testing
