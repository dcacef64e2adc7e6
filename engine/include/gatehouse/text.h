// Text from outside: which names and emails Gatehouse accepts, and how it
// shows stored text on a terminal.
//
// One rule for every name and email (organization, workspace, user, API user,
// token names, the acting identity `--as`, and the names a sidecar request
// carries): valid UTF-8 without characters that are invisible or that change
// how the rest of a line is shown. Refused, by code point:
//   C0 controls U+0000-U+001F, DEL U+007F, C1 controls U+0080-U+009F;
//   bidirectional marks, overrides and isolates U+061C, U+200E, U+200F,
//   U+202A-U+202E, U+2066-U+2069;
//   zero-width characters U+200B-U+200D, U+2060-U+2064, U+FEFF;
//   line and paragraph separators U+2028, U+2029.
// Look-alikes (a Cyrillic "о" for a Latin "o") are accepted and are distinct
// names; EscapeText(kNonAscii) lets a reader tell them apart.
//
// Pure functions, no allocation beyond their results; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gatehouse/status.h"

namespace gatehouse {

// Why `text` may not be a name: "invalid UTF-8", "a control character
// (U+001B)", "a bidirectional control character (U+202E)", "a zero-width
// character (U+200B)", "a line separator (U+2028)". nullopt when it may.
std::optional<std::string> UnsafeTextReason(std::string_view text);

// Ok, or InvalidArgument "WHAT must not contain REASON" (from
// UnsafeTextReason), or "WHAT must be 1 to MAX bytes" when empty or longer.
Status CheckNameText(std::string_view what, std::string_view text, size_t max_bytes = 200);

enum class EscapeMode {
  // Everything UnsafeTextReason refuses, and invalid UTF-8, escaped; other
  // UTF-8 (é, о, 漢) printed as is. For error lines and free text.
  kNonPrintable,
  // Every character outside printable ASCII escaped: for tables of names,
  // so that look-alikes differ on screen ("j\u{043e}e@acme.test").
  kNonAscii,
};

// `text` made safe to print on a terminal: a code point as \u{XXXX} (at
// least four hex digits), a byte that is not UTF-8 as \xNN; under kNonAscii
// a backslash too, as \\ (so that escaped text cannot pass for another name).
// ASCII letters, digits, punctuation and spaces are kept.
std::string EscapeText(std::string_view text, EscapeMode mode = EscapeMode::kNonPrintable);

// `text` as man(7) text: a backslash as \e, every dash as \- (so that
// options print as ASCII hyphens), and \& before a . or ' that starts a line
// (roff would take it for a request). Other bytes are kept as they are.
std::string EscapeRoff(std::string_view text);

// The value of one hexadecimal digit (either case), or -1: for the percent
// escapes of paths, forms and headers, each decoded by its own rules.
constexpr int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace gatehouse
