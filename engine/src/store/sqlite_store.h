// The SQLite backend's entry points and its file-level helpers: what only a
// SQLite store has. For store_open.cc (which maps a locator to a backend) and
// for tests of SQLite-specific behaviour; everything else opens a store by
// locator (gatehouse/store.h: OpenStore, CreateStore) and names no backend.
// Nothing here names sqlite3.h (sqlite_store.cc is the only file that
// includes it).
#pragma once

#include <memory>
#include <string>

#include "gatehouse/status.h"
#include "gatehouse/store.h"

namespace gatehouse {

// Opens an existing SQLite store, migrating an older schema (unless read-only).
// FailedPrecondition "store PATH does not exist; run `gatehouse init`" when
// the file is missing; Corruption when the file is damaged, truncated, empty,
// or not a Gatehouse store; FailedPrecondition when its schema is newer than
// this build; IoError when it cannot be opened.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const StoreOptions& options = {});

// Creates a new, empty SQLite store file (mode 0600) with the current schema,
// then runs `init` (if given) in one transaction. AlreadyExists when `path`
// exists (never touches it); IoError when it cannot be created; init's error
// when it fails. On any failure the file and its -wal and -shm files are
// removed.
Result<std::unique_ptr<Store>> CreateSqliteStore(const std::string& path,
                                                 const StoreOptions& options = {},
                                                 const StoreInit& init = nullptr);

// Looking at a SQLite store file from outside SQLite, for a reader (the
// sidecar) that must notice every commit by another process at once without
// paying for a read transaction on every request.
//
// Neither SqliteWalWatch nor ProbeStoreFile ever closes a descriptor of the
// store's files: closing one would drop the POSIX locks SQLite holds on them
// in this process (sqlite.org/howtocorrupt.html, 2.2). Each file (device and
// inode) is opened once and kept until the process exits.

// The stamp (StoreStamp) is the WAL-index header, two 48-byte copies at the
// start of the store's "-shm" file (sqlite.org/walformat.html), whose change
// counter SQLite bumps per transaction. A commit's header write is its last
// step, so a reader that sees an unchanged stamp after a writer returned
// knows nothing committed. SqliteStore::Watch() returns one of these.
class SqliteWalWatch final : public StoreWatch {
 public:
  // Opens the store's "-shm" file read-only and maps its header. A
  // connection must have opened the store first (SQLite creates the file
  // then). Null when it cannot be opened or mapped (the store is not in WAL
  // mode, an unusual VFS, a file shorter than the header): the caller then
  // asks the store (DataVersion) every time.
  static std::unique_ptr<SqliteWalWatch> Open(const std::string& store_path);

  ~SqliteWalWatch() override;
  SqliteWalWatch(const SqliteWalWatch&) = delete;
  SqliteWalWatch& operator=(const SqliteWalWatch&) = delete;

  // Reads the stamp from a shared mapping of the file's first page: no
  // system call, no SQLite call, no lock, safe from any thread. False when
  // SQLite has not built the index yet: treat as "changed".
  bool Read(StoreStamp* out) const override;

 private:
  explicit SqliteWalWatch(const unsigned char* map) : map_(map) {}
  const unsigned char* map_;  // the header's page; its descriptor is kept (see above)
};

// Whether this process can read the file at `path` as a SQLite database now:
// it is a regular file, its mode lets this process read it, and it starts
// with SQLite's 16-byte magic. A stat, an access check and one pread(); no
// SQLite call. FailedPrecondition when nothing (or not a regular file) is at
// `path`; PermissionDenied when this process may not read it; Corruption
// when it is not a SQLite file (for instance overwritten or truncated);
// IoError when the checks themselves fail.
Status ProbeStoreFile(const std::string& path);

}  // namespace gatehouse
