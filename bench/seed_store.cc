// Fills a store with N tokens for one API user, fast (one transaction,
// straight through the Store API), for bench/load.sh's RSS measurement:
// minting 100,000 tokens through the CLI would take one process each. Also
// makes a bounded stream of changes for the memory-after-changes figure.
//
//   seed_store --store LOCATOR --apiuser NAME --count N [--expires-in-days D]
//   seed_store --store LOCATOR --apiuser NAME --churn N [--rate R] [--bulk K]
//
// LOCATOR is a SQLite path or a postgresql:// URI (OpenStore). --count
// prints one token secret (the last) on stdout so the caller can use it.
// --churn makes N commits, alternating a token's creation and its deletion
// (what `gatehouse token create` / `token revoke` commit), at most R a second
// (0: as fast as it can); then, with --bulk, one commit creating K tokens and
// one deleting them (2K overlay entries: past the compaction threshold when
// 2K > max(4096, tokens / 64), TokenView::CompactionDue). Prints "changes N" at the end.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gatehouse/store.h"
#include "gatehouse/tokens.h"

using namespace gatehouse;

namespace {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<NewToken> Mint(int64_t api_user_id, const std::string& name, long days) {
  auto minted = MintToken();
  if (!minted.ok()) return minted.status();
  NewToken t;
  t.id = minted->id;
  t.api_user_id = api_user_id;
  t.name = name;
  t.hash = minted->hash;
  t.created_at = Now();
  t.expires_at = t.created_at + days * 86400;
  t.created_by = "seed_store";
  return t;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "seed_store: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, api_user;
  long count = 0, days = 30, churn = 0, rate = 0, bulk = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--store"))
      path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--apiuser"))
      api_user = argv[i + 1];
    else if (!std::strcmp(argv[i], "--count"))
      count = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--expires-in-days"))
      days = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--churn"))
      churn = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rate"))
      rate = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--bulk"))
      bulk = std::atol(argv[i + 1]);
  }
  if (path.empty() || api_user.empty() || (count <= 0) == (churn <= 0) || rate < 0 || bulk < 0 ||
      churn > 10'000'000 || bulk > 10'000'000) {
    std::fprintf(stderr,
                 "usage: seed_store --store LOCATOR --apiuser NAME --count N [--expires-in-days D]\n"
                 "       seed_store --store LOCATOR --apiuser NAME --churn N [--rate R] [--bulk K]\n");
    return 2;
  }
  StoreOptions options;
  options.durable_commits = false;
  auto store = OpenStore(path, options);
  if (!store.ok()) return Fail(store.status());
  auto org = (*store)->TheOnlyOrganization();
  if (!org.ok()) return Fail(org.status());
  auto user = (*store)->FindApiUser(org->id, api_user);
  if (!user.ok()) return Fail(user.status());

  if (count > 0) {
    std::string last;
    Status s = (*store)->Transaction([&]() -> Status {
      for (long i = 0; i < count; ++i) {
        auto minted = MintToken();
        if (!minted.ok()) return minted.status();
        NewToken t;
        t.id = minted->id;
        t.api_user_id = user->id;
        t.name = "bench-" + std::to_string(i);
        t.hash = minted->hash;
        t.created_at = Now();
        t.expires_at = t.created_at + days * 86400;
        t.created_by = "seed_store";
        GATEHOUSE_RETURN_IF_ERROR((*store)->InsertToken(t));
        last = minted->secret;
      }
      return Status::Ok();
    });
    if (!s.ok()) return Fail(s);
    std::printf("%s\n", last.c_str());
    return 0;
  }

  // --churn: one commit per change, paced.
  const auto start = std::chrono::steady_clock::now();
  std::string last_id;
  long made = 0;
  for (long i = 0; i < churn; ++i) {
    if (last_id.empty()) {
      auto t = Mint(user->id, "churn", 1);
      if (!t.ok()) return Fail(t.status());
      Status s = (*store)->InsertToken(*t);
      if (!s.ok()) return Fail(s);
      last_id = t->id;
    } else {
      Status s = (*store)->DeleteToken(last_id);
      if (!s.ok()) return Fail(s);
      last_id.clear();
    }
    made = i + 1;
    if (rate > 0) std::this_thread::sleep_until(start + std::chrono::microseconds(made * 1'000'000 / rate));
  }
  if (bulk > 0) {
    std::vector<std::string> ids;
    ids.reserve(static_cast<size_t>(bulk));
    Status s = (*store)->Transaction([&]() -> Status {
      for (long i = 0; i < bulk; ++i) {
        auto t = Mint(user->id, "bulk-" + std::to_string(i), 1);
        if (!t.ok()) return t.status();
        GATEHOUSE_RETURN_IF_ERROR((*store)->InsertToken(*t));
        ids.push_back(t->id);
      }
      return Status::Ok();
    });
    if (!s.ok()) return Fail(s);
    s = (*store)->Transaction([&]() -> Status {
      for (const std::string& id : ids) GATEHOUSE_RETURN_IF_ERROR((*store)->DeleteToken(id));
      return Status::Ok();
    });
    if (!s.ok()) return Fail(s);
    made += 2;
  }
  std::printf("changes %ld\n", made);
  return 0;
}
