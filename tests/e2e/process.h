// Child processes for end-to-end tests: start with fork/exec, read stdout,
// stop by PID. A Process that is still running when destroyed is killed
// (SIGKILL) and reaped, so a failing test never leaves one behind.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gatehouse::testing {

class Process {
 public:
  // Starts argv[0] (a path) with argv; `env` adds or replaces variables.
  // stdout is captured (ReadLine); stderr goes to `stderr_path` if given.
  static std::unique_ptr<Process> Start(
      const std::vector<std::string>& argv,
      const std::vector<std::pair<std::string, std::string>>& env = {},
      const std::string& stderr_path = "") {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return nullptr;
    const pid_t pid = ::fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      ::dup2(out[1], 1);
      if (!stderr_path.empty()) {
        int fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) ::dup2(fd, 2);
      }
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      // Signals blocked in the test's threads must not stay blocked here.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
      ::_exit(127);
    }
    ::close(out[1]);
    auto p = std::unique_ptr<Process>(new Process());
    p->pid_ = pid;
    p->out_ = out[0];
    return p;
  }

  ~Process() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      Wait(std::chrono::seconds(5));
    }
    if (out_ >= 0) ::close(out_);
  }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }

  // The next line of stdout, or nullopt on EOF / timeout.
  std::optional<std::string> ReadLine(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd pfd{out_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char tmp[4096];
      ssize_t n = ::read(out_, tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  // Everything left on stdout until EOF (use after the process ended).
  std::string ReadRest() {
    std::string out = std::move(buf_);
    buf_.clear();
    char tmp[4096];
    ssize_t n;
    while ((n = ::read(out_, tmp, sizeof tmp)) > 0) out.append(tmp, static_cast<size_t>(n));
    return out;
  }

  void Signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }

  // Waits for the process to end; its wait status, or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = st;
        return status_;
      }
      if (r < 0) {
        status_ = -1;
        return status_;
      }
      if (std::chrono::steady_clock::now() >= end) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // SIGTERM, then SIGKILL after `grace`. Returns the wait status.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10), int sig = SIGTERM) {
    Signal(sig);
    auto st = Wait(grace);
    if (!st) {
      ::kill(pid_, SIGKILL);
      st = Wait(std::chrono::seconds(5));
    }
    return st.value_or(-1);
  }

 private:
  Process() = default;
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
  std::optional<int> status_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion (stdout captured; stderr to a temp file).
inline RunResult RunCommand(const std::vector<std::string>& argv,
                            const std::vector<std::pair<std::string, std::string>>& env,
                            const std::string& scratch_dir) {
  const std::string err_path = scratch_dir + "/run-stderr.txt";
  ::unlink(err_path.c_str());
  auto p = Process::Start(argv, env, err_path);
  RunResult r;
  if (!p) return r;
  auto st = p->Wait(std::chrono::seconds(60));
  r.out = p->ReadRest();
  if (st && WIFEXITED(*st)) r.exit_code = WEXITSTATUS(*st);
  FILE* f = std::fopen(err_path.c_str(), "r");
  if (f != nullptr) {
    char tmp[4096];
    size_t n;
    while ((n = std::fread(tmp, 1, sizeof tmp, f)) > 0) r.err.append(tmp, n);
    std::fclose(f);
  }
  return r;
}

}  // namespace gatehouse::testing
