// Input-space helpers shared by the matrix and the diff: axes (attributes
// with their classes), cubes (a set of classes per axis), merging a set of
// cells into few cubes, and describing a cube in words.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gatehouse::internal {

struct Axis {
  enum class Kind { kKind, kRole, kEnum, kBool, kInt };
  Kind kind = Kind::kEnum;
  std::string name;                // "org role", "workspace role", "settings.x", "request.org_role"
  std::vector<std::string> names;  // value names (not for kInt)
  std::vector<int64_t> lows;       // kInt: lower bound of each class
  bool seconds = false;            // kInt: show durations too
  size_t size() const { return kind == Kind::kInt ? lows.size() : names.size(); }
};

// How many cells (classes of inputs) one analysis may enumerate: `policy
// diff` per action, `policy matrix` for the whole policy. Past it the
// analysis refuses with a message instead of eating memory and time.
inline constexpr uint64_t kMaxAnalysisCells = uint64_t{1} << 22;

// The product of `sizes`, saturating at UINT64_MAX.
uint64_t CellProduct(const std::vector<uint32_t>& sizes);

// Calls f(cell) for every combination of classes over `sizes`, the last axis
// fastest, without holding them all. Once when there are no axes.
template <typename F>
void ForEachCell(const std::vector<uint32_t>& sizes, F&& f) {
  std::vector<uint32_t> cls(sizes.size(), 0);
  for (uint32_t s : sizes)
    if (s == 0) return;
  while (true) {
    f(static_cast<const std::vector<uint32_t>&>(cls));
    size_t i = sizes.size();
    while (i > 0 && ++cls[i - 1] == sizes[i - 1]) cls[--i] = 0;
    if (i == 0) return;
  }
}

// A set of classes per axis.
using Cube = std::vector<std::vector<uint8_t>>;  // [axis][class] = member?

// Merges cells (each a class index per axis) into cubes: repeatedly unites
// cubes that differ along one axis only. Deterministic.
std::vector<Cube> MergeCells(const std::vector<Axis>& axes, const std::vector<std::vector<uint32_t>>& cells);

// Every combination of classes over `sizes`, the last axis fastest. One empty
// cell when there are no axes. Callers bound CellProduct(sizes) first.
std::vector<std::vector<uint32_t>> AllCells(const std::vector<uint32_t>& sizes);

// "org role ≥ admin, shared workspace"; "" when every axis is full.
std::string DescribeCube(const std::vector<Axis>& axes, const Cube& cube);

}  // namespace gatehouse::internal
