// The PostgreSQL schema of a Gatehouse store (pg_store.cc) and its
// migrations. Kept apart from the SQLite schema (schema.h): the two mean the
// same thing, table by table and trigger by trigger, but are spelled in each
// database's own SQL.
//
// The schema version lives in gatehouse_meta.schema_version. Version 3 is
// the first PostgreSQL schema (the SQLite store's version 3 has the same
// tables and the same change feed). Never edit a released migration: add one.
#pragma once

#include <span>

namespace gatehouse::internal {

struct PgMigration {
  int to_version;
  const char* sql;  // run in the migration's transaction, under the migration lock
};

// All migrations, in order; the last one's to_version is kStoreSchemaVersion.
// The first creates the whole schema.
std::span<const PgMigration> PgStoreMigrations();

// The tables a store of the current version must have (checked on open).
std::span<const char* const> PgStoreTables();

// The advisory lock keys (pg_advisory_xact_lock): schema creation and
// migration, the expired-token sweeper, and feed pruning.
inline constexpr long long kPgMigrationLock = 0x47617465'00000001LL;
inline constexpr long long kPgSweeperLock = 0x47617465'00000002LL;
inline constexpr long long kPgPruneLock = 0x47617465'00000003LL;

}  // namespace gatehouse::internal
