// gatehouse store backup|restore on real SQLite files (item 14 of issue 10):
// the backup is one consistent 0600 file that is never written over without
// --force; a restore brings back exactly the backed-up content, is refused
// while a writer holds the store, and refuses anything that is not a sound
// Gatehouse store with the live store left exactly as it was.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

class StoreBackupTest : public CliTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(BuildWorld()); }

  std::string backup() const { return dir_.File("backup.db"); }

  // A restore that must fail with `code`, naming `why`, and change nothing.
  void ExpectRefusedRestore(const std::string& path, int code, const std::string& why) {
    const StoreSnapshot before = Snapshot(gh_.store);
    ProcessResult r = gh_.As(kOwner, {"store", "restore", path});
    EXPECT_TRUE(Failed(r, code)) << path;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_TRUE(Unchanged(gh_.store, before, 0)) << path;
  }
};

TEST_F(StoreBackupTest, BackupIsOneFileMode0600AndNeverOverwrittenWithoutForce) {
  ProcessResult r = gh_.As(kOwner, {"store", "backup", backup()});
  ASSERT_TRUE(Succeeded(r)) << r.err;
  struct stat st;
  ASSERT_EQ(::stat(backup().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(FileExists(backup() + "-wal"));
  const std::string bytes = ReadFileBytes(backup());
  ASSERT_GT(bytes.size(), 100u);
  EXPECT_EQ(bytes.substr(0, 16), std::string("SQLite format 3\0", 16));
  EXPECT_EQ(bytes[18], 1) << "the backup is in WAL mode: it would need its -wal";
  // Its content is the store's.
  EXPECT_EQ(Snapshot(backup()).state, Snapshot(gh_.store).state);

  // An existing file (any file) is kept, byte for byte, without --force.
  const std::string other = dir_.File("precious.txt");
  WriteFileBytes(other, "do not touch");
  for (const std::string& path : std::vector<std::string>{backup(), other}) {
    const std::string was = ReadFileBytes(path);
    EXPECT_TRUE(Failed(gh_.As(kOwner, {"store", "backup", path}), 5)) << path;
    EXPECT_EQ(ReadFileBytes(path), was);
  }
  // --force replaces it with a fresh backup (still 0600).
  ::chmod(other.c_str(), 0644);
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"store", "backup", other, "--force"})));
  ASSERT_EQ(::stat(other.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Snapshot(other).state, Snapshot(gh_.store).state);
  // The store's own files are never a backup's target, even with --force.
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (!FileExists(gh_.store + suffix)) continue;
    const StoreSnapshot before = Snapshot(gh_.store);
    EXPECT_TRUE(Failed(gh_.As(kOwner, {"store", "backup", gh_.store + suffix, "--force"}), 2)) << suffix;
    EXPECT_TRUE(Unchanged(gh_.store, before, 0));
  }
  // No temporary file is left behind.
  int entries = 0;
  for (const char* name : {"backup.db", "precious.txt", "gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"})
    entries += FileExists(dir_.File(name));
  size_t listed = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_.path())) ++listed;
  EXPECT_EQ(static_cast<size_t>(entries), listed);
}

TEST_F(StoreBackupTest, RestoreBringsBackExactlyTheBackedUpContent) {
  const NewToken before_backup = CreateToken(kOwner, kDevBot);
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"store", "backup", backup()})));
  const std::string backed_up = Snapshot(gh_.store).state;
  // Changes after the backup: a token, a user, an API user deleted.
  const NewToken after_backup = CreateToken(kOwner, kDevBot);
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"user", "add", "late@acme.test", "--org-role", "viewer"})));
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"apiuser", "delete", kProdBot})));
  ASSERT_NE(Snapshot(gh_.store).state, backed_up);

  ProcessResult r = gh_.As(kOwner, {"store", "restore", backup()});
  ASSERT_TRUE(Succeeded(r)) << r.err;
  // The content is the backup's, apart from the generation counter, which
  // moved on so that readers notice.
  // The content generation and the change feed's epoch move on purpose
  // (readers must not take the restored content for what they knew).
  auto without_generation = [](std::string state) {
    for (const char* table : {"== generation\n", "== change_feed\n"}) {
      const size_t at = state.find(table);
      if (at == std::string::npos) continue;
      const size_t next = state.find("== ", at + 3);
      state.erase(at, next == std::string::npos ? std::string::npos : next - at);
    }
    return state;
  };
  EXPECT_EQ(without_generation(Snapshot(gh_.store).state), without_generation(backed_up));
  EXPECT_EQ(gh_.As(kOwner, {"token", "verify", after_backup.secret}).exit_code, 3);
  EXPECT_TRUE(Succeeded(gh_.As(kOwner, {"token", "verify", before_backup.secret})));
  EXPECT_EQ(gh_.As(kOwner, {"member", "add", "late@acme.test", "--workspace", kDev, "--role", "viewer"}).exit_code, 4);
  // The restore is in the (restored) audit log; the store stays usable.
  json log = gh_.Json(kOwner, {"audit", "--limit", "3"});
  bool recorded = false;
  for (const auto& a : log) recorded |= a["action"] == "store.restore" && a["actor"] == kOwner;
  EXPECT_TRUE(recorded) << log.dump();
  EXPECT_TRUE(Succeeded(gh_.As(kOwner, {"user", "add", "after@acme.test", "--org-role", "viewer"})));
}

TEST_F(StoreBackupTest, RestoreIsRefusedWhileAWriterHoldsTheStore) {
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"store", "backup", backup()})));
  const NewToken later = CreateToken(kOwner, kDevBot);
  const StoreSnapshot before = Snapshot(gh_.store);
  sqlite3* writer = nullptr;
  ASSERT_EQ(sqlite3_open_v2(gh_.store.c_str(), &writer, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(writer, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  ProcessResult r = gh_.As(kOwner, {"store", "restore", backup()});
  EXPECT_TRUE(Failed(r, 1));
  EXPECT_NE(r.err.find("in use by a writer"), std::string::npos) << r.err;
  ASSERT_EQ(sqlite3_exec(writer, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(writer);
  EXPECT_TRUE(Unchanged(gh_.store, before, 0));
  EXPECT_TRUE(Succeeded(gh_.As(kOwner, {"token", "verify", later.secret})));
  // Once the writer is gone, the same restore goes through.
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"store", "restore", backup()})));
  EXPECT_EQ(gh_.As(kOwner, {"token", "verify", later.secret}).exit_code, 3);
}

TEST_F(StoreBackupTest, AnythingButASoundGatehouseBackupIsRefusedWithTheStoreUnchanged) {
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"store", "backup", backup()})));
  const std::string good = ReadFileBytes(backup());
  auto file = [&](const std::string& name, const std::string& bytes) {
    WriteFileBytes(dir_.File(name), bytes);
    return dir_.File(name);
  };
  ExpectRefusedRestore(file("empty.db", ""), 1, "not a Gatehouse store");
  ExpectRefusedRestore(file("text.db", "hello, I am not a database\n"), 1, "not a SQLite database");
  ExpectRefusedRestore(file("random.db", std::string(8192, '\x5a')), 1, "not a SQLite database");
  // Cut short: a page count that the file does not hold.
  ExpectRefusedRestore(file("truncated.db", good.substr(0, good.size() / 2)), 1, "backup");
  // A page in the middle overwritten with garbage.
  std::string damaged = good;
  for (size_t i = 4096 * 2; i < 4096 * 3 && i < damaged.size(); ++i) damaged[i] = static_cast<char>(i * 7);
  ExpectRefusedRestore(file("damaged.db", damaged), 1, "backup");
  // A SQLite database of someone else's.
  const std::string foreign = dir_.File("foreign.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE users (email TEXT); INSERT INTO users VALUES ('x')", nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  ExpectRefusedRestore(foreign, 1, "not a Gatehouse store");
  // A Gatehouse store from a newer version.
  const std::string newer = file("newer.db", good);
  ExecSql(newer, "PRAGMA user_version = 99");
  ExpectRefusedRestore(newer, 1, "newer than this build");
  // Not there, a folder, the store itself.
  ExpectRefusedRestore(dir_.File("missing.db"), 1, "cannot be read");
  ExpectRefusedRestore(dir_.path(), 1, "not a regular file");
  ExpectRefusedRestore(gh_.store, 2, "the store itself");
  // And the good one still restores.
  EXPECT_TRUE(Succeeded(gh_.As(kOwner, {"store", "restore", backup()})));
}

TEST_F(StoreBackupTest, NoStoreNoBackup) {
  Gatehouse none(dir_.File("none.db"));
  EXPECT_TRUE(Failed(none.Run({"store", "backup", dir_.File("b.db")}), 1));
  EXPECT_FALSE(FileExists(dir_.File("b.db")));
  EXPECT_FALSE(FileExists(dir_.File("none.db")));
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"store", "backup", backup()})));
  EXPECT_TRUE(Failed(none.Run({"store", "restore", backup()}), 1));
  EXPECT_FALSE(FileExists(dir_.File("none.db")));
}

}  // namespace
}  // namespace gatehouse::testing
