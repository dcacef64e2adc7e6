// API tokens: minting, format checks and hashing.
//
// A token secret looks like
//
//   gat_ + 30 base62 characters of randomness + 6 base62 characters of checksum
//
// 40 characters in all, alphabet [0-9A-Za-z] after the prefix. The 30 random
// characters are drawn uniformly (rejection sampling) from OpenSSL's CSPRNG,
// 30 * log2(62) = 178.6 bits. The checksum is the CRC-32 (IEEE 802.3, as zlib)
// of the first 34 characters (`gat_` + body), written as a fixed-width
// 6-character base62 number, most significant digit first. A mistyped or
// truncated token is refused by CheckTokenFormat without touching any store:
// every single-character substitution is caught.
//
// Secret scanners recognise a leaked token with
//
//   \bgat_[0-9A-Za-z]{36}\b
//
// and may confirm it offline by recomputing the CRC-32.
//
// Besides the secret, every token has a short public id, `tok_` + 12 base62
// characters (71 bits, random), shown by `token list` and used by
// `token revoke`. The id is not secret; the secret never leaves MintToken's
// caller, and the store keeps only HashToken(secret) (SHA-256, 32 bytes).
//
// Thread safety: every function here is safe to call from any number of
// threads at once. HashToken keeps one OpenSSL digest context per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gatehouse/status.h"
#include "gatehouse/token_record.h"

namespace gatehouse {

inline constexpr std::string_view kTokenPrefix = "gat_";
inline constexpr size_t kTokenRandomChars = 30;   // 178.6 bits
inline constexpr size_t kTokenChecksumChars = 6;  // CRC-32 in base62, fixed width
inline constexpr size_t kTokenLength =
    kTokenPrefix.size() + kTokenRandomChars + kTokenChecksumChars;  // 40

inline constexpr std::string_view kTokenIdPrefix = "tok_";
inline constexpr size_t kTokenIdRandomChars = 12;                                      // 71.4 bits
inline constexpr size_t kTokenIdLength = kTokenIdPrefix.size() + kTokenIdRandomChars;  // 16

// The regular expression (ECMAScript / PCRE / RE2) that finds token secrets in text.
inline constexpr std::string_view kTokenRegex = R"(\bgat_[0-9A-Za-z]{36}\b)";

// A freshly minted token. `secret` is shown to the creator exactly once and
// must never be stored, logged or put in an error message.
struct MintedToken {
  std::string secret;  // gat_..., kTokenLength characters
  std::string id;      // tok_..., kTokenIdLength characters
  TokenHash hash;      // HashToken(secret)
};

// Mints a new token: a random secret, a random public id, and the secret's hash.
// Fails (Internal) only when the CSPRNG cannot deliver (RAND_bytes failed);
// never returns a weak token.
Result<MintedToken> MintToken();

// Mints only a public id (tok_ + 12 random base62 characters). Fails as MintToken.
Result<std::string> MintTokenId();

// True when `token` has exactly the shape of a token secret: the prefix, the
// length, the alphabet and a matching checksum. Touches no store and no
// OpenSSL; does not allocate. It says nothing about whether the token exists.
bool CheckTokenFormat(std::string_view token) noexcept;

// True when `id` has the shape of a public token id (tok_ + 12 base62).
bool CheckTokenIdFormat(std::string_view id) noexcept;

// SHA-256 of `token` (any text; callers normally check the format first).
// Reuses a per-thread OpenSSL context (about 4x faster than a one-shot digest).
// SHA-256 over memory cannot fail short of OpenSSL running out of memory;
// then the process aborts with a message, as on any allocation failure.
TokenHash HashToken(std::string_view token) noexcept;

// Lower-case hex of a hash, 64 characters.
std::string HashToHex(const TokenHash& hash);

// Compares two hashes in constant time (CRYPTO_memcmp). Use it for every
// comparison of a stored hash with a presented one.
bool HashEquals(const TokenHash& a, const TokenHash& b) noexcept;

// What may be shown of a token in logs, audit records and errors: its first
// 8 characters and an ellipsis ("gat_AbCd..."), or "<malformed token>" for
// anything that does not start with gat_ or is too short to be a token.
// Never reveals more than 4 random characters.
std::string RedactToken(std::string_view token);

namespace internal {
// CRC-32 (IEEE 802.3, reflected, as zlib's crc32()); exposed for tests.
uint32_t Crc32(std::string_view data) noexcept;
// HashToken done the slow way, a one-shot EVP_Digest with EVP_sha256() (a new
// context and an implicit algorithm fetch per call); for tests and benchmarks.
TokenHash HashTokenOneShot(std::string_view token) noexcept;
}  // namespace internal

}  // namespace gatehouse
