// gatehouse/text.h: the one rule for names, checked over every code point and
// over random bytes, and the terminal escaping it comes with.
#include "gatehouse/text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "support/utf8.h"

namespace gatehouse {
namespace {

using gatehouse::testing::Utf8;

// The classes the rule refuses, written out independently of text.cc.
bool Refused(uint32_t cp) {
  const bool c0_c1_del = cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f);
  const bool bidi = cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
                    (cp >= 0x2066 && cp <= 0x2069);
  const bool zero_width = (cp >= 0x200b && cp <= 0x200d) || (cp >= 0x2060 && cp <= 0x2064) || cp == 0xfeff;
  const bool separator = cp == 0x2028 || cp == 0x2029;
  return c0_c1_del || bidi || zero_width || separator;
}

// What may reach a terminal after escaping: printable ASCII only (kNonAscii),
// or that plus UTF-8 the rule accepts (kNonPrintable).
bool PrintableAscii(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

TEST(NameRule, EveryCodePointOfTheRefusedClassesIsRefusedAndNoOther) {
  int refused = 0;
  for (uint32_t cp = 0; cp <= 0x10ffff; ++cp) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;  // not encodable
    const std::string name = "a" + Utf8(cp) + "b";
    const bool bad = UnsafeTextReason(name).has_value();
    ASSERT_EQ(bad, Refused(cp)) << "U+" << std::hex << cp;
    refused += bad;
    if (bad) {
      const Status s = CheckNameText("a name", name);
      ASSERT_TRUE(s.IsInvalidArgument());
      ASSERT_NE(s.message().find("must not contain"), std::string::npos) << s.message();
    }
    // Escaped, every code point is safe to print, and distinct from its neighbours.
    ASSERT_TRUE(PrintableAscii(EscapeText(name, EscapeMode::kNonAscii))) << "U+" << std::hex << cp;
    ASSERT_FALSE(UnsafeTextReason(EscapeText(name, EscapeMode::kNonPrintable))) << "U+" << std::hex << cp;
    ASSERT_EQ(EscapeText(name, EscapeMode::kNonPrintable) == name, !bad) << "U+" << std::hex << cp;
  }
  EXPECT_EQ(refused, 32 + 1 + 32 + 12 + 9 + 2);
}

TEST(NameRule, InvalidUtf8IsRefusedAndEscapedByteByByte) {
  for (const std::string& bad : {std::string("\xff"), std::string("\xc0\xaf"),   // overlong '/'
                                std::string("\xed\xa0\x80"),                    // a surrogate
                                std::string("\xf4\x90\x80\x80"),                // beyond U+10FFFF
                                std::string("\xe2\x80"),                        // truncated
                                std::string("\x80")}) {
    EXPECT_EQ(UnsafeTextReason("x" + bad), "invalid UTF-8");
    const std::string e = EscapeText("x" + bad);
    EXPECT_TRUE(PrintableAscii(e)) << e;
    EXPECT_EQ(e.substr(0, 3), "x\\x");
  }
}

TEST(NameRule, RandomBytesEscapeToSafeText) {
  std::mt19937 rng(20261201);
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 24, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    ASSERT_TRUE(PrintableAscii(EscapeText(s, EscapeMode::kNonAscii)));
    ASSERT_FALSE(UnsafeTextReason(EscapeText(s, EscapeMode::kNonPrintable)));
  }
}

TEST(NameRule, LookAlikesAreDistinctNamesAndDifferOnScreen) {
  const std::string latin = "joe@acme.test", cyrillic = "j\xd0\xbe" "e@acme.test";  // U+043E
  EXPECT_FALSE(UnsafeTextReason(cyrillic));
  EXPECT_EQ(EscapeText(cyrillic, EscapeMode::kNonAscii), "j\\u{043E}e@acme.test");
  EXPECT_EQ(EscapeText(cyrillic, EscapeMode::kNonPrintable), cyrillic);
  // A name that spells an escape itself cannot pass for the escaped one.
  EXPECT_EQ(EscapeText("j\\u{043E}e", EscapeMode::kNonAscii), "j\\\\u{043E}e");
  EXPECT_EQ(EscapeText(latin, EscapeMode::kNonAscii), latin);
}

TEST(NameRule, LengthIsChecked) {
  EXPECT_TRUE(CheckNameText("a name", "").IsInvalidArgument());
  EXPECT_TRUE(CheckNameText("a name", std::string(201, 'a')).IsInvalidArgument());
  EXPECT_TRUE(CheckNameText("a name", std::string(200, 'a')).ok());
}

TEST(Roff, EscapesBackslashesDashesAndLeadingRequests) {
  EXPECT_EQ(EscapeRoff("--store PATH"), "\\-\\-store PATH");
  EXPECT_EQ(EscapeRoff("a\\b"), "a\\eb");
  EXPECT_EQ(EscapeRoff(".SH x"), "\\&.SH x");
  EXPECT_EQ(EscapeRoff("'x"), "\\&'x");
  EXPECT_EQ(EscapeRoff("one\n.two"), "one\n\\&.two");
  EXPECT_EQ(EscapeRoff("a.b 'c' d\xC3\xA9"), "a.b 'c' d\xC3\xA9");
  EXPECT_EQ(EscapeRoff(""), "");
}

// Over random text of the characters that matter: roff reads back exactly
// the input (\e a backslash, \- a dash, \& nothing), every backslash starts
// one of those three escapes, and no line starts a request.
TEST(Roff, RandomTextReadsBackAndNeverStartsARequest) {
  std::mt19937 rng(7);
  const std::string alphabet = "\\-.'\n ae&";
  for (int round = 0; round < 2000; ++round) {
    std::string in;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) in += alphabet[rng() % alphabet.size()];
    const std::string out = EscapeRoff(in);
    std::string back;
    for (size_t i = 0; i < out.size(); ++i) {
      if ((i == 0 || out[i - 1] == '\n') && (out[i] == '.' || out[i] == '\''))
        FAIL() << "a request line in '" << out << "' from '" << in << "'";
      if (out[i] != '\\') {
        back += out[i];
        continue;
      }
      ASSERT_LT(i + 1, out.size()) << "a lone backslash in '" << out << "'";
      const char e = out[++i];
      ASSERT_TRUE(e == 'e' || e == '-' || e == '&') << "\\" << e << " in '" << out << "'";
      if (e == 'e') back += '\\';
      if (e == '-') back += '-';
    }
    ASSERT_EQ(back, in) << "escaped as '" << out << "'";
  }
}

}  // namespace
}  // namespace gatehouse
