// What the policy watchers (State for the live policy, Shadow for the
// candidate) compare between polls to notice an edit.
#pragma once

#include <string>
#include <vector>

namespace gatehouse::sidecar {

// Every file under `policy_path` and each of `invariants` (files or folders),
// with its size, mtime (ns) and inode, sorted: any edit, rename-over,
// addition or removal changes it. A missing path is listed as missing.
std::vector<std::string> PolicyFilesFingerprint(const std::string& policy_path,
                                                const std::vector<std::string>& invariants);

}  // namespace gatehouse::sidecar
