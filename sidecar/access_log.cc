#include "sidecar/access_log.h"

#include "sidecar/wire.h"  // AppendJsonString, FormatTimeMs

namespace gatehouse::sidecar {
namespace {

void AppendCapped(std::string& out, std::string_view s, size_t max) {
  if (s.size() <= max) return AppendJsonString(out, s);
  std::string cut(s.substr(0, max));
  cut += "...";
  AppendJsonString(out, cut);
}

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  char* p = buf + sizeof buf;
  const bool negative = v < 0;
  uint64_t u = negative ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (negative) *--p = '-';
  out.append(p, static_cast<size_t>(buf + sizeof buf - p));
}

}  // namespace

void AppendAccessRecord(std::string& out, const AccessRecord& r) {
  out += "{\"time\":\"";
  out += FormatTimeMs(r.time_ms);
  out += "\",\"request_id\":";
  AppendJsonString(out, r.request_id);
  out += ",\"peer\":";
  AppendJsonString(out, r.peer.empty() ? std::string_view("-") : r.peer);
  out += ",\"method\":";
  AppendCapped(out, r.method, kAccessMaxMethod);
  out += ",\"path\":";
  AppendCapped(out, r.path.substr(0, r.path.find('?')), kAccessMaxPath);
  out += ",\"status\":";
  AppendInt(out, r.status);
  out += ",\"bytes\":";
  AppendInt(out, static_cast<int64_t>(r.bytes));
  out += ",\"duration_us\":";
  AppendInt(out, r.duration_us);
  out += '}';
}

}  // namespace gatehouse::sidecar
