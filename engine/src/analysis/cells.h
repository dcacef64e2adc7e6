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
  std::string name;                // Every combination of classes over `sizes`, the last axis fastest. One empty
// cell when there are no axes.
std::vector<std::vector<uint32_t>> AllCells(const std::vector<uint32_t>& sizes);

// "org role", "workspace role", "settings.x", "request.org_role"
  std::vector<std::string> names;  // value names (not for kInt)
  std::vector<int64_t> lows;       // kInt: lower bound of each class
  bool seconds = false;            // kInt: show durations too
  size_t size() const { return kind == Kind::kInt ? lows.size() : names.size(); }
};

// A set of classes per axis.
using Cube = std::vector<std::vector<uint8_t>>;  // [axis][class] = member?

// Merges cells (each a class index per axis) into cubes: repeatedly unites
// cubes that differ along one axis only. Deterministic.
std::vector<Cube> MergeCells(const std::vector<Axis>& axes, const std::vector<std::vector<uint32_t>>& cells);

// Every combination of classes over `sizes`, the last axis fastest. One empty
// cell when there are no axes.
std::vector<std::vector<uint32_t>> AllCells(const std::vector<uint32_t>& sizes);

// "org role ≥ admin, shared workspace"; "" when every axis is full.
std::string DescribeCube(const std::vector<Axis>& axes, const Cube& cube);

}  // namespace gatehouse::internal
