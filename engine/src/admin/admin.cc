#include "gatehouse/admin.h"

#include "gatehouse/text.h"
#include "gatehouse/tokens.h"

#include <algorithm>
#include <map>

namespace gatehouse {
namespace {

constexpr const char* kOrgWorkspace = "Organization";

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::vector<std::string> RoleNames(const CompiledPolicy& p, bool org) {
  std::vector<std::string> out;
  int n = org ? p.org_role_count() : p.workspace_role_count();
  for (int i = 1; i < n; ++i) out.emplace_back(org ? p.OrgRoleName(i) : p.WorkspaceRoleName(i));
  return out;
}

Status CheckOrgRole(const CompiledPolicy& p, const std::string& role) {
  if (role != "none" && p.FindOrgRole(role)) return Status::Ok();
  return Status::InvalidArgument("unknown organization role '" + role + "' (the policy declares: " +
                                 Join(RoleNames(p, true)) + ")");
}

Status CheckWorkspaceRole(const CompiledPolicy& p, const std::string& role) {
  if (role != "none" && p.FindWorkspaceRole(role)) return Status::Ok();
  return Status::InvalidArgument("unknown workspace role '" + role + "' (the policy declares: " +
                                 Join(RoleNames(p, false)) + ")");
}

// Every name and email, whatever it names and wherever it comes from, passes
// one rule (gatehouse/text.h): a name that would rewrite a terminal or hide
// in one is refused (exit 2) before anything is read or written, so it can
// reach neither the store nor the audit log.
Status CheckName(const std::string& what, const std::string& name) { return CheckNameText(what, name); }

Status CheckEmail(const std::string& email, const std::string& what = "an email") {
  GATEHOUSE_RETURN_IF_ERROR(CheckNameText(what, email, 254));
  auto at = email.find('@');
  if (at == std::string::npos || at == 0 || at + 1 >= email.size() ||
      email.find_first_of(" \t\r\n,;<>\"") != std::string::npos)
    return Status::InvalidArgument("'" + email + "' is not an email address");
  return Status::Ok();
}

// A name looked up, not created: the same rule, so that a refused name is
// refused the same way everywhere (and never lands in an audit target).
Status CheckLookup(const std::string& what, const std::string& name) {
  if (name.empty()) return Status::Ok();  // "not given": the caller decides
  return CheckNameText(what, name, 254);
}

}  // namespace

// What one audited change knows while it runs.
struct Admin::Ctx {
  Organization org;
  std::shared_ptr<const Directory> dir;
  Subject actor;
  std::string rule, message;  // of the last decision
  std::string allow_rule, allow_message;  // of the last allowing decision
  bool decided = false;
  bool allowed = false;
  std::string detail;
  Admin* admin = nullptr;

  // Asks the policy; PermissionDenied (naming the rule) when it says no.
  Status Decide(const std::string& action, const std::string& workspace,
                const std::vector<std::pair<std::string, std::string>>& params = {}) {
    auto outcome = gatehouse::Authorize(admin->policy(), *dir, actor, action, workspace, params);
    if (!outcome.ok()) return outcome.status();
    const AuthzOutcome& o = *outcome;
    decided = true;
    allowed = o.allow;
    if (o.decided) {
      rule = std::string(admin->policy().DecidingRule(o.decision));
      message = admin->policy().DecidingMessage(o.decision);
    } else if (!o.reasons.empty()) {
      rule = o.reasons[0].rule;
      message = o.reasons[0].message;
    }
    if (o.allow) {
      allow_rule = rule;
      allow_message = message;
      return Status::Ok();
    }
    return Status::PermissionDenied("denied: " + action + " in " + workspace + " for " + actor.name +
                                    " by rule " + (rule.empty() ? "default-deny" : rule) + ": " + message);
  }
};

Admin::Admin(std::unique_ptr<Store> store, PolicyPtr policy, AdminOptions options)
    : store_(std::move(store)), policy_(std::move(policy)), options_(std::move(options)) {}

Status Admin::Init(const AdminOptions& options, const CompiledPolicy& policy, const std::string& org,
                   const std::string& owner_email) {
  GATEHOUSE_RETURN_IF_ERROR(CheckName("the organization name", org));
  GATEHOUSE_RETURN_IF_ERROR(CheckEmail(owner_email));
  if (!policy.FindWorkspaceType("organization"))
    return Status::InvalidArgument("the policy declares no workspace type 'organization'");
  if (policy.org_role_count() < 2) return Status::InvalidArgument("the policy declares no organization role");
  // The owner holds the highest organization role the policy declares.
  const std::string owner_role(policy.OrgRoleName(static_cast<RoleId>(policy.org_role_count() - 1)));
  const int64_t now = options.clock->NowSeconds();
  // CreateStore fills the store in its first transaction; a store that fails
  // to initialise is not left behind half-made.
  auto created = CreateStore(options.store_path, StoreOptions{}, [&](Store& store) -> Status {
    auto o = store.CreateOrganization(org);
    if (!o.ok()) return o.status();
    auto ws = store.CreateWorkspace(o->id, kOrgWorkspace, "organization", std::nullopt);
    if (!ws.ok()) return ws.status();
    auto u = store.AddUser(o->id, owner_email, owner_role);
    if (!u.ok()) return u.status();
    AuditRecord a;
    a.time = now;
    a.org_id = o->id;
    a.actor = owner_email;
    a.action = "organization.init";
    a.target = "organization:" + org;
    a.decision = AuditDecision::kAllow;
    a.message = "bootstrap: the first owner (not policy-checked)";
    auto r = store.AppendAudit(a);
    return r.ok() ? Status::Ok() : r.status();
  });
  return created.ok() ? Status::Ok() : created.status();
}

Result<std::unique_ptr<Admin>> Admin::Open(const AdminOptions& options, PolicyPtr policy) {
  auto store = OpenStore(options.store_path);
  if (!store.ok()) return store.status();
  return std::make_unique<Admin>(std::move(*store), std::move(policy), options);
}

Result<Organization> Admin::Org() {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("an organization name (--org)", options_.org));
  if (!options_.org.empty()) return store_->FindOrganization(options_.org);
  auto org = store_->TheOnlyOrganization();
  if (!org.ok() && !org.status().IsNotFound())
    return Status::InvalidArgument(org.status().message());  // several: --org is needed
  return org;
}

Status Admin::Change(const std::string& action, const std::string& target,
                     const std::function<Status(Ctx&)>& body) {
  if (options_.actor.empty())
    return Status::InvalidArgument("no acting identity: pass --as EMAIL or set GATEHOUSE_AS");
  // Even an unknown identity is written to the audit log (as the actor of
  // the denial): it passes the name rule first.
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("the acting identity (--as)", options_.actor));
  const int64_t now = options_.clock->NowSeconds();
  Ctx ctx;
  ctx.admin = this;
  bool unknown_actor = false;
  std::optional<int64_t> org_id;
  Status st = store_->Transaction([&]() -> Status {
    auto org = Org();
    if (!org.ok()) return org.status();
    ctx.org = *org;
    org_id = org->id;
    auto dir = Directory::Load(*store_);
    if (!dir.ok()) return dir.status();
    ctx.dir = *dir;
    auto actor = SubjectOfUser(*ctx.dir, options_.actor);
    if (!actor || actor->org_id != org->id) {
      unknown_actor = true;
      return Status::NotFound("unknown acting identity '" + options_.actor + "' in organization " + org->name);
    }
    ctx.actor = *actor;
    auto swept = store_->DeleteExpiredTokens(now);
    if (!swept.ok()) return swept.status();
    GATEHOUSE_RETURN_IF_ERROR(body(ctx));
    AuditRecord a;
    a.time = now;
    a.org_id = org->id;
    a.actor = options_.actor;
    a.action = action;
    a.target = target;
    a.decision = AuditDecision::kAllow;
    a.rule = ctx.allow_rule;
    a.message = ctx.allow_message;
    a.detail = ctx.detail;
    auto r = store_->AppendAudit(a);
    return r.ok() ? Status::Ok() : r.status();
  });
  if (!st.ok() && (st.IsPermissionDenied() || unknown_actor)) {
    // Nothing of the change stayed; the denial itself is recorded.
    AuditRecord a;
    a.time = now;
    a.org_id = org_id;
    a.actor = options_.actor;
    a.action = action;
    a.target = target;
    a.decision = AuditDecision::kDeny;
    a.rule = unknown_actor ? "unknown-actor" : ctx.rule;
    a.message = unknown_actor ? st.message() : ctx.message;
    a.detail = ctx.detail;
    auto r = store_->AppendAudit(a);
    if (!r.ok()) return Status::IoError(st.message() + " (and the audit record failed: " + r.status().message() + ")");
  }
  return st;
}

Status Admin::AddUser(const std::string& email, const std::string& org_role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckEmail(email));
  GATEHOUSE_RETURN_IF_ERROR(CheckOrgRole(*policy_, org_role));
  return Change("user.add", "user:" + email, [&](Ctx& c) -> Status {
    c.detail = "org_role=" + org_role;
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("user.add", kOrgWorkspace, {{"org_role", org_role}}));
    auto u = store_->AddUser(c.org.id, email, org_role);
    return u.ok() ? Status::Ok() : u.status();
  });
}

Status Admin::CreateWorkspace(const std::string& name, const std::string& type, const std::string& owner_email) {
  GATEHOUSE_RETURN_IF_ERROR(CheckName("a workspace name", name));
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("the owner's email", owner_email));
  if (!policy_->FindWorkspaceType(type)) {
    std::vector<std::string> types;
    for (int i = 0; i < policy_->workspace_type_count(); ++i) types.emplace_back(policy_->WorkspaceTypeName(i));
    return Status::InvalidArgument("unknown workspace type '" + type + "' (the policy declares: " + Join(types) + ")");
  }
  return Change("workspace.create", "workspace:" + name, [&](Ctx& c) -> Status {
    c.detail = "type=" + type + (owner_email.empty() ? "" : " owner=" + owner_email);
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("workspace.create", kOrgWorkspace));
    std::optional<int64_t> owner;
    const Directory::UserEntry* u = nullptr;
    if (!owner_email.empty()) {
      u = c.dir->FindUser(owner_email);
      if (!u || u->org_id != c.org.id) return Status::NotFound("unknown user '" + owner_email + "'");
      owner = u->id;
    }
    auto ws = store_->CreateWorkspace(c.org.id, name, type, owner);
    if (!ws.ok()) return ws.status();
    // The owner administers the workspace they own.
    if (u && policy_->FindWorkspaceRole("admin")) return store_->SetMembership(ws->id, u->id, "admin");
    return Status::Ok();
  });
}

Status Admin::AddMember(const std::string& email, const std::string& workspace, const std::string& role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("an email", email));
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("a workspace name", workspace));
  GATEHOUSE_RETURN_IF_ERROR(CheckWorkspaceRole(*policy_, role));
  return Change("member.add", "user:" + email + "@workspace:" + workspace, [&](Ctx& c) -> Status {
    c.detail = "workspace_role=" + role;
    const Directory::UserEntry* u = c.dir->FindUser(email);
    if (!u || u->org_id != c.org.id) return Status::NotFound("unknown user '" + email + "'");
    const Directory::WorkspaceEntry* ws = c.dir->FindWorkspace(c.org.id, workspace);
    if (!ws) return Status::NotFound("unknown workspace '" + workspace + "'");
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("member.add", ws->name, {{"workspace_role", role}}));
    return store_->SetMembership(ws->id, u->id, role);
  });
}

namespace {
std::optional<bool> ParseBool(std::string v) {
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "true" || v == "on" || v == "yes" || v == "1") return true;
  if (v == "false" || v == "off" || v == "no" || v == "0") return false;
  return std::nullopt;
}
}  // namespace

Status Admin::SetSetting(const std::string& raw_name, const std::string& value) {
  std::string name = raw_name;
  std::replace(name.begin(), name.end(), '-', '_');
  if (!policy_->FindSetting(name)) {
    std::vector<std::string> names;
    for (const auto& s : policy_->settings()) names.push_back(s.name);
    return Status::InvalidArgument("unknown setting '" + raw_name + "' (the policy declares: " +
                                   (names.empty() ? std::string("none") : Join(names)) + ")");
  }
  auto b = ParseBool(value);
  if (!b) return Status::InvalidArgument("setting " + name + " is a boolean: use true or false, not '" + value + "'");
  return Change("settings.update", "setting:" + name, [&](Ctx& c) -> Status {
    c.detail = name + "=" + (*b ? "true" : "false");
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("settings.update", kOrgWorkspace));
    return store_->SetSetting(c.org.id, name, *b ? "true" : "false");
  });
}

Result<std::vector<SettingView>> Admin::ShowSettings() {
  auto org = Org();
  if (!org.ok()) return org.status();
  auto stored = store_->ListSettings(org->id);
  if (!stored.ok()) return stored.status();
  std::vector<SettingView> out;
  for (const SettingInfo& s : policy_->settings()) {
    SettingView v{s.name, s.description, s.default_value, true};
    for (const Setting& st : *stored) {
      if (st.name == s.name) {
        v.value = st.value == "true";
        v.is_default = false;
      }
    }
    out.push_back(v);
  }
  return out;
}

Result<ApiUser> Admin::CreateApiUser(const std::string& name, const std::string& workspace,
                                     const std::string& workspace_role, const std::string& org_role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckName("an API user name", name));
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("a workspace name", workspace));
  GATEHOUSE_RETURN_IF_ERROR(CheckWorkspaceRole(*policy_, workspace_role));
  GATEHOUSE_RETURN_IF_ERROR(CheckOrgRole(*policy_, org_role));
  ApiUser created;
  Status st = Change("api_user.create", "apiuser:" + name, [&](Ctx& c) -> Status {
    c.detail = "workspace=" + workspace + " workspace_role=" + workspace_role + " org_role=" + org_role;
    const Directory::WorkspaceEntry* ws = c.dir->FindWorkspace(c.org.id, workspace);
    if (!ws) return Status::NotFound("unknown workspace '" + workspace + "'");
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("api_user.create", ws->name,
                                       {{"workspace_role", workspace_role}, {"org_role", org_role}}));
    NewApiUser n;
    n.name = name;
    n.org_role = org_role;
    n.workspace_id = ws->id;
    n.workspace_role = workspace_role;
    n.created_by = c.actor.name;
    n.created_at = options_.clock->NowSeconds();
    auto r = store_->CreateApiUser(n);
    if (!r.ok()) return r.status();
    created = *r;
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return created;
}

Status Admin::PromoteApiUser(const std::string& name, const std::string& workspace_role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("an API user name", name));
  GATEHOUSE_RETURN_IF_ERROR(CheckWorkspaceRole(*policy_, workspace_role));
  return Change("api_user.promote", "apiuser:" + name, [&](Ctx& c) -> Status {
    c.detail = "workspace_role=" + workspace_role;
    auto au = store_->FindApiUser(c.org.id, name);
    if (!au.ok()) return au.status();
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("api_user.promote", au->workspace_name, {{"workspace_role", workspace_role}}));
    return store_->SetApiUserWorkspaceRole(au->id, workspace_role);
  });
}

Status Admin::SetApiUserOrgRole(const std::string& name, const std::string& org_role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("an API user name", name));
  GATEHOUSE_RETURN_IF_ERROR(CheckOrgRole(*policy_, org_role));
  return Change("api_user.set_org_role", "apiuser:" + name, [&](Ctx& c) -> Status {
    c.detail = "org_role=" + org_role;
    auto au = store_->FindApiUser(c.org.id, name);
    if (!au.ok()) return au.status();
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("api_user.set_org_role", au->workspace_name, {{"org_role", org_role}}));
    return store_->SetApiUserOrgRole(au->id, org_role);
  });
}

// Whether the actor may use a list action anywhere: in the organization's
// workspace (org admins), else in a workspace they belong to. A denial is
// decided in the organization's workspace, so it never names another one.
Status Admin::MayListSomewhere(Ctx& c, const std::string& action) {
  Status org = c.Decide(action, kOrgWorkspace);
  if (org.ok()) return org;
  if (const Directory::UserEntry* u = c.dir->FindUser(c.actor.name)) {
    for (const auto& [ws_id, role] : u->workspace_roles) {
      const Directory::WorkspaceEntry* ws = c.dir->WorkspaceById(ws_id);
      if (ws && c.Decide(action, ws->name).ok()) return Status::Ok();
    }
  }
  static_cast<void>(c.Decide(action, kOrgWorkspace));  // the audit names the organization-level denial
  return org;
}

Result<std::vector<ApiUser>> Admin::ListApiUsers(const std::string& workspace) {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("a workspace name", workspace));
  std::vector<ApiUser> out;
  Status st = Change("api_user.list", workspace.empty() ? "workspace:*" : "workspace:" + workspace, [&](Ctx& c) -> Status {
    std::optional<int64_t> ws_id;
    if (!workspace.empty()) {
      const Directory::WorkspaceEntry* ws = c.dir->FindWorkspace(c.org.id, workspace);
      if (!ws) return Status::NotFound("unknown workspace '" + workspace + "'");
      GATEHOUSE_RETURN_IF_ERROR(c.Decide("api_user.list", ws->name));
      ws_id = ws->id;
    }
    auto all = store_->ListApiUsers(c.org.id, ws_id);
    if (!all.ok()) return all.status();
    if (ws_id) {
      out = std::move(*all);
      return Status::Ok();
    }
    // Without --workspace: every workspace the actor may list, decided one by one.
    GATEHOUSE_RETURN_IF_ERROR(MayListSomewhere(c, "api_user.list"));
    std::map<std::string, bool> may;
    for (ApiUser& a : *all) {
      auto [it, inserted] = may.try_emplace(a.workspace_name, false);
      if (inserted) it->second = c.Decide("api_user.list", a.workspace_name).ok();
      if (it->second) out.push_back(std::move(a));
    }
    return MayListSomewhere(c, "api_user.list");  // leaves the allowing rule for the audit
  });
  if (!st.ok()) return st;
  return out;
}

Result<int64_t> Admin::DeleteApiUser(const std::string& name) {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("an API user name", name));
  int64_t tokens = 0;
  Status st = Change("api_user.delete", "apiuser:" + name, [&](Ctx& c) -> Status {
    auto au = store_->FindApiUser(c.org.id, name);
    if (!au.ok()) return au.status();
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("api_user.delete", au->workspace_name));
    auto n = store_->DeleteApiUser(au->id);
    if (!n.ok()) return n.status();
    tokens = *n;
    c.detail = "tokens_deleted=" + std::to_string(tokens);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return tokens;
}

Result<CreatedToken> Admin::CreateToken(const std::string& api_user, const std::string& name,
                                        const std::string& expires_in) {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("an API user name", api_user));
  GATEHOUSE_RETURN_IF_ERROR(CheckName("a token name", name));
  auto lifetime = ParseDuration(expires_in);
  if (!lifetime)
    return Status::InvalidArgument("invalid --expires-in '" + expires_in +
                                   "': a positive integer followed by s, m, h, d or w (e.g. 90s, 30d)");
  CreatedToken out;
  Status st = Change("token.create", "apiuser:" + api_user, [&](Ctx& c) -> Status {
    c.detail = "name=" + name + " lifetime=" + FormatDuration(*lifetime);
    auto au = store_->FindApiUser(c.org.id, api_user);
    if (!au.ok()) return au.status();
    GATEHOUSE_RETURN_IF_ERROR(
        c.Decide("token.create", au->workspace_name, {{"lifetime_seconds", std::to_string(*lifetime)}}));
    // The cap holds whatever the policy's rules say or declare (CONTRACT.md):
    // the token-creation path enforces it itself, after the policy allowed.
    if (const int64_t cap = policy_->max_token_lifetime_seconds(); cap > 0 && *lifetime > cap) {
      c.allowed = false;
      c.rule = kMaxLifetimeRuleId;
      c.message = "token lifetime exceeds tokens.max_lifetime (" + FormatDuration(cap) + ")";
      return Status::PermissionDenied("denied: token.create in " + au->workspace_name + " for " + c.actor.name +
                                      " by rule " + c.rule + ": " + c.message);
    }
    auto minted = MintToken();
    if (!minted.ok()) return minted.status();
    const int64_t now = options_.clock->NowSeconds();
    NewToken t;
    t.id = minted->id;
    t.api_user_id = au->id;
    t.name = name;
    t.hash = minted->hash;
    t.created_at = now;
    t.expires_at = now + *lifetime;
    t.created_by = c.actor.name;
    GATEHOUSE_RETURN_IF_ERROR(store_->InsertToken(t));
    c.detail += " token=" + minted->id;  // the id, never the secret
    out = {minted->id, minted->secret, name, au->name, au->workspace_name, now, now + *lifetime};
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<TokenRecord>> Admin::ListTokens(const std::string& api_user) {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("an API user name", api_user));
  std::vector<TokenRecord> out;
  const int64_t now = options_.clock->NowSeconds();
  Status st = Change("token.list", api_user.empty() ? "apiuser:*" : "apiuser:" + api_user, [&](Ctx& c) -> Status {
    std::optional<int64_t> au_id;
    if (!api_user.empty()) {
      auto au = store_->FindApiUser(c.org.id, api_user);
      if (!au.ok()) return au.status();
      GATEHOUSE_RETURN_IF_ERROR(c.Decide("token.list", au->workspace_name));
      au_id = au->id;
    }
    auto all = store_->ListTokens(c.org.id, au_id, now);
    if (!all.ok()) return all.status();
    if (au_id) {
      out = std::move(*all);
      return Status::Ok();
    }
    GATEHOUSE_RETURN_IF_ERROR(MayListSomewhere(c, "token.list"));
    std::map<std::string, bool> may;
    for (TokenRecord& t : *all) {
      auto [it, inserted] = may.try_emplace(t.workspace_name, false);
      if (inserted) it->second = c.Decide("token.list", t.workspace_name).ok();
      if (it->second) out.push_back(std::move(t));
    }
    return MayListSomewhere(c, "token.list");
  });
  if (!st.ok()) return st;
  return out;
}

Status Admin::RevokeToken(const std::string& token_id) {
  if (!CheckTokenIdFormat(token_id))
    return Status::InvalidArgument("'" + RedactToken(token_id) + "' is not a token id (tok_ followed by 12 characters)");
  return Change("token.revoke", "token:" + token_id, [&](Ctx& c) -> Status {
    auto t = store_->FindTokenById(token_id);
    if (!t.ok()) return t.status();
    if (t->org_id != c.org.id) return Status::NotFound("unknown token '" + token_id + "'");
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("token.revoke", t->workspace_name));
    return store_->DeleteToken(token_id);
  });
}

Result<std::vector<AuditRecord>> Admin::Audit(int limit) {
  if (limit <= 0 || limit > 100000) return Status::InvalidArgument("--limit must be between 1 and 100000");
  std::vector<AuditRecord> out;
  Status st = Change("audit.read", "audit", [&](Ctx& c) -> Status {
    GATEHOUSE_RETURN_IF_ERROR(c.Decide("audit.read", kOrgWorkspace));
    auto r = store_->ListAudit(c.org.id, limit);
    if (!r.ok()) return r.status();
    out = std::move(*r);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<int64_t> Admin::Gc() {
  GATEHOUSE_RETURN_IF_ERROR(CheckLookup("the acting identity (--as)", options_.actor));
  const int64_t now = options_.clock->NowSeconds();
  int64_t n = 0;
  Status st = store_->Transaction([&]() -> Status {
    auto r = store_->DeleteExpiredTokens(now);
    if (!r.ok()) return r.status();
    n = *r;
    if (n == 0) return Status::Ok();
    // Housekeeping, not a decision: expired tokens are already refused.
    AuditRecord a;
    a.time = now;
    auto org = Org();
    if (org.ok()) a.org_id = org->id;
    a.actor = options_.actor.empty() ? "gc" : options_.actor;
    a.action = "token.gc";
    a.target = "tokens:expired";
    a.decision = AuditDecision::kAllow;
    a.detail = "deleted=" + std::to_string(n);
    auto w = store_->AppendAudit(a);
    return w.ok() ? Status::Ok() : w.status();
  });
  if (!st.ok()) return st;
  return n;
}

Introspection Admin::VerifyToken(const std::string& token) {
  Introspection out;
  if (!CheckTokenFormat(token)) return out;  // refused before the store is touched
  auto t = store_->FindTokenByHash(HashToken(token));
  if (!t.ok() || t->IsExpiredAt(options_.clock->NowSeconds())) return out;
  out.active = true;
  out.token = *t;
  return out;
}

Result<AuthorizeAnswer> Admin::Authorize(const std::string& action, const std::string& workspace,
                                         const std::string& token, const std::string& user) {
  // The sidecar's checks and answers (decision_json.h), so that --json
  // prints the object POST /v1/authorize gives for the same question.
  const std::optional<std::string> email = token.empty() ? std::optional<std::string>(user) : std::nullopt;
  auto question = ParseQuestion(*policy_, action, workspace, email, {});
  if (!question.ok()) return question.status();
  auto dir = Directory::Load(*store_);
  if (!dir.ok()) return dir.status();
  const int64_t now_ms = options_.clock->NowSeconds() * 1000;
  AuthorizeAnswer answer;
  Subject subject;
  if (!token.empty()) {
    Introspection in = VerifyToken(token);
    if (!in.active) {
      answer.view = DenialView(
          *policy_, {std::string(kInactiveTokenRule), Effect::kDeny, std::string(kInactiveTokenMessage)}, now_ms);
      return answer;
    }
    subject = SubjectOfToken(in.token);
  } else {
    auto s = SubjectOfUser(**dir, user);
    if (!s) {
      answer.view = DenialView(*policy_, UnknownUserReason(user), now_ms);
      answer.not_found = Status::NotFound("unknown user '" + user + "'");
      return answer;
    }
    subject = *s;
  }
  AuthzOutcome o = gatehouse::Authorize(*policy_, **dir, subject, *question);
  // The sidecar denies; the CLI also says what was not found (exit 4).
  if (!o.decided && !o.reasons.empty() && o.reasons[0].rule == "unknown-workspace")
    answer.not_found = Status::NotFound("unknown workspace '" + workspace + "'");
  answer.view = DecisionViewOf(*policy_, *question->info, subject, std::move(o), now_ms);
  return answer;
}

}  // namespace gatehouse
