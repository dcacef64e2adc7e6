// The compiler: a validated PolicyModel → CompiledPolicy (dense tables).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gatehouse/policy.h"
#include "policy/model.h"

namespace gatehouse::internal {

// Checks the limits the compiler needs (table sizes) and reports violations
// at the offending action or rule. Call after validation.
void CheckCompileLimits(const PolicyModel& model, std::vector<PolicyError>* errors);

// Compiles a validated model (CheckCompileLimits passed). `revision` is the
// canonical form's "sha256:..." digest.
std::shared_ptr<const CompiledPolicy> Compile(PolicyModel model, std::string revision);

}  // namespace gatehouse::internal
