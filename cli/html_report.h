// Self-contained HTML review pages (`policy matrix --html`, `policy diff
// --html`): inline CSS and one inline script, no network, no external files —
// what a reviewer attaches to a pull request. Pure functions of the policies.
#pragma once

#include <string>

#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"

namespace gatehouse::cli {

// The role × action matrix, one table per workspace type and setting
// assignment; each cell says its verdict and, on hover, the deciding rule.
std::string MatrixHtml(const CompiledPolicy& policy, const Matrix& m);

// The matrix of `after` with every cell whose verdict differs from `before`
// highlighted (class "changed"; the old and new verdicts and deciding rules
// on hover), beside the list of changes `policy diff` prints. Columns are the
// principal groups of both policies refined together, so a cell is one set
// of principals that behave alike before and after.
std::string DiffHtml(const CompiledPolicy& before, const CompiledPolicy& after, const PolicyDiff& diff);

}  // namespace gatehouse::cli
