// Arbitrary bytes as a policy file: it loads, or yields positioned errors;
// never both, never neither, never a crash. A loaded policy decides.
#include <string>

#include "fuzz_check.h"
#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  gatehouse::PolicyLoad l = gatehouse::LoadPolicyFromString(text, "fuzz.yaml");
  FUZZ_CHECK(l.ok() != !l.errors.empty());
  for (const auto& e : l.errors) {
    FUZZ_CHECK(e.file == "fuzz.yaml");
    FUZZ_CHECK(e.line >= 1 && e.column >= 1);
    FUZZ_CHECK(!e.message.empty());
  }
  if (l.ok()) {
    const auto& p = *l.policy;
    FUZZ_CHECK(p.revision().rfind("sha256:", 0) == 0);
    gatehouse::Request r;
    for (size_t a = 0; a < p.actions().size(); ++a) {
      r.action = static_cast<gatehouse::ActionId>(a);
      for (int role = 0; role < 3; ++role) {
        r.org_role = static_cast<gatehouse::RoleId>(role);
        r.workspace_role = static_cast<gatehouse::RoleId>(role);
        gatehouse::Decision d = p.Decide(r);
        FUZZ_CHECK(d.action == r.action);
        (void)p.Explain(d);
      }
    }
    FUZZ_CHECK(gatehouse::DiffPolicies(p, p).equal());
  }
  return 0;
}
