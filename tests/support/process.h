// Child processes for tests: fork/exec with an explicit argv and environment
// (no shell), stdin from /dev/null, stdout captured, stderr captured or sent to
// a file, the exit status, and timeouts after which the child is killed.
//
//   ProcessResult r = RunProcess({kCli, "token", "list"});        // to completion
//
//   auto p = Process::Start({kSidecar, ...}, {.stderr_path = log});  // long-running
//   std::optional<std::string> line = p->ReadLine(10s);
//   p->Kill(SIGHUP);
//   EXPECT_EQ(p->Stop(10s).exit_code, 0);
//
// Safe to use from several threads at once (each Process from one thread at a
// time): the child only calls async-signal-safe functions between fork and
// exec, starts with no signal blocked (whatever the test's threads block), and
// every descriptor the parent opens is close-on-exec, so one child never
// inherits another's pipes. Wait reads the output while it waits, so a child
// that writes more than a pipe holds does not block (before Wait, only
// ReadLine reads stdout: hence stderr_path for long-running children). A
// Process destroyed before its child was reaped kills it (SIGKILL) and reaps
// it, so a failing test never leaves one behind.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace gatehouse::testing {

struct ProcessResult {
  std::vector<std::string> argv;  // what ran (for failure messages)
  int exit_code = -1;             // the exit status; -1 when killed by a signal
  int term_signal = 0;            // the signal that ended it, if any
  bool timed_out = false;         // killed because it ran past its timeout or grace
  std::string out;                // everything it wrote on stdout (ReadLine's lines too)
  std::string err;                // everything it wrote on stderr, unless stderr_path
  std::string stderr_path;        // where its stderr went instead, if anywhere
  double seconds = 0;             // wall time from start to exit

  bool exited() const { return exit_code >= 0 && !timed_out; }
  std::string CommandLine() const;
};

// Prints the command, its exit status and its output: used in every failed
// expectation about a process.
std::ostream& operator<<(std::ostream& os, const ProcessResult& r);

// The test's environment without any GATEHOUSE_* variable (so the caller's
// shell cannot leak a store, an identity or a policy into a test), plus
// `extra` ("NAME=VALUE"), each replacing an inherited variable of its name.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra = {});

struct ProcessOptions {
  // The child's whole environment ("NAME=VALUE"). Default: ChildEnvironment().
  std::vector<std::string> env = ChildEnvironment();
  // How long Wait() lets it run, counted from Start; then it is killed.
  // Default 60 s. Long-running children use Wait(timeout) or Stop(grace).
  std::chrono::milliseconds timeout{60'000};
  // When not empty, stderr is appended to this file (created 0600) instead of
  // captured: for long-running children, whose stderr pipe would fill while
  // nobody waits on them. Default: captured in ProcessResult::err. (The {}
  // lets `{.env = ...}` leave it out under -Wmissing-field-initializers.)
  std::string stderr_path{};
};

// A running child. Wait() or Stop() collects it; destroying it uncollected
// kills it.
class Process {
 public:
  // Starts argv[0] (a path; no PATH search). Fails the calling test (and
  // returns null) when it cannot be started.
  static std::unique_ptr<Process> Start(const std::vector<std::string>& argv,
                                        const ProcessOptions& options = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it once it has).
  bool Running();
  // Sends `signal` to the child if it has not been reaped yet.
  void Kill(int signal);

  // The next line of stdout without its '\n'; nullopt when no whole line
  // comes within `timeout`, or stdout ends first. After Wait, returns the
  // lines it collected that ReadLine has not returned yet.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);

  // Reads its output to the end, reaps it and returns the result; kills it
  // (SIGKILL, timed_out) when it runs past ProcessOptions::timeout counted
  // from Start. Once it has returned, every Wait or Stop returns the same.
  ProcessResult Wait();
  // The same, with the deadline `timeout` from now.
  ProcessResult Wait(std::chrono::milliseconds timeout);
  // Sends `signal`, then Wait(grace): killed with SIGKILL (and timed_out)
  // when it has not ended within `grace`.
  ProcessResult Stop(std::chrono::milliseconds grace, int signal = SIGTERM);

 private:
  using Clock = std::chrono::steady_clock;
  Process() = default;
  ProcessResult WaitUntil(Clock::time_point deadline);
  void Reaped(int status);
  void ReadFrom(int& fd, std::string& sink);

  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;  // -1 once at its end (or never a pipe)
  bool reaped_ = false, collected_ = false;
  int raw_status_ = 0;
  size_t next_line_ = 0;  // where ReadLine's next line starts in result_.out
  Clock::time_point start_, deadline_;
  ProcessResult result_;
};

// Start + Wait.
ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options = {});

}  // namespace gatehouse::testing
