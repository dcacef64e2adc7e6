// The `when` expression language: tokenizer, parser and type checker.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/model.h"

namespace gatehouse::internal {

struct ExprError {
  size_t offset = 0;  // byte offset inside the expression text
  std::string message;
};

// Parses and type-checks `text` against the model's roles, types and
// settings and the action's parameters. Returns nullptr and appends to
// `errors` (every problem found, with offsets) when the text is not a valid
// condition.
std::unique_ptr<Expr> ParseExpr(std::string_view text, const PolicyModel& model,
                                const ActionModel& action, std::vector<ExprError>* errors);

}  // namespace gatehouse::internal
