#include "store/schema.h"

namespace gatehouse::internal {
namespace {

// Version 1.
//
// - STRICT tables: a value of the wrong type is refused, not silently kept.
// - Names are COLLATE NOCASE, so UNIQUE and lookups ignore ASCII case.
// - tokens is keyed by the hash (WITHOUT ROWID): a lookup by hash is one
//   B-tree descent, the hot query of the store. The plaintext is never here.
// - Deleting an API user cascades to its tokens (foreign_keys is turned on
//   by every connection); tokens(api_user_id) is indexed for that.
// - The audit log refuses UPDATE and DELETE by triggers. This guards against
//   mistakes and against any code path that tries; it cannot stop someone who
//   owns the file (they could drop the triggers).
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE organizations (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL COLLATE NOCASE UNIQUE
) STRICT;

CREATE TABLE users (
  id       INTEGER PRIMARY KEY,
  org_id   INTEGER NOT NULL REFERENCES organizations(id),
  email    TEXT NOT NULL COLLATE NOCASE UNIQUE,
  org_role TEXT NOT NULL
) STRICT;
CREATE INDEX users_org ON users(org_id);

CREATE TABLE workspaces (
  id            INTEGER PRIMARY KEY,
  org_id        INTEGER NOT NULL REFERENCES organizations(id),
  name          TEXT NOT NULL COLLATE NOCASE,
  type          TEXT NOT NULL,
  owner_user_id INTEGER REFERENCES users(id),
  UNIQUE (org_id, name)
) STRICT;
CREATE INDEX workspaces_owner ON workspaces(owner_user_id);

CREATE TABLE memberships (
  workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role         TEXT NOT NULL,
  PRIMARY KEY (workspace_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE api_users (
  id             INTEGER PRIMARY KEY,
  org_id         INTEGER NOT NULL REFERENCES organizations(id),
  name           TEXT NOT NULL COLLATE NOCASE,
  org_role       TEXT NOT NULL,
  workspace_id   INTEGER NOT NULL REFERENCES workspaces(id),
  workspace_role TEXT NOT NULL,
  created_by     TEXT NOT NULL,
  created_at     INTEGER NOT NULL,
  UNIQUE (org_id, name)
) STRICT;
CREATE INDEX api_users_workspace ON api_users(workspace_id);

CREATE TABLE tokens (
  hash        BLOB NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
  public_id   TEXT NOT NULL UNIQUE,
  api_user_id INTEGER NOT NULL REFERENCES api_users(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  created_by  TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX tokens_api_user ON tokens(api_user_id);
CREATE INDEX tokens_expires ON tokens(expires_at);

CREATE TABLE settings (
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  name   TEXT NOT NULL,
  value  TEXT NOT NULL,
  PRIMARY KEY (org_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_log (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  time     INTEGER NOT NULL,
  org_id   INTEGER REFERENCES organizations(id),
  actor    TEXT NOT NULL,
  action   TEXT NOT NULL,
  target   TEXT NOT NULL,
  decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny')),
  rule     TEXT NOT NULL,
  message  TEXT NOT NULL,
  detail   TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_org ON audit_log(org_id, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'the audit log is append-only');
END;
)sql";

// Version 2: a generation number that every change to the data a decision
// reads bumps (triggers on every table but the audit log), so that a reader
// (the sidecar) can tell a commit that only appended audit records (a denied
// or read-only CLI command) from one it must re-read everything for.
#define GH_BUMPS_GENERATION(table)                                                \
  "CREATE TRIGGER " table "_insert_bumps AFTER INSERT ON " table                  \
  " BEGIN UPDATE generation SET n = n + 1; END;\n"                                \
  "CREATE TRIGGER " table "_update_bumps AFTER UPDATE ON " table                  \
  " BEGIN UPDATE generation SET n = n + 1; END;\n"                                \
  "CREATE TRIGGER " table "_delete_bumps AFTER DELETE ON " table                  \
  " BEGIN UPDATE generation SET n = n + 1; END;\n"
constexpr char kSchemaV2[] =
    "CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL) "
    "STRICT;\n"
    "INSERT INTO generation (id, n) VALUES (1, 0);\n"
    GH_BUMPS_GENERATION("organizations") GH_BUMPS_GENERATION("users")
    GH_BUMPS_GENERATION("workspaces") GH_BUMPS_GENERATION("memberships")
    GH_BUMPS_GENERATION("api_users") GH_BUMPS_GENERATION("tokens")
    GH_BUMPS_GENERATION("settings");
#undef GH_BUMPS_GENERATION

// Version 3: the change feed. Every change to the data a decision reads
// appends the changed row's key (never its values) to `changes`, in the same
// transaction, so a reader can apply what changed instead of re-reading
// everything: it joins each key to the current row in one snapshot (no row:
// deleted), which makes applying a change twice harmless. Writers are
// serialized (BEGIN IMMEDIATE), so `seq` is gapless and in commit order, and
// AUTOINCREMENT never reuses a number, even after pruning (the last number
// stays in sqlite_sequence). SQLite fires these triggers for the rows an
// ON DELETE CASCADE removes too. `change_feed.pruned_through` is the last
// number pruned: a reader that applied less than it must load everything.
// `change_feed.epoch` names this history of the feed: anything that replaces
// the content wholesale (a restore) gives it a new epoch, and a reader whose
// epoch differs loads everything (its numbers mean nothing in the new one).
// The version 2 generation triggers stay, so a sidecar of the previous
// version keeps serving a migrated store until it is restarted.
//
// Keys: tokens (hash), api_users (id1 = id), workspaces (id1 = id),
// users (id1 = id), memberships (id1 = workspace_id, id2 = user_id),
// settings (id1 = org_id, name), organizations (id1 = id).
#define GH_FEEDS(table, new_key, old_key)                                          \
  "CREATE TRIGGER " table "_insert_feeds AFTER INSERT ON " table                   \
  " BEGIN INSERT INTO changes (tbl, op, id1, id2, hash, name) VALUES ('" table     \
  "', 'insert', " new_key "); END;\n"                                              \
  "CREATE TRIGGER " table "_update_feeds AFTER UPDATE ON " table                   \
  " BEGIN INSERT INTO changes (tbl, op, id1, id2, hash, name) VALUES ('" table     \
  "', 'update', " old_key "), ('" table "', 'update', " new_key "); END;\n"         \
  "CREATE TRIGGER " table "_delete_feeds AFTER DELETE ON " table                   \
  " BEGIN INSERT INTO changes (tbl, op, id1, id2, hash, name) VALUES ('" table     \
  "', 'delete', " old_key "); END;\n"
#define GH_KEY_ID(row) #row ".id, NULL, NULL, NULL"
constexpr char kSchemaV3[] =
    "CREATE TABLE changes (\n"
    "  seq  INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  tbl  TEXT NOT NULL,\n"
    "  op   TEXT NOT NULL,\n"
    "  id1  INTEGER,\n"
    "  id2  INTEGER,\n"
    "  hash BLOB,\n"
    "  name TEXT\n"
    ") STRICT;\n"
    "CREATE TABLE change_feed (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "pruned_through INTEGER NOT NULL, epoch INTEGER NOT NULL) STRICT;\n"
    "INSERT INTO change_feed (id, pruned_through, epoch) VALUES (1, 0, abs(random() >> 1));\n"
    GH_FEEDS("tokens", "NULL, NULL, NEW.hash, NULL", "NULL, NULL, OLD.hash, NULL")
    GH_FEEDS("api_users", GH_KEY_ID(NEW), GH_KEY_ID(OLD))
    GH_FEEDS("workspaces", GH_KEY_ID(NEW), GH_KEY_ID(OLD))
    GH_FEEDS("users", GH_KEY_ID(NEW), GH_KEY_ID(OLD))
    GH_FEEDS("organizations", GH_KEY_ID(NEW), GH_KEY_ID(OLD))
    GH_FEEDS("memberships", "NEW.workspace_id, NEW.user_id, NULL, NULL",
             "OLD.workspace_id, OLD.user_id, NULL, NULL")
    GH_FEEDS("settings", "NEW.org_id, NULL, NULL, NEW.name", "OLD.org_id, NULL, NULL, OLD.name");
#undef GH_KEY_ID
#undef GH_FEEDS

constexpr Migration kMigrations[] = {
    {1, kSchemaV1},
    {2, kSchemaV2},
    {3, kSchemaV3},
};

constexpr const char* kTables[] = {
    "organizations", "users",  "workspaces", "memberships",
    "api_users",     "tokens", "settings",   "audit_log",
    "changes",       "change_feed",
};

}  // namespace

std::span<const Migration> StoreMigrations() { return kMigrations; }

std::span<const char* const> StoreTables() { return kTables; }

}  // namespace gatehouse::internal
