#include "sidecar/policy_watch.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>
#include <utility>

namespace gatehouse::sidecar {

std::vector<std::string> PolicyFilesFingerprint(const std::string& policy_path,
                                                const std::vector<std::string>& invariants) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  auto add = [&out](const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      out.push_back(path + " missing");
      return;
    }
    out.push_back(path + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) +
                  "." + std::to_string(st.st_mtim.tv_nsec) + " " + std::to_string(st.st_ino));
  };
  std::vector<std::string> roots = invariants;
  roots.insert(roots.begin(), policy_path);
  for (const std::string& root : roots) {
    std::error_code ec;
    if (fs::is_directory(root, ec)) {
      add(root);
      for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
           !ec && it != end; it.increment(ec)) {
        add(it->path().string());
      }
    } else {
      add(root);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void WaitUntilPolicyFilesSettle(const std::string& policy_path,
                                const std::vector<std::string>& invariants,
                                std::vector<std::string> seen) {
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<std::string> again = PolicyFilesFingerprint(policy_path, invariants);
    if (again == seen) return;
    seen = std::move(again);
  }
}

std::string JoinPolicyErrors(const std::vector<PolicyError>& errors) {
  std::string out;
  for (const PolicyError& e : errors) {
    if (!out.empty()) out += '\n';
    out += e.ToString();
  }
  return out;
}

}  // namespace gatehouse::sidecar
