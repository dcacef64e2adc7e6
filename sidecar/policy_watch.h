// What the policy watchers (PolicyHolder for the live policy, Shadow for the
// candidate) compare between polls to notice an edit, and how they report a
// load they refuse.
#pragma once

#include <string>
#include <vector>

#include "gatehouse/policy.h"

namespace gatehouse::sidecar {

// Every file under `policy_path` and each of `invariants` (files or folders),
// with its size, mtime (ns) and inode, sorted: any edit, rename-over,
// addition or removal changes it. A missing path is listed as missing.
std::vector<std::string> PolicyFilesFingerprint(const std::string& policy_path,
                                                const std::vector<std::string>& invariants);

// After a poll saw the fingerprint change to `seen`: lets a writer finish,
// waiting in 50 ms steps (at most 10) until the files stop changing.
void WaitUntilPolicyFilesSettle(const std::string& policy_path,
                                const std::vector<std::string>& invariants,
                                std::vector<std::string> seen);

// A refused load's errors, one `file:line:col: message` per line.
std::string JoinPolicyErrors(const std::vector<PolicyError>& errors);

}  // namespace gatehouse::sidecar
