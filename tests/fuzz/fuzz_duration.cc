// Arbitrary text as a DURATION: parsed values are positive and format back
// to text that parses to the same value.
#include <string>

#include "fuzz_check.h"
#include "gatehouse/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto v = gatehouse::ParseDuration(text);
  if (v) {
    FUZZ_CHECK(*v > 0);
    auto again = gatehouse::ParseDuration(gatehouse::FormatDuration(*v));
    FUZZ_CHECK(again && *again == *v);
  }
  return 0;
}
