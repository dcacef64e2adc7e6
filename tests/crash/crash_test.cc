// Kills `gatehouse` processes with SIGKILL at random points while they create
// API users and tokens, hundreds of times, then checks the store: SQLite's
// integrity check passes, every token whose creation was reported verifies,
// no API user or token exists half-made, and the audit log agrees with the
// data (every row has its allow record, every allow record its row).
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "gatehouse/store.h"
#include "gatehouse/tokens.h"
#include "store/sqlite_store.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace gatehouse {
namespace {

using nlohmann::json;
using testing::ChildEnvironment;
using testing::Process;
using testing::ProcessOptions;
using testing::RunProcess;

const std::string kCli = std::string(GATEHOUSE_BINARY_DIR) + "/cli/gatehouse";

std::vector<std::vector<std::string>> Query(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  std::vector<std::vector<std::string>> rows;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << db;
    sqlite3_close(h);
    return rows;
  }
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      const unsigned char* t = sqlite3_column_text(st, i);
      row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
    }
    rows.push_back(std::move(row));
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return rows;
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    store_ = dir_.File("g.db");
    env_ = ChildEnvironment({"GATEHOUSE_STORE=" + store_, "GATEHOUSE_AS=owner@crash.test",
                             "GATEHOUSE_POLICY=" + std::string(GATEHOUSE_SOURCE_DIR) + "/policies"});
    ASSERT_EQ(Cli({"init", "--org", "Crash", "--owner", "owner@crash.test"}).exit_code, 0);
    ASSERT_EQ(Cli({"workspace", "create", "W", "--type", "shared"}).exit_code, 0);
  }
  testing::ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), kCli);
    ProcessOptions o;
    o.env = env_;
    return RunProcess(args, o);
  }

  testing::TempDir dir_;
  std::string store_;
  std::vector<std::string> env_;
};

TEST_F(CrashTest, KilledAtRandomPointsTheStoreStaysWholeAndConsistent) {
  std::mt19937 rng(20261129);
  std::vector<std::string> api_users;             // reported created
  std::map<std::string, std::string> tokens;      // reported: id → secret
  int killed = 0, completed = 0;
  const int kIterations = 300;
  // Kill within a window that starts at 1.5× one run's time, measured here,
  // and then follows the machine: it narrows a little after each completed
  // run and widens after each kill, which settles where about a third of the
  // runs complete, whether the build is optimised or sanitized and however
  // the load of the tests running beside this one comes and goes.
  ASSERT_EQ(Cli({"apiuser", "create", "timing-probe", "--workspace", "W", "--workspace-role", "viewer"}).exit_code, 0);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(Cli({"token", "create", "--apiuser", "timing-probe", "--name", "probe", "--expires-in", "1d"}).exit_code, 0);
  const auto run_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  double window_us = std::max<double>(2000, static_cast<double>(run_us) * 1.5);
  auto adapt = [&window_us](bool was_killed) {
    window_us = std::clamp(window_us * (was_killed ? 1.05 : 0.9), 2000.0, 10e6);
  };
  for (int i = 0; i < kIterations; ++i) {
    std::vector<std::string> argv = {kCli, "--json"};
    bool make_user = api_users.empty() || rng() % 3 == 0;
    std::string name = "bot-" + std::to_string(i);
    if (make_user) {
      argv.insert(argv.end(), {"apiuser", "create", name, "--workspace", "W", "--workspace-role", "contributor"});
    } else {
      argv.insert(argv.end(), {"token", "create", "--apiuser", api_users[rng() % api_users.size()], "--name",
                               "t" + std::to_string(i), "--expires-in", "1d"});
    }
    ProcessOptions o;
    o.env = env_;
    auto p = Process::Start(argv, o);
    ASSERT_NE(p, nullptr);
    // Somewhere between before main() and after the commit.
    std::this_thread::sleep_for(
        std::chrono::microseconds(rng() % static_cast<uint32_t>(window_us)));
    if (p->Running()) {
      p->Kill(SIGKILL);
      ++killed;
    }
    testing::ProcessResult r = p->Wait();
    adapt(r.term_signal == SIGKILL);
    if (r.term_signal == SIGKILL) continue;  // unreported: may or may not have happened
    ++completed;
    ASSERT_EQ(r.exit_code, 0) << r;
    json j = json::parse(r.out);
    if (make_user) api_users.push_back(name);
    else tokens[j.at("id").get<std::string>()] = j.at("token").get<std::string>();
  }
  std::cout << "run time " << run_us << " us, final window " << static_cast<int64_t>(window_us)
            << " us; iterations " << kIterations << ", killed " << killed << ", completed " << completed
            << ", API users reported " << api_users.size() << ", tokens reported " << tokens.size() << "\n";
  EXPECT_GT(killed, 20) << "the kills must land inside runs, or this proves little";
  EXPECT_GT(completed, 20);

  // SQLite's own checks, on the file as the crashes left it (the next
  // opener recovers the WAL).
  auto integrity = Query(store_, "PRAGMA integrity_check");
  ASSERT_EQ(integrity.size(), 1u);
  EXPECT_EQ(integrity[0][0], "ok");
  EXPECT_TRUE(Query(store_, "PRAGMA foreign_key_check").empty());

  // Every reported token verifies, through the real binary and in process.
  auto store = OpenSqliteStore(store_, StoreOptions{.read_only = true});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (const auto& [id, secret] : tokens) {
    auto t = (*store)->FindTokenByHash(HashToken(secret));
    ASSERT_TRUE(t.ok()) << id << ": " << t.status().ToString();
    EXPECT_EQ(t->token_id, id);
  }
  if (!tokens.empty()) {
    auto r = Cli({"token", "verify", tokens.begin()->second});
    EXPECT_EQ(r.exit_code, 0) << r;
  }
  // Every reported API user exists.
  std::set<std::string> in_db;
  for (const auto& row : Query(store_, "SELECT name FROM api_users")) in_db.insert(row[0]);
  for (const auto& n : api_users) EXPECT_TRUE(in_db.count(n)) << n << " was reported created but is missing";

  // The audit log and the data agree both ways: a row exists iff its allow
  // record does (nothing is deleted in this test).
  std::set<std::string> audited_users, audited_tokens;
  for (const auto& row : Query(store_, "SELECT target FROM audit_log WHERE action = 'api_user.create' AND decision = 'allow'"))
    audited_users.insert(row[0].substr(std::string("apiuser:").size()));
  for (const auto& row : Query(store_, "SELECT detail FROM audit_log WHERE action = 'token.create' AND decision = 'allow'")) {
    auto at = row[0].find("token=");
    ASSERT_NE(at, std::string::npos) << row[0];
    audited_tokens.insert(row[0].substr(at + 6, kTokenIdLength));
  }
  EXPECT_EQ(audited_users, in_db) << "API users and their audit records differ";
  std::set<std::string> token_ids;
  for (const auto& row : Query(store_, "SELECT public_id FROM tokens")) token_ids.insert(row[0]);
  EXPECT_EQ(audited_tokens, token_ids) << "tokens and their audit records differ";
  for (const auto& [id, secret] : tokens) EXPECT_TRUE(token_ids.count(id)) << id;
  // No API user half-made: each sits in an existing workspace with its roles.
  EXPECT_TRUE(Query(store_, "SELECT a.name FROM api_users a LEFT JOIN workspaces w ON w.id = a.workspace_id "
                            "WHERE w.id IS NULL OR a.workspace_role = '' OR a.org_role = ''").empty());
}

}  // namespace
}  // namespace gatehouse
