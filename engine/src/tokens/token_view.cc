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
  return overlay_.tokens.size() + overlay_.principals.size();
}

bool TokenView::CompactionDue() const {
  return overlay_size() > std::max(kMinOverlay, base_->size() / kOverlayShare);
}

bool TokenView::Holds(const Overlay& overlay, const TokenHash& hash) const noexcept {
  if (const OverlayToken* t = overlay.tokens.Find(hash)) return !t->removed;
  return base_->Find(hash).has_value();
}

TokenLookup TokenView::Verify(std::string_view token, int64_t now) const noexcept {
  if (overlay_.empty()) return base_->Verify(token, now);
  TokenLookup out;
  if (!CheckTokenFormat(token)) {
    out.check = TokenCheck::kMalformed;
    return out;
  }
  const TokenHash hash = HashToken(token);
  if (const OverlayToken* t = overlay_.tokens.Find(hash)) {
    if (t->removed) {
      out.check = TokenCheck::kUnknown;
      return out;
    }
    out.token = VerifiedToken{t->token_id, t->name, t->created_at, t->expires_at, &t->principal};
  } else {
    std::optional<VerifiedToken> found = base_->Find(hash);
    if (!found) {
      out.check = TokenCheck::kUnknown;
      return out;
    }
    out.token = *found;
  }
  // The API user as it is now, when it changed after the token was read.
  if (const OverlayPrincipal* p = overlay_.principals.Find(out.token.principal->api_user_id)) {
    if (p->removed) {
      out.token = VerifiedToken{};
      out.check = TokenCheck::kUnknown;
      return out;
    }
    out.token.principal = &p->principal;
  }
  out.check = now < out.token.expires_at ? TokenCheck::kActive : TokenCheck::kExpired;
  return out;
}

std::shared_ptr<const TokenView> TokenView::Apply(const ChangeBatch& batch) const {
  std::shared_ptr<TokenView> next(new TokenView(*this));
  if (batch.head <= head_) return next;  // nothing new (or already applied)
  Overlay& overlay = next->overlay_;
  const int64_t seq = batch.head;
  for (const TokenRecord& r : batch.tokens) {
    if (!Holds(overlay, r.hash)) ++next->size_;
    OverlayToken t;
    t.seq = seq;
    t.token_id = r.token_id;
    t.name = r.name;
    t.created_at = r.created_at;
    t.expires_at = r.expires_at;
    t.principal = TokenPrincipal{r.api_user_id,    r.api_user_name,  r.org_id,
                                 r.org_role,       r.workspace_id,   r.workspace_name,
                                 r.workspace_type, r.workspace_role};
    overlay.tokens = overlay.tokens.With(r.hash, std::move(t));
  }
  for (const TokenHash& h : batch.removed_tokens) {
    if (Holds(overlay, h) && next->size_ > 0) --next->size_;
    OverlayToken t;
    t.seq = seq;
    t.removed = true;
    overlay.tokens = overlay.tokens.With(h, std::move(t));
  }
  for (const TokenPrincipal& p : batch.principals) {
    overlay.principals = overlay.principals.With(p.api_user_id, OverlayPrincipal{seq, false, p});
  }
  for (int64_t id : batch.removed_api_users) {
    OverlayPrincipal p;
    p.seq = seq;
    p.removed = true;
    p.principal.api_user_id = id;
    overlay.principals = overlay.principals.With(id, std::move(p));
  }
  next->head_ = seq;
  return next;
}

std::shared_ptr<const TokenView> TokenView::Rebase(std::shared_ptr<const TokenIndex> base,
                                                   int64_t base_head) const {
  std::shared_ptr<TokenView> next(new TokenView(std::move(base), base_head));
  next->head_ = std::max(head_, base_head);
  Overlay& overlay = next->overlay_;
  overlay_.tokens.ForEach([&](const TokenHash& hash, const OverlayToken& t) {
    if (t.seq <= base_head) return;  // the new base holds it, or something newer
    const bool held = next->base_->Find(hash).has_value();
    if (t.removed && held && next->size_ > 0) --next->size_;
    if (!t.removed && !held) ++next->size_;
    overlay.tokens = overlay.tokens.With(hash, t);
  });
  overlay_.principals.ForEach([&](int64_t id, const OverlayPrincipal& p) {
    if (p.seq > base_head) overlay.principals = overlay.principals.With(id, p);
  });
  return next;
}

}  // namespace gatehouse
