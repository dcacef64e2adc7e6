// Names, emails and terminals (CONTRACT.md: names never hold control,
// bidirectional or zero-width characters; human output escapes anything
// non-printable). Generated inputs: every refused class of code point, at
// the start, middle and end of a name, in every place a command takes a name
// or an email (the acting identity too); each is refused with exit 2, one
// printable line, and a store left exactly as it was (no audit record
// either). Then a store written by an older version, holding such names
// already: every table prints them escaped, --json exactly.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "support/utf8.h"

namespace gatehouse::testing {
namespace {

// Every refused class, as the byte strings that carry it. (NUL cannot be
// passed in argv; it is refused by the same code path as the rest of C0.)
std::vector<std::vector<std::string>> HostileClasses() {
  std::vector<std::string> c0, c1, bidi, zero_width, separators;
  for (uint32_t cp = 1; cp < 0x20; ++cp) c0.push_back(Utf8(cp));
  c1.push_back(Utf8(0x7f));
  for (uint32_t cp = 0x80; cp <= 0x9f; ++cp) c1.push_back(Utf8(cp));
  for (uint32_t cp : {0x061cu, 0x200eu, 0x200fu, 0x202au, 0x202bu, 0x202cu, 0x202du, 0x202eu, 0x2066u,
                      0x2067u, 0x2068u, 0x2069u})
    bidi.push_back(Utf8(cp));
  for (uint32_t cp : {0x200bu, 0x200cu, 0x200du, 0x2060u, 0x2061u, 0x2062u, 0x2063u, 0x2064u, 0xfeffu})
    zero_width.push_back(Utf8(cp));
  separators = {Utf8(0x2028), Utf8(0x2029)};
  std::vector<std::string> invalid = {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x80", "\x80", "\xf4\x90\x80\x80"};
  return {c0, c1, bidi, zero_width, separators, invalid};
}

// `bad` put into a plain name at one of three places.
std::string Embed(const std::string& bad, const std::string& base, int where) {
  switch (where % 3) {
    case 0: return bad + base;
    case 1: return base.substr(0, 2) + bad + base.substr(2);
    default: return base + bad;
  }
}

bool PrintableLines(const std::string& s) {
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\n') || c > 0x7e) return false;
  return true;
}

class NamesTest : public CliTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(BuildWorld()); }

  // Refused as a usage error, on one printable line, with nothing changed.
  void ExpectRefused(const ProcessResult& r, const std::string& what) {
    ASSERT_TRUE(Failed(r, 2)) << what;
    ASSERT_NE(r.err.find("must not contain"), std::string::npos) << what << ": " << r.err;
    ASSERT_TRUE(PrintableLines(r.err)) << what << ": " << r.err;
    ASSERT_TRUE(Unchanged(gh_.store, before_, 0)) << what;
  }

  StoreSnapshot before_;
};

struct Place {
  std::string what;
  // The command for a hostile string `h` embedded in a name.
  std::function<ProcessResult(const Gatehouse&, const std::string&)> run;
};

std::vector<Place> Places() {
  auto as_owner = [](std::vector<std::string> args) {
    return [args](const Gatehouse& g, const std::string& h) {
      std::vector<std::string> a = args;
      for (auto& x : a)
        if (x == "@") x = h;
      return g.As(kOwner, a);
    };
  };
  std::vector<Place> p = {
      {"user add EMAIL", as_owner({"user", "add", "@", "--org-role", "viewer"})},
      {"workspace create NAME", as_owner({"workspace", "create", "@", "--type", "shared"})},
      {"workspace create --owner", as_owner({"workspace", "create", "W2", "--type", "personal", "--owner", "@"})},
      {"member add EMAIL", as_owner({"member", "add", "@", "--workspace", kDev, "--role", "viewer"})},
      {"member add --workspace", as_owner({"member", "add", kOrgViewer, "--workspace", "@", "--role", "viewer"})},
      {"apiuser create NAME", as_owner({"apiuser", "create", "@", "--workspace", kDev, "--workspace-role", "viewer"})},
      {"apiuser create --workspace",
       as_owner({"apiuser", "create", "bot2", "--workspace", "@", "--workspace-role", "viewer"})},
      {"apiuser promote NAME", as_owner({"apiuser", "promote", "@", "--workspace-role", "viewer"})},
      {"apiuser delete NAME", as_owner({"apiuser", "delete", "@"})},
      {"apiuser list --workspace", as_owner({"apiuser", "list", "--workspace", "@"})},
      {"token create --apiuser", as_owner({"token", "create", "--apiuser", "@", "--name", "t", "--expires-in", "1d"})},
      {"token create --name", as_owner({"token", "create", "--apiuser", kDevBot, "--name", "@", "--expires-in", "1d"})},
      {"token list --apiuser", as_owner({"token", "list", "--apiuser", "@"})},
      {"authorize --workspace", as_owner({"authorize", "--action", "project.export", "--workspace", "@", "--user", kOwner})},
      {"authorize --user", as_owner({"authorize", "--action", "project.export", "--workspace", kDev, "--user", "@"})},
      {"--as", [](const Gatehouse& g, const std::string& h) {
         return g.As(h, {"user", "add", "new@acme.test", "--org-role", "viewer"});
       }},
      {"GATEHOUSE_AS", [](const Gatehouse& g, const std::string& h) {
         Gatehouse e = g;
         e.env.push_back("GATEHOUSE_AS=" + h);
         return e.Run({"audit"});
       }},
      {"--org", [](const Gatehouse& g, const std::string& h) {
         return g.As(kOwner, {"--org", h, "user", "add", "new@acme.test", "--org-role", "viewer"});
       }},
  };
  return p;
}

TEST_F(NamesTest, EveryRefusedClassIsRefusedInEveryPlaceThatTakesAName) {
  before_ = Snapshot(gh_.store);
  const auto classes = HostileClasses();
  const auto places = Places();
  int runs = 0;
  for (size_t p = 0; p < places.size(); ++p) {
    for (size_t c = 0; c < classes.size(); ++c) {
      // A different member of the class and a different position per place,
      // so that across places every member of the small classes is used.
      const std::string& bad = classes[c][(p * 3 + c) % classes[c].size()];
      const std::string name = Embed(bad, places[p].what.find("EMAIL") != std::string::npos ||
                                                  places[p].what.find("owner") != std::string::npos ||
                                                  places[p].what.find("user") != std::string::npos ||
                                                  places[p].what.find("AS") != std::string::npos ||
                                                  places[p].what == "--as"
                                              ? "mallory@acme.test"
                                              : "Mallory",
                                      static_cast<int>(p + c));
      ASSERT_NO_FATAL_FAILURE(ExpectRefused(places[p].run(gh_, name), places[p].what + " class " + std::to_string(c)));
      ++runs;
    }
  }
  EXPECT_EQ(runs, static_cast<int>(places.size() * classes.size()));
}

TEST_F(NamesTest, EveryMemberOfEveryClassIsRefusedInAnEmail) {
  before_ = Snapshot(gh_.store);
  int i = 0;
  for (const auto& cls : HostileClasses()) {
    for (const std::string& bad : cls) {
      ASSERT_NO_FATAL_FAILURE(ExpectRefused(
          gh_.As(kOwner, {"user", "add", Embed(bad, "eve@acme.test", i++), "--org-role", "viewer"}), "user add"));
    }
  }
}

TEST(NamesInitTest, InitRefusesHostileNamesAndLeavesNoStore) {
  TempDir dir;
  Gatehouse g(dir.File("new.db"));
  for (const std::string& bad : {std::string("\x1b[2J"), Utf8(0x202e), Utf8(0x200b), std::string("\xff")}) {
    for (const auto& args : std::vector<std::vector<std::string>>{{"init", "--org", "Ac" + bad, "--owner", kOwner},
                                                                   {"init", "--org", "Acme", "--owner", "o" + bad + "@x.test"}}) {
      ProcessResult r = g.Run(args);
      EXPECT_TRUE(Failed(r, 2)) << r.err;
      EXPECT_TRUE(PrintableLines(r.err)) << r.err;
      EXPECT_FALSE(FileExists(g.store));
    }
  }
}

// A store written by an older version (or by hand) holds names this
// version refuses: every human table escapes them; --json keeps them exact.
TEST_F(NamesTest, StoredHostileNamesPrintEscapedAndJsonStaysExact) {
  const std::string esc_email = "ev\x1b]0;owned\x07" "e@acme.test";
  const std::string bidi_bot = "bot\xe2\x80\xae" "txt.exe";  // U+202E
  const std::string csi_token = "tok\xc2\x9b" "31m";         // U+009B, a C1 CSI
  const std::string cyrillic = "j\xd0\xbe" "e@acme.test";     // U+043E, a look-alike
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"user", "add", cyrillic, "--org-role", "viewer"})));
  const NewToken t = CreateToken(kOwner, kDevBot);
  ExecSql(gh_.store, "UPDATE users SET email = '" + esc_email + "' WHERE email = '" + kOrgViewer + "'");
  ExecSql(gh_.store, "UPDATE api_users SET name = '" + bidi_bot + "', created_by = '" + esc_email +
                         "' WHERE name = '" + kDevBot + "'");
  ExecSql(gh_.store, "UPDATE tokens SET name = '" + csi_token + "' WHERE public_id = '" + t.id + "'");
  ExecSql(gh_.store,
          "INSERT INTO audit_log(time, org_id, actor, action, target, decision, rule, message, detail) VALUES "
          "(1, 1, '" + esc_email + "', 'user.add', 'user:" + bidi_bot + "', 'deny', 'r" + csi_token + "', '', '')");

  for (const auto& args : std::vector<std::vector<std::string>>{
           {"audit", "--limit", "100"}, {"apiuser", "list"}, {"token", "list"}, {"settings", "show"}}) {
    ProcessResult r = gh_.As(kOwner, args);
    ASSERT_TRUE(Succeeded(r)) << args[0] << ": " << r.err;
    EXPECT_TRUE(PrintableLines(r.out)) << args[0] << ":\n" << r.out;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  }
  const std::string audit = gh_.As(kOwner, {"audit", "--limit", "100"}).out;
  EXPECT_NE(audit.find("ev\\u{001B}]0;owned\\u{0007}e@acme.test"), std::string::npos) << audit;
  EXPECT_NE(audit.find("user:bot\\u{202E}txt.exe"), std::string::npos) << audit;
  EXPECT_NE(audit.find("user:j\\u{043E}e@acme.test"), std::string::npos) << audit;  // the look-alike, visible
  EXPECT_NE(gh_.As(kOwner, {"token", "list"}).out.find("tok\\u{009B}31m"), std::string::npos);

  // --json: the stored text, byte for byte.
  json users = gh_.Json(kOwner, {"apiuser", "list"});
  bool found = false;
  for (const auto& u : users) found |= u["name"] == bidi_bot && u["created_by"] == esc_email;
  EXPECT_TRUE(found) << users.dump();
  json tokens = gh_.Json(kOwner, {"token", "list"});
  found = false;
  for (const auto& x : tokens) found |= x["name"] == csi_token;
  EXPECT_TRUE(found) << tokens.dump();
  json log = gh_.Json(kOwner, {"audit", "--limit", "100"});
  found = false;
  bool look_alike = false;
  for (const auto& a : log) {
    found |= a["actor"] == esc_email && a["target"] == "user:" + bidi_bot;
    look_alike |= a["target"] == "user:" + cyrillic;
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(look_alike);
}

// Invalid UTF-8 in a stored row cannot be JSON: --json still answers (with
// U+FFFD in its place) instead of failing, and the table shows the byte.
TEST_F(NamesTest, StoredInvalidUtf8IsEscapedInTablesAndReplacedInJson) {
  ExecSql(gh_.store,
          "INSERT INTO audit_log(time, org_id, actor, action, target, decision, rule, message, detail) VALUES "
          "(1, 1, CAST(X'6576FF65' AS TEXT), 'user.add', 't', 'deny', '', '', '')");
  ProcessResult r = gh_.As(kOwner, {"audit", "--limit", "100"});
  ASSERT_TRUE(Succeeded(r)) << r.err;
  EXPECT_NE(r.out.find("ev\\xFFe"), std::string::npos) << r.out;
  EXPECT_TRUE(PrintableLines(r.out));
  json log = gh_.Json(kOwner, {"audit", "--limit", "100"});
  bool found = false;
  for (const auto& a : log) found |= a["actor"] == "ev\xef\xbf\xbd" "e";
  EXPECT_TRUE(found) << log.dump();
}

// A policy file's name may hold anything but '/' and NUL: the warning and
// error lines that name it are escaped too.
TEST(NamesPolicyTest, PolicyFileNamesAreEscapedInErrorLines) {
  TempDir dir;
  const std::string folder = dir.File("pol");
  ASSERT_EQ(::mkdir(folder.c_str(), 0700), 0);
  WriteFileBytes(folder + "/evil\x1b[31m.yaml", "gatehouse: v1\npolicy: [unclosed\n");
  WriteFileBytes(folder + "/skipped\x1b[32m.txt", "x");
  Gatehouse g(dir.File("s.db"));
  g.policy = folder;
  ProcessResult r = g.Run({"policy", "validate", folder});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("evil\\u{001B}[31m.yaml"), std::string::npos) << r.err;
  EXPECT_TRUE(PrintableLines(r.err)) << r.err;
}

}  // namespace
}  // namespace gatehouse::testing
