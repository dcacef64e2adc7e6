#include "analysis/cells.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "gatehouse/policy.h"

namespace gatehouse::internal {

uint64_t CellProduct(const std::vector<uint32_t>& sizes) {
  uint64_t n = 1;
  for (uint32_t s : sizes) n = s != 0 && n > UINT64_MAX / s ? UINT64_MAX : n * s;
  return n;
}

std::vector<std::vector<uint32_t>> AllCells(const std::vector<uint32_t>& sizes) {
  std::vector<std::vector<uint32_t>> out;
  std::vector<uint32_t> cls(sizes.size(), 0);
  for (uint32_t s : sizes)
    if (s == 0) return out;
  while (true) {
    out.push_back(cls);
    size_t i = sizes.size();
    while (i > 0 && ++cls[i - 1] == sizes[i - 1]) cls[--i] = 0;
    if (i == 0) return out;
  }
}

namespace {

// Mixed-radix code of a cell, for set membership.
uint64_t Encode(const std::vector<Axis>& axes, const std::vector<uint32_t>& cell) {
  uint64_t code = 0;
  for (size_t a = 0; a < axes.size(); ++a) code = code * axes[a].size() + cell[a];
  return code;
}

// Calls f(cell) for every cell of a cube; stops early when f returns false.
template <typename F>
bool ForEachInCube(const Cube& cube, F&& f) {
  std::vector<std::vector<uint32_t>> members(cube.size());
  std::vector<uint32_t> sizes;
  for (size_t a = 0; a < cube.size(); ++a) {
    for (uint32_t v = 0; v < cube[a].size(); ++v)
      if (cube[a][v]) members[a].push_back(v);
    sizes.push_back(static_cast<uint32_t>(members[a].size()));
  }
  std::vector<uint32_t> cell(cube.size());
  for (const auto& idx : AllCells(sizes)) {
    for (size_t a = 0; a < cube.size(); ++a) cell[a] = members[a][idx[a]];
    if (!f(cell)) return false;
  }
  return true;
}

uint64_t CubeSize(const Cube& c) {
  uint64_t n = 1;
  for (const auto& axis : c) n *= static_cast<uint64_t>(std::count(axis.begin(), axis.end(), 1));
  return n;
}

// Espresso's expand and irredundant steps: grow each cube along every axis
// while it stays inside the cell set (cubes may then overlap), and drop the
// cubes the others already cover. Fewer, larger conditions read better.
std::vector<Cube> Simplify(const std::vector<Axis>& axes, const std::vector<std::vector<uint32_t>>& cells,
                           std::vector<Cube> cubes) {
  constexpr uint64_t kBudget = 2'000'000;  // cell checks; beyond it, keep the merge as is
  uint64_t spent = 0;
  std::set<uint64_t> in;
  for (const auto& c : cells) in.insert(Encode(axes, c));
  for (Cube& cube : cubes) {
    for (size_t a = 0; a < axes.size(); ++a) {
      for (uint32_t v = 0; v < cube[a].size(); ++v) {
        if (cube[a][v]) continue;
        Cube probe = cube;
        std::fill(probe[a].begin(), probe[a].end(), 0);
        probe[a][v] = 1;
        spent += CubeSize(probe);
        if (spent > kBudget) return cubes;
        bool inside = ForEachInCube(probe, [&](const std::vector<uint32_t>& cell) { return in.count(Encode(axes, cell)) > 0; });
        if (inside) cube[a][v] = 1;
      }
    }
  }
  std::sort(cubes.begin(), cubes.end());
  cubes.erase(std::unique(cubes.begin(), cubes.end()), cubes.end());
  // Largest first, so the small ones are the ones found redundant.
  std::stable_sort(cubes.begin(), cubes.end(), [](const Cube& x, const Cube& y) { return CubeSize(x) > CubeSize(y); });
  std::vector<Cube> kept;
  for (size_t i = cubes.size(); i-- > 0;) {
    bool covered = ForEachInCube(cubes[i], [&](const std::vector<uint32_t>& cell) {
      auto has = [&](const Cube& c) {
        for (size_t a = 0; a < c.size(); ++a)
          if (!c[a][cell[a]]) return false;
        return true;
      };
      for (size_t j = 0; j < cubes.size(); ++j)
        if (j != i && !cubes[j].empty() && has(cubes[j])) return true;
      return false;
    });
    if (covered) cubes[i].clear();  // removed; the others still cover its cells
  }
  for (auto& c : cubes)
    if (!c.empty()) kept.push_back(std::move(c));
  std::reverse(kept.begin(), kept.end());
  return kept;
}

}  // namespace

std::vector<Cube> MergeCells(const std::vector<Axis>& axes, const std::vector<std::vector<uint32_t>>& cells) {
  std::vector<Cube> cubes;
  cubes.reserve(cells.size());
  for (const auto& cell : cells) {
    Cube c(axes.size());
    for (size_t a = 0; a < axes.size(); ++a) {
      c[a].assign(axes[a].size(), 0);
      c[a][cell[a]] = 1;
    }
    cubes.push_back(std::move(c));
  }
  // Unite along one axis at a time until nothing changes. For cells that form
  // a product set this ends in a single cube.
  bool changed = true;
  while (changed && cubes.size() > 1) {
    changed = false;
    for (size_t axis = 0; axis < axes.size(); ++axis) {
      std::map<Cube, Cube> by_rest;  // the cube without this axis → united cube
      std::vector<Cube> order;
      for (Cube& c : cubes) {
        Cube key = c;
        key[axis].clear();
        auto it = by_rest.find(key);
        if (it == by_rest.end()) {
          by_rest.emplace(key, c);
          order.push_back(std::move(key));
        } else {
          for (size_t i = 0; i < c[axis].size(); ++i) it->second[axis][i] |= c[axis][i];
          changed = true;
        }
      }
      std::vector<Cube> next;
      next.reserve(order.size());
      for (const Cube& key : order) next.push_back(std::move(by_rest[key]));
      cubes = std::move(next);
    }
  }
  return Simplify(axes, cells, std::move(cubes));
}

namespace {

std::string JoinOr(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += i + 1 == v.size() ? " or " : ", ";
    s += v[i];
  }
  return s;
}

std::string IntText(const Axis& a, int64_t v) {
  std::string s = std::to_string(v);
  if (a.seconds && v > 0) {
    std::string d = FormatDuration(v);
    if (d != s + "s") s += " (" + d + ")";
  }
  return s;
}

std::string DescribeAxis(const Axis& a, const std::vector<uint8_t>& set) {
  std::vector<size_t> on;
  for (size_t i = 0; i < set.size(); ++i)
    if (set[i]) on.push_back(i);
  switch (a.kind) {
    case Axis::Kind::kKind:
      return on.size() == 1 ? (on[0] == 0 ? std::string("human user") : std::string("API user")) : "";
    case Axis::Kind::kBool:
      return on.size() == 1 ? a.name + (on[0] ? " on" : " off") : "";
    case Axis::Kind::kEnum: {
      std::vector<std::string> names;
      for (size_t i : on) names.push_back(a.names[i]);
      return JoinOr(names) + " " + a.name;
    }
    case Axis::Kind::kRole: {
      // Ranked: say "≥ X" for an upward-closed set of real roles.
      bool upward = on.back() == a.names.size() - 1 && on.front() > 0 &&
                    on.size() == a.names.size() - on.front();
      if (on.size() == 1) return a.name + " " + a.names[on[0]];
      if (upward) return a.name + " ≥ " + a.names[on.front()];
      bool downward = on.front() == 0 && on.size() == on.back() + 1;
      if (downward) return a.name + " ≤ " + a.names[on.back()];
      std::vector<std::string> names;
      for (size_t i : on) names.push_back(a.names[i]);
      return a.name + " " + JoinOr(names);
    }
    case Axis::Kind::kInt: {
      // Merge adjacent classes into intervals.
      std::vector<std::string> parts;
      const int64_t kMin = std::numeric_limits<int64_t>::min(), kMax = std::numeric_limits<int64_t>::max();
      for (size_t i = 0; i < on.size();) {
        size_t j = i;
        while (j + 1 < on.size() && on[j + 1] == on[j] + 1) ++j;
        int64_t lo = a.lows[on[i]];
        int64_t hi = on[j] + 1 < a.lows.size() ? a.lows[on[j] + 1] - 1 : kMax;
        if (lo == hi) parts.push_back("= " + IntText(a, lo));
        else if (lo == kMin) parts.push_back("≤ " + IntText(a, hi));
        else if (hi == kMax) parts.push_back("> " + IntText(a, lo - 1));
        else if (a.seconds && lo - 1 > 0 && FormatDuration(lo - 1).back() != 's')
          parts.push_back("> " + IntText(a, lo - 1) + " and ≤ " + IntText(a, hi));  // "> 90d and ≤ 365d"
        else parts.push_back("in [" + IntText(a, lo) + ", " + IntText(a, hi) + "]");
        i = j + 1;
      }
      return a.name + " " + JoinOr(parts);
    }
  }
  return "";
}

}  // namespace

std::string DescribeCube(const std::vector<Axis>& axes, const Cube& cube) {
  std::string out;
  for (size_t a = 0; a < axes.size(); ++a) {
    bool full = std::all_of(cube[a].begin(), cube[a].end(), [](uint8_t x) { return x != 0; });
    if (full) continue;
    std::string s = DescribeAxis(axes[a], cube[a]);
    if (s.empty()) continue;
    out += (out.empty() ? "" : ", ") + s;
  }
  return out;
}

}  // namespace gatehouse::internal
