// Operating Gatehouse (issue 12), against the real things: the built and the
// installed binaries, `promtool check metrics` on the real sidecar's /metrics,
// and the version header written the way a tarball build writes it.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "e2e/demo.h"
#include "sidecar/http_client.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace gatehouse::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string kPromtool = "/usr/bin/promtool";
const std::string kSource = GATEHOUSE_SOURCE_DIR;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// "NAME VERSION (revision REV)\n" with REV 12 hex digits (+ "-dirty") or
// "unknown"; returns REV, or "" with a failure.
std::string RevisionOf(const std::string& program, const std::string& line) {
  const std::string head = program + " " + GATEHOUSE_VERSION + " (revision ";
  if (line.rfind(head, 0) != 0 || line.size() < head.size() + 3 || line.substr(line.size() - 2) != ")\n") {
    ADD_FAILURE() << "not a version line: '" << line << "'";
    return "";
  }
  std::string rev = line.substr(head.size(), line.size() - head.size() - 2);
  std::string hex = rev;
  if (hex.size() > 6 && hex.substr(hex.size() - 6) == "-dirty") hex.resize(hex.size() - 6);
  bool ok = hex == "unknown" || hex.size() == 12;
  for (char c : hex) ok = ok && (hex == "unknown" || std::isxdigit(static_cast<unsigned char>(c)));
  EXPECT_TRUE(ok) << "revision '" << rev << "' in '" << line << "'";
  return rev;
}

// Prometheus text lines "name{labels} value" (comments skipped), by the part
// before the value.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    if (sp != std::string::npos) out[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return out;
}

class OpsTest : public ::testing::Test {
 protected:
  // The demo store in the test's folder.
  void MakeStore(const std::string& cli, const std::vector<std::string>& env) {
    for (const auto& c : DemoCommands()) {
      std::vector<std::string> argv = {cli};
      argv.insert(argv.end(), c.begin(), c.end());
      ProcessResult r = RunProcess(argv, {.env = ChildEnvironment(env)});
      ASSERT_EQ(r.exit_code, 0) << r;
    }
  }
  // Starts gatehoused (argv with --listen 127.0.0.1:0) and returns its
  // start-up line; s->process is null (with a failure) when it did not say
  // where it listens.
  std::string Launch(const std::vector<std::string>& argv, Sidecar* s,
                     std::vector<std::string> extra_env = {}) {
    s->process = Process::Start(argv, {.env = ChildEnvironment(extra_env), .stderr_path = dir_.File("err.txt")});
    if (!s->process) return "";
    auto line = s->process->ReadLine(10s);
    const std::string kListening = "listening on 127.0.0.1:";
    const size_t at = line ? line->find(kListening) : std::string::npos;
    if (at == std::string::npos) {
      ADD_FAILURE() << "gatehoused did not say where it listens: " << line.value_or("<nothing>")
                    << "\n" << ReadAll(dir_.File("err.txt"));
      s->process->Stop(2s);
      s->process.reset();
      return "";
    }
    s->port = std::atoi(line->c_str() + at + kListening.size());
    return *line;
  }
  std::string store() const { return dir_.File("gatehouse.db"); }
  std::vector<std::string> env() const {
    return {"GATEHOUSE_STORE=" + store(), "GATEHOUSE_AS=owner@demo.test"};
  }

  TempDir dir_;
};

TEST_F(OpsTest, BothProgramsPrintTheSameVersionAndExitZero) {
  ProcessResult cli = RunProcess({kCli, "--version"});
  ProcessResult sidecar = RunProcess({kSidecar, "--version"});
  ASSERT_EQ(cli.exit_code, 0) << cli;
  ASSERT_EQ(sidecar.exit_code, 0) << sidecar;
  EXPECT_EQ(cli.err, "");
  EXPECT_EQ(sidecar.err, "");
  const std::string rev = RevisionOf("gatehouse", cli.out);
  EXPECT_EQ(RevisionOf("gatehoused", sidecar.out), rev);
  // Built from a git checkout: the revision is a commit of it (HEAD when
  // built since the last commit; an older one in a build not redone since).
  if (fs::exists(kSource + "/.git")) {
    ProcessResult git = RunProcess({"/usr/bin/git", "-C", kSource, "cat-file", "-t", rev.substr(0, 12)});
    EXPECT_EQ(git.out, "commit\n") << git;
  }
  // --version wins over a command, like --help.
  ProcessResult with_command = RunProcess({kCli, "--version", "token", "list"});
  EXPECT_EQ(with_command.exit_code, 0) << with_command;
  EXPECT_EQ(with_command.out, cli.out);
}

// --write-timeout is an option of its own (it used to follow --read-timeout
// only): a bad value is a usage error (exit 2, one line), like the others.
TEST_F(OpsTest, WriteTimeoutIsAnOptionAndChecked) {
  for (const char* bad : {"0", "-1", "x"}) {
    ProcessResult r = RunProcess({kSidecar, "--listen", "127.0.0.1:0", "--write-timeout", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
  }
  ProcessResult help = RunProcess({kSidecar, "--help"});
  EXPECT_NE(help.out.find("--write-timeout"), std::string::npos);
}

// A tarball has no .git: the header still builds, with revision unknown (or
// the one the builder names), and a git repository around the tree is not
// asked.
TEST_F(OpsTest, VersionHeaderOutsideACheckout) {
  const std::string src = dir_.File("src");
  fs::create_directories(src);
  ASSERT_EQ(RunProcess({"/usr/bin/git", "init", "-q", dir_.File("")}).exit_code, 0);  // the tree around
  const std::string header = dir_.File("v.h");
  auto run = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"/usr/bin/cmake", "-DSOURCE_DIR=" + src, "-DOUTPUT=" + header,
                                     "-DVERSION=9.8.7"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("-P");
    argv.push_back(kSource + "/cmake/version.cmake");
    ProcessResult r = RunProcess(argv);
    EXPECT_EQ(r.exit_code, 0) << r;
    return ReadAll(header);
  };
  std::string h = run({});
  EXPECT_NE(h.find("#define GATEHOUSE_VERSION_STRING \"9.8.7\""), std::string::npos) << h;
  EXPECT_NE(h.find("#define GATEHOUSE_REVISION_STRING \"unknown\""), std::string::npos) << h;
  // Unchanged content is not rewritten (a build recompiles nothing).
  struct stat before {};
  ASSERT_EQ(::stat(header.c_str(), &before), 0);
  ::sleep(1);
  run({});
  struct stat after {};
  ASSERT_EQ(::stat(header.c_str(), &after), 0);
  EXPECT_EQ(before.st_mtime, after.st_mtime);
  h = run({"-DREVISION=v9.8.7-tarball"});
  EXPECT_NE(h.find("#define GATEHOUSE_REVISION_STRING \"v9.8.7-tarball\""), std::string::npos) << h;
}

// The start-up line, /readyz and /metrics name the build --version names,
// and the whole exposition passes promtool, process_* metrics included.
TEST_F(OpsTest, SidecarReportsItsBuildAndPassesPromtool) {
  ASSERT_TRUE(fs::exists(kPromtool)) << "promtool is not installed (scripts/setup.sh installs prometheus)";
  MakeStore(kCli, env());
  if (HasFatalFailure()) return;
  const std::string rev = RevisionOf("gatehoused", RunProcess({kSidecar, "--version"}).out);
  const auto started = std::time(nullptr);
  Sidecar s;
  const std::string first = Launch({kSidecar, "--listen", "127.0.0.1:0", "--store", store()}, &s);
  ASSERT_TRUE(s.process);
  EXPECT_NE(first.find("version " + std::string(GATEHOUSE_VERSION) + " (revision " + rev + ")"),
            std::string::npos)
      << first;

  HttpResponse ready = HttpCall(s.port, "GET", "/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body;
  json j = json::parse(ready.body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << ready.body;
  EXPECT_EQ(j["build"]["version"], GATEHOUSE_VERSION);
  EXPECT_EQ(j["build"]["revision"], rev);

  // Some traffic, so the histograms and labelled counters have samples.
  for (int i = 0; i < 5; ++i) {
    HttpCall(s.port, "POST", "/v1/authorize", {{"Content-Type", "application/json"}},
             R"({"user":"alice@demo.test","action":"project.import","workspace":"Marketing-Production"})");
    HttpCall(s.port, "GET", "/nowhere");
  }
  HttpResponse m = HttpCall(s.port, "GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  auto samples = Samples(m.body);
  EXPECT_EQ(samples["gatehouse_build_info{version=\"" + std::string(GATEHOUSE_VERSION) +
                    "\",revision=\"" + rev + "\"}"],
            "1")
      << m.body;
  for (const char* name : {"process_resident_memory_bytes", "process_cpu_seconds_total",
                           "process_open_fds", "process_max_fds", "process_start_time_seconds",
                           "process_virtual_memory_bytes", "gatehouse_start_time_seconds"}) {
    EXPECT_TRUE(samples.count(name)) << name << " missing from\n" << m.body;
  }
  const double rss = std::stod(samples["process_resident_memory_bytes"]);
  EXPECT_GT(rss, 1e6);
  EXPECT_LT(rss, 4e9);
  const double open = std::stod(samples["process_open_fds"]);
  EXPECT_GE(open, 3);
  EXPECT_LE(open, std::stod(samples["process_max_fds"]));
  const double start = std::stod(samples["process_start_time_seconds"]);
  EXPECT_GE(start, static_cast<double>(started) - 5);
  EXPECT_LE(start, static_cast<double>(std::time(nullptr)) + 5);
  EXPECT_NEAR(start, std::stod(samples["gatehouse_start_time_seconds"]), 5);
  EXPECT_GE(std::stod(samples["process_cpu_seconds_total"]), 0);

  const std::string file = dir_.File("metrics.txt");
  WriteAll(file, m.body);
  ProcessResult check = RunProcess({"/bin/sh", "-c", "\"$0\" check metrics < \"$1\"", kPromtool, file});
  EXPECT_EQ(check.exit_code, 0) << check << "\n" << m.body;
  EXPECT_EQ(check.out + check.err, "") << "promtool's lint found problems";
  EXPECT_EQ(s.process->Stop(10s).exit_code, 0);
}

// --- sd_notify ------------------------------------------------------------

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name, bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), std::min(name.size(), sizeof addr.sun_path - 1));
    if (abstract) addr.sun_path[0] = '\0';  // "@name"
    const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { ::close(fd_); }
  // The next datagram ("" after 10 s without one).
  std::string Receive() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

 private:
  int fd_ = -1;
};

// Type=notify: READY=1 once the port answers, STOPPING=1 at SIGTERM; by a
// path and by an abstract name.
TEST_F(OpsTest, SidecarNotifiesReadyAndStoppingOverNotifySocket) {
  MakeStore(kCli, env());
  if (HasFatalFailure()) return;
  for (bool abstract : {false, true}) {
    SCOPED_TRACE(abstract ? "abstract socket" : "socket file");
    const std::string name = abstract ? "@gatehouse-ops-test-" + std::to_string(::getpid())
                                      : dir_.File("notify.sock");
    NotifySocket sock(name, abstract);
    Sidecar s;
    Launch({kSidecar, "--listen", "127.0.0.1:0", "--store", store()}, &s, {"NOTIFY_SOCKET=" + name});
    ASSERT_TRUE(s.process);
    const std::string ready = sock.Receive();
    EXPECT_NE(ready.find("READY=1"), std::string::npos) << "'" << ready << "'";
    EXPECT_NE(ready.find("MAINPID=" + std::to_string(s.process->pid())), std::string::npos) << ready;
    EXPECT_EQ(HttpCall(s.port, "GET", "/readyz").status, 200);
    s.process->Kill(SIGTERM);
    EXPECT_EQ(sock.Receive(), "STOPPING=1");
    EXPECT_EQ(s.process->Stop(10s).exit_code, 0);
    if (!abstract) ::unlink(name.c_str());
  }
  // No socket there, or a name that is not a socket path: it serves anyway.
  for (const std::string& bad : {dir_.File("absent.sock"), std::string("relative"), std::string(200, 'x')}) {
    Sidecar s;
    Launch({kSidecar, "--listen", "127.0.0.1:0", "--store", store()}, &s, {"NOTIFY_SOCKET=" + bad});
    ASSERT_TRUE(s.process) << bad;
    EXPECT_EQ(HttpCall(s.port, "GET", "/healthz").status, 200);
    EXPECT_EQ(s.process->Stop(10s).exit_code, 0);
  }
}

// --- the installed tree -----------------------------------------------------

// `cmake --install` of this build into DESTDIR, at a prefix other than the
// configured one, once for the tests below.
class InstalledTest : public OpsTest {
 protected:
  static constexpr const char* kPrefix = "/opt/gatehouse-test";
  static void SetUpTestSuite() {
    root_ = new TempDir();
    ProcessResult r = RunProcess({"/usr/bin/cmake", "--install", GATEHOUSE_BINARY_DIR, "--prefix", kPrefix},
                                 {.env = ChildEnvironment({"DESTDIR=" + root_->File("")})});
    install_log_ = new std::string(r.out + r.err);
    install_ok_ = r.exit_code == 0;
  }
  static void TearDownTestSuite() {
    delete root_;
    delete install_log_;
  }
  void SetUp() override { ASSERT_TRUE(install_ok_) << *install_log_; }
  static std::string Path(const std::string& rel) {
    return root_->File(std::string(kPrefix).substr(1) + "/" + rel);
  }

  static TempDir* root_;
  static std::string* install_log_;
  static bool install_ok_;
};
TempDir* InstalledTest::root_ = nullptr;
std::string* InstalledTest::install_log_ = nullptr;
bool InstalledTest::install_ok_ = false;

TEST_F(InstalledTest, TreeHoldsEverythingAPlatformTeamNeeds) {
  for (const char* rel : {"bin/gatehouse", "bin/gatehoused", "share/man/man1/gatehouse.1",
                          "share/man/man8/gatehoused.8", "share/bash-completion/completions/gatehouse",
                          "share/bash-completion/completions/gatehoused",
                          "share/gatehouse/policies/api-tokens.yaml", "share/gatehouse/policies/schema.json",
                          "share/gatehouse/policies/tests.schema.json", "share/gatehouse/policies/tests/tokens.yaml",
                          "share/gatehouse/deploy/nginx.conf", "share/gatehouse/deploy/Caddyfile",
                          "share/gatehouse/deploy/traefik.yml", "share/gatehouse/deploy/kubernetes.yaml",
                          "share/gatehouse/deploy/gatehoused.service", "lib/systemd/system/gatehoused.service",
                          "lib/sysusers.d/gatehouse.conf"}) {
    EXPECT_TRUE(fs::is_regular_file(Path(rel))) << rel << "\n" << *install_log_;
  }
  const std::string unit = ReadAll(Path("lib/systemd/system/gatehoused.service"));
  EXPECT_NE(unit.find("\nExecStart=" + std::string(kPrefix) + "/bin/gatehoused "), std::string::npos) << unit;
  EXPECT_EQ(unit, ReadAll(Path("share/gatehouse/deploy/gatehoused.service")));
}

// The installed CLI and sidecar find the installed policy (not the source
// tree's) and work against each other on one store.
TEST_F(InstalledTest, InstalledCliAndSidecarWorkTogether) {
  const std::string cli = Path("bin/gatehouse"), sidecar = Path("bin/gatehoused");
  // Mark the installed copy, so whoever loads it says so.
  const std::string policy = Path("share/gatehouse/policies/api-tokens.yaml");
  std::string text = ReadAll(policy);
  const size_t at = text.find("\npolicy: api-tokens\n");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 20, "\npolicy: api-tokens-installed\n");
  WriteAll(policy, text);

  ProcessResult v = RunProcess({cli, "policy", "validate", "--json"});
  ASSERT_EQ(v.exit_code, 0) << v;
  json j = json::parse(v.out, nullptr, false);
  EXPECT_EQ(j["path"], Path("share/gatehouse/policies")) << v.out;
  EXPECT_EQ(j["policy"], "api-tokens-installed");
  ProcessResult t = RunProcess({cli, "policy", "test"});
  EXPECT_EQ(t.exit_code, 0) << t;

  MakeStore(cli, env());
  if (HasFatalFailure()) return;
  ProcessResult created = RunProcess({cli, "token", "create", "--apiuser", "prod-importer", "--name", "t",
                                      "--expires-in", "1d", "--json"},
                                     {.env = ChildEnvironment(env())});
  CliToken token = CreatedToken(created);
  ASSERT_FALSE(token.secret.empty());

  Sidecar s;
  const std::string line = Launch({sidecar, "--listen", "127.0.0.1:0", "--store", store()}, &s);
  ASSERT_TRUE(s.process);
  EXPECT_NE(line.find("policy api-tokens-installed "), std::string::npos) << line;
  HttpResponse r = HttpCall(s.port, "POST", "/v1/authorize", {{"Content-Type", "application/json"}},
                            R"({"token":")" + token.secret +
                                R"(","action":"project.import","workspace":"Marketing-Production"})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"allow\":true"), std::string::npos) << r.body;
  ProcessResult health =
      RunProcess({sidecar, "healthcheck", "--listen", "127.0.0.1:" + std::to_string(s.port)});
  EXPECT_EQ(health.exit_code, 0) << health;
  // A revocation through the installed CLI is seen by the installed sidecar.
  ProcessResult revoke = RunProcess({cli, "token", "revoke", token.id}, {.env = ChildEnvironment(env())});
  ASSERT_EQ(revoke.exit_code, 0) << revoke;
  HttpResponse after = HttpCall(s.port, "POST", "/v1/tokens/verify", {{"Content-Type", "application/json"}},
                                R"({"token":")" + token.secret + R"("})");
  EXPECT_NE(after.body.find("\"active\":false"), std::string::npos) << after.body;
  EXPECT_EQ(s.process->Stop(10s).exit_code, 0);
}

// Every option --help lists is in the rendered man page (they come from one
// table), and man renders both pages without a warning.
TEST_F(InstalledTest, ManPagesRenderAndListEveryOptionOfHelp) {
  struct Page {
    std::string binary, page;
    std::vector<std::string> help_args;
  };
  for (const Page& p : {Page{"bin/gatehoused", "share/man/man8/gatehoused.8", {"--help"}},
                        Page{"bin/gatehouse", "share/man/man1/gatehouse.1", {"--help"}},
                        Page{"bin/gatehouse", "share/man/man1/gatehouse.1", {"token", "create", "--help"}},
                        Page{"bin/gatehouse", "share/man/man1/gatehouse.1", {"policy", "diff", "--help"}}}) {
    SCOPED_TRACE(p.page);
    ProcessResult man = RunProcess({"/usr/bin/man", "--warnings", "-l", Path(p.page)},
                                   {.env = ChildEnvironment({"MANWIDTH=200", "MAN_KEEP_FORMATTING=0",
                                                             "MANPAGER=cat", "PAGER=cat"})});
    ASSERT_EQ(man.exit_code, 0) << man;
    EXPECT_EQ(man.err, "") << "man/groff warnings";
    std::string rendered = man.out;  // overstrike bold (c\bc) undone
    std::string plain;
    for (size_t i = 0; i < rendered.size(); ++i) {
      if (i + 1 < rendered.size() && rendered[i + 1] == '\b') {
        ++i;
        continue;
      }
      plain += rendered[i];
    }
    EXPECT_NE(plain.find("NAME"), std::string::npos) << plain;
    std::vector<std::string> argv = {Path(p.binary)};
    argv.insert(argv.end(), p.help_args.begin(), p.help_args.end());
    ProcessResult help = RunProcess(argv);
    ASSERT_EQ(help.exit_code, 0) << help;
    std::istringstream in(help.out);
    std::string word;
    int options = 0;
    while (in >> word) {
      if (word.rfind("--", 0) != 0 || word.size() < 3) continue;
      while (!word.empty() && !std::isalnum(static_cast<unsigned char>(word.back()))) word.pop_back();
      if (word.find('=') != std::string::npos || word.find('[') != std::string::npos) continue;
      ++options;
      EXPECT_NE(plain.find(word), std::string::npos) << word << " is in --help but not in " << p.page;
    }
    EXPECT_GT(options, 5);
  }
}

// The installed completion loads in bash and completes commands and options.
TEST_F(InstalledTest, BashCompletionLoadsAndCompletes) {
  ASSERT_TRUE(fs::exists("/usr/share/bash-completion/bash_completion"))
      << "bash-completion is not installed (scripts/setup.sh installs it)";
  const std::string script =
      "source /usr/share/bash-completion/bash_completion || exit 9\n"
      "source \"$0/gatehouse\" && source \"$0/gatehoused\" || exit 8\n"
      "complete -p gatehouse; complete -p gatehoused\n"
      "t() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); \"_${1}\"; echo \"${COMPREPLY[*]}\"; }\n"
      "t gatehouse to\n"
      "t gatehouse token cr\n"
      "t gatehouse --store x.db token create --e\n"
      "t gatehouse policy ''\n"
      "t gatehoused --decision-l\n"
      "t gatehoused health\n";
  ProcessResult r = RunProcess({"/bin/bash", "-c", script, Path("share/bash-completion/completions")});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out,
            "complete -F _gatehouse gatehouse\n"
            "complete -F _gatehoused gatehoused\n"
            "token\n"
            "create\n"
            "--expires-in\n"
            "diff matrix replay test validate\n"
            "--decision-log --decision-log-required\n"
            "healthcheck\n")
      << r;
}

// The unit passes `systemd-analyze verify`, its man: references included
// (found in the installed tree), with its ExecStart pointing there.
TEST_F(InstalledTest, SystemdUnitVerifies) {
  ASSERT_TRUE(fs::exists("/usr/bin/systemd-analyze")) << "systemd is not installed (scripts/setup.sh)";
  std::string unit = ReadAll(Path("lib/systemd/system/gatehoused.service"));
  const std::string exec = std::string(kPrefix) + "/bin/gatehoused";
  const size_t at = unit.find(exec);
  ASSERT_NE(at, std::string::npos) << unit;
  unit.replace(at, exec.size(), Path("bin/gatehoused"));
  const std::string copy = dir_.File("gatehoused.service");
  WriteAll(copy, unit);
  ProcessResult r = RunProcess({"/usr/bin/systemd-analyze", "verify", copy},
                               {.env = ChildEnvironment({"MANPATH=" + Path("share/man"), "SYSTEMD_LOG_COLOR=0"})});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out + r.err, "") << "systemd-analyze found problems";
  // The check can fail: an unknown key is reported.
  WriteAll(copy, unit + "\n[Service]\nNoSuchSetting=1\n");
  ProcessResult bad = RunProcess({"/usr/bin/systemd-analyze", "verify", copy},
                                 {.env = ChildEnvironment({"MANPATH=" + Path("share/man")})});
  EXPECT_NE(bad.out + bad.err, "") << bad;
  for (const char* key : {"Type=notify", "ProtectSystem=strict", "NoNewPrivileges=yes", "User=gatehouse",
                          "ReadWritePaths=/var/lib/gatehouse /var/log/gatehouse", "Restart=on-failure",
                          "ExecReload=/bin/kill -HUP $MAINPID"}) {
    EXPECT_NE(unit.find(std::string("\n") + key + "\n"), std::string::npos) << key;
  }
}

// --- logs -------------------------------------------------------------------

std::vector<json> JsonLines(const std::string& text, const std::string& what) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    EXPECT_TRUE(j.is_object()) << what << ": not a JSON object: '" << line << "'";
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

// --decision-log - with --log-format json: stdout holds only decision
// records, stderr only JSON log lines (the banner among them); the access
// log has one line per request, with the reply's request id, and never a
// secret, generated over many requests; SIGHUP reopens it after rotation.
TEST_F(OpsTest, AccessAndDecisionLogsLineByLine) {
  MakeStore(kCli, env());
  if (HasFatalFailure()) return;
  ProcessResult created = RunProcess({kCli, "token", "create", "--apiuser", "prod-importer", "--name", "t",
                                      "--expires-in", "1d", "--json"},
                                     {.env = ChildEnvironment(env())});
  CliToken token = CreatedToken(created);
  ASSERT_FALSE(token.secret.empty());
  const std::string caller = "caller-secret-" + std::to_string(::getpid()) + "-xyzzy";
  WriteAll(dir_.File("caller"), caller + "\n");
  ::chmod(dir_.File("caller").c_str(), 0600);
  const std::string access = dir_.File("access.log");
  auto process = Process::Start({kSidecar, "--listen", "127.0.0.1:0", "--store", store(), "--decision-log", "-",
                                 "--access-log", access, "--log-format", "json", "--caller-secret-file",
                                 dir_.File("caller")},
                                {.stderr_path = dir_.File("err.txt")});
  ASSERT_TRUE(process);
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {  // the port from the banner on stderr
    const std::string err = ReadAll(dir_.File("err.txt"));
    const size_t at = err.find("listening on 127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(err.c_str() + at + 23);
    if (port == 0) ::usleep(50'000);
  }
  ASSERT_NE(port, 0) << ReadAll(dir_.File("err.txt"));

  // Generated requests: endpoints, methods, queries carrying the token,
  // the secret in Authorization and the caller header, odd paths.
  std::mt19937 rng(12);
  const std::vector<std::string> paths = {"/v1/authorize", "/v1/tokens/verify", "/healthz", "/readyz",
                                          "/v1/forward-auth/workspaces/Marketing-Production/projects/p/import",
                                          "/nowhere", "/v1/authorize/batch", "/%2e%2e/\"quoted\"/\\back"};
  const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE", "HEAD"};
  struct Sent {
    std::string method, path, request_id;
    int status;
  };
  std::vector<Sent> sent;
  for (int i = 0; i < 60; ++i) {
    const std::string path = paths[rng() % paths.size()];
    const std::string method = methods[rng() % methods.size()];
    const bool query = rng() % 2 == 0;
    HeaderList headers = {{"Authorization", "Bearer " + token.secret}, {"X-Original-Method", "POST"},
                          {"X-Original-URI", "/workspaces/Marketing-Production/projects/p/import?t=" + token.secret}};
    if (rng() % 4 != 0) headers.push_back({"X-Gatehouse-Caller", caller});
    if (rng() % 3 == 0) headers.push_back({"X-Request-Id", "req-" + std::to_string(i)});
    headers.push_back({"Content-Type", "application/json"});
    const std::string body = path == "/v1/tokens/verify"
                                 ? R"({"token":")" + token.secret + R"("})"
                                 : R"({"token":")" + token.secret +
                                       R"(","action":"project.import","workspace":"Marketing-Production"})";
    HttpResponse r = HttpCall(port, method, path + (query ? "?token=" + token.secret + "&x=1" : ""), headers,
                              method == "GET" || method == "HEAD" ? "" : body);
    ASSERT_NE(r.status, 0) << r.error;
    sent.push_back({method, path, r.Header("x-request-id"), r.status});
  }
  // Rotation: the file moved away, SIGHUP, the next line in a new file.
  ASSERT_EQ(::rename(access.c_str(), dir_.File("access.log.1").c_str()), 0);
  process->Kill(SIGHUP);
  bool reopened = false;
  for (int i = 0; i < 100 && !reopened; ++i) {
    ::usleep(50'000);
    reopened = fs::exists(access);
  }
  ASSERT_TRUE(reopened) << "SIGHUP did not reopen the access log";
  HttpResponse last = HttpCall(port, "GET", "/healthz");
  sent.push_back({"GET", "/healthz", last.Header("x-request-id"), last.status});
  ProcessResult done = process->Stop(10s);
  EXPECT_EQ(done.exit_code, 0) << done;

  const std::string access_text = ReadAll(dir_.File("access.log.1")) + ReadAll(access);
  std::vector<json> lines = JsonLines(access_text, "access log");
  EXPECT_EQ(JsonLines(ReadAll(access), "access log").size(), 1u);
  ASSERT_EQ(lines.size(), sent.size()) << access_text;
  for (size_t i = 0; i < sent.size(); ++i) {
    const json& l = lines[i];
    EXPECT_EQ(l["request_id"], sent[i].request_id) << l;
    EXPECT_EQ(l["method"], sent[i].method) << l;
    EXPECT_EQ(l["path"], sent[i].path) << l;
    EXPECT_EQ(l["status"], sent[i].status) << l;
    EXPECT_TRUE(l["peer"].get<std::string>().rfind("127.0.0.1:", 0) == 0) << l;
    EXPECT_TRUE(l["bytes"].is_number_unsigned() && l["duration_us"].is_number_integer()) << l;
    EXPECT_EQ(l["time"].get<std::string>().size(), 24u) << l;
  }
  for (const std::string& secret : {token.secret, caller, std::string("token=")}) {
    EXPECT_EQ(access_text.find(secret), std::string::npos) << "the access log holds '" << secret << "'";
  }
  struct stat st {};
  ASSERT_EQ(::stat(access.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // stdout: only decision records, each with a request id the access log has.
  std::vector<json> decisions = JsonLines(done.out, "stdout");
  EXPECT_FALSE(decisions.empty());
  for (const json& d : decisions) {
    EXPECT_TRUE(d.contains("decision")) << d;
    const std::string id = d.value("request_id", "");
    EXPECT_NE(access_text.find("\"request_id\":\"" + id + "\""), std::string::npos) << d;
  }
  // stderr: only JSON log lines; the banner among them.
  std::vector<json> log = JsonLines(ReadAll(dir_.File("err.txt")), "stderr");
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log[0]["msg"].get<std::string>().find("listening on"), std::string::npos) << log[0];
  for (const json& l : log) {
    EXPECT_TRUE(l.contains("time") && l.contains("level") && l.contains("msg")) << l;
  }
}

// --log-level drops what is below it; bad values are usage errors.
TEST_F(OpsTest, LogLevelAndFormat) {
  MakeStore(kCli, env());
  if (HasFatalFailure()) return;
  for (const std::string level : {"error", "warn", "info", "debug"}) {
    ::truncate(dir_.File("err.txt").c_str(), 0);
    Sidecar s;
    const std::string banner = Launch({kSidecar, "--listen", "127.0.0.1:0", "--store", store(),
                                       "--log-level", level}, &s);
    ASSERT_TRUE(s.process) << level;
    EXPECT_EQ(s.process->Stop(10s).exit_code, 0);
    const std::string err = ReadAll(dir_.File("err.txt"));
    const bool info = level == "info" || level == "debug";
    EXPECT_EQ(err.find(" info gatehoused: gatehoused listening on") != std::string::npos, info) << level << err;
    EXPECT_EQ(err.find(" info gatehoused: stopped") != std::string::npos, info) << level << err;
  }
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--log-level", "loud"}, {"--log-format", "xml"}, {"--log-level", ""},
           {"--access-log", "-", "--decision-log", "-"}}) {
    std::vector<std::string> argv = {kSidecar, "--store", store()};
    argv.insert(argv.end(), bad.begin(), bad.end());
    ProcessResult r = RunProcess(argv);
    EXPECT_EQ(r.exit_code, 2) << r;
  }
}

// --- the Kubernetes example's claims ------------------------------------------

// deploy/kubernetes.yaml: the policy and the caller secret come from volumes
// the kubelet lays out with symlinks into a hidden ..data folder, updated by
// swapping that symlink; the probes' /healthz and /readyz need no secret,
// everything else does. (No cluster here: the layout is made by hand.)
TEST_F(OpsTest, KubernetesVolumeLayoutAndProbes) {
  MakeStore(kCli, env());
  if (HasFatalFailure()) return;
  // A volume as the kubelet writes it: ..TIMESTAMP/FILE, ..data -> ..TIMESTAMP,
  // FILE -> ..data/FILE.
  auto volume = [&](const std::string& dir, const std::string& file, const std::string& content,
                    const std::string& stamp) {
    fs::create_directories(dir + "/" + stamp);
    WriteAll(dir + "/" + stamp + "/" + file, content);
    fs::create_directory_symlink(stamp, dir + "/..data_tmp");
    fs::rename(dir + "/..data_tmp", dir + "/..data");  // atomic, as the kubelet does
    std::error_code ec;
    if (!fs::is_symlink(dir + "/" + file, ec)) fs::create_symlink("..data/" + file, dir + "/" + file);
  };
  const std::string policy_dir = dir_.File("policy"), secret_dir = dir_.File("secret");
  const std::string policy = ReadAll(kSource + "/policies/api-tokens.yaml");
  volume(policy_dir, "api-tokens.yaml", policy, "..2026_01_01_00_00_00.1");
  const std::string secret = "k8s-caller-secret-0123456789abcdef";
  volume(secret_dir, "caller", secret + "\n", "..2026_01_01_00_00_00.1");
  Sidecar s;
  Launch({kSidecar, "--listen", "127.0.0.1:0", "--store", store(), "--policy", policy_dir,
          "--caller-secret-file", secret_dir + "/caller", "--policy-poll-ms", "100", "--log-format", "json"},
         &s);
  ASSERT_TRUE(s.process);
  EXPECT_EQ(HttpCall(s.port, "GET", "/healthz").status, 200);
  EXPECT_EQ(HttpCall(s.port, "GET", "/readyz").status, 200);
  const std::string check = R"({"user":"alice@demo.test","action":"project.import","workspace":"Marketing-Production"})";
  EXPECT_EQ(HttpCall(s.port, "POST", "/v1/authorize", {{"Content-Type", "application/json"}}, check).status, 401);
  EXPECT_EQ(HttpCall(s.port, "POST", "/v1/authorize",
                     {{"Content-Type", "application/json"}, {"X-Gatehouse-Caller", secret}}, check)
                .status,
            200);
  // A ConfigMap update: a new timestamped folder, ..data swapped.
  std::string renamed = policy;
  renamed.replace(renamed.find("\npolicy: api-tokens\n"), 20, "\npolicy: api-tokens-v2\n");
  volume(policy_dir, "api-tokens.yaml", renamed, "..2026_01_01_00_01_00.2");
  fs::remove_all(policy_dir + "/..2026_01_01_00_00_00.1");
  bool reloaded = false;
  for (int i = 0; i < 200 && !reloaded; ++i) {
    reloaded = HttpCall(s.port, "GET", "/readyz").body.find("\"name\":\"api-tokens-v2\"") != std::string::npos;
    if (!reloaded) ::usleep(50'000);
  }
  EXPECT_TRUE(reloaded) << ReadAll(dir_.File("err.txt"));
  EXPECT_EQ(s.process->Stop(10s).exit_code, 0);
}

// --- the same answer from both surfaces (issue 12 item 6) -----------------

// The action names of a policy file: the keys under `actions:` (two spaces
// in, a dot in the name), up to the next top-level key.
std::vector<std::string> ActionsOf(const std::string& policy_file) {
  std::istringstream in(ReadAll(policy_file));
  std::vector<std::string> out;
  bool inside = false;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != ' ' && line[0] != '#') inside = line.rfind("actions:", 0) == 0;
    if (!inside || line.size() < 4 || line.substr(0, 2) != "  " || line[2] == ' ' || line.back() != ':')
      continue;
    const std::string name = line.substr(2, line.size() - 3);
    if (name.find('.') != std::string::npos) out.push_back(name);
  }
  return out;
}

// Each side stamps a GraphQL error's time_thrown with its own clock: both
// must be ISO-8601 UTC with milliseconds, and are then blanked.
std::string WithoutTimeThrown(std::string body) {
  const std::string key = "\"time_thrown\":\"";
  for (size_t at = body.find(key); at != std::string::npos; at = body.find(key, at + 1)) {
    const size_t start = at + key.size();
    const std::string stamp = body.substr(start, 24);
    bool ok = stamp.size() == 24 && stamp[4] == '-' && stamp[10] == 'T' && stamp[19] == '.' && stamp[23] == 'Z';
    EXPECT_TRUE(ok) << "time_thrown '" << stamp << "' in " << body;
    if (ok) body.replace(start, 24, "T");
  }
  return body;
}

// `gatehouse authorize --json` prints the bytes POST /v1/authorize answers
// for the same question (CONTRACT.md), for every action of the default
// policy, users and tokens (active, revoked, malformed, unknown users) and a
// workspace of each type (and an unknown one, and one spelled in another
// case); a malformed question is a 400 there and exit 2 here, with the same
// message.
TEST_F(OpsTest, CliAuthorizeJsonIsTheSidecarsAnswer) {
  MakeStore(kCli, env());
  if (HasFatalFailure()) return;
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), kCli);
    return RunProcess(args, {.env = ChildEnvironment(env())});
  };
  for (const std::vector<std::string>& c :
       {std::vector<std::string>{"user", "add", "vic@demo.test", "--org-role", "viewer"},
        {"workspace", "create", "Alice-Personal", "--type", "personal", "--owner", "alice@demo.test"},
        {"member", "add", "vic@demo.test", "--workspace", "Marketing-Production", "--role", "admin"}}) {
    ProcessResult r = cli(c);
    ASSERT_EQ(r.exit_code, 0) << r;
  }
  auto token_of = [&](const std::string& apiuser) {
    return CreatedToken(cli({"token", "create", "--apiuser", apiuser, "--name", "t-" + apiuser,
                             "--expires-in", "1d", "--json"}));
  };
  const CliToken dev = token_of("dev-exporter"), prod = token_of("prod-importer"),
                 viewer = token_of("prod-viewer");
  const CliToken revoked = CreatedToken(cli({"token", "create", "--apiuser", "prod-importer", "--name",
                                             "gone", "--expires-in", "1d", "--json"}));
  ASSERT_EQ(cli({"token", "revoke", revoked.id}).exit_code, 0);
  ASSERT_FALSE(dev.secret.empty() || prod.secret.empty() || viewer.secret.empty());

  Sidecar s;
  Launch({kSidecar, "--listen", "127.0.0.1:0", "--store", store()}, &s);
  ASSERT_TRUE(s.process);

  struct Who {
    std::string field, value;  // "user" or "token"
  };
  const std::vector<Who> principals = {
      {"user", "owner@demo.test"}, {"user", "alice@demo.test"},  {"user", "vic@demo.test"},
      {"user", "nobody@demo.test"}, {"token", dev.secret},       {"token", prod.secret},
      {"token", viewer.secret},     {"token", revoked.secret},   {"token", "gat_notarealtoken"}};
  const std::vector<std::string> workspaces = {"Organization", "Marketing-Production", "Alice-Personal",
                                               "marketing-development", "No-Such-Workspace"};
  const std::vector<std::string> actions = ActionsOf(kSource + "/policies/api-tokens.yaml");
  ASSERT_GE(actions.size(), 10u);

  // Asks both; returns the sidecar's status and the CLI's exit code.
  std::map<std::string, int> seen;  // outcome kind → count
  auto ask = [&](const std::string& action, const Who& who, const std::string& ws) {
    const json body = {{who.field, who.value}, {"action", action}, {"workspace", ws}};
    HttpResponse h = HttpCall(s.port, "POST", "/v1/authorize", {{"Content-Type", "application/json"}},
                              body.dump(-1, ' ', false, json::error_handler_t::replace));
    ProcessResult c = cli({"authorize", "--json", "--action", action, "--workspace", ws,
                           "--" + who.field, who.value});
    const std::string what = action + " in " + ws + " for " + who.field + " " + who.value;
    if (h.status == 400) {
      // The same message: {"error": M} there, {"error": M, "exit": 2} here.
      EXPECT_EQ(c.exit_code, 2) << what << "\n" << c;
      EXPECT_EQ(c.out, "") << what;
      json he = json::parse(h.body, nullptr, false), ce = json::parse(c.err, nullptr, false);
      EXPECT_TRUE(he.is_object() && ce.is_object()) << what << "\n" << h.body << "\n" << c.err;
      if (he.is_object() && ce.is_object()) {
        EXPECT_EQ(ce["error"], he["error"]) << what;
        EXPECT_EQ(ce["exit"], 2) << what;
      }
      ++seen["bad request"];
      return;
    }
    ASSERT_EQ(h.status, 200) << what << "\n" << h.body;
    EXPECT_EQ(WithoutTimeThrown(c.out), WithoutTimeThrown(h.body) + "\n") << what << "\n" << c;
    const json d = json::parse(h.body, nullptr, false);
    ASSERT_TRUE(d.is_object()) << h.body;
    const std::string rule = d["reasons"].empty() ? "" : d["reasons"][0].value("rule", "");
    const bool not_found = rule == "unknown-user" || rule == "unknown-workspace";
    const int exit = d["allow"] == true ? 0 : not_found ? 4 : 3;
    EXPECT_EQ(c.exit_code, exit) << what << "\n" << c;
    ++seen[d["allow"] == true ? "allow" : not_found ? rule : d.contains("errors") ? "deny+graphql" : "deny"];
  };

  // Every action × every principal, against the workspaces in turn, so
  // every principal meets every workspace (16 actions, 5 workspaces).
  for (size_t a = 0; a < actions.size(); ++a) {
    for (size_t p = 0; p < principals.size(); ++p)
      ask(actions[a], principals[p], workspaces[(a + p) % workspaces.size()]);
  }
  // Malformed questions.
  ask("project.delete", principals[0], "Marketing-Production");        // unknown action
  ask("project.import", principals[4], "Bad\u202eName");               // a bidi override
  ask("project.import", {"user", "al\x1b[1mice@demo.test"}, "Organization");  // a control character

  for (const char* kind : {"allow", "deny", "deny+graphql", "unknown-user", "unknown-workspace", "bad request"})
    EXPECT_GT(seen[kind], 0) << "no question answered '" << kind << "'";
  EXPECT_EQ(s.process->Stop(10s).exit_code, 0);
}

}  // namespace
}  // namespace gatehouse::testing
