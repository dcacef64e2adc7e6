// The access log (--access-log PATH|-): one JSON line per request the
// handlers answered, whatever --log-format says:
//   {"time":"2026-01-01T00:00:00.000Z","request_id":"...","peer":"127.0.0.1:50522",
//    "method":"POST","path":"/v1/authorize","status":200,"bytes":312,"duration_us":41}
// Never a secret: no header (Authorization, X-Gatehouse-Caller), no body, no
// query string (tokens may ride in one), only the path up to the '?'.
// Requests the server refuses before the handlers see them (400, 408, 413,
// 431, 503 at the connection limit) are counted in /metrics, not logged.
//
// The file is written by a DecisionLog (decision_log.h) named "access log":
// the same rules (0600, no symlink, a torn last line cut, reopened on SIGHUP).
//
// Thread safety: AppendAccessRecord is a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::sidecar {

struct AccessRecord {
  int64_t time_ms = 0;  // when the request was answered, ms since the epoch
  std::string_view request_id, peer, method, path;
  int status = 0;
  size_t bytes = 0;          // the reply body
  int64_t duration_us = 0;   // inside the sidecar
};

// The longest method and path kept (longer ones are cut, marked "...").
inline constexpr size_t kAccessMaxMethod = 32;
inline constexpr size_t kAccessMaxPath = 1024;

// Appends the record's JSON object (no newline) to `out`.
void AppendAccessRecord(std::string& out, const AccessRecord& record);

}  // namespace gatehouse::sidecar
