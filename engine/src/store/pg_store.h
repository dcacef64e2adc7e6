// The PostgreSQL backend's entry points (pg_store.cc), for store_open.cc and
// the tests. Nothing here names libpq.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "gatehouse/store.h"

namespace gatehouse {

// Opens the store in the database named by `locator` (a libpq URI). Never
// migrates: an older or newer schema is FailedPrecondition. A database
// without a Gatehouse schema is FailedPrecondition ("run `gatehouse init`");
// one that cannot be reached is IoError.
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& locator,
                                                 const StoreOptions& options);
// Creates the schema in an existing database (under the migration lock).
// AlreadyExists when the database already holds a Gatehouse store.
Result<std::unique_ptr<Store>> CreatePostgresStore(const std::string& locator,
                                                   const StoreOptions& options);
// Migrates the schema to the current version under the migration lock;
// returns the version found.
Result<int> MigratePostgresStore(const std::string& locator, const StoreOptions& options);
// Copies everything in `source` (ids and audit log kept) into `target`, a
// PostgreSQL store that must be empty, in one transaction.
Status CopyIntoPostgresStore(Store& source, Store& target);

namespace internal {
// Test hooks: raw SQL on a PostgreSQL store's connection.
Status ExecPostgresForTesting(Store& store, std::string_view sql);
Result<int64_t> QueryPostgresIntForTesting(Store& store, std::string_view sql);
bool IsPostgresStoreForTesting(Store& store);
// How many table pages each statement of ScanActiveTokens reads (default
// 4096), so that a test's few hundred tokens span several.
Status SetPostgresScanPagesForTesting(Store& store, int64_t pages);
}  // namespace internal

}  // namespace gatehouse
