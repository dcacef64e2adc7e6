// A small process runner for end-to-end tests: fork/exec with an explicit argv
// and environment (no shell), stdin from /dev/null, stdout and stderr captured,
// the exit status, and a timeout after which the child is killed.
//
// Safe to use from several threads at once: the child only calls
// async-signal-safe functions between fork and exec, and every pipe is
// close-on-exec so one child never inherits another's pipes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace gatehouse::testing {

struct ProcessResult {
  std::vector<std::string> argv;  // what ran (for failure messages)
  int exit_code = -1;             // the exit status; -1 when killed by a signal
  int term_signal = 0;            // the signal that ended it, if any
  bool timed_out = false;         // killed because it ran past the timeout
  std::string out, err;           // everything it wrote on stdout and stderr
  double seconds = 0;             // wall time from start to exit

  bool exited() const { return exit_code >= 0 && !timed_out; }
  std::string CommandLine() const;
};

// Prints the command, its exit status and its output: used in every failed
// expectation about a process.
std::ostream& operator<<(std::ostream& os, const ProcessResult& r);

struct ProcessOptions {
  // The child's whole environment ("NAME=VALUE"). Use ChildEnvironment() to
  // start from the test's own environment.
  std::vector<std::string> env;
  std::chrono::milliseconds timeout{60'000};
};

// The test's environment without any GATEHOUSE_* variable (so the caller's
// shell cannot leak a store, an identity or a policy into a test), plus `extra`.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra = {});

// A running child. Wait() collects it; destroying it unwaited kills it.
class Process {
 public:
  // Starts argv[0] (a path; no PATH search). Fails the calling test (and
  // returns null) when it cannot be started.
  static std::unique_ptr<Process> Start(const std::vector<std::string>& argv,
                                        const ProcessOptions& options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // True while the child has not exited (does not reap it).
  bool Running();
  // Sends `signal` to the child if it has not been reaped yet.
  void Kill(int signal);
  pid_t pid() const { return pid_; }
  // Reads its output to the end, reaps it and returns the result; kills it
  // when it runs past the timeout. Call once.
  ProcessResult Wait();

 private:
  Process() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  bool reaped_ = false;
  int raw_status_ = 0;
  std::chrono::steady_clock::time_point start_, deadline_;
  ProcessResult result_;
};

// Start + Wait.
ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options);

}  // namespace gatehouse::testing
