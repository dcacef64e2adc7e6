#include "support/postgres.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"

namespace gatehouse::testing {
namespace {

constexpr char kBin[] = "/usr/lib/postgresql/15/bin";
constexpr char kUser[] = "gh";

// The command prefix that runs a server program as an unprivileged user.
std::vector<std::string> AsServerUser() {
  if (::geteuid() != 0) return {};
  return {"/usr/sbin/runuser", "-u", "postgres", "--"};
}

std::vector<std::string> Cmd(std::vector<std::string> args) {
  std::vector<std::string> argv = AsServerUser();
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// The postmaster's PID from its pid file (first line); -1 when unreadable.
// Async-signal-safe (the watcher calls it after fork).
pid_t ReadPidFile(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[32];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return -1;
  pid_t pid = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid = pid * 10 + (buf[i] - '0');
  return pid > 0 ? pid : -1;
}

// Waits (bounded) until `pid` is gone. Async-signal-safe.
bool WaitGone(pid_t pid, int tenths) {
  for (int i = 0; i < tenths; ++i) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    timespec ts{0, 100'000'000};
    ::nanosleep(&ts, nullptr);
  }
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

std::unique_ptr<PostgresServer>& Instance() {
  static std::unique_ptr<PostgresServer> server;
  return server;
}

}  // namespace

PostgresServer* PostgresServer::Get() {
  static bool tried = false;
  if (!tried) {
    tried = true;
    std::unique_ptr<PostgresServer> s(new PostgresServer());
    if (s->Init()) Instance() = std::move(s);
  }
  if (Instance() == nullptr) {
    ADD_FAILURE() << "the test PostgreSQL server is not running (see the first failure)";
  }
  return Instance().get();
}

bool PostgresServer::Init() {
  if (::access((std::string(kBin) + "/initdb").c_str(), X_OK) != 0) {
    ADD_FAILURE() << "PostgreSQL 15 is not installed (" << kBin
                  << "/initdb missing); scripts/setup.sh installs postgresql-15";
    return false;
  }
  // A short path: a Unix socket's path must fit in 107 bytes.
  char tmpl[] = "/tmp/gh-pg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    return false;
  }
  dir_ = tmpl;
  if (::geteuid() == 0) {
    passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr || ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      ADD_FAILURE() << "cannot give " << dir_ << " to the postgres user (is postgresql-15 installed?)";
      return false;
    }
  }
  ::chmod(dir_.c_str(), 0700);
  StartWatcher();
  ProcessResult init = RunProcess(
      Cmd({std::string(kBin) + "/initdb", "-D", dir_ + "/data", "-U", kUser, "--auth=trust", "-E",
           "UTF8", "--locale=C.UTF-8", "--no-instructions", "--no-sync"}),
      {.timeout = std::chrono::seconds(60)});
  if (init.exit_code != 0) {
    ADD_FAILURE() << "initdb failed: " << init;
    return false;
  }
  return Start();
}

void PostgresServer::StartWatcher() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;
  const std::string pid_file = dir_ + "/data/postmaster.pid";
  const std::string dir = dir_;
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return;
  }
  if (child == 0) {
    // The watcher: its own session (a signal to the test's process group
    // does not reach it); waits for the test binary's end, however it came.
    ::setsid();
    ::close(fds[1]);
    char c;
    while (::read(fds[0], &c, 1) != 0) {
      if (errno != EINTR) break;
    }
    const pid_t pid = ReadPidFile(pid_file.c_str());
    if (pid > 0) {
      ::kill(pid, SIGQUIT);  // immediate shutdown
      if (!WaitGone(pid, 100)) ::kill(pid, SIGKILL);
      WaitGone(pid, 50);
    }
    const char* argv[] = {"/bin/rm", "-rf", dir.c_str(), nullptr};
    ::execv(argv[0], const_cast<char* const*>(argv));
    ::_exit(1);
  }
  ::close(fds[0]);
  watcher_fd_ = fds[1];
}

bool PostgresServer::Start() {
  ProcessResult start = RunProcess(
      Cmd({std::string(kBin) + "/pg_ctl", "-D", dir_ + "/data", "-l", dir_ + "/log", "-w", "-t", "30",
           "-o",
           "-k " + dir_ +
               // synchronous_commit stays on: with fsync off it costs a
               // write(), and a commit then survives Crash() (a process kill).
               " -c listen_addresses='' -c fsync=off"
               " -c full_page_writes=off -c max_connections=200",
           "start"}),
      {.timeout = std::chrono::seconds(60)});
  if (start.exit_code != 0) {
    std::ifstream log(dir_ + "/log");
    std::string text((std::istreambuf_iterator<char>(log)), {});
    ADD_FAILURE() << "pg_ctl start failed: " << start << "\nserver log:\n" << text;
    return false;
  }
  pid_ = ReadPidFile((dir_ + "/data/postmaster.pid").c_str());
  if (pid_ <= 0) {
    ADD_FAILURE() << "no postmaster.pid in " << dir_ << "/data";
    return false;
  }
  return true;
}

bool PostgresServer::Crash() {
  if (pid_ <= 0) return false;
  const pid_t pid = pid_;
  ::kill(pid, SIGQUIT);  // what pg_ctl stop -m immediate sends
  pid_ = -1;
  if (!WaitGone(pid, 100)) {
    ADD_FAILURE() << "the PostgreSQL server (pid " << pid << ") did not stop";
    return false;
  }
  return true;
}

PostgresServer::~PostgresServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGQUIT);
    if (!WaitGone(pid_, 100)) ::kill(pid_, SIGKILL);
  }
  // The watcher removes the directory when the pipe closes.
  if (watcher_fd_ >= 0) ::close(watcher_fd_);
}

std::string PostgresServer::Locator(const std::string& name) const {
  return "postgresql:///" + name + "?host=" + dir_ + "&user=" + kUser;
}

std::string PostgresServer::NewDatabase() {
  const std::string name = "t" + std::to_string(++next_db_);
  ProcessResult r = RunProcess({std::string(kBin) + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                                dir_, "-U", kUser, "-d", "postgres", "-c",
                                "CREATE DATABASE " + name},
                               {.timeout = std::chrono::seconds(60)});
  if (r.exit_code != 0) {
    ADD_FAILURE() << "cannot create database " << name << ": " << r;
    return "";
  }
  return Locator(name);
}

}  // namespace gatehouse::testing
