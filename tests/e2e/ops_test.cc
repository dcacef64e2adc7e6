// Operating Gatehouse (issue 12), against the real things: the built and the
// installed binaries, `promtool check metrics` on the real sidecar's /metrics,
// and the version header written the way a tarball build writes it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
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
  // Built from a git checkout: the revision is that commit's.
  if (fs::exists(kSource + "/.git")) {
    ProcessResult git = RunProcess({"/usr/bin/git", "-C", kSource, "rev-parse", "--short=12", "HEAD"});
    if (git.exit_code == 0) {
      EXPECT_EQ(rev.substr(0, 12), git.out.substr(0, 12));
    }
  }
  // --version wins over a command, like --help.
  ProcessResult with_command = RunProcess({kCli, "--version", "token", "list"});
  EXPECT_EQ(with_command.exit_code, 0) << with_command;
  EXPECT_EQ(with_command.out, cli.out);
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

}  // namespace
}  // namespace gatehouse::testing
