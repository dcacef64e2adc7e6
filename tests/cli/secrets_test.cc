// A token's plaintext is shown once, on the creator's terminal, and nowhere
// else: not in the database file, its -wal or -shm, any list, the audit log or
// any other command's output.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "gatehouse/tokens.h"

namespace gatehouse::testing {
namespace {

class SecretsTest : public CliTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(BuildWorld()); }
  void TearDown() override {
    if (holder_) sqlite3_close(holder_);
  }

  // Keeps a connection open so that the CLI is never the last one to close
  // the store: its WAL is then neither checkpointed nor deleted, and the
  // -wal and -shm files can be searched too.
  void HoldWalOpen() {
    ASSERT_EQ(sqlite3_open_v2(gh_.store.c_str(), &holder_, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(holder_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr),
        SQLITE_OK);
  }

  // Runs a command whose output must not hold any secret; keeps the output.
  ProcessResult Keep(const ProcessResult& r) {
    outputs_.push_back(r);
    return r;
  }

  sqlite3* holder_ = nullptr;
  std::vector<ProcessResult> outputs_;
};

std::string Hex(const TokenHash& h) {
  std::string s;
  for (uint8_t b : h) {
    s += "0123456789abcdef"[b >> 4];
    s += "0123456789abcdef"[b & 15];
  }
  return s;
}

TEST_F(SecretsTest, ThePlaintextIsNowhereButTheCreatorsTerminal) {
  ASSERT_NO_FATAL_FAILURE(HoldWalOpen());
  std::vector<std::string> secrets;
  std::vector<std::string> ids;
  // Plain: the secret alone on stdout, what it is (its id, never the secret) on stderr.
  for (const char* name : {"plain-1", "plain-2", "plain-3"}) {
    ProcessResult r = gh_.As(
        kOwner, {"token", "create", "--apiuser", kDevBot, "--name", name, "--expires-in", "30d"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_EQ(r.out.size(), kTokenLength + 1) << r;
    std::string secret = r.out.substr(0, kTokenLength);
    EXPECT_EQ(secret.rfind("gat_", 0), 0u);
    EXPECT_EQ(r.err.find(secret), std::string::npos) << r;
    EXPECT_NE(r.err.find("tok_"), std::string::npos) << r;
    secrets.push_back(secret);
  }
  for (const char* name : {"json-1", "json-2"}) {
    NewToken t = CreateToken(kOwner, kProdBot, "7d", name);
    secrets.push_back(t.secret);
    ids.push_back(t.id);
  }
  SetToggle(true);
  NewToken by_ws_admin = CreateToken(kWsAdmin, kDevBot, "1d", "ws");
  secrets.push_back(by_ws_admin.secret);
  ids.push_back(by_ws_admin.id);

  // Everything else a user might run with those tokens around.
  for (const auto& s : secrets) {
    Keep(gh_.Run({"token", "verify", s}));
    Keep(gh_.Run({"authorize", "--action", "project.export", "--workspace", kDev, "--token", s}));
    Keep(gh_.Run(
        {"authorize", "--action", "project.import", "--workspace", kProd, "--token", s, "--json"}));
  }
  Keep(gh_.As(kOwner, {"token", "revoke", ids[0]}));
  Keep(gh_.Run({"token", "verify", secrets[3]}));  // revoked
  // Someone pastes a secret where an id belongs: refused, the secret not echoed.
  ProcessResult pasted = Keep(gh_.As(kOwner, {"token", "revoke", secrets[1]}));
  EXPECT_TRUE(Failed(pasted, 2));
  // A mistyped secret (last character changed) is refused without echo.
  std::string typo = secrets[2];
  typo.back() = typo.back() == 'A' ? 'B' : 'A';
  Keep(gh_.Run({"token", "verify", typo}));
  Keep(gh_.As(kOwner, {"token", "list"}));
  Keep(gh_.As(kOwner, {"token", "list", "--json"}));
  Keep(gh_.As(kOwner, {"token", "list", "--apiuser", kDevBot, "--json"}));
  Keep(gh_.As(kWsAdmin, {"token", "list"}));
  Keep(gh_.As(kOwner, {"apiuser", "list"}));
  Keep(gh_.As(kOwner, {"apiuser", "list", "--json"}));
  Keep(gh_.As(kOwner, {"audit", "--limit", "1000"}));
  ProcessResult audit = Keep(gh_.As(kOwner, {"audit", "--limit", "1000", "--json"}));
  Keep(gh_.As(kOwner, {"settings", "show", "--json"}));
  Keep(gh_.Run({"gc", "--json"}));
  Keep(gh_.As(kOwner, {"apiuser", "delete", kProdBot, "--json"}));

  // The audit log does record the creations, by id.
  json a = json::parse(audit.out, nullptr, false);
  ASSERT_TRUE(a.is_array()) << audit;
  int creations = 0;
  for (const auto& rec : a) {
    if (rec["action"] == "token.create" && rec["decision"] == "allow") {
      ++creations;
      EXPECT_NE(rec["detail"].get<std::string>().find("tok_"), std::string::npos) << rec.dump();
    }
  }
  EXPECT_EQ(creations, 6);

  const std::string db = ReadFileBytes(gh_.store);
  const std::string wal = ReadFileBytes(gh_.store + "-wal");
  const std::string shm = ReadFileBytes(gh_.store + "-shm");
  ASSERT_FALSE(db.empty());
  ASSERT_FALSE(wal.empty()) << "the WAL should still be there while a connection is open";
  ASSERT_FALSE(shm.empty());
  // Sanity: the files do hold the tokens, by id and by hash.
  EXPECT_NE((db + wal).find(by_ws_admin.id), std::string::npos);
  TokenHash h = HashToken(by_ws_admin.secret);
  EXPECT_NE((db + wal).find(std::string(h.begin(), h.end())), std::string::npos);
  EXPECT_EQ(QueryInt(gh_.store, "SELECT count(*) FROM tokens WHERE hex(hash) = upper('" + Hex(h) +
                                    "') AND public_id = '" + by_ws_admin.id + "'"),
            1);

  for (const std::string& secret : secrets) {
    SCOPED_TRACE(secret.substr(0, 8) + "...");
    // The whole secret, and its random part alone.
    const std::string body = secret.substr(4, kTokenRandomChars);
    for (const std::string* bytes : {&db, &wal, &shm}) {
      EXPECT_EQ(bytes->find(secret), std::string::npos);
      EXPECT_EQ(bytes->find(body), std::string::npos);
    }
    for (const ProcessResult& r : outputs_) {
      EXPECT_EQ(r.out.find(body), std::string::npos) << r;
      EXPECT_EQ(r.err.find(body), std::string::npos) << r;
    }
  }
  // After the last connection closes (WAL checkpointed into the file): still nothing.
  sqlite3_close(holder_);
  holder_ = nullptr;
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"token", "list"})));
  const std::string final_db = ReadFileBytes(gh_.store) + ReadFileBytes(gh_.store + "-wal");
  for (const std::string& secret : secrets)
    EXPECT_EQ(final_db.find(secret.substr(4, kTokenRandomChars)), std::string::npos);
}


// argv is readable by every local user (/proc/PID/cmdline) and lands in shell
// history: `-` reads the token from stdin, and GATEHOUSE_TOKEN stands in for
// a missing one (issue 10, item 10); the argv form keeps working.
TEST_F(SecretsTest, TokensComeFromStdinOrTheEnvironmentNotOnlyArgv) {
  const NewToken t = CreateToken(kOwner, kDevBot);
  ASSERT_FALSE(t.secret.empty());
  const std::string file = dir_.File("token.txt");
  WriteFileBytes(file, t.secret + "\n");
  WriteFileBytes(dir_.File("empty.txt"), "");
  auto sh = [&](const std::string& args, const std::string& input, std::vector<std::string> env = {}) {
    std::string cmd = "exec '" + GatehouseBinary() + "' --store '" + gh_.store + "'";
    if (!gh_.policy.empty()) cmd += " --policy '" + gh_.policy + "'";
    cmd += " " + args + " < '" + input + "'";
    ProcessOptions o;
    o.env = ChildEnvironment(env);
    return RunProcess({"/bin/sh", "-c", cmd}, o);
  };
  ProcessResult r = sh("token verify - --json", file);
  EXPECT_TRUE(Succeeded(r)) << r;
  EXPECT_NE(r.out.find("\"active\": true"), std::string::npos) << r.out;
  r = sh(std::string("--as ") + kOwner + " authorize --action project.export --workspace " + kDev +
             " --token -",
         file);
  EXPECT_TRUE(Succeeded(r)) << r;
  // Nothing on stdin: a usage error, never a check of an empty token.
  EXPECT_TRUE(Failed(sh("token verify -", dir_.File("empty.txt")), 2));
  // The environment.
  r = sh("token verify", dir_.File("empty.txt"), {"GATEHOUSE_TOKEN=" + t.secret});
  EXPECT_TRUE(Succeeded(r)) << r;
  r = sh(std::string("--as ") + kOwner + " authorize --action project.import --workspace " + kProd,
         dir_.File("empty.txt"), {"GATEHOUSE_TOKEN=" + t.secret});
  EXPECT_TRUE(Failed(r, 3)) << r;  // a Dev token in Prod: denied, so the token was used
  // No token anywhere: usage.
  EXPECT_TRUE(Failed(gh_.Run({"token", "verify"}), 2));
  // argv still works.
  EXPECT_TRUE(Succeeded(gh_.Run({"token", "verify", t.secret})));
}

}  // namespace
}  // namespace gatehouse::testing
