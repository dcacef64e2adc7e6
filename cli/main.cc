// gatehouse: the admin CLI. Parses options with Boost.Program_options (the only
// place it is used) and dispatches to thin command handlers.
#include <boost/program_options.hpp>

#include <cstdlib>
#include <iostream>
#include <map>
#include <set>

#include "cli.h"
#include "gatehouse/policy.h"
#include "gatehouse/version.h"

namespace po = boost::program_options;

namespace gatehouse::cli {
namespace {

struct OptionSpec {
  const char* name;
  bool takes_value;
  const char* help;
};

// Every option any command takes; each command lists the ones it accepts.
constexpr OptionSpec kOptions[] = {
    {"owner", true, "the owner's email (init), or the workspace owner (workspace create)"},
    {"org-role", true, "organization role: owner|admin|contributor|viewer (as the policy declares)"},
    {"type", true, "workspace type: shared|personal|organization (as the policy declares)"},
    {"workspace", true, "workspace name"},
    {"role", true, "workspace role: admin|contributor|viewer"},
    {"workspace-role", true, "workspace role of the API user"},
    {"apiuser", true, "API user name"},
    {"name", true, "token name"},
    {"expires-in", true, "token lifetime: a positive integer and s, m, h, d or w (90s, 30d)"},
    {"action", true, "action name, e.g. project.import"},
    {"token", true, "a token (gat_...), or - to read it from stdin (env GATEHOUSE_TOKEN)"},
    {"user", true, "a user's email"},
    {"limit", true, "how many records at most (default 50)"},
    {"rules", false, "also show changes of the deciding rule"},
};

const std::set<std::string> kGlobal = {"store", "policy", "as", "org", "json", "help", "version"};

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string Usage(const Command& c) {
  std::string s = "gatehouse";
  for (const auto& w : c.words) s += " " + w;
  if (!c.args_usage.empty()) s += " " + c.args_usage;
  for (const auto& o : c.options) {
    for (const auto& spec : kOptions) {
      if (o == spec.name) s += std::string(" [--") + spec.name + (spec.takes_value ? " VALUE]" : "]");
    }
  }
  return s;
}

void PrintHelp(std::ostream& out, const std::vector<Command>& commands, const std::vector<std::string>& prefix) {
  std::vector<const Command*> matching;
  for (const auto& c : commands) {
    if (c.words.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), c.words.begin()))
      matching.push_back(&c);
  }
  if (matching.size() == 1 && matching[0]->words == prefix) {
    const Command& c = *matching[0];
    out << "usage: " << Usage(c) << "\n\n" << c.summary << "\n";
    if (!c.options.empty()) out << "\noptions:\n";
    for (const auto& o : c.options)
      for (const auto& spec : kOptions)
        if (o == spec.name) out << "  --" << spec.name << (spec.takes_value ? " VALUE" : "") << "\n      " << spec.help << "\n";
  } else {
    out << "usage: gatehouse [global options] COMMAND [ARGS] [options]\n\ncommands:\n";
    for (const Command* c : matching) {
      std::string u = Usage(*c);
      out << "  " << u << "\n      " << c->summary << "\n";
    }
  }
  out << "\nglobal options (before or after the command words):\n"
         "  --store PATH    the store (env GATEHOUSE_STORE, default ./gatehouse.db)\n"
         "  --policy PATH   a policy file or folder (env GATEHOUSE_POLICY, default: the installed policies/)\n"
         "  --as EMAIL      the acting identity (env GATEHOUSE_AS)\n"
         "  --org NAME      the organization (may be left out while the store holds one)\n"
         "  --json          machine-readable output\n"
         "  --help          this help\n"
         "  --version       print the version and the git revision it was built from\n"
         "\nexit status: 0 ok/allow, 1 runtime error, 2 usage error, 3 denied, 4 not found, 5 conflict\n";
}

int Run(int argc, char** argv) {
  std::vector<Command> commands;
  RegisterPolicyCommands(&commands);
  RegisterAdminCommands(&commands);

  po::options_description desc;
  desc.add_options()("store", po::value<std::string>())("policy", po::value<std::string>())(
      "as", po::value<std::string>())("org", po::value<std::string>())("json", "")("help,h", "")("version", "");
  for (const auto& spec : kOptions) {
    if (spec.takes_value) {
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
    std::cerr << "gatehouse: " << e.what() << " (see gatehouse --help)\n";
    return kUsage;
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
    std::cerr << "gatehouse: no command given (see gatehouse --help)\n";
    return kUsage;
  }
  if (!cmd) {
    std::string w;
    for (const auto& x : words) w += (w.empty() ? "" : " ") + x;
    std::cerr << "gatehouse: unknown command '" << w << "' (see gatehouse --help)\n";
    return kUsage;
  }
  std::vector<std::string> args(words.begin() + static_cast<long>(cmd->words.size()), words.end());
  std::string name;
  for (const auto& x : cmd->words) name += (name.empty() ? "" : " ") + x;
  for (const auto& [key, value] : vm) {
    if (key == "words" || kGlobal.count(key) || value.defaulted()) continue;
    if (std::find(cmd->options.begin(), cmd->options.end(), key) == cmd->options.end()) {
      std::cerr << "gatehouse: '" << name << "' takes no option --" << key << " (usage: " << Usage(*cmd) << ")\n";
      return kUsage;
    }
  }
  if (args.size() < cmd->min_args || args.size() > cmd->max_args) {
    std::cerr << "gatehouse: '" << name << "' " << (args.size() < cmd->min_args ? "is missing arguments" : "got too many arguments")
              << " (usage: " << Usage(*cmd) << ")\n";
    return kUsage;
  }

  for (const char* key : {"store", "policy", "as", "org"}) {
    if (vm.count(key) && vm[key].as<std::string>().empty()) {
      std::cerr << "gatehouse: --" << key << " must not be empty\n";
      return kUsage;
    }
  }
  Invocation inv;
  inv.args = std::move(args);
  inv.json = vm.count("json") > 0;
  inv.store = vm.count("store") ? vm["store"].as<std::string>() : Env("GATEHOUSE_STORE", "./gatehouse.db");
  inv.policy = vm.count("policy") ? vm["policy"].as<std::string>() : DefaultPolicyPath();
  inv.as = vm.count("as") ? vm["as"].as<std::string>() : Env("GATEHOUSE_AS", "");
  inv.org = vm.count("org") ? vm["org"].as<std::string>() : "";
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
    std::cerr << "gatehouse: " << e.what() << "\n";
    return kRuntime;
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
  // One line: newlines inside a message would split it.
  std::string line = message;
  for (char& c : line)
    if (c == '\n') c = ' ';
  *inv.err << "gatehouse: " << line << "\n";
  return code;
}

void PrintJson(Invocation& inv, const nlohmann::json& j) { *inv.out << j.dump(2) << "\n"; }

}  // namespace gatehouse::cli

int main(int argc, char** argv) { return gatehouse::cli::Run(argc, argv); }
