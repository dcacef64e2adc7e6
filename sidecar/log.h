// The sidecar's operational log on stderr: start-up, reloads, store and
// decision-log trouble, shutdown. Each message has a level; lines below the
// configured level are dropped. Text lines read
//   2026-01-01T00:00:00.000Z info gatehoused: policy reloaded: ...
// and JSON lines (--log-format json)
//   {"time":"2026-01-01T00:00:00.000Z","level":"info","msg":"policy reloaded: ..."}
//
// Thread safety: every function may be called from any thread; one line is
// one write(2), so lines from threads never interleave.
#pragma once

#include <functional>
#include <optional>
#include <string_view>

namespace gatehouse::sidecar {

enum class LogLevel : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };
enum class LogFormat : int { kText = 0, kJson = 1 };

// "error", "warn", "info", "debug" / "text", "json"; nullopt for anything else.
std::optional<LogLevel> ParseLogLevel(std::string_view name);
// The name ParseLogLevel reads: "error", "warn", "info", "debug".
std::string_view LogLevelName(LogLevel level);
std::optional<LogFormat> ParseLogFormat(std::string_view name);

// Set once at start-up (default: info, text).
void SetLogOptions(LogLevel level, LogFormat format);

// Whether a message of `level` would be written.
bool LogEnabled(LogLevel level);

// Writes `message` (newlines turned into spaces) at `level`.
void Log(LogLevel level, std::string_view message);

// Where a component writes its operational lines: Log itself in the
// sidecar, a recorder in tests.
using LogFn = std::function<void(LogLevel level, std::string_view message)>;

}  // namespace gatehouse::sidecar
