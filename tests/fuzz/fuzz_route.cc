// Arbitrary method and request target against the default policy's routes:
// a match names a real action and a non-empty workspace without '/'.
#include <string>

#include "fuzz_check.h"
#include "gatehouse/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const gatehouse::PolicyPtr policy = gatehouse::LoadPolicy(GATEHOUSE_SOURCE_DIR "/policies").policy;
  FUZZ_CHECK(policy != nullptr);
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string method = nl == std::string::npos ? "POST" : in.substr(0, nl);
  std::string target = nl == std::string::npos ? in : in.substr(nl + 1);
  auto m = policy->MatchRoute(method, target);
  if (m) {
    FUZZ_CHECK(policy->action(m->action) != nullptr);
    FUZZ_CHECK(!m->workspace.empty());
    FUZZ_CHECK(m->workspace.find('/') == std::string::npos);
    FUZZ_CHECK(method == "POST");
  }
  return 0;
}
