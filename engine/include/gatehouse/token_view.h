// TokenView: the tokens a sidecar verifies against — a big immutable
// TokenIndex loaded in full (the base) plus a small immutable overlay of the
// changes applied from the store's change feed since (ChangeBatch).
//
// Applying a change never rebuilds the base: Apply() copies the overlay (at
// most kMaxOverlay entries before a compaction is due) and adds the batch,
// so a revocation costs O(overlay), not O(tokens). When the overlay grows past CompactionDue(),
// the owner loads a new base off the request path and calls Rebase(), which
// keeps only the overlay entries newer than the new base.
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
#include <unordered_map>

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
  // more than kMaxOverlay entries, whatever the base's size. Apply copies
  // the overlay, on a SQLite sidecar's request path: one change applied over
  // 300 entries costs 80 µs of CPU, over 4,096 1.8 ms, over 15,625 (the old
  // bound at 1,000,000 tokens, base size / 64) 15.5 ms (bench/token_bench
  // BM_TokenViewApplyOne). A full scan per 4,096 changes is the price: at
  // 20 changes a second and 1,000,000 tokens, ~1.5 s of one background
  // thread every ~3.4 minutes.
  static constexpr size_t kMaxOverlay = 4096;
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
  struct Overlay {
    std::unordered_map<TokenHash, OverlayToken, TokenHashHasher> tokens;
    std::unordered_map<int64_t, OverlayPrincipal> principals;
  };

  // Whether the token is held before this view's overlay principals apply.
  bool Holds(const TokenHash& hash) const noexcept;

  std::shared_ptr<const TokenIndex> base_;
  std::shared_ptr<const Overlay> overlay_;  // null: empty
  int64_t head_ = 0;
  int64_t base_head_ = 0;
  size_t size_ = 0;
};

}  // namespace gatehouse
