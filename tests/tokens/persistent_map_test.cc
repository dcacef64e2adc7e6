#include "gatehouse/persistent_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace gatehouse {
namespace {

// A hash that keeps only some bits of the key, so that generated keys
// collide on whole levels of the trie and, with kBits 0, on the whole 64-bit
// hash (the buckets below the last level).
template <int kBitsKept>
struct FewBitsHash {
  size_t operator()(uint64_t key) const noexcept {
    if constexpr (kBitsKept == 0) {
      return 0x5555;
    } else {
      const uint64_t spread = key * 0x9e3779b97f4a7c15ULL;
      return static_cast<size_t>(kBitsKept >= 64 ? spread : spread >> (64 - kBitsKept));
    }
  }
};

// Against std::map over generated sets and replacements, every version kept:
// each answers for its own keys, and for no other, after every later With().
template <class Hash>
void CheckAgainstAMap(uint64_t seed, size_t steps, uint64_t key_range) {
  using Map = PersistentMap<uint64_t, std::string, Hash>;
  std::mt19937_64 rng(seed);
  std::vector<Map> versions{Map{}};
  std::vector<std::map<uint64_t, std::string>> expected{{}};
  for (size_t step = 0; step < steps; ++step) {
    const uint64_t key = rng() % key_range;
    std::string value = "v" + std::to_string(step);
    versions.push_back(versions.back().With(key, value));
    expected.push_back(expected.back());
    expected.back()[key] = value;
  }
  for (size_t v = 0; v < versions.size(); v += 1 + v / 16) {
    const Map& map = versions[v];
    const auto& want = expected[v];
    ASSERT_EQ(map.size(), want.size()) << "version " << v;
    for (uint64_t key = 0; key < key_range; ++key) {
      const std::string* got = map.Find(key);
      auto it = want.find(key);
      if (it == want.end()) {
        EXPECT_EQ(got, nullptr) << "version " << v << " key " << key;
      } else {
        ASSERT_NE(got, nullptr) << "version " << v << " key " << key;
        EXPECT_EQ(*got, it->second) << "version " << v << " key " << key;
      }
    }
    std::map<uint64_t, std::string> visited;
    map.ForEach([&](uint64_t k, const std::string& value) {
      EXPECT_TRUE(visited.emplace(k, value).second) << k;
    });
    EXPECT_EQ(visited, want) << "version " << v;
  }
}

TEST(PersistentMap, EveryVersionAnswersAsAMapWithWellSpreadHashes) {
  CheckAgainstAMap<FewBitsHash<64>>(1, 3000, 2000);
}

TEST(PersistentMap, EveryVersionAnswersAsAMapWhenHashesShareLevels) {
  CheckAgainstAMap<FewBitsHash<7>>(2, 1500, 600);  // 128 hashes: deep, shared paths
}

TEST(PersistentMap, EveryVersionAnswersAsAMapWhenEveryHashIsTheSame) {
  CheckAgainstAMap<FewBitsHash<0>>(3, 300, 60);  // one bucket below the last level
}

TEST(PersistentMap, AnEmptyMapFindsNothingAndVisitsNothing) {
  PersistentMap<uint64_t, int, FewBitsHash<64>> map;
  EXPECT_TRUE(map.empty());
  EXPECT_EQ(map.Find(0), nullptr);
  int visits = 0;
  map.ForEach([&](uint64_t, int) { ++visits; });
  EXPECT_EQ(visits, 0);
}

}  // namespace
}  // namespace gatehouse
