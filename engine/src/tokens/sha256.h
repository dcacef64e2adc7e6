// SHA-256 helpers for the engine's own use (policy revisions). Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace gatehouse::internal {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace gatehouse::internal
