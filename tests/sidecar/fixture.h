// Test helpers for the sidecar: a temporary directory (support/temp_dir.h),
// and the seed's demo store written straight through the Store API (so tests
// can choose every time with a FakeClock and mint tokens of any shape).
//
// The demo store: organization Demo, owner owner@demo.test; alice@demo.test
// (org contributor, admin of Marketing-Development); workspaces Organization
// (organization), Marketing-Development and Marketing-Production (shared),
// alice-personal (personal); API users with one token each:
//   dev-exporter   Marketing-Development  contributor  org viewer
//   prod-importer  Marketing-Production   contributor  org viewer
//   prod-viewer    Marketing-Production   viewer       org viewer
//   org-bot        Marketing-Development  viewer       org admin  (an organization-wide token)
//   doomed         Marketing-Production   contributor  org viewer (tests delete it)
// plus "expiring" (prod-importer's second token, expiring at kNow + 60).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "gatehouse/store.h"
#include "gatehouse/tokens.h"
#include "support/temp_dir.h"

namespace gatehouse::testing {

inline constexpr int64_t kNow = 1'767'225'600;  // 2026-01-01T00:00:00Z
inline constexpr int64_t kDay = 86'400;

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Overwrites the first bytes of `path` with `bytes`, in place (same inode,
// no truncation), as a damaged disk or a careless `dd` would.
inline void OverwriteStart(const std::string& path, const std::string& bytes) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes `text` beside `path` and renames it over `path` (an atomic edit).
inline void ReplaceFile(const std::string& path, const std::string& text) {
  WriteAll(path + ".tmp", text);
  std::filesystem::rename(path + ".tmp", path);
}

struct DemoToken {
  std::string secret;
  std::string id;
  int64_t api_user_id = 0;
};

struct DemoStore {
  std::string path;
  int64_t org_id = 0;
  std::map<std::string, int64_t> workspaces;  // by name
  std::map<std::string, int64_t> api_users;   // by name
  std::map<std::string, DemoToken> tokens;    // by API user name, and "expiring"
};

#define GH_CHECK_OK(expr)                                                      \
  do {                                                                         \
    const auto& gh_r_ = (expr);                                                \
    if (!gh_r_.ok()) {                                                         \
      ADD_FAILURE() << #expr << ": " << ::gatehouse::testing::StatusOf(gh_r_); \
      return {};                                                               \
    }                                                                          \
  } while (0)

inline std::string StatusOf(const Status& s) { return s.ToString(); }
template <typename T>
std::string StatusOf(const Result<T>& r) {
  return r.status().ToString();
}

// Inserts a token for `api_user_id`; returns the secret and id.
inline DemoToken AddToken(Store& store, int64_t api_user_id, const std::string& name,
                          int64_t created_at, int64_t expires_at) {
  auto minted = MintToken();
  if (!minted.ok()) {
    ADD_FAILURE() << minted.status().ToString();
    return {};
  }
  NewToken t;
  t.id = minted->id;
  t.api_user_id = api_user_id;
  t.name = name;
  t.hash = minted->hash;
  t.created_at = created_at;
  t.expires_at = expires_at;
  t.created_by = "owner@demo.test";
  Status s = store.InsertToken(t);
  if (!s.ok()) {
    ADD_FAILURE() << s.ToString();
    return {};
  }
  return {minted->secret, minted->id, api_user_id};
}

// Creates the demo store at `path`, a SQLite path or a PostgreSQL locator
// (see the header comment). Tokens are
// created at kNow - kDay and expire at kNow + 30 days.
inline DemoStore CreateDemoStore(const std::string& path) {
  DemoStore d;
  d.path = path;
  auto created = CreateStore(path);  // a SQLite path or a PostgreSQL locator
  GH_CHECK_OK(created);
  Store& s = **created;
  auto org = s.CreateOrganization("Demo");
  GH_CHECK_OK(org);
  d.org_id = org->id;
  auto owner = s.AddUser(d.org_id, "owner@demo.test", "owner");
  GH_CHECK_OK(owner);
  auto alice = s.AddUser(d.org_id, "alice@demo.test", "contributor");
  GH_CHECK_OK(alice);
  for (auto [name, type] : {std::pair<const char*, const char*>{"Organization", "organization"},
                            {"Marketing-Development", "shared"},
                            {"Marketing-Production", "shared"},
                            {"alice-personal", "personal"}}) {
    auto ws = s.CreateWorkspace(d.org_id, name, type, std::nullopt);
    GH_CHECK_OK(ws);
    d.workspaces[name] = ws->id;
  }
  GH_CHECK_OK(s.SetMembership(d.workspaces["Marketing-Development"], alice->id, "admin"));
  struct Api {
    const char* name;
    const char* workspace;
    const char* role;
    const char* org_role;
  };
  for (const Api& a : {Api{"dev-exporter", "Marketing-Development", "contributor", "viewer"},
                       Api{"prod-importer", "Marketing-Production", "contributor", "viewer"},
                       Api{"prod-viewer", "Marketing-Production", "viewer", "viewer"},
                       Api{"org-bot", "Marketing-Development", "viewer", "admin"},
                       Api{"doomed", "Marketing-Production", "contributor", "viewer"}}) {
    NewApiUser nu;
    nu.workspace_id = d.workspaces[a.workspace];
    nu.name = a.name;
    nu.org_role = a.org_role;
    nu.workspace_role = a.role;
    nu.created_by = "owner@demo.test";
    nu.created_at = kNow - kDay;
    auto au = s.CreateApiUser(nu);
    GH_CHECK_OK(au);
    d.api_users[a.name] = au->id;
    d.tokens[a.name] = AddToken(s, au->id, "main", kNow - kDay, kNow + 30 * kDay);
  }
  d.tokens["expiring"] = AddToken(s, d.api_users["prod-importer"], "short", kNow - kDay, kNow + 60);
  return d;
}

// The default policy's text (policies/api-tokens.yaml in the source tree).
inline std::string DefaultPolicyText() {
  return ReadAll(std::string(GATEHOUSE_SOURCE_DIR) + "/policies/api-tokens.yaml");
}

// The default policy with project.import open to viewers: a policy edit whose
// effect a test can see (prod-viewer's import turns from denied to allowed).
inline std::string ViewersMayImport() {
  std::string p = DefaultPolicyText();
  const std::string from =
      "when: principal.workspace_role >= contributor\n        message: Importing";
  const size_t at = p.find(from);
  EXPECT_NE(at, std::string::npos) << "the default policy no longer has the import rule";
  if (at != std::string::npos)
    p.replace(at, from.size(), "when: principal.workspace_role >= viewer\n        message: Importing");
  return p;
}

// Adds a rule to `action` of a policy text: a permit (first of its permits)
// or a forbid (first of its forbids, the list made when the action has none).
inline std::string AddRule(std::string policy, const std::string& action, bool permit,
                    const std::string& when, const std::string& rule) {
  const size_t start = policy.find("\n  " + action + ":\n");
  EXPECT_NE(start, std::string::npos) << action;
  if (start == std::string::npos) return policy;
  size_t end = start + 1;
  // The action's block ends at the next line indented by exactly two spaces (or a top-level key).
  for (size_t nl = policy.find('\n', start + 1); nl != std::string::npos; nl = policy.find('\n', nl + 1)) {
    const std::string_view rest = std::string_view(policy).substr(nl + 1);
    if ((rest.size() > 2 && rest.substr(0, 2) == "  " && rest[2] != ' ' && rest[2] != '#') ||
        (!rest.empty() && rest[0] != ' ' && rest[0] != '\n' && rest[0] != '#')) {
      end = nl;
      break;
    }
  }
  const std::string item = "      - rule: " + rule + "\n        when: \"" + when + "\"\n";
  const std::string key = permit ? "\n    permit:\n" : "\n    forbid:\n";
  const size_t at = policy.find(key, start);
  if (at != std::string::npos && at < end) {
    policy.insert(at + key.size(), item);
  } else {
    EXPECT_FALSE(permit) << action << " has no permit list";
    policy.insert(end, "\n    forbid:\n" + item.substr(0, item.size() - 1));
  }
  return policy;
}

}  // namespace gatehouse::testing
