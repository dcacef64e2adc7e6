// What the store keeps of a token: its hash (TokenHash), and the record a
// lookup returns (TokenRecord, TokenPrincipal). Plain values, shared by the
// store (gatehouse/store.h) and the token module (gatehouse/tokens.h, which
// computes the hash); nothing here needs OpenSSL or a database.
//
// Thread safety: plain values; TokenHashHasher is stateless.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace gatehouse {

// SHA-256 of a token's full text: the only form in which a token is stored.
using TokenHash = std::array<uint8_t, 32>;

// Hash functor for unordered containers keyed by TokenHash. SHA-256 output is
// already uniform, so the first 8 bytes are the hash.
struct TokenHashHasher {
  size_t operator()(const TokenHash& h) const noexcept {
    uint64_t v;
    std::memcpy(&v, h.data(), sizeof v);
    return static_cast<size_t>(v);
  }
};

// The principal a token acts as: its API user, the API user's workspace and
// roles (policy names, as stored). Shared by all tokens of one API user.
struct TokenPrincipal {
  int64_t api_user_id = 0;
  std::string api_user_name;
  int64_t org_id = 0;
  std::string org_role;
  int64_t workspace_id = 0;
  std::string workspace_name;
  std::string workspace_type;
  std::string workspace_role;
};

// Everything the store knows about one token, and everything needed to verify
// it and to decide for it: the token, its API user, and the API user's
// workspace and roles. Roles and types are the policy's names, as stored.
// Holds no secret.
struct TokenRecord {
  std::string token_id;  // public id, tok_...
  std::string name;      // the token's name, given at creation
  TokenHash hash{};
  int64_t created_at = 0;  // seconds since the Unix epoch
  int64_t expires_at = 0;  // the first second at which the token is no longer valid
  std::string created_by;  // email of the creator

  int64_t api_user_id = 0;
  std::string api_user_name;
  int64_t org_id = 0;
  std::string org_role;  // the API user's organization role
  int64_t workspace_id = 0;
  std::string workspace_name;
  std::string workspace_type;
  std::string workspace_role;  // the API user's role in its workspace

  // True when the token is expired at `now` (seconds since the epoch). A token
  // is valid while now < expires_at.
  bool IsExpiredAt(int64_t now) const { return now >= expires_at; }
};

}  // namespace gatehouse
