// The gatehouse CLI: a registry of thin commands over the engine library.
#pragma once

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gatehouse/status.h"

namespace gatehouse::cli {

// Exit statuses fixed by CONTRACT.md.
enum Exit : int {
  kOk = 0,
  kRuntime = 1,
  kUsage = 2,
  kDenied = 3,
  kNotFound = 4,
  kConflict = 5,
  kTestsFailed = 6,  // policy test: the policy loads, a test of it failed
};

// What a command receives: the parsed options and its positional arguments.
struct Invocation {
  std::vector<std::string> args;
  bool json = false;
  std::string store;   // --store / GATEHOUSE_STORE / ./gatehouse.db
  std::string policy;  // --policy / GATEHOUSE_POLICY / the default policy
  // --invariants PATH (repeatable): checked whenever a policy loads, besides
  // the policy folder's own invariants/.
  std::vector<std::string> invariants;
  std::string as;      // --as / GATEHOUSE_AS
  std::string org;     // --org
  // Command options by name, as given ("" for switches); absent when not given.
  std::function<std::optional<std::string>(const std::string&)> opt;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
};

struct Command {
  std::vector<std::string> words;  // e.g. {"token", "create"}
  std::string args_usage;          // e.g. "TOKEN_ID"
  std::string summary;
  std::vector<std::string> options;  // the command's own option names (see kOptions in main.cc)
  size_t min_args = 0, max_args = 0;
  std::function<int(Invocation&)> run;
};

void RegisterPolicyCommands(std::vector<Command>* commands);
void RegisterAdminCommands(std::vector<Command>* commands);
void RegisterStoreCommands(std::vector<Command>* commands);

// Prints one line "gatehouse: MESSAGE" to stderr and returns the exit status
// for `status`'s code.
int Fail(Invocation& inv, const Status& status);
int Fail(Invocation& inv, int code, const std::string& message);
int ExitFor(const Status& status);

// Prints JSON (indented) to the command's output.
void PrintJson(Invocation& inv, const nlohmann::json& j);

}  // namespace gatehouse::cli
