#include "support/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

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
  if (!r.stderr_path.empty())
    os << "--- stderr: in " << r.stderr_path << " ---\n";
  else
    os << "--- stderr (" << r.err.size() << " bytes) ---\n" << r.err.substr(0, 4000);
  return os;
}

std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra) {
  auto name_of = [](const std::string& v) { return v.substr(0, v.find('=')); };
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string v(*e);
    if (v.rfind("GATEHOUSE_", 0) == 0) continue;
    // getenv() finds the first of two same-named entries, so drop the
    // inherited one to let `extra` win.
    if (std::any_of(extra.begin(), extra.end(),
                    [&](const std::string& x) { return name_of(x) == name_of(v); }))
      continue;
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
  // The signal mask survives exec: what the test's threads block must not
  // stay blocked in the child.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(plan.argv[0], plan.argv.data(), plan.envp.data());
  const char msg[] = "process runner: execve failed\n";
  ssize_t ignored = ::write(2, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(127);
}

void CloseAll(std::initializer_list<int> fds) {
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
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
  p->result_.stderr_path = options.stderr_path;

  std::vector<std::string> args = argv, env = options.env;
  ExecPlan plan;
  for (auto& a : args) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : env) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);

  // Descriptors for the child: stdin, stdout's pipe, stderr's pipe or file.
  int in = -1, out[2] = {-1, -1}, err[2] = {-1, -1};
  auto fail = [&](const std::string& what) {
    const int error = errno;
    ADD_FAILURE() << what << ": " << std::strerror(error);
    CloseAll({in, out[0], out[1], err[0], err[1]});
    return nullptr;
  };
  in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0) return fail("open /dev/null");
  if (::pipe2(out, O_CLOEXEC) != 0) return fail("pipe2");
  if (options.stderr_path.empty()) {
    if (::pipe2(err, O_CLOEXEC) != 0) return fail("pipe2");
  } else {
    err[1] = ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (err[1] < 0) return fail("open " + options.stderr_path);
  }
  p->start_ = Clock::now();
  p->deadline_ = p->start_ + options.timeout;
  const pid_t pid = ::fork();
  if (pid == 0) ChildExec(plan, in, out[1], err[1]);
  if (pid < 0) return fail("fork");
  CloseAll({in, out[1], err[1]});
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
  CloseAll({out_fd_, err_fd_});
}

void Process::Kill(int signal) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, signal);
}

void Process::Reaped(int status) {
  reaped_ = true;
  raw_status_ = status;
  result_.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
}

bool Process::Running() {
  if (reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    Reaped(status);
    return false;
  }
  return true;
}

// Appends what `fd` has ready (poll said so: this does not block) to `sink`;
// closes `fd` at its end.
void Process::ReadFrom(int& fd, std::string& sink) {
  char buf[65536];
  const ssize_t got = ::read(fd, buf, sizeof buf);
  if (got > 0) {
    sink.append(buf, static_cast<size_t>(got));
  } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
    ::close(fd);
    fd = -1;
  }
}

std::optional<std::string> Process::ReadLine(std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (true) {
    const size_t nl = result_.out.find('\n', next_line_);
    if (nl != std::string::npos) {
      std::string line = result_.out.substr(next_line_, nl - next_line_);
      next_line_ = nl + 1;
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (out_fd_ < 0 || left.count() <= 0) return std::nullopt;
    pollfd pfd{out_fd_, POLLIN, 0};
    const int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) {
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      return std::nullopt;
    }
    if (n > 0) ReadFrom(out_fd_, result_.out);
  }
}

ProcessResult Process::Wait() { return WaitUntil(deadline_); }

ProcessResult Process::Wait(std::chrono::milliseconds timeout) {
  return WaitUntil(Clock::now() + timeout);
}

ProcessResult Process::Stop(std::chrono::milliseconds grace, int signal) {
  Kill(signal);
  return Wait(grace);
}

ProcessResult Process::WaitUntil(Clock::time_point deadline) {
  if (collected_) return result_;
  // Drain the pipes until the child closes them and has exited (or the
  // deadline passes): reading while waiting is what keeps a child that
  // writes more than a pipe holds from blocking.
  bool killed = false;
  while (true) {
    pollfd fds[2];
    int* open_fds[2];
    std::string* sinks[2];
    nfds_t n = 0;
    for (auto [fd, sink] : {std::pair{&out_fd_, &result_.out}, std::pair{&err_fd_, &result_.err}}) {
      if (*fd < 0) continue;
      fds[n] = {*fd, POLLIN, 0};
      open_fds[n] = fd;
      sinks[n++] = sink;
    }
    if (n == 0 && !Running()) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      if (killed) break;  // killed 5 s ago and its pipes are still open
      killed = result_.timed_out = true;
      Kill(SIGKILL);
      deadline = Clock::now() + std::chrono::seconds(5);
      continue;
    }
    if (n == 0) {
      // Its pipes are closed but it is not a zombie yet (or it closed them
      // itself): look again soon.
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(1)));
      continue;
    }
    const int ready = ::poll(fds, n, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      break;
    }
    for (nfds_t i = 0; i < n; ++i)
      if (fds[i].revents != 0) ReadFrom(*open_fds[i], *sinks[i]);
  }
  if (!reaped_) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    Reaped(status);
  }
  if (WIFEXITED(raw_status_)) {
    result_.exit_code = WEXITSTATUS(raw_status_);
  } else if (WIFSIGNALED(raw_status_)) {
    result_.exit_code = -1;
    result_.term_signal = WTERMSIG(raw_status_);
  }
  collected_ = true;
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
