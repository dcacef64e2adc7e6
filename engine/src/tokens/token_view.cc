#include "gatehouse/token_view.h"

#include <algorithm>
#include <utility>

namespace gatehouse {

TokenView::TokenView(std::shared_ptr<const TokenIndex> base, int64_t head)
    : base_(base ? std::move(base) : std::make_shared<const TokenIndex>()),
      head_(head),
      base_head_(head),
      size_(base_->size()) {}

size_t TokenView::overlay_size() const {
  return overlay_ ? overlay_->tokens.size() + overlay_->principals.size() : 0;
}

bool TokenView::CompactionDue() const {
  return overlay_size() > kMaxOverlay;
}

bool TokenView::Holds(const TokenHash& hash) const noexcept {
  if (overlay_) {
    auto it = overlay_->tokens.find(hash);
    if (it != overlay_->tokens.end()) return !it->second.removed;
  }
  return base_->Find(hash).has_value();
}

TokenLookup TokenView::Verify(std::string_view token, int64_t now) const noexcept {
  if (!overlay_) return base_->Verify(token, now);
  TokenLookup out;
  if (!CheckTokenFormat(token)) {
    out.check = TokenCheck::kMalformed;
    return out;
  }
  const TokenHash hash = HashToken(token);
  auto it = overlay_->tokens.find(hash);
  if (it != overlay_->tokens.end()) {
    const OverlayToken& t = it->second;
    if (t.removed) {
      out.check = TokenCheck::kUnknown;
      return out;
    }
    out.token = VerifiedToken{t.token_id, t.name, t.created_at, t.expires_at, &t.principal};
  } else {
    std::optional<VerifiedToken> found = base_->Find(hash);
    if (!found) {
      out.check = TokenCheck::kUnknown;
      return out;
    }
    out.token = *found;
  }
  // The API user as it is now, when it changed after the token was read.
  auto p = overlay_->principals.find(out.token.principal->api_user_id);
  if (p != overlay_->principals.end()) {
    if (p->second.removed) {
      out.token = VerifiedToken{};
      out.check = TokenCheck::kUnknown;
      return out;
    }
    out.token.principal = &p->second.principal;
  }
  out.check = now < out.token.expires_at ? TokenCheck::kActive : TokenCheck::kExpired;
  return out;
}

std::shared_ptr<const TokenView> TokenView::Apply(const ChangeBatch& batch) const {
  std::shared_ptr<TokenView> next(new TokenView(*this));
  if (batch.head <= head_) return next;  // nothing new (or already applied)
  auto overlay = overlay_ ? std::make_shared<Overlay>(*overlay_) : std::make_shared<Overlay>();
  const int64_t seq = batch.head;
  for (const TokenRecord& r : batch.tokens) {
    const bool held = Holds(r.hash);
    OverlayToken& t = overlay->tokens[r.hash];
    t.seq = seq;
    t.removed = false;
    t.token_id = r.token_id;
    t.name = r.name;
    t.created_at = r.created_at;
    t.expires_at = r.expires_at;
    t.principal = TokenPrincipal{r.api_user_id,    r.api_user_name,  r.org_id,
                                 r.org_role,       r.workspace_id,   r.workspace_name,
                                 r.workspace_type, r.workspace_role};
    if (!held) ++next->size_;
  }
  for (const TokenHash& h : batch.removed_tokens) {
    const bool held = Holds(h);
    OverlayToken& t = overlay->tokens[h];
    t = OverlayToken{};
    t.seq = seq;
    t.removed = true;
    if (held && next->size_ > 0) --next->size_;
  }
  for (const TokenPrincipal& p : batch.principals) {
    overlay->principals[p.api_user_id] = OverlayPrincipal{seq, false, p};
  }
  for (int64_t id : batch.removed_api_users) {
    OverlayPrincipal& p = overlay->principals[id];
    p = OverlayPrincipal{};
    p.seq = seq;
    p.removed = true;
    p.principal.api_user_id = id;
  }
  next->overlay_ = std::move(overlay);
  next->head_ = seq;
  return next;
}

std::shared_ptr<const TokenView> TokenView::Rebase(std::shared_ptr<const TokenIndex> base,
                                                   int64_t base_head) const {
  std::shared_ptr<TokenView> next(new TokenView(std::move(base), base_head));
  next->head_ = std::max(head_, base_head);
  if (!overlay_) return next;
  auto overlay = std::make_shared<Overlay>();
  for (const auto& [hash, t] : overlay_->tokens) {
    if (t.seq <= base_head) continue;  // the new base holds it, or something newer
    const bool held = next->base_->Find(hash).has_value();
    if (t.removed && held && next->size_ > 0) --next->size_;
    if (!t.removed && !held) ++next->size_;
    overlay->tokens.emplace(hash, t);
  }
  for (const auto& [id, p] : overlay_->principals) {
    if (p.seq > base_head) overlay->principals.emplace(id, p);
  }
  if (!overlay->tokens.empty() || !overlay->principals.empty()) next->overlay_ = std::move(overlay);
  return next;
}

}  // namespace gatehouse
