#include "docs.h"

#include <algorithm>
#include <map>
#include <ostream>
#include <set>

#include "gatehouse/text.h"
#include "gatehouse/version.h"

namespace gatehouse::cli {

const std::vector<OptionSpec> kCommandOptions = {
    {"owner", "EMAIL", "the owner's email (init), or the workspace owner (workspace create)"},
    {"org-role", "ROLE", "organization role: owner|admin|contributor|viewer (as the policy declares)"},
    {"type", "TYPE", "workspace type: shared|personal|organization (as the policy declares)"},
    {"workspace", "NAME", "workspace name"},
    {"role", "ROLE", "workspace role: admin|contributor|viewer"},
    {"workspace-role", "ROLE", "workspace role of the API user"},
    {"apiuser", "NAME", "API user name"},
    {"name", "NAME", "token name"},
    {"expires-in", "DURATION", "token lifetime: a positive integer and s, m, h, d or w (90s, 30d)"},
    {"action", "ACTION", "action name, e.g. project.import"},
    {"token", "TOKEN", "a token (gat_...), or - to read it from stdin (env GATEHOUSE_TOKEN)"},
    {"user", "EMAIL", "a user's email"},
    {"limit", "N", "how many records at most (default 50)"},
    {"rules", nullptr, "also show changes of the deciding rule"},
    {"decision-log", "FILE", "a gatehoused decision log (JSON lines) to replay"},
    {"html", "FILE", "also write a self-contained HTML review page to FILE (no network, no external files)"},
    {"coverage", nullptr, "also report the rules no test decided and the cells no test reaches"},
    {"min-coverage", "PCT", "fail (exit 1) when rule or cell coverage is below PCT (0-100); implies --coverage"},
    {"force", nullptr, "replace an existing file (store backup)"},
    {"from", "STORE", "the store to copy from: a SQLite path or postgresql://... (store copy; default: --store)"},
    {"to", "STORE", "the PostgreSQL store to copy into, postgresql://... (store copy)"},
};

const std::vector<OptionSpec> kGlobalOptions = {
    {"store", "STORE",
     "the store: a SQLite path, or postgresql://... (no password in it: PGPASSFILE or PGPASSWORD) (env GATEHOUSE_STORE, default ./gatehouse.db)"},
    {"policy", "PATH", "a policy file or folder (env GATEHOUSE_POLICY, default: the installed policies/)"},
    {"invariants", "PATH",
     "an invariant file or folder checked on every policy load (repeatable; besides the policy folder's invariants/)"},
    {"as", "EMAIL", "the acting identity (env GATEHOUSE_AS)"},
    {"org", "NAME", "the organization (may be left out while the store holds one)"},
    {"json", nullptr, "machine-readable output; errors too, as {\"error\": ..., \"exit\": N} on stderr"},
    {"help", nullptr, "this help"},
    {"version", nullptr, "print the version and the git revision it was built from"},
};

const std::vector<EnvSpec> kEnvironment = {
    {"GATEHOUSE_STORE", "the store (a SQLite path or postgresql://...), when --store is not given (default ./gatehouse.db)"},
    {"GATEHOUSE_POLICY", "the policy file or folder, when --policy is not given"},
    {"GATEHOUSE_AS", "the acting identity, when --as is not given"},
    {"GATEHOUSE_TOKEN", "the token, when neither --token nor a TOKEN argument is given"},
};

const std::vector<ExitSpec> kExitStatuses = {
    {kOk, "success, or allow"},
    {kRuntime, "runtime error: the store, I/O, a policy that fails to load (policy diff: the policies differ)"},
    {kUsage, "usage error"},
    {kDenied, "denied by the policy (token verify: the token is inactive)"},
    {kNotFound, "not found"},
    {kConflict, "conflict (it exists already)"},
    {kTestsFailed, "policy test: the policy loaded, and at least one of its tests failed"},
};

std::vector<const EnvSpec*> EnvironmentOf(const Command& c) {
  std::set<std::string> names;
  if (c.words[0] == "policy") {
    names = {"GATEHOUSE_POLICY"};
  } else {
    names = {"GATEHOUSE_STORE", "GATEHOUSE_POLICY", "GATEHOUSE_AS"};
    const bool token = std::find(c.options.begin(), c.options.end(), "token") != c.options.end();
    if (token || c.words == std::vector<std::string>{"token", "verify"}) names.insert("GATEHOUSE_TOKEN");
  }
  std::vector<const EnvSpec*> out;
  for (const auto& e : kEnvironment)
    if (names.count(e.name)) out.push_back(&e);
  return out;
}

namespace {

const OptionSpec* FindOption(const std::string& name) {
  for (const auto& spec : kCommandOptions)
    if (name == spec.name) return &spec;
  return nullptr;
}

std::string Words(const Command& c) {
  std::string s;
  for (const auto& w : c.words) s += (s.empty() ? "" : " ") + w;
  return s;
}

void OptionHelp(std::ostream& out, const OptionSpec& spec) {
  std::string head = std::string("  --") + spec.name + (spec.value ? std::string(" ") + spec.value : "");
  if (head.size() < 18) {
    out << head << std::string(18 - head.size(), ' ') << spec.help << "\n";
  } else {
    out << head << "\n" << std::string(18, ' ') << spec.help << "\n";
  }
}

void EnvHelp(std::ostream& out, const EnvSpec& e) {
  const std::string name = e.name;
  out << "  " << name << std::string(name.size() < 18 ? 18 - name.size() : 1, ' ') << e.help << "\n";
}

void ManOption(std::ostream& out, const OptionSpec& spec) {
  if (spec.value) {
    out << ".TP\n.BI \"\\-\\-" << EscapeRoff(spec.name) << " \" " << spec.value << "\n";
  } else {
    out << ".TP\n.B \\-\\-" << EscapeRoff(spec.name) << "\n";
  }
  out << EscapeRoff(spec.help) << "\n";
}

}  // namespace

std::string Usage(const Command& c) {
  std::string s = "gatehouse " + Words(c);
  if (!c.args_usage.empty()) s += " " + c.args_usage;
  for (const auto& o : c.options)
    if (const OptionSpec* spec = FindOption(o))
      s += std::string(" [--") + spec->name + (spec->value ? std::string(" ") + spec->value : "") + "]";
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
      if (const OptionSpec* spec = FindOption(o)) OptionHelp(out, *spec);
    out << "\nenvironment:\n";
    for (const EnvSpec* e : EnvironmentOf(c)) EnvHelp(out, *e);
  } else {
    out << "usage: gatehouse [global options] COMMAND [ARGS] [options]\n\ncommands:\n";
    for (const Command* c : matching) out << "  " << Usage(*c) << "\n      " << c->summary << "\n";
    out << "\nenvironment:\n";
    for (const auto& e : kEnvironment) EnvHelp(out, e);
  }
  out << "\nglobal options (before or after the command words):\n";
  for (const auto& spec : kGlobalOptions) OptionHelp(out, spec);
  out << "\nexit status:\n";
  for (const auto& e : kExitStatuses) out << "  " << e.code << "  " << e.meaning << "\n";
}

void PrintManPage(std::ostream& out, const std::vector<Command>& commands) {
  out << ".\\\" Generated by `gatehouse --print-man-page` from the tables behind --help.\n"
      << ".TH GATEHOUSE 1 \"\" \"gatehouse " << Version() << "\" \"Gatehouse\"\n"
      << ".SH NAME\ngatehouse \\- administer a Gatehouse store and check its policies\n"
      << ".SH SYNOPSIS\n.B gatehouse\n[\\fIglobal options\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR] [\\fIoptions\\fR]\n"
      << ".SH DESCRIPTION\nThe admin CLI of Gatehouse: organizations, workspaces, API users and their "
         "tokens in the store, every change decided by the policy and audited; and the policy tools "
         "(validate, test, matrix, diff).\n"
      << ".SH COMMANDS\n";
  for (const auto& c : commands) {
    out << ".TP\n.B " << EscapeRoff(Usage(c)) << "\n" << EscapeRoff(c.summary) << "\n";
  }
  out << ".SH OPTIONS\n";
  for (const auto& spec : kCommandOptions) ManOption(out, spec);
  out << ".SH GLOBAL OPTIONS\nTaken before or after the command words.\n";
  for (const auto& spec : kGlobalOptions) ManOption(out, spec);
  out << ".SH ENVIRONMENT\n";
  for (const auto& e : kEnvironment) out << ".TP\n.B " << e.name << "\n" << EscapeRoff(e.help) << "\n";
  out << ".SH EXIT STATUS\nEvery non\\-zero exit prints one line on standard error.\n";
  for (const auto& e : kExitStatuses) out << ".TP\n.B " << e.code << "\n" << EscapeRoff(e.meaning) << "\n";
  out << ".SH SEE ALSO\n.BR gatehoused (8)\n";
}

void PrintBashCompletion(std::ostream& out, const std::vector<Command>& commands) {
  // Per typed word path (e.g. "token"), the words that may follow; per whole
  // command, its options.
  std::map<std::string, std::set<std::string>> next;
  for (const auto& c : commands) {
    std::string path;
    for (const auto& w : c.words) {
      next[path].insert(w);
      path += (path.empty() ? "" : " ") + w;
    }
  }
  std::string globals, valued;
  for (const auto& spec : kGlobalOptions) {
    globals += std::string(globals.empty() ? "" : " ") + "--" + spec.name;
    if (spec.value) valued += std::string(valued.empty() ? "" : "|") + "--" + spec.name;
  }
  for (const auto& spec : kCommandOptions)
    if (spec.value) valued += std::string("|--") + spec.name;
  out << "# bash completion for gatehouse. Generated by `gatehouse --print-bash-completion`\n"
         "# from the tables behind --help.\n"
         "_gatehouse() {\n"
         "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
         "  local path=\"\" w i\n"
         "  case \"$prev\" in\n"
         "    --store|--policy) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
         "    " << valued << ") COMPREPLY=(); return ;;\n"
         "  esac\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    w=\"${COMP_WORDS[i]}\"\n"
         "    case \"$w\" in\n"
         "      " << valued << ") ((i++)) ;;\n"
         "      -*) ;;\n"
         "      *) path=\"${path:+$path }$w\" ;;\n"
         "    esac\n"
         "  done\n"
         "  local opts=\"" << globals << "\" words=\"\"\n"
         "  case \"$path\" in\n";
  for (const auto& [path, words] : next) {
    std::string list;
    for (const auto& w : words) list += (list.empty() ? "" : " ") + w;
    out << "    \"" << path << "\") words=\"" << list << "\" ;;\n";
  }
  for (const auto& c : commands) {
    std::string opts;
    for (const auto& o : c.options) opts += " --" + o;
    if (opts.empty()) continue;
    out << "    \"" << Words(c) << "\") opts=\"$opts" << opts << "\" ;;\n";
  }
  out << "  esac\n"
         "  if [[ \"$cur\" == -* ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
         "  elif [[ -n \"$words\" ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
         "  else\n"
         "    COMPREPLY=($(compgen -f -- \"$cur\"))\n"
         "  fi\n"
         "}\n"
         "complete -F _gatehouse gatehouse\n";
}

}  // namespace gatehouse::cli
