#include "gatehouse/token_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "gatehouse/clock.h"
#include "gatehouse/token_view.h"
#include "gatehouse/tokens.h"

namespace gatehouse {
namespace {

constexpr int64_t kNowForOverlay = 1'767'225'600;

struct Issued {
  std::string secret;
  TokenRecord record;
};

Issued Issue(int64_t api_user_id, std::string api_user, int64_t created_at, int64_t expires_at,
             std::string workspace = "Marketing-Production") {
  auto m = MintToken();
  EXPECT_TRUE(m.ok());
  Issued out;
  out.secret = m->secret;
  TokenRecord& r = out.record;
  r.token_id = m->id;
  r.name = "deploy-" + std::to_string(api_user_id);
  r.hash = m->hash;
  r.created_at = created_at;
  r.expires_at = expires_at;
  r.created_by = "owner@example.com";
  r.api_user_id = api_user_id;
  r.api_user_name = std::move(api_user);
  r.org_id = 1;
  r.org_role = "viewer";
  r.workspace_id = 7;
  r.workspace_name = std::move(workspace);
  r.workspace_type = "shared";
  r.workspace_role = "contributor";
  return out;
}

TEST(TokenIndex, VerifiesAnActiveToken) {
  FakeClock clock(1'000'000);
  Issued a = Issue(11, "ci-bot", clock.NowSeconds() - 10, clock.NowSeconds() + 3600);
  auto index = TokenIndex::Build({a.record});
  ASSERT_EQ(index->size(), 1u);

  TokenLookup r = index->Verify(a.secret, clock.NowSeconds());
  ASSERT_EQ(r.check, TokenCheck::kActive) << TokenCheckName(r.check);
  EXPECT_TRUE(r.active());
  EXPECT_EQ(r.token.token_id, a.record.token_id);
  EXPECT_EQ(r.token.name, a.record.name);
  EXPECT_EQ(r.token.created_at, a.record.created_at);
  EXPECT_EQ(r.token.expires_at, a.record.expires_at);
  ASSERT_NE(r.token.principal, nullptr);
  EXPECT_EQ(r.token.principal->api_user_id, 11);
  EXPECT_EQ(r.token.principal->api_user_name, "ci-bot");
  EXPECT_EQ(r.token.principal->org_id, 1);
  EXPECT_EQ(r.token.principal->org_role, "viewer");
  EXPECT_EQ(r.token.principal->workspace_id, 7);
  EXPECT_EQ(r.token.principal->workspace_name, "Marketing-Production");
  EXPECT_EQ(r.token.principal->workspace_type, "shared");
  EXPECT_EQ(r.token.principal->workspace_role, "contributor");
}

TEST(TokenIndex, RefusesATokenFromItsExpirySecondOn) {
  FakeClock clock(5'000);
  Issued a = Issue(1, "bot", 0, 6'000);
  auto index = TokenIndex::Build({a.record});
  EXPECT_TRUE(index->Verify(a.secret, clock.NowSeconds()).active());
  clock.Set(5'999);
  EXPECT_TRUE(index->Verify(a.secret, clock.NowSeconds()).active());
  clock.Advance(1);  // now == expires_at
  TokenLookup r = index->Verify(a.secret, clock.NowSeconds());
  EXPECT_EQ(r.check, TokenCheck::kExpired);
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.token.token_id, a.record.token_id);  // for the decision log
  clock.Advance(86400);
  EXPECT_EQ(index->Verify(a.secret, clock.NowSeconds()).check, TokenCheck::kExpired);
}

TEST(TokenIndex, TellsUnknownFromMalformed) {
  Issued a = Issue(1, "bot", 0, 100);
  Issued b = Issue(1, "bot", 0, 100);  // minted but not indexed: revoked, say
  auto index = TokenIndex::Build({a.record});
  EXPECT_EQ(index->Verify(b.secret, 50).check, TokenCheck::kUnknown);
  EXPECT_EQ(index->Verify("", 50).check, TokenCheck::kMalformed);
  EXPECT_EQ(index->Verify("gat_nope", 50).check, TokenCheck::kMalformed);
  std::string typo = a.secret;
  typo[10] = typo[10] == 'a' ? 'b' : 'a';
  EXPECT_EQ(index->Verify(typo, 50).check, TokenCheck::kMalformed);
  EXPECT_EQ(TokenCheckName(TokenCheck::kUnknown), "unknown");
  EXPECT_EQ(TokenCheckName(TokenCheck::kMalformed), "malformed");
}

TEST(TokenIndex, EmptyIndexKnowsNothing) {
  TokenIndex empty;
  Issued a = Issue(1, "bot", 0, 100);
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.Verify(a.secret, 0).check, TokenCheck::kUnknown);
  EXPECT_FALSE(empty.Find(a.record.hash).has_value());
  auto built = TokenIndex::Build({});
  EXPECT_EQ(built->Verify(a.secret, 0).check, TokenCheck::kUnknown);
}

TEST(TokenIndex, StoresEachApiUserOnce) {
  Issued a1 = Issue(1, "alpha", 0, 100);
  Issued a2 = Issue(1, "alpha", 0, 100);
  Issued b1 = Issue(2, "beta", 0, 100, "Sales");
  auto index = TokenIndex::Build({a1.record, b1.record, a2.record});
  auto r1 = index->Verify(a1.secret, 1);
  auto r2 = index->Verify(a2.secret, 1);
  auto r3 = index->Verify(b1.secret, 1);
  ASSERT_TRUE(r1.active() && r2.active() && r3.active());
  EXPECT_EQ(r1.token.principal, r2.token.principal);
  EXPECT_NE(r1.token.principal, r3.token.principal);
  EXPECT_EQ(r3.token.principal->workspace_name, "Sales");
  EXPECT_NE(r1.token.token_id, r2.token.token_id);
}

TEST(TokenIndex, FindComparesTheWholeHash) {
  Issued a = Issue(1, "bot", 0, 100);
  auto index = TokenIndex::Build({a.record});
  ASSERT_TRUE(index->Find(a.record.hash).has_value());
  // Same first 8 bytes (same slot key), different tail: not the token.
  TokenHash near = a.record.hash;
  near[31] ^= 0x80;
  EXPECT_FALSE(index->Find(near).has_value());
  near = a.record.hash;
  near[8] ^= 1;
  EXPECT_FALSE(index->Find(near).has_value());
}

TEST(TokenIndex, KeepsTheFirstOfDuplicateHashes) {
  Issued a = Issue(1, "first", 0, 100);
  TokenRecord dup = a.record;
  dup.token_id = "tok_duplicate000";
  dup.api_user_id = 2;
  dup.api_user_name = "second";
  auto index = TokenIndex::Build({a.record, dup});
  EXPECT_EQ(index->size(), 1u);
  auto r = index->Verify(a.secret, 1);
  ASSERT_TRUE(r.active());
  EXPECT_EQ(r.token.token_id, a.record.token_id);
  EXPECT_EQ(r.token.principal->api_user_name, "first");
}

TEST(TokenIndex, FindsEveryOneOfManyTokensAndNoStranger) {
  TokenIndexBuilder builder;
  std::vector<std::string> secrets;
  constexpr int kTokens = 20000;
  builder.Reserve(kTokens);
  for (int i = 0; i < kTokens; ++i) {
    Issued t = Issue(i % 50, "user" + std::to_string(i % 50), 0, 1000 + i);
    builder.Add(t.record);
    secrets.push_back(std::move(t.secret));
  }
  auto index = builder.Build();
  ASSERT_EQ(index->size(), static_cast<size_t>(kTokens));
  for (int i = 0; i < kTokens; ++i) {
    auto r = index->Verify(secrets[i], 999);
    ASSERT_TRUE(r.active()) << i;
    ASSERT_EQ(r.token.expires_at, 1000 + i);
    ASSERT_EQ(r.token.principal->api_user_id, i % 50);
  }
  for (int i = 0; i < 2000; ++i) {
    auto m = MintToken();
    ASSERT_TRUE(m.ok());
    ASSERT_EQ(index->Verify(m->secret, 0).check, TokenCheck::kUnknown);
  }
  // The builder starts over after Build.
  auto again = builder.Build();
  EXPECT_EQ(again->size(), 0u);
  EXPECT_TRUE(index->Verify(secrets[0], 0).active());
}

TEST(TokenIndex, OutlivesTheRecordsItWasBuiltFrom) {
  std::string secret;
  std::shared_ptr<const TokenIndex> index;
  {
    Issued a = Issue(3, "temporary-name-long-enough-to-allocate", 0, 100);
    secret = a.secret;
    std::vector<TokenRecord> records{a.record};
    index = TokenIndex::Build(records);
  }
  auto r = index->Verify(secret, 1);
  ASSERT_TRUE(r.active());
  EXPECT_EQ(r.token.principal->api_user_name, "temporary-name-long-enough-to-allocate");
}

// The overlay's bound is a share of the base with a floor: a compaction is
// due past max(kMinOverlay, base size / kOverlayShare) entries, never before,
// over bases below, at and above the floor's crossing (262,144 tokens).
TEST(TokenView, ACompactionIsDueWhenTheOverlayPassesItsShareOfTheBase) {
  std::mt19937_64 rng(5);
  auto record = [&rng](uint64_t i) {
    TokenRecord r;
    for (auto& b : r.hash) b = static_cast<uint8_t>(rng());
    r.token_id = "tok_" + std::to_string(i);
    r.expires_at = kNowForOverlay + 3600;
    r.api_user_id = static_cast<int64_t>(i % 7);
    return r;
  };
  for (const size_t base_size : {size_t{0}, size_t{10'000}, size_t{300'000}}) {
    TokenIndexBuilder builder;
    builder.Reserve(base_size);
    for (size_t i = 0; i < base_size; ++i) builder.Add(record(i));
    auto view = std::make_shared<const TokenView>(builder.Build(), 1);
    const size_t bound = std::max(TokenView::kMinOverlay, base_size / TokenView::kOverlayShare);
    ChangeBatch batch;
    batch.after = 1;
    batch.head = 2;
    for (size_t i = 0; i < bound; ++i) batch.tokens.push_back(record(1'000'000 + i));
    view = view->Apply(batch);
    EXPECT_EQ(view->overlay_size(), bound) << base_size;
    EXPECT_FALSE(view->CompactionDue()) << base_size;
    ChangeBatch one;
    one.after = 2;
    one.head = 3;
    one.removed_tokens.push_back(batch.tokens.front().hash);
    one.tokens.push_back(record(2'000'000));
    view = view->Apply(one);
    EXPECT_TRUE(view->CompactionDue()) << base_size << " tokens, " << view->overlay_size() << " in the overlay";
  }
}

// Apply shares the overlay with the view it came from: that view answers as
// it did before, whatever is applied after it, over a generated sequence of
// creations, revocations, re-creations and API-user changes and deletions.
TEST(TokenView, AnEarlierViewAnswersAsItDidAfterLaterChanges) {
  std::mt19937_64 rng(11);
  const size_t kTokens = 300;
  std::vector<std::string> tokens;
  std::vector<TokenRecord> records;
  for (size_t i = 0; i < kTokens; ++i) {
    Issued issued =
        Issue(static_cast<int64_t>(i % 13), "deploy", kNowForOverlay, kNowForOverlay + 3600);
    tokens.push_back(issued.secret);
    records.push_back(issued.record);
  }
  auto answers = [&](const TokenView& view) {
    std::vector<std::string> out;
    for (const auto& t : tokens) {
      TokenLookup l = view.Verify(t, kNowForOverlay);
      out.push_back(l.check == TokenCheck::kActive
                        ? std::string(l.token.token_id) + "/" +
                              std::to_string(l.token.principal->api_user_id) + "/" +
                              std::string(l.token.principal->workspace_role)
                        : "inactive");
    }
    return out;
  };
  std::vector<std::shared_ptr<const TokenView>> views{
      std::make_shared<const TokenView>(std::make_shared<const TokenIndex>(), 0)};
  std::vector<std::vector<std::string>> seen{answers(*views.back())};
  for (int64_t head = 1; head <= 400; ++head) {
    ChangeBatch batch;
    batch.after = head - 1;
    batch.head = head;
    for (int n = 0; n < 1 + static_cast<int>(rng() % 4); ++n) {
      const size_t i = rng() % kTokens;
      switch (rng() % 4) {
        case 0:
        case 1:
          batch.tokens.push_back(records[i]);
          break;
        case 2:
          batch.removed_tokens.push_back(records[i].hash);
          break;
        default: {
          TokenPrincipal p;
          p.api_user_id = static_cast<int64_t>(i % 13);
          p.workspace_role = head % 2 ? "viewer" : "admin";
          if (rng() % 3 == 0) {
            batch.removed_api_users.push_back(p.api_user_id);
          } else {
            batch.principals.push_back(p);
          }
        }
      }
    }
    views.push_back(views.back()->Apply(batch));
    seen.push_back(answers(*views.back()));
  }
  for (size_t v = 0; v < views.size(); ++v) {
    EXPECT_EQ(answers(*views[v]), seen[v]) << "the view at feed number " << v;
  }
  EXPECT_NE(seen.front(), seen.back());
}

}  // namespace
}  // namespace gatehouse
