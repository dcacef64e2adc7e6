// A small positioned YAML tree, so that validation never sees yaml-cpp.
//
// Maps keep every entry in order, duplicates included (yaml-cpp accepts
// duplicate keys silently; validation reports them). Positions are 1-based.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gatehouse/policy.h"

namespace gatehouse::internal {

struct YEntry;

struct YNode {
  enum class Kind { kNull, kScalar, kSeq, kMap };
  Kind kind = Kind::kNull;
  std::string value;  // scalars
  bool quoted = false;  // a quoted or block scalar (never a bare word)
  int line = 0, column = 0;
  size_t offset = 0;  // byte offset of the node in its file
  std::vector<YNode> items;                       // sequences
  std::vector<YEntry> entries;                    // maps, in order

  bool IsScalar() const { return kind == Kind::kScalar; }
  bool IsMap() const { return kind == Kind::kMap; }
  bool IsSeq() const { return kind == Kind::kSeq; }
};

struct YEntry {
  YNode first;   // the key
  YNode second;  // the value
};

// A parsed file: its text (for positions inside scalars) and its root.
struct YDoc {
  std::string file;
  std::string text;
  std::vector<size_t> line_starts;
  YNode root;
  // The 1-based line and column of `offset` characters into scalar `n`'s
  // value, walking the source so folded and quoted scalars map exactly.
  std::pair<int, int> PosInScalar(const YNode& n, size_t offset) const;
  std::pair<int, int> LineCol(size_t byte) const;
};

// What one load may read, so that no input can make it slow or large. A
// hand-written policy is a few hundred nodes, a few levels deep, tens of KiB;
// the bench's generated 500-action policy is ~80,000 nodes.
inline constexpr size_t kMaxFileBytes = size_t{8} << 20;  // one file, checked before reading
inline constexpr size_t kMaxLoadBytes = size_t{8} << 20;  // every file of one load together
inline constexpr size_t kMaxLoadFiles = 1000;              // YAML files in one policy folder
inline constexpr size_t kMaxYamlNodes = 250'000;           // scalars, lists and maps of one load
inline constexpr int kMaxYamlDepth = 64;                   // nested lists and maps

// The node budget shared by the files of one load.
struct YamlBudget {
  size_t nodes_left = kMaxYamlNodes;
};

// Parses `text`; on a syntax error appends a positioned error and returns
// false. Before building anything it reads the event stream once and refuses,
// with a position, anchors and aliases (an alias bomb expands exponentially
// when loaded), nesting deeper than kMaxYamlDepth, and more nodes than the
// budget has left (a fresh budget when `budget` is null).
bool ReadYaml(const std::string& file, std::string text, YDoc* doc, std::vector<PolicyError>* errors,
              YamlBudget* budget = nullptr);

}  // namespace gatehouse::internal
