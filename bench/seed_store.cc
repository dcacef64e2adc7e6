// Fills a store with N tokens for one API user, fast (one transaction,
// straight through the Store API), for bench/load.sh's RSS measurement:
// minting 100,000 tokens through the CLI would take one process each.
//
//   seed_store --store PATH --apiuser NAME --count N [--expires-in-days D]
//
// Prints one token secret (the last) on stdout so the caller can use it.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gatehouse/store.h"
#include "gatehouse/tokens.h"

using namespace gatehouse;

int main(int argc, char** argv) {
  std::string path, api_user;
  long count = 0, days = 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--store"))
      path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--apiuser"))
      api_user = argv[i + 1];
    else if (!std::strcmp(argv[i], "--count"))
      count = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--expires-in-days"))
      days = std::atol(argv[i + 1]);
  }
  if (path.empty() || api_user.empty() || count <= 0) {
    std::fprintf(stderr,
                 "usage: seed_store --store PATH --apiuser NAME --count N [--expires-in-days D]\n");
    return 2;
  }
  StoreOptions options;
  options.durable_commits = false;
  auto store = OpenStore(path, options);
  if (!store.ok()) {
    std::fprintf(stderr, "seed_store: %s\n", store.status().ToString().c_str());
    return 1;
  }
  auto org = (*store)->TheOnlyOrganization();
  if (!org.ok()) {
    std::fprintf(stderr, "seed_store: %s\n", org.status().ToString().c_str());
    return 1;
  }
  auto user = (*store)->FindApiUser(org->id, api_user);
  if (!user.ok()) {
    std::fprintf(stderr, "seed_store: %s\n", user.status().ToString().c_str());
    return 1;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
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
      t.created_at = now;
      t.expires_at = now + days * 86400;
      t.created_by = "seed_store";
      GATEHOUSE_RETURN_IF_ERROR((*store)->InsertToken(t));
      last = minted->secret;
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    std::fprintf(stderr, "seed_store: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s\n", last.c_str());
  return 0;
}
