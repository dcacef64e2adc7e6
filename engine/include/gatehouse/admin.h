// Admin operations: every change an administrator makes, decided by the
// compiled policy for the acting identity and written to the audit log,
// allowed or denied (DESIGN.md principle 6).
//
// Each operation resolves the actor (a human user's email), asks the policy
// with the parameters the action declares, and then either applies the change
// in one transaction (with its audit record) or changes nothing and records
// the denial. Every write also deletes expired tokens.
//
// Errors: InvalidArgument (bad names, roles, durations: CLI exit 2),
// NotFound (unknown actor, user, workspace, API user, token: exit 4),
// AlreadyExists (exit 5), PermissionDenied (denied by policy: exit 3, the
// message names the deciding rule), and the store's I/O errors (exit 1).
//
// Thread safety: an Admin owns one store connection; use it from one thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gatehouse/authorizer.h"
#include "gatehouse/clock.h"
#include "gatehouse/decision_json.h"
#include "gatehouse/policy.h"
#include "gatehouse/status.h"
#include "gatehouse/store.h"

namespace gatehouse {

struct AdminOptions {
  std::string store_path = "./gatehouse.db";  // the store's locator: a SQLite path or postgresql://...
  std::string org;                            // organization name; "" = the only one
  std::string actor;                          // the acting identity (email)
  const Clock* clock = &RealClock::Instance();
};

// What `token create` returns: the secret, exactly once.
struct CreatedToken {
  std::string id, secret, name, api_user, workspace;
  int64_t created_at = 0, expires_at = 0;
};

struct SettingView {
  std::string name, description;
  bool value = false;
  bool is_default = true;
};

// RFC 7662 introspection of a token.
struct Introspection {
  bool active = false;
  TokenRecord token;  // filled when active
};

// What `gatehouse authorize` answers: the object POST /v1/authorize gives for
// the same question (`view`, its GraphQL time_thrown from the Admin's
// clock), and, when the user or the workspace is unknown, the NotFound the
// CLI exits with (the view is then the sidecar's denial for it).
struct AuthorizeAnswer {
  DecisionView view;
  Status not_found;
};

class Admin {
 public:
  // Creates the store, the organization, its workspace "Organization" (type
  // organization) and its owner (the policy's highest organization role).
  // AlreadyExists when the store exists. Bootstrapping is not policy-checked.
  static Status Init(const AdminOptions& options, const CompiledPolicy& policy, const std::string& org,
                     const std::string& owner_email);

  // Opens an existing store. FailedPrecondition (with "run `gatehouse init`")
  // when it does not exist; Corruption for a damaged file.
  static Result<std::unique_ptr<Admin>> Open(const AdminOptions& options, PolicyPtr policy);

  Status AddUser(const std::string& email, const std::string& org_role);
  Status CreateWorkspace(const std::string& name, const std::string& type, const std::string& owner_email);
  Status AddMember(const std::string& email, const std::string& workspace, const std::string& role);
  Status SetSetting(const std::string& name, const std::string& value);
  Result<std::vector<SettingView>> ShowSettings();
  Result<ApiUser> CreateApiUser(const std::string& name, const std::string& workspace,
                                const std::string& workspace_role, const std::string& org_role);
  Status PromoteApiUser(const std::string& name, const std::string& workspace_role);
  Status SetApiUserOrgRole(const std::string& name, const std::string& org_role);
  // The API users the actor may list (api_user.list), optionally in one workspace.
  Result<std::vector<ApiUser>> ListApiUsers(const std::string& workspace);
  // Deletes the API user and its tokens; returns how many tokens went with it.
  Result<int64_t> DeleteApiUser(const std::string& name);
  Result<CreatedToken> CreateToken(const std::string& api_user, const std::string& name,
                                   const std::string& expires_in);
  // Active tokens the actor may list (token.list), optionally of one API user.
  Result<std::vector<TokenRecord>> ListTokens(const std::string& api_user);
  Status RevokeToken(const std::string& token_id);
  Result<std::vector<AuditRecord>> Audit(int limit);
  // Deletes expired tokens now; returns how many.
  Result<int64_t> Gc();

  // Read-only checks (no actor needed, nothing audited).
  Introspection VerifyToken(const std::string& token);
  // Decides for a token or else a user's email, as the sidecar does (see
  // AuthorizeAnswer). Errors: InvalidArgument for a malformed question (the
  // sidecar's 400 message), the store's.
  Result<AuthorizeAnswer> Authorize(const std::string& action, const std::string& workspace,
                                    const std::string& token, const std::string& user);
  const CompiledPolicy& policy() const { return *policy_; }
  Store& store() { return *store_; }

  Admin(std::unique_ptr<Store> store, PolicyPtr policy, AdminOptions options);

 private:
  struct Ctx;
  Result<Organization> Org();
  Status MayListSomewhere(Ctx& c, const std::string& action);
  // Runs one audited, policy-decided change. `body` decides (through `ctx`)
  // and writes; on denial nothing it wrote stays and the denial is audited.
  Status Change(const std::string& action, const std::string& target,
                const std::function<Status(Ctx&)>& body);

  std::unique_ptr<Store> store_;
  PolicyPtr policy_;
  AdminOptions options_;
};

}  // namespace gatehouse
