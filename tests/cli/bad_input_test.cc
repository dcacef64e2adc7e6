// Bad input, each case through the real binary: the contract's exit status,
// exactly one clear line on stderr, no crash, and the store left as it was.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

class BadInputTest : public CliTest {
 protected:
  // Runs WHO ARGS, expects exit CODE with one stderr line, and the store
  // unchanged but for `denials` audited denials.
  ProcessResult ExpectFailsCleanly(const std::string& who, const std::vector<std::string>& args,
                                   int code, int denials = 0) {
    StoreSnapshot before = Snapshot(gh_.store);
    ProcessResult r = gh_.As(who, args);
    EXPECT_TRUE(Failed(r, code));
    EXPECT_TRUE(Unchanged(gh_.store, before, denials)) << r.CommandLine();
    return r;
  }
};

// --- The store itself ----------------------------------------------------------

TEST_F(BadInputTest, MissingStoreSaysToRunInitAndCreatesNothing) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"token", "list"},
           {"token", "create", "--apiuser", "x", "--name", "n", "--expires-in", "1d"},
           {"token", "verify", "gat_000000000000000000000000000000000000"},
           {"authorize", "--action", "project.export", "--workspace", "W", "--user", kOwner},
           {"settings", "show"},
           {"audit"},
           {"gc"}}) {
    ProcessResult r = gh_.As(kOwner, args);
    EXPECT_TRUE(Failed(r, 1));
    EXPECT_TRUE(Contains(r.err, "gatehouse init")) << r;
    EXPECT_TRUE(Contains(r.err, gh_.store)) << r;
  }
  EXPECT_FALSE(FileExists(gh_.store));
  EXPECT_FALSE(FileExists(gh_.store + "-wal"));
}

// Commands that must all refuse a damaged store with exit 1.
const std::vector<std::vector<std::string>>& ReadAndWriteCommands() {
  static const auto* cmds = new std::vector<std::vector<std::string>>{
      {"token", "list"},
      {"apiuser", "create", "b", "--workspace", "Marketing-Development", "--workspace-role",
       "viewer"},
      {"token", "verify", "gat_000000000000000000000000000000000000"},
      {"authorize", "--action", "project.export", "--workspace", "Marketing-Development", "--user",
       kOwner},
      {"settings", "show"},
      {"settings", "set", kToggle, "true"},
      {"audit", "--json"},
      {"gc"},
  };
  return *cmds;
}

TEST_F(BadInputTest, GarbageStoreFilesAreRefusedWithoutCrashOrChange) {
  std::mt19937 rng(42);
  std::string random(16384, '\0');
  for (char& c : random) c = static_cast<char>(rng());
  std::string text;
  while (text.size() < 10000) text += "this is not a gatehouse store\n";
  std::string fake_header = std::string("SQLite format 3\0", 16) + random.substr(16, 8176);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"random", random}, {"text", text}, {"fake-header", fake_header}, {"empty", ""}};
  for (const auto& [name, bytes] : files) {
    SCOPED_TRACE(name);
    gh_.store = dir_.File(name + ".db");
    WriteFileBytes(gh_.store, bytes);
    for (const auto& args : ReadAndWriteCommands()) {
      ProcessResult r = gh_.As(kOwner, args);
      EXPECT_TRUE(Failed(r, 1));
      EXPECT_TRUE(Contains(r.err, gh_.store)) << r;
    }
    // init refuses the existing file.
    EXPECT_TRUE(Failed(gh_.Run({"init", "--org", "Acme", "--owner", kOwner}), 5));
    EXPECT_EQ(ReadFileBytes(gh_.store), bytes) << "the file was modified";
  }
  // A directory where the store should be.
  gh_.store = dir_.File("a-directory");
  std::filesystem::create_directory(gh_.store);
  EXPECT_TRUE(Failed(gh_.As(kOwner, {"token", "list"}), 1));
}

TEST_F(BadInputTest, SQLiteDatabaseThatIsNotAGatehouseStoreIsRefused) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("other.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  gh_.store = dir_.File("other.db");
  const std::string bytes = ReadFileBytes(gh_.store);
  ProcessResult r = gh_.As(kOwner, {"token", "list"});
  EXPECT_TRUE(Failed(r, 1));
  EXPECT_TRUE(Contains(r.err, "not a Gatehouse store")) << r;
  EXPECT_EQ(ReadFileBytes(gh_.store), bytes);
}

TEST_F(BadInputTest, TruncatedRealStoreIsRefusedWithoutCrash) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  NewToken t = CreateToken(kOwner, kDevBot);
  const std::string full = ReadFileBytes(gh_.store);
  ASSERT_FALSE(FileExists(gh_.store + "-wal")) << "expected the WAL checkpointed on close";
  ASSERT_GT(full.size(), 3 * 4096u);
  const size_t page = 4096;
  for (size_t cut : {size_t{1}, size_t{100}, page, page + 1, full.size() / 2,
                     (full.size() / 2) / page * page, full.size() - page, full.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(full.size()));
    gh_.store = dir_.File("cut-" + std::to_string(cut) + ".db");
    WriteFileBytes(gh_.store, full.substr(0, cut));
    for (const auto& args : ReadAndWriteCommands()) EXPECT_TRUE(Failed(gh_.As(kOwner, args), 1));
    // Fail closed: the token of the damaged store is not active.
    ProcessResult v = gh_.Run({"token", "verify", t.secret});
    EXPECT_TRUE(Failed(v, 1));
    EXPECT_FALSE(Contains(v.out, "true")) << v;
  }
}

TEST_F(BadInputTest, InitOnAnUnwritablePathFailsAndLeavesNothing) {
  WriteFileBytes(dir_.File("a-file"), "x");
  std::vector<std::string> paths = {dir_.File("no/such/dir/gatehouse.db"),
                                    dir_.File("a-file/gatehouse.db")};
  // procfs takes no new files, not even from root.
  if (FileExists("/proc/self/status")) paths.push_back("/proc/gatehouse-test.db");
  if (::geteuid() != 0) {
    // Root writes anywhere; for others a read-only directory is unwritable.
    std::filesystem::create_directory(dir_.File("read-only"));
    ::chmod(dir_.File("read-only").c_str(), 0500);
    paths.push_back(dir_.File("read-only/gatehouse.db"));
  }
  for (const auto& path : paths) {
    gh_.store = path;
    ProcessResult r = gh_.Run({"init", "--org", "Acme", "--owner", kOwner});
    EXPECT_TRUE(Failed(r, 1));
    EXPECT_TRUE(Contains(r.err, path)) << r;
    EXPECT_FALSE(FileExists(path));
  }
}

TEST_F(BadInputTest, InitRefusesAnExistingStoreAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  const std::string bytes = ReadFileBytes(gh_.store);
  const StoreSnapshot before = Snapshot(gh_.store);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"init", "--org", "Acme", "--owner", kOwner},
           {"init", "--org", "Other", "--owner", "someone@other.test"}}) {
    ProcessResult r = gh_.Run(args);
    EXPECT_TRUE(Failed(r, 5));
    EXPECT_TRUE(Contains(r.err, "already exists")) << r;
  }
  EXPECT_EQ(ReadFileBytes(gh_.store), bytes);
  EXPECT_TRUE(Unchanged(gh_.store, before));
  // The owner is still the owner of the one organization.
  EXPECT_TRUE(Succeeded(gh_.As(kOwner, {"settings", "set", kToggle, "true"})));
  EXPECT_TRUE(Failed(gh_.As("someone@other.test", {"token", "list"}), 4));
}

TEST_F(BadInputTest, InitWithBadArgumentsCreatesNoStore) {
  EXPECT_TRUE(Failed(gh_.Run({"init", "--org", "Acme", "--owner", "not-an-email"}), 2));
  EXPECT_TRUE(Failed(gh_.Run({"init", "--org", "Acme"}), 2));
  EXPECT_TRUE(Failed(gh_.Run({"init", "--owner", kOwner}), 2));
  EXPECT_FALSE(FileExists(gh_.store));
}

// --- A store locked by another writer --------------------------------------------

class LockTest : public BadInputTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(BuildWorld());
    ASSERT_EQ(sqlite3_open_v2(gh_.store.c_str(), &locker_, SQLITE_OPEN_READWRITE, nullptr),
              SQLITE_OK);
  }
  void TearDown() override { sqlite3_close(locker_); }
  void Lock() {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(locker_, "BEGIN EXCLUSIVE", nullptr, nullptr, &err), SQLITE_OK) << err;
  }
  void Unlock() {
    ASSERT_EQ(sqlite3_exec(locker_, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  sqlite3* locker_ = nullptr;
};

TEST_F(LockTest, TheCliWaitsForAnotherWriterThenSucceeds) {
  ASSERT_NO_FATAL_FAILURE(Lock());
  auto p = gh_.Start(kOwner, {"token", "create", "--apiuser", kDevBot, "--name", "waited",
                              "--expires-in", "1d", "--json"});
  ASSERT_TRUE(p);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(p->Running()) << "the CLI should be waiting for the lock";
  ASSERT_NO_FATAL_FAILURE(Unlock());
  ProcessResult r = p->Wait();
  ASSERT_TRUE(Succeeded(r));
  EXPECT_GE(r.seconds, 1.4) << r;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r;
  EXPECT_TRUE(Succeeded(gh_.Run({"token", "verify", j["token"].get<std::string>()})));
}

// The same with the lock held by another program: the sqlite3 shell (scripts/setup.sh installs it).
TEST_F(LockTest, TheCliWaitsForASqlite3ShellHoldingTheLock) {
  std::string sqlite3_shell;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/sqlite3";
    if (::access(candidate.c_str(), X_OK) == 0) {
      sqlite3_shell = candidate;
      break;
    }
    start = end + 1;
  }
  ASSERT_FALSE(sqlite3_shell.empty()) << "no sqlite3 shell on PATH (scripts/setup.sh installs it)";
  ProcessOptions o;
  o.env = ChildEnvironment();
  auto holder = Process::Start({sqlite3_shell, "-cmd", ".timeout 10000", gh_.store,
                                "BEGIN EXCLUSIVE;", ".shell sleep 2", "ROLLBACK;"},
                               o);
  ASSERT_TRUE(holder);
  // Wait until it holds the write lock (our own attempt then finds it busy).
  sqlite3_busy_timeout(locker_, 0);
  bool held = false;
  for (int i = 0; i < 200 && !held; ++i) {
    if (sqlite3_exec(locker_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) {
      sqlite3_exec(locker_, "ROLLBACK", nullptr, nullptr, nullptr);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } else {
      held = true;
    }
  }
  ASSERT_TRUE(held) << "the sqlite3 shell never took the lock";
  ProcessResult r = gh_.As(
      kOwner, {"token", "create", "--apiuser", kDevBot, "--name", "waited", "--expires-in", "1d"});
  ProcessResult h = holder->Wait();
  EXPECT_TRUE(Succeeded(h));
  ASSERT_TRUE(Succeeded(r));
  EXPECT_GE(r.seconds, 1.0) << "it did not wait for the lock" << r;
  EXPECT_TRUE(Succeeded(gh_.Run({"token", "verify", r.out.substr(0, r.out.find('\n'))})));
}

TEST_F(LockTest, AWriterHeldTooLongIsReportedClearlyAndNothingChanges) {
  NewToken t = CreateToken(kOwner, kDevBot);
  const StoreSnapshot before = Snapshot(gh_.store);
  ASSERT_NO_FATAL_FAILURE(Lock());
  // Reading goes on meanwhile: verify and authorize do not wait for writers.
  ProcessResult v = gh_.Run({"token", "verify", t.secret});
  EXPECT_TRUE(Succeeded(v));
  EXPECT_LT(v.seconds, 3.0) << v;
  ProcessResult r = gh_.As(
      kOwner, {"token", "create", "--apiuser", kDevBot, "--name", "late", "--expires-in", "1d"});
  ASSERT_NO_FATAL_FAILURE(Unlock());
  EXPECT_TRUE(Failed(r, 1));
  EXPECT_TRUE(Contains(r.err, "locked")) << r;
  EXPECT_GE(r.seconds, 4.0) << "expected a busy timeout of about 5 s" << r;
  EXPECT_LT(r.seconds, 30.0) << r;
  EXPECT_TRUE(r.out.empty()) << "no secret may be printed for a token that was not stored" << r;
  EXPECT_TRUE(Unchanged(gh_.store, before));
}

// --- Identities and names ----------------------------------------------------------

TEST_F(BadInputTest, UnknownActingIdentityIsNotFoundAndTheDenialIsAudited) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  ProcessResult r = ExpectFailsCleanly(
      "nobody@acme.test",
      {"apiuser", "create", "b", "--workspace", kDev, "--workspace-role", "viewer"}, 4, 1);
  EXPECT_TRUE(Contains(r.err, "nobody@acme.test")) << r;
  json a = LastAudit();
  EXPECT_EQ(a["actor"], "nobody@acme.test");
  EXPECT_EQ(a["action"], "api_user.create");
  EXPECT_EQ(a["decision"], "deny");
  EXPECT_EQ(a["rule"], "unknown-actor");
  ExpectFailsCleanly("nobody@acme.test", {"token", "list"}, 4, 1);
  ExpectFailsCleanly("nobody@acme.test", {"settings", "set", kToggle, "true"}, 4, 1);
  // No identity at all: a usage error naming --as.
  r = ExpectFailsCleanly("", {"token", "list"}, 2);
  EXPECT_TRUE(Contains(r.err, "--as")) << r;
  // GATEHOUSE_AS is the same as --as.
  Gatehouse by_env = gh_;
  by_env.env = {std::string("GATEHOUSE_AS=") + kOwner};
  EXPECT_TRUE(Succeeded(by_env.Run({"token", "list"})));
  by_env.env = {"GATEHOUSE_AS=nobody@acme.test"};
  EXPECT_TRUE(Failed(by_env.Run({"token", "list"}), 4));
}

TEST_F(BadInputTest, UnknownUserWorkspaceApiUserTokenAreNotFound) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  NewToken t = CreateToken(kOwner, kDevBot);
  const std::vector<std::vector<std::string>> cases = {
      // users
      {"member", "add", "ghost@acme.test", "--workspace", kDev, "--role", "viewer"},
      {"workspace", "create", "New-WS", "--type", "personal", "--owner", "ghost@acme.test"},
      {"authorize", "--action", "project.export", "--workspace", kDev, "--user", "ghost@acme.test"},
      // workspaces
      {"member", "add", kOrgViewer, "--workspace", "No-Such-WS", "--role", "viewer"},
      {"apiuser", "create", "b", "--workspace", "No-Such-WS", "--workspace-role", "viewer"},
      {"apiuser", "list", "--workspace", "No-Such-WS"},
      // API users
      {"apiuser", "promote", "ghost-bot", "--workspace-role", "admin"},
      {"apiuser", "promote", "ghost-bot", "--org-role", "admin"},
      {"apiuser", "delete", "ghost-bot"},
      {"token", "create", "--apiuser", "ghost-bot", "--name", "n", "--expires-in", "1d"},
      {"token", "list", "--apiuser", "ghost-bot"},
      // token ids (well-formed, unknown)
      {"token", "revoke", "tok_AAAAAAAAAAAA"},
      // organizations
      {"--org", "No-Such-Org", "token", "list"},
  };
  for (const auto& args : cases) ExpectFailsCleanly(kOwner, args, 4);
  // A token that exists nowhere: inactive (exit 3), never an error about the store.
  ProcessResult v = gh_.Run({"token", "verify", "gat_000000000000000000000000000000000000"});
  EXPECT_TRUE(Failed(v, 3));
  EXPECT_EQ(json::parse(v.out, nullptr, false), json({{"active", false}}));
  // Authorizing in an unknown workspace: not found (exit 4), never allowed.
  ProcessResult a = gh_.Run({"authorize", "--action", "project.export", "--workspace", "No-Such-WS",
                             "--token", t.secret});
  EXPECT_TRUE(Failed(a, 4)) << a;
  EXPECT_NE(a.err.find("No-Such-WS"), std::string::npos) << a;
}

TEST_F(BadInputTest, DuplicateNamesAreConflictsWhateverTheirCase) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  const std::vector<std::vector<std::string>> cases = {
      {"user", "add", kWsAdmin, "--org-role", "viewer"},
      {"user", "add", "WSADMIN@Acme.Test", "--org-role", "viewer"},
      {"workspace", "create", kDev, "--type", "shared"},
      {"workspace", "create", "marketing-DEVELOPMENT", "--type", "shared"},
      {"workspace", "create", "organization", "--type", "shared"},
      {"apiuser", "create", kDevBot, "--workspace", kDev, "--workspace-role", "viewer"},
      {"apiuser", "create", "DEV-Bot", "--workspace", kDev, "--workspace-role", "viewer"},
      // API user names are unique in the organization, not per workspace.
      {"apiuser", "create", "Dev-Bot", "--workspace", kProd, "--workspace-role", "viewer"},
  };
  for (const auto& args : cases) {
    ProcessResult r = ExpectFailsCleanly(kOwner, args, 5);
    EXPECT_TRUE(Contains(r.err, "already exists")) << r;
  }
}

TEST_F(BadInputTest, InvalidRoleTypeAndSettingNamesAreUsageErrors) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  const std::vector<std::vector<std::string>> cases = {
      {"user", "add", "n@acme.test", "--org-role", "superuser"},
      {"user", "add", "n@acme.test", "--org-role", "Admin"},
      {"user", "add", "n@acme.test", "--org-role", "none"},
      {"user", "add", "n@acme.test", "--org-role", ""},
      {"user", "add", "not-an-email", "--org-role", "viewer"},
      {"workspace", "create", "W", "--type", "public"},
      {"workspace", "create", "W", "--type", "Shared"},
      {"workspace", "create", "W", "--type", ""},
      {"member", "add", kOrgViewer, "--workspace", kDev, "--role", "owner"},
      {"member", "add", kOrgViewer, "--workspace", kDev, "--role", "none"},
      {"apiuser", "create", "b", "--workspace", kDev, "--workspace-role", "god"},
      {"apiuser", "create", "b", "--workspace", kDev, "--workspace-role", "viewer", "--org-role",
       "god"},
      {"apiuser", "promote", kDevBot, "--workspace-role", "god"},
      {"apiuser", "promote", kDevBot, "--org-role", "god"},
      {"settings", "set", "no-such-setting", "true"},
      {"settings", "set", kToggle, "maybe"},
  };
  for (const auto& args : cases) ExpectFailsCleanly(kOwner, args, 2);
}

TEST_F(BadInputTest, BadDurationsAreUsageErrors) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  for (const char* d :
       {"0d", "-1d", "abc", "10", "5y", "", "0", "1.5d", " 1d", "1d ", "1D", "d", "+1d", "1dd",
        "1d1h", "0x10s",
        // too large for 64-bit seconds
        "99999999999999999999d", "9223372036854775808s", "15250284452472w", "2562047788015216h"}) {
    SCOPED_TRACE(std::string("--expires-in '") + d + "'");
    ProcessResult r = ExpectFailsCleanly(
        kOwner, {"token", "create", "--apiuser", kDevBot, "--name", "n", "--expires-in", d}, 2);
    EXPECT_TRUE(r.out.empty()) << r;
  }
  // --expires-in left out is a usage error too.
  ExpectFailsCleanly(kOwner, {"token", "create", "--apiuser", kDevBot, "--name", "n"}, 2);
}

TEST_F(BadInputTest, LifetimeOverTheCapIsDenied) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  for (const char* d : {"366d", "53w", "8761h", "525601m", "31536001s",
                        // well-formed and within 64 bits, far above the cap
                        "9223372036854775807s", "15250284452471w", "106751991167300d"}) {
    SCOPED_TRACE(d);
    ProcessResult r = ExpectFailsCleanly(
        kOwner, {"token", "create", "--apiuser", kDevBot, "--name", "n", "--expires-in", d}, 3, 1);
    EXPECT_TRUE(Contains(r.err, "rule tokens.max_lifetime")) << r;
    EXPECT_TRUE(r.out.empty()) << r;
  }
  // The cap itself is allowed.
  for (const char* d : {"365d", "8760h", "31536000s", "52w"}) {
    EXPECT_TRUE(Succeeded(gh_.As(
        kOwner, {"token", "create", "--apiuser", kDevBot, "--name", "n", "--expires-in", d})))
        << d;
  }
}

// --- A policy that fails to load ------------------------------------------------

TEST_F(BadInputTest, APolicyThatFailsToLoadChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  NewToken t = CreateToken(kOwner, kDevBot);
  const std::string copy = dir_.File("policies");
  std::filesystem::copy(DefaultPolicyDir(), copy, std::filesystem::copy_options::recursive);
  const std::string file = copy + "/api-tokens.yaml";
  std::string text = ReadFileBytes(file);
  const std::string from = "  max_lifetime: 365d";
  size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos);
  const int line =
      1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
  text.replace(at, from.size(), "  max_lifetime: 365 days");
  WriteFileBytes(file, text);

  const json tokens_before = gh_.Json(kOwner, {"token", "list"});
  StoreSnapshot before = Snapshot(gh_.store);
  const std::string bytes = ReadFileBytes(gh_.store);
  Gatehouse broken = gh_;
  broken.policy = copy;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"token", "create", "--apiuser", kDevBot, "--name", "n", "--expires-in", "1d"},
           {"token", "revoke", t.id},
           {"apiuser", "delete", kDevBot},
           {"settings", "set", kToggle, "true"},
           {"token", "list"},
           {"audit", "--json"},
           {"authorize", "--action", "project.export", "--workspace", kDev, "--token", t.secret}}) {
    ProcessResult r = broken.As(kOwner, args);
    EXPECT_TRUE(PolicyLoadFailed(r, file));
    EXPECT_TRUE(Contains(r.err, file + ":" + std::to_string(line) + ":")) << r;
    EXPECT_TRUE(r.out.empty()) << r;
  }
  EXPECT_EQ(ReadFileBytes(gh_.store), bytes);
  EXPECT_TRUE(Unchanged(gh_.store, before));
  EXPECT_EQ(gh_.Json(kOwner, {"token", "list"}), tokens_before);
  EXPECT_TRUE(Succeeded(gh_.Run({"token", "verify", t.secret})));
  before = Snapshot(gh_.store);

  // A YAML syntax error, and a policy path that does not exist.
  const std::string bad_yaml = dir_.File("bad.yaml");
  WriteFileBytes(bad_yaml, "gatehouse: v1\npolicy: [unclosed\n");
  broken.policy = bad_yaml;
  EXPECT_TRUE(PolicyLoadFailed(broken.As(kOwner, {"token", "list"}), bad_yaml));
  broken.policy = dir_.File("no-such-policy.yaml");
  EXPECT_TRUE(PolicyLoadFailed(broken.As(kOwner, {"token", "list"}), broken.policy));
  EXPECT_TRUE(Unchanged(gh_.store, before, 0));

  // init with a broken policy creates no store.
  broken.policy = copy;
  broken.store = dir_.File("new.db");
  EXPECT_TRUE(PolicyLoadFailed(broken.Run({"init", "--org", "Acme", "--owner", kOwner}), file));
  EXPECT_FALSE(FileExists(broken.store));
}

// --- Usage errors ----------------------------------------------------------------

TEST_F(BadInputTest, UnknownCommandsFlagsAndMissingArgumentsAreUsageErrors) {
  ASSERT_NO_FATAL_FAILURE(BuildWorld());
  const std::vector<std::vector<std::string>> cases = {
      {"frobnicate"},
      {"token", "frobnicate"},
      {"token"},
      {"token", "list", "--bogus"},
      {"token", "list", "--workspace", kDev},  // another command's option
      {"token", "create", "--apiuser", kDevBot, "--name", "n", "--expires-in", "1d", "extra"},
      {"user", "add", "--org-role", "viewer"},
      {"user", "add", "n@acme.test"},
      {"token", "revoke"},
      {"token", "revoke", "tok_AAAAAAAAAAAA", "tok_BBBBBBBBBBBB"},
      {"token", "revoke", "not-a-token-id"},
      {"token", "verify"},
      {"token", "create", "--apiuser", kDevBot, "--name"},  // option value missing
      {"token", "create", "--name", "n", "--expires-in", "1d"},
      {"audit", "--limit"},
      {"audit", "--limit", "ten"},
      {"audit", "--limit", "0"},
      {"apiuser", "promote", kDevBot},
      {"authorize", "--action", "project.export", "--workspace", kDev},
      {"authorize", "--action", "project.export", "--workspace", kDev, "--user", kOwner, "--token",
       "gat_000000000000000000000000000000000000"},
      {"authorize", "--action", "no.such.action", "--workspace", kDev, "--user", kOwner},
      {"settings", "set", kToggle},
  };
  for (const auto& args : cases) ExpectFailsCleanly(kOwner, args, 2);
  // No command at all.
  ExpectFailsCleanly(kOwner, {}, 2);
}

}  // namespace
}  // namespace gatehouse::testing
