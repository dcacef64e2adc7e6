#include "gatehouse/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace gatehouse {
namespace {

constexpr char kBase62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// Character → base62 digit, or -1 for anything outside the alphabet.
constexpr std::array<int8_t, 256> MakeDigitTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 62; ++i) t[static_cast<unsigned char>(kBase62[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kDigit = MakeDigitTable();

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

// Appends `n` characters drawn uniformly from the base62 alphabet. Bytes of
// 248 and above are rejected so that `b % 62` carries no modulo bias
// (248 = 4 * 62).
bool AppendRandomBase62(std::string& out, size_t n) {
  unsigned char buf[64];
  size_t have = 0, pos = 0;
  while (n > 0) {
    if (pos == have) {
      if (RAND_bytes(buf, sizeof buf) != 1) {
        OPENSSL_cleanse(buf, sizeof buf);
        return false;
      }
      have = sizeof buf;
      pos = 0;
    }
    unsigned char b = buf[pos++];
    if (b >= 248) continue;
    out.push_back(kBase62[b % 62]);
    --n;
  }
  OPENSSL_cleanse(buf, sizeof buf);
  return true;
}

// Writes `value` as exactly kTokenChecksumChars base62 digits, most
// significant first. 62^6 > 2^32, so every CRC fits.
void AppendChecksum(std::string& out, uint32_t value) {
  char digits[kTokenChecksumChars];
  uint64_t v = value;
  for (size_t i = kTokenChecksumChars; i-- > 0;) {
    digits[i] = kBase62[v % 62];
    v /= 62;
  }
  out.append(digits, kTokenChecksumChars);
}

// The SHA-256 implementation, fetched once from the default provider. An
// explicit fetch avoids OpenSSL 3's implicit per-init algorithm lookup.
const EVP_MD* Sha256() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? static_cast<const EVP_MD*>(fetched) : EVP_sha256();
  }();
  return md;
}

struct CtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// One digest context per thread, reused: a one-shot EVP_Digest allocates and
// initialises a context on every call (~0.5 µs against ~0.13 µs, NOTES.md).
EVP_MD_CTX* ThreadContext() {
  thread_local std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx(EVP_MD_CTX_new());
  return ctx.get();
}

[[noreturn]] void DieOnDigestFailure() {
  std::fputs("gatehouse: fatal: OpenSSL SHA-256 failed (out of memory?)\n", stderr);
  std::abort();
}

}  // namespace

namespace internal {
uint32_t Crc32(std::string_view data) noexcept {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char ch : data) c = kCrcTable[(c ^ ch) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

TokenHash HashTokenOneShot(std::string_view token) noexcept {
  TokenHash out;
  unsigned int len = 0;
  if (EVP_Digest(token.data(), token.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    DieOnDigestFailure();
  }
  return out;
}
}  // namespace internal

Result<MintedToken> MintToken() {
  MintedToken t;
  t.secret.reserve(kTokenLength);
  t.secret.append(kTokenPrefix);
  if (!AppendRandomBase62(t.secret, kTokenRandomChars)) {
    OPENSSL_cleanse(t.secret.data(), t.secret.size());
    return Status::Internal("cannot mint a token: the system's random generator failed");
  }
  AppendChecksum(t.secret, internal::Crc32(t.secret));
  auto id = MintTokenId();
  if (!id.ok()) {
    OPENSSL_cleanse(t.secret.data(), t.secret.size());
    return id.status();
  }
  t.id = std::move(id).value();
  t.hash = HashToken(t.secret);
  return t;
}

Result<std::string> MintTokenId() {
  std::string id;
  id.reserve(kTokenIdLength);
  id.append(kTokenIdPrefix);
  if (!AppendRandomBase62(id, kTokenIdRandomChars)) {
    return Status::Internal("cannot mint a token id: the system's random generator failed");
  }
  return id;
}

bool CheckTokenFormat(std::string_view token) noexcept {
  if (token.size() != kTokenLength) return false;
  if (token.substr(0, kTokenPrefix.size()) != kTokenPrefix) return false;
  const size_t body_end = kTokenPrefix.size() + kTokenRandomChars;
  for (size_t i = kTokenPrefix.size(); i < body_end; ++i) {
    if (kDigit[static_cast<unsigned char>(token[i])] < 0) return false;
  }
  uint64_t sum = 0;
  for (size_t i = body_end; i < kTokenLength; ++i) {
    int d = kDigit[static_cast<unsigned char>(token[i])];
    if (d < 0) return false;
    sum = sum * 62 + static_cast<uint64_t>(d);
  }
  // A checksum above 2^32 - 1 cannot come from a CRC-32: refused by the compare.
  return sum == internal::Crc32(token.substr(0, body_end));
}

bool CheckTokenIdFormat(std::string_view id) noexcept {
  if (id.size() != kTokenIdLength) return false;
  if (id.substr(0, kTokenIdPrefix.size()) != kTokenIdPrefix) return false;
  for (size_t i = kTokenIdPrefix.size(); i < id.size(); ++i) {
    if (kDigit[static_cast<unsigned char>(id[i])] < 0) return false;
  }
  return true;
}

TokenHash HashToken(std::string_view token) noexcept {
  TokenHash out;
  unsigned int len = 0;
  EVP_MD_CTX* ctx = ThreadContext();
  if (ctx != nullptr && EVP_DigestInit_ex2(ctx, Sha256(), nullptr) == 1 &&
      EVP_DigestUpdate(ctx, token.data(), token.size()) == 1 &&
      EVP_DigestFinal_ex(ctx, out.data(), &len) == 1 && len == out.size()) {
    return out;
  }
  // The per-thread context could not be set up: fall back to a one-shot digest.
  if (EVP_Digest(token.data(), token.size(), out.data(), &len, Sha256(), nullptr) == 1 &&
      len == out.size()) {
    return out;
  }
  DieOnDigestFailure();
}

std::string HashToHex(const TokenHash& hash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(hash.size() * 2);
  for (uint8_t b : hash) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

bool HashEquals(const TokenHash& a, const TokenHash& b) noexcept {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string RedactToken(std::string_view token) {
  // Only something that starts like a token is partly shown: a stray secret
  // of another kind pasted by mistake is not echoed at all.
  constexpr size_t kShown = 8;
  if (token.size() < kTokenLength / 2 || token.substr(0, kTokenPrefix.size()) != kTokenPrefix) {
    return "<malformed token>";
  }
  std::string out(token.substr(0, kShown));
  out += "...";
  return out;
}

}  // namespace gatehouse
