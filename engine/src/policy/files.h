// Reading policy files: which files a --policy path names, and reading each
// one without blocking, hanging or reading more than the limits allow.
//
// The rule, for a folder (CONTRACT.md "Policy files"; README):
//   - policy files are its regular files (or symlinks to them) named
//     NAME.yaml or NAME.yml, the extension in any case (.YAML, .Yml), NAME not
//     starting with '.'; they are read in byte order of their names;
//   - tests/ and invariants/ are read by their own commands, never as policy;
//   - *.json files (the JSON Schemas editors read, as policies/ ships) and
//     hidden folders (.git, Kubernetes' ..data) are skipped silently;
//   - every other entry (a hidden file, another subfolder, a file with another
//     extension, a socket or FIFO) is skipped with a warning naming it;
//   - an entry with a YAML name that is not a regular file is an error.
// PATH itself must be a regular file (any name) or a folder: anything else
// (a FIFO, a device) is an error, found with stat() before any open, and
// files are opened O_NONBLOCK and checked again with fstat(), so nothing
// can make a load wait.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/policy.h"

namespace gatehouse::internal {

// True for NAME.yaml / NAME.yml, the extension in any case, NAME not hidden.
bool IsYamlName(std::string_view filename);

// The policy files `path` names (the file itself, or a folder's policy files,
// sorted). Problems are appended to `errors`, skipped entries to `warnings`
// (each names the entry, line 0).
std::vector<std::string> PolicyFiles(const std::string& path, std::vector<PolicyError>* errors,
                                     std::vector<PolicyError>* warnings);

// The policy test files of a --policy path: FOLDER/tests/*.yaml, or, when the
// path is a test file or a tests/ folder itself, those; the same rule.
std::vector<std::string> PolicyTestFiles(const std::string& path, std::vector<PolicyError>* errors,
                                         std::vector<PolicyError>* warnings);

// The invariant files of an --invariants path or a policy's invariants/
// folder: the file itself, or the folder's *.yaml and *.yml (the same rule).
std::vector<std::string> InvariantFiles(const std::string& path, std::vector<PolicyError>* errors,
                                        std::vector<PolicyError>* warnings);

// Reads a whole regular file of at most `limit` bytes; false with an error
// naming the file when it cannot (missing, unreadable, not a regular file,
// too large: checked before reading).
bool ReadFile(const std::string& path, size_t limit, std::string* out, std::vector<PolicyError>* errors);

}  // namespace gatehouse::internal
