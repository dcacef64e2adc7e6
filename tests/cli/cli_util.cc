#include "cli/cli_util.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace gatehouse::testing {

std::string GatehouseBinary() { return std::string(GATEHOUSE_BINARY_DIR) + "/cli/gatehouse"; }
std::string DefaultPolicyDir() { return std::string(GATEHOUSE_SOURCE_DIR) + "/policies"; }

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

bool FileExists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// ---------------------------------------------------------------------------

std::vector<std::string> Gatehouse::Argv(const std::string& as,
                                         const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {GatehouseBinary(), "--store", store};
  if (!policy.empty()) argv.insert(argv.end(), {"--policy", policy});
  if (!as.empty()) argv.insert(argv.end(), {"--as", as});
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

ProcessResult Gatehouse::Run(const std::vector<std::string>& args) const { return As("", args); }

ProcessResult Gatehouse::As(const std::string& who, const std::vector<std::string>& args) const {
  ProcessOptions o;
  o.env = ChildEnvironment(env);
  o.timeout = timeout;
  return RunProcess(Argv(who, args), o);
}

std::unique_ptr<Process> Gatehouse::Start(const std::string& who,
                                          const std::vector<std::string>& args) const {
  ProcessOptions o;
  o.env = ChildEnvironment(env);
  o.timeout = timeout;
  return Process::Start(Argv(who, args), o);
}

json Gatehouse::Json(const std::string& who, const std::vector<std::string>& args) const {
  std::vector<std::string> a = args;
  a.push_back("--json");
  ProcessResult r = As(who, a);
  if (r.exit_code != 0) {
    ADD_FAILURE() << "expected success" << r;
    return nullptr;
  }
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << e.what() << r;
    return nullptr;
  }
}

// ---------------------------------------------------------------------------

::testing::AssertionResult Succeeded(const ProcessResult& r) {
  if (r.exited() && r.exit_code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected exit 0" << r;
}

namespace {
std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t nl = s.find('\n', start);
    if (nl == std::string::npos) nl = s.size();
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}
}  // namespace

::testing::AssertionResult Failed(const ProcessResult& r, int code) {
  if (!r.exited() || r.exit_code != code)
    return ::testing::AssertionFailure() << "expected exit " << code << r;
  if (r.err.empty() || r.err.back() != '\n' || std::count(r.err.begin(), r.err.end(), '\n') != 1)
    return ::testing::AssertionFailure() << "expected exactly one line on stderr" << r;
  if (std::find(r.argv.begin(), r.argv.end(), "--json") != r.argv.end()) {
    // Under --json the line is {"error": MESSAGE, "exit": CODE}.
    json j = json::parse(r.err, nullptr, false);
    if (!j.is_object() || !j.contains("error") || !j["error"].is_string() ||
        j["error"].get<std::string>().empty() || j.value("exit", -1) != code || j.size() != 2)
      return ::testing::AssertionFailure() << "expected {\"error\": ..., \"exit\": " << code
                                           << "} on stderr under --json" << r;
    return ::testing::AssertionSuccess();
  }
  if (r.err.rfind("gatehouse: ", 0) != 0 || r.err.size() < 14)
    return ::testing::AssertionFailure() << "expected stderr to start with 'gatehouse: '" << r;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Denied(const ProcessResult& r, const std::string& rule) {
  auto f = Failed(r, 3);
  if (!f) return f;
  if (r.err.find("rule " + rule) == std::string::npos)
    return ::testing::AssertionFailure() << "expected the denial to name rule " << rule << r;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult PolicyLoadFailed(const ProcessResult& r, const std::string& file) {
  if (!r.exited() || r.exit_code != 1)
    return ::testing::AssertionFailure() << "expected exit 1" << r;
  std::vector<std::string> lines = Lines(r.err);
  if (lines.size() < 2)
    return ::testing::AssertionFailure() << "expected FILE:LINE:COL lines and a last line" << r;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    const std::string& l = lines[i];
    // FILE:LINE:COL: message, FILE being the edited file.
    if (l.rfind(file + ":", 0) != 0)
      return ::testing::AssertionFailure() << "line " << i + 1 << " does not name " << file << r;
    size_t p = file.size() + 1;
    size_t line_end = l.find(':', p);
    size_t col_end = line_end == std::string::npos ? line_end : l.find(':', line_end + 1);
    auto digits = [&](size_t a, size_t b) {
      return b != std::string::npos && b > a &&
             std::all_of(l.begin() + static_cast<long>(a), l.begin() + static_cast<long>(b),
                         [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!digits(p, line_end) || !digits(line_end + 1, col_end) || l.compare(col_end, 2, ": ") != 0)
      return ::testing::AssertionFailure() << "line " << i + 1 << " is not FILE:LINE:COL: ..." << r;
  }
  if (std::find(r.argv.begin(), r.argv.end(), "--json") != r.argv.end()) {
    // Under --json the last line is {"error": MESSAGE, "exit": 1}.
    json j = json::parse(lines.back(), nullptr, false);
    if (!j.is_object() || !j.contains("error") || !j["error"].is_string() || j.value("exit", -1) != 1)
      return ::testing::AssertionFailure() << "the last stderr line must be {\"error\": ..., \"exit\": 1}" << r;
    return ::testing::AssertionSuccess();
  }
  if (lines.back().rfind("gatehouse: ", 0) != 0)
    return ::testing::AssertionFailure() << "the last stderr line must start 'gatehouse: '" << r;
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------

namespace {

struct Db {
  sqlite3* db = nullptr;
  explicit Db(const std::string& path, bool write = false) {
    int rc = sqlite3_open_v2(path.c_str(), &db,
                             write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, nullptr);
    if (rc != SQLITE_OK) {
      ADD_FAILURE() << "sqlite3_open_v2 " << path << ": " << sqlite3_errstr(rc);
      sqlite3_close(db);
      db = nullptr;
      return;
    }
    sqlite3_busy_timeout(db, 10'000);
  }
  ~Db() { sqlite3_close(db); }

  // Rows of `sql`, each value rendered as text (blobs in hex, NULL as \N).
  std::vector<std::vector<std::string>> Query(const std::string& sql) {
    std::vector<std::vector<std::string>> rows;
    if (!db) return rows;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
      return rows;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        switch (sqlite3_column_type(s, i)) {
          case SQLITE_NULL:
            row.push_back("\\N");
            break;
          case SQLITE_BLOB: {
            const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(s, i));
            std::string hex = "x'";
            static const char* d = "0123456789abcdef";
            for (int k = 0; k < sqlite3_column_bytes(s, i); ++k) {
              hex += d[p[k] >> 4];
              hex += d[p[k] & 15];
            }
            row.push_back(hex + "'");
            break;
          }
          default:
            row.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, i)));
        }
      }
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    sqlite3_finalize(s);
    return rows;
  }
};

}  // namespace

StoreSnapshot Snapshot(const std::string& store) {
  StoreSnapshot snap;
  Db db(store);
  auto tables = db.Query(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('audit_log', "
      "'sqlite_sequence') ORDER BY name");
  if (tables.empty()) ADD_FAILURE() << "store " << store << " has no tables";
  for (const auto& t : tables) {
    std::vector<std::string> rendered;
    for (const auto& row : db.Query("SELECT * FROM \"" + t[0] + "\"")) {
      std::string line;
      for (const auto& v : row) line += v + "|";
      rendered.push_back(line);
    }
    std::sort(rendered.begin(), rendered.end());
    snap.state += "== " + t[0] + "\n";
    for (const auto& l : rendered) snap.state += l + "\n";
  }
  snap.last_audit_id = QueryInt(store, "SELECT coalesce(max(id), 0) FROM audit_log");
  return snap;
}

std::vector<AuditRow> AuditSince(const std::string& store, int64_t after_id) {
  Db db(store);
  std::vector<AuditRow> out;
  for (auto& r : db.Query("SELECT id, actor, action, target, decision, rule, message, detail "
                          "FROM audit_log WHERE id > " +
                          std::to_string(after_id) + " ORDER BY id")) {
    out.push_back({std::stoll(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7]});
  }
  return out;
}

int64_t QueryInt(const std::string& store, const std::string& sql) {
  Db db(store);
  auto rows = db.Query(sql);
  if (rows.size() != 1 || rows[0].size() != 1) {
    ADD_FAILURE() << sql << ": expected one value";
    return -1;
  }
  return std::stoll(rows[0][0]);
}

void ExecSql(const std::string& store, const std::string& sql) {
  Db db(store, /*write=*/true);
  char* err = nullptr;
  if (sqlite3_exec(db.db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    ADD_FAILURE() << sql << ": " << (err ? err : "?");
  }
  sqlite3_free(err);
}

::testing::AssertionResult Unchanged(const std::string& store, const StoreSnapshot& before,
                                     int denials) {
  StoreSnapshot now = Snapshot(store);
  if (now.state != before.state)
    return ::testing::AssertionFailure() << "the store changed:\n--- before\n"
                                         << before.state << "--- after\n"
                                         << now.state;
  auto audit = AuditSince(store, before.last_audit_id);
  std::string listed;
  for (const auto& a : audit)
    listed += "  " + a.action + " " + a.decision + " " + a.rule + " by " + a.actor + "\n";
  if (static_cast<int>(audit.size()) != denials)
    return ::testing::AssertionFailure()
           << "expected " << denials << " new audit record(s), got " << audit.size() << ":\n"
           << listed;
  for (const auto& a : audit)
    if (a.decision != "deny")
      return ::testing::AssertionFailure() << "a new audit record is not a denial:\n" << listed;
  return ::testing::AssertionSuccess();
}

int64_t ParseIsoTime(const std::string& iso) {
  std::tm tm{};
  const char* end = ::strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return -1;
  return static_cast<int64_t>(::timegm(&tm));
}

// ---------------------------------------------------------------------------

void CliTest::BuildWorld() {
  ASSERT_TRUE(Succeeded(gh_.Run({"init", "--org", "Acme", "--owner", kOwner})));
  auto ok = [&](const std::vector<std::string>& args) {
    ASSERT_TRUE(Succeeded(gh_.As(kOwner, args)));
  };
  ok({"user", "add", kAdmin, "--org-role", "admin"});
  ok({"user", "add", kOrgContrib, "--org-role", "contributor"});
  for (const char* who : {kOrgViewer, kWsAdmin, kWsContrib, kWsViewer, kProdAdmin})
    ok({"user", "add", who, "--org-role", "viewer"});
  ok({"workspace", "create", kDev, "--type", "shared"});
  ok({"workspace", "create", kProd, "--type", "shared"});
  ok({"workspace", "create", kPersonal, "--type", "personal", "--owner", kWsAdmin});
  ok({"member", "add", kWsAdmin, "--workspace", kDev, "--role", "admin"});
  ok({"member", "add", kWsContrib, "--workspace", kDev, "--role", "contributor"});
  ok({"member", "add", kWsViewer, "--workspace", kDev, "--role", "viewer"});
  ok({"member", "add", kProdAdmin, "--workspace", kProd, "--role", "admin"});
  ok({"apiuser", "create", kDevBot, "--workspace", kDev, "--workspace-role", "contributor"});
  ok({"apiuser", "create", kDevViewerBot, "--workspace", kDev, "--workspace-role", "viewer"});
  ok({"apiuser", "create", kProdBot, "--workspace", kProd, "--workspace-role", "contributor"});
}

NewToken CliTest::CreateToken(const std::string& who, const std::string& apiuser,
                              const std::string& expires, const std::string& name) {
  json j = gh_.Json(
      who, {"token", "create", "--apiuser", apiuser, "--name", name, "--expires-in", expires});
  if (!j.is_object() || !j.contains("id") || !j.contains("token")) {
    ADD_FAILURE() << "token create --json gave " << j.dump();
    return {};
  }
  return {j["id"].get<std::string>(), j["token"].get<std::string>(),
          ParseIsoTime(j.value("expires_at", ""))};
}

void CliTest::SetToggle(bool on) {
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"settings", "set", kToggle, on ? "true" : "false"})));
}

json CliTest::LastAudit() {
  json j = gh_.Json(kOwner, {"audit", "--limit", "1"});
  if (!j.is_array() || j.size() != 1) {
    ADD_FAILURE() << "audit --limit 1 --json gave " << j.dump();
    return json::object();
  }
  return j[0];
}

}  // namespace gatehouse::testing
