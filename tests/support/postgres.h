// A throwaway PostgreSQL server for tests: one per test binary, started on
// first use in a temporary directory, on a Unix socket only
// (listen_addresses = ''), fsync off; a fresh database per test.
//
//   PostgresServer* pg = PostgresServer::Get();   // fails the test if it cannot start
//   std::string locator = pg->NewDatabase();       // postgresql:///t3?host=/tmp/...&user=gh
//
// PostgreSQL refuses to run as root (CI runs as root): then initdb and the
// server run as the `postgres` user through runuser. The server is stopped
// by its PID when the binary exits, and also when it dies (a watcher process
// holds a pipe to the test binary and stops the server and removes its
// directory when the pipe closes, however the binary ended). Nothing is
// skipped: a machine without PostgreSQL 15 fails every test that needs it
// (scripts/setup.sh installs postgresql-15).
#pragma once

#include <sys/types.h>

#include <string>

namespace gatehouse::testing {

class PostgresServer {
 public:
  // The binary's server, started on first call. Null (and a test failure
  // saying why) when it cannot be started.
  static PostgresServer* Get();

  // Creates an empty database and returns its locator. Empty (and a test
  // failure) when it cannot be created.
  std::string NewDatabase();
  // The locator of database `name` on this server.
  std::string Locator(const std::string& name) const;

  // Stops the server at once (pg_ctl stop -m immediate: every backend dies,
  // like a crash) / starts it again on the same directory and socket. For
  // tests of a lost server. False (and a test failure) on trouble.
  bool Crash();
  bool Start();

  pid_t pid() const { return pid_; }
  const std::string& socket_dir() const { return dir_; }

  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

 private:
  PostgresServer() = default;
  bool Init();
  void StartWatcher();

  std::string dir_;  // the socket directory; the cluster is in dir_/data
  pid_t pid_ = -1;   // the postmaster
  int watcher_fd_ = -1;
  int next_db_ = 0;
};

}  // namespace gatehouse::testing
