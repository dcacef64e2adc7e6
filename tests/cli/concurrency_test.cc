// Four `gatehouse` processes creating tokens at once on one store: every one
// succeeds (or reports the lock clearly, exit 1), and nothing is lost.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_util.h"

namespace gatehouse::testing {
namespace {

constexpr int kWorkers = 4;
constexpr int kPerWorker = 25;

class ConcurrencyTest : public CliTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(BuildWorld()); }
};

TEST_F(ConcurrencyTest, FourProcessesCreatingTokensAtOnceLoseNothing) {
  const StoreSnapshot before = Snapshot(gh_.store);
  std::vector<std::vector<ProcessResult>> results(kWorkers);
  std::latch start(kWorkers);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerWorker; ++i) {
        // Two API users in two workspaces, so writers also touch different rows.
        results[w].push_back(gh_.As(
            kOwner,
            {"token", "create", "--apiuser", w % 2 ? kDevBot : kProdBot, "--name",
             "w" + std::to_string(w) + "-" + std::to_string(i), "--expires-in", "1d", "--json"}));
      }
    });
  }
  for (auto& t : workers) t.join();

  std::map<std::string, std::string> created;  // id -> secret
  std::set<std::string> secrets;
  int locked = 0;
  for (const auto& list : results) {
    for (const ProcessResult& r : list) {
      if (r.exit_code == 1) {
        // Allowed: the lock reported clearly.
        EXPECT_TRUE(Failed(r, 1));
        EXPECT_NE(r.err.find("locked"), std::string::npos) << r;
        ++locked;
        continue;
      }
      ASSERT_TRUE(Succeeded(r));
      json j = json::parse(r.out, nullptr, false);
      ASSERT_TRUE(j.is_object()) << r;
      std::string id = j["id"], secret = j["token"];
      EXPECT_TRUE(created.emplace(id, secret).second) << "duplicate id " << id;
      EXPECT_TRUE(secrets.insert(secret).second) << "duplicate secret";
    }
  }
  const int successes = static_cast<int>(created.size());
  EXPECT_EQ(successes + locked, kWorkers * kPerWorker);
  EXPECT_GT(successes, 0);
  // Four writers of a few milliseconds each stay far inside a 5 s busy timeout.
  EXPECT_EQ(locked, 0) << "some writers gave up on the lock";
  RecordProperty("successes", successes);
  RecordProperty("lock_failures", locked);

  // Nothing lost: the list holds exactly the tokens that were reported created.
  json list = gh_.Json(kOwner, {"token", "list"});
  ASSERT_TRUE(list.is_array());
  std::set<std::string> listed;
  for (const auto& t : list) listed.insert(t["id"].get<std::string>());
  std::set<std::string> reported;
  for (const auto& [id, secret] : created) reported.insert(id);
  EXPECT_EQ(listed, reported);
  EXPECT_EQ(QueryInt(gh_.store, "SELECT count(*) FROM tokens"), successes);
  // One audit record per creation, none lost either.
  EXPECT_EQ(QueryInt(gh_.store,
                     "SELECT count(*) FROM audit_log WHERE action = 'token.create' "
                     "AND decision = 'allow' AND id > " +
                         std::to_string(before.last_audit_id)),
            successes);

  // Each returned token verifies as itself (checked by four processes at once too).
  std::vector<std::pair<std::string, std::string>> all(created.begin(), created.end());
  std::atomic<size_t> next{0};
  std::vector<std::vector<ProcessResult>> verified(kWorkers);
  workers.clear();
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      for (size_t i; (i = next.fetch_add(1)) < all.size();)
        verified[w].push_back(gh_.Run({"token", "verify", all[i].second}));
    });
  }
  for (auto& t : workers) t.join();
  size_t active = 0;
  for (const auto& list_w : verified) {
    for (const ProcessResult& r : list_w) {
      ASSERT_TRUE(Succeeded(r));
      json j = json::parse(r.out, nullptr, false);
      ASSERT_TRUE(j.is_object()) << r;
      EXPECT_EQ(j["active"], true);
      std::string id = j["token_id"];
      auto it = created.find(id);
      ASSERT_NE(it, created.end()) << id;
      EXPECT_NE(r.CommandLine().find(it->second), std::string::npos)
          << "verify reported " << id << " for another token";
      ++active;
    }
  }
  EXPECT_EQ(active, all.size());
}

}  // namespace
}  // namespace gatehouse::testing
