// Helpers for end-to-end tests of the real `gatehouse` binary: a runner that
// passes the store/policy/identity, assertions on the contract's exit
// statuses and its one-line stderr, and a read-only look into the SQLite
// store (to prove that a failed command changed nothing). TempDir comes from
// support/temp_dir.h.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/temp_dir.h"

namespace gatehouse::testing {

using nlohmann::json;

// The CLI under test and the project's default policy folder.
std::string GatehouseBinary();
std::string DefaultPolicyDir();

std::string ReadFileBytes(const std::string& path);  // "" when it does not exist
void WriteFileBytes(const std::string& path, const std::string& bytes);
bool FileExists(const std::string& path);

// Runs `gatehouse` on one store: `gatehouse --store STORE [--policy P] [--as WHO] ARGS...`
// (global options first; tests of the other order build their own argv).
class Gatehouse {
 public:
  explicit Gatehouse(std::string store) : store(std::move(store)) {}

  std::string store;
  std::string policy;                         // passed as --policy when not empty
  std::vector<std::string> env;               // extra NAME=VALUE for the child
  std::chrono::milliseconds timeout{60'000};  // per command

  std::vector<std::string> Argv(const std::string& as, const std::vector<std::string>& args) const;
  // No acting identity.
  ProcessResult Run(const std::vector<std::string>& args) const;
  ProcessResult As(const std::string& who, const std::vector<std::string>& args) const;
  std::unique_ptr<Process> Start(const std::string& who,
                                 const std::vector<std::string>& args) const;
  // Runs ARGS --json as WHO, expects exit 0 and returns the parsed output
  // (null, with a test failure, otherwise).
  json Json(const std::string& who, const std::vector<std::string>& args) const;
};

// Exit 0 (and not killed).
::testing::AssertionResult Succeeded(const ProcessResult& r);
// Exit `code`, and stderr is exactly one line starting "gatehouse: ".
::testing::AssertionResult Failed(const ProcessResult& r, int code);
// Failed(r, 3) and the stderr line names the rule ("rule RULE").
::testing::AssertionResult Denied(const ProcessResult& r, const std::string& rule);
// Exit 1; stderr: one or more FILE:LINE:COL: lines, then one "gatehouse: " line.
::testing::AssertionResult PolicyLoadFailed(const ProcessResult& r, const std::string& file);

// The store seen through the SQLite C API (read-only).
struct StoreSnapshot {
  std::string state;          // every table but the audit log, rows sorted
  int64_t last_audit_id = 0;  // the newest audit record
};
StoreSnapshot Snapshot(const std::string& store);
struct AuditRow {
  int64_t id;
  std::string actor, action, target, decision, rule, message, detail;
};
std::vector<AuditRow> AuditSince(const std::string& store, int64_t after_id);
int64_t QueryInt(const std::string& store, const std::string& sql);
void ExecSql(const std::string& store, const std::string& sql);
// The state is as in `before`, and the audit log gained exactly `denials`
// records, each a denial.
::testing::AssertionResult Unchanged(const std::string& store, const StoreSnapshot& before,
                                     int denials = 0);

// "2026-01-01T00:00:00Z" -> seconds since the epoch (-1 when malformed).
int64_t ParseIsoTime(const std::string& iso);

// People, workspaces and API users of the standard test organization.
inline constexpr const char* kOwner = "owner@acme.test";
inline constexpr const char* kAdmin = "admin@acme.test";          // org admin
inline constexpr const char* kOrgContrib = "contrib@acme.test";   // org contributor, no membership
inline constexpr const char* kOrgViewer = "viewer@acme.test";     // org viewer, no membership
inline constexpr const char* kWsAdmin = "wsadmin@acme.test";      // org viewer, admin of kDev
inline constexpr const char* kWsContrib = "wscontrib@acme.test";  // org viewer, contributor in kDev
inline constexpr const char* kWsViewer = "wsviewer@acme.test";    // org viewer, viewer in kDev
inline constexpr const char* kProdAdmin = "prodadmin@acme.test";  // org viewer, admin of kProd
inline constexpr const char* kDev = "Marketing-Development";      // shared
inline constexpr const char* kProd = "Marketing-Production";      // shared
inline constexpr const char* kPersonal = "Personal-Wsadmin";      // personal, owned by kWsAdmin
inline constexpr const char* kOrgWs = "Organization";             // made by init
inline constexpr const char* kDevBot = "dev-bot";                 // kDev contributor
inline constexpr const char* kDevViewerBot = "dev-viewer-bot";    // kDev viewer
inline constexpr const char* kProdBot = "prod-bot";               // kProd contributor
inline constexpr const char* kToggle = "workspace-admins-can-create-tokens";

struct NewToken {
  std::string id, secret;
  int64_t expires_at = 0;
};

// A test with its own temporary directory and store (not yet created).
class CliTest : public ::testing::Test {
 protected:
  CliTest() : gh_(dir_.File("gatehouse.db")) {}

  // init + the standard organization above (all through the CLI).
  void BuildWorld();
  // `token create --json` as WHO; a test failure (and an empty result) when it fails.
  NewToken CreateToken(const std::string& who, const std::string& apiuser,
                       const std::string& expires = "30d", const std::string& name = "t");
  void SetToggle(bool on);
  // The newest audit record, read through `gatehouse audit` as the owner.
  json LastAudit();

  TempDir dir_;
  Gatehouse gh_;
};

}  // namespace gatehouse::testing
