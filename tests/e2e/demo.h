// Shared by the end-to-end tests: where the built binaries are, the README's
// demo store made with the real `gatehouse` CLI, and `gatehoused` started on
// port 0 with the port read back from its first line of stdout.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "support/process.h"

namespace gatehouse::testing {

inline const std::string kCli = std::string(GATEHOUSE_BINARY_DIR) + "/cli/gatehouse";
inline const std::string kSidecar = std::string(GATEHOUSE_BINARY_DIR) + "/sidecar/gatehoused";

// Runs `gatehouse ARGS...` to completion with `env` ("NAME=VALUE") added to
// ChildEnvironment().
inline ProcessResult RunCli(std::vector<std::string> args, const std::vector<std::string>& env) {
  args.insert(args.begin(), kCli);
  return RunProcess(args, {.env = ChildEnvironment(env)});
}

// The README's demo (scripts/demo.sh) as CLI commands, in order: organization
// Demo with owner@demo.test, alice@demo.test, the shared workspaces
// Marketing-Development and Marketing-Production, and the API users
// dev-exporter, prod-importer (contributors) and prod-viewer (viewer).
inline const std::vector<std::vector<std::string>>& DemoCommands() {
  static const std::vector<std::vector<std::string>> commands = {
      {"init", "--org", "Demo", "--owner", "owner@demo.test"},
      {"user", "add", "alice@demo.test", "--org-role", "contributor"},
      {"workspace", "create", "Marketing-Development", "--type", "shared"},
      {"workspace", "create", "Marketing-Production", "--type", "shared"},
      {"apiuser", "create", "dev-exporter", "--workspace", "Marketing-Development",
       "--workspace-role", "contributor"},
      {"apiuser", "create", "prod-importer", "--workspace", "Marketing-Production",
       "--workspace-role", "contributor"},
      {"apiuser", "create", "prod-viewer", "--workspace", "Marketing-Production",
       "--workspace-role", "viewer"}};
  return commands;
}

struct CliToken {
  std::string secret, id;
};

// What `gatehouse token create ... --json` printed; an empty token (and a
// test failure) when it failed.
inline CliToken CreatedToken(const ProcessResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.contains("token")) {
    ADD_FAILURE() << "token create --json printed: " << r.out;
    return {};
  }
  return {j["token"], j["id"]};
}

struct Sidecar {
  std::unique_ptr<Process> process;
  int port = 0;
};

// Starts gatehoused with `argv` (argv[0] is the binary; give it
// `--listen 127.0.0.1:0`) and waits until it prints where it listens. An
// empty Sidecar (and a test failure) when it does not within `timeout`.
inline Sidecar LaunchSidecar(const std::vector<std::string>& argv, const std::string& stderr_path,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  Sidecar s;
  s.process = Process::Start(argv, {.stderr_path = stderr_path});
  if (!s.process) return {};
  auto line = s.process->ReadLine(timeout);
  const std::string kListening = "listening on 127.0.0.1:";
  const size_t at = line ? line->find(kListening) : std::string::npos;
  if (at == std::string::npos) {
    ADD_FAILURE() << "gatehoused did not say where it listens: " << line.value_or("<nothing>");
    s.process->Stop(std::chrono::seconds(2));
    return {};
  }
  s.port = std::atoi(line->c_str() + at + kListening.size());
  return s;
}

}  // namespace gatehouse::testing
