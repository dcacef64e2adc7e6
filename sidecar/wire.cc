#include "sidecar/wire.h"

#include <exception>
#include <nlohmann/json.hpp>

#include "gatehouse/text.h"

namespace gatehouse::sidecar {
namespace {

using nlohmann::json;

// Refuses bodies nested deeper than kMaxJsonDepth before nlohmann sees them,
// so no input can make parsing or destruction deep.
bool DepthOk(std::string_view body) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// Parses a JSON document; nlohmann throws on bad input, so this is the
// adapter that turns its exception into a message.
Parsed<json> ParseJson(std::string_view body) {
  if (!DepthOk(body))
    return std::string("invalid JSON: nested deeper than ") + std::to_string(kMaxJsonDepth) +
           " levels";
  try {
    return json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string what = e.what();
    const auto p = what.find("] ");
    return "invalid JSON: " + (p == std::string::npos ? what : what.substr(p + 2));
  } catch (const std::exception& e) {
    return std::string("invalid JSON: ") + e.what();
  }
}

std::string_view TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    default:
      return "something else";
  }
}

// Reads an optional string field: nullopt when absent, an error when present
// with another type.
std::variant<std::optional<std::string>, std::string> OptString(const json& obj, const char* field,
                                                                const std::string& where) {
  auto it = obj.find(field);
  if (it == obj.end()) return std::optional<std::string>();
  if (!it->is_string()) {
    return where + "field \"" + field + "\" must be a string, not " + std::string(TypeName(*it));
  }
  return std::optional<std::string>(it->get<std::string>());
}

Parsed<AuthorizeCheck> CheckFromJson(const json& obj, const std::string& where) {
  if (!obj.is_object())
    return where + "an authorize request must be a JSON object, not " + std::string(TypeName(obj));
  AuthorizeCheck c;
  auto token = OptString(obj, "token", where);
  if (auto* e = std::get_if<std::string>(&token)) return *e;
  c.token = std::move(std::get<0>(token));
  auto user = OptString(obj, "user", where);
  if (auto* e = std::get_if<std::string>(&user)) return *e;
  c.user = std::move(std::get<0>(user));
  if (c.token && c.user) return where + "give either \"token\" or \"user\", not both";
  for (const char* field : {"action", "workspace"}) {
    auto v = OptString(obj, field, where);
    if (auto* e = std::get_if<std::string>(&v)) return *e;
    auto& s = std::get<0>(v);
    if (!s) return where + "missing field \"" + field + "\"";
    // (Its text — empty, unsafe, unknown — is ParseQuestion's to judge.)
    (field[0] == 'a' ? c.action : c.workspace) = std::move(*s);
  }
  if (auto it = obj.find("params"); it != obj.end() && !it->is_null()) {
    if (!it->is_object())
      return where + "field \"params\" must be an object, not " + std::string(TypeName(*it));
    for (const auto& [name, value] : it->items()) {
      std::string text;
      if (value.is_string())
        text = value.get<std::string>();
      else if (value.is_boolean())
        text = value.get<bool>() ? "true" : "false";
      else if (value.is_number_integer())
        text = value.dump();  // signed and unsigned
      else
        return where + "params." + name + " must be a string, an integer or a boolean, not " +
               std::string(TypeName(value));
      c.params.emplace_back(name, std::move(text));
    }
  }
  return c;
}

std::optional<std::string> FormDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+')
      out += ' ';
    else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = HexDigitValue(s[i + 1]), lo = HexDigitValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

void AppendInt(std::string& out, int64_t v) { out += std::to_string(v); }

void AppendField(std::string& out, std::string_view name, std::string_view value,
                 bool comma = true) {
  AppendJsonField(out, name, value, comma);
}

// One authorize check as a JSON object; params as strings, which decode to
// the same text whatever type they were sent as.
void AppendCheck(std::string& out, const AuthorizeCheck& c) {
  out += '{';
  if (c.token) AppendField(out, "token", *c.token, false);
  if (c.user) AppendField(out, "user", *c.user, c.token.has_value());
  AppendField(out, "action", c.action, c.token || c.user);
  AppendField(out, "workspace", c.workspace);
  if (!c.params.empty()) {
    out += ",\"params\":{";
    for (size_t i = 0; i < c.params.size(); ++i)
      AppendField(out, c.params[i].first, c.params[i].second, i > 0);
    out += '}';
  }
  out += '}';
}

// The inverse of FormDecode for any bytes.
void AppendFormEncoded(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*' ||
        c == '-' || c == '.' || c == '_') {
      out += ch;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
}

// The common request, {"token": "...", "action": "...", "workspace": "..."}
// with plain ASCII strings, read without building a JSON document (it is
// most of the parsing cost of an authorize request). Anything else (escapes,
// non-ASCII, numbers, params, nesting, errors) returns nullopt, and nlohmann
// reads the body; internal::ParseAuthorizeWithNlohmann is the reference the
// tests compare this with.
std::optional<AuthorizeCheck> ParseAuthorizeFast(std::string_view b) {
  size_t i = 0;
  auto ws = [&] {
    while (i < b.size() && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) ++i;
  };
  auto str = [&](std::string_view* out) {
    if (i >= b.size() || b[i] != '"') return false;
    const size_t start = ++i;
    while (i < b.size() && b[i] != '"') {
      const unsigned char c = static_cast<unsigned char>(b[i]);
      if (c < 0x20 || c >= 0x7F || c == '\\') return false;
      ++i;
    }
    if (i >= b.size()) return false;
    *out = b.substr(start, i - start);
    ++i;
    return true;
  };
  std::optional<std::string_view> token, user, action, workspace;
  ws();
  if (i >= b.size() || b[i] != '{') return std::nullopt;
  ++i;
  while (true) {
    ws();
    std::string_view key, value;
    if (!str(&key)) return std::nullopt;
    ws();
    if (i >= b.size() || b[i] != ':') return std::nullopt;
    ++i;
    ws();
    if (!str(&value)) return std::nullopt;
    if (key == "token")
      token = value;  // a repeated key: the last one wins, as in nlohmann
    else if (key == "user")
      user = value;
    else if (key == "action")
      action = value;
    else if (key == "workspace")
      workspace = value;
    else if (key == "params")
      return std::nullopt;
    ws();
    if (i < b.size() && b[i] == ',') {
      ++i;
      continue;
    }
    if (i < b.size() && b[i] == '}') {
      ++i;
      break;
    }
    return std::nullopt;
  }
  ws();
  if (i != b.size()) return std::nullopt;
  if (!action || action->empty() || !workspace || workspace->empty() || (token && user))
    return std::nullopt;
  AuthorizeCheck c;
  if (token) c.token = std::string(*token);
  if (user) c.user = std::string(*user);
  c.action = std::string(*action);
  c.workspace = std::string(*workspace);
  return c;
}

}  // namespace

Parsed<AuthorizeCheck> ParseAuthorize(std::string_view body) {
  if (auto fast = ParseAuthorizeFast(body)) return std::move(*fast);
  return internal::ParseAuthorizeWithNlohmann(body);
}

Parsed<AuthorizeCheck> internal::ParseAuthorizeWithNlohmann(std::string_view body) {
  auto doc = ParseJson(body);
  if (auto* e = std::get_if<std::string>(&doc)) return *e;
  const json& j = std::get<json>(doc);
  if (!j.is_object()) return "request body must be a JSON object, not " + std::string(TypeName(j));
  return CheckFromJson(j, "");
}

Parsed<std::vector<AuthorizeCheck>> ParseBatch(std::string_view body) {
  auto doc = ParseJson(body);
  if (auto* e = std::get_if<std::string>(&doc)) return *e;
  const json& j = std::get<json>(doc);
  if (!j.is_object()) return "request body must be a JSON object, not " + std::string(TypeName(j));
  auto it = j.find("checks");
  if (it == j.end()) return std::string("missing field \"checks\"");
  if (!it->is_array())
    return "field \"checks\" must be an array, not " + std::string(TypeName(*it));
  if (it->size() > kMaxBatchChecks) {
    return "too many checks: " + std::to_string(it->size()) + " (at most " +
           std::to_string(kMaxBatchChecks) + ")";
  }
  std::vector<AuthorizeCheck> out;
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    auto c = CheckFromJson((*it)[i], "checks[" + std::to_string(i) + "]: ");
    if (auto* e = std::get_if<std::string>(&c)) return *e;
    out.push_back(std::move(std::get<AuthorizeCheck>(c)));
  }
  return out;
}

Parsed<std::optional<std::string>> ParseVerifyJson(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return std::optional<std::string>();
  auto doc = ParseJson(body);
  if (auto* e = std::get_if<std::string>(&doc)) return *e;
  const json& j = std::get<json>(doc);
  if (!j.is_object()) return "request body must be a JSON object, not " + std::string(TypeName(j));
  auto token = OptString(j, "token", "");
  if (auto* e = std::get_if<std::string>(&token)) return *e;
  return std::get<0>(token);
}

Parsed<std::optional<std::string>> ParseFormField(std::string_view body, std::string_view name) {
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t amp = body.find('&', pos);
    if (amp == std::string_view::npos) amp = body.size();
    const std::string_view pair = body.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    auto key = FormDecode(pair.substr(0, eq));
    if (!key) return std::string("malformed form body: bad percent escape");
    if (*key != name) continue;
    auto value =
        FormDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!value) return std::string("malformed form body: bad percent escape");
    return std::optional<std::string>(std::move(*value));
  }
  return std::optional<std::string>();
}

std::string EncodeAuthorizeRequest(const AuthorizeCheck& c) {
  std::string out;
  AppendCheck(out, c);
  return out;
}

std::string EncodeBatchRequest(const std::vector<AuthorizeCheck>& checks) {
  std::string out = "{\"checks\":[";
  for (size_t i = 0; i < checks.size(); ++i) {
    if (i) out += ',';
    AppendCheck(out, checks[i]);
  }
  out += "]}";
  return out;
}

std::string EncodeVerifyRequest(std::string_view token) {
  std::string out = "{";
  AppendField(out, "token", token, false);
  out += '}';
  return out;
}

std::string EncodeFormField(std::string_view name, std::string_view value) {
  std::string out;
  AppendFormEncoded(out, name);
  out += '=';
  AppendFormEncoded(out, value);
  return out;
}

std::string EncodeBatch(const std::vector<DecisionView>& results) {
  std::string out = "{\"results\":[";
  for (size_t i = 0; i < results.size(); ++i) {
    if (i) out += ',';
    out += EncodeDecision(results[i]);
  }
  out += "]}";
  return out;
}

std::string EncodeIntrospection(const IntrospectionView& v) {
  if (!v.active) return "{\"active\":false}";
  std::string out;
  out.reserve(320);
  out += "{\"active\":true";
  AppendField(out, "token_type", "api_token");
  AppendField(out, "sub", v.sub);
  AppendField(out, "username", v.username);
  AppendField(out, "workspace", v.workspace);
  AppendField(out, "workspace_role", v.workspace_role);
  AppendField(out, "org_role", v.org_role);
  AppendField(out, "token_id", v.token_id);
  out += ",\"iat\":";
  AppendInt(out, v.iat);
  out += ",\"exp\":";
  AppendInt(out, v.exp);
  out += '}';
  return out;
}

std::string EncodeError(std::string_view message) {
  std::string out = "{\"error\":";
  AppendJsonString(out, message);
  out += '}';
  return out;
}

std::string EncodeInputs(const CompiledPolicy& policy, const Request& r) {
  std::string out = "{";
  AppendField(out, "kind", r.kind == PrincipalKind::kUser ? "user" : "api_user", false);
  AppendField(out, "org_role", policy.OrgRoleName(r.org_role));
  AppendField(out, "workspace_role", policy.WorkspaceRoleName(r.workspace_role));
  AppendField(out, "workspace_type", policy.WorkspaceTypeName(r.workspace_type));
  out += ",\"settings\":{";
  for (size_t i = 0; i < policy.settings().size(); ++i) {
    if (i) out += ',';
    AppendJsonString(out, policy.settings()[i].name);
    out += ((r.settings >> i) & 1u) ? ":true" : ":false";
  }
  out += "},\"params\":{";
  if (const ActionInfo* a = policy.action(r.action)) {
    for (size_t i = 0; i < a->params.size() && i < static_cast<size_t>(kMaxParams); ++i) {
      if (i) out += ',';
      AppendJsonString(out, a->params[i].name);
      out += ':';
      const int64_t v = r.params[i];
      switch (a->params[i].type) {
        case ValueType::kOrgRole: AppendJsonString(out, policy.OrgRoleName(static_cast<RoleId>(v))); break;
        case ValueType::kWorkspaceRole: AppendJsonString(out, policy.WorkspaceRoleName(static_cast<RoleId>(v))); break;
        case ValueType::kBool: AppendJsonString(out, v ? "true" : "false"); break;
        default: AppendJsonString(out, std::to_string(v));
      }
    }
  }
  out += "}}";
  return out;
}

std::string EncodeDecisionLog(const DecisionLogEntry& e) {
  std::string out;
  out.reserve(384);
  out += '{';
  AppendField(out, "time", FormatTimeMs(e.time_ms), false);
  AppendField(out, "endpoint", e.endpoint);
  AppendField(out, "request_id", e.request_id);
  if (!e.source.empty() || !e.method.empty() || !e.uri.empty()) {
    AppendField(out, "source", e.source);
    AppendField(out, "method", e.method);
    AppendField(out, "uri", e.uri);
  }
  AppendField(out, "principal_kind", e.principal_kind);
  AppendField(out, "principal", e.principal);
  AppendField(out, "action", e.action);
  AppendField(out, "workspace", e.workspace);
  AppendField(out, "decision", e.allow ? "allow" : "deny");
  out += ",\"rules\":[";
  if (e.reasons != nullptr) {
    for (size_t i = 0; i < e.reasons->size(); ++i) {
      if (i) out += ',';
      AppendJsonString(out, (*e.reasons)[i].rule);
    }
  }
  out += ']';
  if (!e.message.empty()) AppendField(out, "message", e.message);
  AppendField(out, "revision", e.revision);
  if (!e.inputs.empty()) {
    out += ",\"inputs\":";
    out += e.inputs;
  }
  if (!e.shadow_revision.empty()) {
    out += ",\"shadow\":{";
    AppendField(out, "decision", e.shadow_allow ? "allow" : "deny", false);
    out += ",\"rules\":[";
    if (e.shadow_reasons != nullptr) {
      for (size_t i = 0; i < e.shadow_reasons->size(); ++i) {
        if (i) out += ',';
        AppendJsonString(out, (*e.shadow_reasons)[i].rule);
      }
    }
    out += ']';
    if (!e.shadow_message.empty()) AppendField(out, "message", e.shadow_message);
    AppendField(out, "revision", e.shadow_revision);
    out += '}';
  }
  if (!e.token_check.empty()) {
    AppendField(out, "token_id", e.token_id);
    AppendField(out, "token_check", e.token_check);
    if (e.token_id.empty() && !e.token_redacted.empty())
      AppendField(out, "token", e.token_redacted);
  }
  out += '}';
  return out;
}

}  // namespace gatehouse::sidecar
