// The PostgreSQL implementation of Store. The only file that includes
// libpq-fe.h.
//
// One connection per PgStore (the Store contract is one thread at a time).
// Every statement is sent asynchronously and waited for with poll() under a
// deadline, so a server that stops answering costs at most that deadline,
// never a hang: the connect is asynchronous too (PQconnectStartParams and
// PQconnectPoll, polled under a deadline: the locator's connect_timeout,
// default 5 s, for the whole connect), TCP keepalives and
// tcp_user_timeout notice a dead peer, statement_timeout bounds the server's
// work, and the client's own deadline (statement_timeout + 2 s) bounds the
// wait for an answer. A connection that missed its deadline or broke is
// closed; every later call is IoError (the caller opens a new Store).
// StoreOptions::cancel_fd, when set, is polled beside the socket: once it is
// readable every wait (connect, statement, WaitForChange) ends at once.
//
// Semantics follow the SQLite store (sqlite_store.cc) method by method; the
// schema is pg_schema.cc. What differs, and why:
//
// - Transaction() is BEGIN; SET LOCAL lock_timeout = <busy timeout>; SELECT
//   ... FROM change_head FOR UPDATE: the analogue of BEGIN IMMEDIATE with the
//   busy timeout (SQLSTATE 55P03 -> "store is locked by another writer").
//   Every write method runs in a Transaction (a savepoint when nested), so
//   writers always take the change_head lock first (no lock-order deadlock
//   with the feed trigger) and a failed write inside a caller's transaction
//   rolls back alone, as a failed statement does in SQLite.
// - ReadSnapshot() is REPEATABLE READ READ ONLY: one snapshot, no locks.
// - Feed numbers are transaction numbers (one per committing transaction,
//   pg_schema.cc), not row numbers as in SQLite; ChangeBatch::changes counts
//   feed rows on both, and ReadChangesSince's max_changes is a row count.
// - DataVersion() and ContentGeneration() are the change head: it moves with
//   every commit that changed what decisions read, and not with an
//   audit-only commit. (SQLite's data_version also moves on audit-only
//   commits; a reader that re-checks the content generation after it moved
//   sees no difference.)
// - DeleteExpiredTokens() and PruneChanges() take a transaction-scoped
//   advisory lock with pg_try_advisory_xact_lock: one sweeper at a time
//   across all hosts; the others do nothing and return 0.
// - Subscribe() is LISTEN gatehouse_changes; notifications are drained after
//   every command on the connection (libpq buffers one that arrives during a
//   query, and the socket never becomes readable for it again).
// - Schema: `gatehouse init` (CreateStore) creates it, MigrateStore migrates
//   it explicitly under an advisory lock; opening never migrates, and an
//   older or newer schema is refused.

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gatehouse/store.h"
#include "gatehouse/store_admin.h"
#include "store/pg_schema.h"
#include "store/pg_store.h"

namespace gatehouse {
namespace {

#define GH_ASSIGN_OR_RETURN(lhs, expr)                    \
  auto&& lhs##_result_ = (expr);                          \
  if (!lhs##_result_.ok()) return lhs##_result_.status(); \
  auto& lhs = *lhs##_result_

// The server-side statement_timeout unless the locator sets one
// (options=-c statement_timeout=...); the client waits that long plus the
// slack for an answer, then gives the connection up.
constexpr int kDefaultStatementTimeoutMs = 30000;
constexpr int kClientSlackMs = 2000;
// The token scan reads the table this many pages (8 KiB each) per statement:
// ~240,000 tokens, ~0.3 s of the server's time.
constexpr int64_t kScanPages = 4096;
// The whole connect's deadline unless the locator sets connect_timeout.
constexpr int kDefaultConnectTimeoutS = 5;

// What a wait on the connection's socket came to.
enum class Ready { kYes, kTimeout, kCancelled, kError };

// Waits for `events` on `fd`, or for `cancel_fd` (when >= 0) to become
// readable, until `deadline`.
Ready PollUntil(int fd, short events, int cancel_fd,
                std::chrono::steady_clock::time_point deadline) {
  if (fd < 0) return Ready::kError;
  for (int round = 0; round < 1'000'000; ++round) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Ready::kTimeout;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    pollfd p[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    const nfds_t n = cancel_fd >= 0 ? 2 : 1;
    const int rc = ::poll(p, n, static_cast<int>(std::min<int64_t>(left, INT_MAX)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return Ready::kError;
    if (n == 2 && p[1].revents != 0) return Ready::kCancelled;
    if (rc > 0) return Ready::kYes;
  }
  return Ready::kTimeout;
}

#define GH_FOLD(x) "translate(" x ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
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
#define GH_FEED_RANGE " FROM changes WHERE txn > $1 AND txn <= $2"

std::string Quote(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out.push_back('"');
  return out;
}

// Whether `s` is valid UTF-8 without NUL bytes (what a PostgreSQL text value
// can hold). Checked before sending, so a bad argument is InvalidArgument and
// never aborts the caller's transaction on the server.
bool IsStorableText(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// One query parameter: text, or binary (a hash), or NULL.
struct Param {
  std::string value;
  bool binary = false;
  bool null = false;
};

Param P(int64_t v) { return Param{std::to_string(v)}; }
Param P(std::string_view v) { return Param{std::string(v)}; }
Param P(const char* v) { return Param{std::string(v)}; }
Param P(const std::string& v) { return Param{v}; }
Param P(const TokenHash& h) {
  return Param{std::string(reinterpret_cast<const char*>(h.data()), h.size()), true};
}
Param P(std::optional<int64_t> v) { return v ? P(*v) : Param{{}, false, true}; }

// A query's result, owned.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* r) : r_(r) {}
  PgResult(PgResult&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  PgResult& operator=(PgResult&& o) noexcept {
    if (this != &o) {
      if (r_ != nullptr) PQclear(r_);
      r_ = std::exchange(o.r_, nullptr);
    }
    return *this;
  }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult() {
    if (r_ != nullptr) PQclear(r_);
  }

  PGresult* get() const { return r_; }
  int Rows() const { return PQntuples(r_); }
  // How many rows the command changed (INSERT/UPDATE/DELETE).
  int64_t Affected() const { return std::strtoll(PQcmdTuples(r_), nullptr, 10); }
  bool IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  int64_t Int(int row, int col) const { return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10); }
  std::optional<int64_t> OptInt(int row, int col) const {
    if (IsNull(row, col)) return std::nullopt;
    return Int(row, col);
  }
  std::string Text(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
  }
  void TextInto(int row, int col, std::string& out) const {
    out.assign(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
  }
  // A bigint in binary output (8 bytes, big-endian). False when not that.
  bool BinaryInt64(int row, int col, int64_t& out) const {
    if (IsNull(row, col) || PQgetlength(r_, row, col) != 8) return false;
    const auto* v = reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row, col));
    uint64_t u = 0;
    for (int k = 0; k < 8; ++k) u = u << 8 | v[k];
    out = static_cast<int64_t>(u);
    return true;
  }
  // A bytea in hex output ("\x" + 64 hex digits). False when not 32 bytes.
  bool HashInto(int row, int col, TokenHash& out) const {
    if (IsNull(row, col)) return false;
    const char* v = PQgetvalue(r_, row, col);
    const int len = PQgetlength(r_, row, col);
    if (len != 2 + 2 * static_cast<int>(out.size()) || v[0] != '\\' || v[1] != 'x') return false;
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    for (size_t i = 0; i < out.size(); ++i) {
      const int hi = nibble(v[2 + 2 * i]), lo = nibble(v[3 + 2 * i]);
      if (hi < 0 || lo < 0) return false;
      out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
  }

 private:
  PGresult* r_ = nullptr;
};

// How a failed statement is described: what was attempted, and the messages
// for a unique violation (AlreadyExists) and a foreign key violation
// (NotFound), when the operation can cause one.
struct What {
  What(std::string d, std::string e = {}, std::string m = {})  // NOLINT: implicit on purpose
      : doing(std::move(d)), exists(std::move(e)), missing(std::move(m)) {}
  What(const char* d) : doing(d) {}  // NOLINT
  std::string doing;
  std::string exists;
  std::string missing;
};

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

TokenPrincipal ReadPrincipal(const PgResult& r, int row) {
  TokenPrincipal p;
  p.api_user_id = r.Int(row, 0);
  r.TextInto(row, 1, p.api_user_name);
  p.org_id = r.Int(row, 2);
  r.TextInto(row, 3, p.org_role);
  p.workspace_id = r.Int(row, 4);
  r.TextInto(row, 5, p.workspace_name);
  r.TextInto(row, 6, p.workspace_type);
  r.TextInto(row, 7, p.workspace_role);
  return p;
}

template <typename T>
void SortUnique(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

class PgStore final : public Store {
 public:
  enum class Mode { kOpen, kCreate, kMigrate };

  static Result<std::unique_ptr<PgStore>> Make(const std::string& locator,
                                               const StoreOptions& options, Mode mode,
                                               int* migrated_from = nullptr);
  ~PgStore() override {
    if (conn_ != nullptr) PQfinish(conn_);
  }

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
  Result<int64_t> DataVersion() override { return ChangeHead(); }
  Result<int64_t> ContentGeneration() override { return ChangeHead(); }
  Result<int> SchemaVersion() override;

  Result<int64_t> ChangeHead() override;
  Result<int64_t> FeedEpoch() override;
  Result<int64_t> RenewFeedEpoch() override;
  Result<ChangeBatch> ReadChangesSince(int64_t after, int64_t max_changes) override;
  Result<int64_t> PruneChanges(int64_t keep_last) override;
  Status Subscribe() override;
  Result<bool> WaitForChange(int timeout_ms) override;

  // Test hooks and `gatehouse store copy` (pg_store_testing.h, store_admin.h).
  Status ExecRaw(std::string_view sql) { return Run(std::string(sql), {}, {"running a command"}).status(); }
  Result<int64_t> QueryInt(std::string_view sql);
  Status CopyFrom(Store& source);
  void SetScanPages(int64_t pages) { scan_pages_ = std::max<int64_t>(1, pages); }
  class Batch;

 private:
  PgStore(std::string locator, const StoreOptions& options)
      : locator_(std::move(locator)), shown_(RedactLocator(locator_)), options_(options) {}

  Status Connect();
  Status CheckSchema(int* version);
  Status CreateSchema();
  Status MigrateSchema(int* from);

  // Runs one statement (or, without parameters, several) and waits for its
  // result within the deadline. Statement errors are mapped by Error().
  Result<PgResult> Run(const std::string& sql, const std::vector<Param>& params, const What& what);
  // Run's two halves, for a statement kept in flight while the caller works
  // (the token scan's next FETCH): Send puts it on the wire, Collect waits
  // for its result; both within `deadline` (StatementDeadline() for one
  // statement's whole exchange).
  Status Send(const std::string& sql, const std::vector<Param>& params, const What& what,
              std::chrono::steady_clock::time_point deadline);
  Result<PgResult> Collect(const What& what, std::chrono::steady_clock::time_point deadline);
  // Runs a COPY ... TO STDOUT and gives `row` each CopyData message (one
  // row each in binary format; the header arrives with the first), within
  // one statement deadline. A `row` error stops the reading: the rest is
  // read and dropped (the connection stays usable) and that error returned.
  Status ReadCopy(const std::string& sql, const What& what,
                  const std::function<Status(const char* data, int size)>& row);
  std::chrono::steady_clock::time_point StatementDeadline() const {
    return std::chrono::steady_clock::now() +
           std::chrono::milliseconds(statement_timeout_ms_ + kClientSlackMs);
  }
  Status Wait(short events, std::chrono::steady_clock::time_point deadline, const What& what);
  Status Lost(std::string_view doing);
  // Closes the connection: the caller's cancel_fd said stop.
  Status Cancelled(std::string_view doing);
  void DrainNotifies();
  Status Error(const PGresult* r, const What& what);
  Status ReadOnlyRefusal() const {
    return Status::FailedPrecondition("store " + shown_ + " is opened read-only");
  }
  Status CheckText(std::string_view s, std::string_view what) const {
    if (IsStorableText(s)) return Status::Ok();
    return Status::InvalidArgument(std::string(what) +
                                   " must be UTF-8 text without NUL bytes to be kept in store " +
                                   shown_);
  }

  Status ReadToken(const PgResult& r, int row, TokenRecord& t) const;
  Result<std::vector<TokenRecord>> Tokens(const PgResult& r) const;
  static Workspace ReadWorkspace(const PgResult& r, int row) {
    return Workspace{r.Int(row, 0), r.Int(row, 1), r.Text(row, 2), r.Text(row, 3),
                     r.OptInt(row, 4)};
  }
  static User ReadUser(const PgResult& r, int row) {
    return User{r.Int(row, 0), r.Int(row, 1), r.Text(row, 2), r.Text(row, 3)};
  }
  static ApiUser ReadApiUser(const PgResult& r, int row) {
    return ApiUser{r.Int(row, 0),  r.Int(row, 1),  r.Text(row, 2), r.Text(row, 3), r.Int(row, 4),
                   r.Text(row, 5), r.Text(row, 6), r.Text(row, 7), r.Int(row, 8)};
  }
  static AuditRecord ReadAudit(const PgResult& r, int row);

  std::string locator_;
  std::string shown_;  // the locator without its password
  StoreOptions options_;
  PGconn* conn_ = nullptr;
  int statement_timeout_ms_ = kDefaultStatementTimeoutMs;
  int tx_depth_ = 0;
  int64_t scan_pages_ = kScanPages;  // pages per statement of the token scan
  bool in_snapshot_ = false;
  bool subscribed_ = false;
  bool notified_ = false;  // a notification arrived since the last WaitForChange
};

// ---------------------------------------------------------------------------
// Connecting, the schema, migrations.

Status PgStore::Connect() {
  // Defaults first: the locator (expanded from dbname) overrides them.
  const std::string busy = std::to_string(options_.busy_timeout_ms);
  const std::string connect_timeout = std::to_string(kDefaultConnectTimeoutS);
  const char* keys[] = {"connect_timeout",  "keepalives",      "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                        "application_name", "dbname",          "client_encoding", nullptr};
  const char* values[] = {connect_timeout.c_str(), "1", "5", "2", "3", "10000", "gatehouse",
                          locator_.c_str(), "UTF8", nullptr};
  auto fail = [this](std::string msg) -> Status {
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    if (msg.find("does not exist") != std::string::npos && msg.find("database") != std::string::npos) {
      return Status::FailedPrecondition("store " + shown_ + " does not exist (" + msg +
                                        "); create the database, then run `gatehouse init`");
    }
    return Status::IoError("cannot connect to store " + shown_ + ": " + msg);
  };
  // Asynchronous, so that the whole connect (every host and address the
  // locator names, TLS included) has one deadline and the caller's cancel_fd
  // ends it at once. (PQconnectPoll does not apply connect_timeout itself.)
  conn_ = PQconnectStartParams(keys, values, /*expand_dbname=*/1);
  if (conn_ == nullptr) return Status::Internal("out of memory connecting to a store");
  if (PQstatus(conn_) == CONNECTION_BAD) return fail(PQerrorMessage(conn_));
  int timeout_s = kDefaultConnectTimeoutS;
  if (PQconninfoOption* info = PQconninfo(conn_)) {
    for (PQconninfoOption* o = info; o->keyword != nullptr; ++o) {
      if (std::strcmp(o->keyword, "connect_timeout") == 0 && o->val != nullptr) {
        const int t = std::atoi(o->val);
        // libpq's meaning: 0 or less waits forever (here: the default), 1 is 2.
        timeout_s = t <= 0 ? kDefaultConnectTimeoutS : std::max(t, 2);
      }
    }
    PQconninfoFree(info);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;  // libpq: start as if it said so
  for (int round = 0; round < 100'000 && st != PGRES_POLLING_OK; ++round) {
    if (st == PGRES_POLLING_FAILED) return fail(PQerrorMessage(conn_));
    const Ready r = PollUntil(PQsocket(conn_), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                              options_.cancel_fd, deadline);
    if (r == Ready::kTimeout) {
      return fail("no answer within " + std::to_string(timeout_s) + " s (connect_timeout)");
    }
    if (r == Ready::kCancelled) return Cancelled("connecting");
    if (r == Ready::kError) {
      const std::string why = PQerrorMessage(conn_);
      return fail(why.empty() ? std::string("waiting for the connection failed") : why);
    }
    st = PQconnectPoll(conn_);
  }
  if (st != PGRES_POLLING_OK || PQstatus(conn_) != CONNECTION_OK) {
    return fail(PQerrorMessage(conn_));
  }
  // libpq prints the server's notices and warnings on stderr by default
  // ("terminating connection due to immediate shutdown command"): stray
  // lines in the programs' output. What matters arrives as an error result.
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  {
    GH_ASSIGN_OR_RETURN(t, Run("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'",
                               {}, {"configuring the connection"}));
    const int64_t set = t.Rows() == 1 ? t.Int(0, 0) : 0;
    if (set > 0 && set < INT32_MAX - kClientSlackMs) statement_timeout_ms_ = static_cast<int>(set);
  }
  std::string setup = "SET statement_timeout = " + std::to_string(statement_timeout_ms_) +
                      "; SET lock_timeout = " + busy +
                      "; SET idle_in_transaction_session_timeout = 60000"
                      "; SET bytea_output = 'hex'; SET client_min_messages = warning";
  if (options_.read_only) setup += "; SET default_transaction_read_only = on";
  return Run(setup, {}, {"configuring the connection"}).status();
}

Status PgStore::CheckSchema(int* version) {
  GH_ASSIGN_OR_RETURN(meta, Run("SELECT to_regclass('gatehouse_meta') IS NOT NULL, "
                                "to_regclass('organizations') IS NOT NULL",
                                {}, {"reading the store's schema"}));
  if (meta.Text(0, 0) != "t") {
    if (meta.Text(0, 1) == "t") {
      return Status::Corruption("store " + shown_ + " is not a Gatehouse store (no gatehouse_meta)");
    }
    return Status::FailedPrecondition("store " + shown_ +
                                      " holds no Gatehouse store; run `gatehouse init`");
  }
  GH_ASSIGN_OR_RETURN(v, Run("SELECT schema_version FROM gatehouse_meta WHERE id = 1", {},
                             {"reading the schema version"}));
  if (v.Rows() != 1) {
    return Status::Corruption("store " + shown_ + " has no schema version (damaged?)");
  }
  *version = static_cast<int>(v.Int(0, 0));
  if (*version > kStoreSchemaVersion) {
    return Status::FailedPrecondition(
        "store " + shown_ + " has schema version " + std::to_string(*version) +
        ", newer than this gatehouse understands (" + std::to_string(kStoreSchemaVersion) +
        "); upgrade gatehouse");
  }
  return Status::Ok();
}

Status PgStore::CreateSchema() {
  GATEHOUSE_RETURN_IF_ERROR(Run("BEGIN; SELECT pg_advisory_xact_lock(" +
                                    std::to_string(internal::kPgMigrationLock) + ")",
                                {}, {"locking the store for its creation"})
                                .status());
  Status s = [&]() -> Status {
    GH_ASSIGN_OR_RETURN(meta, Run("SELECT to_regclass('gatehouse_meta') IS NOT NULL", {},
                                  {"reading the store's schema"}));
    if (meta.Text(0, 0) == "t") return Status::AlreadyExists("store " + shown_ + " already exists");
    for (const internal::PgMigration& m : internal::PgStoreMigrations()) {
      GATEHOUSE_RETURN_IF_ERROR(Run(m.sql, {}, {"creating the store's schema"}).status());
      GATEHOUSE_RETURN_IF_ERROR(Run("UPDATE gatehouse_meta SET schema_version = " +
                                        std::to_string(m.to_version),
                                    {}, {"creating the store's schema"})
                                    .status());
    }
    GH_ASSIGN_OR_RETURN(commit, Run("COMMIT", {}, {"creating the store's schema"}));
    if (std::string(PQcmdStatus(commit.get())) != "COMMIT") {
      return Status::IoError("creating store " + shown_ + ": the transaction was rolled back");
    }
    return Status::Ok();
  }();
  if (!s.ok() && conn_ != nullptr && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    (void)Run("ROLLBACK", {}, {"rolling back"});
  }
  return s;
}

Status PgStore::MigrateSchema(int* from) {
  GATEHOUSE_RETURN_IF_ERROR(Run("BEGIN; SELECT pg_advisory_xact_lock(" +
                                    std::to_string(internal::kPgMigrationLock) + ")",
                                {}, {"locking the store for a migration"})
                                .status());
  Status s = [&]() -> Status {
    // Read inside the lock: another process may have migrated meanwhile.
    GATEHOUSE_RETURN_IF_ERROR(CheckSchema(from));
    for (const internal::PgMigration& m : internal::PgStoreMigrations()) {
      if (m.to_version <= *from) continue;
      GATEHOUSE_RETURN_IF_ERROR(Run(m.sql, {}, {"migrating the store"}).status());
      GATEHOUSE_RETURN_IF_ERROR(Run("UPDATE gatehouse_meta SET schema_version = " +
                                        std::to_string(m.to_version),
                                    {}, {"migrating the store"})
                                    .status());
    }
    GH_ASSIGN_OR_RETURN(commit, Run("COMMIT", {}, {"migrating the store"}));
    if (std::string(PQcmdStatus(commit.get())) != "COMMIT") {
      return Status::IoError("migrating store " + shown_ + ": the transaction was rolled back");
    }
    return Status::Ok();
  }();
  if (!s.ok() && conn_ != nullptr && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    (void)Run("ROLLBACK", {}, {"rolling back"});
  }
  return s;
}

Result<std::unique_ptr<PgStore>> PgStore::Make(const std::string& locator,
                                               const StoreOptions& options, Mode mode,
                                               int* migrated_from) {
  if (options.busy_timeout_ms < 0) {
    return Status::InvalidArgument("store busy timeout must not be negative");
  }
  std::unique_ptr<PgStore> store(new PgStore(locator, options));
  if (mode != Mode::kOpen && options.read_only) {
    return Status::InvalidArgument("cannot create or migrate store " + store->shown_ +
                                   " read-only");
  }
  GATEHOUSE_RETURN_IF_ERROR(store->Connect());
  if (mode == Mode::kCreate) GATEHOUSE_RETURN_IF_ERROR(store->CreateSchema());
  int version = 0;
  if (mode == Mode::kMigrate) {
    GATEHOUSE_RETURN_IF_ERROR(store->MigrateSchema(&version));
    if (migrated_from != nullptr) *migrated_from = version;
  }
  GATEHOUSE_RETURN_IF_ERROR(store->CheckSchema(&version));
  if (version < kStoreSchemaVersion) {
    return Status::FailedPrecondition("store " + store->shown_ + " has schema version " +
                                      std::to_string(version) +
                                      " and needs a migration; run `gatehouse store migrate`");
  }
  std::string list;
  for (const char* t : internal::PgStoreTables()) {
    if (!list.empty()) list += ", ";
    list += std::string("('") + t + "')";
  }
  GH_ASSIGN_OR_RETURN(missing, store->Run("SELECT t FROM (VALUES " + list +
                                              ") AS v(t) WHERE to_regclass(t) IS NULL",
                                          {}, {"checking the store's tables"}));
  if (missing.Rows() > 0) {
    return Status::Corruption("store " + store->shown_ + " has no table " + missing.Text(0, 0) +
                              " (damaged, or not a Gatehouse store)");
  }
  return store;
}

// ---------------------------------------------------------------------------
// Statement plumbing and errors.

Status PgStore::Lost(std::string_view doing) {
  std::string msg = conn_ != nullptr ? PQerrorMessage(conn_) : "";
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  return Status::IoError("lost the connection to store " + shown_ + " while " + std::string(doing) +
                         (msg.empty() ? "" : ": " + msg));
}

Status PgStore::Cancelled(std::string_view doing) {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  return Status::IoError("stopped while " + std::string(doing) + " (store " + shown_ + ")");
}

Status PgStore::Wait(short events, std::chrono::steady_clock::time_point deadline,
                     const What& what) {
  switch (PollUntil(PQsocket(conn_), events, options_.cancel_fd, deadline)) {
    case Ready::kYes:
      return Status::Ok();
    case Ready::kTimeout:
      if (conn_ != nullptr) PQfinish(conn_);
      conn_ = nullptr;
      return Status::IoError("store " + shown_ + " did not answer within " +
                             std::to_string(statement_timeout_ms_ + kClientSlackMs) + " ms while " +
                             what.doing);
    case Ready::kCancelled:
      return Cancelled(what.doing);
    case Ready::kError:
      break;
  }
  return Lost(what.doing);
}

void PgStore::DrainNotifies() {
  if (conn_ == nullptr) return;
  while (PGnotify* n = PQnotifies(conn_)) {
    notified_ = true;
    PQfreemem(n);
  }
}

Result<PgResult> PgStore::Run(const std::string& sql, const std::vector<Param>& params,
                              const What& what) {
  const auto deadline = StatementDeadline();
  GATEHOUSE_RETURN_IF_ERROR(Send(sql, params, what, deadline));
  return Collect(what, deadline);
}

Status PgStore::Send(const std::string& sql, const std::vector<Param>& params, const What& what,
                     std::chrono::steady_clock::time_point deadline) {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    if (conn_ == nullptr) {
      return Status::IoError("lost the connection to store " + shown_ + " (open it again)");
    }
    return Lost(what.doing);
  }
  for (const Param& p : params) {
    // libpq sends a text parameter as a C string: a NUL inside would cut it
    // short silently. (The methods check their text first; this catches the rest.)
    if (!p.binary && p.value.find('\0') != std::string::npos) {
      return Status::InvalidArgument(what.doing + ": text with a NUL byte cannot be kept in store " +
                                     shown_);
    }
  }
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size()), formats(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    values[i] = params[i].null ? nullptr : params[i].value.c_str();
    lengths[i] = static_cast<int>(params[i].value.size());
    formats[i] = params[i].binary ? 1 : 0;
  }
  const int sent = params.empty()
                       ? PQsendQuery(conn_, sql.c_str())
                       : PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()),
                                           nullptr, values.data(), lengths.data(), formats.data(),
                                           /*resultFormat=*/0);
  if (sent == 0) return Lost(what.doing);
  for (;;) {
    const int f = PQflush(conn_);
    if (f == 0) break;
    if (f < 0) return Lost(what.doing);
    GATEHOUSE_RETURN_IF_ERROR(Wait(POLLIN | POLLOUT, deadline, what));
    if (PQconsumeInput(conn_) == 0) return Lost(what.doing);
  }
  return Status::Ok();
}

Result<PgResult> PgStore::Collect(const What& what, std::chrono::steady_clock::time_point deadline) {
  if (conn_ == nullptr) {
    return Status::IoError("lost the connection to store " + shown_ + " (open it again)");
  }
  PgResult kept;
  bool kept_error = false;
  for (;;) {
    while (PQisBusy(conn_)) {
      GATEHOUSE_RETURN_IF_ERROR(Wait(POLLIN, deadline, what));
      if (PQconsumeInput(conn_) == 0) return Lost(what.doing);
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COPY_OUT && !kept_error) {
      // A COPY TO STDOUT started: its rows are ReadCopy's (PQgetResult
      // would only repeat this result until they are read).
      DrainNotifies();
      return PgResult(r);
    }
    const bool is_error = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
    if (!kept_error) {
      kept = PgResult(r);
      kept_error = is_error;
    } else {
      PQclear(r);
    }
  }
  DrainNotifies();
  if (kept.get() == nullptr) return Lost(what.doing);
  if (kept_error) return Error(kept.get(), what);
  return kept;
}

Status PgStore::ReadCopy(const std::string& sql, const What& what,
                         const std::function<Status(const char* data, int size)>& row) {
  const auto deadline = StatementDeadline();
  GATEHOUSE_RETURN_IF_ERROR(Send(sql, {}, what, deadline));
  {
    GH_ASSIGN_OR_RETURN(started, Collect(what, deadline));
    if (PQresultStatus(started.get()) != PGRES_COPY_OUT) {
      return Status::Internal("store " + shown_ + ": " + what.doing + ": no COPY started");
    }
  }
  Status stopped = Status::Ok();
  int n = 0;
  // Bounded by the deadline: every round without a row waits for input.
  for (;;) {
    char* data = nullptr;
    n = PQgetCopyData(conn_, &data, /*async=*/1);
    if (n > 0) {
      if (stopped.ok()) stopped = row(data, n);
      PQfreemem(data);
      continue;
    }
    if (n != 0) break;  // -1: the COPY is done; -2: it failed (the result says why)
    GATEHOUSE_RETURN_IF_ERROR(Wait(POLLIN, deadline, what));
    if (PQconsumeInput(conn_) == 0) return Lost(what.doing);
  }
  // The COPY's own result: its end, or the server's error.
  GH_ASSIGN_OR_RETURN(end, Collect(what, deadline));
  if (n == -2 && PQresultStatus(end.get()) == PGRES_COMMAND_OK) return Lost(what.doing);
  return stopped;
}

Status PgStore::Error(const PGresult* r, const What& what) {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) return Lost(what.doing);
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const std::string code = state != nullptr ? state : "";
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const std::string detail = primary != nullptr ? primary : PQresultErrorMessage(r);
  const std::string& doing = what.doing;
  if (code == "23505") {
    return Status::AlreadyExists(!what.exists.empty() ? what.exists : doing + ": already exists");
  }
  if (code == "23503") {
    return Status::NotFound(!what.missing.empty()
                                ? what.missing
                                : doing + ": refers to something that does not exist");
  }
  if (code == "55P03" || code == "40P01" || code == "40001") {
    return Status::IoError("store is locked by another writer (waited " +
                           std::to_string(options_.busy_timeout_ms) + " ms while " + doing + ")");
  }
  if (code == "25006") {
    if (options_.read_only) return ReadOnlyRefusal();
    return Status::FailedPrecondition("store " + shown_ + " is read-only: " + detail);
  }
  if (code == "P0001") return Status::FailedPrecondition(doing + ": " + detail);
  if (code == "57014") {
    return Status::IoError("store " + shown_ + ": " + doing + ": took longer than " +
                           std::to_string(statement_timeout_ms_) + " ms (" + detail + ")");
  }
  if (code == "42P07") return Status::AlreadyExists("store " + shown_ + ": " + detail);
  if (code == "42P01" || code == "42703") {
    return Status::Corruption("store " + shown_ + " is damaged or not a Gatehouse store (" +
                              detail + ")");
  }
  if (code == "42501") {
    return Status::IoError("store " + shown_ + ": " + doing +
                           ": the database refused (check the role's grants): " + detail);
  }
  if (code.rfind("08", 0) == 0 || code.rfind("57P", 0) == 0 || code.rfind("53", 0) == 0 ||
      code.rfind("58", 0) == 0 || code.rfind("XX", 0) == 0) {
    return Status::IoError("store " + shown_ + ": " + doing + ": " + detail);
  }
  if (code.rfind("22", 0) == 0 || code.rfind("23", 0) == 0) {
    return Status::InvalidArgument(doing + ": " + detail);
  }
  return Status::Internal("store " + shown_ + ": " + doing + ": " + detail + " (SQLSTATE " + code +
                          ")");
}

Result<int64_t> PgStore::QueryInt(std::string_view sql) {
  GH_ASSIGN_OR_RETURN(r, Run(std::string(sql), {}, {"reading the store"}));
  if (r.Rows() == 0) return Status::NotFound("no result");
  return r.Int(0, 0);
}

// ---------------------------------------------------------------------------
// Transactions.

Status PgStore::ReadSnapshot(const std::function<Status()>& body) {
  if (tx_depth_ > 0) return body();
  GATEHOUSE_RETURN_IF_ERROR(
      Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", {}, {"starting a read"}).status());
  ++tx_depth_;
  in_snapshot_ = true;
  ScopeExit end([&] {
    --tx_depth_;
    in_snapshot_ = false;
    if (conn_ != nullptr && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      (void)Run("COMMIT", {}, {"ending a read"});
    }
  });
  return body();
}

Status PgStore::Transaction(const std::function<Status()>& body) {
  if (options_.read_only) return ReadOnlyRefusal();
  if (in_snapshot_) {
    return Status::FailedPrecondition("cannot write inside a read snapshot of store " + shown_);
  }
  const bool outer = tx_depth_ == 0;
  if (outer) {
    // The analogue of BEGIN IMMEDIATE: take the writers' lock now, waiting
    // at most the busy timeout.
    auto begun = Run("BEGIN; SET LOCAL lock_timeout = " + std::to_string(options_.busy_timeout_ms) +
                         "; SELECT txn FROM change_head WHERE id = 1 FOR UPDATE",
                     {}, {"starting a transaction"});
    if (!begun.ok()) {
      if (conn_ != nullptr && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
        (void)Run("ROLLBACK", {}, {"rolling back"});
      }
      return begun.status();
    }
  } else {
    GATEHOUSE_RETURN_IF_ERROR(Run("SAVEPOINT gatehouse", {}, {"starting a savepoint"}).status());
  }
  ++tx_depth_;
  bool done = false;
  ScopeExit rollback([&] {
    --tx_depth_;
    if (done || conn_ == nullptr) return;
    if (outer) {
      if (PQtransactionStatus(conn_) != PQTRANS_IDLE) (void)Run("ROLLBACK", {}, {"rolling back"});
    } else {
      (void)Run("ROLLBACK TO SAVEPOINT gatehouse; RELEASE SAVEPOINT gatehouse", {},
                {"rolling back a savepoint"});
    }
  });
  Status s = body();
  if (!s.ok()) return s;
  if (!outer) {
    GATEHOUSE_RETURN_IF_ERROR(Run("RELEASE SAVEPOINT gatehouse", {}, {"committing"}).status());
    done = true;
    return Status::Ok();
  }
  GH_ASSIGN_OR_RETURN(commit, Run("COMMIT", {}, {"committing"}));
  done = true;
  // COMMIT of a transaction that an error aborted answers ROLLBACK.
  if (std::string(PQcmdStatus(commit.get())) != "COMMIT") {
    return Status::IoError("store " + shown_ +
                           ": the transaction was rolled back by an earlier error");
  }
  return Status::Ok();
}

Result<int> PgStore::SchemaVersion() {
  GH_ASSIGN_OR_RETURN(r, Run("SELECT schema_version FROM gatehouse_meta WHERE id = 1", {},
                             {"reading the schema version"}));
  if (r.Rows() != 1) return Status::Corruption("store " + shown_ + " has no schema version");
  return static_cast<int>(r.Int(0, 0));
}

// ---------------------------------------------------------------------------
// The change feed (pg_schema.cc).

Result<int64_t> PgStore::ChangeHead() {
  GH_ASSIGN_OR_RETURN(r, Run("SELECT txn FROM change_head WHERE id = 1", {},
                             {"reading the change feed"}));
  if (r.Rows() != 1) return Status::Corruption("store " + shown_ + " has no change feed head");
  return r.Int(0, 0);
}

// The server's WAL timeline, as the first 8 hex digits of the current WAL
// file's name (any role may ask; a standby, which has no current WAL
// position, says 0). A promotion starts a new timeline at once.
#define GH_PG_TIMELINE                                                                  \
  "CASE WHEN pg_is_in_recovery() THEN 0 ELSE ('x' || substr(pg_walfile_name("           \
  "pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END"

namespace {
// The epoch readers compare: the stored one (random, below 2^62) moved by the
// timeline, so that either changing changes it.
int64_t CombinedEpoch(int64_t stored, int64_t timeline) {
  const uint64_t mixed = static_cast<uint64_t>(stored) +
                         static_cast<uint64_t>(timeline) * 0x9E3779B97F4A7C15ULL;
  return static_cast<int64_t>(mixed & ((uint64_t{1} << 62) - 1));
}
}  // namespace

Result<int64_t> PgStore::FeedEpoch() {
  GH_ASSIGN_OR_RETURN(r, Run("SELECT epoch, " GH_PG_TIMELINE " FROM gatehouse_meta WHERE id = 1",
                             {}, {"reading the change feed's epoch"}));
  if (r.Rows() != 1) return Status::Corruption("store " + shown_ + " has no change feed epoch");
  return CombinedEpoch(r.Int(0, 0), r.Int(0, 1));
}

Result<int64_t> PgStore::RenewFeedEpoch() {
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    // A random epoch as a new store's (pg_schema.cc), never the old one; and
    // a wake-up for the subscribers (at commit), who then load everything.
    GATEHOUSE_RETURN_IF_ERROR(
        Run("UPDATE gatehouse_meta SET epoch = CASE WHEN r = epoch THEN r + 1 ELSE r END FROM "
            "(SELECT floor(random() * 4611686018427387903)::bigint AS r) AS n WHERE id = 1",
            {}, {"renewing the change feed's epoch"})
            .status());
    return Run("SELECT pg_notify('gatehouse_changes', txn::text) FROM change_head WHERE id = 1",
               {}, {"renewing the change feed's epoch"})
        .status();
  }));
  return FeedEpoch();
}

Result<ChangeBatch> PgStore::ReadChangesSince(int64_t after, int64_t max_changes) {
  if (after < 0) return Status::InvalidArgument("a change feed number must not be negative");
  if (max_changes < 0) return Status::InvalidArgument("max_changes must not be negative");
  ChangeBatch batch;
  batch.after = after;
  Status read = ReadSnapshot([&]() -> Status {
    GH_ASSIGN_OR_RETURN(head, ChangeHead());
    if (after > head) {
      return Status::InvalidArgument("change feed number " + std::to_string(after) +
                                     " is ahead of the store's (" + std::to_string(head) +
                                     "): a different store?");
    }
    GH_ASSIGN_OR_RETURN(meta, Run("SELECT pruned_through, epoch, " GH_PG_TIMELINE
                                  " FROM gatehouse_meta WHERE id = 1",
                                  {}, {"reading the change feed"}));
    if (meta.Rows() != 1) return Status::Corruption("store " + shown_ + " has no change feed");
    if (after < meta.Int(0, 0)) {
      return Status::FailedPrecondition("the change feed was pruned past " +
                                        std::to_string(after));
    }
    batch.epoch = CombinedEpoch(meta.Int(0, 1), meta.Int(0, 2));
    batch.head = head;
    if (head == after) return Status::Ok();
    const int64_t limit = max_changes == INT64_MAX ? max_changes : max_changes + 1;
    GH_ASSIGN_OR_RETURN(rows, Run("SELECT tbl, id1, hash, id2" GH_FEED_RANGE " ORDER BY txn, id LIMIT $3",
                                  {P(after), P(head), P(limit)}, {"reading the change feed"}));
    if (rows.Rows() > max_changes) {
      return Status::FailedPrecondition("more than " + std::to_string(max_changes) +
                                        " changes are waiting, more than " +
                                        std::to_string(max_changes) + " to apply one by one");
    }
    batch.changes = rows.Rows();
    std::vector<TokenHash> hashes;
    std::vector<int64_t> api_users;
    bool workspaces = false;
    for (int i = 0; i < rows.Rows(); ++i) {
      const std::string tbl = rows.Text(i, 0);
      if (tbl == "tokens") {
        TokenHash h;
        if (!rows.HashInto(i, 2, h)) {
          return Status::Corruption("store " + shown_ + " has a token change without a hash");
        }
        hashes.push_back(h);
      } else if (tbl == "api_users") {
        api_users.push_back(rows.Int(i, 1));
      } else {
        // Keys (pg_schema.cc): organizations and settings carry the
        // organization; users, workspaces and memberships their ids.
        if (tbl == "organizations" || tbl == "settings") {
          batch.directory_orgs.push_back(rows.Int(i, 1));
        } else if (tbl == "users") {
          batch.directory_users.push_back(rows.Int(i, 1));
        } else if (tbl == "workspaces") {
          workspaces = true;
          batch.directory_workspaces.push_back(rows.Int(i, 1));
        } else if (tbl == "memberships") {
          batch.directory_workspaces.push_back(rows.Int(i, 1));
          batch.directory_users.push_back(rows.Int(i, 3));
        }
        batch.directory_changed = true;
      }
    }
    if (!batch.directory_users.empty() || !batch.directory_workspaces.empty()) {
      // The organizations of the changed users, workspaces and memberships
      // that exist now (sqlite_store.cc has the same query).
      GH_ASSIGN_OR_RETURN(
          orgs, Run("SELECT org_id FROM users WHERE id IN (SELECT id1" GH_FEED_RANGE
                    " AND tbl = 'users' UNION ALL SELECT id2" GH_FEED_RANGE
                    " AND tbl = 'memberships') UNION SELECT org_id FROM workspaces WHERE id IN "
                    "(SELECT id1" GH_FEED_RANGE " AND tbl IN ('workspaces', 'memberships'))",
                    {P(after), P(head)}, {"reading the organizations of changed rows"}));
      for (int i = 0; i < orgs.Rows(); ++i) batch.directory_orgs.push_back(orgs.Int(i, 0));
    }
    SortUnique(batch.directory_orgs);
    SortUnique(batch.directory_users);
    SortUnique(batch.directory_workspaces);
    SortUnique(hashes);
    SortUnique(api_users);
    if (!hashes.empty()) {
      GH_ASSIGN_OR_RETURN(
          found, Run(GH_TOKEN_COLUMNS "WHERE t.hash IN (SELECT hash" GH_FEED_RANGE
                                      " AND tbl = 'tokens')",
                     {P(after), P(head)}, {"reading changed tokens"}));
      GH_ASSIGN_OR_RETURN(tokens, Tokens(found));
      std::sort(tokens.begin(), tokens.end(),
                [](const TokenRecord& a, const TokenRecord& b) { return a.hash < b.hash; });
      size_t k = 0;
      for (const TokenHash& h : hashes) {
        if (k < tokens.size() && tokens[k].hash == h) {
          batch.tokens.push_back(std::move(tokens[k++]));
        } else {
          batch.removed_tokens.push_back(h);
        }
      }
    }
    if (!api_users.empty()) {
      GH_ASSIGN_OR_RETURN(
          found, Run(GH_PRINCIPAL_COLUMNS "WHERE a.id IN (SELECT id1" GH_FEED_RANGE
                                          " AND tbl = 'api_users') ORDER BY a.id",
                     {P(after), P(head)}, {"reading changed API users"}));
      int k = 0;
      for (int64_t id : api_users) {
        if (k < found.Rows() && found.Int(k, 0) == id) {
          batch.principals.push_back(ReadPrincipal(found, k++));
        } else {
          batch.removed_api_users.push_back(id);
        }
      }
    }
    if (workspaces) {
      // A renamed or retyped workspace changes its API users' principals.
      GH_ASSIGN_OR_RETURN(
          found, Run(GH_PRINCIPAL_COLUMNS "WHERE a.workspace_id IN (SELECT id1" GH_FEED_RANGE
                                          " AND tbl = 'workspaces') ORDER BY a.workspace_id, a.id",
                     {P(after), P(head)}, {"reading a changed workspace's API users"}));
      for (int i = 0; i < found.Rows(); ++i) {
        TokenPrincipal p = ReadPrincipal(found, i);
        if (!std::binary_search(api_users.begin(), api_users.end(), p.api_user_id)) {
          batch.principals.push_back(std::move(p));
        }
      }
    }
    return Status::Ok();
  });
  if (!read.ok()) return read;
  return batch;
}

Result<int64_t> PgStore::PruneChanges(int64_t keep_last) {
  if (keep_last < 0) return Status::InvalidArgument("keep_last must not be negative");
  int64_t dropped = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(lock, Run("SELECT pg_try_advisory_xact_lock($1)",
                                  {P(static_cast<int64_t>(internal::kPgPruneLock))},
                                  {"pruning the change feed"}));
    if (lock.Text(0, 0) != "t") return Status::Ok();  // another host prunes now
    // A transaction's rows go together: the floor is the transaction of the
    // newest row beyond the last keep_last (at most keep_last rows remain).
    GH_ASSIGN_OR_RETURN(floor, Run("SELECT txn FROM changes ORDER BY txn DESC, id DESC "
                                   "OFFSET $1 LIMIT 1",
                                   {P(keep_last)}, {"pruning the change feed"}));
    if (floor.Rows() == 0) return Status::Ok();
    const int64_t through = floor.Int(0, 0);
    GH_ASSIGN_OR_RETURN(d, Run("DELETE FROM changes WHERE txn <= $1", {P(through)},
                               {"pruning the change feed"}));
    dropped = d.Affected();
    return Run("UPDATE gatehouse_meta SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1",
               {P(through)}, {"pruning the change feed"})
        .status();
  }));
  return dropped;
}

Status PgStore::Subscribe() {
  GATEHOUSE_RETURN_IF_ERROR(
      Run("LISTEN gatehouse_changes", {}, {"subscribing to the change feed"}).status());
  subscribed_ = true;
  return Status::Ok();
}

Result<bool> PgStore::WaitForChange(int timeout_ms) {
  if (timeout_ms < 0) return Status::InvalidArgument("timeout must not be negative");
  if (conn_ == nullptr) {
    return Status::IoError("lost the connection to store " + shown_ + " (open it again)");
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (int round = 0; round < 1'000'000; ++round) {
    if (PQstatus(conn_) != CONNECTION_OK) return Lost("waiting for changes");
    DrainNotifies();
    if (notified_) {
      notified_ = false;
      return true;
    }
    const Ready r = PollUntil(PQsocket(conn_), POLLIN, options_.cancel_fd, deadline);
    if (r == Ready::kTimeout || r == Ready::kCancelled) return false;  // the caller sees its stop
    if (r == Ready::kError) return Lost("waiting for changes");
    if (PQconsumeInput(conn_) == 0) return Lost("waiting for changes");
  }
  return false;
}

// ---------------------------------------------------------------------------
// Organizations.

Result<Organization> PgStore::CreateOrganization(std::string_view name) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(name, "an organization name"));
  int64_t id = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(r, Run("INSERT INTO organizations(name) VALUES ($1) RETURNING id",
                               {P(name)},
                               {"creating organization " + Quote(name),
                                "organization " + Quote(name) + " already exists"}));
    id = r.Int(0, 0);
    return Status::Ok();
  }));
  return Organization{id, std::string(name)};
}

Result<Organization> PgStore::FindOrganization(std::string_view name) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(name, "an organization name"));
  GH_ASSIGN_OR_RETURN(r, Run("SELECT id, name FROM organizations WHERE name_key = " GH_FOLD("$1"),
                             {P(name)}, {"finding organization " + Quote(name)}));
  if (r.Rows() == 0) return Status::NotFound("organization " + Quote(name) + " not found");
  return Organization{r.Int(0, 0), r.Text(0, 1)};
}

Result<Organization> PgStore::GetOrganization(int64_t id) {
  GH_ASSIGN_OR_RETURN(r, Run("SELECT id, name FROM organizations WHERE id = $1", {P(id)},
                             {"reading an organization"}));
  if (r.Rows() == 0) return Status::NotFound("organization #" + std::to_string(id) + " not found");
  return Organization{r.Int(0, 0), r.Text(0, 1)};
}

Result<Organization> PgStore::TheOnlyOrganization() {
  GH_ASSIGN_OR_RETURN(all, ListOrganizations());
  if (all.empty()) {
    return Status::NotFound("store " + shown_ + " holds no organization; run `gatehouse init`");
  }
  if (all.size() > 1) {
    return Status::InvalidArgument("store " + shown_ + " holds " + std::to_string(all.size()) +
                                   " organizations; say which with --org");
  }
  return std::move(all.front());
}

Result<std::vector<Organization>> PgStore::ListOrganizations() {
  GH_ASSIGN_OR_RETURN(r, Run("SELECT id, name FROM organizations ORDER BY name_key, id", {},
                             {"listing organizations"}));
  std::vector<Organization> out;
  for (int i = 0; i < r.Rows(); ++i) out.push_back(Organization{r.Int(i, 0), r.Text(i, 1)});
  return out;
}

// ---------------------------------------------------------------------------
// Workspaces.

Result<Workspace> PgStore::CreateWorkspace(int64_t org_id, std::string_view name,
                                           std::string_view type,
                                           std::optional<int64_t> owner_user_id) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(name, "a workspace name"));
  GATEHOUSE_RETURN_IF_ERROR(CheckText(type, "a workspace type"));
  Workspace out;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GATEHOUSE_RETURN_IF_ERROR(GetOrganization(org_id).status());
    if (owner_user_id) {
      auto owner = GetUser(*owner_user_id);
      if (!owner.ok()) return owner.status();
      if (owner->org_id != org_id) {
        return Status::NotFound("workspace owner " + owner->email +
                                " is not in the workspace's organization");
      }
    }
    GH_ASSIGN_OR_RETURN(
        r, Run("INSERT INTO workspaces(org_id, name, type, owner_user_id) VALUES ($1, $2, $3, $4) "
               "RETURNING id",
               {P(org_id), P(name), P(type), P(owner_user_id)},
               {"creating workspace " + Quote(name), "workspace " + Quote(name) + " already exists"}));
    out = Workspace{r.Int(0, 0), org_id, std::string(name), std::string(type), owner_user_id};
    return Status::Ok();
  }));
  return out;
}

Result<Workspace> PgStore::FindWorkspace(int64_t org_id, std::string_view name) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(name, "a workspace name"));
  GH_ASSIGN_OR_RETURN(r, Run(GH_WORKSPACE_COLUMNS "WHERE org_id = $1 AND name_key = " GH_FOLD("$2"),
                             {P(org_id), P(name)}, {"finding workspace " + Quote(name)}));
  if (r.Rows() == 0) return Status::NotFound("workspace " + Quote(name) + " not found");
  return ReadWorkspace(r, 0);
}

Result<Workspace> PgStore::GetWorkspace(int64_t id) {
  GH_ASSIGN_OR_RETURN(r, Run(GH_WORKSPACE_COLUMNS "WHERE id = $1", {P(id)}, {"reading a workspace"}));
  if (r.Rows() == 0) return Status::NotFound("workspace #" + std::to_string(id) + " not found");
  return ReadWorkspace(r, 0);
}

Result<std::vector<Workspace>> PgStore::ListWorkspaces(int64_t org_id) {
  GH_ASSIGN_OR_RETURN(r, Run(GH_WORKSPACE_COLUMNS "WHERE org_id = $1 ORDER BY name_key, id",
                             {P(org_id)}, {"listing workspaces"}));
  std::vector<Workspace> out;
  for (int i = 0; i < r.Rows(); ++i) out.push_back(ReadWorkspace(r, i));
  return out;
}

// ---------------------------------------------------------------------------
// Users and memberships.

Result<User> PgStore::AddUser(int64_t org_id, std::string_view email, std::string_view org_role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(email, "an email"));
  GATEHOUSE_RETURN_IF_ERROR(CheckText(org_role, "a role"));
  int64_t id = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(
        r, Run("INSERT INTO users(org_id, email, org_role) VALUES ($1, $2, $3) RETURNING id",
               {P(org_id), P(email), P(org_role)},
               {"adding user " + std::string(email), "user " + std::string(email) + " already exists",
                "organization #" + std::to_string(org_id) + " not found"}));
    id = r.Int(0, 0);
    return Status::Ok();
  }));
  return User{id, org_id, std::string(email), std::string(org_role)};
}

Result<User> PgStore::FindUserByEmail(std::string_view email) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(email, "an email"));
  GH_ASSIGN_OR_RETURN(r, Run(GH_USER_COLUMNS "WHERE email_key = " GH_FOLD("$1"), {P(email)},
                             {"finding user " + std::string(email)}));
  if (r.Rows() == 0) return Status::NotFound("user " + std::string(email) + " not found");
  return ReadUser(r, 0);
}

Result<User> PgStore::GetUser(int64_t id) {
  GH_ASSIGN_OR_RETURN(r, Run(GH_USER_COLUMNS "WHERE id = $1", {P(id)}, {"reading a user"}));
  if (r.Rows() == 0) return Status::NotFound("user #" + std::to_string(id) + " not found");
  return ReadUser(r, 0);
}

Result<std::vector<User>> PgStore::ListUsers(int64_t org_id) {
  GH_ASSIGN_OR_RETURN(r, Run(GH_USER_COLUMNS "WHERE org_id = $1 ORDER BY email_key, id",
                             {P(org_id)}, {"listing users"}));
  std::vector<User> out;
  for (int i = 0; i < r.Rows(); ++i) out.push_back(ReadUser(r, i));
  return out;
}

Status PgStore::SetMembership(int64_t workspace_id, int64_t user_id,
                              std::string_view workspace_role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(workspace_role, "a role"));
  return Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(ws, GetWorkspace(workspace_id));
    GH_ASSIGN_OR_RETURN(user, GetUser(user_id));
    if (ws.org_id != user.org_id) {
      return Status::NotFound("user " + user.email + " is not in the organization of workspace " +
                              Quote(ws.name));
    }
    return Run("INSERT INTO memberships(workspace_id, user_id, role) VALUES ($1, $2, $3) "
               "ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
               {P(workspace_id), P(user_id), P(workspace_role)},
               {"adding " + user.email + " to " + Quote(ws.name)})
        .status();
  });
}

Result<std::string> PgStore::GetMembershipRole(int64_t workspace_id, int64_t user_id) {
  GH_ASSIGN_OR_RETURN(r, Run("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                             {P(workspace_id), P(user_id)}, {"reading a membership"}));
  if (r.Rows() == 0) return Status::NotFound("user is not a member of the workspace");
  return r.Text(0, 0);
}

Result<std::vector<Membership>> PgStore::ListMemberships(int64_t workspace_id) {
  GH_ASSIGN_OR_RETURN(r, Run("SELECT m.workspace_id, m.user_id, u.email, m.role FROM memberships m "
                             "JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 "
                             "ORDER BY u.email_key, u.id",
                             {P(workspace_id)}, {"listing members"}));
  std::vector<Membership> out;
  for (int i = 0; i < r.Rows(); ++i) {
    out.push_back(Membership{r.Int(i, 0), r.Int(i, 1), r.Text(i, 2), r.Text(i, 3)});
  }
  return out;
}

// ---------------------------------------------------------------------------
// API users.

Result<ApiUser> PgStore::CreateApiUser(const NewApiUser& a) {
  for (const std::string* s : {&a.name, &a.org_role, &a.workspace_role, &a.created_by}) {
    GATEHOUSE_RETURN_IF_ERROR(CheckText(*s, "an API user's name, role or creator"));
  }
  int64_t id = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GATEHOUSE_RETURN_IF_ERROR(GetWorkspace(a.workspace_id).status());
    GH_ASSIGN_OR_RETURN(
        r, Run("INSERT INTO api_users(org_id, name, org_role, workspace_id, workspace_role, "
               "created_by, created_at) SELECT w.org_id, $2, $3, w.id, $4, $5, $6 FROM workspaces w "
               "WHERE w.id = $1 RETURNING id",
               {P(a.workspace_id), P(a.name), P(a.org_role), P(a.workspace_role), P(a.created_by),
                P(a.created_at)},
               {"creating API user " + Quote(a.name), "API user " + Quote(a.name) + " already exists"}));
    if (r.Rows() != 1) {
      return Status::NotFound("workspace #" + std::to_string(a.workspace_id) + " not found");
    }
    id = r.Int(0, 0);
    return Status::Ok();
  }));
  return GetApiUser(id);
}

Result<ApiUser> PgStore::FindApiUser(int64_t org_id, std::string_view name) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(name, "an API user name"));
  GH_ASSIGN_OR_RETURN(r, Run(GH_API_USER_COLUMNS "WHERE a.org_id = $1 AND a.name_key = " GH_FOLD("$2"),
                             {P(org_id), P(name)}, {"finding API user " + Quote(name)}));
  if (r.Rows() == 0) return Status::NotFound("API user " + Quote(name) + " not found");
  return ReadApiUser(r, 0);
}

Result<ApiUser> PgStore::GetApiUser(int64_t id) {
  GH_ASSIGN_OR_RETURN(r, Run(GH_API_USER_COLUMNS "WHERE a.id = $1", {P(id)}, {"reading an API user"}));
  if (r.Rows() == 0) return Status::NotFound("API user #" + std::to_string(id) + " not found");
  return ReadApiUser(r, 0);
}

Result<std::vector<ApiUser>> PgStore::ListApiUsers(int64_t org_id,
                                                   std::optional<int64_t> workspace_id) {
  auto r = workspace_id
               ? Run(GH_API_USER_COLUMNS "WHERE a.org_id = $1 AND a.workspace_id = $2 "
                                         "ORDER BY a.name_key, a.id",
                     {P(org_id), P(*workspace_id)}, {"listing API users"})
               : Run(GH_API_USER_COLUMNS "WHERE a.org_id = $1 ORDER BY a.name_key, a.id",
                     {P(org_id)}, {"listing API users"});
  if (!r.ok()) return r.status();
  std::vector<ApiUser> out;
  for (int i = 0; i < r->Rows(); ++i) out.push_back(ReadApiUser(*r, i));
  return out;
}

Status PgStore::SetApiUserWorkspaceRole(int64_t api_user_id, std::string_view role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(role, "a role"));
  return Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(r, Run("UPDATE api_users SET workspace_role = $2 WHERE id = $1",
                               {P(api_user_id), P(role)},
                               {"changing an API user's workspace role"}));
    if (r.Affected() == 0) {
      return Status::NotFound("API user #" + std::to_string(api_user_id) + " not found");
    }
    return Status::Ok();
  });
}

Status PgStore::SetApiUserOrgRole(int64_t api_user_id, std::string_view role) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(role, "a role"));
  return Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(r, Run("UPDATE api_users SET org_role = $2 WHERE id = $1",
                               {P(api_user_id), P(role)},
                               {"changing an API user's organization role"}));
    if (r.Affected() == 0) {
      return Status::NotFound("API user #" + std::to_string(api_user_id) + " not found");
    }
    return Status::Ok();
  });
}

Result<int64_t> PgStore::DeleteApiUser(int64_t api_user_id) {
  int64_t tokens = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(t, Run("DELETE FROM tokens WHERE api_user_id = $1", {P(api_user_id)},
                               {"deleting an API user's tokens"}));
    tokens = t.Affected();
    GH_ASSIGN_OR_RETURN(a, Run("DELETE FROM api_users WHERE id = $1", {P(api_user_id)},
                               {"deleting an API user"}));
    if (a.Affected() == 0) {
      return Status::NotFound("API user #" + std::to_string(api_user_id) + " not found");
    }
    return Status::Ok();
  }));
  return tokens;
}

// ---------------------------------------------------------------------------
// Tokens.

Status PgStore::ReadToken(const PgResult& r, int row, TokenRecord& t) const {
  r.TextInto(row, 0, t.token_id);
  r.TextInto(row, 1, t.name);
  if (!r.HashInto(row, 2, t.hash)) {
    return Status::Corruption("store " + shown_ + " holds a token hash that is not 32 bytes");
  }
  t.created_at = r.Int(row, 3);
  t.expires_at = r.Int(row, 4);
  r.TextInto(row, 5, t.created_by);
  t.api_user_id = r.Int(row, 6);
  r.TextInto(row, 7, t.api_user_name);
  t.org_id = r.Int(row, 8);
  r.TextInto(row, 9, t.org_role);
  t.workspace_id = r.Int(row, 10);
  r.TextInto(row, 11, t.workspace_name);
  r.TextInto(row, 12, t.workspace_type);
  r.TextInto(row, 13, t.workspace_role);
  return Status::Ok();
}

Result<std::vector<TokenRecord>> PgStore::Tokens(const PgResult& r) const {
  std::vector<TokenRecord> out(static_cast<size_t>(r.Rows()));
  for (int i = 0; i < r.Rows(); ++i) GATEHOUSE_RETURN_IF_ERROR(ReadToken(r, i, out[i]));
  return out;
}

Status PgStore::InsertToken(const NewToken& t) {
  for (const std::string* s : {&t.id, &t.name, &t.created_by}) {
    GATEHOUSE_RETURN_IF_ERROR(CheckText(*s, "a token's id, name or creator"));
  }
  return Transaction([&]() -> Status {
    return Run("INSERT INTO tokens(hash, public_id, api_user_id, name, created_at, expires_at, "
               "created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
               {P(t.hash), P(t.id), P(t.api_user_id), P(t.name), P(t.created_at), P(t.expires_at),
                P(t.created_by)},
               // Never name the hash: an id clash is the likely (if astronomically rare) cause.
               {"creating token " + t.id, "token " + t.id + " already exists",
                "API user #" + std::to_string(t.api_user_id) + " not found"})
        .status();
  });
}

Result<TokenRecord> PgStore::FindTokenByHash(const TokenHash& hash) {
  GH_ASSIGN_OR_RETURN(r, Run(GH_TOKEN_COLUMNS "WHERE t.hash = $1", {P(hash)}, {"finding a token"}));
  if (r.Rows() == 0) return Status::NotFound("token not found");
  TokenRecord t;
  GATEHOUSE_RETURN_IF_ERROR(ReadToken(r, 0, t));
  return t;
}

Result<TokenRecord> PgStore::FindTokenById(std::string_view token_id) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(token_id, "a token id"));
  GH_ASSIGN_OR_RETURN(r, Run(GH_TOKEN_COLUMNS "WHERE t.public_id = $1", {P(token_id)},
                             {"finding token " + std::string(token_id)}));
  if (r.Rows() == 0) return Status::NotFound("token " + std::string(token_id) + " not found");
  TokenRecord t;
  GATEHOUSE_RETURN_IF_ERROR(ReadToken(r, 0, t));
  return t;
}

Result<std::vector<TokenRecord>> PgStore::ListTokens(int64_t org_id,
                                                     std::optional<int64_t> api_user_id,
                                                     int64_t now) {
  auto r = api_user_id
               ? Run(GH_TOKEN_COLUMNS "WHERE t.api_user_id = $1 AND a.org_id = $2 AND "
                                      "t.expires_at > $3 ORDER BY t.created_at, t.public_id",
                     {P(*api_user_id), P(org_id), P(now)}, {"listing tokens"})
               : Run(GH_TOKEN_COLUMNS "WHERE a.org_id = $1 AND t.expires_at > $2 "
                                      "ORDER BY t.created_at, t.public_id",
                     {P(org_id), P(now)}, {"listing tokens"});
  if (!r.ok()) return r.status();
  return Tokens(*r);
}

Status PgStore::DeleteToken(std::string_view token_id) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(token_id, "a token id"));
  return Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(r, Run("DELETE FROM tokens WHERE public_id = $1", {P(token_id)},
                               {"deleting token " + std::string(token_id)}));
    if (r.Affected() == 0) return Status::NotFound("token " + std::string(token_id) + " not found");
    return Status::Ok();
  });
}

Result<int64_t> PgStore::DeleteExpiredTokens(int64_t now) {
  int64_t n = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(lock, Run("SELECT pg_try_advisory_xact_lock($1)",
                                  {P(static_cast<int64_t>(internal::kPgSweeperLock))},
                                  {"deleting expired tokens"}));
    if (lock.Text(0, 0) != "t") return Status::Ok();  // another sweeper runs now
    GH_ASSIGN_OR_RETURN(r, Run("DELETE FROM tokens WHERE expires_at <= $1", {P(now)},
                               {"deleting expired tokens"}));
    n = r.Affected();
    return Status::Ok();
  }));
  return n;
}

Status PgStore::ScanActiveTokens(int64_t now,
                                 const std::function<Status(const TokenRecord&)>& fn) {
  // The principals first (a handful of rows), then the tokens' own columns
  // in binary (the hash as 32 raw bytes, integers as 8: ~120 bytes a row,
  // not ~200 of text repeating its API user's and workspace's names).
  //
  // The tokens come as COPY (SELECT ...) TO STDOUT (FORMAT binary): the
  // server streams rows while we parse the ones before (no round trip per
  // batch) and spends about a third less CPU per row than on a cursor's
  // FETCH, which was most of a sidecar's start-up at 1,000,000 tokens. So
  // that no single statement grows with the store (statement_timeout bounds
  // each), the table is read in ranges of kScanPages pages (a TID range
  // scan, PostgreSQL 14+); the last range is open-ended, so a row on a page
  // past the size read at the start is read too. Older servers: one COPY.
  return ReadSnapshot([&]() -> Status {
    std::map<int64_t, TokenPrincipal> principals;
    {
      GH_ASSIGN_OR_RETURN(r, Run(GH_PRINCIPAL_COLUMNS, {}, {"reading API users"}));
      for (int i = 0; i < r.Rows(); ++i) {
        TokenPrincipal p = ReadPrincipal(r, i);
        const int64_t id = p.api_user_id;
        principals.emplace(id, std::move(p));
      }
    }
    const What reading("reading tokens");
    int64_t pages = 0;
    const bool ranges = PQserverVersion(conn_) >= 140000;
    if (ranges) {
      GH_ASSIGN_OR_RETURN(
          size, Run("SELECT pg_relation_size('tokens') / current_setting('block_size')::bigint", {},
                    reading));
      pages = size.Rows() == 1 ? size.Int(0, 0) : 0;
    }
    auto bad = [&] {
      return Status::Corruption("store " + shown_ + " returned a token row that is not as expected");
    };
    TokenRecord t;
    const TokenPrincipal* principal = nullptr;
    bool header = true;  // the COPY's header precedes its first row
    // One row: int16 field count, then per field int32 length and the bytes.
    auto parse = [&](const char* data, int size) -> Status {
      const auto* p = reinterpret_cast<const unsigned char*>(data);
      const unsigned char* const end = p + size;
      auto be = [](const unsigned char* q, int bytes) {
        uint64_t v = 0;
        for (int k = 0; k < bytes; ++k) v = v << 8 | q[k];
        return v;
      };
      if (header) {
        static constexpr unsigned char kSignature[] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xFF,
                                                       '\r', '\n', 0};
        if (end - p < 19 || std::memcmp(p, kSignature, sizeof kSignature) != 0) return bad();
        const uint64_t extension = be(p + 15, 4);
        if (extension > static_cast<uint64_t>(end - p - 19)) return bad();
        p += 19 + extension;
        header = false;
        if (p == end) return Status::Ok();
      }
      if (end - p < 2) return bad();
      const auto fields = static_cast<int16_t>(be(p, 2));
      p += 2;
      if (fields == -1) return p == end ? Status::Ok() : bad();  // the trailer
      if (fields != 7) return bad();
      const unsigned char* value[7];
      int length[7];
      for (int f = 0; f < 7; ++f) {
        if (end - p < 4) return bad();
        const auto len = static_cast<int32_t>(be(p, 4));
        p += 4;
        if (len < 0 || len > end - p) return bad();  // no column here is NULL
        value[f] = p;
        length[f] = len;
        p += len;
      }
      if (p != end) return bad();
      auto text = [&](int f, std::string& out) {
        out.assign(reinterpret_cast<const char*>(value[f]), static_cast<size_t>(length[f]));
      };
      auto int64 = [&](int f, int64_t& out) {
        if (length[f] != 8) return false;
        out = static_cast<int64_t>(be(value[f], 8));
        return true;
      };
      text(0, t.token_id);
      text(1, t.name);
      if (length[2] != static_cast<int>(t.hash.size())) {
        return Status::Corruption("store " + shown_ + " holds a token hash that is not 32 bytes");
      }
      std::memcpy(t.hash.data(), value[2], t.hash.size());
      int64_t api_user_id = 0;
      if (!int64(3, t.created_at) || !int64(4, t.expires_at) || !int64(6, api_user_id)) return bad();
      text(5, t.created_by);
      if (principal == nullptr || principal->api_user_id != api_user_id) {
        auto it = principals.find(api_user_id);
        if (it == principals.end()) return bad();  // a foreign key, in one snapshot
        principal = &it->second;
        t.api_user_id = principal->api_user_id;
        t.api_user_name = principal->api_user_name;
        t.org_id = principal->org_id;
        t.org_role = principal->org_role;
        t.workspace_id = principal->workspace_id;
        t.workspace_name = principal->workspace_name;
        t.workspace_type = principal->workspace_type;
        t.workspace_role = principal->workspace_role;
      }
      return fn(t);
    };
    const std::string select =
        "COPY (SELECT public_id, name, hash, created_at, expires_at, created_by, api_user_id "
        "FROM tokens WHERE expires_at > " + std::to_string(now);
    for (int64_t first = 0;; first += scan_pages_) {
      const bool last = !ranges || first + scan_pages_ >= pages;
      std::string sql = select;
      if (ranges) {
        sql += " AND ctid >= '(" + std::to_string(first) + ",0)'";
        if (!last) sql += " AND ctid < '(" + std::to_string(first + scan_pages_) + ",0)'";
      }
      sql += ") TO STDOUT (FORMAT binary)";
      header = true;
      GATEHOUSE_RETURN_IF_ERROR(ReadCopy(sql, reading, parse));
      if (header) return bad();  // not even a header
      if (last) return Status::Ok();
    }
  });
}

Result<std::vector<TokenRecord>> PgStore::LoadActiveTokens(int64_t now) {
  std::vector<TokenRecord> out;
  GATEHOUSE_RETURN_IF_ERROR(ScanActiveTokens(now, [&out](const TokenRecord& t) {
    out.push_back(t);
    return Status::Ok();
  }));
  return out;
}

// ---------------------------------------------------------------------------
// Settings.

Status PgStore::SetSetting(int64_t org_id, std::string_view name, std::string_view value) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(name, "a setting name"));
  GATEHOUSE_RETURN_IF_ERROR(CheckText(value, "a setting value"));
  return Transaction([&]() -> Status {
    return Run("INSERT INTO settings(org_id, name, value) VALUES ($1, $2, $3) "
               "ON CONFLICT (org_id, name) DO UPDATE SET value = excluded.value",
               {P(org_id), P(name), P(value)},
               {"setting " + std::string(name), {},
                "organization #" + std::to_string(org_id) + " not found"})
        .status();
  });
}

Result<std::string> PgStore::GetSetting(int64_t org_id, std::string_view name) {
  GATEHOUSE_RETURN_IF_ERROR(CheckText(name, "a setting name"));
  GH_ASSIGN_OR_RETURN(r, Run("SELECT value FROM settings WHERE org_id = $1 AND name = $2",
                             {P(org_id), P(name)}, {"reading setting " + std::string(name)}));
  if (r.Rows() == 0) return Status::NotFound("setting " + std::string(name) + " is not set");
  return r.Text(0, 0);
}

Result<std::vector<Setting>> PgStore::ListSettings(int64_t org_id) {
  GH_ASSIGN_OR_RETURN(r, Run("SELECT name, value FROM settings WHERE org_id = $1 ORDER BY name",
                             {P(org_id)}, {"listing settings"}));
  std::vector<Setting> out;
  for (int i = 0; i < r.Rows(); ++i) out.push_back(Setting{r.Text(i, 0), r.Text(i, 1)});
  return out;
}

// ---------------------------------------------------------------------------
// Audit log.

AuditRecord PgStore::ReadAudit(const PgResult& r, int row) {
  AuditRecord a;
  a.id = r.Int(row, 0);
  a.time = r.Int(row, 1);
  a.org_id = r.OptInt(row, 2);
  a.actor = r.Text(row, 3);
  a.action = r.Text(row, 4);
  a.target = r.Text(row, 5);
  a.decision = r.Text(row, 6) == "allow" ? AuditDecision::kAllow : AuditDecision::kDeny;
  a.rule = r.Text(row, 7);
  a.message = r.Text(row, 8);
  a.detail = r.Text(row, 9);
  return a;
}

Result<int64_t> PgStore::AppendAudit(const AuditRecord& a) {
  for (const std::string* s : {&a.actor, &a.action, &a.target, &a.rule, &a.message, &a.detail}) {
    GATEHOUSE_RETURN_IF_ERROR(CheckText(*s, "an audit record's text"));
  }
  int64_t id = 0;
  GATEHOUSE_RETURN_IF_ERROR(Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(
        r, Run("INSERT INTO audit_log(time, org_id, actor, action, target, decision, rule, message, "
               "detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
               {P(a.time), P(a.org_id), P(a.actor), P(a.action), P(a.target),
                P(a.decision == AuditDecision::kAllow ? "allow" : "deny"), P(a.rule), P(a.message),
                P(a.detail)},
               {"writing the audit log", {},
                "organization #" + std::to_string(a.org_id.value_or(0)) + " not found"}));
    id = r.Int(0, 0);
    return Status::Ok();
  }));
  return id;
}

Result<std::vector<AuditRecord>> PgStore::ListAudit(std::optional<int64_t> org_id, int64_t limit) {
  if (limit < 0) return Status::InvalidArgument("audit limit must not be negative");
  auto r = org_id ? Run(GH_AUDIT_COLUMNS "WHERE org_id = $1 ORDER BY id DESC LIMIT $2",
                        {P(*org_id), P(limit)}, {"reading the audit log"})
                  : Run(GH_AUDIT_COLUMNS "ORDER BY id DESC LIMIT $1", {P(limit)},
                        {"reading the audit log"});
  if (!r.ok()) return r.status();
  std::vector<AuditRecord> out;
  for (int i = 0; i < r->Rows(); ++i) out.push_back(ReadAudit(*r, i));
  return out;
}

// ---------------------------------------------------------------------------
// Copying another store in (`gatehouse store copy`): ids and audit log kept.

// Rows for one multi-row INSERT, sent kRows at a time: a copy of a million
// tokens is a thousand round trips, not a million (measured: 20,000 tokens
// one statement each took 10.5 s on a loaded 2-core machine).
class PgStore::Batch {
 public:
  Batch(std::string prefix, int columns) : prefix_(std::move(prefix)), columns_(columns) {}
  Status Add(std::vector<Param> row, PgStore& store, const What& what) {
    for (Param& p : row) params_.push_back(std::move(p));
    if (++rows_ == kRows) return Flush(store, what);
    return Status::Ok();
  }
  Status Flush(PgStore& store, const What& what) {
    if (rows_ == 0) return Status::Ok();
    std::string sql = prefix_;
    int n = 0;
    for (int r = 0; r < rows_; ++r) {
      sql += r == 0 ? "(" : ", (";
      for (int c = 0; c < columns_; ++c) sql += (c == 0 ? "$" : ", $") + std::to_string(++n);
      sql += ")";
    }
    Status s = store.Run(sql, params_, what).status();
    params_.clear();
    rows_ = 0;
    return s;
  }

 private:
  static constexpr int kRows = 1000;  // ≤ 65,535 parameters a statement at 10 columns
  std::string prefix_;
  int columns_;
  int rows_ = 0;
  std::vector<Param> params_;
};

Status PgStore::CopyFrom(Store& source) {
  struct Org {
    Organization org;
    std::vector<User> users;
    std::vector<Workspace> workspaces;
    std::vector<Membership> memberships;
    std::vector<ApiUser> api_users;
    std::vector<TokenRecord> tokens;
    std::vector<Setting> settings;
  };
  std::vector<Org> orgs;
  std::vector<AuditRecord> audit;
  // Everything from one snapshot of the source.
  GATEHOUSE_RETURN_IF_ERROR(source.ReadSnapshot([&]() -> Status {
    GH_ASSIGN_OR_RETURN(all, source.ListOrganizations());
    for (const Organization& o : all) {
      Org x{o, {}, {}, {}, {}, {}, {}};
      GH_ASSIGN_OR_RETURN(users, source.ListUsers(o.id));
      x.users = std::move(users);
      GH_ASSIGN_OR_RETURN(workspaces, source.ListWorkspaces(o.id));
      x.workspaces = std::move(workspaces);
      for (const Workspace& w : x.workspaces) {
        GH_ASSIGN_OR_RETURN(members, source.ListMemberships(w.id));
        x.memberships.insert(x.memberships.end(), members.begin(), members.end());
      }
      GH_ASSIGN_OR_RETURN(api_users, source.ListApiUsers(o.id, std::nullopt));
      x.api_users = std::move(api_users);
      GH_ASSIGN_OR_RETURN(tokens, source.ListTokens(o.id, std::nullopt, INT64_MIN));
      x.tokens = std::move(tokens);
      GH_ASSIGN_OR_RETURN(settings, source.ListSettings(o.id));
      x.settings = std::move(settings);
      orgs.push_back(std::move(x));
    }
    GH_ASSIGN_OR_RETURN(records, source.ListAudit(std::nullopt, INT64_MAX));
    audit = std::move(records);
    return Status::Ok();
  }));
  std::reverse(audit.begin(), audit.end());  // oldest first, ids ascending
  return Transaction([&]() -> Status {
    GH_ASSIGN_OR_RETURN(n, Run("SELECT (SELECT count(*) FROM organizations) + "
                               "(SELECT count(*) FROM audit_log)",
                               {}, {"checking that the target is empty"}));
    if (n.Int(0, 0) != 0) {
      return Status::FailedPrecondition("store " + shown_ +
                                        " is not empty; copy only into a new store");
    }
    const What w{"copying the store"};
    for (const Org& o : orgs) {
      GATEHOUSE_RETURN_IF_ERROR(CheckText(o.org.name, "an organization name"));
      GATEHOUSE_RETURN_IF_ERROR(Run("INSERT INTO organizations(id, name) VALUES ($1, $2)",
                                    {P(o.org.id), P(o.org.name)}, w)
                                    .status());
    }
    for (const Org& o : orgs) {
      for (const User& u : o.users) {
        GATEHOUSE_RETURN_IF_ERROR(Run("INSERT INTO users(id, org_id, email, org_role) "
                                      "VALUES ($1, $2, $3, $4)",
                                      {P(u.id), P(u.org_id), P(u.email), P(u.org_role)}, w)
                                      .status());
      }
      for (const Workspace& x : o.workspaces) {
        GATEHOUSE_RETURN_IF_ERROR(Run("INSERT INTO workspaces(id, org_id, name, type, owner_user_id) "
                                      "VALUES ($1, $2, $3, $4, $5)",
                                      {P(x.id), P(x.org_id), P(x.name), P(x.type), P(x.owner_user_id)},
                                      w)
                                      .status());
      }
      for (const Membership& m : o.memberships) {
        GATEHOUSE_RETURN_IF_ERROR(Run("INSERT INTO memberships(workspace_id, user_id, role) "
                                      "VALUES ($1, $2, $3)",
                                      {P(m.workspace_id), P(m.user_id), P(m.workspace_role)}, w)
                                      .status());
      }
      for (const ApiUser& a : o.api_users) {
        GATEHOUSE_RETURN_IF_ERROR(
            Run("INSERT INTO api_users(id, org_id, name, org_role, workspace_id, workspace_role, "
                "created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                {P(a.id), P(a.org_id), P(a.name), P(a.org_role), P(a.workspace_id),
                 P(a.workspace_role), P(a.created_by), P(a.created_at)},
                w)
                .status());
      }
      Batch tokens("INSERT INTO tokens(hash, public_id, api_user_id, name, created_at, "
                   "expires_at, created_by) VALUES ",
                   7);
      for (const TokenRecord& t : o.tokens) {
        GATEHOUSE_RETURN_IF_ERROR(tokens.Add({P(t.hash), P(t.token_id), P(t.api_user_id), P(t.name),
                                              P(t.created_at), P(t.expires_at), P(t.created_by)},
                                             *this, w));
      }
      GATEHOUSE_RETURN_IF_ERROR(tokens.Flush(*this, w));
      for (const Setting& s : o.settings) {
        GATEHOUSE_RETURN_IF_ERROR(Run("INSERT INTO settings(org_id, name, value) VALUES ($1, $2, $3)",
                                      {P(o.org.id), P(s.name), P(s.value)}, w)
                                      .status());
      }
    }
    Batch records("INSERT INTO audit_log(id, time, org_id, actor, action, target, decision, "
                  "rule, message, detail) VALUES ",
                  10);
    for (const AuditRecord& a : audit) {
      GATEHOUSE_RETURN_IF_ERROR(
          records.Add({P(a.id), P(a.time), P(a.org_id), P(a.actor), P(a.action), P(a.target),
                       P(a.decision == AuditDecision::kAllow ? "allow" : "deny"), P(a.rule),
                       P(a.message), P(a.detail)},
                      *this, w));
    }
    GATEHOUSE_RETURN_IF_ERROR(records.Flush(*this, w));
    // The identities continue after the copied ids.
    for (const char* table : {"organizations", "users", "workspaces", "api_users", "audit_log"}) {
      const std::string t = table;
      GATEHOUSE_RETURN_IF_ERROR(
          Run("SELECT setval(pg_get_serial_sequence('" + t + "', 'id'), "
              "COALESCE((SELECT max(id) FROM " + t + "), 0) + 1, false)",
              {}, w)
              .status());
    }
    return Status::Ok();
  });
}

}  // namespace

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& locator,
                                                 const StoreOptions& options) {
  auto s = PgStore::Make(locator, options, PgStore::Mode::kOpen);
  if (!s.ok()) return s.status();
  return std::unique_ptr<Store>(std::move(s).value());
}

Result<std::unique_ptr<Store>> CreatePostgresStore(const std::string& locator,
                                                   const StoreOptions& options) {
  auto s = PgStore::Make(locator, options, PgStore::Mode::kCreate);
  if (!s.ok()) return s.status();
  return std::unique_ptr<Store>(std::move(s).value());
}

Result<int> MigratePostgresStore(const std::string& locator, const StoreOptions& options) {
  int from = 0;
  auto s = PgStore::Make(locator, options, PgStore::Mode::kMigrate, &from);
  if (!s.ok()) return s.status();
  return from;
}

Status CopyIntoPostgresStore(Store& source, Store& target) {
  auto* pg = dynamic_cast<PgStore*>(&target);
  if (pg == nullptr) return Status::InvalidArgument("the target of a copy must be a PostgreSQL store");
  return pg->CopyFrom(source);
}

namespace internal {

Status ExecPostgresForTesting(Store& store, std::string_view sql) {
  auto* s = dynamic_cast<PgStore*>(&store);
  if (s == nullptr) return Status::InvalidArgument("not a PostgreSQL store");
  return s->ExecRaw(sql);
}

Result<int64_t> QueryPostgresIntForTesting(Store& store, std::string_view sql) {
  auto* s = dynamic_cast<PgStore*>(&store);
  if (s == nullptr) return Status::InvalidArgument("not a PostgreSQL store");
  return s->QueryInt(sql);
}

bool IsPostgresStoreForTesting(Store& store) { return dynamic_cast<PgStore*>(&store) != nullptr; }

Status SetPostgresScanPagesForTesting(Store& store, int64_t pages) {
  auto* s = dynamic_cast<PgStore*>(&store);
  if (s == nullptr) return Status::InvalidArgument("not a PostgreSQL store");
  s->SetScanPages(pages);
  return Status::Ok();
}

}  // namespace internal
}  // namespace gatehouse
