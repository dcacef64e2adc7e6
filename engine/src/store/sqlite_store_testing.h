// Test hooks into the SQLite store. Not part of the public API: only tests
// include this (they have engine/src on their include path).
#pragma once

#include <cstdint>
#include <string_view>

#include "gatehouse/status.h"
#include "gatehouse/store.h"

namespace gatehouse::internal {

// Runs raw SQL (one or more statements) on the store's own connection, e.g.
// to show that the audit triggers refuse an UPDATE. `store` must come from
// OpenSqliteStore or CreateSqliteStore (InvalidArgument otherwise). Errors are
// mapped as for any store call.
Status ExecSqliteForTesting(Store& store, std::string_view sql);

// The single integer result of a query (e.g. "PRAGMA user_version").
// NotFound when it returns no row.
Result<int64_t> QuerySqliteIntForTesting(Store& store, std::string_view sql);

}  // namespace gatehouse::internal
