// Policies: load YAML policy files, compile them, decide.
//
// LoadPolicy reads one file or a folder (CONTRACT.md "Policy files"),
// validates everything, and compiles it into an immutable CompiledPolicy.
// A CompiledPolicy is shared as shared_ptr<const CompiledPolicy> and is safe to
// use from any number of threads; a reload builds a new one beside it.
// Decide() is the hot path: no allocation, no locks, no exceptions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/decision.h"

namespace gatehouse {

// One problem in a policy, with a 1-based position.
struct PolicyError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
  // "FILE:LINE:COL: message"
  std::string ToString() const;
};

enum class ValueType : uint8_t { kKind, kOrgRole, kWorkspaceRole, kWorkspaceType, kBool, kInt };

struct ParamInfo {
  std::string name;
  ValueType type = ValueType::kInt;
};

struct SettingInfo {
  std::string name;
  bool default_value = false;
  std::string description;
};

struct RuleInfo {
  std::string id;
  Effect effect = Effect::kAllow;  // kAllow: a permit rule; kDeny: a forbid rule
  std::string when;                // the condition as written
  std::string message;             // may be empty
};

// The GraphQL error an action's denial carries (on_deny.graphql), if any.
struct GraphqlTemplate {
  std::string field;     // e.g. importProject
  std::string name;      // e.g. PreconditionError
  std::string code;      // e.g. internal_error
  std::string message;
  int line = 2, column = 3;  // locations[0]
};

struct ActionInfo {
  std::string name;
  std::string description;
  std::vector<ParamInfo> params;  // slot i = params[i]
  std::vector<RuleInfo> rules;    // the action's rules, permits first, then forbids
  std::optional<GraphqlTemplate> graphql;
};

struct RouteMatch {
  ActionId action = kNoAction;
  std::string workspace;  // percent-decoded {workspace} path segment ("" if the route has none)
};

// One reason of a decision, for people and JSON.
struct Reason {
  std::string rule;
  Effect effect = Effect::kDeny;
  std::string message;
};

class CompiledPolicy {
 public:
  ~CompiledPolicy();
  CompiledPolicy(const CompiledPolicy&) = delete;
  CompiledPolicy& operator=(const CompiledPolicy&) = delete;

  // The hot path: a table lookup. Never fails; anything out of range denies
  // with Cause::kInvalidRequest.
  Decision Decide(const Request& request) const noexcept;

  // The policy's name and revision ("sha256:<hex>" of a canonical form, so
  // identical policies have identical revisions whatever their layout).
  const std::string& name() const;
  const std::string& revision() const;

  // Name → id lookups, done once at the edge. nullopt when unknown.
  // Role lookups accept "none" (kNoRole).
  std::optional<ActionId> FindAction(std::string_view name) const;
  std::optional<RoleId> FindOrgRole(std::string_view name) const;
  std::optional<RoleId> FindWorkspaceRole(std::string_view name) const;
  std::optional<TypeId> FindWorkspaceType(std::string_view name) const;
  std::optional<int> FindSetting(std::string_view name) const;
  std::optional<int> FindParam(ActionId action, std::string_view name) const;

  // Id → name. Out-of-range ids give "?".
  std::string_view OrgRoleName(RoleId id) const;
  std::string_view WorkspaceRoleName(RoleId id) const;
  std::string_view WorkspaceTypeName(TypeId id) const;
  int org_role_count() const;        // declared roles + 1 for "none"
  int workspace_role_count() const;  // declared roles + 1 for "none"
  int workspace_type_count() const;

  const std::vector<ActionInfo>& actions() const;
  const ActionInfo* action(ActionId id) const;  // nullptr when out of range
  const std::vector<SettingInfo>& settings() const;
  uint64_t default_settings() const;  // the settings bitmask of every default
  int64_t max_token_lifetime_seconds() const;  // tokens.max_lifetime; 0 when unset

  // Maps a method and a request target (path, optional query) to an action
  // and the {workspace} segment using the policy's routes. Splits the path at
  // '/' and percent-decodes each segment once (a malformed escape or one
  // decoding to '/' or NUL matches nothing), then matches as below.
  std::optional<RouteMatch> MatchRoute(std::string_view method, std::string_view target) const;
  // The same for a path already split into segments, each percent-decoded
  // exactly once by the caller (the sidecar's forward-auth path rule does it,
  // sidecar/forward_auth.h): nothing here decodes again. "/" is no segments.
  // Literals compare exactly; a placeholder matches any non-empty segment.
  std::optional<RouteMatch> MatchRoute(std::string_view method,
                                       const std::vector<std::string>& segments) const;

  // The reasons of a decision: every rule that matched, or the missing
  // permit(s) for a default deny. Allocates; not for the hot path.
  std::vector<Reason> Explain(const Decision& decision) const;
  // The message of the deciding rule (or a generated one).
  std::string DecidingMessage(const Decision& decision) const;
  // The id of the deciding rule, "" if none.
  std::string_view DecidingRule(const Decision& decision) const;

  // Memory held by the compiled tables, in bytes (for benchmarks and metrics).
  size_t TableBytes() const;

  struct Impl;
  explicit CompiledPolicy(std::unique_ptr<Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

using PolicyPtr = std::shared_ptr<const CompiledPolicy>;

// The outcome of loading: a policy, or every error found (sorted by file,
// line, column). Exactly one of the two is set.
struct PolicyLoad {
  PolicyPtr policy;
  std::vector<PolicyError> errors;
  // Files of a folder that were skipped, one each (line 0: ToString() gives
  // "FILE: warning: skipped: why"), whether or not the policy loaded. For the
  // caller to print; they never make a load fail.
  std::vector<PolicyError> warnings;
  // How many invariants were checked (and held) when the policy loaded.
  size_t invariants = 0;
  bool ok() const { return policy != nullptr; }
};

struct LoadOptions {
  // Invariant files or folders checked besides the policy folder's own
  // invariants/ (--invariants PATH). Default: none.
  std::vector<std::string> invariants;
};

// Loads a YAML file or a folder of policy files: *.yaml and *.yml, the
// extension in any case (tests/ and invariants/ are not policy; every other
// entry is skipped with a warning; see engine/src/policy/files.h). Bounded:
// files, nodes, nesting and tables have limits, each refused with a position.
// Once compiled, the policy is checked against every invariant of its
// folder's invariants/ and of options.invariants (gatehouse/invariants.h): a
// broken invariant is an error like any other (with a counterexample), an
// unreadable or ill-typed invariant too, and no policy is returned.
PolicyLoad LoadPolicy(const std::string& path);
PolicyLoad LoadPolicy(const std::string& path, const LoadOptions& options);

// Loads policy text held in memory; `file` names it in errors.
PolicyLoad LoadPolicyFromString(std::string_view yaml, const std::string& file = "<memory>");

// The default policy location: $GATEHOUSE_POLICY if set, else the installed
// share/gatehouse/policies beside the binary, else the source tree's policies/.
std::string DefaultPolicyPath();

// Parses a DURATION ("90s", "30d": a positive integer and one of s m h d w)
// into seconds. nullopt when malformed, zero, negative or overflowing.
std::optional<int64_t> ParseDuration(std::string_view text);
// Formats seconds as the largest exact unit ("365d", "90s").
std::string FormatDuration(int64_t seconds);

}  // namespace gatehouse
