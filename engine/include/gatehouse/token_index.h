// TokenIndex: an in-memory map from token hash to the verified token, for the
// sidecar's hot path.
//
// Verify(token, now) checks the format (no hashing of garbage), hashes the
// token (SHA-256, per-thread context), looks the hash up in an open-addressing
// table keyed by the hash's first 8 bytes (SHA-256 output is uniform, so no
// further mixing is needed), confirms the full 32 bytes in constant time, and
// checks expiry. It does not allocate and takes no lock.
//
// Memory: per token a 72-byte entry, 16-32 bytes of table and its id and
// name text (about 130 MB for 1,000,000 tokens); the API user, workspace and
// roles are stored once per API user, not per token. Large tables are
// advised onto transparent huge pages (Linux), which saves TLB misses.
//
// Thread safety: a TokenIndex is immutable once built. Share it as
// shared_ptr<const TokenIndex> and read it from any number of threads; to see
// new tokens or revocations build a new one (TokenIndexBuilder, e.g. fed by
// Store::ScanActiveTokens) and swap the shared_ptr. A TokenIndexBuilder is
// used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gatehouse/tokens.h"

namespace gatehouse {

// A token found in an index. The views and the pointer point into the index
// and stay valid as long as the index does (hold the shared_ptr).
struct VerifiedToken {
  std::string_view token_id;  // public id, tok_...
  std::string_view name;
  int64_t created_at = 0;
  int64_t expires_at = 0;
  const TokenPrincipal* principal = nullptr;
};

// Why Verify accepted or refused a token. Logged by the sidecar; never told
// to the caller (CONTRACT.md: nothing about why a token is inactive leaks).
enum class TokenCheck : uint8_t {
  kActive = 0,  // known and not expired
  kMalformed,   // failed CheckTokenFormat: not hashed, not looked up
  kUnknown,     // well-formed but not in the index (never existed, revoked, deleted)
  kExpired,     // in the index but now >= expires_at
};

// "active", "malformed", "unknown", "expired".
std::string_view TokenCheckName(TokenCheck check) noexcept;

struct TokenLookup {
  TokenCheck check = TokenCheck::kMalformed;
  VerifiedToken token;  // filled when check is kActive or kExpired
  bool active() const { return check == TokenCheck::kActive; }
};

class TokenIndex {
 public:
  // An empty index: every Verify says kMalformed or kUnknown.
  TokenIndex();

  // Builds an index of `records` (e.g. Store::LoadActiveTokens). When two
  // records share a hash the first wins (the store's unique hash forbids it).
  // Fails only on memory exhaustion (std::bad_alloc).
  static std::shared_ptr<const TokenIndex> Build(const std::vector<TokenRecord>& records);

  // Verifies a presented token at time `now` (seconds since the epoch).
  // Returns kActive with the token filled in when the token is well-formed,
  // known, and now < expires_at; otherwise the reason it is not active.
  TokenLookup Verify(std::string_view token, int64_t now) const noexcept;

  // Looks a hash up without any expiry check: the token, or nullopt when the
  // hash is not in the index. Compares the full hash in constant time.
  std::optional<VerifiedToken> Find(const TokenHash& hash) const noexcept;

  // Number of tokens held.
  size_t size() const { return entries_.size(); }

 private:
  friend class TokenIndexBuilder;

  struct StrRef {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  struct Entry {
    TokenHash hash;
    int64_t created_at;
    int64_t expires_at;
    StrRef token_id;
    StrRef name;
    uint32_t principal;
  };
  struct Slot {
    uint64_t key;    // the hash's first 8 bytes
    uint32_t entry;  // index into entries_, kEmpty when free
  };
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;

  const Entry* FindEntry(const TokenHash& hash) const noexcept;
  VerifiedToken View(const Entry& e) const noexcept;
  std::string_view Str(StrRef r) const noexcept { return {strings_.data() + r.offset, r.length}; }

  std::vector<Entry> entries_;
  std::vector<TokenPrincipal> principals_;
  std::string strings_;      // token ids and names, back to back
  std::vector<Slot> slots_;  // power-of-two size, at most half full
  uint64_t mask_ = 0;
};

// Accumulates tokens one at a time (so a million tokens never sit in memory
// as TokenRecords at once), then builds a TokenIndex. Not thread-safe.
class TokenIndexBuilder {
 public:
  TokenIndexBuilder();
  // Expected number of tokens; optional, saves reallocations.
  void Reserve(size_t tokens);
  // Adds one token. Tokens of one API user should carry the same principal
  // fields; the first seen for an api_user_id is kept. Throws std::length_error
  // beyond 2^32 - 2 tokens or 4 GiB of ids and names (std::bad_alloc on
  // memory exhaustion), like a standard container.
  void Add(const TokenRecord& record);
  // Builds the index; the builder is left empty. Duplicate hashes: first wins.
  std::shared_ptr<const TokenIndex> Build();

 private:
  std::unique_ptr<TokenIndex> index_;
  std::unordered_map<int64_t, uint32_t> principal_by_api_user_;
};

}  // namespace gatehouse
