// Backing up and restoring a SQLite store while it is in use.
//
// Both go through SQLite's online backup API, never a file copy: a store in
// WAL mode is three files (the database, "-wal", "-shm"), and copying or
// swapping only the first loses committed changes or, worse, lets SQLite
// replay the old "-wal" onto the restored file. (Whoever swaps files anyway
// must move "-wal" and "-shm" with the database, with no process using it.)
//
// Thread safety: free functions; each opens its own connections.
#pragma once

#include <optional>
#include <string>

#include "gatehouse/status.h"
#include "gatehouse/store.h"

namespace gatehouse {

struct BackupOptions {
  // Replace an existing file at the backup path. Default false: AlreadyExists.
  bool overwrite = false;
};

// Writes a consistent copy of the store at `store_path` (as of one instant;
// writers may go on meanwhile) to `backup_path`: one self-contained file
// (rollback-journal mode, no "-wal"), mode 0600 from its first instant,
// written under a temporary name and renamed into place, so that a failure
// leaves nothing behind and a reader never sees half a backup.
// Errors: AlreadyExists (the backup path exists and !overwrite),
// InvalidArgument (the backup path is the store or one of its files),
// FailedPrecondition (no store), Corruption (not a Gatehouse store), IoError.
Status BackupSqliteStore(const std::string& store_path, const std::string& backup_path,
                         const BackupOptions& options = {});

struct RestoreOptions {
  // How long to wait for another process's write transaction to end before
  // refusing. Default 2000 ms.
  int busy_timeout_ms = 2000;
  // Appended to the restored store's audit log in the same commit that tells
  // readers about the restore (org_id is filled in when the restored store
  // holds exactly one organization). Absent: no record.
  std::optional<AuditRecord> audit;
};

// Replaces the content of the store at `store_path` with the backup at
// `backup_path`, in one transaction of the live database: SQLite writes it
// through the store's own WAL and locks, so running sidecars see a commit
// like any other and rebuild their view (the store's content generation is
// moved past both the old and the backup's). The backup is checked first
// (a Gatehouse store, schema not newer than this build, SQLite's
// quick_check) and migrated, in a private copy, to the current schema.
// Errors, each with the store unchanged: Corruption (the backup is not a
// SQLite file, not a Gatehouse store, or damaged), FailedPrecondition (no
// store or no backup; a backup newer than this build), IoError "store ... is
// in use by a writer" (a write transaction held it for busy_timeout_ms), and
// other IoErrors.
Status RestoreSqliteStore(const std::string& store_path, const std::string& backup_path,
                          const RestoreOptions& options = {});

}  // namespace gatehouse
