#include "sidecar/log.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <string>

#include "sidecar/wire.h"  // FormatTimeMs, AppendJsonString

namespace gatehouse::sidecar {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

constexpr std::array<std::string_view, 4> kLevelNames = {"error", "warn", "info", "debug"};

}  // namespace

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  for (size_t i = 0; i < kLevelNames.size(); ++i)
    if (name == kLevelNames[i]) return static_cast<LogLevel>(i);
  return std::nullopt;
}

std::string_view LogLevelName(LogLevel level) {
  return kLevelNames[static_cast<size_t>(level)];
}

std::optional<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return std::nullopt;
}

void SetLogOptions(LogLevel level, LogFormat format) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
  g_format.store(static_cast<int>(format), std::memory_order_relaxed);
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  std::string clean(message);
  for (char& c : clean)
    if (c == '\n' || c == '\r') c = ' ';
  const std::string_view name = LogLevelName(level);
  std::string line;
  if (g_format.load(std::memory_order_relaxed) == static_cast<int>(LogFormat::kJson)) {
    line = "{\"time\":\"" + FormatTimeMs(ms) + "\",\"level\":\"" + std::string(name) + "\",\"msg\":";
    AppendJsonString(line, clean);
    line += "}\n";
  } else {
    line = FormatTimeMs(ms) + " " + std::string(name) + " gatehoused: " + clean + "\n";
  }
  // One write: lines from different threads stay whole.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;  // nowhere to report it
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace gatehouse::sidecar
