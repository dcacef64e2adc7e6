// The admin commands: thin handlers over gatehouse::Admin.
#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli.h"
#include "gatehouse/admin.h"
#include "gatehouse/store.h"
#include "gatehouse/text.h"
#include "gatehouse/tokens.h"

namespace gatehouse::cli {
namespace {

using nlohmann::json;

std::string Iso(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

AdminOptions Options(const Invocation& inv) {
  AdminOptions o;
  o.store_path = inv.store;
  o.org = inv.org;
  o.actor = inv.as;
  return o;
}

PolicyPtr LoadPolicyOrFail(Invocation& inv, int* code) {
  PolicyLoad load = LoadPolicy(inv.policy, LoadOptions{inv.invariants});
  for (const auto& w : load.warnings) *inv.err << w.ToString() << "\n";  // files skipped in the folder
  if (load.ok()) return load.policy;
  for (const auto& e : load.errors) *inv.err << e.ToString() << "\n";
  *code = Fail(inv, kRuntime, "policy " + inv.policy + " failed to load (" + std::to_string(load.errors.size()) +
                                  " errors); nothing was changed");
  return nullptr;
}

// Opens the policy and the store, then runs `f`; maps every failure to the
// contract's exit status with one line on stderr.
int WithAdmin(Invocation& inv, const std::function<int(Admin&)>& f) {
  int code = kOk;
  PolicyPtr policy = LoadPolicyOrFail(inv, &code);
  if (!policy) return code;
  auto admin = Admin::Open(Options(inv), policy);
  if (!admin.ok()) return Fail(inv, admin.status());
  return f(**admin);
}

std::string Need(Invocation& inv, const char* opt) {
  auto v = inv.opt(opt);
  return v ? *v : std::string();
}

int Missing(Invocation& inv, const char* opt) {
  return Fail(inv, kUsage, std::string("missing --") + opt + " (see --help)");
}

// A human-readable table. Every cell is escaped first (gatehouse/text.h): a
// store written by an older version may hold names with control or
// bidirectional characters, and under kNonAscii (tables of names) every
// non-ASCII character shows as \u{XXXX}, so that look-alike names differ on
// screen. --json output is never escaped.
void Table(Invocation& inv, const std::vector<std::string>& header, std::vector<std::vector<std::string>> rows,
           EscapeMode mode = EscapeMode::kNonAscii) {
  for (auto& r : rows)
    for (auto& cell : r) cell = EscapeText(cell, mode);
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
    }
    *inv.out << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

int Init(Invocation& inv) {
  std::string org = Need(inv, "org").empty() ? inv.org : Need(inv, "org");
  std::string owner = Need(inv, "owner");
  if (org.empty()) return Missing(inv, "org");
  if (owner.empty()) return Missing(inv, "owner");
  int code = kOk;
  PolicyPtr policy = LoadPolicyOrFail(inv, &code);
  if (!policy) return code;
  Status st = Admin::Init(Options(inv), *policy, org, owner);
  if (!st.ok()) return Fail(inv, st);
  if (inv.json) PrintJson(inv, {{"store", RedactLocator(inv.store)}, {"organization", org}, {"owner", owner}, {"workspace", "Organization"}});
  else *inv.out << "created store " << EscapeText(RedactLocator(inv.store)) << ": organization " << org << ", owner " << owner
                << ", workspace Organization\n";
  return kOk;
}

int UserAdd(Invocation& inv) {
  std::string role = Need(inv, "org-role");
  if (role.empty()) return Missing(inv, "org-role");
  return WithAdmin(inv, [&](Admin& a) {
    Status st = a.AddUser(inv.args[0], role);
    if (!st.ok()) return Fail(inv, st);
    if (inv.json) PrintJson(inv, {{"email", inv.args[0]}, {"org_role", role}});
    else *inv.out << "added user " << inv.args[0] << " (org role " << role << ")\n";
    return int{kOk};
  });
}

int WorkspaceCreate(Invocation& inv) {
  std::string type = Need(inv, "type");
  if (type.empty()) return Missing(inv, "type");
  return WithAdmin(inv, [&](Admin& a) {
    Status st = a.CreateWorkspace(inv.args[0], type, Need(inv, "owner"));
    if (!st.ok()) return Fail(inv, st);
    if (inv.json) PrintJson(inv, {{"workspace", inv.args[0]}, {"type", type}});
    else *inv.out << "created workspace " << inv.args[0] << " (" << type << ")\n";
    return int{kOk};
  });
}

int MemberAdd(Invocation& inv) {
  std::string ws = Need(inv, "workspace"), role = Need(inv, "role");
  if (ws.empty()) return Missing(inv, "workspace");
  if (role.empty()) return Missing(inv, "role");
  return WithAdmin(inv, [&](Admin& a) {
    Status st = a.AddMember(inv.args[0], ws, role);
    if (!st.ok()) return Fail(inv, st);
    if (inv.json) PrintJson(inv, {{"email", inv.args[0]}, {"workspace", ws}, {"workspace_role", role}});
    else *inv.out << inv.args[0] << " is " << role << " in " << ws << "\n";
    return int{kOk};
  });
}

int SettingsSet(Invocation& inv) {
  return WithAdmin(inv, [&](Admin& a) {
    Status st = a.SetSetting(inv.args[0], inv.args[1]);
    if (!st.ok()) return Fail(inv, st);
    if (inv.json) PrintJson(inv, {{"setting", inv.args[0]}, {"value", inv.args[1]}});
    else *inv.out << "set " << inv.args[0] << " = " << inv.args[1] << "\n";
    return int{kOk};
  });
}

int SettingsShow(Invocation& inv) {
  return WithAdmin(inv, [&](Admin& a) {
    auto s = a.ShowSettings();
    if (!s.ok()) return Fail(inv, s.status());
    if (inv.json) {
      json arr = json::array();
      for (const auto& v : *s) arr.push_back({{"name", v.name}, {"value", v.value}, {"default", v.is_default}, {"description", v.description}});
      PrintJson(inv, arr);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& v : *s) rows.push_back({v.name, v.value ? "true" : "false", v.is_default ? "(default)" : "", v.description});
      Table(inv, {"SETTING", "VALUE", "", "DESCRIPTION"}, rows, EscapeMode::kNonPrintable);
    }
    return int{kOk};
  });
}

json ApiUserJson(const ApiUser& u) {
  return {{"id", u.id}, {"name", u.name}, {"workspace", u.workspace_name}, {"workspace_role", u.workspace_role},
          {"org_role", u.org_role}, {"created_by", u.created_by}, {"created_at", Iso(u.created_at)}};
}

int ApiUserCreate(Invocation& inv) {
  std::string ws = Need(inv, "workspace"), ws_role = Need(inv, "workspace-role");
  std::string org_role = inv.opt("org-role") ? Need(inv, "org-role") : "viewer";
  if (ws.empty()) return Missing(inv, "workspace");
  if (ws_role.empty()) return Missing(inv, "workspace-role");
  return WithAdmin(inv, [&](Admin& a) {
    auto u = a.CreateApiUser(inv.args[0], ws, ws_role, org_role);
    if (!u.ok()) return Fail(inv, u.status());
    if (inv.json) PrintJson(inv, ApiUserJson(*u));
    else *inv.out << "created API user " << u->name << " in " << u->workspace_name << " (workspace role "
                  << u->workspace_role << ", org role " << u->org_role << ")\n";
    return int{kOk};
  });
}

int ApiUserPromote(Invocation& inv) {
  auto ws_role = inv.opt("workspace-role");
  auto org_role = inv.opt("org-role");
  if (!ws_role && !org_role) return Fail(inv, kUsage, "pass --workspace-role ROLE (or --org-role ROLE)");
  return WithAdmin(inv, [&](Admin& a) {
    if (ws_role) {
      Status st = a.PromoteApiUser(inv.args[0], *ws_role);
      if (!st.ok()) return Fail(inv, st);
    }
    if (org_role) {
      Status st = a.SetApiUserOrgRole(inv.args[0], *org_role);
      if (!st.ok()) return Fail(inv, st);
    }
    if (inv.json) {
      json j = {{"name", inv.args[0]}};
      if (ws_role) j["workspace_role"] = *ws_role;
      if (org_role) j["org_role"] = *org_role;
      PrintJson(inv, j);
    } else {
      *inv.out << "API user " << inv.args[0] << ":" << (ws_role ? " workspace role " + *ws_role : "")
               << (org_role ? " org role " + *org_role : "") << "\n";
    }
    return int{kOk};
  });
}

int ApiUserList(Invocation& inv) {
  return WithAdmin(inv, [&](Admin& a) {
    auto list = a.ListApiUsers(Need(inv, "workspace"));
    if (!list.ok()) return Fail(inv, list.status());
    if (inv.json) {
      json arr = json::array();
      for (const auto& u : *list) arr.push_back(ApiUserJson(u));
      PrintJson(inv, arr);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& u : *list) rows.push_back({u.name, u.workspace_name, u.workspace_role, u.org_role, u.created_by});
      Table(inv, {"NAME", "WORKSPACE", "WORKSPACE_ROLE", "ORG_ROLE", "CREATED_BY"}, rows);
    }
    return int{kOk};
  });
}

int ApiUserDelete(Invocation& inv) {
  return WithAdmin(inv, [&](Admin& a) {
    auto n = a.DeleteApiUser(inv.args[0]);
    if (!n.ok()) return Fail(inv, n.status());
    if (inv.json) PrintJson(inv, {{"deleted", inv.args[0]}, {"tokens_deleted", *n}});
    else *inv.out << "deleted API user " << inv.args[0] << " and its " << *n << " token" << (*n == 1 ? "" : "s") << "\n";
    return int{kOk};
  });
}

int TokenCreate(Invocation& inv) {
  std::string au = Need(inv, "apiuser"), name = Need(inv, "name");
  if (au.empty()) return Missing(inv, "apiuser");
  if (name.empty()) return Missing(inv, "name");
  if (!inv.opt("expires-in")) return Missing(inv, "expires-in");
  std::string expires = Need(inv, "expires-in");
  return WithAdmin(inv, [&](Admin& a) {
    auto t = a.CreateToken(au, name, expires);
    if (!t.ok()) return Fail(inv, t.status());
    if (inv.json) {
      PrintJson(inv, {{"id", t->id}, {"token", t->secret}, {"name", t->name}, {"apiuser", t->api_user},
                      {"workspace", t->workspace}, {"expires_at", Iso(t->expires_at)}});
    } else {
      // The secret alone on stdout (TOKEN=$(gatehouse token create ...) works);
      // what it is goes to stderr.
      *inv.out << t->secret << "\n";
      *inv.err << "created token " << t->id << " (" << t->name << ") for API user " << t->api_user << " in "
               << t->workspace << ", expires " << Iso(t->expires_at)
               << ". It is shown once: store it now (e.g. in a password vault).\n";
    }
    return int{kOk};
  });
}

int TokenList(Invocation& inv) {
  return WithAdmin(inv, [&](Admin& a) {
    auto list = a.ListTokens(Need(inv, "apiuser"));
    if (!list.ok()) return Fail(inv, list.status());
    if (inv.json) {
      json arr = json::array();
      for (const auto& t : *list)
        arr.push_back({{"id", t.token_id}, {"name", t.name}, {"apiuser", t.api_user_name}, {"workspace", t.workspace_name},
                       {"created_at", Iso(t.created_at)}, {"expires_at", Iso(t.expires_at)}, {"created_by", t.created_by}});
      PrintJson(inv, arr);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& t : *list)
        rows.push_back({t.token_id, t.name, t.api_user_name, t.workspace_name, Iso(t.expires_at), t.created_by});
      Table(inv, {"ID", "NAME", "APIUSER", "WORKSPACE", "EXPIRES", "CREATED_BY"}, rows);
    }
    return int{kOk};
  });
}

int TokenRevoke(Invocation& inv) {
  return WithAdmin(inv, [&](Admin& a) {
    Status st = a.RevokeToken(inv.args[0]);
    if (!st.ok()) return Fail(inv, st);
    if (inv.json) PrintJson(inv, {{"revoked", inv.args[0]}});
    else *inv.out << "revoked " << inv.args[0] << "\n";
    return int{kOk};
  });
}

json IntrospectionJson(const Introspection& in) {
  if (!in.active) return {{"active", false}};
  const TokenRecord& t = in.token;
  return {{"active", true}, {"token_type", "api_token"}, {"sub", std::to_string(t.api_user_id)},
          {"username", t.api_user_name}, {"workspace", t.workspace_name}, {"workspace_role", t.workspace_role},
          {"org_role", t.org_role}, {"token_id", t.token_id}, {"iat", t.created_at}, {"exp", t.expires_at}};
}

// Where a token comes from (CONTRACT.md): the argument or --token; "-" reads
// one line from stdin; nothing at all falls back to GATEHOUSE_TOKEN. argv is
// readable by every local user (/proc/PID/cmdline), so the README uses - or
// the environment. nullopt (after printing why) when stdin held no line.
std::optional<std::string> ResolveToken(Invocation& inv, std::string given) {
  if (given == "-") {
    std::string line;
    if (!std::getline(std::cin, line)) {
      Fail(inv, kUsage, "expected a token on standard input (one line)");
      return std::nullopt;
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    return line;
  }
  if (given.empty()) {
    const char* env = std::getenv("GATEHOUSE_TOKEN");
    if (env != nullptr) given = env;
  }
  return given;
}

int TokenVerify(Invocation& inv) {
  auto token = ResolveToken(inv, inv.args.empty() ? "" : inv.args[0]);
  if (!token) return kUsage;
  if (token->empty()) {
    return Fail(inv, kUsage, "token verify needs TOKEN, - (read it from stdin) or GATEHOUSE_TOKEN");
  }
  return WithAdmin(inv, [&](Admin& a) {
    Introspection in = a.VerifyToken(*token);
    PrintJson(inv, IntrospectionJson(in));
    if (!in.active) return Fail(inv, kDenied, "token is not active");
    return int{kOk};
  });
}

int AuthorizeCmd(Invocation& inv) {
  std::string action = Need(inv, "action"), ws = Need(inv, "workspace");
  std::string user = Need(inv, "user");
  std::string token = Need(inv, "token");
  if (token.empty() && user.empty()) token = ResolveToken(inv, "").value_or("");
  if (token == "-") {
    auto read = ResolveToken(inv, token);
    if (!read) return kUsage;
    token = *read;
  }
  if (action.empty()) return Missing(inv, "action");
  if (ws.empty()) return Missing(inv, "workspace");
  if (token.empty() == user.empty()) return Fail(inv, kUsage, "pass exactly one of --token TOKEN or --user EMAIL");
  return WithAdmin(inv, [&](Admin& a) {
    auto o = a.Authorize(action, ws, token, user);
    if (!o.ok()) return Fail(inv, o.status());
    const DecisionView& d = o->view;
    // Text says only what was not found; --json also prints the sidecar's
    // denial for it, as every other answer.
    if (!o->not_found.ok() && !inv.json) return Fail(inv, o->not_found);
    if (inv.json) {
      // Exactly the bytes POST /v1/authorize answers (decision_json.h).
      *inv.out << EncodeDecision(d) << "\n";
    } else {
      *inv.out << (d.allow ? "allow" : "deny") << ": " << EscapeText(action) << " in " << EscapeText(ws) << "\n";
      for (const auto& r : d.reasons)
        *inv.out << "  " << (r.effect == Effect::kAllow ? "+ " : "- ") << EscapeText(r.rule) << ": "
                 << EscapeText(r.message) << "\n";
    }
    if (!o->not_found.ok()) return Fail(inv, o->not_found);
    if (d.allow) return int{kOk};
    std::string rule = d.reasons.empty() ? "default-deny" : d.reasons[0].rule;
    std::string msg = d.reasons.empty() ? "" : ": " + d.reasons[0].message;
    return Fail(inv, kDenied, "denied by rule " + rule + msg);
  });
}

int AuditCmd(Invocation& inv) {
  int limit = 50;
  if (auto l = inv.opt("limit")) {
    try {
      size_t used = 0;
      limit = std::stoi(*l, &used);
      if (used != l->size()) throw std::invalid_argument("trailing");
    } catch (...) {
      return Fail(inv, kUsage, "--limit must be a positive integer, not '" + *l + "'");
    }
  }
  return WithAdmin(inv, [&](Admin& a) {
    auto list = a.Audit(limit);
    if (!list.ok()) return Fail(inv, list.status());
    if (inv.json) {
      json arr = json::array();
      for (const auto& r : *list)
        arr.push_back({{"id", r.id}, {"time", Iso(r.time)}, {"actor", r.actor}, {"action", r.action}, {"target", r.target},
                       {"decision", r.decision == AuditDecision::kAllow ? "allow" : "deny"}, {"rule", r.rule},
                       {"message", r.message}, {"detail", r.detail}});
      PrintJson(inv, arr);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& r : *list)
        rows.push_back({Iso(r.time), r.actor, r.action, r.target, r.decision == AuditDecision::kAllow ? "allow" : "deny", r.rule});
      Table(inv, {"TIME", "ACTOR", "ACTION", "TARGET", "DECISION", "RULE"}, rows);
    }
    return int{kOk};
  });
}

int Gc(Invocation& inv) {
  return WithAdmin(inv, [&](Admin& a) {
    auto n = a.Gc();
    if (!n.ok()) return Fail(inv, n.status());
    if (inv.json) PrintJson(inv, {{"deleted", *n}});
    else *inv.out << "deleted " << *n << " expired token" << (*n == 1 ? "" : "s") << "\n";
    return int{kOk};
  });
}

}  // namespace

void RegisterAdminCommands(std::vector<Command>* c) {
  c->push_back({{"init"}, "", "Create the store, the organization, its workspace \"Organization\" and its owner; refuses an existing store.", {"owner"}, 0, 0, Init});
  c->push_back({{"user", "add"}, "EMAIL", "Add a user to the organization with an organization role.", {"org-role"}, 1, 1, UserAdd});
  c->push_back({{"workspace", "create"}, "NAME", "Create a workspace of a type the policy declares.", {"type", "owner"}, 1, 1, WorkspaceCreate});
  c->push_back({{"member", "add"}, "EMAIL", "Give a user a role in a workspace.", {"workspace", "role"}, 1, 1, MemberAdd});
  c->push_back({{"settings", "set"}, "SETTING VALUE", "Set an organization setting the policy declares (dashes = underscores).", {}, 2, 2, SettingsSet});
  c->push_back({{"settings", "show"}, "", "Show the organization's settings.", {}, 0, 0, SettingsShow});
  c->push_back({{"apiuser", "create"}, "NAME", "Create an API user in a shared workspace (org role viewer unless --org-role).", {"workspace", "workspace-role", "org-role"}, 1, 1, ApiUserCreate});
  c->push_back({{"apiuser", "promote"}, "NAME", "Change an API user's workspace role (or, with --org-role, its organization role).", {"workspace-role", "org-role"}, 1, 1, ApiUserPromote});
  c->push_back({{"apiuser", "list"}, "", "List the API users you may see.", {"workspace"}, 0, 0, ApiUserList});
  c->push_back({{"apiuser", "delete"}, "NAME", "Delete an API user and all its tokens.", {}, 1, 1, ApiUserDelete});
  c->push_back({{"token", "create"}, "", "Create a token; its secret is printed once, never again.", {"apiuser", "name", "expires-in"}, 0, 0, TokenCreate});
  c->push_back({{"token", "list"}, "", "List active tokens (never their secrets).", {"apiuser"}, 0, 0, TokenList});
  c->push_back({{"token", "revoke"}, "TOKEN_ID", "Revoke a token by its id (tok_...).", {}, 1, 1, TokenRevoke});
  c->push_back({{"token", "verify"}, "[TOKEN|-]", "Print the RFC 7662 introspection object of a token (exit 3 when inactive); - reads it from stdin, none: GATEHOUSE_TOKEN.", {}, 0, 1, TokenVerify});
  c->push_back({{"authorize"}, "", "Decide an action in a workspace for a token (--token TOKEN|-, or GATEHOUSE_TOKEN) or a user; print the rules that decided.", {"action", "workspace", "token", "user"}, 0, 0, AuthorizeCmd});
  c->push_back({{"audit"}, "", "Show the audit log, newest first.", {"limit"}, 0, 0, AuditCmd});
  c->push_back({{"gc"}, "", "Delete expired tokens now.", {}, 0, 0, Gc});
}

}  // namespace gatehouse::cli
