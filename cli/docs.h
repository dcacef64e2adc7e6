// What the CLI tells about itself: the option, environment and exit-status
// tables, and the three renderings of them: --help, the man page gatehouse(1)
// and the bash completion script. The man page and the completion are made
// at build time by running the built binary (cli/CMakeLists.txt), so they are
// the --help text's tables and cannot drift from it.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "cli.h"

namespace gatehouse::cli {

struct OptionSpec {
  const char* name;
  const char* value;  // the value's placeholder ("PATH"), nullptr for a switch
  const char* help;
};

// Every command option; each command lists the ones it accepts (Command::options).
extern const std::vector<OptionSpec> kCommandOptions;
// The global options, taken before or after the command words.
extern const std::vector<OptionSpec> kGlobalOptions;

struct EnvSpec {
  const char* name;
  const char* help;
};
extern const std::vector<EnvSpec> kEnvironment;

struct ExitSpec {
  int code;
  const char* meaning;
};
extern const std::vector<ExitSpec> kExitStatuses;

// The environment variables `command` reads.
std::vector<const EnvSpec*> EnvironmentOf(const Command& command);

// "gatehouse token create [--apiuser VALUE] ...".
std::string Usage(const Command& command);

// --help: one command's help when `prefix` names exactly one, else the list
// of the commands `prefix` starts.
void PrintHelp(std::ostream& out, const std::vector<Command>& commands,
               const std::vector<std::string>& prefix);
// gatehouse(1) in man(7) roff.
void PrintManPage(std::ostream& out, const std::vector<Command>& commands);
// A bash completion script for `gatehouse` (complete -F _gatehouse gatehouse).
void PrintBashCompletion(std::ostream& out, const std::vector<Command>& commands);

}  // namespace gatehouse::cli
