// PersistentMap: an immutable hash map whose With() returns a new map and
// leaves the old one as it was, sharing everything but one root-to-leaf path
// with it (a hash array mapped trie, 32 ways per level, each level taking 5
// bits of the key's 64-bit hash). Setting one key copies at most one node per
// level — about log32(size) nodes of at most 32 pointers — whatever the
// map's size; a lookup follows the same path. Keys whose 64-bit hashes are
// equal share a bucket below the last level and are told apart by ==.
//
// TokenView keeps its overlay in two of these, so that applying one change
// from the feed costs O(log overlay) on the request path, not a copy of the
// overlay.
//
// There is no erase: the overlay records removals as entries of their own.
//
// Thread safety: immutable; a map and every map made from it may be read
// from any number of threads.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace gatehouse {

template <class K, class V, class Hash>
class PersistentMap {
 public:
  // The value stored for `key`, or null. Valid while this map (or any map
  // made from it that did not replace `key`) lives.
  const V* Find(const K& key) const noexcept {
    const uint64_t hash = Hash{}(key);
    const Node* node = root_.get();
    for (int shift = 0; node != nullptr; shift += kBits) {
      if (shift >= kHashBits) return FindInBucket(*node, key);
      const uint32_t bit = Bit(hash, shift);
      if (node->entry_map & bit) {
        const Entry& e = *node->entries[Index(node->entry_map, bit)];
        return e.hash == hash && e.key == key ? &e.value : nullptr;
      }
      if (!(node->child_map & bit)) return nullptr;
      node = node->children[Index(node->child_map, bit)].get();
    }
    return nullptr;
  }

  // This map with `key` set to `value` (added, or replacing what was there).
  PersistentMap With(K key, V value) const {
    auto entry =
        std::make_shared<const Entry>(Entry{Hash{}(key), std::move(key), std::move(value)});
    PersistentMap out;
    bool added = false;
    out.root_ = Insert(root_.get(), std::move(entry), 0, added);
    out.size_ = size_ + (added ? 1 : 0);
    return out;
  }

  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Calls f(key, value) for every entry, in no particular order.
  template <class F>
  void ForEach(F&& f) const {
    if (root_) Visit(*root_, f);
  }

 private:
  static constexpr int kBits = 5;
  static constexpr int kHashBits = 64;

  struct Entry {
    uint64_t hash;
    K key;
    V value;
  };
  // A trie node: for each of the 32 values of its 5 bits, nothing, one entry
  // or a child node; both vectors are in bit order. Below the last level a
  // node is a bucket: `entries` holds every key of one hash, unordered.
  struct Node {
    uint32_t entry_map = 0;
    uint32_t child_map = 0;
    std::vector<std::shared_ptr<const Entry>> entries;
    std::vector<std::shared_ptr<const Node>> children;
  };

  static uint32_t Bit(uint64_t hash, int shift) noexcept {
    return uint32_t{1} << ((hash >> shift) & 31);
  }
  static size_t Index(uint32_t map, uint32_t bit) noexcept {
    return static_cast<size_t>(std::popcount(map & (bit - 1)));
  }
  static const V* FindInBucket(const Node& bucket, const K& key) noexcept {
    for (const auto& e : bucket.entries) {
      if (e->key == key) return &e->value;
    }
    return nullptr;
  }

  // `node` (null: empty) with `entry` set, as a new node; the nodes below it
  // that the entry does not pass through are shared, not copied.
  static std::shared_ptr<const Node> Insert(const Node* node, std::shared_ptr<const Entry> entry,
                                            int shift, bool& added) {
    auto out = node ? std::make_shared<Node>(*node) : std::make_shared<Node>();
    if (shift >= kHashBits) {
      for (auto& e : out->entries) {
        if (e->key == entry->key) {
          e = std::move(entry);
          return out;
        }
      }
      out->entries.push_back(std::move(entry));
      added = true;
      return out;
    }
    const uint32_t bit = Bit(entry->hash, shift);
    if (out->child_map & bit) {
      auto& child = out->children[Index(out->child_map, bit)];
      child = Insert(child.get(), std::move(entry), shift + kBits, added);
      return out;
    }
    const size_t at = Index(out->entry_map, bit);
    if (!(out->entry_map & bit)) {
      out->entries.insert(out->entries.begin() + static_cast<std::ptrdiff_t>(at), std::move(entry));
      out->entry_map |= bit;
      added = true;
      return out;
    }
    if (out->entries[at]->hash == entry->hash && out->entries[at]->key == entry->key) {
      out->entries[at] = std::move(entry);
      return out;
    }
    // Two keys on one slot: both move down into a new child.
    std::shared_ptr<const Entry> resident = std::move(out->entries[at]);
    out->entries.erase(out->entries.begin() + static_cast<std::ptrdiff_t>(at));
    out->entry_map &= ~bit;
    bool unused = false;
    std::shared_ptr<const Node> child = Insert(nullptr, std::move(resident), shift + kBits, unused);
    child = Insert(child.get(), std::move(entry), shift + kBits, added);
    out->children.insert(
        out->children.begin() + static_cast<std::ptrdiff_t>(Index(out->child_map, bit)),
        std::move(child));
    out->child_map |= bit;
    return out;
  }

  template <class F>
  static void Visit(const Node& node, F& f) {
    for (const auto& e : node.entries) f(e->key, e->value);
    for (const auto& c : node.children) Visit(*c, f);
  }

  std::shared_ptr<const Node> root_;  // null: empty
  size_t size_ = 0;
};

}  // namespace gatehouse
