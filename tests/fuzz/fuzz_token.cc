// Arbitrary bytes as a presented token: a token failing the format or the
// checksum is refused before any hashing or lookup (kMalformed), and no
// garbage is ever active.
#include <string>

#include "fuzz_check.h"
#include "gatehouse/token_index.h"
#include "gatehouse/tokens.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string token(reinterpret_cast<const char*>(data), size);
  static const std::shared_ptr<const gatehouse::TokenIndex> index = [] {
    std::vector<gatehouse::TokenRecord> records(1);
    auto minted = gatehouse::MintToken();
    records[0].token_id = minted->id;
    records[0].hash = minted->hash;
    records[0].expires_at = 4102444800;
    return gatehouse::TokenIndex::Build(records);
  }();
  bool well_formed = gatehouse::CheckTokenFormat(token);
  if (well_formed) {
    FUZZ_CHECK(token.size() == gatehouse::kTokenLength);
    FUZZ_CHECK(token.rfind("gat_", 0) == 0);
  }
  gatehouse::TokenLookup l = index->Verify(token, 1767225600);
  if (!well_formed) FUZZ_CHECK(l.check == gatehouse::TokenCheck::kMalformed);
  FUZZ_CHECK(!l.active());  // the fuzzer cannot guess the one minted secret
  // What logs may show reveals at most "gat_" and 4 more characters.
  std::string shown = gatehouse::RedactToken(token);
  FUZZ_CHECK(shown == "<malformed token>" || (shown.size() <= 11 && token.rfind(shown.substr(0, 8), 0) == 0));
  return 0;
}
