// Arbitrary text as a `when` expression over a fixed model: it parses or
// yields errors with offsets inside the text; a parsed expression prints in a
// canonical form that parses back to the same canonical form (round trip).
#include <string>

#include "fuzz_check.h"
#include "policy/expr.h"

using namespace gatehouse;
using namespace gatehouse::internal;

static const PolicyModel& Model() {
  static const PolicyModel m = [] {
    PolicyModel m;
    m.name = "fuzz";
    m.org_roles = {"none", "viewer", "contributor", "admin", "owner"};
    m.ws_roles = {"none", "viewer", "contributor", "admin"};
    m.ws_types = {"personal", "organization", "shared"};
    m.settings = {{"toggle", false, ""}, {"other", true, ""}};
    return m;
  }();
  return m;
}

static const ActionModel& Action() {
  static const ActionModel a = [] {
    ActionModel a;
    a.name = "token.create";
    a.params = {{"lifetime_seconds", ValueType::kInt}, {"org_role", ValueType::kOrgRole}, {"flag", ValueType::kBool}};
    return a;
  }();
  return a;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<ExprError> errors;
  auto e = ParseExpr(text, Model(), Action(), &errors);
  FUZZ_CHECK((e != nullptr) == errors.empty());
  for (const auto& err : errors) FUZZ_CHECK(err.offset <= text.size());
  if (e) {
    std::string canon = ExprToString(Model(), Action(), *e);
    std::vector<ExprError> again_errors;
    auto again = ParseExpr(canon, Model(), Action(), &again_errors);
    FUZZ_CHECK(again != nullptr);
    FUZZ_CHECK(ExprToString(Model(), Action(), *again) == canon);
    Request r;
    (void)Eval(*e, r);
  }
  return 0;
}
