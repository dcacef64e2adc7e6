// Authorizing a request from outside: who is asking (a token or a user's
// email), which action, in which workspace, with which request parameters.
//
// Directory is an immutable snapshot of the store's organizations,
// workspaces, settings, users and memberships (not tokens: those come from a
// TokenIndex or Store::FindTokenByHash). Build one with Directory::Load and
// share it as shared_ptr<const Directory>. When the store changes, a reader
// following the change feed builds the next one with Directory::Reload: it
// reads only the organizations the batch names (OrgsChangedBy) and shares
// every other organization's part with the directory before it.
//
// Layout. Each organization's workspaces, users (with their memberships) and
// settings are one immutable part (OrgPart), held by shared_ptr<const> and
// shared between successive directories; a reloaded part reuses the entries
// of the previous one that did not change. The lookups — a user by email, a
// workspace by organization and name or by id, an organization's part and
// settings — are hash maps from keys to entries, split into kShards shards,
// each its own shared_ptr<const>: a reload copies the shard pointers, and only
// the shards whose entries change (a changed, added or removed user or
// workspace; the reloaded organizations' slots) are copied. A role change
// copies two shards. Each lookup is one hash of its key and one table probe,
// and allocates nothing.
//
// Authorize() is a pure function over a policy and a directory: thread-safe,
// and it never allows on anything unknown.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gatehouse/policy.h"
#include "gatehouse/status.h"
#include "gatehouse/store.h"
#include "gatehouse/token_index.h"

namespace gatehouse {

class Directory {
 public:
  struct WorkspaceEntry {
    int64_t id = 0;
    int64_t org_id = 0;
    std::string name;
    std::string type;
  };
  struct UserEntry {
    int64_t id = 0;
    int64_t org_id = 0;
    std::string email;
    std::string org_role;
    std::unordered_map<int64_t, std::string> workspace_roles;  // by workspace id
  };

  // One organization's workspaces, users and settings (immutable; shared
  // between successive directories). Opaque: its identity says whether a
  // reload shared it (org_part below).
  class OrgPart;

  // Reads the whole directory in one read transaction. Errors: the store's.
  static Result<std::shared_ptr<const Directory>> Load(Store& store);
  // The directory `old` with the parts of `orgs` read again from the store,
  // in one read transaction (or the caller's ReadSnapshot: the batch's);
  // an organization that no longer exists is dropped. Every other
  // organization's part is the very same as in `old`. Equal, lookup for
  // lookup, to Load(store) when `orgs` covers every organization whose rows
  // changed since `old` was read (OrgsChangedBy). Errors: the store's.
  static Result<std::shared_ptr<const Directory>> Reload(Store& store, const Directory& old,
                                                         std::span<const int64_t> orgs);
  // The organizations whose parts a batch read after this directory changed:
  // the batch's directory_orgs, and the organizations this directory has for
  // the batch's users and workspaces (deleted ones, or ones that moved).
  // Sorted, without duplicates.
  std::vector<int64_t> OrgsChangedBy(const ChangeBatch& batch) const;

  // An empty directory (every lookup fails).
  Directory() = default;

  // Case-insensitive (ASCII) lookups; nullptr when unknown. The pointers
  // stay valid while this Directory lives.
  const WorkspaceEntry* FindWorkspace(int64_t org_id, std::string_view name) const;
  const UserEntry* FindUser(std::string_view email) const;
  const WorkspaceEntry* WorkspaceById(int64_t id) const;
  // The organization's settings as the policy sees them: declared defaults,
  // overridden by the values set in the store.
  uint64_t SettingsMask(const CompiledPolicy& policy, int64_t org_id) const;
  // The organization's part; nullptr when the directory has no such
  // organization.
  const OrgPart* org_part(int64_t org_id) const;

  size_t org_count() const { return org_count_; }
  size_t workspace_count() const { return workspace_count_; }
  size_t user_count() const { return user_count_; }

  // How many shards each global lookup is split into.
  static constexpr size_t kShards = 256;

 private:
  struct OrgSlot;           // an organization's part and settings
  struct OrgShard;          // organization id → its slot
  struct EmailShard;        // email (case-insensitive) → the user's entry
  struct IdShard;           // user id → organization id
  struct WorkspaceShard;    // organization id and name (case-insensitive) → entry
  struct WorkspaceIdShard;  // workspace id → entry
  template <typename Shard>
  using Shards = std::array<std::shared_ptr<const Shard>, kShards>;
  template <typename Shard>
  class Editor;  // copy-on-write edits of Shards (authorizer.cc)

  static Result<std::shared_ptr<const OrgPart>> ReadOrgPart(Store& store, int64_t org_id, const OrgPart* old);
  const OrgSlot* org_slot(int64_t org_id) const;

  // Publishes `parts` (null: the organization is gone) in place of this
  // directory's parts of the same organizations, with their index entries.
  void Replace(const std::vector<std::pair<int64_t, std::shared_ptr<const OrgPart>>>& parts);

  Shards<OrgShard> orgs_;
  Shards<EmailShard> emails_;
  Shards<IdShard> user_orgs_;
  Shards<WorkspaceShard> workspaces_;
  Shards<WorkspaceIdShard> workspace_ids_;
  size_t org_count_ = 0;
  size_t workspace_count_ = 0;
  size_t user_count_ = 0;
};

// Who is asking: a human user or an API user (through one of its tokens).
struct Subject {
  PrincipalKind kind = PrincipalKind::kUser;
  int64_t id = 0;    // user id or API user id
  std::string name;  // email or API user name
  int64_t org_id = 0;
  std::string org_role;
  // API users only: their one workspace and their role in it.
  int64_t workspace_id = 0;
  std::string workspace_name;
  std::string workspace_role;
  std::string token_id;  // when the subject comes from a token
};

Subject SubjectOfToken(const VerifiedToken& token);
Subject SubjectOfToken(const TokenRecord& token);
// nullopt when the email is unknown.
std::optional<Subject> SubjectOfUser(const Directory& dir, std::string_view email);

// A question its asker put as text (an action name, a workspace name, a
// user's email, parameters as text), resolved against one policy in the one
// step that may refuse it as malformed: ParseQuestion. Authorize then
// decides it and can only allow or deny. (The sidecar, the CLI and the shadow
// policy all go through this pair, so a request is refused as malformed, and
// with the same words, in one place only.)
struct Question {
  ActionId action = kNoAction;
  const ActionInfo* info = nullptr;  // the action's declaration in the policy
  std::string_view workspace;        // as asked (a view into the caller's text)
  // request.NAME by parameter slot, as Request::params holds them.
  std::array<int64_t, kMaxParams> params{};
  // token.create's lifetime_seconds when the action does not declare it: the
  // compiled table has no cap rule then, so Authorize applies
  // tokens.max_lifetime to it.
  std::optional<int64_t> undeclared_lifetime;
};

// Resolves a question against `policy`. Errors (InvalidArgument; the message
// is the 400's `error`, the CLI's stderr line): an unknown action; a
// workspace or user name that could not have been stored (gatehouse/text.h);
// a parameter value invalid for its declared type; a token lifetime that is
// not a positive number of seconds or a duration. Parameters the action does
// not declare are ignored (CONTRACT.md), except token.create's lifetime.
Result<Question> ParseQuestion(const CompiledPolicy& policy, std::string_view action,
                               std::string_view workspace,
                               const std::optional<std::string>& user,
                               const std::vector<std::pair<std::string, std::string>>& params);

// A Question for a route's action (forward-auth), which exists by
// construction: nothing to parse, and the route declares no parameters.
Question RouteQuestion(const CompiledPolicy& policy, ActionId action, std::string_view workspace);

struct AuthzOutcome {
  bool allow = false;
  Decision decision;         // valid when `decided`
  bool decided = false;      // false: denied before the policy was asked (unknown workspace, role...)
  std::vector<Reason> reasons;
  std::string workspace_role;  // the subject's role in the target workspace, as decided
  std::string workspace_type;
  // The target workspace as the store spells it (lookups ignore case), when
  // it was found: what forward-auth's X-Gatehouse-Workspace carries.
  std::string workspace_name;
  std::optional<GraphqlTemplate> graphql;  // the action's on_deny error, when denied
  // The resolved request of `action` the policy decided, when `decided` (the
  // token.use gate is that request with the action token.use): what the
  // decision log records so that `policy replay` can decide it again.
  Request request;
};

// The action that says where a token may act at all (optional in a policy).
inline constexpr std::string_view kTokenUseAction = "token.use";
// The action that creates a token, its lifetime parameter, and the rule id of
// the tokens.max_lifetime cap (enforced whatever the action declares).
inline constexpr std::string_view kTokenCreateAction = "token.create";
inline constexpr const char* kLifetimeParam = "lifetime_seconds";
inline constexpr const char* kMaxLifetimeRuleId = "tokens.max_lifetime";

// Decides `question` (ParseQuestion'd against this same `policy`) for
// `subject`. Never a malformed request: a name the store does not know, a
// role or workspace type the policy does not declare, and a lifetime above
// tokens.max_lifetime are denials. For an API user, when the policy declares
// token.use, that is decided first and a denial of it is the answer (the
// token may not act here at all).
AuthzOutcome Authorize(const CompiledPolicy& policy, const Directory& dir, const Subject& subject,
                       const Question& question);

// Both steps, for callers that hold the question as text and decide it once
// (the CLI's own checks, the shadow policy's candidate): ParseQuestion's
// errors, else Authorize's outcome.
Result<AuthzOutcome> Authorize(const CompiledPolicy& policy, const Directory& dir,
                               const Subject& subject, std::string_view action,
                               std::string_view workspace,
                               const std::vector<std::pair<std::string, std::string>>& params = {});

// Parses a request parameter's text for the parameter's type; nullopt when invalid.
std::optional<int64_t> ParseParamValue(const CompiledPolicy& policy, ValueType type, std::string_view text);

}  // namespace gatehouse
