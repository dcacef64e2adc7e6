#include "gatehouse/token_index.h"

#include <sys/mman.h>

#include <cstring>
#include <stdexcept>

namespace gatehouse {
namespace {

uint64_t KeyOf(const TokenHash& hash) {
  uint64_t k;
  std::memcpy(&k, hash.data(), sizeof k);
  return k;
}

// Asks the kernel to back a large table with 2 MiB pages (Linux transparent
// huge pages, when set to "madvise"). A lookup in a million-token index is a
// couple of random loads; with 4 KiB pages each also misses the TLB. Call it
// before the memory is first written. Best effort: failure changes nothing.
void AdviseHugePages(const void* data, size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr size_t kMin = size_t{4} << 20;
  if (bytes < kMin) return;
  const uintptr_t page = 4096;
  uintptr_t begin = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  uintptr_t end = reinterpret_cast<uintptr_t>(data) + bytes;
  (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace

std::string_view TokenCheckName(TokenCheck check) noexcept {
  switch (check) {
    case TokenCheck::kActive:
      return "active";
    case TokenCheck::kMalformed:
      return "malformed";
    case TokenCheck::kUnknown:
      return "unknown";
    case TokenCheck::kExpired:
      return "expired";
  }
  return "unknown";
}

TokenIndex::TokenIndex() : slots_(16, Slot{0, kEmpty}), mask_(15) {}

std::shared_ptr<const TokenIndex> TokenIndex::Build(const std::vector<TokenRecord>& records) {
  TokenIndexBuilder builder;
  builder.Reserve(records.size());
  for (const TokenRecord& r : records) builder.Add(r);
  return builder.Build();
}

const TokenIndex::Entry* TokenIndex::FindEntry(const TokenHash& hash) const noexcept {
  const uint64_t key = KeyOf(hash);
  // Linear probing over a table at most half full: a miss ends at the first
  // free slot, on average after 1.5 probes.
  for (uint64_t i = key & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.entry == kEmpty) return nullptr;
    if (s.key == key) {
      const Entry& e = entries_[s.entry];
      if (HashEquals(e.hash, hash)) return &e;
    }
  }
}

VerifiedToken TokenIndex::View(const Entry& e) const noexcept {
  return VerifiedToken{Str(e.token_id), Str(e.name), e.created_at, e.expires_at,
                       &principals_[e.principal]};
}

std::optional<VerifiedToken> TokenIndex::Find(const TokenHash& hash) const noexcept {
  const Entry* e = FindEntry(hash);
  if (e == nullptr) return std::nullopt;
  return View(*e);
}

TokenLookup TokenIndex::Verify(std::string_view token, int64_t now) const noexcept {
  TokenLookup out;
  if (!CheckTokenFormat(token)) {
    out.check = TokenCheck::kMalformed;
    return out;
  }
  const Entry* e = FindEntry(HashToken(token));
  if (e == nullptr) {
    out.check = TokenCheck::kUnknown;
    return out;
  }
  out.token = View(*e);
  out.check = now < e->expires_at ? TokenCheck::kActive : TokenCheck::kExpired;
  return out;
}

TokenIndexBuilder::TokenIndexBuilder() : index_(std::make_unique<TokenIndex>()) {}

void TokenIndexBuilder::Reserve(size_t tokens) {
  index_->entries_.reserve(tokens);
  AdviseHugePages(index_->entries_.data(), index_->entries_.capacity() * sizeof(TokenIndex::Entry));
  index_->strings_.reserve(tokens * (kTokenIdLength + 16));
}

void TokenIndexBuilder::Add(const TokenRecord& r) {
  TokenIndex& ix = *index_;
  if (ix.entries_.size() >= TokenIndex::kEmpty - 1) {
    throw std::length_error("TokenIndex: too many tokens");
  }
  auto intern = [&ix](std::string_view s) {
    if (ix.strings_.size() + s.size() > 0xFFFFFFFFu) {
      throw std::length_error("TokenIndex: token ids and names exceed 4 GiB");
    }
    TokenIndex::StrRef ref{static_cast<uint32_t>(ix.strings_.size()),
                           static_cast<uint32_t>(s.size())};
    ix.strings_.append(s);
    return ref;
  };

  auto [it, inserted] = principal_by_api_user_.try_emplace(
      r.api_user_id, static_cast<uint32_t>(ix.principals_.size()));
  if (inserted) {
    ix.principals_.push_back(TokenPrincipal{r.api_user_id, r.api_user_name, r.org_id, r.org_role,
                                            r.workspace_id, r.workspace_name, r.workspace_type,
                                            r.workspace_role});
  }
  TokenIndex::Entry e;
  e.hash = r.hash;
  e.created_at = r.created_at;
  e.expires_at = r.expires_at;
  e.token_id = intern(r.token_id);
  e.name = intern(r.name);
  e.principal = it->second;
  ix.entries_.push_back(e);
}

std::shared_ptr<const TokenIndex> TokenIndexBuilder::Build() {
  std::unique_ptr<TokenIndex> ix = std::move(index_);
  index_ = std::make_unique<TokenIndex>();
  principal_by_api_user_.clear();
  // Before the slots exist: the shrink copies the strings, and a base being
  // built beside a serving one (a compaction) should hold that copy and the
  // slots at different times, not at once.
  ix->strings_.shrink_to_fit();

  size_t capacity = 16;
  while (capacity < ix->entries_.size() * 2) capacity *= 2;
  ix->slots_.clear();
  ix->slots_.shrink_to_fit();
  ix->slots_.reserve(capacity);
  AdviseHugePages(ix->slots_.data(), capacity * sizeof(TokenIndex::Slot));
  ix->slots_.assign(capacity, TokenIndex::Slot{0, TokenIndex::kEmpty});
  ix->mask_ = capacity - 1;

  // Insert, dropping later duplicates of a hash so that every entry is
  // reachable from exactly one slot. Kept entries are compacted in place:
  // entry `kept` is written at or before the one being read.
  std::vector<TokenIndex::Entry>& entries = ix->entries_;
  size_t kept = 0;
  for (size_t n = 0; n < entries.size(); ++n) {
    const TokenIndex::Entry e = entries[n];
    const uint64_t key = KeyOf(e.hash);
    uint64_t i = key & ix->mask_;
    bool duplicate = false;
    for (;; i = (i + 1) & ix->mask_) {
      const TokenIndex::Slot& s = ix->slots_[i];
      if (s.entry == TokenIndex::kEmpty) break;
      if (s.key == key && entries[s.entry].hash == e.hash) {
        duplicate = true;
        break;
      }
    }
    if (duplicate) continue;
    ix->slots_[i] = TokenIndex::Slot{key, static_cast<uint32_t>(kept)};
    entries[kept++] = e;
  }
  entries.resize(kept);
  // Not shrink_to_fit: that would copy the entries out of the huge pages.
  return std::shared_ptr<const TokenIndex>(std::move(ix));
}

}  // namespace gatehouse
