// Store: where Gatehouse keeps organizations, workspaces, users, API users,
// tokens (hashes only), settings and the audit log.
//
// Store is an abstract interface, opened by locator (OpenStore, CreateStore
// below) whatever the backend: SQLite (one file in WAL mode, the CLI writes
// it, any number of sidecars on the same machine read it) or PostgreSQL
// (sidecars on many hosts). Both keep the same semantics: the status codes
// below, case-insensitive names, cascading API user deletion, an append-only
// audit log, all-or-nothing Transaction(). What only one backend has lives
// in its own internal header (engine/src/store/sqlite_store.h, pg_store.h).
//
// The store is policy-agnostic: roles, workspace types and setting values are
// kept as the policy's names (TEXT). It checks none of them against a policy;
// the admin layer does.
//
// Names: organization names, workspace names (per organization), user emails
// (globally) and API user names (per organization) are unique without regard
// to ASCII case ("Marketing" and "marketing" clash; lookups find either).
//
// Time: the store never reads a clock. Every time (created_at, expires_at,
// audit time, `now`) is passed in, in seconds since the Unix epoch.
//
// Errors, for every method:
//   NotFound            the named or numbered thing does not exist
//   AlreadyExists       a unique name is already taken
//   IoError             disk trouble, or "store is locked by another writer"
//                       after the busy timeout
//   Corruption          the file is damaged or not a Gatehouse store
//   FailedPrecondition  the store does not exist, was opened read-only, or
//                       the write is refused by the schema (audit log)
//   InvalidArgument     a bad argument (e.g. a negative limit)
//
// Thread safety: a Store object is used by one thread at a time (it owns one
// database connection and its cached prepared statements). A process that
// needs the store on several threads opens one Store per thread; several
// Store objects and several processes may use the same file at once.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/status.h"
#include "gatehouse/token_record.h"

namespace gatehouse {

struct StoreOptions {
  // How long a write waits for another process's write transaction to end
  // before failing with IoError "store is locked by another writer".
  // Default 5000 ms.
  int busy_timeout_ms = 5000;
  // Open without write access (the sidecar): every write fails with
  // FailedPrecondition, and an old schema is not migrated. Default false.
  bool read_only = false;
  // Wait for the disk on every commit (SQLite synchronous=FULL), so that a
  // committed revocation survives a power failure. Off: synchronous=NORMAL,
  // faster, still safe against process crashes. Default true.
  bool durable_commits = true;
  // A file descriptor the caller makes readable to stop (e.g. an eventfd
  // written by a Stop()): a store on the network polls it beside its socket,
  // and once it is readable every wait — connecting, a statement,
  // WaitForChange — ends at once (a statement with IoError "stopped while
  // ...", the connection closed; WaitForChange with false). Owned by the
  // caller, kept open while the Store lives. SQLite does not wait on the
  // network and ignores it. Default -1: none.
  int cancel_fd = -1;
};

struct Organization {
  int64_t id = 0;
  std::string name;
};

struct Workspace {
  int64_t id = 0;
  int64_t org_id = 0;
  std::string name;
  std::string type;                      // policy name: shared, personal, organization, ...
  std::optional<int64_t> owner_user_id;  // e.g. a personal workspace's owner
};

// A human user, identified by email.
struct User {
  int64_t id = 0;
  int64_t org_id = 0;
  std::string email;
  std::string org_role;
};

struct Membership {
  int64_t workspace_id = 0;
  int64_t user_id = 0;
  std::string user_email;
  std::string workspace_role;
};

struct ApiUser {
  int64_t id = 0;
  int64_t org_id = 0;
  std::string name;
  std::string org_role;
  int64_t workspace_id = 0;  // exactly one workspace
  std::string workspace_name;
  std::string workspace_role;
  std::string created_by;  // email of the creator
  int64_t created_at = 0;
};

struct NewApiUser {
  int64_t workspace_id = 0;  // the organization is the workspace's
  std::string name;
  std::string org_role;
  std::string workspace_role;
  std::string created_by;
  int64_t created_at = 0;
};

// A token to insert. The secret is not here: the store never sees it.
struct NewToken {
  std::string id;  // public id (MintToken().id)
  int64_t api_user_id = 0;
  std::string name;
  TokenHash hash{};  // HashToken(secret)
  int64_t created_at = 0;
  int64_t expires_at = 0;
  std::string created_by;
};

struct Setting {
  std::string name;
  std::string value;
};

// What the change feed says changed after a feed number, joined to the rows
// as they are now (in one snapshot): applying a batch twice is harmless.
struct ChangeBatch {
  int64_t after = 0;  // the feed number the batch starts after
  int64_t head = 0;   // the last feed number it covers (== after: nothing changed)
  int64_t changes = 0;  // how many feed rows it covers
  int64_t epoch = 0;    // the feed's epoch (FeedPosition().epoch)
  // Changed tokens that exist now, with their principal as it is now.
  std::vector<TokenRecord> tokens;
  // Changed tokens that no longer exist (revoked, deleted, swept, cascaded).
  std::vector<TokenHash> removed_tokens;
  // API users that changed, or whose workspace changed, as they are now.
  std::vector<TokenPrincipal> principals;
  // API users that no longer exist (their tokens are refused at once).
  std::vector<int64_t> removed_api_users;
  // Organizations, users, workspaces, memberships or settings changed: the
  // directory must be re-read (in the same snapshot as the batch).
  bool directory_changed = false;
  // Which organizations' parts of the directory changed, each sorted and
  // without duplicates:
  //  - directory_orgs: changed organizations and organizations whose
  //    settings changed, and the organizations, as they are now, of the
  //    changed users, workspaces and memberships that still exist;
  //  - directory_users, directory_workspaces: the ids of every changed user
  //    and workspace (a membership names both), whether or not it still
  //    exists. The store can no longer say which organization a deleted row
  //    was in (or a moved one was in before), so a reader maps these through
  //    the directory it held before the batch too (Directory::OrgsChangedBy).
  // All empty when directory_changed is false.
  std::vector<int64_t> directory_orgs;
  std::vector<int64_t> directory_users;
  std::vector<int64_t> directory_workspaces;
};

enum class AuditDecision : uint8_t { kDeny = 0, kAllow = 1 };

// One audit record: who tried what on what, and what the policy said.
struct AuditRecord {
  int64_t id = 0;  // assigned by AppendAudit; increasing
  int64_t time = 0;
  std::optional<int64_t> org_id;  // absent when the organization was not resolved
  std::string actor;              // the acting identity, e.g. an email
  std::string action;             // e.g. token.create
  std::string target;             // e.g. apiuser:ci-bot or token:tok_...
  AuditDecision decision = AuditDecision::kDeny;
  std::string rule;     // the deciding rule id, may be empty
  std::string message;  // the decision's message, may be empty
  std::string detail;   // free text (JSON by convention), never a secret
};

// A per-request stamp of a store's commits, read without a query: opaque
// bytes that two reads return equal only when nothing has committed in
// between (false positives allowed, false negatives never). Backends fill
// what they use and leave the rest zero. (SQLite's is its WAL-index header,
// two 48-byte copies, whose change counter moves with every transaction; a
// commit writes it last, so a reader that sees it unchanged after a writer
// returned knows nothing committed.)
using StoreStamp = std::array<unsigned char, 96>;

// A reader's way to see, per request, whether anything committed since it
// last looked (Store::Watch()). Thread-safe: Read may be called from any
// thread at once; it takes no lock and makes no database call.
class StoreWatch {
 public:
  virtual ~StoreWatch() = default;
  // Reads the stamp. False when it cannot be read (or the backend has not
  // built it yet): treat as "changed".
  virtual bool Read(StoreStamp* out) const = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // ---- Organizations ----

  // Creates an organization. AlreadyExists when the name is taken.
  virtual Result<Organization> CreateOrganization(std::string_view name) = 0;
  // The organization with this name (case-insensitive). NotFound if none.
  virtual Result<Organization> FindOrganization(std::string_view name) = 0;
  virtual Result<Organization> GetOrganization(int64_t id) = 0;
  // The only organization: NotFound when the store holds none,
  // InvalidArgument ("pass --org") when it holds several.
  virtual Result<Organization> TheOnlyOrganization() = 0;
  virtual Result<std::vector<Organization>> ListOrganizations() = 0;

  // ---- Workspaces ----

  // Creates a workspace in `org_id`. AlreadyExists when the organization has
  // a workspace of that name; NotFound when the organization or the owner
  // does not exist (the owner must belong to the organization).
  virtual Result<Workspace> CreateWorkspace(int64_t org_id, std::string_view name,
                                            std::string_view type,
                                            std::optional<int64_t> owner_user_id) = 0;
  // The workspace named `name` (case-insensitive) in `org_id`. NotFound if none.
  virtual Result<Workspace> FindWorkspace(int64_t org_id, std::string_view name) = 0;
  virtual Result<Workspace> GetWorkspace(int64_t id) = 0;
  // The organization's workspaces, by name.
  virtual Result<std::vector<Workspace>> ListWorkspaces(int64_t org_id) = 0;

  // ---- Human users ----

  // Adds a user to an organization. AlreadyExists when the email is taken
  // (in any organization); NotFound when the organization does not exist.
  virtual Result<User> AddUser(int64_t org_id, std::string_view email,
                               std::string_view org_role) = 0;
  // The user with this email (case-insensitive). NotFound if none.
  virtual Result<User> FindUserByEmail(std::string_view email) = 0;
  virtual Result<User> GetUser(int64_t id) = 0;
  virtual Result<std::vector<User>> ListUsers(int64_t org_id) = 0;

  // ---- Memberships (human user × workspace → workspace role) ----

  // Sets (adds or replaces) the user's role in the workspace. NotFound when
  // either does not exist or they belong to different organizations.
  virtual Status SetMembership(int64_t workspace_id, int64_t user_id,
                               std::string_view workspace_role) = 0;
  // The user's role in the workspace; NotFound when not a member.
  virtual Result<std::string> GetMembershipRole(int64_t workspace_id, int64_t user_id) = 0;
  // The workspace's members, by email.
  virtual Result<std::vector<Membership>> ListMemberships(int64_t workspace_id) = 0;

  // ---- API users ----

  // Creates an API user in a workspace (and the workspace's organization).
  // AlreadyExists when the organization has an API user of that name;
  // NotFound when the workspace does not exist.
  virtual Result<ApiUser> CreateApiUser(const NewApiUser& api_user) = 0;
  // The API user named `name` (case-insensitive) in `org_id`. NotFound if none.
  virtual Result<ApiUser> FindApiUser(int64_t org_id, std::string_view name) = 0;
  virtual Result<ApiUser> GetApiUser(int64_t id) = 0;
  // The organization's API users, by name; only those of `workspace_id` if given.
  virtual Result<std::vector<ApiUser>> ListApiUsers(int64_t org_id,
                                                    std::optional<int64_t> workspace_id) = 0;
  // Changes an API user's workspace role / organization role. NotFound if no such API user.
  virtual Status SetApiUserWorkspaceRole(int64_t api_user_id, std::string_view role) = 0;
  virtual Status SetApiUserOrgRole(int64_t api_user_id, std::string_view role) = 0;
  // Deletes an API user and all its tokens, in one transaction. Returns the
  // number of tokens deleted. NotFound if no such API user (nothing changes).
  virtual Result<int64_t> DeleteApiUser(int64_t api_user_id) = 0;

  // ---- Tokens (hashes only) ----

  // Inserts a token. AlreadyExists when the public id or the hash is taken;
  // NotFound when the API user does not exist.
  virtual Status InsertToken(const NewToken& token) = 0;
  // The token with this hash, with its API user, workspace and roles,
  // WHETHER OR NOT IT HAS EXPIRED: check TokenRecord::IsExpiredAt(now).
  // NotFound if none.
  virtual Result<TokenRecord> FindTokenByHash(const TokenHash& hash) = 0;
  // The token with this public id, expired or not. NotFound if none.
  virtual Result<TokenRecord> FindTokenById(std::string_view token_id) = 0;
  // The organization's tokens that are not expired at `now`, oldest first;
  // only those of `api_user_id` if given.
  virtual Result<std::vector<TokenRecord>> ListTokens(int64_t org_id,
                                                      std::optional<int64_t> api_user_id,
                                                      int64_t now) = 0;
  // Deletes (revokes) a token. NotFound if no such token.
  virtual Status DeleteToken(std::string_view token_id) = 0;
  // Deletes every token with expires_at <= now. Returns how many.
  virtual Result<int64_t> DeleteExpiredTokens(int64_t now) = 0;
  // Every token of every organization not expired at `now`, for building a
  // TokenIndex. Calls `fn` once per token, from one read transaction (a
  // consistent snapshot); the record passed is reused between calls. Stops
  // and returns fn's error if fn fails.
  virtual Status ScanActiveTokens(int64_t now,
                                  const std::function<Status(const TokenRecord&)>& fn) = 0;
  // ScanActiveTokens gathered into a vector (fine for thousands of tokens;
  // for millions prefer ScanActiveTokens + TokenIndexBuilder).
  virtual Result<std::vector<TokenRecord>> LoadActiveTokens(int64_t now) = 0;

  // ---- Settings (organization × name → value, as text) ----

  // Sets a setting (adds or replaces). NotFound when the organization does not exist.
  virtual Status SetSetting(int64_t org_id, std::string_view name, std::string_view value) = 0;
  // The stored value; NotFound when never set (the policy's default applies).
  virtual Result<std::string> GetSetting(int64_t org_id, std::string_view name) = 0;
  // The organization's stored settings, by name.
  virtual Result<std::vector<Setting>> ListSettings(int64_t org_id) = 0;

  // ---- Audit log (append-only) ----

  // Appends a record (record.id is ignored). Returns the new record's id.
  virtual Result<int64_t> AppendAudit(const AuditRecord& record) = 0;
  // The newest `limit` records, newest first; only `org_id`'s if given.
  // InvalidArgument when limit < 0.
  virtual Result<std::vector<AuditRecord>> ListAudit(std::optional<int64_t> org_id,
                                                     int64_t limit) = 0;

  // ---- Transactions and change detection ----

  // Runs `body` in a write transaction, taken at once (BEGIN IMMEDIATE: wait
  // up to busy_timeout_ms for other writers, then IoError). Commits only if
  // body returns ok; otherwise (or if body throws) rolls back, leaving the
  // store as it was, and returns body's status. Nests: an inner Transaction
  // is a savepoint that rolls back alone. Store methods called inside body
  // take part in the transaction.
  virtual Status Transaction(const std::function<Status()>& body) = 0;

  // Runs `body` on one consistent snapshot of the store, without taking the
  // write lock (BEGIN DEFERRED): in WAL mode it neither waits for writers
  // nor blocks them, and it works on read-only stores. Inside a Transaction
  // it just runs `body`. Returns body's status, or the store's error.
  virtual Status ReadSnapshot(const std::function<Status()>& body) = 0;

  // A number that changes whenever another connection (any process) has
  // committed a change since the last call. Cheap (no disk read); the
  // sidecar calls it per request to notice CLI writes.
  virtual Result<int64_t> DataVersion() = 0;

  // A number that changes with every committed change to the data decisions
  // read — organizations, users, workspaces, memberships, API users, tokens,
  // settings — and not when only audit records were appended. The sidecar
  // re-reads everything only when it moved.
  virtual Result<int64_t> ContentGeneration() = 0;

  // The schema version of the store (after any migration done by Open).
  virtual Result<int> SchemaVersion() = 0;

  // ---- The change feed ----
  //
  // Every committed change to the data decisions read (not the audit log)
  // appends the changed rows' keys to a feed, numbered without gaps in commit
  // order. A reader loads everything once with ChangeHead() in the same
  // snapshot (ReadSnapshot), then applies ReadChangesSince(head) batches.

  // The number of the last change committed (0 before the first). Call it in
  // the ReadSnapshot that loads the data it should describe.
  virtual Result<int64_t> ChangeHead() = 0;
  // The feed's epoch: it changes when the content is replaced wholesale (a
  // restore), after which no earlier feed number means anything. A reader
  // keeps the epoch of its full load and loads everything again when a
  // batch's epoch differs. PostgreSQL: the stored epoch combined with the
  // server's WAL timeline, which a promotion moves: a replica promoted after
  // commits readers had applied (and whose feed numbers it may hand out
  // again) shows a new epoch without anyone renewing it.
  virtual Result<int64_t> FeedEpoch() = 0;
  // Everything changed after feed number `after`, in one snapshot (or in the
  // caller's ReadSnapshot). FailedPrecondition ("the change feed was pruned
  // past N") when the changes after `after` are no longer all kept, or when
  // more than `max_changes` feed rows are waiting: the reader must load
  // everything again. InvalidArgument when `after` is negative or ahead of
  // the head (a different store).
  virtual Result<ChangeBatch> ReadChangesSince(int64_t after, int64_t max_changes) = 0;
  // Drops feed rows so that at most `keep_last` remain; returns how many were
  // dropped. A reader that applied less than the new floor loads everything.
  virtual Result<int64_t> PruneChanges(int64_t keep_last) = 0;
  // Gives the feed a new stored epoch, in a write transaction: every reader
  // loads everything on its next catch-up. For when feed numbers may have
  // been reused or bypassed in a way the store cannot see: a failover that
  // keeps the timeline (a logical replica), a database restored with
  // pg_restore, rows changed with the triggers disabled. Returns the new
  // FeedEpoch().
  virtual Result<int64_t> RenewFeedEpoch() = 0;

  // ---- Following the store from another process ----
  //
  // A reader on another host cannot read a file's stamp: it subscribes. It
  // calls Subscribe() on a Store of its own, then loads everything, then
  // loops on WaitForChange(heartbeat) and catches up (ReadChangesSince) after
  // every wake-up, notified or not. Notifications only shorten the wait;
  // correctness never depends on them (a lost one is made up by the
  // heartbeat).

  // Starts listening for commits on this Store's connection (PostgreSQL:
  // LISTEN gatehouse_changes). Call it before the load, so that any commit
  // after the load's snapshot wakes the waiter. SQLite: nothing to do.
  virtual Status Subscribe() = 0;
  // Waits at most `timeout_ms` for a commit notification received since the
  // last call (one that arrived meanwhile, even during another statement on
  // this connection, counts at once). True when there was one, false on
  // timeout. IoError when the connection is lost (the caller opens a new
  // Store). SQLite sends no notifications: it sleeps `timeout_ms` and
  // returns false (its readers check the file's stamp per request instead).
  virtual Result<bool> WaitForChange(int timeout_ms) = 0;

  // A reader on the same machine as a file store may instead notice every
  // commit at once, per request, by a stamp it reads without a query
  // (StoreWatch above; SQLite: the WAL-index header). Null when the backend
  // has none (a reader then subscribes and bounds staleness by a lease), or
  // the file has no WAL index (the reader asks DataVersion() every time).
  virtual std::shared_ptr<const StoreWatch> Watch() { return nullptr; }
  // Whether what this Store opened is still there: Ok(false) when it is,
  // Ok(true) when its name now holds another store (a file restored by
  // rename: reopen and load everything), an error when it can no longer be
  // read (SQLite: the file is gone, unreadable to this process, or not a
  // SQLite file; the reader refuses every check).
  // Backends without a file: false (their errors come from queries).
  virtual Result<bool> Replaced() { return false; }
};

// The newest schema version this build reads and writes.
inline constexpr int kStoreSchemaVersion = 3;

// A store named by a locator, whatever its backend: "postgresql://..." or
// "postgres://..." (libpq's URI forms) is a PostgreSQL database; anything else
// is a SQLite file path. Callers name no backend.
//
// OpenStore opens an existing store; a SQLite file of an older schema is
// migrated (unless read-only), a PostgreSQL one never is. FailedPrecondition
// "store ... does not exist; run `gatehouse init`" when there is none;
// Corruption when a file is damaged, truncated, empty, or not a Gatehouse
// store; FailedPrecondition when its schema is older (read-only, or
// PostgreSQL) or newer than this build; IoError when it cannot be opened or
// reached.
Result<std::unique_ptr<Store>> OpenStore(const std::string& locator,
                                         const StoreOptions& options = {});
// What a new store is filled with before anyone may use it (the first
// organization, say); runs in the store's first write transaction.
using StoreInit = std::function<Status(Store& store)>;
// CreateStore creates a new store with the current schema (a SQLite file
// gets mode 0600), then runs `init`, if given, in one Transaction().
// AlreadyExists when the store exists (never touched); IoError when it
// cannot be created; otherwise init's error. A SQLite store that failed to
// be created or filled is removed, with its -wal and -shm files: nothing is
// left behind. (A PostgreSQL database is not ours to drop: it keeps the
// empty schema.)
Result<std::unique_ptr<Store>> CreateStore(const std::string& locator,
                                           const StoreOptions& options = {},
                                           const StoreInit& init = nullptr);
// Whether `locator` names a PostgreSQL store.
bool IsPostgresLocator(std::string_view locator);
// The locator as it may be shown (logs, errors): a password in a URI is
// replaced by "***".
std::string RedactLocator(std::string_view locator);
// Refuses a locator given on a command line that carries a password (it would
// show in `ps`): InvalidArgument naming PGPASSFILE / PGPASSWORD instead.
Status CheckCommandLineLocator(std::string_view locator);

}  // namespace gatehouse
