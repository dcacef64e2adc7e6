// Store administration by locator, whatever the backend (gatehouse/store.h
// names the locators): explicit migration and copying a store into a new
// PostgreSQL one. Used by `gatehouse store migrate` and `gatehouse store copy`.
#pragma once

#include <string>

#include "gatehouse/status.h"
#include "gatehouse/store.h"

namespace gatehouse {

// Brings the store to kStoreSchemaVersion and returns the version it had.
// PostgreSQL: in one transaction under an advisory lock (concurrent migrators
// wait for each other; the second finds nothing to do). SQLite: what opening
// for writing does anyway. FailedPrecondition when the schema is newer than
// this build or the store does not exist.
Result<int> MigrateStore(const std::string& locator, const StoreOptions& options = {});

// Copies the store at `from` (any backend, read in one snapshot) into the
// PostgreSQL store at `to`, keeping ids and the audit log, in one
// transaction: all or nothing. The target's schema is created when its
// database holds none; FailedPrecondition when it already holds data;
// InvalidArgument when `to` is not a PostgreSQL locator.
Status CopyStore(const std::string& from, const std::string& to, const StoreOptions& options = {});

}  // namespace gatehouse
