#include "support/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace gatehouse::testing {

std::string ProcessResult::CommandLine() const {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    const bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`") == std::string::npos;
    s += plain ? a : "'" + a + "'";
  }
  return s;
}

std::ostream& operator<<(std::ostream& os, const ProcessResult& r) {
  os << "\n$ " << r.CommandLine() << "\n";
  if (r.timed_out) os << "[timed out and killed]\n";
  if (r.term_signal != 0)
    os << "[killed by signal " << r.term_signal << "]\n";
  else
    os << "[exit " << r.exit_code << " after " << r.seconds << " s]\n";
  os << "--- stdout (" << r.out.size() << " bytes) ---\n" << r.out.substr(0, 4000);
  os << "--- stderr (" << r.err.size() << " bytes) ---\n" << r.err.substr(0, 4000);
  return os;
}

std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string v(*e);
    if (v.rfind("GATEHOUSE_", 0) == 0) continue;
    env.push_back(std::move(v));
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

namespace {

// Everything the child needs, prepared before fork: between fork and exec the
// child may only make async-signal-safe calls (no allocation).
struct ExecPlan {
  std::vector<char*> argv, envp;
};

[[noreturn]] void ChildExec(const ExecPlan& plan, int in_fd, int out_fd, int err_fd) {
  // dup2 clears close-on-exec on the target descriptors.
  if (::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) ::_exit(126);
  ::execve(plan.argv[0], plan.argv.data(), plan.envp.data());
  const char msg[] = "process runner: execve failed\n";
  ssize_t ignored = ::write(2, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(127);
}

}  // namespace

std::unique_ptr<Process> Process::Start(const std::vector<std::string>& argv,
                                        const ProcessOptions& options) {
  if (argv.empty()) {
    ADD_FAILURE() << "Process::Start: empty argv";
    return nullptr;
  }
  std::unique_ptr<Process> p(new Process());
  p->result_.argv = argv;

  std::vector<std::string> args = argv, env = options.env;
  ExecPlan plan;
  for (auto& a : args) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : env) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);

  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return nullptr;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    ::close(out[0]);
    ::close(out[1]);
    return nullptr;
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) {
    ADD_FAILURE() << "open /dev/null: " << std::strerror(errno);
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    return nullptr;
  }
  p->start_ = std::chrono::steady_clock::now();
  p->deadline_ = p->start_ + options.timeout;
  pid_t pid = ::fork();
  if (pid == 0) ChildExec(plan, devnull, out[1], err[1]);
  const int fork_errno = errno;
  ::close(devnull);
  ::close(out[1]);
  ::close(err[1]);
  if (pid < 0) {
    ::close(out[0]);
    ::close(err[0]);
    ADD_FAILURE() << "fork: " << std::strerror(fork_errno);
    return nullptr;
  }
  p->pid_ = pid;
  p->out_fd_ = out[0];
  p->err_fd_ = err[0];
  return p;
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void Process::Kill(int signal) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, signal);
}

bool Process::Running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    raw_status_ = status;
    result_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return false;
  }
  return true;
}

ProcessResult Process::Wait() {
  // Drain both pipes until the child closes them (or the deadline passes).
  struct pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  std::string* sinks[2] = {&result_.out, &result_.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline_ - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      if (result_.timed_out) break;  // killed 5 s ago and its pipes are still open
      result_.timed_out = true;
      if (!reaped_) ::kill(pid_, SIGKILL);
      deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      continue;
    }
    int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        (i == 0 ? out_fd_ : err_fd_) = -1;
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  if (!reaped_) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    raw_status_ = status;
    result_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  if (WIFEXITED(raw_status_)) {
    result_.exit_code = WEXITSTATUS(raw_status_);
  } else if (WIFSIGNALED(raw_status_)) {
    result_.exit_code = -1;
    result_.term_signal = WTERMSIG(raw_status_);
  }
  return result_;
}

ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options) {
  auto p = Process::Start(argv, options);
  if (!p) {
    ProcessResult r;
    r.argv = argv;
    return r;
  }
  return p->Wait();
}

}  // namespace gatehouse::testing
