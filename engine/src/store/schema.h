// The SQLite schema of a Gatehouse store and its migrations.
//
// The schema version lives in PRAGMA user_version; PRAGMA application_id
// marks the file as a Gatehouse store. Migration i takes a store from version
// i to version i + 1; a new store runs them all. Never edit a released
// migration: add one.
#pragma once

#include <cstdint>
#include <span>

namespace gatehouse::internal {

// "Gate" in ASCII, as a big-endian 32-bit integer.
inline constexpr int32_t kStoreApplicationId = 0x47617465;

struct Migration {
  int to_version;
  const char* sql;  // one or more statements, run inside the migration's transaction
};

// All migrations, in order; the last one's to_version is kStoreSchemaVersion.
std::span<const Migration> StoreMigrations();

// The tables a store of the current version must have (checked on open).
std::span<const char* const> StoreTables();

}  // namespace gatehouse::internal
