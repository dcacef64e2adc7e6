// SQLite store benchmarks.
//
//   store_bench [--tokens=N] [--dir=DIR] [benchmark flags]
//
// Builds a store of N tokens (default 1,000,000) in one transaction, in a
// fresh directory under DIR (default /tmp, removed at exit), then measures:
// a lookup by hash (hit and miss), the per-request DataVersion call, the full
// scan the sidecar does to rebuild its TokenIndex, and token creation
// throughput with one token per transaction (durable and normal commits).
// The counter bytes_per_token is the store file's size divided by N.
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gatehouse/store.h"
#include "gatehouse/token_index.h"
#include "gatehouse/tokens.h"

namespace gatehouse {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1'767'225'600;

struct Setup {
  std::string dir;
  std::string path;
  int64_t tokens = 0;
  int64_t api_user_id = 0;
  double bytes_per_token = 0;
  std::vector<TokenHash> sample;  // hashes of stored tokens, random order
  std::unique_ptr<Store> store;
};

Setup* g_setup = nullptr;

void Die(const Status& s, const char* what) {
  std::fprintf(stderr, "store_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

std::unique_ptr<Setup> Build(const std::string& parent, int64_t tokens) {
  auto setup = std::make_unique<Setup>();
  std::string tmpl = parent + "/gatehouse-store-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  setup->dir = tmpl;
  setup->path = setup->dir + "/bench.db";
  setup->tokens = tokens;

  auto start = std::chrono::steady_clock::now();
  {
    auto created = CreateStore(setup->path);
    if (!created.ok()) Die(created.status(), "create");
    Store& store = **created;
    auto org = store.CreateOrganization("Acme");
    if (!org.ok()) Die(org.status(), "organization");
    std::vector<int64_t> api_users;
    constexpr int kWorkspaces = 100, kApiUsers = 10'000;
    std::vector<int64_t> workspaces;
    for (int w = 0; w < kWorkspaces; ++w) {
      auto ws = store.CreateWorkspace(org->id, "workspace-" + std::to_string(w), "shared", {});
      if (!ws.ok()) Die(ws.status(), "workspace");
      workspaces.push_back(ws->id);
    }
    Status s = store.Transaction([&]() -> Status {
      for (int a = 0; a < kApiUsers; ++a) {
        auto api = store.CreateApiUser(NewApiUser{workspaces[a % kWorkspaces],
                                                  "api-user-" + std::to_string(a), "viewer",
                                                  "contributor", "owner@example.com", kNow});
        if (!api.ok()) return api.status();
        api_users.push_back(api->id);
      }
      constexpr size_t kSample = 1 << 16;
      std::mt19937_64 rng(3);
      for (int64_t i = 0; i < tokens; ++i) {
        auto m = MintToken();
        if (!m.ok()) return m.status();
        GATEHOUSE_RETURN_IF_ERROR(store.InsertToken(
            NewToken{m->id, api_users[i % kApiUsers], "token-" + std::to_string(i % 1000), m->hash,
                     kNow, kNow + 365 * 86400 + (i % 86400), "owner@example.com"}));
        if (setup->sample.size() < kSample) {
          setup->sample.push_back(m->hash);
        } else {
          uint64_t j = rng() % static_cast<uint64_t>(i + 1);
          if (j < kSample) setup->sample[j] = m->hash;
        }
      }
      return Status::Ok();
    });
    if (!s.ok()) Die(s, "insert tokens");
    setup->api_user_id = api_users.front();
  }  // closing checkpoints the WAL into the main file
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::error_code ec;
  auto size = fs::file_size(setup->path, ec);
  setup->bytes_per_token = tokens > 0 ? static_cast<double>(size) / static_cast<double>(tokens) : 0;
  std::fprintf(stderr,
               "store_bench: %lld tokens inserted in one transaction in %.1f s; file %.1f MB, "
               "%.0f bytes per token\n",
               static_cast<long long>(tokens), secs, static_cast<double>(size) / 1e6,
               setup->bytes_per_token);
  std::shuffle(setup->sample.begin(), setup->sample.end(), std::mt19937_64(5));

  auto opened = OpenStore(setup->path, StoreOptions{.read_only = true});
  if (!opened.ok()) Die(opened.status(), "open");
  setup->store = std::move(opened).value();
  return setup;
}

void BM_FindTokenByHash(benchmark::State& state) {
  Store& store = *g_setup->store;
  size_t i = 0, found = 0;
  for (auto _ : state) {
    auto r = store.FindTokenByHash(g_setup->sample[i]);
    found += r.ok() ? 1 : 0;
    benchmark::DoNotOptimize(r);
    if (++i == g_setup->sample.size()) i = 0;
  }
  if (found != static_cast<size_t>(state.iterations())) state.SkipWithError("a token was missing");
  state.counters["tokens"] = static_cast<double>(g_setup->tokens);
  state.counters["bytes_per_token"] = g_setup->bytes_per_token;
}

void BM_FindTokenByHash_Unknown(benchmark::State& state) {
  Store& store = *g_setup->store;
  std::vector<TokenHash> strangers;
  for (int i = 0; i < 4096; ++i) strangers.push_back(MintToken().value().hash);
  size_t i = 0;
  for (auto _ : state) {
    auto r = store.FindTokenByHash(strangers[i]);
    benchmark::DoNotOptimize(r);
    if (++i == strangers.size()) i = 0;
  }
}

void BM_DataVersion(benchmark::State& state) {
  Store& store = *g_setup->store;
  for (auto _ : state) {
    auto v = store.DataVersion();
    benchmark::DoNotOptimize(v);
  }
}

void BM_RebuildTokenIndex(benchmark::State& state) {
  Store& store = *g_setup->store;
  size_t size = 0;
  for (auto _ : state) {
    TokenIndexBuilder builder;
    builder.Reserve(static_cast<size_t>(g_setup->tokens));
    Status s = store.ScanActiveTokens(kNow, [&builder](const TokenRecord& r) {
      builder.Add(r);
      return Status::Ok();
    });
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    auto index = builder.Build();
    size = index->size();
    benchmark::DoNotOptimize(index);
  }
  state.counters["tokens"] = static_cast<double>(size);
}

// One token per transaction (what `gatehouse token create` does), on a
// separate store so that the big one stays as measured.
void BM_CreateTokenPerTransaction(benchmark::State& state) {
  const bool durable = state.range(0) != 0;
  std::string path = g_setup->dir + (durable ? "/create-durable.db" : "/create-normal.db");
  fs::remove(path);
  fs::remove(path + "-wal");
  fs::remove(path + "-shm");
  auto created = CreateStore(path, StoreOptions{.durable_commits = durable});
  if (!created.ok()) {
    state.SkipWithError(created.status().ToString().c_str());
    return;
  }
  Store& store = **created;
  auto org = store.CreateOrganization("Acme");
  auto ws = store.CreateWorkspace(org->id, "ws", "shared", {});
  auto api = store.CreateApiUser(NewApiUser{ws->id, "bot", "viewer", "viewer", "x", kNow});
  for (auto _ : state) {
    Status s = store.Transaction([&]() -> Status {
      auto m = MintToken();
      if (!m.ok()) return m.status();
      return store.InsertToken(
          NewToken{m->id, api->id, "t", m->hash, kNow, kNow + 86400, "owner@example.com"});
    });
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(durable ? "synchronous=FULL" : "synchronous=NORMAL");
}

}  // namespace
}  // namespace gatehouse

int main(int argc, char** argv) {
  using namespace gatehouse;
  int64_t tokens = 1'000'000;
  std::string dir = "/tmp";
  // Take our own flags out before Google Benchmark sees the rest.
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--tokens=", 9) == 0) {
      tokens = std::strtoll(argv[i] + 9, nullptr, 10);
    } else if (std::strncmp(argv[i], "--dir=", 6) == 0) {
      dir = argv[i] + 6;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (tokens < 1) {
    std::fprintf(stderr, "store_bench: --tokens must be at least 1\n");
    return 2;
  }

  auto setup = Build(dir, tokens);
  g_setup = setup.get();
  const std::string n = std::to_string(tokens);
  // Wall-clock time throughout: a store call waits on locks and the disk.
  benchmark::RegisterBenchmark(("BM_FindTokenByHash/" + n).c_str(), BM_FindTokenByHash)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("BM_FindTokenByHash_Unknown/" + n).c_str(),
                               BM_FindTokenByHash_Unknown)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_DataVersion", BM_DataVersion)->UseRealTime();
  benchmark::RegisterBenchmark(("BM_RebuildTokenIndex/" + n).c_str(), BM_RebuildTokenIndex)
      ->Unit(benchmark::kMillisecond)
      ->Iterations(2)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_CreateTokenPerTransaction", BM_CreateTokenPerTransaction)
      ->ArgName("durable")
      ->Arg(1)
      ->Arg(0)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  setup->store.reset();
  std::error_code ec;
  fs::remove_all(setup->dir, ec);
  return 0;
}
