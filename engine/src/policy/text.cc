#include "gatehouse/text.h"

#include <cstdint>
#include <cstdio>

namespace gatehouse {
namespace {

// One step of UTF-8 decoding at `i`: the code point and its length, or
// length 0 for a byte that does not start a well-formed sequence (overlong,
// surrogate, beyond U+10FFFF, truncated, a stray continuation byte).
struct Decoded {
  uint32_t cp = 0;
  size_t len = 0;
};

Decoded DecodeAt(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return {c, 1};
  size_t len = 0;
  uint32_t cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return {};
  }
  if (i + len > s.size()) return {};
  for (size_t k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return {};
    cp = (cp << 6) | (cc & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return {};
  return {cp, len};
}

enum class Class { kOk, kControl, kBidi, kZeroWidth, kSeparator };

Class Classify(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) return Class::kControl;
  if (cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
      (cp >= 0x2066 && cp <= 0x2069))
    return Class::kBidi;
  if ((cp >= 0x200b && cp <= 0x200d) || (cp >= 0x2060 && cp <= 0x2064) || cp == 0xfeff)
    return Class::kZeroWidth;
  if (cp == 0x2028 || cp == 0x2029) return Class::kSeparator;
  return Class::kOk;
}

std::string CodePointName(uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

}  // namespace

std::optional<std::string> UnsafeTextReason(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const Decoded d = DecodeAt(text, i);
    if (d.len == 0) return std::string("invalid UTF-8");
    switch (Classify(d.cp)) {
      case Class::kOk: break;
      case Class::kControl: return "a control character (" + CodePointName(d.cp) + ")";
      case Class::kBidi: return "a bidirectional control character (" + CodePointName(d.cp) + ")";
      case Class::kZeroWidth: return "a zero-width character (" + CodePointName(d.cp) + ")";
      case Class::kSeparator: return "a line separator (" + CodePointName(d.cp) + ")";
    }
    i += d.len;
  }
  return std::nullopt;
}

Status CheckNameText(std::string_view what, std::string_view text, size_t max_bytes) {
  if (text.empty() || text.size() > max_bytes)
    return Status::InvalidArgument(std::string(what) + " must be 1 to " + std::to_string(max_bytes) +
                                   " bytes");
  if (auto why = UnsafeTextReason(text))
    return Status::InvalidArgument(std::string(what) + " must not contain " + *why);
  return Status::Ok();
}

std::string EscapeText(std::string_view text, EscapeMode mode) {
  std::string out;
  out.reserve(text.size());
  char buf[16];
  for (size_t i = 0; i < text.size();) {
    const Decoded d = DecodeAt(text, i);
    if (d.len == 0) {
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[i])));
      out += buf;
      ++i;
      continue;
    }
    if (d.cp == '\\' && mode == EscapeMode::kNonAscii) {
      out += "\\\\";
    } else if (Classify(d.cp) != Class::kOk || (mode == EscapeMode::kNonAscii && d.cp >= 0x80)) {
      std::snprintf(buf, sizeof buf, "\\u{%04X}", static_cast<unsigned>(d.cp));
      out += buf;
    } else {
      out.append(text.substr(i, d.len));
    }
    i += d.len;
  }
  return out;
}

std::string EscapeRoff(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    // A line that starts with . or ' is a roff request, whatever follows.
    if ((i == 0 || text[i - 1] == '\n') && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace gatehouse
