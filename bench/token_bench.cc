// Token micro-benchmarks: minting, the format check, hashing (per-thread
// context against a one-shot digest), TokenIndex::Verify over 1,000,000
// tokens, TokenView::Verify through an overlay, and TokenView::Apply of one
// change over an overlay of N entries (a SQLite sidecar's catch-up runs on
// the request path). Run: token_bench [--benchmark_repetitions=5 ...]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gatehouse/token_index.h"
#include "gatehouse/token_view.h"
#include "gatehouse/tokens.h"

namespace gatehouse {
namespace {

std::string AToken() { return MintToken().value().secret; }

void BM_MintToken(benchmark::State& state) {
  for (auto _ : state) {
    auto t = MintToken();
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_MintToken);

void BM_CheckTokenFormat(benchmark::State& state) {
  std::string t = AToken();
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.data());
    bool ok = CheckTokenFormat(t);
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_CheckTokenFormat);

void BM_CheckTokenFormat_Typo(benchmark::State& state) {
  std::string t = AToken();
  t[20] = t[20] == 'a' ? 'b' : 'a';
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.data());
    bool ok = CheckTokenFormat(t);
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_CheckTokenFormat_Typo);

void BM_HashToken_ReusedContext(benchmark::State& state) {
  std::string t = AToken();
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.data());
    TokenHash h = HashToken(t);
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_HashToken_ReusedContext);

void BM_HashToken_OneShotEVPDigest(benchmark::State& state) {
  std::string t = AToken();
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.data());
    TokenHash h = internal::HashTokenOneShot(t);
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_HashToken_OneShotEVPDigest);

// One index of state.range(0) tokens, built once per size and shared.
struct IndexFixture {
  std::shared_ptr<const TokenIndex> index;
  std::vector<std::string> secrets;  // a random sample of indexed tokens, shuffled
};

const IndexFixture& Fixture(size_t tokens) {
  static std::unique_ptr<IndexFixture> cached;
  static size_t cached_size = 0;
  if (cached && cached_size == tokens) return *cached;
  cached = std::make_unique<IndexFixture>();
  cached_size = tokens;
  TokenIndexBuilder builder;
  builder.Reserve(tokens);
  constexpr size_t kSample = 1 << 16;
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < tokens; ++i) {
    MintedToken m = MintToken().value();
    TokenRecord r;
    r.token_id = m.id;
    r.name = "token-" + std::to_string(i % 1000);
    r.hash = m.hash;
    r.created_at = 1'767'225'600;
    r.expires_at = r.created_at + 365 * 86400;
    r.api_user_id = static_cast<int64_t>(i % 10'000);
    r.api_user_name = "api-user-" + std::to_string(r.api_user_id);
    r.org_id = 1;
    r.org_role = "viewer";
    r.workspace_id = static_cast<int64_t>(i % 100);
    r.workspace_name = "workspace-" + std::to_string(r.workspace_id);
    r.workspace_type = "shared";
    r.workspace_role = "contributor";
    builder.Add(r);
    // Reservoir sample, so lookups hit the whole table, not just its start.
    if (cached->secrets.size() < kSample) {
      cached->secrets.push_back(m.secret);
    } else {
      size_t j = rng() % (i + 1);
      if (j < kSample) cached->secrets[j] = m.secret;
    }
  }
  std::shuffle(cached->secrets.begin(), cached->secrets.end(), rng);
  cached->index = builder.Build();
  return *cached;
}

void BM_TokenIndexVerify(benchmark::State& state) {
  const IndexFixture& f = Fixture(static_cast<size_t>(state.range(0)));
  const int64_t now = 1'767'225'600 + 60;
  size_t i = 0, active = 0;
  for (auto _ : state) {
    TokenLookup r = f.index->Verify(f.secrets[i], now);
    active += r.active() ? 1 : 0;
    benchmark::DoNotOptimize(r);
    if (++i == f.secrets.size()) i = 0;
  }
  if (active != static_cast<size_t>(state.iterations()))
    state.SkipWithError("a token did not verify");
  state.counters["tokens"] = static_cast<double>(f.index->size());
}
BENCHMARK(BM_TokenIndexVerify)->Arg(1'000'000)->Unit(benchmark::kNanosecond);

void BM_TokenIndexVerify_Unknown(benchmark::State& state) {
  const IndexFixture& f = Fixture(static_cast<size_t>(state.range(0)));
  std::vector<std::string> strangers;
  for (int i = 0; i < 4096; ++i) strangers.push_back(AToken());
  size_t i = 0;
  for (auto _ : state) {
    TokenLookup r = f.index->Verify(strangers[i], 0);
    benchmark::DoNotOptimize(r);
    if (++i == strangers.size()) i = 0;
  }
}
BENCHMARK(BM_TokenIndexVerify_Unknown)->Arg(1'000'000);

void BM_TokenIndexBuild(benchmark::State& state) {
  // Building from records already in memory (the sidecar's rebuild, minus SQLite).
  std::vector<TokenRecord> records(static_cast<size_t>(state.range(0)));
  std::mt19937_64 rng(11);
  for (size_t i = 0; i < records.size(); ++i) {
    TokenRecord& r = records[i];
    for (auto& b : r.hash) b = static_cast<uint8_t>(rng());
    r.token_id = "tok_" + std::to_string(100'000'000'000 + i);
    r.name = "token";
    r.expires_at = 1;
    r.api_user_id = static_cast<int64_t>(i % 10'000);
    r.api_user_name = "api-user";
  }
  for (auto _ : state) {
    auto index = TokenIndex::Build(records);
    benchmark::DoNotOptimize(index);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_TokenIndexBuild)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(3);

// A changed token as the feed reads it: what Apply copies per entry.
TokenRecord ChangedToken(uint64_t i) {
  TokenRecord r;
  MintedToken m = MintToken().value();
  r.hash = m.hash;
  r.token_id = m.id;
  r.name = "ci-deploy-" + std::to_string(i % 1000);
  r.created_at = 1'767'225'600;
  r.expires_at = r.created_at + 90 * 86400;
  r.api_user_id = static_cast<int64_t>(i % 100);
  r.api_user_name = "api-user-" + std::to_string(r.api_user_id);
  r.org_id = 1;
  r.org_role = "viewer";
  r.workspace_id = 7;
  r.workspace_name = "Marketing-Production";
  r.workspace_type = "shared";
  r.workspace_role = "contributor";
  return r;
}

// One more change applied to a view whose overlay holds state.range(0)
// tokens: the cost of one catch-up's token part. Up to the compaction
// threshold, max(4096, tokens / 64): 15,625 at 1,000,000 tokens, and past
// it while a compaction runs.
void BM_TokenViewApplyOne(benchmark::State& state) {
  auto base = std::make_shared<const TokenView>(std::make_shared<const TokenIndex>(), 0);
  ChangeBatch fill;
  fill.after = 0;
  fill.head = 1;
  for (int64_t i = 0; i < state.range(0); ++i) fill.tokens.push_back(ChangedToken(static_cast<uint64_t>(i)));
  std::shared_ptr<const TokenView> view = base->Apply(fill);
  ChangeBatch one;
  one.tokens.push_back(ChangedToken(999'999));
  int64_t head = 1;
  for (auto _ : state) {
    one.after = head;
    one.head = ++head;
    auto next = view->Apply(one);
    benchmark::DoNotOptimize(next);
  }
  state.counters["overlay"] = static_cast<double>(view->overlay_size());
}
// TokenView::Verify of a base token over 1,000,000 tokens with an overlay of
// state.range(0) other tokens: what the overlay adds to every request.
void BM_TokenViewVerify(benchmark::State& state) {
  const IndexFixture& f = Fixture(1'000'000);
  auto view = std::make_shared<const TokenView>(f.index, 0);
  ChangeBatch fill;
  fill.after = 0;
  fill.head = 1;
  for (int64_t i = 0; i < state.range(0); ++i)
    fill.tokens.push_back(ChangedToken(static_cast<uint64_t>(i)));
  if (!fill.tokens.empty()) view = view->Apply(fill);
  const int64_t now = 1'767'225'600 + 60;
  size_t i = 0, active = 0;
  for (auto _ : state) {
    TokenLookup r = view->Verify(f.secrets[i], now);
    active += r.active() ? 1 : 0;
    benchmark::DoNotOptimize(r);
    if (++i == f.secrets.size()) i = 0;
  }
  if (active != static_cast<size_t>(state.iterations()))
    state.SkipWithError("a token did not verify");
  state.counters["overlay"] = static_cast<double>(view->overlay_size());
}
BENCHMARK(BM_TokenViewVerify)->Arg(0)->Arg(15'625)->Unit(benchmark::kNanosecond);

BENCHMARK(BM_TokenViewApplyOne)
    ->Arg(300)
    ->Arg(4096)
    ->Arg(15'625)
    ->Arg(100'000)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace gatehouse

BENCHMARK_MAIN();
