#include "gatehouse/authorizer.h"

#include <algorithm>
#include <charconv>

#include "gatehouse/text.h"

namespace gatehouse {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string WsKey(int64_t org, std::string_view name) { return std::to_string(org) + "/" + Lower(name); }

AuthzOutcome DenyEarly(std::string rule, std::string message) {
  AuthzOutcome o;
  o.reasons.push_back({std::move(rule), Effect::kDeny, std::move(message)});
  return o;
}

}  // namespace

Result<std::shared_ptr<const Directory>> Directory::Load(Store& store) {
  auto dir = std::make_shared<Directory>();
  // One consistent snapshot that never waits for (or blocks) a writer.
  Status st = store.ReadSnapshot([&]() -> Status {
    auto orgs = store.ListOrganizations();
    if (!orgs.ok()) return orgs.status();
    for (const Organization& org : *orgs) {
      auto wss = store.ListWorkspaces(org.id);
      if (!wss.ok()) return wss.status();
      for (const Workspace& w : *wss) {
        dir->workspaces_[WsKey(org.id, w.name)] = {w.id, org.id, w.name, w.type};
        dir->workspace_keys_[w.id] = WsKey(org.id, w.name);
      }
      auto users = store.ListUsers(org.id);
      if (!users.ok()) return users.status();
      for (const User& u : *users) dir->users_[Lower(u.email)] = {u.id, org.id, u.email, u.org_role, {}};
      for (const Workspace& w : *wss) {
        auto members = store.ListMemberships(w.id);
        if (!members.ok()) return members.status();
        for (const Membership& m : *members) {
          auto it = dir->users_.find(Lower(m.user_email));
          if (it != dir->users_.end()) it->second.workspace_roles[w.id] = m.workspace_role;
        }
      }
      auto settings = store.ListSettings(org.id);
      if (!settings.ok()) return settings.status();
      for (const Setting& s : *settings) dir->settings_[org.id].emplace_back(s.name, s.value);
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return std::shared_ptr<const Directory>(std::move(dir));
}

const Directory::WorkspaceEntry* Directory::FindWorkspace(int64_t org_id, std::string_view name) const {
  auto it = workspaces_.find(WsKey(org_id, name));
  return it == workspaces_.end() ? nullptr : &it->second;
}

const Directory::WorkspaceEntry* Directory::WorkspaceById(int64_t id) const {
  auto it = workspace_keys_.find(id);
  return it == workspace_keys_.end() ? nullptr : &workspaces_.at(it->second);
}

const Directory::UserEntry* Directory::FindUser(std::string_view email) const {
  auto it = users_.find(Lower(email));
  return it == users_.end() ? nullptr : &it->second;
}

uint64_t Directory::SettingsMask(const CompiledPolicy& policy, int64_t org_id) const {
  uint64_t mask = policy.default_settings();
  auto it = settings_.find(org_id);
  if (it == settings_.end()) return mask;
  for (const auto& [name, value] : it->second) {
    auto id = policy.FindSetting(name);
    if (!id) continue;  // a setting the current policy no longer declares
    if (value == "true") mask |= uint64_t{1} << *id;
    else mask &= ~(uint64_t{1} << *id);  // anything but "true" is off: fail closed
  }
  return mask;
}

Subject SubjectOfToken(const VerifiedToken& t) {
  Subject s;
  s.kind = PrincipalKind::kApiUser;
  s.id = t.principal->api_user_id;
  s.name = t.principal->api_user_name;
  s.org_id = t.principal->org_id;
  s.org_role = t.principal->org_role;
  s.workspace_id = t.principal->workspace_id;
  s.workspace_name = t.principal->workspace_name;
  s.workspace_role = t.principal->workspace_role;
  s.token_id = std::string(t.token_id);
  return s;
}

Subject SubjectOfToken(const TokenRecord& t) {
  Subject s;
  s.kind = PrincipalKind::kApiUser;
  s.id = t.api_user_id;
  s.name = t.api_user_name;
  s.org_id = t.org_id;
  s.org_role = t.org_role;
  s.workspace_id = t.workspace_id;
  s.workspace_name = t.workspace_name;
  s.workspace_role = t.workspace_role;
  s.token_id = t.token_id;
  return s;
}

std::optional<Subject> SubjectOfUser(const Directory& dir, std::string_view email) {
  const Directory::UserEntry* u = dir.FindUser(email);
  if (!u) return std::nullopt;
  Subject s;
  s.kind = PrincipalKind::kUser;
  s.id = u->id;
  s.name = u->email;
  s.org_id = u->org_id;
  s.org_role = u->org_role;
  return s;
}

std::optional<int64_t> ParseParamValue(const CompiledPolicy& p, ValueType type, std::string_view text) {
  switch (type) {
    case ValueType::kOrgRole:
      if (auto id = p.FindOrgRole(text)) return *id;
      return std::nullopt;
    case ValueType::kWorkspaceRole:
      if (auto id = p.FindWorkspaceRole(text)) return *id;
      return std::nullopt;
    case ValueType::kBool:
      if (text == "true") return 1;
      if (text == "false") return 0;
      return std::nullopt;
    case ValueType::kInt: {
      if (auto d = ParseDuration(text)) return *d;
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
      return v;
    }
    default: return std::nullopt;
  }
}

namespace {

// A value from outside, shown in an error: at most 80 bytes of it.
std::string Shown(std::string_view value) {
  return value.size() <= 80 ? std::string(value) : std::string(value.substr(0, 80)) + "...";
}

}  // namespace

Result<Question> ParseQuestion(const CompiledPolicy& policy, std::string_view action,
                               std::string_view workspace,
                               const std::optional<std::string>& user,
                               const std::vector<std::pair<std::string, std::string>>& params) {
  for (const auto& [field, value] : {std::pair<const char*, std::string_view>{"action", action},
                                     {"workspace", workspace}}) {
    if (value.empty()) return Status::InvalidArgument(std::string("field \"") + field + "\" must not be empty");
  }
  const auto id = policy.FindAction(action);
  if (!id) {
    return Status::InvalidArgument("unknown action '" + Shown(action) + "' (policy " +
                                   policy.name() + " " + policy.revision() + ")");
  }
  // Names obey one rule everywhere (gatehouse/text.h): a workspace or user
  // name that could not have been stored is a malformed request.
  for (const auto& [field, value] :
       {std::pair<const char*, std::optional<std::string_view>>{"workspace", workspace},
        {"user", user ? std::optional<std::string_view>(*user) : std::nullopt}}) {
    if (!value) continue;
    if (auto why = UnsafeTextReason(*value))
      return Status::InvalidArgument(std::string("field \"") + field + "\" must not contain " + *why);
  }
  Question q;
  q.action = *id;
  q.info = policy.action(*id);
  q.workspace = workspace;
  auto invalid = [&](std::string_view name, std::string_view value, std::string_view why) {
    return Status::InvalidArgument("invalid value '" + Shown(value) + "' for request parameter " +
                                   std::string(name) + " of action " + std::string(action) +
                                   std::string(why));
  };
  // A token lifetime (CONTRACT.md): positive, and capped by
  // tokens.max_lifetime whatever the action declares. Checked for every action
  // that declares lifetime_seconds and for token.create even when it does not.
  const bool declares_lifetime = policy.FindParam(*id, kLifetimeParam).has_value();
  const bool takes_lifetime = declares_lifetime || action == kTokenCreateAction;
  for (const auto& [name, value] : params) {
    if (takes_lifetime && name == kLifetimeParam) {
      auto v = ParseParamValue(policy, ValueType::kInt, value);
      if (!v || *v <= 0) {
        return invalid(name, value,
                       ": a token lifetime is a positive number of seconds or a duration (90s, 30d)");
      }
      if (!declares_lifetime) q.undeclared_lifetime = *v;
    }
    const auto slot = policy.FindParam(*id, name);
    if (!slot) continue;  // undeclared parameters are ignored (CONTRACT.md)
    auto v = ParseParamValue(policy, q.info->params[*slot].type, value);
    if (!v) return invalid(name, value, "");
    q.params[*slot] = *v;
  }
  return q;
}

Question RouteQuestion(const CompiledPolicy& policy, ActionId action, std::string_view workspace) {
  Question q;
  q.action = action;
  q.info = policy.action(action);
  q.workspace = workspace;
  return q;
}

AuthzOutcome Authorize(const CompiledPolicy& policy, const Directory& dir, const Subject& subject,
                       const Question& q) {
  const int64_t cap = policy.max_token_lifetime_seconds();
  if (q.undeclared_lifetime && cap > 0 && *q.undeclared_lifetime > cap)
    return DenyEarly(kMaxLifetimeRuleId, "token lifetime exceeds tokens.max_lifetime (" + FormatDuration(cap) + ")");
  Request r;
  r.action = q.action;
  r.kind = subject.kind;
  r.params = q.params;
  const Directory::WorkspaceEntry* ws = dir.FindWorkspace(subject.org_id, q.workspace);
  if (!ws) return DenyEarly("unknown-workspace", "no workspace named '" + std::string(q.workspace) + "' in the organization");
  auto type = policy.FindWorkspaceType(ws->type);
  if (!type) return DenyEarly("unknown-workspace-type", "workspace type '" + ws->type + "' is not declared by the policy");
  r.workspace_type = *type;
  auto org_role = policy.FindOrgRole(subject.org_role.empty() ? "none" : subject.org_role);
  if (!org_role) return DenyEarly("unknown-role", "organization role '" + subject.org_role + "' is not declared by the policy");
  r.org_role = *org_role;
  // The workspace role: an API user's only in its own workspace; a human's
  // from its membership. Authority never comes from whoever presents a token.
  std::string ws_role = "none";
  if (subject.kind == PrincipalKind::kApiUser) {
    if (ws->id == subject.workspace_id) ws_role = subject.workspace_role;
  } else if (const Directory::UserEntry* u = dir.FindUser(subject.name)) {
    auto it = u->workspace_roles.find(ws->id);
    if (it != u->workspace_roles.end()) ws_role = it->second;
  }
  auto ws_role_id = policy.FindWorkspaceRole(ws_role);
  if (!ws_role_id) return DenyEarly("unknown-role", "workspace role '" + ws_role + "' is not declared by the policy");
  r.workspace_role = *ws_role_id;
  r.settings = dir.SettingsMask(policy, subject.org_id);

  AuthzOutcome o;
  o.decided = true;
  o.request = r;
  o.workspace_role = std::move(ws_role);
  o.workspace_type = ws->type;
  o.workspace_name = ws->name;
  // A token acts only as its API user, and only where the policy's token.use
  // lets it (the default policy: its own workspace, or anywhere for an
  // organization admin). That gate is decided first, with the same principal.
  if (auto use = policy.FindAction(kTokenUseAction);
      use && subject.kind == PrincipalKind::kApiUser && *use != q.action) {
    Request gate = r;
    gate.action = *use;
    gate.params = {};
    Decision d = policy.Decide(gate);
    if (!d.allowed()) {
      o.decision = d;
      o.reasons = policy.Explain(d);
      if (q.info->graphql) o.graphql = q.info->graphql;
      return o;
    }
  }
  o.decision = policy.Decide(r);
  o.allow = o.decision.allowed();
  o.reasons = policy.Explain(o.decision);
  if (!o.allow && q.info->graphql) o.graphql = q.info->graphql;
  return o;
}

Result<AuthzOutcome> Authorize(const CompiledPolicy& policy, const Directory& dir,
                               const Subject& subject, std::string_view action,
                               std::string_view workspace,
                               const std::vector<std::pair<std::string, std::string>>& params) {
  auto q = ParseQuestion(policy, action, workspace, std::nullopt, params);
  if (!q.ok()) return q.status();
  return Authorize(policy, dir, subject, *q);
}

}  // namespace gatehouse
