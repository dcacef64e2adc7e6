// Validation: parsed policy documents → a PolicyModel.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/policy.h"
#include "policy/model.h"
#include "policy/yaml_reader.h"

namespace gatehouse::internal {

// The defaults of the keys CONTRACT.md leaves optional.
inline constexpr const char* kDefaultGraphqlMessage =
    "Something unexpected happened. If this problem persists, please contact support@tray.io.";
// roles.organization, roles.workspace and workspace_types when not declared:
// the seed's (DESIGN.md).
const std::vector<std::string>& DefaultOrgRoles();
const std::vector<std::string>& DefaultWorkspaceRoles();
const std::vector<std::string>& DefaultWorkspaceTypes();

// Validates parsed documents into a model (errors appended, unsorted).
bool BuildModel(const std::vector<YDoc>& docs, PolicyModel* model, std::vector<PolicyError>* errors);

// Sorts by file, line, column and removes exact duplicates.
void SortErrors(std::vector<PolicyError>* errors);

bool ValidName(std::string_view s);

}  // namespace gatehouse::internal
