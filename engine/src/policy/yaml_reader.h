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

// Parses `text`; on a syntax error appends a positioned error and returns false.
bool ReadYaml(const std::string& file, std::string text, YDoc* doc, std::vector<PolicyError>* errors);

}  // namespace gatehouse::internal
