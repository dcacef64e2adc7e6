// The SQLite implementation of Store. The only file that includes sqlite3.h.
//
// One connection per SqliteStore, opened in SQLite's multi-thread mode
// (SQLITE_OPEN_NOMUTEX): the Store contract is one thread at a time, so the
// per-call mutex of serialized mode would buy nothing. Statements are prepared
// once, on first use, with SQLITE_PREPARE_PERSISTENT, and reset after each use.

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "gatehouse/store.h"
#include "gatehouse/store_backup.h"
#include "store/schema.h"
#include "store/sqlite_store.h"
#include "store/sqlite_store_testing.h"

namespace gatehouse {
namespace {

#define GH_ASSIGN_OR_RETURN(lhs, expr)                    \
  auto&& lhs##_result_ = (expr);                          \
  if (!lhs##_result_.ok()) return lhs##_result_.status(); \
  auto& lhs = *lhs##_result_

// Removes a store file made by this process and the files SQLite keeps
// beside it (call it with no connection open on them).
void RemoveStoreFiles(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((path + suffix).c_str());
}

// Every statement the store runs, prepared lazily and cached.
enum class Sql : int {
  kBegin,
  kCommit,
  kRollback,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kDataVersion,
  kUserVersion,
  kContentGeneration,

  kInsertOrg,
  kFindOrg,
  kGetOrg,
  kListOrgs,

  kInsertWorkspace,
  kFindWorkspace,
  kGetWorkspace,
  kListWorkspaces,

  kInsertUser,
  kFindUser,
  kGetUser,
  kListUsers,

  kUpsertMembership,
  kGetMembership,
  kListMemberships,

  kInsertApiUser,
  kFindApiUser,
  kGetApiUser,
  kListApiUsers,
  kListApiUsersByWorkspace,
  kSetApiUserWorkspaceRole,
  kSetApiUserOrgRole,
  kDeleteApiUserTokens,
  kDeleteApiUser,

  kInsertToken,
  kFindTokenByHash,
  kFindTokenById,
  kListTokens,
  kListTokensByApiUser,
  kDeleteToken,
  kDeleteExpiredTokens,
  kScanActiveTokens,

  kUpsertSetting,
  kGetSetting,
  kListSettings,

  kInsertAudit,
  kListAudit,
  kListAuditByOrg,

  kChangeHead,
  kFeedEpoch,
  kPrunedThrough,
  kReadChanges,
  kPrincipalOfApiUser,
  kPrincipalsOfWorkspace,
  kOrgsOfChangedRows,
  kPruneChanges,
  kSetPrunedThrough,
  kSetFeedEpoch,

  kCount,
};

#define GH_WORKSPACE_COLUMNS "SELECT id, org_id, name, type, owner_user_id FROM workspaces "
#define GH_USER_COLUMNS "SELECT id, org_id, email, org_role FROM users "
#define GH_API_USER_COLUMNS                                                               \
  "SELECT a.id, a.org_id, a.name, a.org_role, a.workspace_id, w.name, a.workspace_role, " \
  "a.created_by, a.created_at FROM api_users a JOIN workspaces w ON w.id = a.workspace_id "
#define GH_TOKEN_COLUMNS                                                           \
  "SELECT t.public_id, t.name, t.hash, t.created_at, t.expires_at, t.created_by, " \
  "a.id, a.name, a.org_id, a.org_role, w.id, w.name, w.type, a.workspace_role "    \
  "FROM tokens t JOIN api_users a ON a.id = t.api_user_id "                        \
  "JOIN workspaces w ON w.id = a.workspace_id "
#define GH_PRINCIPAL_COLUMNS                                                          \
  "SELECT a.id, a.name, a.org_id, a.org_role, w.id, w.name, w.type, a.workspace_role " \
  "FROM api_users a JOIN workspaces w ON w.id = a.workspace_id "
#define GH_AUDIT_COLUMNS                                                                  \
  "SELECT id, time, org_id, actor, action, target, decision, rule, message, detail FROM " \
  "audit_log "

constexpr std::array<const char*, static_cast<size_t>(Sql::kCount)> kSqlText = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT gatehouse",
    "RELEASE gatehouse",
    "ROLLBACK TO gatehouse",
    "PRAGMA data_version",
    "PRAGMA user_version",
    "SELECT n FROM generation WHERE id = 1",

    "INSERT INTO organizations(name) VALUES (?1)",
    "SELECT id, name FROM organizations WHERE name = ?1",
    "SELECT id, name FROM organizations WHERE id = ?1",
    "SELECT id, name FROM organizations ORDER BY name, id",

    "INSERT INTO workspaces(org_id, name, type, owner_user_id) VALUES (?1, ?2, ?3, ?4)",
    GH_WORKSPACE_COLUMNS "WHERE org_id = ?1 AND name = ?2",
    GH_WORKSPACE_COLUMNS "WHERE id = ?1",
    GH_WORKSPACE_COLUMNS "WHERE org_id = ?1 ORDER BY name, id",

    "INSERT INTO users(org_id, email, org_role) VALUES (?1, ?2, ?3)",
    GH_USER_COLUMNS "WHERE email = ?1",
    GH_USER_COLUMNS "WHERE id = ?1",
    GH_USER_COLUMNS "WHERE org_id = ?1 ORDER BY email, id",

    "INSERT INTO memberships(workspace_id, user_id, role) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
    "SELECT role FROM memberships WHERE workspace_id = ?1 AND user_id = ?2",
    "SELECT m.workspace_id, m.user_id, u.email, m.role FROM memberships m "
    "JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ?1 ORDER BY u.email, u.id",

    "INSERT INTO api_users(org_id, name, org_role, workspace_id, workspace_role, created_by, "
    "created_at) SELECT w.org_id, ?2, ?3, w.id, ?4, ?5, ?6 FROM workspaces w WHERE w.id = ?1",
    GH_API_USER_COLUMNS "WHERE a.org_id = ?1 AND a.name = ?2",
    GH_API_USER_COLUMNS "WHERE a.id = ?1",
    GH_API_USER_COLUMNS "WHERE a.org_id = ?1 ORDER BY a.name, a.id",
    GH_API_USER_COLUMNS "WHERE a.org_id = ?1 AND a.workspace_id = ?2 ORDER BY a.name, a.id",
    "UPDATE api_users SET workspace_role = ?2 WHERE id = ?1",
    "UPDATE api_users SET org_role = ?2 WHERE id = ?1",
    "DELETE FROM tokens WHERE api_user_id = ?1",
    "DELETE FROM api_users WHERE id = ?1",

    "INSERT INTO tokens(hash, public_id, api_user_id, name, created_at, expires_at, created_by) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    GH_TOKEN_COLUMNS "WHERE t.hash = ?1",
    GH_TOKEN_COLUMNS "WHERE t.public_id = ?1",
    GH_TOKEN_COLUMNS
    "WHERE a.org_id = ?1 AND t.expires_at > ?2 "
    "ORDER BY t.created_at, t.public_id",
    GH_TOKEN_COLUMNS
    "WHERE t.api_user_id = ?1 AND a.org_id = ?2 AND t.expires_at > ?3 "
    "ORDER BY t.created_at, t.public_id",
    "DELETE FROM tokens WHERE public_id = ?1",
    "DELETE FROM tokens WHERE expires_at <= ?1",
    // Unary + keeps the planner off tokens_expires: nearly every token is
    // active, and a full scan in table order beats an index walk that looks
    // each row up by its (random) hash.
    GH_TOKEN_COLUMNS "WHERE +t.expires_at > ?1",

    "INSERT INTO settings(org_id, name, value) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (org_id, name) DO UPDATE SET value = excluded.value",
    "SELECT value FROM settings WHERE org_id = ?1 AND name = ?2",
    "SELECT name, value FROM settings WHERE org_id = ?1 ORDER BY name",

    "INSERT INTO audit_log(time, org_id, actor, action, target, decision, rule, message, detail) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    GH_AUDIT_COLUMNS "ORDER BY id DESC LIMIT ?1",
    GH_AUDIT_COLUMNS "WHERE org_id = ?1 ORDER BY id DESC LIMIT ?2",

    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)",
    "SELECT epoch FROM change_feed WHERE id = 1",
    "SELECT pruned_through FROM change_feed WHERE id = 1",
    "SELECT tbl, id1, hash, id2 FROM changes WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
    GH_PRINCIPAL_COLUMNS "WHERE a.id = ?1",
    GH_PRINCIPAL_COLUMNS "WHERE a.workspace_id = ?1",
    // The organizations of the changed users, workspaces and memberships
    // that exist now (pg_store.cc has the same query).
    "SELECT org_id FROM users WHERE id IN ("
    "SELECT id1 FROM changes WHERE seq > ?1 AND seq <= ?2 AND tbl = 'users' UNION ALL "
    "SELECT id2 FROM changes WHERE seq > ?1 AND seq <= ?2 AND tbl = 'memberships') "
    "UNION SELECT org_id FROM workspaces WHERE id IN ("
    "SELECT id1 FROM changes WHERE seq > ?1 AND seq <= ?2 AND tbl IN ('workspaces', 'memberships'))",
    "DELETE FROM changes WHERE seq <= ?1",
    "UPDATE change_feed SET pruned_through = ?1 WHERE id = 1 AND pruned_through < ?1",
    // abs(random() >> 1) as a new store's, and never ?1 (the old epoch).
    "UPDATE change_feed SET epoch = (SELECT CASE WHEN r = ?1 THEN r + 1 ELSE r END FROM "
    "(SELECT abs(random() >> 1) AS r)) WHERE id = 1",
};

bool IsUniqueViolation(int rc) {
  return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY;
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out.push_back('"');
  return out;
}

// A cached statement, borrowed for one call. Binds parameters in order and
// resets the statement (and drops the bindings, which may point into the
// caller's strings) when it goes out of scope.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(Stmt&& o) noexcept
      : s_(std::exchange(o.s_, nullptr)), next_(o.next_), bind_rc_(o.bind_rc_) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (s_ != nullptr) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }

  Stmt& Bind(int64_t v) { return Check(sqlite3_bind_int64(s_, ++next_, v)); }
  Stmt& Bind(std::string_view v) {
    // A null data pointer would bind SQL NULL; an empty string must stay ''.
    const char* p = v.data() != nullptr ? v.data() : "";
    return Check(sqlite3_bind_text(s_, ++next_, p, static_cast<int>(v.size()), SQLITE_STATIC));
  }
  Stmt& Bind(const char* v) { return Bind(std::string_view(v)); }
  Stmt& Bind(const std::string& v) { return Bind(std::string_view(v)); }
  Stmt& Bind(const TokenHash& h) {
    return Check(
        sqlite3_bind_blob(s_, ++next_, h.data(), static_cast<int>(h.size()), SQLITE_STATIC));
  }
  Stmt& Bind(std::optional<int64_t> v) {
    return v ? Bind(*v) : Check(sqlite3_bind_null(s_, ++next_));
  }

  // SQLITE_ROW, SQLITE_DONE, or an (extended) error code.
  int Step() { return bind_rc_ != SQLITE_OK ? bind_rc_ : sqlite3_step(s_); }

  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::optional<int64_t> OptInt(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Int(col);
  }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(s_, col);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }
  void TextInto(int col, std::string& out) const {
    const unsigned char* p = sqlite3_column_text(s_, col);
    if (p == nullptr) {
      out.clear();
      return;
    }
    out.assign(reinterpret_cast<const char*>(p),
               static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }
  // False when the column is not a 32-byte blob.
  bool HashInto(int col, TokenHash& out) const {
    const void* p = sqlite3_column_blob(s_, col);
    if (p == nullptr || sqlite3_column_bytes(s_, col) != static_cast<int>(out.size())) return false;
    std::memcpy(out.data(), p, out.size());
    return true;
  }

 private:
  Stmt& Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }
  sqlite3_stmt* s_;
  int next_ = 0;
  int bind_rc_ = SQLITE_OK;
};

// Runs `f` when the scope ends.
template <typename F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  F f_;
};

class SqliteStore final : public Store {
 public:
  enum class Mode { kOpen, kCreate };

  static Result<std::unique_ptr<Store>> Make(const std::string& path, const StoreOptions& options,
                                             Mode mode);
  ~SqliteStore() override;

  Result<Organization> CreateOrganization(std::string_view name) override;
  Result<Organization> FindOrganization(std::string_view name) override;
  Result<Organization> GetOrganization(int64_t id) override;
  Result<Organization> TheOnlyOrganization() override;
  Result<std::vector<Organization>> ListOrganizations() override;

  Result<Workspace> CreateWorkspace(int64_t org_id, std::string_view name, std::string_view type,
                                    std::optional<int64_t> owner_user_id) override;
  Result<Workspace> FindWorkspace(int64_t org_id, std::string_view name) override;
  Result<Workspace> GetWorkspace(int64_t id) override;
  Result<std::vector<Workspace>> ListWorkspaces(int64_t org_id) override;

  Result<User> AddUser(int64_t org_id, std::string_view email, std::string_view org_role) override;
  Result<User> FindUserByEmail(std::string_view email) override;
  Result<User> GetUser(int64_t id) override;
  Result<std::vector<User>> ListUsers(int64_t org_id) override;

  Status SetMembership(int64_t workspace_id, int64_t user_id,
                       std::string_view workspace_role) override;
  Result<std::string> GetMembershipRole(int64_t workspace_id, int64_t user_id) override;
  Result<std::vector<Membership>> ListMemberships(int64_t workspace_id) override;

  Result<ApiUser> CreateApiUser(const NewApiUser& api_user) override;
  Result<ApiUser> FindApiUser(int64_t org_id, std::string_view name) override;
  Result<ApiUser> GetApiUser(int64_t id) override;
  Result<std::vector<ApiUser>> ListApiUsers(int64_t org_id,
                                            std::optional<int64_t> workspace_id) override;
  Status SetApiUserWorkspaceRole(int64_t api_user_id, std::string_view role) override;
  Status SetApiUserOrgRole(int64_t api_user_id, std::string_view role) override;
  Result<int64_t> DeleteApiUser(int64_t api_user_id) override;

  Status InsertToken(const NewToken& token) override;
  Result<TokenRecord> FindTokenByHash(const TokenHash& hash) override;
  Result<TokenRecord> FindTokenById(std::string_view token_id) override;
  Result<std::vector<TokenRecord>> ListTokens(int64_t org_id, std::optional<int64_t> api_user_id,
                                              int64_t now) override;
  Status DeleteToken(std::string_view token_id) override;
  Result<int64_t> DeleteExpiredTokens(int64_t now) override;
  Status ScanActiveTokens(int64_t now,
                          const std::function<Status(const TokenRecord&)>& fn) override;
  Result<std::vector<TokenRecord>> LoadActiveTokens(int64_t now) override;

  Status SetSetting(int64_t org_id, std::string_view name, std::string_view value) override;
  Result<std::string> GetSetting(int64_t org_id, std::string_view name) override;
  Result<std::vector<Setting>> ListSettings(int64_t org_id) override;

  Result<int64_t> AppendAudit(const AuditRecord& record) override;
  Result<std::vector<AuditRecord>> ListAudit(std::optional<int64_t> org_id, int64_t limit) override;

  Status Transaction(const std::function<Status()>& body) override;
  Status ReadSnapshot(const std::function<Status()>& body) override;
  Result<int64_t> DataVersion() override;
  Result<int64_t> ContentGeneration() override;
  Result<int> SchemaVersion() override;

  Result<int64_t> ChangeHead() override;
  Result<int64_t> FeedEpoch() override;
  Result<int64_t> RenewFeedEpoch() override;
  Result<ChangeBatch> ReadChangesSince(int64_t after, int64_t max_changes) override;
  Result<int64_t> PruneChanges(int64_t keep_last) override;
  Status Subscribe() override { return Status::Ok(); }
  Result<bool> WaitForChange(int timeout_ms) override;
  std::shared_ptr<const StoreWatch> Watch() override;
  Result<bool> Replaced() override;

  // Test hooks (sqlite_store_testing.h).
  Status ExecRaw(std::string_view sql);
  Result<int64_t> QueryInt(std::string_view sql);

 private:
  SqliteStore(std::string path, const StoreOptions& options)
      : path_(std::move(path)), options_(options) {}

  Status Connect(int flags);
  Status Configure();
  Status CheckIdentity(bool fresh, int* version);
  Status Migrate(int from_version);
  Status CheckTables();

  Result<Stmt> Use(Sql which);
  Status Exec(const char* sql);
  Status ExecStep(Sql which);
  Status ReadOnlyRefusal() const;

  // Maps an SQLite result code to a Status. `doing` says what was attempted
  // ("creating workspace \"X\""); `exists` is the message for a unique
  // violation (AlreadyExists), if the operation can cause one.
  Status Error(int rc, std::string_view doing, std::string_view exists = {}) const;

  // Reads the row Step() just produced.
  static Workspace ReadWorkspace(const Stmt& s);
  static User ReadUser(const Stmt& s);
  static ApiUser ReadApiUser(const Stmt& s);
  Status ReadToken(const Stmt& s, TokenRecord& t) const;
  static AuditRecord ReadAudit(const Stmt& s);

  Result<std::vector<TokenRecord>> QueryTokens(Stmt& s);

  std::string path_;
  ino_t inode_ = 0;  // of the file opened (Replaced)
  StoreOptions options_;
  sqlite3* db_ = nullptr;
  std::array<sqlite3_stmt*, static_cast<size_t>(Sql::kCount)> stmts_{};
  int tx_depth_ = 0;
};

// ---------------------------------------------------------------------------
// Opening and creating.

Result<std::unique_ptr<Store>> SqliteStore::Make(const std::string& path,
                                                 const StoreOptions& options, Mode mode) {
  if (options.busy_timeout_ms < 0) {
    return Status::InvalidArgument("store busy timeout must not be negative");
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, options));

  if (mode == Mode::kOpen) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) {
        return Status::FailedPrecondition("store " + path +
                                          " does not exist; run `gatehouse init`");
      }
      return Status::IoError("cannot open store " + path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
      return Status::IoError("cannot open store " + path + ": not a regular file");
    }
    const int flags = options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    GATEHOUSE_RETURN_IF_ERROR(store->Connect(flags));
    GATEHOUSE_RETURN_IF_ERROR(store->Configure());
    int version = 0;
    GATEHOUSE_RETURN_IF_ERROR(store->CheckIdentity(/*fresh=*/false, &version));
    if (version < kStoreSchemaVersion) {
      if (options.read_only) {
        return Status::FailedPrecondition(
            "store " + path + " has schema version " + std::to_string(version) +
            " and needs a migration; run any gatehouse command on it once to upgrade it");
      }
      GATEHOUSE_RETURN_IF_ERROR(store->Migrate(version));
    }
    GATEHOUSE_RETURN_IF_ERROR(store->CheckTables());
    return std::unique_ptr<Store>(std::move(store));
  }

  // Create: O_EXCL makes "refuse an existing file" atomic, and the file is
  // 0600 from its first instant (SQLite gives its -wal and -shm files the
  // database file's permissions).
  if (options.read_only) {
    return Status::InvalidArgument("cannot create store " + path + " read-only");
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::AlreadyExists("store " + path + " already exists");
    return Status::IoError("cannot create store " + path + ": " + std::strerror(errno));
  }
  // The umask may have removed bits we need (e.g. 0277 leaves 0400).
  const bool chmod_ok = ::fchmod(fd, 0600) == 0;
  const int chmod_errno = errno;
  ::close(fd);
  auto fail = [&path, &store](Status s) -> Result<std::unique_ptr<Store>> {
    store.reset();  // closes the connection before the files go
    RemoveStoreFiles(path);
    return s;
  };
  if (!chmod_ok) {
    return fail(Status::IoError("cannot set the mode of store " + path + ": " +
                                std::strerror(chmod_errno)));
  }
  Status s = store->Connect(SQLITE_OPEN_READWRITE);
  if (s.ok()) s = store->Configure();
  int version = 0;
  if (s.ok()) s = store->CheckIdentity(/*fresh=*/true, &version);
  if (s.ok()) s = store->Migrate(0);
  if (s.ok()) s = store->CheckTables();
  if (!s.ok()) return fail(std::move(s));
  return std::unique_ptr<Store>(std::move(store));
}

SqliteStore::~SqliteStore() {
  for (sqlite3_stmt*& s : stmts_) {
    sqlite3_finalize(s);
    s = nullptr;
  }
  // The last connection to close checkpoints the WAL into the main file.
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Status SqliteStore::Connect(int flags) {
  flags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    return Status::IoError("cannot open store " + path_ + ": " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  struct stat st;
  inode_ = ::stat(path_.c_str(), &st) == 0 ? st.st_ino : 0;
  return Status::Ok();
}

Status SqliteStore::Configure() {
  sqlite3_busy_timeout(db_, options_.busy_timeout_ms);
  // Defensive: no writable_schema tricks, no functions with side effects in
  // the schema; the file might not be trustworthy.
  sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_ENABLE_FKEY, 1, nullptr);
  // These pragmas touch no page, so they succeed even on a garbage file.
  GATEHOUSE_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys = ON"));
  GATEHOUSE_RETURN_IF_ERROR(
      Exec(options_.durable_commits ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL"));
  return Status::Ok();
}

// Reads the file's identity (the first read of the file: a garbage or
// truncated file fails here) and puts it in WAL mode.
Status SqliteStore::CheckIdentity(bool fresh, int* version) {
  GH_ASSIGN_OR_RETURN(app_id, QueryInt("PRAGMA application_id"));
  GH_ASSIGN_OR_RETURN(user_version, QueryInt("PRAGMA user_version"));
  *version = static_cast<int>(user_version);
  if (!fresh) {
    if (app_id != internal::kStoreApplicationId) {
      struct stat st;
      if (::stat(path_.c_str(), &st) == 0 && st.st_size == 0) {
        return Status::Corruption("store " + path_ +
                                  " is an empty file, not a Gatehouse store (remove it and run "
                                  "`gatehouse init`)");
      }
      return Status::Corruption("store " + path_ +
                                " is an SQLite database but not a Gatehouse store");
    }
    // SQLite itself refuses a file shorter than the page count in its header;
    // a file cut inside its last page would still open, so check that the
    // main file holds whole pages (SQLite only ever writes whole pages). Only
    // while no WAL has content: then no checkpoint can be growing the file
    // under our feet.
    GH_ASSIGN_OR_RETURN(page_size, QueryInt("PRAGMA page_size"));
    struct stat st, wal;
    const bool wal_busy = ::stat((path_ + "-wal").c_str(), &wal) == 0 && wal.st_size > 0;
    if (!wal_busy && ::stat(path_.c_str(), &st) == 0 && page_size > 0 &&
        st.st_size % page_size != 0) {
      return Status::Corruption("store " + path_ + " is truncated (" + std::to_string(st.st_size) +
                                " bytes is not a whole number of " + std::to_string(page_size) +
                                "-byte pages)");
    }
    if (user_version < 1) {
      return Status::Corruption("store " + path_ + " has no schema version (damaged?)");
    }
    if (user_version > kStoreSchemaVersion) {
      return Status::FailedPrecondition(
          "store " + path_ + " has schema version " + std::to_string(user_version) +
          ", newer than this gatehouse understands (" + std::to_string(kStoreSchemaVersion) +
          "); upgrade gatehouse");
    }
  }
  if (options_.read_only) return Status::Ok();
  // journal_mode=WAL is persistent; asking again on open repairs a file whose
  // mode someone changed. It returns the resulting mode.
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode = WAL", -1, &raw, nullptr);
  std::string mode;
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(raw, 0);
      mode = text != nullptr ? reinterpret_cast<const char*>(text) : "";
    }
  }
  sqlite3_finalize(raw);
  if (rc != SQLITE_ROW) return Error(rc, "setting the journal mode");
  if (mode != "wal") {
    return Status::IoError("store " + path_ + " cannot use WAL mode (journal mode is " + mode +
                           ")");
  }
  return Status::Ok();
}

Status SqliteStore::Migrate(int from_version) {
  return Transaction([&]() -> Status {
    // Re-read inside the write lock: another process may have migrated already.
    GH_ASSIGN_OR_RETURN(current, QueryInt("PRAGMA user_version"));
    from_version = static_cast<int>(current);
    for (const internal::Migration& m : internal::StoreMigrations()) {
      if (m.to_version <= from_version) continue;
      GATEHOUSE_RETURN_IF_ERROR(Exec(m.sql));
      GATEHOUSE_RETURN_IF_ERROR(
          Exec(("PRAGMA user_version = " + std::to_string(m.to_version)).c_str()));
    }
    return Exec(
        ("PRAGMA application_id = " + std::to_string(internal::kStoreApplicationId)).c_str());
  });
}

Status SqliteStore::CheckTables() {
  for (const char* table : internal::StoreTables()) {
    std::string q = "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '";
    q += table;
    q += "'";
    GH_ASSIGN_OR_RETURN(n, QueryInt(q));
    if (n != 1) {
      return Status::Corruption("store " + path_ + " has no table " + table +
                                " (damaged, or not a Gatehouse store)");
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Statement plumbing and errors.

Result<Stmt> SqliteStore::Use(Sql which) {
  sqlite3_stmt*& s = stmts_[static_cast<size_t>(which)];
  if (s == nullptr) {
    int rc = sqlite3_prepare_v3(db_, kSqlText[static_cast<size_t>(which)], -1,
                                SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(s);
      s = nullptr;
      return Error(rc, "preparing a query");
    }
  }
  return Stmt(s);
}

Status SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  sqlite3_free(err);  // Error() reads sqlite3_errmsg instead
  if (rc != SQLITE_OK) return Error(rc, "running a store command");
  return Status::Ok();
}

Status SqliteStore::ExecStep(Sql which) {
  GH_ASSIGN_OR_RETURN(s, Use(which));
  int rc = s.Step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Error(rc, "running a store command");
  return Status::Ok();
}

Status SqliteStore::ReadOnlyRefusal() const {
  return Status::FailedPrecondition("store " + path_ + " is opened read-only");
}

Status SqliteStore::Error(int rc, std::string_view doing, std::string_view exists) const {
  const std::string what(doing);
  const std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  switch (rc & 0xFF) {
    case SQLITE_CONSTRAINT:
      if (IsUniqueViolation(rc) && !exists.empty())
        return Status::AlreadyExists(std::string(exists));
      if (IsUniqueViolation(rc)) return Status::AlreadyExists(what + ": already exists");
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return Status::NotFound(what + ": refers to something that does not exist");
      }
      if (rc == SQLITE_CONSTRAINT_TRIGGER) return Status::FailedPrecondition(what + ": " + detail);
      return Status::InvalidArgument(what + ": " + detail);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::IoError("store is locked by another writer (waited " +
                             std::to_string(options_.busy_timeout_ms) + " ms while " + what + ")");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption("store " + path_ + " is damaged or not a Gatehouse store (" +
                                detail + ")");
    case SQLITE_READONLY:
      if (options_.read_only) return ReadOnlyRefusal();
      return Status::IoError("store " + path_ + " is not writable (" + detail + ")");
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
    case SQLITE_AUTH:
      return Status::IoError("store " + path_ + ": " + what + ": " + detail);
    case SQLITE_NOMEM:
      return Status::Internal("out of memory " + what);
    default:
      return Status::Internal("store " + path_ + ": " + what + ": " + detail + " (SQLite code " +
                              std::to_string(rc) + ")");
  }
}

Result<int64_t> SqliteStore::QueryInt(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return Error(rc, "reading the store");
  }
  rc = sqlite3_step(raw);
  int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(raw, 0) : 0;
  // A read error ends in sqlite3_step's code; finalize would repeat it.
  sqlite3_finalize(raw);
  if (rc == SQLITE_DONE) return Status::NotFound("no result");
  if (rc != SQLITE_ROW) return Error(rc, "reading the store");
  return v;
}

Status SqliteStore::ExecRaw(std::string_view sql) { return Exec(std::string(sql).c_str()); }

// ---------------------------------------------------------------------------
// Transactions.

Status SqliteStore::ReadSnapshot(const std::function<Status()>& body) {
  if (tx_depth_ > 0) return body();  // already inside one consistent transaction
  GATEHOUSE_RETURN_IF_ERROR(ExecRaw("BEGIN DEFERRED"));
  ++tx_depth_;
  ScopeExit end([&] {
    --tx_depth_;
    // Nothing was written: ending the read transaction either way is the same.
    if (!sqlite3_get_autocommit(db_)) (void)ExecRaw("COMMIT");
  });
  return body();
}

Status SqliteStore::Transaction(const std::function<Status()>& body) {
  if (options_.read_only) return ReadOnlyRefusal();
  const bool outer = tx_depth_ == 0;
  {
    GH_ASSIGN_OR_RETURN(begin, Use(outer ? Sql::kBegin : Sql::kSavepoint));
    int rc = begin.Step();
    if (rc != SQLITE_DONE)
      return Error(rc, outer ? "starting a transaction" : "starting a savepoint");
  }
  ++tx_depth_;
  bool done = false;
  ScopeExit rollback([&] {
    --tx_depth_;
    if (done) return;
    if (outer) {
      // An I/O error may already have rolled the transaction back.
      if (!sqlite3_get_autocommit(db_)) (void)ExecStep(Sql::kRollback);
    } else {
      (void)ExecStep(Sql::kRollbackTo);
      (void)ExecStep(Sql::kRelease);
    }
  });
  Status s = body();
  if (!s.ok()) return s;
  GH_ASSIGN_OR_RETURN(commit, Use(outer ? Sql::kCommit : Sql::kRelease));
  int rc = commit.Step();
  if (rc != SQLITE_DONE) return Error(rc, "committing");
  done = true;
  return Status::Ok();
}

Result<int64_t> SqliteStore::DataVersion() {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kDataVersion));
  int rc = s.Step();
  if (rc != SQLITE_ROW) return Error(rc, "reading the data version");
  return s.Int(0);
}

Result<int64_t> SqliteStore::ContentGeneration() {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kContentGeneration));
  int rc = s.Step();
  if (rc != SQLITE_ROW) return Error(rc, "reading the content generation");
  return s.Int(0);
}

Result<int> SqliteStore::SchemaVersion() {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kUserVersion));
  int rc = s.Step();
  if (rc != SQLITE_ROW) return Error(rc, "reading the schema version");
  return static_cast<int>(s.Int(0));
}

// ---------------------------------------------------------------------------
// The change feed (schema.cc, version 3).

Result<int64_t> SqliteStore::ChangeHead() {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kChangeHead));
  int rc = s.Step();
  if (rc != SQLITE_ROW) return Error(rc, "reading the change feed");
  return s.Int(0);
}

Result<int64_t> SqliteStore::FeedEpoch() {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kFeedEpoch));
  int rc = s.Step();
  if (rc != SQLITE_ROW) return Error(rc, "reading the change feed's epoch");
  return s.Int(0);
}

namespace {

TokenPrincipal ReadPrincipal(const Stmt& s) {
  TokenPrincipal p;
  p.api_user_id = s.Int(0);
  s.TextInto(1, p.api_user_name);
  p.org_id = s.Int(2);
  s.TextInto(3, p.org_role);
  p.workspace_id = s.Int(4);
  s.TextInto(5, p.workspace_name);
  s.TextInto(6, p.workspace_type);
  s.TextInto(7, p.workspace_role);
  return p;
}

template <typename T>
void SortUnique(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

Result<ChangeBatch> SqliteStore::ReadChangesSince(int64_t after, int64_t max_changes) {
  if (after < 0) return Status::InvalidArgument("a change feed number must not be negative");
  ChangeBatch batch;
  batch.after = after;
  Status read = ReadSnapshot([&]() -> Status {
    GH_ASSIGN_OR_RETURN(head, ChangeHead());
    if (after > head) {
      return Status::InvalidArgument("change feed number " + std::to_string(after) +
                                     " is ahead of the store's (" + std::to_string(head) +
                                     "): a different store?");
    }
    {
      GH_ASSIGN_OR_RETURN(p, Use(Sql::kPrunedThrough));
      int rc = p.Step();
      if (rc != SQLITE_ROW) return Error(rc, "reading the change feed");
      if (after < p.Int(0)) {
        return Status::FailedPrecondition("the change feed was pruned past " +
                                          std::to_string(after));
      }
    }
    if (head - after > max_changes) {
      return Status::FailedPrecondition(std::to_string(head - after) +
                                        " changes are waiting, more than " +
                                        std::to_string(max_changes) + " to apply one by one");
    }
    GH_ASSIGN_OR_RETURN(epoch, FeedEpoch());
    batch.epoch = epoch;
    batch.head = head;
    batch.changes = head - after;
    if (head == after) return Status::Ok();

    std::vector<TokenHash> hashes;
    std::vector<int64_t> api_users, workspaces;
    {
      GH_ASSIGN_OR_RETURN(c, Use(Sql::kReadChanges));
      c.Bind(after).Bind(head);
      int rc;
      while ((rc = c.Step()) == SQLITE_ROW) {
        const std::string tbl = c.Text(0);
        if (tbl == "tokens") {
          TokenHash h;
          if (!c.HashInto(2, h)) {
            return Status::Corruption("store " + path_ + " has a token change without a hash");
          }
          hashes.push_back(h);
        } else if (tbl == "api_users") {
          api_users.push_back(c.Int(1));
        } else {
          // Keys (schema.cc, version 3): organizations and settings carry
          // the organization; users, workspaces and memberships their ids.
          if (tbl == "organizations" || tbl == "settings") {
            batch.directory_orgs.push_back(c.Int(1));
          } else if (tbl == "users") {
            batch.directory_users.push_back(c.Int(1));
          } else if (tbl == "workspaces") {
            workspaces.push_back(c.Int(1));
            batch.directory_workspaces.push_back(c.Int(1));
          } else if (tbl == "memberships") {
            batch.directory_workspaces.push_back(c.Int(1));
            batch.directory_users.push_back(c.Int(3));
          }
          batch.directory_changed = true;
        }
      }
      if (rc != SQLITE_DONE) return Error(rc, "reading the change feed");
    }
    if (!batch.directory_users.empty() || !batch.directory_workspaces.empty()) {
      GH_ASSIGN_OR_RETURN(o, Use(Sql::kOrgsOfChangedRows));
      o.Bind(after).Bind(head);
      int rc;
      while ((rc = o.Step()) == SQLITE_ROW) batch.directory_orgs.push_back(o.Int(0));
      if (rc != SQLITE_DONE) return Error(rc, "reading the organizations of changed rows");
    }
    SortUnique(batch.directory_orgs);
    SortUnique(batch.directory_users);
    SortUnique(batch.directory_workspaces);
    SortUnique(hashes);
    SortUnique(api_users);
    SortUnique(workspaces);
    for (const TokenHash& h : hashes) {
      auto t = FindTokenByHash(h);
      if (t.ok()) {
        batch.tokens.push_back(std::move(t).value());
      } else if (t.status().code() == StatusCode::kNotFound) {
        batch.removed_tokens.push_back(h);
      } else {
        return t.status();
      }
    }
    for (int64_t id : api_users) {
      GH_ASSIGN_OR_RETURN(p, Use(Sql::kPrincipalOfApiUser));
      int rc = p.Bind(id).Step();
      if (rc == SQLITE_ROW) {
        batch.principals.push_back(ReadPrincipal(p));
      } else if (rc == SQLITE_DONE) {
        batch.removed_api_users.push_back(id);
      } else {
        return Error(rc, "reading a changed API user");
      }
    }
    // A renamed or retyped workspace changes its API users' principals.
    for (int64_t id : workspaces) {
      GH_ASSIGN_OR_RETURN(p, Use(Sql::kPrincipalsOfWorkspace));
      p.Bind(id);
      int rc;
      while ((rc = p.Step()) == SQLITE_ROW) {
        TokenPrincipal principal = ReadPrincipal(p);
        if (!std::binary_search(api_users.begin(), api_users.end(), principal.api_user_id)) {
          batch.principals.push_back(std::move(principal));
        }
      }
      if (rc != SQLITE_DONE) return Error(rc, "reading a changed workspace's API users");
    }
    return Status::Ok();
  });
  if (!read.ok()) return read;
  return batch;
}

std::shared_ptr<const StoreWatch> SqliteStore::Watch() {
  // A first query makes SQLite create and map the -shm file.
  if (!DataVersion().ok()) return nullptr;
  return SqliteWalWatch::Open(path_);
}

Result<bool> SqliteStore::Replaced() {
  GATEHOUSE_RETURN_IF_ERROR(ProbeStoreFile(path_));
  struct stat st;
  return inode_ != 0 && ::stat(path_.c_str(), &st) == 0 && st.st_ino != inode_;
}

Result<bool> SqliteStore::WaitForChange(int timeout_ms) {
  if (timeout_ms < 0) return Status::InvalidArgument("timeout must not be negative");
  std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
  return false;
}

Result<int64_t> SqliteStore::PruneChanges(int64_t keep_last) {
  if (keep_last < 0) return Status::InvalidArgument("keep_last must not be negative");
  int64_t dropped = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(head, ChangeHead());
    const int64_t floor = head - keep_last;
    if (floor <= 0) return Status::Ok();
    {
      GH_ASSIGN_OR_RETURN(d, Use(Sql::kPruneChanges));
      int rc = d.Bind(floor).Step();
      if (rc != SQLITE_DONE) return Error(rc, "pruning the change feed");
      dropped = static_cast<int64_t>(sqlite3_changes64(db_));
    }
    GH_ASSIGN_OR_RETURN(u, Use(Sql::kSetPrunedThrough));
    int rc = u.Bind(floor).Step();
    if (rc != SQLITE_DONE) return Error(rc, "pruning the change feed");
    return Status::Ok();
  }));
  return dropped;
}

Result<int64_t> SqliteStore::RenewFeedEpoch() {
  int64_t renewed = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(old, FeedEpoch());
    // A random epoch as a new store's (schema.cc), never the old one.
    GH_ASSIGN_OR_RETURN(u, Use(Sql::kSetFeedEpoch));
    int rc = u.Bind(old).Step();
    if (rc != SQLITE_DONE) return Error(rc, "renewing the change feed's epoch");
    GH_ASSIGN_OR_RETURN(now, FeedEpoch());
    renewed = now;
    return Status::Ok();
  }));
  return renewed;
}

// ---------------------------------------------------------------------------
// Organizations.

Result<Organization> SqliteStore::CreateOrganization(std::string_view name) {
  {
    GH_ASSIGN_OR_RETURN(s, Use(Sql::kInsertOrg));
    int rc = s.Bind(name).Step();
    if (rc != SQLITE_DONE) {
      return Error(rc, "creating organization " + Quote(name),
                   "organization " + Quote(name) + " already exists");
    }
  }
  return Organization{sqlite3_last_insert_rowid(db_), std::string(name)};
}

Result<Organization> SqliteStore::FindOrganization(std::string_view name) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kFindOrg));
  int rc = s.Bind(name).Step();
  if (rc == SQLITE_ROW) return Organization{s.Int(0), s.Text(1)};
  if (rc == SQLITE_DONE) return Status::NotFound("organization " + Quote(name) + " not found");
  return Error(rc, "finding organization " + Quote(name));
}

Result<Organization> SqliteStore::GetOrganization(int64_t id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kGetOrg));
  int rc = s.Bind(id).Step();
  if (rc == SQLITE_ROW) return Organization{s.Int(0), s.Text(1)};
  if (rc == SQLITE_DONE) {
    return Status::NotFound("organization #" + std::to_string(id) + " not found");
  }
  return Error(rc, "reading an organization");
}

Result<Organization> SqliteStore::TheOnlyOrganization() {
  GH_ASSIGN_OR_RETURN(all, ListOrganizations());
  if (all.empty()) {
    return Status::NotFound("store " + path_ + " holds no organization; run `gatehouse init`");
  }
  if (all.size() > 1) {
    return Status::InvalidArgument("store " + path_ + " holds " + std::to_string(all.size()) +
                                   " organizations; say which with --org");
  }
  return std::move(all.front());
}

Result<std::vector<Organization>> SqliteStore::ListOrganizations() {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kListOrgs));
  std::vector<Organization> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(Organization{s.Int(0), s.Text(1)});
  if (rc != SQLITE_DONE) return Error(rc, "listing organizations");
  return out;
}

// ---------------------------------------------------------------------------
// Workspaces.

Workspace SqliteStore::ReadWorkspace(const Stmt& s) {
  return Workspace{s.Int(0), s.Int(1), s.Text(2), s.Text(3), s.OptInt(4)};
}

Result<Workspace> SqliteStore::CreateWorkspace(int64_t org_id, std::string_view name,
                                               std::string_view type,
                                               std::optional<int64_t> owner_user_id) {
  Workspace out;
  Status st = Transaction([&]() -> Status {
    GATEHOUSE_RETURN_IF_ERROR(GetOrganization(org_id).status());
    if (owner_user_id) {
      auto owner = GetUser(*owner_user_id);
      if (!owner.ok()) return owner.status();
      if (owner->org_id != org_id) {
        return Status::NotFound("workspace owner " + owner->email +
                                " is not in the workspace's organization");
      }
    }
    GH_ASSIGN_OR_RETURN(s, Use(Sql::kInsertWorkspace));
    int rc = s.Bind(org_id).Bind(name).Bind(type).Bind(owner_user_id).Step();
    if (rc != SQLITE_DONE) {
      return Error(rc, "creating workspace " + Quote(name),
                   "workspace " + Quote(name) + " already exists");
    }
    out = Workspace{sqlite3_last_insert_rowid(db_), org_id, std::string(name), std::string(type),
                    owner_user_id};
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<Workspace> SqliteStore::FindWorkspace(int64_t org_id, std::string_view name) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kFindWorkspace));
  int rc = s.Bind(org_id).Bind(name).Step();
  if (rc == SQLITE_ROW) return ReadWorkspace(s);
  if (rc == SQLITE_DONE) return Status::NotFound("workspace " + Quote(name) + " not found");
  return Error(rc, "finding workspace " + Quote(name));
}

Result<Workspace> SqliteStore::GetWorkspace(int64_t id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kGetWorkspace));
  int rc = s.Bind(id).Step();
  if (rc == SQLITE_ROW) return ReadWorkspace(s);
  if (rc == SQLITE_DONE) return Status::NotFound("workspace #" + std::to_string(id) + " not found");
  return Error(rc, "reading a workspace");
}

Result<std::vector<Workspace>> SqliteStore::ListWorkspaces(int64_t org_id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kListWorkspaces));
  s.Bind(org_id);
  std::vector<Workspace> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadWorkspace(s));
  if (rc != SQLITE_DONE) return Error(rc, "listing workspaces");
  return out;
}

// ---------------------------------------------------------------------------
// Users and memberships.

User SqliteStore::ReadUser(const Stmt& s) { return User{s.Int(0), s.Int(1), s.Text(2), s.Text(3)}; }

Result<User> SqliteStore::AddUser(int64_t org_id, std::string_view email,
                                  std::string_view org_role) {
  {
    GH_ASSIGN_OR_RETURN(s, Use(Sql::kInsertUser));
    int rc = s.Bind(org_id).Bind(email).Bind(org_role).Step();
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return Status::NotFound("organization #" + std::to_string(org_id) + " not found");
    }
    if (rc != SQLITE_DONE) {
      return Error(rc, "adding user " + std::string(email),
                   "user " + std::string(email) + " already exists");
    }
  }
  return User{sqlite3_last_insert_rowid(db_), org_id, std::string(email), std::string(org_role)};
}

Result<User> SqliteStore::FindUserByEmail(std::string_view email) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kFindUser));
  int rc = s.Bind(email).Step();
  if (rc == SQLITE_ROW) return ReadUser(s);
  if (rc == SQLITE_DONE) return Status::NotFound("user " + std::string(email) + " not found");
  return Error(rc, "finding user " + std::string(email));
}

Result<User> SqliteStore::GetUser(int64_t id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kGetUser));
  int rc = s.Bind(id).Step();
  if (rc == SQLITE_ROW) return ReadUser(s);
  if (rc == SQLITE_DONE) return Status::NotFound("user #" + std::to_string(id) + " not found");
  return Error(rc, "reading a user");
}

Result<std::vector<User>> SqliteStore::ListUsers(int64_t org_id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kListUsers));
  s.Bind(org_id);
  std::vector<User> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadUser(s));
  if (rc != SQLITE_DONE) return Error(rc, "listing users");
  return out;
}

Status SqliteStore::SetMembership(int64_t workspace_id, int64_t user_id,
                                  std::string_view workspace_role) {
  return Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(ws, GetWorkspace(workspace_id));
    GH_ASSIGN_OR_RETURN(user, GetUser(user_id));
    if (ws.org_id != user.org_id) {
      return Status::NotFound("user " + user.email + " is not in the organization of workspace " +
                              Quote(ws.name));
    }
    GH_ASSIGN_OR_RETURN(s, Use(Sql::kUpsertMembership));
    int rc = s.Bind(workspace_id).Bind(user_id).Bind(workspace_role).Step();
    if (rc != SQLITE_DONE) return Error(rc, "adding " + user.email + " to " + Quote(ws.name));
    return Status::Ok();
  });
}

Result<std::string> SqliteStore::GetMembershipRole(int64_t workspace_id, int64_t user_id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kGetMembership));
  int rc = s.Bind(workspace_id).Bind(user_id).Step();
  if (rc == SQLITE_ROW) return s.Text(0);
  if (rc == SQLITE_DONE) return Status::NotFound("user is not a member of the workspace");
  return Error(rc, "reading a membership");
}

Result<std::vector<Membership>> SqliteStore::ListMemberships(int64_t workspace_id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kListMemberships));
  s.Bind(workspace_id);
  std::vector<Membership> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(Membership{s.Int(0), s.Int(1), s.Text(2), s.Text(3)});
  }
  if (rc != SQLITE_DONE) return Error(rc, "listing members");
  return out;
}

// ---------------------------------------------------------------------------
// API users.

ApiUser SqliteStore::ReadApiUser(const Stmt& s) {
  return ApiUser{s.Int(0),  s.Int(1),  s.Text(2), s.Text(3), s.Int(4),
                 s.Text(5), s.Text(6), s.Text(7), s.Int(8)};
}

Result<ApiUser> SqliteStore::CreateApiUser(const NewApiUser& a) {
  int64_t id = 0;
  Status st = Transaction([&]() -> Status {
    GATEHOUSE_RETURN_IF_ERROR(GetWorkspace(a.workspace_id).status());
    GH_ASSIGN_OR_RETURN(s, Use(Sql::kInsertApiUser));
    int rc = s.Bind(a.workspace_id)
                 .Bind(a.name)
                 .Bind(a.org_role)
                 .Bind(a.workspace_role)
                 .Bind(a.created_by)
                 .Bind(a.created_at)
                 .Step();
    if (rc != SQLITE_DONE) {
      return Error(rc, "creating API user " + Quote(a.name),
                   "API user " + Quote(a.name) + " already exists");
    }
    id = sqlite3_last_insert_rowid(db_);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return GetApiUser(id);
}

Result<ApiUser> SqliteStore::FindApiUser(int64_t org_id, std::string_view name) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kFindApiUser));
  int rc = s.Bind(org_id).Bind(name).Step();
  if (rc == SQLITE_ROW) return ReadApiUser(s);
  if (rc == SQLITE_DONE) return Status::NotFound("API user " + Quote(name) + " not found");
  return Error(rc, "finding API user " + Quote(name));
}

Result<ApiUser> SqliteStore::GetApiUser(int64_t id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kGetApiUser));
  int rc = s.Bind(id).Step();
  if (rc == SQLITE_ROW) return ReadApiUser(s);
  if (rc == SQLITE_DONE) return Status::NotFound("API user #" + std::to_string(id) + " not found");
  return Error(rc, "reading an API user");
}

Result<std::vector<ApiUser>> SqliteStore::ListApiUsers(int64_t org_id,
                                                       std::optional<int64_t> workspace_id) {
  GH_ASSIGN_OR_RETURN(s, Use(workspace_id ? Sql::kListApiUsersByWorkspace : Sql::kListApiUsers));
  s.Bind(org_id);
  if (workspace_id) s.Bind(*workspace_id);
  std::vector<ApiUser> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadApiUser(s));
  if (rc != SQLITE_DONE) return Error(rc, "listing API users");
  return out;
}

Status SqliteStore::SetApiUserWorkspaceRole(int64_t api_user_id, std::string_view role) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kSetApiUserWorkspaceRole));
  int rc = s.Bind(api_user_id).Bind(role).Step();
  if (rc != SQLITE_DONE) return Error(rc, "changing an API user's workspace role");
  if (sqlite3_changes(db_) == 0) {
    return Status::NotFound("API user #" + std::to_string(api_user_id) + " not found");
  }
  return Status::Ok();
}

Status SqliteStore::SetApiUserOrgRole(int64_t api_user_id, std::string_view role) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kSetApiUserOrgRole));
  int rc = s.Bind(api_user_id).Bind(role).Step();
  if (rc != SQLITE_DONE) return Error(rc, "changing an API user's organization role");
  if (sqlite3_changes(db_) == 0) {
    return Status::NotFound("API user #" + std::to_string(api_user_id) + " not found");
  }
  return Status::Ok();
}

Result<int64_t> SqliteStore::DeleteApiUser(int64_t api_user_id) {
  int64_t tokens = 0;
  // The foreign key cascades too; deleting the tokens explicitly first gives
  // the count and does not depend on the connection's foreign_keys setting.
  Status st = Transaction([&]() -> Status {
    {
      GH_ASSIGN_OR_RETURN(s, Use(Sql::kDeleteApiUserTokens));
      int rc = s.Bind(api_user_id).Step();
      if (rc != SQLITE_DONE) return Error(rc, "deleting an API user's tokens");
      tokens = sqlite3_changes64(db_);
    }
    GH_ASSIGN_OR_RETURN(s, Use(Sql::kDeleteApiUser));
    int rc = s.Bind(api_user_id).Step();
    if (rc != SQLITE_DONE) return Error(rc, "deleting an API user");
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound("API user #" + std::to_string(api_user_id) + " not found");
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return tokens;
}

// ---------------------------------------------------------------------------
// Tokens.

Status SqliteStore::ReadToken(const Stmt& s, TokenRecord& t) const {
  s.TextInto(0, t.token_id);
  s.TextInto(1, t.name);
  if (!s.HashInto(2, t.hash)) {
    return Status::Corruption("store " + path_ + " holds a token hash that is not 32 bytes");
  }
  t.created_at = s.Int(3);
  t.expires_at = s.Int(4);
  s.TextInto(5, t.created_by);
  t.api_user_id = s.Int(6);
  s.TextInto(7, t.api_user_name);
  t.org_id = s.Int(8);
  s.TextInto(9, t.org_role);
  t.workspace_id = s.Int(10);
  s.TextInto(11, t.workspace_name);
  s.TextInto(12, t.workspace_type);
  s.TextInto(13, t.workspace_role);
  return Status::Ok();
}

Status SqliteStore::InsertToken(const NewToken& t) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kInsertToken));
  int rc = s.Bind(t.hash)
               .Bind(t.id)
               .Bind(t.api_user_id)
               .Bind(t.name)
               .Bind(t.created_at)
               .Bind(t.expires_at)
               .Bind(t.created_by)
               .Step();
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
    return Status::NotFound("API user #" + std::to_string(t.api_user_id) + " not found");
  }
  if (rc != SQLITE_DONE) {
    // Never name the hash: an id clash is the likely (if astronomically rare) cause.
    return Error(rc, "creating token " + t.id, "token " + t.id + " already exists");
  }
  return Status::Ok();
}

Result<TokenRecord> SqliteStore::FindTokenByHash(const TokenHash& hash) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kFindTokenByHash));
  int rc = s.Bind(hash).Step();
  if (rc == SQLITE_ROW) {
    TokenRecord t;
    GATEHOUSE_RETURN_IF_ERROR(ReadToken(s, t));
    return t;
  }
  if (rc == SQLITE_DONE) return Status::NotFound("token not found");
  return Error(rc, "finding a token");
}

Result<TokenRecord> SqliteStore::FindTokenById(std::string_view token_id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kFindTokenById));
  int rc = s.Bind(token_id).Step();
  if (rc == SQLITE_ROW) {
    TokenRecord t;
    GATEHOUSE_RETURN_IF_ERROR(ReadToken(s, t));
    return t;
  }
  if (rc == SQLITE_DONE) return Status::NotFound("token " + std::string(token_id) + " not found");
  return Error(rc, "finding token " + std::string(token_id));
}

Result<std::vector<TokenRecord>> SqliteStore::QueryTokens(Stmt& s) {
  std::vector<TokenRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    TokenRecord t;
    GATEHOUSE_RETURN_IF_ERROR(ReadToken(s, t));
    out.push_back(std::move(t));
  }
  if (rc != SQLITE_DONE) return Error(rc, "listing tokens");
  return out;
}

Result<std::vector<TokenRecord>> SqliteStore::ListTokens(int64_t org_id,
                                                         std::optional<int64_t> api_user_id,
                                                         int64_t now) {
  if (api_user_id) {
    GH_ASSIGN_OR_RETURN(s, Use(Sql::kListTokensByApiUser));
    s.Bind(*api_user_id).Bind(org_id).Bind(now);
    return QueryTokens(s);
  }
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kListTokens));
  s.Bind(org_id).Bind(now);
  return QueryTokens(s);
}

Status SqliteStore::DeleteToken(std::string_view token_id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kDeleteToken));
  int rc = s.Bind(token_id).Step();
  if (rc != SQLITE_DONE) return Error(rc, "deleting token " + std::string(token_id));
  if (sqlite3_changes(db_) == 0) {
    return Status::NotFound("token " + std::string(token_id) + " not found");
  }
  return Status::Ok();
}

Result<int64_t> SqliteStore::DeleteExpiredTokens(int64_t now) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kDeleteExpiredTokens));
  int rc = s.Bind(now).Step();
  if (rc != SQLITE_DONE) return Error(rc, "deleting expired tokens");
  return static_cast<int64_t>(sqlite3_changes64(db_));
}

Status SqliteStore::ScanActiveTokens(int64_t now,
                                     const std::function<Status(const TokenRecord&)>& fn) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kScanActiveTokens));
  s.Bind(now);
  TokenRecord t;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    GATEHOUSE_RETURN_IF_ERROR(ReadToken(s, t));
    GATEHOUSE_RETURN_IF_ERROR(fn(t));
  }
  if (rc != SQLITE_DONE) return Error(rc, "reading tokens");
  return Status::Ok();
}

Result<std::vector<TokenRecord>> SqliteStore::LoadActiveTokens(int64_t now) {
  std::vector<TokenRecord> out;
  GATEHOUSE_RETURN_IF_ERROR(ScanActiveTokens(now, [&out](const TokenRecord& t) {
    out.push_back(t);
    return Status::Ok();
  }));
  return out;
}

// ---------------------------------------------------------------------------
// Settings.

Status SqliteStore::SetSetting(int64_t org_id, std::string_view name, std::string_view value) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kUpsertSetting));
  int rc = s.Bind(org_id).Bind(name).Bind(value).Step();
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
    return Status::NotFound("organization #" + std::to_string(org_id) + " not found");
  }
  if (rc != SQLITE_DONE) return Error(rc, "setting " + std::string(name));
  return Status::Ok();
}

Result<std::string> SqliteStore::GetSetting(int64_t org_id, std::string_view name) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kGetSetting));
  int rc = s.Bind(org_id).Bind(name).Step();
  if (rc == SQLITE_ROW) return s.Text(0);
  if (rc == SQLITE_DONE) return Status::NotFound("setting " + std::string(name) + " is not set");
  return Error(rc, "reading setting " + std::string(name));
}

Result<std::vector<Setting>> SqliteStore::ListSettings(int64_t org_id) {
  GH_ASSIGN_OR_RETURN(s, Use(Sql::kListSettings));
  s.Bind(org_id);
  std::vector<Setting> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(Setting{s.Text(0), s.Text(1)});
  if (rc != SQLITE_DONE) return Error(rc, "listing settings");
  return out;
}

// ---------------------------------------------------------------------------
// Audit log.

AuditRecord SqliteStore::ReadAudit(const Stmt& s) {
  AuditRecord r;
  r.id = s.Int(0);
  r.time = s.Int(1);
  r.org_id = s.OptInt(2);
  r.actor = s.Text(3);
  r.action = s.Text(4);
  r.target = s.Text(5);
  r.decision = s.Text(6) == "allow" ? AuditDecision::kAllow : AuditDecision::kDeny;
  r.rule = s.Text(7);
  r.message = s.Text(8);
  r.detail = s.Text(9);
  return r;
}

Result<int64_t> SqliteStore::AppendAudit(const AuditRecord& r) {
  {
    GH_ASSIGN_OR_RETURN(s, Use(Sql::kInsertAudit));
    int rc = s.Bind(r.time)
                 .Bind(r.org_id)
                 .Bind(r.actor)
                 .Bind(r.action)
                 .Bind(r.target)
                 .Bind(r.decision == AuditDecision::kAllow ? "allow" : "deny")
                 .Bind(r.rule)
                 .Bind(r.message)
                 .Bind(r.detail)
                 .Step();
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return Status::NotFound("organization #" + std::to_string(r.org_id.value_or(0)) +
                              " not found");
    }
    if (rc != SQLITE_DONE) return Error(rc, "writing the audit log");
  }
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<std::vector<AuditRecord>> SqliteStore::ListAudit(std::optional<int64_t> org_id,
                                                        int64_t limit) {
  if (limit < 0) return Status::InvalidArgument("audit limit must not be negative");
  GH_ASSIGN_OR_RETURN(s, Use(org_id ? Sql::kListAuditByOrg : Sql::kListAudit));
  if (org_id) s.Bind(*org_id);
  s.Bind(limit);
  std::vector<AuditRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadAudit(s));
  if (rc != SQLITE_DONE) return Error(rc, "reading the audit log");
  return out;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const StoreOptions& options) {
  return SqliteStore::Make(path, options, SqliteStore::Mode::kOpen);
}

Result<std::unique_ptr<Store>> CreateSqliteStore(const std::string& path,
                                                 const StoreOptions& options,
                                                 const StoreInit& init) {
  auto created = SqliteStore::Make(path, options, SqliteStore::Mode::kCreate);
  if (!created.ok() || !init) return created;
  Store& store = **created;
  const Status filled = store.Transaction([&] { return init(store); });
  if (filled.ok()) return created;
  // A store that failed to initialise is not left behind half-made.
  created->reset();  // closes the connection before the files go
  RemoveStoreFiles(path);
  return filled;
}

namespace internal {

Status ExecSqliteForTesting(Store& store, std::string_view sql) {
  auto* s = dynamic_cast<SqliteStore*>(&store);
  if (s == nullptr) return Status::InvalidArgument("not an SQLite store");
  return s->ExecRaw(sql);
}

Result<int64_t> QuerySqliteIntForTesting(Store& store, std::string_view sql) {
  auto* s = dynamic_cast<SqliteStore*>(&store);
  if (s == nullptr) return Status::InvalidArgument("not an SQLite store");
  return s->QueryInt(sql);
}

}  // namespace internal
}  // namespace gatehouse

// ===========================================================================
// Backup and restore (gatehouse/store_backup.h), kept apart from the Store
// implementation above: raw connections and SQLite's online backup API.
// Neither ever copies or renames the live store's files: the store is only
// read (backup) or written in one transaction of its own (restore), so its
// -wal and -shm stay SQLite's business.

namespace gatehouse {
namespace {

class RawDb {
 public:
  RawDb() = default;
  ~RawDb() { Close(); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  Status Open(const std::string& path, int flags, const std::string& what) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_,
                                   flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      return Status::IoError("cannot open " + what + " " + path + ": " + msg);
    }
    // The file may not be trustworthy (a backup from anywhere).
    sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    return Status::Ok();
  }
  void Close() {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = nullptr;
  }
  sqlite3* get() const { return db_; }
  std::string Message() const { return db_ != nullptr ? sqlite3_errmsg(db_) : "no connection"; }

  // The first column of a query's first row, as text; the SQLite result code.
  int QueryText(const char* sql, std::string* out) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &s, nullptr);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(s, 0);
      *out = t != nullptr ? reinterpret_cast<const char*>(t) : "";
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      out->clear();
      rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
  }
  int Exec(const std::string& sql) { return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr); }

 private:
  sqlite3* db_ = nullptr;
};

bool IsBusy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

// The file is a Gatehouse store this build can read; `integrity` also runs
// SQLite's quick_check (every page read once).
Status CheckGatehouseFile(RawDb& db, const std::string& path, const std::string& what,
                          bool integrity, int* version) {
  std::string v;
  int rc = db.QueryText("PRAGMA application_id", &v);
  if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
    return Status::Corruption(what + " " + path + " is not a SQLite database");
  if (rc != SQLITE_OK) return Status::IoError("cannot read " + what + " " + path + ": " + db.Message());
  if (v != std::to_string(internal::kStoreApplicationId))
    return Status::Corruption(what + " " + path + " is not a Gatehouse store");
  rc = db.QueryText("PRAGMA user_version", &v);
  if (rc != SQLITE_OK) return Status::IoError("cannot read " + what + " " + path + ": " + db.Message());
  *version = std::atoi(v.c_str());
  if (*version < 1) return Status::Corruption(what + " " + path + " is not a Gatehouse store (no schema)");
  if (*version > kStoreSchemaVersion)
    return Status::FailedPrecondition(what + " " + path + " has schema version " + v +
                                      ", newer than this build's " +
                                      std::to_string(kStoreSchemaVersion));
  if (integrity) {
    rc = db.QueryText("PRAGMA quick_check", &v);
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT || (rc == SQLITE_OK && v != "ok"))
      return Status::Corruption(what + " " + path + " is damaged (SQLite quick_check failed)");
    if (rc != SQLITE_OK) return Status::IoError("cannot check " + what + " " + path + ": " + db.Message());
  }
  return Status::Ok();
}

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// Copies every page of `src` into `dest` in one step: one read transaction
// on the source (a consistent instant) and one write transaction on the
// destination. The SQLite result code (SQLITE_OK when done).
int CopyAll(RawDb& dest, RawDb& src) {
  sqlite3_backup* b = sqlite3_backup_init(dest.get(), "main", src.get(), "main");
  if (b == nullptr) return sqlite3_extended_errcode(dest.get());
  int rc = sqlite3_backup_step(b, -1);
  const int finish = sqlite3_backup_finish(b);
  if (rc == SQLITE_DONE) rc = finish;
  return rc;
}

std::string Dir(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// An empty file beside `path`, mode 0600 from its first instant (SQLite gives
// its journal the file's mode): "" when it cannot be made.
std::string TempFileBeside(const std::string& path) {
  std::string t = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(t.data());
  if (fd < 0) return "";
  const bool ok = ::fchmod(fd, 0600) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(t.c_str());
    return "";
  }
  return t;
}

void RemoveTemp(const std::string& t) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((t + suffix).c_str());
}

Status SyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open " + path + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IoError("cannot sync " + path + ": " + std::strerror(err));
  return Status::Ok();
}

Status NeedStoreFile(const std::string& store_path) {
  struct stat st;
  if (::stat(store_path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return Status::FailedPrecondition("store " + store_path + " does not exist; run `gatehouse init`");
    return Status::IoError("cannot open store " + store_path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status::IoError("store " + store_path + " is not a regular file");
  return Status::Ok();
}

// A private, self-contained copy of `src` in the file `tmp` (which exists,
// empty): rollback-journal mode, so it is one file.
Status CopyInto(const std::string& tmp, RawDb& src, const std::string& what) {
  RawDb dest;
  GATEHOUSE_RETURN_IF_ERROR(dest.Open(tmp, SQLITE_OPEN_READWRITE, "a copy of the " + what));
  sqlite3_busy_timeout(src.get(), 5000);
  const int rc = CopyAll(dest, src);
  if (rc != SQLITE_OK) {
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
      return Status::Corruption("the " + what + " is damaged: " + sqlite3_errstr(rc));
    return Status::IoError("copying the " + what + ": " + sqlite3_errstr(rc) + " (" + dest.Message() + ")");
  }
  std::string mode;
  if (dest.QueryText("PRAGMA journal_mode = DELETE", &mode) != SQLITE_OK || mode != "delete")
    return Status::IoError("cannot make the copy of the " + what + " one file: " + dest.Message());
  return Status::Ok();
}

}  // namespace

Status BackupSqliteStore(const std::string& store_path, const std::string& backup_path,
                         const BackupOptions& options) {
  if (backup_path.empty()) return Status::InvalidArgument("the backup path must not be empty");
  GATEHOUSE_RETURN_IF_ERROR(NeedStoreFile(store_path));
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (SameFile(backup_path, store_path + suffix))
      return Status::InvalidArgument("the backup path " + backup_path + " is the store's own file " +
                                     store_path + suffix);
  }
  struct stat st;
  if (!options.overwrite && ::lstat(backup_path.c_str(), &st) == 0)
    return Status::AlreadyExists(backup_path + " already exists (pass --force to replace it)");

  RawDb src;
  GATEHOUSE_RETURN_IF_ERROR(src.Open(store_path, SQLITE_OPEN_READONLY, "store"));
  int version = 0;
  GATEHOUSE_RETURN_IF_ERROR(CheckGatehouseFile(src, store_path, "store", /*integrity=*/false, &version));

  const std::string tmp = TempFileBeside(backup_path);
  if (tmp.empty())
    return Status::IoError("cannot create a file in " + Dir(backup_path) + ": " + std::strerror(errno));
  bool placed = false;
  ScopeExit cleanup([&] {
    if (!placed) RemoveTemp(tmp);
  });
  GATEHOUSE_RETURN_IF_ERROR(CopyInto(tmp, src, "store"));
  src.Close();
  GATEHOUSE_RETURN_IF_ERROR(SyncPath(tmp, false));
  // Into place in one step: nobody sees half a backup, and without
  // --force an existing file is never replaced (even one made meanwhile).
  const int rc = options.overwrite
                     ? ::rename(tmp.c_str(), backup_path.c_str())
                     : ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, backup_path.c_str(), RENAME_NOREPLACE);
  if (rc != 0) {
    if (errno == EEXIST) return Status::AlreadyExists(backup_path + " already exists (pass --force to replace it)");
    return Status::IoError("cannot write the backup " + backup_path + ": " + std::strerror(errno));
  }
  placed = true;
  return SyncPath(Dir(backup_path), true);
}

Status RestoreSqliteStore(const std::string& store_path, const std::string& backup_path,
                          const RestoreOptions& options) {
  if (options.busy_timeout_ms < 0) return Status::InvalidArgument("the busy timeout must not be negative");
  GATEHOUSE_RETURN_IF_ERROR(NeedStoreFile(store_path));
  struct stat st;
  if (::stat(backup_path.c_str(), &st) != 0)
    return Status::FailedPrecondition("backup " + backup_path + " cannot be read: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::FailedPrecondition("backup " + backup_path + " is not a regular file");
  if (SameFile(backup_path, store_path))
    return Status::InvalidArgument("the backup " + backup_path + " is the store itself");

  // 1. The backup, checked whole, copied into a private file beside the
  // store and brought to the current schema there: the live store never
  // holds an old schema or a half-checked file.
  RawDb backup;
  GATEHOUSE_RETURN_IF_ERROR(backup.Open(backup_path, SQLITE_OPEN_READONLY, "backup"));
  int version = 0;
  GATEHOUSE_RETURN_IF_ERROR(CheckGatehouseFile(backup, backup_path, "backup", /*integrity=*/true, &version));
  const std::string tmp = TempFileBeside(store_path);
  if (tmp.empty())
    return Status::IoError("cannot create a file in " + Dir(store_path) + ": " + std::strerror(errno));
  ScopeExit cleanup([&] { RemoveTemp(tmp); });
  GATEHOUSE_RETURN_IF_ERROR(CopyInto(tmp, backup, "backup"));
  backup.Close();
  {
    auto migrated = OpenSqliteStore(tmp);
    if (!migrated.ok())
      return Status::Corruption("backup " + backup_path + " cannot be used: " + migrated.status().message());
  }

  // 2. The content generation past the store's, so that a reader that
  // knew the old content cannot take the restored one for it.
  RawDb live;
  GATEHOUSE_RETURN_IF_ERROR(live.Open(store_path, SQLITE_OPEN_READWRITE, "store"));
  int live_version = 0;
  GATEHOUSE_RETURN_IF_ERROR(CheckGatehouseFile(live, store_path, "store", /*integrity=*/false, &live_version));
  std::string generation;
  if (live.QueryText("SELECT n FROM generation WHERE id = 1", &generation) != SQLITE_OK || generation.empty())
    generation = "0";
  RawDb copy;
  GATEHOUSE_RETURN_IF_ERROR(copy.Open(tmp, SQLITE_OPEN_READWRITE, "a copy of the backup"));
  // And a new change-feed epoch: a sidecar that applied the live store's
  // feed numbers loads everything, since they mean nothing in the restored
  // history (schema.cc, version 3). It arrives with the content, atomically.
  if (copy.Exec("UPDATE generation SET n = max(n, " + std::to_string(std::atoll(generation.c_str())) + ") + 1") !=
          SQLITE_OK ||
      copy.Exec("UPDATE change_feed SET epoch = abs(random() >> 1) WHERE id = 1") != SQLITE_OK)
    return Status::IoError("cannot prepare the backup's copy: " + copy.Message());

  // 3. One write transaction of the live database, under its lock.
  sqlite3_busy_timeout(live.get(), options.busy_timeout_ms);
  const int rc = CopyAll(live, copy);
  if (IsBusy(rc))
    return Status::IoError("store " + store_path + " is in use by a writer (its lock stayed taken for " +
                           std::to_string(options.busy_timeout_ms) + " ms); nothing was restored");
  if ((rc & 0xff) == SQLITE_READONLY)
    return Status::IoError("cannot restore into store " + store_path +
                           ": its page size differs from the backup's, or it is read-only; nothing was restored");
  if (rc != SQLITE_OK)
    return Status::IoError("restoring store " + store_path + ": " + sqlite3_errstr(rc) + "; nothing was restored");
  copy.Close();
  live.Close();

  // 4. Once more past any writer that committed between steps 2 and 3, with
  // the audit record.
  auto store = OpenSqliteStore(store_path);
  if (!store.ok()) return Status::IoError("restored, but the store cannot be opened: " + store.status().message());
  auto* s = dynamic_cast<SqliteStore*>(store->get());
  Status after = (*store)->Transaction([&]() -> Status {
    GATEHOUSE_RETURN_IF_ERROR(s->ExecRaw("UPDATE generation SET n = n + 1"));
    if (!options.audit) return Status::Ok();
    AuditRecord a = *options.audit;
    if (!a.org_id) {
      auto org = (*store)->TheOnlyOrganization();
      if (org.ok()) a.org_id = org->id;
    }
    auto id = (*store)->AppendAudit(a);
    return id.ok() ? Status::Ok() : id.status();
  });
  if (!after.ok()) return Status::IoError("restored, but recording it failed: " + after.message());
  return Status::Ok();
}

}  // namespace gatehouse
