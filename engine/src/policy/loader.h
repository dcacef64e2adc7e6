// Loading policy files: gathering files, validation into a PolicyModel.
#pragma once

#include <string>
#include <vector>

#include "gatehouse/policy.h"
#include "policy/model.h"
#include "policy/yaml_reader.h"

namespace gatehouse::internal {

// The *.yaml files a --policy path names (a file, or a folder's top-level
// *.yaml/*.yml files, sorted), or an error.
std::vector<std::string> PolicyFiles(const std::string& path, std::vector<PolicyError>* errors);
// The policy test files of a --policy path: FOLDER/tests/*.yaml, or, when the
// path is a test file or a tests/ folder itself, those.
std::vector<std::string> PolicyTestFiles(const std::string& path);
// Reads a whole file; false with a positioned error when it cannot.
bool ReadFile(const std::string& path, std::string* out, std::vector<PolicyError>* errors);

// Validates parsed documents into a model (errors appended, unsorted).
bool BuildModel(const std::vector<YDoc>& docs, PolicyModel* model, std::vector<PolicyError>* errors);

// Sorts by file, line, column and removes exact duplicates.
void SortErrors(std::vector<PolicyError>* errors);

bool ValidName(std::string_view s);

}  // namespace gatehouse::internal
