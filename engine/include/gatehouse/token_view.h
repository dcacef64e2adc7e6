// TokenView: the tokens a sidecar verifies against — a big immutable
// TokenIndex loaded in full (the base) plus a small immutable overlay of the
// changes applied from the store's change feed since (ChangeBatch).
//
// Applying a change never rebuilds the base, nor copies the overlay: the
// overlay is persistent (PersistentMap), so Apply() shares it with the view
// it came from and copies only the trie paths the batch's keys pass
// through — a revocation costs O(log overlay), not O(tokens) or O(overlay).
// When the overlay grows past CompactionDue(), the owner loads a new base
// off the request path and calls Rebase(), which keeps only the overlay
// entries newer than the new base.
//
// Lookups: the overlay first (a token set or removed there wins), then the
// base; then the API user's state in the overlay (changed roles or
// workspace, or deleted: every token of a deleted API user is refused at
// once, before or without its own token rows). With an empty overlay
// Verify() costs what TokenIndex::Verify does.
//
// Every entry records the feed number it was read at. Rows are read as they
// are at the batch's head, so applying a batch twice, or applying changes a
// new base already holds, is harmless.
//
// Thread safety: immutable; share as shared_ptr<const TokenView>.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "gatehouse/persistent_map.h"
#include "gatehouse/store.h"
#include "gatehouse/token_index.h"

namespace gatehouse {

class TokenView {
 public:
  // A view of `base`, which holds the store's tokens as of feed number `head`.
  TokenView(std::shared_ptr<const TokenIndex> base, int64_t head);

  // As TokenIndex::Verify, over the base and the overlay.
  TokenLookup Verify(std::string_view token, int64_t now) const noexcept;

  // This view with `batch` applied (batch.after should be this view's head;
  // an older batch is harmless). Fails only on memory exhaustion.
  std::shared_ptr<const TokenView> Apply(const ChangeBatch& batch) const;

  // A view of `base` (loaded at feed number `base_head`) that keeps this
  // view's overlay entries read after `base_head`. The result's head is the
  // newer of the two.
  std::shared_ptr<const TokenView> Rebase(std::shared_ptr<const TokenIndex> base,
                                          int64_t base_head) const;

  // The feed number this view holds every change up to.
  int64_t head() const { return head_; }
  // The base, as loaded.
  const std::shared_ptr<const TokenIndex>& base() const { return base_; }
  // The feed number the base was loaded at.
  int64_t base_head() const { return base_head_; }
  // Tokens held (base + added − removed), for metrics.
  size_t size() const { return size_; }
  // Overlay entries (tokens and API users).
  size_t overlay_size() const;
  // True when the overlay is big enough that a new base is worth loading:
  // more than kMinOverlay entries and more than 1/kOverlayShare of the base.
  // What the bound trades is memory against full scans, not request time
  // (Apply's cost hardly grows with the overlay: bench/token_bench
  // BM_TokenViewApplyOne: 0.6 µs over 300, 4,096 or 15,625 entries, 1 µs
  // over 100,000): at 1,000,000 tokens the overlay holds up to 15,625
  // entries, ~7 MiB (~490 bytes an entry) beside the base's ~140, and at 20
  // changes a second a full scan (~1.5 s of one background thread) comes
  // every ~13 minutes.
  static constexpr size_t kMinOverlay = 4096;
  static constexpr size_t kOverlayShare = 64;
  bool CompactionDue() const;

 private:
  struct OverlayToken {
    int64_t seq = 0;       // the feed number it was read at
    bool removed = false;  // revoked or deleted
    std::string token_id;
    std::string name;
    int64_t created_at = 0;
    int64_t expires_at = 0;
    TokenPrincipal principal;  // as read with the token
  };
  struct OverlayPrincipal {
    int64_t seq = 0;
    bool removed = false;  // the API user was deleted
    TokenPrincipal principal;
  };
  // API user ids are small and dense; mixed so that the trie's levels
  // spread them (the splitmix64 finalizer).
  struct IdHasher {
    size_t operator()(int64_t id) const noexcept {
      uint64_t z = static_cast<uint64_t>(id) + 0x9e3779b97f4a7c15ULL;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      return static_cast<size_t>(z ^ (z >> 31));
    }
  };
  struct Overlay {
    PersistentMap<TokenHash, OverlayToken, TokenHashHasher> tokens;
    PersistentMap<int64_t, OverlayPrincipal, IdHasher> principals;
    bool empty() const noexcept { return tokens.empty() && principals.empty(); }
  };

  // Whether the token is held by `base_` as `overlay` amends it, before the
  // overlay's principals apply.
  bool Holds(const Overlay& overlay, const TokenHash& hash) const noexcept;

  std::shared_ptr<const TokenIndex> base_;
  Overlay overlay_;
  int64_t head_ = 0;
  int64_t base_head_ = 0;
  size_t size_ = 0;
};

}  // namespace gatehouse
