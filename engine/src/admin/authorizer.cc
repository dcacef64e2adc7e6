#include "gatehouse/authorizer.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <unordered_map>

#include "gatehouse/text.h"

namespace gatehouse {
namespace {

// Names fold ASCII only, as the store's do (store.h).
//
// A lookup by name or email hashes the text once: keys carry their hash
// (FoldKey to look up, FoldedString stored), which picks the shard and is the
// hash of the shard's table and of the organization part's table alike. The
// hash and the comparison fold eight bytes at a time.

// The eight bytes at `p` (fewer at the end: zero-padded), ASCII upper case
// folded to lower case.
inline uint64_t FoldedWord(const char* p, size_t n) {
  uint64_t x = 0;
  std::memcpy(&x, p, n < 8 ? n : 8);
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  const uint64_t low7 = x & (0x7f * kOnes);
  const uint64_t ge_a = low7 + (0x80 - 'A') * kOnes;      // high bit: byte >= 'A'
  const uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * kOnes;  // high bit: byte > 'Z'
  const uint64_t upper = (ge_a ^ gt_z) & ~x & (0x80 * kOnes);
  return x | (upper >> 2);  // 0x80 >> 2 == 0x20, 'A' ^ 'a'
}

inline size_t FoldHashOf(std::string_view s) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  for (size_t i = 0; i < s.size(); i += 8) {
    h = (h ^ FoldedWord(s.data() + i, s.size() - i)) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  h *= 0xc4ceb9fe1a85ec53ull;
  return static_cast<size_t>(h ^ (h >> 29));
}

inline bool FoldEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i += 8) {
    if (FoldedWord(a.data() + i, a.size() - i) != FoldedWord(b.data() + i, b.size() - i)) return false;
  }
  return true;
}

struct FoldKey {
  explicit FoldKey(std::string_view t) : text(t), hash(FoldHashOf(t)) {}
  std::string_view text;
  size_t hash;
};
struct FoldedString {
  explicit FoldedString(const FoldKey& k) : text(k.text), hash(k.hash) {}
  explicit FoldedString(std::string_view t) : FoldedString(FoldKey(t)) {}
  std::string text;
  size_t hash;
};
struct FoldHash {
  using is_transparent = void;
  size_t operator()(const FoldKey& k) const noexcept { return k.hash; }
  size_t operator()(const FoldedString& k) const noexcept { return k.hash; }
};
struct FoldEq {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const noexcept {
    return a.hash == b.hash && FoldEqual(a.text, b.text);
  }
};

// A workspace by organization and name: the global index's key.
struct WorkspaceKey {
  WorkspaceKey(int64_t o, std::string_view name) : org(o), name(name), hash(Mix(o, this->name.hash)) {}
  static size_t Mix(int64_t org, size_t h) {
    return h ^ static_cast<size_t>((static_cast<uint64_t>(org) + 1) * 0x9e3779b97f4a7c15ull);
  }
  int64_t org;
  FoldKey name;
  size_t hash;
};
struct StoredWorkspaceKey {
  explicit StoredWorkspaceKey(const WorkspaceKey& k) : org(k.org), name(k.name), hash(k.hash) {}
  int64_t org;
  FoldedString name;
  size_t hash;
};
struct WorkspaceKeyHash {
  using is_transparent = void;
  size_t operator()(const WorkspaceKey& k) const noexcept { return k.hash; }
  size_t operator()(const StoredWorkspaceKey& k) const noexcept { return k.hash; }
};
struct WorkspaceKeyEq {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const noexcept {
    return a.hash == b.hash && a.org == b.org && FoldEqual(a.name.text, b.name.text);
  }
};

size_t ShardOf(int64_t id) { return static_cast<size_t>(static_cast<uint64_t>(id) % Directory::kShards); }
// The top bits: the tables themselves use the hash modulo their bucket count.
size_t ShardOf(const FoldKey& k) { return static_cast<size_t>((static_cast<uint64_t>(k.hash) >> 40) % Directory::kShards); }
size_t ShardOf(const WorkspaceKey& k) {
  return static_cast<size_t>((static_cast<uint64_t>(k.hash) >> 40) % Directory::kShards);
}

AuthzOutcome DenyEarly(std::string rule, std::string message) {
  AuthzOutcome o;
  o.reasons.push_back({std::move(rule), Effect::kDeny, std::move(message)});
  return o;
}

}  // namespace

class Directory::OrgPart {
 public:
  OrgPart() = default;
  OrgPart(const OrgPart&) = delete;
  OrgPart& operator=(const OrgPart&) = delete;

  // Entries equal to the previous part's are those very entries, so the
  // global indexes (which point at entries) change only for the users and
  // workspaces that changed.
  std::unordered_map<int64_t, std::shared_ptr<const WorkspaceEntry>> workspaces;  // by id
  std::unordered_map<FoldedString, std::shared_ptr<const UserEntry>, FoldHash, FoldEq> users;  // by email
  std::vector<int64_t> user_ids;                                       // sorted
  std::vector<std::pair<std::string, std::string>> settings;
};

// An organization's part, and a copy of its settings beside it (one
// indirection less for SettingsMask, on every request).
struct Directory::OrgSlot {
  std::shared_ptr<const OrgPart> part;
  std::vector<std::pair<std::string, std::string>> settings;  // part->settings
  bool operator==(const OrgSlot& o) const { return part == o.part; }
};
struct Directory::OrgShard : std::unordered_map<int64_t, OrgSlot> {};
struct Directory::EmailShard : std::unordered_map<FoldedString, const UserEntry*, FoldHash, FoldEq> {};
struct Directory::IdShard : std::unordered_map<int64_t, int64_t> {};
struct Directory::WorkspaceShard
    : std::unordered_map<StoredWorkspaceKey, const WorkspaceEntry*, WorkspaceKeyHash, WorkspaceKeyEq> {};
struct Directory::WorkspaceIdShard : std::unordered_map<int64_t, const WorkspaceEntry*> {};

// Edits a directory's Shards that is not published yet: the first change to
// a shard replaces it by a copy this editor owns; shards it does not change
// stay shared with the directory they came from.
template <typename Shard>
class Directory::Editor {
 public:
  explicit Editor(Shards<Shard>& shards) : shards_(shards) {}

  template <typename K, typename V>
  void Set(const K& key, const V& value) {
    const size_t i = ShardOf(key);
    if (const Shard* s = shards_[i].get()) {
      auto it = s->find(key);
      if (it != s->end() && it->second == value) return;
    }
    Mutable(i).insert_or_assign(typename Shard::key_type(key), value);
  }
  // Erases `key` when it maps to `value` (an entry another organization took
  // over meanwhile stays).
  template <typename K, typename V>
  void EraseIf(const K& key, const V& value) {
    const size_t i = ShardOf(key);
    const Shard* s = shards_[i].get();
    if (s == nullptr) return;
    auto it = s->find(key);
    if (it == s->end() || !(it->second == value)) return;
    Shard& m = Mutable(i);
    m.erase(m.find(key));
  }

  template <typename K>
  void Erase(const K& key) {
    const size_t i = ShardOf(key);
    if (shards_[i] == nullptr || !shards_[i]->contains(key)) return;
    Shard& m = Mutable(i);
    m.erase(m.find(key));
  }

 private:
  Shard& Mutable(size_t i) {
    if (!owned_[i]) {
      owned_[i] = shards_[i] ? std::make_shared<Shard>(*shards_[i]) : std::make_shared<Shard>();
      shards_[i] = owned_[i];
    }
    return *owned_[i];
  }

  Shards<Shard>& shards_;
  std::array<std::shared_ptr<Shard>, kShards> owned_;
};

namespace {

bool SameUser(const Directory::UserEntry& a, const Directory::UserEntry& b) {
  return a.id == b.id && a.org_id == b.org_id && a.email == b.email && a.org_role == b.org_role &&
         a.workspace_roles == b.workspace_roles;
}

bool SameWorkspace(const Directory::WorkspaceEntry& a, const Directory::WorkspaceEntry& b) {
  return a.id == b.id && a.org_id == b.org_id && a.name == b.name && a.type == b.type;
}

}  // namespace

// Reads one organization's part (inside the caller's read snapshot), reusing
// the entries of `old` (its previous part, or null) that did not change.
Result<std::shared_ptr<const Directory::OrgPart>> Directory::ReadOrgPart(Store& store, int64_t org_id,
                                                                         const OrgPart* old) {
  auto part = std::make_shared<OrgPart>();
  auto wss = store.ListWorkspaces(org_id);
  if (!wss.ok()) return wss.status();
  for (const Workspace& w : *wss) {
    WorkspaceEntry entry{w.id, org_id, w.name, w.type};
    if (old != nullptr) {
      auto it = old->workspaces.find(w.id);
      if (it != old->workspaces.end() && SameWorkspace(*it->second, entry)) {
        part->workspaces.emplace(w.id, it->second);
        continue;
      }
    }
    part->workspaces.emplace(w.id, std::make_shared<const WorkspaceEntry>(std::move(entry)));
  }
  auto users = store.ListUsers(org_id);
  if (!users.ok()) return users.status();
  std::unordered_map<FoldedString, UserEntry, FoldHash, FoldEq> read;
  for (const User& u : *users) {
    if (read.try_emplace(FoldedString(u.email), UserEntry{u.id, org_id, u.email, u.org_role, {}}).second) {
      part->user_ids.push_back(u.id);
    }
  }
  std::sort(part->user_ids.begin(), part->user_ids.end());
  // A user's memberships are in its own organization's workspaces (the
  // store refuses any other).
  for (const Workspace& w : *wss) {
    auto members = store.ListMemberships(w.id);
    if (!members.ok()) return members.status();
    for (const Membership& m : *members) {
      auto it = read.find(FoldKey(m.user_email));
      if (it != read.end()) it->second.workspace_roles[w.id] = m.workspace_role;
    }
  }
  part->users.reserve(read.size());
  for (auto& [email, entry] : read) {
    if (old != nullptr) {
      auto it = old->users.find(email);
      if (it != old->users.end() && SameUser(*it->second, entry)) {
        part->users.emplace(email, it->second);
        continue;
      }
    }
    part->users.emplace(email, std::make_shared<const UserEntry>(std::move(entry)));
  }
  auto settings = store.ListSettings(org_id);
  if (!settings.ok()) return settings.status();
  for (const Setting& st : *settings) part->settings.emplace_back(st.name, st.value);
  return std::shared_ptr<const OrgPart>(std::move(part));
}

void Directory::Replace(const std::vector<std::pair<int64_t, std::shared_ptr<const OrgPart>>>& parts) {
  Editor<OrgShard> orgs(orgs_);
  Editor<EmailShard> emails(emails_);
  Editor<IdShard> user_orgs(user_orgs_);
  Editor<WorkspaceShard> workspaces(workspaces_);
  Editor<WorkspaceIdShard> workspace_ids(workspace_ids_);
  // Entries of the old parts first, then the new parts' (a user or
  // workspace that moved between two of them ends in its new organization).
  for (const auto& [org, part] : parts) {
    const OrgPart* old = org_part(org);
    if (old == nullptr) continue;
    for (const auto& [email, u] : old->users) {
      const auto now = part ? part->users.find(email) : old->users.end();
      if (!part || now == part->users.end() || now->second != u) emails.EraseIf(FoldKey(email.text), u.get());
    }
    for (int64_t id : old->user_ids) {
      if (!part || !std::binary_search(part->user_ids.begin(), part->user_ids.end(), id)) user_orgs.EraseIf(id, org);
    }
    for (const auto& [id, w] : old->workspaces) {
      const auto now = part ? part->workspaces.find(id) : old->workspaces.end();
      if (!part || now == part->workspaces.end() || now->second != w) {
        workspaces.EraseIf(WorkspaceKey(org, w->name), w.get());
        workspace_ids.EraseIf(id, w.get());
      }
    }
    user_count_ -= old->users.size();
    workspace_count_ -= old->workspaces.size();
    --org_count_;
  }
  for (const auto& [org, part] : parts) {
    if (!part) {
      orgs.Erase(org);
      continue;
    }
    for (const auto& [email, u] : part->users) {
      emails.Set(FoldKey(email.text), u.get());
      user_orgs.Set(u->id, org);
    }
    for (const auto& [id, w] : part->workspaces) {
      workspaces.Set(WorkspaceKey(org, w->name), w.get());
      workspace_ids.Set(id, w.get());
    }
    orgs.Set(org, OrgSlot{part, part->settings});
    user_count_ += part->users.size();
    workspace_count_ += part->workspaces.size();
    ++org_count_;
  }
}

Result<std::shared_ptr<const Directory>> Directory::Load(Store& store) {
  std::vector<std::pair<int64_t, std::shared_ptr<const OrgPart>>> parts;
  // One consistent snapshot that never waits for (or blocks) a writer.
  Status st = store.ReadSnapshot([&]() -> Status {
    auto orgs = store.ListOrganizations();
    if (!orgs.ok()) return orgs.status();
    for (const Organization& org : *orgs) {
      auto part = ReadOrgPart(store, org.id, nullptr);
      if (!part.ok()) return part.status();
      parts.emplace_back(org.id, std::move(part).value());
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  auto dir = std::make_shared<Directory>();
  dir->Replace(parts);
  return std::shared_ptr<const Directory>(std::move(dir));
}

Result<std::shared_ptr<const Directory>> Directory::Reload(Store& store, const Directory& old,
                                                           std::span<const int64_t> orgs) {
  std::vector<int64_t> ids(orgs.begin(), orgs.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<std::pair<int64_t, std::shared_ptr<const OrgPart>>> parts;
  Status st = store.ReadSnapshot([&]() -> Status {
    for (int64_t id : ids) {
      auto org = store.GetOrganization(id);
      if (!org.ok()) {
        if (org.status().code() != StatusCode::kNotFound) return org.status();
        parts.emplace_back(id, nullptr);  // deleted: its part goes
        continue;
      }
      auto part = ReadOrgPart(store, id, old.org_part(id));
      if (!part.ok()) return part.status();
      parts.emplace_back(id, std::move(part).value());
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  auto dir = std::make_shared<Directory>(old);
  dir->Replace(parts);
  return std::shared_ptr<const Directory>(std::move(dir));
}

std::vector<int64_t> Directory::OrgsChangedBy(const ChangeBatch& batch) const {
  std::vector<int64_t> out = batch.directory_orgs;
  for (int64_t id : batch.directory_users) {
    const IdShard* s = user_orgs_[ShardOf(id)].get();
    if (s == nullptr) continue;
    auto it = s->find(id);
    if (it != s->end()) out.push_back(it->second);
  }
  for (int64_t id : batch.directory_workspaces) {
    if (const WorkspaceEntry* w = WorkspaceById(id)) out.push_back(w->org_id);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

const Directory::OrgSlot* Directory::org_slot(int64_t org_id) const {
  const OrgShard* s = orgs_[ShardOf(org_id)].get();
  if (s == nullptr) return nullptr;
  auto it = s->find(org_id);
  return it == s->end() ? nullptr : &it->second;
}

const Directory::OrgPart* Directory::org_part(int64_t org_id) const {
  const OrgSlot* slot = org_slot(org_id);
  return slot == nullptr ? nullptr : slot->part.get();
}

// Each lookup is one table: the indexes point at the entries (kept alive by
// their parts).
const Directory::WorkspaceEntry* Directory::FindWorkspace(int64_t org_id, std::string_view name) const {
  const WorkspaceKey key(org_id, name);
  const WorkspaceShard* s = workspaces_[ShardOf(key)].get();
  if (s == nullptr) return nullptr;
  auto it = s->find(key);
  return it == s->end() ? nullptr : it->second;
}

const Directory::WorkspaceEntry* Directory::WorkspaceById(int64_t id) const {
  const WorkspaceIdShard* s = workspace_ids_[ShardOf(id)].get();
  if (s == nullptr) return nullptr;
  auto it = s->find(id);
  return it == s->end() ? nullptr : it->second;
}

const Directory::UserEntry* Directory::FindUser(std::string_view email) const {
  const FoldKey key(email);
  const EmailShard* s = emails_[ShardOf(key)].get();
  if (s == nullptr) return nullptr;
  auto it = s->find(key);
  return it == s->end() ? nullptr : it->second;
}

uint64_t Directory::SettingsMask(const CompiledPolicy& policy, int64_t org_id) const {
  uint64_t mask = policy.default_settings();
  const OrgSlot* slot = org_slot(org_id);
  if (slot == nullptr) return mask;
  for (const auto& [name, value] : slot->settings) {
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
  // (A declared lifetime_seconds is an int: the validator refuses any other type.)
  const bool takes_lifetime =
      policy.FindParam(*id, kLifetimeParam).has_value() || action == kTokenCreateAction;
  for (const auto& [name, value] : params) {
    const auto slot = policy.FindParam(*id, name);
    if (takes_lifetime && name == kLifetimeParam) {
      auto v = ParseParamValue(policy, ValueType::kInt, value);
      if (!v || *v <= 0) {
        return invalid(name, value,
                       ": a token lifetime is a positive number of seconds or a duration (90s, 30d)");
      }
      if (slot) {
        q.params[*slot] = *v;
      } else {
        q.undeclared_lifetime = *v;
      }
      continue;
    }
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
