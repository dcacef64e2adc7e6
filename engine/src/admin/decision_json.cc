#include "gatehouse/decision_json.h"

#include <cstdio>
#include <ctime>

namespace gatehouse {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

void AppendInt(std::string& out, int64_t v) { out += std::to_string(v); }

void AppendReasons(std::string& out, const std::vector<Reason>& reasons) {
  out += '[';
  for (size_t i = 0; i < reasons.size(); ++i) {
    if (i) out += ',';
    out += "{\"rule\":";
    AppendJsonString(out, reasons[i].rule);
    out += ",\"effect\":";
    out += reasons[i].effect == Effect::kAllow ? "\"allow\"" : "\"deny\"";
    out += ",\"message\":";
    AppendJsonString(out, reasons[i].message);
    out += '}';
  }
  out += ']';
}

}  // namespace

Reason UnknownUserReason(std::string_view email) {
  return {"unknown-user", Effect::kDeny, "no user '" + std::string(email) + "' in the store"};
}

DecisionView DenialView(const CompiledPolicy& policy, Reason reason, int64_t time_ms) {
  DecisionView d;
  d.policy_name = policy.name();
  d.policy_revision = policy.revision();
  d.time_ms = time_ms;
  d.reasons.push_back(std::move(reason));
  return d;
}

DecisionView DecisionViewOf(const CompiledPolicy& policy, const ActionInfo& action,
                            const Subject& subject, AuthzOutcome&& outcome, int64_t time_ms) {
  DecisionView d;
  d.policy_name = policy.name();
  d.policy_revision = policy.revision();
  d.time_ms = time_ms;
  d.allow = outcome.allow;
  d.reasons = std::move(outcome.reasons);
  d.principal =
      PrincipalView{subject.kind == PrincipalKind::kApiUser ? "api_user" : "user", subject.name,
                    subject.org_role, outcome.decided ? std::move(outcome.workspace_role) : "none"};
  // The action's GraphQL error goes with any denial of a known principal.
  if (!d.allow && action.graphql) d.graphql = action.graphql;
  return d;
}

std::string EncodeDecision(const DecisionView& d) {
  std::string out;
  out.reserve(512);
  out += "{\"allow\":";
  out += d.allow ? "true" : "false";
  if (d.graphql_response && d.graphql) out += ",\"data\":null";
  out += ",\"reasons\":";
  AppendReasons(out, d.reasons);
  out += ",\"principal\":";
  if (d.principal) {
    out += '{';
    AppendJsonField(out, "kind", d.principal->kind, false);
    AppendJsonField(out, "name", d.principal->name);
    AppendJsonField(out, "org_role", d.principal->org_role);
    AppendJsonField(out, "workspace_role", d.principal->workspace_role);
    out += '}';
  } else {
    out += "null";
  }
  out += ",\"policy\":{";
  AppendJsonField(out, "name", d.policy_name, false);
  AppendJsonField(out, "revision", d.policy_revision);
  out += '}';
  if (d.graphql) {
    const GraphqlTemplate& g = *d.graphql;
    out += ",\"errors\":[{";
    AppendJsonField(out, "message", g.message, false);
    out += ",\"path\":[";
    AppendJsonString(out, g.field);
    out += "],\"locations\":[{\"line\":";
    AppendInt(out, g.line);
    out += ",\"column\":";
    AppendInt(out, g.column);
    out += "}],\"extensions\":{";
    AppendJsonField(out, "name", g.name, false);
    AppendJsonField(out, "code", g.code);
    AppendJsonField(out, "time_thrown", FormatTimeMs(d.time_ms));
    out += "}}]";
  }
  out += '}';
  return out;
}

void AppendJsonField(std::string& out, std::string_view name, std::string_view value, bool comma) {
  if (comma) out += ',';
  AppendJsonString(out, name);
  out += ':';
  AppendJsonString(out, value);
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    // The common case: a run of printable ASCII other than " and \.
    size_t run = i;
    while (run < s.size()) {
      const unsigned char c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') break;
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) break;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
      }
      ++i;
      continue;
    }
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  out += '"';
}

std::string FormatTimeMs(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int millis = static_cast<int>(ms - static_cast<int64_t>(secs) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

}  // namespace gatehouse
