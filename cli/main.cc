// gatehouse: the admin CLI. Parses options with Boost.Program_options (the only
// place it is used) and dispatches to thin command handlers.
#include <boost/program_options.hpp>

#include <cstdlib>
#include <iostream>
#include <map>
#include <set>

#include "cli.h"
#include "docs.h"
#include "gatehouse/policy.h"
#include "gatehouse/store.h"
#include "gatehouse/text.h"
#include "gatehouse/version.h"

namespace po = boost::program_options;

namespace gatehouse::cli {
namespace {

const std::set<std::string> kGlobal = {"store", "policy", "invariants", "as", "org", "json", "help", "version"};

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The contract's one line on stderr: "gatehouse: MESSAGE", or under --json
// {"error": "MESSAGE", "exit": CODE}. Returns `code`.
int Report(std::ostream& err, bool json, int code, std::string message) {
  for (char& c : message)
    if (c == '\n') c = ' ';  // newlines inside a message would split it
  if (json) {
    const nlohmann::json j = {{"error", message}, {"exit", code}};
    err << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    // Nothing in it may drive the terminal (a name from an older store, a
    // path, a value): --json stays exact, text is escaped.
    err << "gatehouse: " << EscapeText(message) << "\n";
  }
  return code;
}

int Run(int argc, char** argv) {
  // Known before the options parse, so a usage error is JSON too.
  bool json_errors = false;
  for (int i = 1; i < argc; ++i) json_errors = json_errors || std::string(argv[i]) == "--json";
  std::vector<Command> commands;
  RegisterPolicyCommands(&commands);
  RegisterAdminCommands(&commands);
  RegisterStoreCommands(&commands);

  // Build-time only (cli/CMakeLists.txt): the man page and the completion,
  // from the same tables as --help.
  if (argc == 2 && std::string(argv[1]) == "--print-man-page") {
    PrintManPage(std::cout, commands);
    return kOk;
  }
  if (argc == 2 && std::string(argv[1]) == "--print-bash-completion") {
    PrintBashCompletion(std::cout, commands);
    return kOk;
  }

  po::options_description desc;
  desc.add_options()("store", po::value<std::string>())("policy", po::value<std::string>())(
      "as", po::value<std::string>())("org", po::value<std::string>())("json", "")("help,h", "")("version", "")(
      "invariants", po::value<std::vector<std::string>>()->composing());
  for (const auto& spec : kCommandOptions) {
    if (spec.value) {
      desc.add_options()(spec.name, po::value<std::string>());
    } else {
      desc.add_options()(spec.name, "");
    }
  }
  desc.add_options()("words", po::value<std::vector<std::string>>());
  po::positional_options_description pos;
  pos.add("words", -1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return Report(std::cerr, json_errors, kUsage, std::string(e.what()) + " (see gatehouse --help)");
  }
  std::vector<std::string> words;
  if (vm.count("words")) words = vm["words"].as<std::vector<std::string>>();

  // The longest command whose words prefix the positionals.
  const Command* cmd = nullptr;
  for (const auto& c : commands) {
    if (c.words.size() <= words.size() && std::equal(c.words.begin(), c.words.end(), words.begin()) &&
        (!cmd || c.words.size() > cmd->words.size()))
      cmd = &c;
  }
  if (vm.count("version") && !vm.count("help")) {
    std::cout << VersionLine("gatehouse") << "\n";
    return kOk;
  }
  if (vm.count("help") || words.empty()) {
    std::vector<std::string> prefix = cmd ? cmd->words : words;
    PrintHelp(std::cout, commands, prefix);
    if (vm.count("help")) return kOk;
    // A usage error like any other: one line on stderr (CONTRACT.md).
    return Report(std::cerr, json_errors, kUsage, "no command given (see gatehouse --help)");
  }
  if (!cmd) {
    std::string w;
    for (const auto& x : words) w += (w.empty() ? "" : " ") + x;
    return Report(std::cerr, json_errors, kUsage, "unknown command '" + w + "' (see gatehouse --help)");
  }
  std::vector<std::string> args(words.begin() + static_cast<long>(cmd->words.size()), words.end());
  std::string name;
  for (const auto& x : cmd->words) name += (name.empty() ? "" : " ") + x;
  for (const auto& [key, value] : vm) {
    if (key == "words" || kGlobal.count(key) || value.defaulted()) continue;
    if (std::find(cmd->options.begin(), cmd->options.end(), key) == cmd->options.end()) {
      return Report(std::cerr, json_errors, kUsage,
                    "'" + name + "' takes no option --" + key + " (usage: " + Usage(*cmd) + ")");
    }
  }
  if (args.size() < cmd->min_args || args.size() > cmd->max_args) {
    return Report(std::cerr, json_errors, kUsage,
                  "'" + name + "' " +
                      (args.size() < cmd->min_args ? "is missing arguments" : "got too many arguments") +
                      " (usage: " + Usage(*cmd) + ")");
  }

  for (const char* key : {"store", "policy", "as", "org"}) {
    if (vm.count(key) && vm[key].as<std::string>().empty()) {
      return Report(std::cerr, json_errors, kUsage, std::string("--") + key + " must not be empty");
    }
  }
  Invocation inv;
  inv.args = std::move(args);
  inv.json = vm.count("json") > 0;
  inv.store = vm.count("store") ? vm["store"].as<std::string>() : Env("GATEHOUSE_STORE", "./gatehouse.db");
  // A password on the command line shows in `ps`; in GATEHOUSE_STORE, a
  // password file or PGPASSWORD it does not.
  for (const char* key : {"store", "from", "to"}) {
    if (!vm.count(key)) continue;
    Status pw = CheckCommandLineLocator(vm[key].as<std::string>());
    if (!pw.ok()) {
      std::string message = pw.message();
      if (std::string(key) != "store") {
        message = std::string("a password inside --") + key +
                  " would show in `ps`; put it in a password file (PGPASSFILE) or PGPASSWORD";
      }
      return Report(std::cerr, json_errors, kUsage, message);
    }
  }
  inv.policy = vm.count("policy") ? vm["policy"].as<std::string>() : DefaultPolicyPath();
  if (vm.count("invariants")) inv.invariants = vm["invariants"].as<std::vector<std::string>>();
  for (const std::string& i : inv.invariants) {
    if (i.empty()) {
      std::cerr << "gatehouse: --invariants must not be empty\n";
      return kUsage;
    }
  }
  inv.as = vm.count("as") ? vm["as"].as<std::string>() : Env("GATEHOUSE_AS", "");
  inv.org = vm.count("org") ? vm["org"].as<std::string>() : "";
  // The acting identity reaches the audit log even when unknown, so it obeys
  // the rule for names (gatehouse/text.h) wherever it came from.
  for (const auto& [what, value] : {std::pair<const char*, const std::string*>{"--as (or GATEHOUSE_AS)", &inv.as},
                                    {"--org", &inv.org}}) {
    if (value->empty()) continue;
    if (auto why = UnsafeTextReason(*value)) {
      std::cerr << "gatehouse: " << what << " must not contain " << *why << "\n";
      return kUsage;
    }
  }
  inv.opt = [&vm](const std::string& key) -> std::optional<std::string> {
    if (!vm.count(key)) return std::nullopt;
    const auto& v = vm[key].value();
    if (const auto* s = boost::any_cast<std::string>(&v)) return *s;
    return std::string();
  };
  inv.out = &std::cout;
  inv.err = &std::cerr;
  try {
    return cmd->run(inv);
  } catch (const std::exception& e) {
    return Report(std::cerr, json_errors, kRuntime, e.what());
  }
}

}  // namespace

int ExitFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return kOk;
    case StatusCode::kInvalidArgument: return kUsage;
    case StatusCode::kNotFound: return kNotFound;
    case StatusCode::kAlreadyExists: return kConflict;
    case StatusCode::kPermissionDenied: return kDenied;
    default: return kRuntime;
  }
}

int Fail(Invocation& inv, const Status& status) { return Fail(inv, ExitFor(status), status.message()); }

int Fail(Invocation& inv, int code, const std::string& message) {
  return Report(*inv.err, inv.json, code, message);
}

// Text from the store is printed exactly; only bytes that cannot be JSON (a
// row with invalid UTF-8, written by an older version) become U+FFFD rather
// than failing the whole command.
void PrintJson(Invocation& inv, const nlohmann::json& j) {
  *inv.out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace gatehouse::cli

int main(int argc, char** argv) { return gatehouse::cli::Run(argc, argv); }
