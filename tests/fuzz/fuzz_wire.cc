// The sidecar's request decoding (sidecar/wire.h), for arbitrary bytes: no
// decoder throws; ParseAuthorize's fast path and its nlohmann reference
// agree; every decoded value re-encodes and decodes to itself; arbitrary
// values decode after encoding exactly as wire.h documents. Forward-auth's
// own decoding is header selection plus BearerToken, checked here too.
#include <fuzzer/FuzzedDataProvider.h>

#include <map>

#include "fuzz_check.h"
#include "sidecar/handlers.h"
#include "sidecar/wire.h"

using namespace gatehouse::sidecar;

namespace {

// A reference for AppendJsonString's handling of text, independent of it:
// a valid UTF-8 sequence (Unicode table 3-7) is kept, any other byte becomes
// U+FFFD.
std::string ReplaceInvalidUtf8(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = b(0);
    size_t n = 0;                        // the sequence's length
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c < 0x80) {
      n = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k)
      ok = k == 1 ? b(1) >= lo && b(1) <= hi : (b(k) & 0xC0) == 0x80;
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

bool ValidUtf8(std::string_view s) { return ReplaceInvalidUtf8(s) == s; }

bool AllValidUtf8(const AuthorizeCheck& c) {
  bool ok = (!c.token || ValidUtf8(*c.token)) && (!c.user || ValidUtf8(*c.user)) &&
            ValidUtf8(c.action) && ValidUtf8(c.workspace);
  for (const auto& [name, value] : c.params) ok = ok && ValidUtf8(name) && ValidUtf8(value);
  return ok;
}

// A parsed string field (not the error alternative, which a std::string
// would select).
Parsed<std::optional<std::string>> Field(std::string s) {
  return std::optional<std::string>(std::move(s));
}

// (The text of a name is the question's to judge: ParseQuestion.)
bool Accepted(const AuthorizeCheck& c) { return !(c.token && c.user); }

// What wire.h says Parse(Encode(c)) gives for an accepted c.
AuthorizeCheck Expected(const AuthorizeCheck& c) {
  AuthorizeCheck e;
  if (c.token) e.token = ReplaceInvalidUtf8(*c.token);
  if (c.user) e.user = ReplaceInvalidUtf8(*c.user);
  e.action = ReplaceInvalidUtf8(c.action);
  e.workspace = ReplaceInvalidUtf8(c.workspace);
  std::map<std::string, std::string> params;
  for (const auto& [name, value] : c.params)
    params[ReplaceInvalidUtf8(name)] = ReplaceInvalidUtf8(value);
  e.params.assign(params.begin(), params.end());
  return e;
}

// ParseAuthorize with its fast path gives what nlohmann alone gives: the
// same check or the same message.
Parsed<AuthorizeCheck> ParseAuthorizeChecked(std::string_view body) {
  auto parsed = ParseAuthorize(body);
  FUZZ_CHECK(parsed == internal::ParseAuthorizeWithNlohmann(body));
  return parsed;
}

// A decoded check: its strings are valid UTF-8, its params sorted without
// repeats, and it encodes to a body that decodes to it again.
void CheckDecoded(const AuthorizeCheck& c) {
  FUZZ_CHECK(Accepted(c) && AllValidUtf8(c) && Expected(c) == c);
  FUZZ_CHECK(ParseAuthorizeChecked(EncodeAuthorizeRequest(c)) == Parsed<AuthorizeCheck>(c));
}

AuthorizeCheck ArbitraryCheck(FuzzedDataProvider& in) {
  AuthorizeCheck c;
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      c.token = in.ConsumeRandomLengthString(24);
      break;
    case 1:
      c.user = in.ConsumeRandomLengthString(24);
      break;
    case 2:
      c.token = in.ConsumeRandomLengthString(24);
      c.user = in.ConsumeRandomLengthString(24);
      break;
    default:
      break;
  }
  c.action = in.ConsumeRandomLengthString(24);
  c.workspace = in.ConsumeRandomLengthString(24);
  for (int n = in.ConsumeIntegralInRange<int>(0, 4); n > 0; --n)
    c.params.emplace_back(in.ConsumeRandomLengthString(8), in.ConsumeRandomLengthString(16));
  return c;
}

// Encoding then decoding arbitrary values (any bytes, unsorted or repeated
// params, token and user both set, empty fields) gives what wire.h says.
void CheckEncoded(const AuthorizeCheck& c) {
  const std::string encoded = EncodeAuthorizeRequest(c);
  const auto parsed = ParseAuthorizeChecked(encoded);
  FUZZ_CHECK(std::holds_alternative<AuthorizeCheck>(parsed) == Accepted(c));
  if (!Accepted(c)) return;
  const AuthorizeCheck& d = std::get<AuthorizeCheck>(parsed);
  FUZZ_CHECK(d == Expected(c));
  CheckDecoded(d);
  // The same bytes again when only U+FFFD changed: params already in order.
  bool in_order = true;
  for (size_t i = 1; i < c.params.size(); ++i)
    in_order = in_order &&
               ReplaceInvalidUtf8(c.params[i - 1].first) < ReplaceInvalidUtf8(c.params[i].first);
  if (in_order) FUZZ_CHECK(EncodeAuthorizeRequest(d) == encoded);
}

void FuzzOne(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  // Decode → encode → decode, for each decoder, on the bytes as a body.
  const auto check = ParseAuthorizeChecked(body);
  if (auto* c = std::get_if<AuthorizeCheck>(&check)) CheckDecoded(*c);
  const auto batch = ParseBatch(body);
  if (auto* checks = std::get_if<std::vector<AuthorizeCheck>>(&batch)) {
    FUZZ_CHECK(checks->size() <= kMaxBatchChecks);
    for (const AuthorizeCheck& c : *checks) CheckDecoded(c);
    FUZZ_CHECK(ParseBatch(EncodeBatchRequest(*checks)) == batch);
  }
  const auto verify = ParseVerifyJson(body);
  if (auto* token = std::get_if<std::optional<std::string>>(&verify); token && *token) {
    FUZZ_CHECK(ValidUtf8(**token));
    FUZZ_CHECK(ParseVerifyJson(EncodeVerifyRequest(**token)) == verify);
  } else if (token) {
    FUZZ_CHECK(ParseVerifyJson("") == verify);  // no token: sent as an empty body
  }
  const auto form = ParseFormField(body, "token");
  if (auto* value = std::get_if<std::optional<std::string>>(&form); value && *value)
    FUZZ_CHECK(ParseFormField(EncodeFormField("token", **value) + "&token=later", "token") == form);
  // Forward-auth: the token of the Authorization header.
  if (auto token = BearerToken(body))
    FUZZ_CHECK(BearerToken("Bearer " + std::string(*token)) == token);

  // Encode → decode, for arbitrary values built from the same bytes.
  FuzzedDataProvider in(data, size);
  std::vector<AuthorizeCheck> checks(in.ConsumeIntegralInRange<size_t>(1, 3));
  std::vector<AuthorizeCheck> expected;
  for (AuthorizeCheck& c : checks) {
    c = ArbitraryCheck(in);
    CheckEncoded(c);
    if (Accepted(c)) expected.push_back(Expected(c));
  }
  const auto parsed_batch = ParseBatch(EncodeBatchRequest(checks));
  FUZZ_CHECK(expected.size() == checks.size()
                 ? parsed_batch == Parsed<std::vector<AuthorizeCheck>>(expected)
                 : std::holds_alternative<std::string>(parsed_batch));
  const std::string token = in.ConsumeRandomLengthString(32);
  FUZZ_CHECK(ParseVerifyJson(EncodeVerifyRequest(token)) == Field(ReplaceInvalidUtf8(token)));
  const bool trimmed = !token.empty() && token.front() != ' ' && token.front() != '\t' &&
                       token.find_last_not_of(" \t\r\n") == token.size() - 1;
  FUZZ_CHECK((BearerToken("Bearer " + token) == std::optional<std::string_view>(token)) == trimmed);
  const std::string name = in.ConsumeRandomLengthString(8);
  const std::string value = in.ConsumeRandomLengthString(32);
  const std::string field = EncodeFormField(name, value);
  FUZZ_CHECK(field.find_first_not_of(
                 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._+%=") ==
             std::string::npos);
  FUZZ_CHECK(ParseFormField(field + "&" + EncodeFormField(name, "later"), name) == Field(value));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    FuzzOne(data, size);
  } catch (...) {
    FUZZ_CHECK(!"a decoder or encoder threw");
  }
  return 0;
}
