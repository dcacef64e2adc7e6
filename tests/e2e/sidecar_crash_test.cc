// Crash safety of the sidecar (issue 5): the real `gatehoused` killed with
// SIGKILL under load hundreds of times -- while it starts, in its first tens
// of milliseconds of serving, and while it sweeps expired tokens out of the
// store -- and restarted on the same store each time.
//
// A first sidecar answers a fixed probe set (every token x workspace x
// action, batches, verification, forward-auth, /readyz): the baseline. Then,
// over every lifetime:
//  - every response a load client received whole is exactly the baseline's
//    answer to the same request, so never an allow, an active token or a
//    forward-auth 200 that the baseline refuses; no connection fails while
//    the sidecar is alive (failures around the kill are counted, expected);
//  - a sidecar dies of our SIGKILL only;
//  - every fourth restart, and at the end, the whole probe set equals the
//    baseline;
//  - a sweep of expired tokens is all or nothing;
//  - every decision-log line is whole JSON (a log shipper must never get a
//    torn line), holds no token secret and never allows a refused token, and
//    every decision a client received is in the log.
// At the end SQLite's integrity check passes, the last sidecar stops cleanly
// on SIGTERM, and the CLI verifies a live token and refuses the revoked one.
//
// GATEHOUSE_SIDECAR_KILLS sets the number of lifetimes (default 300). The
// kill windows scale with the sidecar's measured start-up time, so the kills
// land at the same points of a sidecar's life in a Debug, Release or
// sanitized build (which takes longer, not more lifetimes).
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e/demo.h"
#include "gatehouse/store.h"
#include "gatehouse/tokens.h"
#include "sidecar/fixture.h"
#include "sidecar/http_client.h"
#include "store/sqlite_store.h"

namespace gatehouse::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr int kDefaultLifetimes = 300;
constexpr int kSweepEvery = 40;             // one lifetime in this many lives past its first sweep
constexpr int kExpiredPerSweep = 2000;      // expired tokens added for each of those sweeps
constexpr int kLoadThreads = 4;             // the last one opens a connection per request
const std::string kSweepName = "sweep-me";  // the name of those tokens
const std::string kLongSegment(6000, 'a');  // makes decision-log lines longer than 4 KiB

double MsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

// One request of the probe set.
struct Probe {
  std::string name;  // for messages
  std::string method, target, body;
  HeaderList headers;
};

// The baseline's answer to a probe.
struct Answer {
  std::string normalised;  // Normalise()
  bool grants = false;     // Grants()
  int log_lines = 0;       // decision-log lines the request writes
};

// Drops the time of a GraphQL error: the one field of an answer that
// legitimately differs between two answers to the same request.
void DropTimes(json& j) {
  if (j.is_object()) j.erase("time_thrown");
  if (j.is_structured()) {
    for (json& v : j) DropTimes(v);
  }
}

// What must be identical between two answers to one request: the status,
// the X-Gatehouse-*, WWW-Authenticate and Content-Type headers, and the body
// less DropTimes (decisions, reasons, principals, policy revision, token
// iat and exp included).
std::string Normalise(const HttpResponse& r) {
  json out = {{"status", r.status}};
  for (const auto& [name, value] : r.headers) {
    if (name == "x-gatehouse-decision") {  // a 403's decision for nginx: the body's JSON
      json decision = json::parse(value, nullptr, false);
      DropTimes(decision);
      out["headers"][name] = decision.is_discarded() ? json(value) : decision;
    } else if (name.rfind("x-gatehouse-", 0) == 0 || name == "www-authenticate" || name == "content-type") {
      out["headers"][name] = value;
    }
  }
  json body = json::parse(r.body, nullptr, false);
  if (body.is_discarded()) {
    out["text"] = r.body;
  } else {
    DropTimes(body);
    out["body"] = std::move(body);
  }
  return out.dump();
}

bool IsTrue(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && *it == true;
}

// True when the response lets someone in: an allow (alone or in a batch), an
// active token, a forward-auth 200.
bool Grants(const HttpResponse& r) {
  if (r.status != 200) return false;
  const json j = json::parse(r.body, nullptr, false);
  if (!j.is_object()) return false;
  if (IsTrue(j, "allow") || IsTrue(j, "active")) return true;
  const auto results = j.find("results");
  if (results != j.end() && results->is_array()) {
    for (const json& d : *results) {
      if (d.is_object() && IsTrue(d, "allow")) return true;
    }
  }
  return false;
}

// The first column of the first row `sql` returns on the store, as text.
std::string QueryValue(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  std::string out;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << db;
  } else {
    sqlite3_busy_timeout(h, 5000);  // a sweep may be writing
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(st, 0);
      out = text != nullptr ? reinterpret_cast<const char*>(text) : "";
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(h);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return out;
}

// The WAL file's size and modification time. Nothing but a sweep writes the
// store while a sidecar runs here, so a change means a sweep is writing.
std::pair<int64_t, int64_t> WalState(const std::string& db) {
  struct stat st;
  if (::stat((db + "-wal").c_str(), &st) != 0) return {-1, 0};
  return {st.st_size, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
}

// Counts shared by the load threads and the main thread.
struct Tally {
  std::atomic<int64_t> served{0};              // responses received whole
  std::atomic<int64_t> log_lines{0};           // the decision-log lines those wrote
  std::atomic<int64_t> connection_errors{0};   // once the kill was sent: expected
  std::atomic<int64_t> errors_while_alive{0};  // before it: a failure
  std::atomic<int64_t> mismatches{0};          // answers unlike the baseline's
  std::atomic<int64_t> wrong_grants{0};        // ... that let in what the baseline refused
  std::mutex mu;
  std::vector<std::string> examples;  // the first failures, for the report

  void Note(std::string what) {
    std::lock_guard<std::mutex> lock(mu);
    if (examples.size() < 10) examples.push_back(std::move(what));
  }
  // Compares a response received whole with the baseline's answer.
  void Check(const std::string& when, const Probe& p, const Answer& want, const HttpResponse& got) {
    ++served;
    log_lines += want.log_lines;
    const std::string normalised = Normalise(got);
    if (normalised == want.normalised) return;
    ++mismatches;
    const bool granted = Grants(got) && !want.grants;
    if (granted) ++wrong_grants;
    Note(when + ": " + p.name + (granted ? " GRANTED what the baseline refuses" : "") +
         "\n  baseline: " + want.normalised.substr(0, 600) +
         "\n  got:      " + normalised.substr(0, 600));
  }
};

// Load for one sidecar lifetime: `threads` clients sending random requests
// of the probe set until stopped; joined by Stop() or the destructor.
class Load {
 public:
  Load(int port, uint32_t seed, const std::string& when, const std::vector<Probe>& probes,
       const std::vector<Answer>& baseline, Tally& tally) {
    for (int i = 0; i < kLoadThreads; ++i) {
      threads_.emplace_back([=, this, &probes, &baseline, &tally] {
        Run(port, seed + static_cast<uint32_t>(i), /*one_shot=*/i == kLoadThreads - 1, when, probes,
            baseline, tally);
      });
    }
  }
  ~Load() { Stop(); }
  // Called just before the SIGKILL: from now on a failed connection is expected.
  void Killing() { killing_ = true; }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void Run(int port, uint32_t seed, bool one_shot, const std::string& when,
           const std::vector<Probe>& probes, const std::vector<Answer>& baseline, Tally& tally) {
    std::mt19937 rng(seed);
    std::unique_ptr<HttpConnection> c;
    while (!stop_) {
      if (!c) c = std::make_unique<HttpConnection>(port, 5000);
      const size_t i = rng() % probes.size();
      const Probe& p = probes[i];
      HttpResponse r;
      if (c->connected()) {
        r = c->Request(p.method, p.target, p.headers, p.body, one_shot);
      } else {
        r.error = "cannot connect";
      }
      const bool whole = r.status != 0 && r.error.empty();
      if (!whole || one_shot || r.Header("connection") == "close") c.reset();
      if (whole) {
        tally.Check(when, p, baseline[i], r);
      } else if (killing_) {
        ++tally.connection_errors;
        std::this_thread::sleep_for(1ms);  // the sidecar is going: do not spin
      } else {
        ++tally.errors_while_alive;
        tally.Note(when + ": " + p.name + ": " + r.error + " while the sidecar was alive");
      }
    }
  }

  std::atomic<bool> stop_{false}, killing_{false};
  std::vector<std::thread> threads_;
};

// A token of the probe set; `refused` ones must never be active.
struct TokenCase {
  std::string name, secret, id;
  bool refused = false;
};

class SidecarCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kCli)) << kCli;
    ASSERT_TRUE(fs::exists(kSidecar)) << kSidecar;
    fs::create_directories(dir_.File("policies"));
    WriteAll(dir_.File("policies/api-tokens.yaml"), DefaultPolicyText());
    env_ = {"GATEHOUSE_STORE=" + store(), "GATEHOUSE_POLICY=" + dir_.File("policies"),
            "GATEHOUSE_AS=owner@demo.test"};
    CreateStore();
    if (HasFatalFailure()) return;
    BuildProbes();
  }

  void TearDown() override {
    if (HasFailure()) {
      const std::string err = ReadAll(dir_.File("gatehoused.stderr"));
      std::cerr << "--- gatehoused stderr (last 4 KiB) ---\n"
                << err.substr(err.size() > 4096 ? err.size() - 4096 : 0);
    }
  }

  std::string store() const { return dir_.File("gatehouse.db"); }
  std::string decision_log() const { return dir_.File("decisions.jsonl"); }

  ProcessResult Cli(std::vector<std::string> args) { return RunCli(std::move(args), env_); }
  TokenCase CreateToken(const std::string& name, const std::string& api_user) {
    CliToken t = CreatedToken(Cli({"token", "create", "--apiuser", api_user, "--name", name,
                                   "--expires-in", "30d", "--json"}));
    return {name, t.secret, t.id};
  }

  // The demo with the real CLI, plus an organization-wide API user, a revoked
  // token, the token of a deleted API user, and (through the store library,
  // as the CLI makes no expired tokens) an expired one.
  void CreateStore() {
    for (const auto& args : DemoCommands()) {
      ProcessResult r = Cli(args);
      ASSERT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.err;
    }
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"apiuser", "create", "org-bot", "--workspace", "Marketing-Development",
              "--workspace-role", "viewer", "--org-role", "admin"},
             {"apiuser", "create", "doomed", "--workspace", "Marketing-Production",
              "--workspace-role", "contributor"}}) {
      ProcessResult r = Cli(args);
      ASSERT_EQ(r.exit_code, 0) << args[2] << ": " << r.err;
    }
    tokens_ = {
        CreateToken("dev-exporter", "dev-exporter"), CreateToken("prod-importer", "prod-importer"),
        CreateToken("prod-viewer", "prod-viewer"),   CreateToken("org-bot", "org-bot"),
        CreateToken("revoked", "prod-importer"),     CreateToken("deleted", "doomed")};
    ASSERT_FALSE(HasFailure());
    tokens_[4].refused = tokens_[5].refused = true;
    ProcessResult r = Cli({"token", "revoke", tokens_[4].id});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Cli({"apiuser", "delete", "doomed"});
    ASSERT_EQ(r.exit_code, 0) << r.err;

    auto s = OpenSqliteStore(store());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto org = (*s)->TheOnlyOrganization();
    ASSERT_TRUE(org.ok()) << org.status().ToString();
    auto viewer = (*s)->FindApiUser(org->id, "prod-viewer");
    ASSERT_TRUE(viewer.ok()) << viewer.status().ToString();
    viewer_id_ = viewer->id;
    const int64_t now = std::time(nullptr);
    const DemoToken expired = AddToken(**s, viewer_id_, "expired", now - 2 * kDay, now - kDay);
    auto unknown = MintToken();  // well-formed, never stored
    ASSERT_TRUE(unknown.ok());
    tokens_.push_back({"expired", expired.secret, expired.id, true});
    tokens_.push_back({"unknown", unknown->secret, unknown->id, true});
    tokens_.push_back({"garbage", "not-a-token", "", true});
  }

  // Expired tokens for the next sweep to delete (none of the probe set's).
  void AddExpiredTokens(int n) {
    auto s = OpenSqliteStore(store(), StoreOptions{.durable_commits = false});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    const int64_t now = std::time(nullptr);
    Status st = (*s)->Transaction([&] {
      for (int i = 0; i < n; ++i) AddToken(**s, viewer_id_, kSweepName, now - 2 * kDay, now - kDay);
      return Status::Ok();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  int64_t ExpiredLeft() {
    return std::atoll(
        QueryValue(store(), "SELECT count(*) FROM tokens WHERE name = '" + kSweepName + "'")
            .c_str());
  }

  void BuildProbes() {
    const std::vector<std::string> workspaces = {"Marketing-Development", "Marketing-Production",
                                                 "Organization"};
    const std::vector<std::string> actions = {"project.import", "project.export", "token.list"};
    const HeaderList json_type = {{"Content-Type", "application/json"}};
    auto post = [&](std::string name, std::string target, json body, HeaderList headers = {}) {
      headers.insert(headers.end(), json_type.begin(), json_type.end());
      probes_.push_back({std::move(name), "POST", std::move(target), body.dump(), headers});
    };
    auto forward = [&](std::string name, const TokenCase* t, const std::string& method,
                       const std::string& uri, const std::string& target = "/v1/forward-auth",
                       const std::string& style = "Original") {
      HeaderList h;
      if (t != nullptr) h.emplace_back("Authorization", "Bearer " + t->secret);
      if (!uri.empty()) {
        h.emplace_back("X-" + style + "-URI", uri);
        h.emplace_back("X-" + style + "-Method", method);
      }
      probes_.push_back({std::move(name), "GET", target, "", h});
    };
    for (const TokenCase& t : tokens_) {
      json checks = json::array();
      for (const std::string& ws : workspaces) {
        for (const std::string& a : actions) {
          const json check = {{"token", t.secret}, {"action", a}, {"workspace", ws}};
          post("authorize " + t.name + " " + a + " " + ws, "/v1/authorize", check);
          checks.push_back(check);
        }
      }
      post("authorize/batch " + t.name, "/v1/authorize/batch", {{"checks", checks}});
      post("authorize (Bearer) " + t.name, "/v1/authorize",
           {{"action", "project.export"}, {"workspace", "Marketing-Development"}},
           {{"Authorization", "Bearer " + t.secret}});
      post("verify " + t.name, "/v1/tokens/verify", {{"token", t.secret}});
      forward("forward-auth " + t.name + " import Production", &t, "POST",
              "/workspaces/Marketing-Production/projects/p1/import");
      forward("forward-auth " + t.name + " export Development", &t, "POST",
              "/workspaces/Marketing-Development/projects/p1/export");
      forward("forward-auth " + t.name + " import Development", &t, "POST",
              "/workspaces/Marketing-Development/projects/p1/import");
      forward("forward-auth " + t.name + " unmapped", &t, "GET",
              "/workspaces/Marketing-Production/projects/p1");
    }
    for (const std::string user : {"owner@demo.test", "alice@demo.test", "nobody@demo.test"}) {
      for (const std::string& ws : workspaces) {
        for (const std::string a : {"project.export", "token.list"}) {
          post("authorize user " + user + " " + a + " " + ws, "/v1/authorize",
               {{"user", user}, {"action", a}, {"workspace", ws}});
        }
      }
    }
    const TokenCase* prod = &tokens_[1];
    const TokenCase* unknown = &tokens_[7];
    probes_.push_back({"verify (form) prod-importer",
                       "POST",
                       "/v1/tokens/verify",
                       "token=" + prod->secret,
                       {{"Content-Type", "application/x-www-form-urlencoded"}}});
    probes_.push_back(
        {"verify (Bearer) prod-viewer",
         "POST",
         "/v1/tokens/verify",
         "{}",
         {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + tokens_[2].secret}}});
    forward("forward-auth (Traefik) prod-importer", prod, "POST",
            "/workspaces/Marketing-Production/projects/p1/import", "/v1/forward-auth", "Forwarded");
    forward("forward-auth (Envoy) prod-importer", prod, "", "",
            "/v1/forward-auth/workspaces/Marketing-Production/projects/p1/import");
    forward("forward-auth without a token", nullptr, "POST",
            "/workspaces/Marketing-Production/projects/p1/import");
    // Decision-log lines longer than stdio's 4 KiB buffer.
    const std::string long_import =
        "/workspaces/Marketing-Production/projects/" + kLongSegment + "/import";
    forward("forward-auth prod-importer long URI", prod, "POST", long_import);
    forward("forward-auth unknown long URI", unknown, "POST", long_import);
    forward("forward-auth prod-importer long unmapped URI", prod, "GET",
            "/workspaces/Marketing-Production/" + kLongSegment);
    probes_.push_back({"readyz", "GET", "/readyz", "", {}});
    probes_.push_back({"healthz", "GET", "/healthz", "", {}});
  }

  std::vector<std::string> SidecarArgv() const {
    // clang-format off
    return {kSidecar,
            "--listen", "127.0.0.1:0",
            "--store", store(),
            "--policy", dir_.File("policies"),
            "--decision-log", decision_log(),
            "--sweep-interval", "1",
            "--policy-poll-ms", "100",
            "--threads", "16"};
    // clang-format on
  }
  Sidecar StartSidecar() { return LaunchSidecar(SidecarArgv(), dir_.File("gatehoused.stderr")); }

  // Sends the whole probe set over one keep-alive connection.
  std::vector<HttpResponse> AskAll(int port) {
    std::vector<HttpResponse> out;
    auto c = std::make_unique<HttpConnection>(port, 10000);
    for (const Probe& p : probes_) {
      out.push_back(c->Request(p.method, p.target, p.headers, p.body));
      if (!out.back().error.empty() || out.back().Header("connection") == "close")
        c = std::make_unique<HttpConnection>(port, 10000);
    }
    return out;
  }

  // The probe set's answers, with the decision-log lines each wrote.
  std::vector<Answer> Baseline(int port) {
    std::vector<Answer> out;
    HttpConnection c(port, 10000);
    int64_t offset = static_cast<int64_t>(fs::file_size(decision_log()));
    for (const Probe& p : probes_) {
      const HttpResponse r = c.Request(p.method, p.target, p.headers, p.body);
      EXPECT_TRUE(r.error.empty() && r.status > 0 && r.status < 500)
          << p.name << ": " << r.status << " " << r.error << " " << r.body;
      const std::string added = ReadFrom(decision_log(), &offset);
      out.push_back({Normalise(r), Grants(r),
                     static_cast<int>(std::count(added.begin(), added.end(), '\n'))});
    }
    return out;
  }

  // Asks the probe set and counts every answer unlike the baseline's.
  void CheckProbes(int port, const std::string& when, const std::vector<Answer>& baseline,
                   Tally& tally) {
    const std::vector<HttpResponse> got = AskAll(port);
    for (size_t i = 0; i < probes_.size(); ++i) {
      if (!got[i].error.empty() || got[i].status == 0) {
        ++tally.errors_while_alive;
        tally.Note(when + ": probe " + probes_[i].name + ": " + got[i].error);
      } else {
        tally.Check(when + " (probe set)", probes_[i], baseline[i], got[i]);
      }
    }
  }

  static std::string ReadFrom(const std::string& path, int64_t* offset) {
    std::ifstream in(path, std::ios::binary);
    in.seekg(*offset);
    std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    *offset += static_cast<int64_t>(out.size());
    return out;
  }

  // Checks the decision log from `*offset` on as a log shipper reads it:
  // whole lines of JSON, no token secret, no allow for a refused token.
  // Returns the whole lines read. A kill can leave the log ending in a torn
  // line (the kernel stops a write() between two pages when SIGKILL
  // arrives); that is counted and read again by the next check, after the
  // next sidecar has opened the log: by then it must be gone, not continued
  // by the next sidecar's first line. `final`: the last check, after a clean
  // stop, where a torn end is a failure in itself.
  int64_t CheckLog(const std::string& when, int64_t* offset, bool final = false) {
    const int64_t start = *offset;
    const std::string chunk = ReadFrom(decision_log(), offset);
    std::set<std::string> refused_ids;
    for (const TokenCase& t : tokens_) {
      if (t.refused && !t.id.empty()) refused_ids.insert(t.id);
    }
    int64_t lines = 0;
    size_t pos = 0;
    for (size_t nl; (nl = chunk.find('\n', pos)) != std::string::npos; pos = nl + 1, ++lines) {
      const std::string line = chunk.substr(pos, nl - pos);
      const int64_t at = start + static_cast<int64_t>(pos);
      const json j = json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains("decision")) {
        const bool continued = at == tear_.at && line.size() > tear_.size;
        ADD_FAILURE() << when << ": decision-log line at byte " << at << " is not a JSON decision ("
                      << line.size() << " bytes): '" << line.substr(0, 160) << "'"
                      << (continued
                              ? "\n  it is the torn end of " + tear_.Describe() +
                                    ", continued by the next sidecar: '..." +
                                    line.substr(tear_.size - std::min<size_t>(tear_.size, 40), 80) +
                                    "...'"
                              : "");
        continue;
      }
      if (j["decision"] == "allow" && refused_ids.count(j.value("token_id", ""))) {
        ADD_FAILURE() << when << ": the decision log allows a refused token: " << line;
      }
      for (const TokenCase& t : tokens_) {
        if (t.secret.size() > 12 && line.find(t.secret) != std::string::npos)
          ADD_FAILURE() << when << ": the decision log holds the secret of token " << t.name;
      }
    }
    if (pos == chunk.size()) return lines;
    // A torn end: read it again next time.
    const int64_t at = start + static_cast<int64_t>(pos);
    if (at != tear_.at) {
      tear_ = {when, at, chunk.size() - pos, chunk.substr(pos, 80)};
      ++tears_;
    }
    *offset = at;
    if (final) ADD_FAILURE() << "the decision log ends in a torn line: " << tear_.Describe();
    return lines;
  }

  // The last torn end of the decision log.
  struct Tear {
    std::string when;
    int64_t at = -1;
    size_t size = 0;
    std::string begins;
    std::string Describe() const {
      const int64_t end = at + static_cast<int64_t>(size);
      return when + "'s log: " + std::to_string(size) + " bytes from byte " + std::to_string(at) +
             " to " + std::to_string(end) + (end % 4096 == 0 ? " (a 4 KiB page boundary)" : "") +
             ", beginning '" + begins + "'";
    }
  };
  Tear tear_;
  int tears_ = 0;

  TempDir dir_;
  std::vector<std::string> env_;  // NAME=VALUE for the CLI
  std::vector<TokenCase> tokens_;  // 1 prod-importer, 2 prod-viewer, 7 unknown
  int64_t viewer_id_ = 0;
  std::vector<Probe> probes_;
};

enum class Kill { kWhileStarting, kEarly, kAfterProbes, kAroundSweep };

TEST_F(SidecarCrashTest, KilledUnderLoadHundredsOfTimesRestartsAndServesTheSameDecisions) {
  const auto test_start = SteadyClock::now();
  const char* env_kills = std::getenv("GATEHOUSE_SIDECAR_KILLS");
  const int lifetimes = env_kills != nullptr ? std::atoi(env_kills) : kDefaultLifetimes;
  ASSERT_GT(lifetimes, 0) << "GATEHOUSE_SIDECAR_KILLS=" << env_kills;
  const int sweeps = std::max(1, lifetimes / kSweepEvery);
  std::mt19937 rng(20261129);
  Tally tally;
  int64_t log_offset = 0, log_lines = 0, expected_log_lines = 0;

  // The baseline, asked twice of one sidecar: an answer that changes without
  // a kill would make every comparison below meaningless.
  WriteAll(decision_log(), "");
  auto t0 = SteadyClock::now();
  Sidecar first = StartSidecar();
  ASSERT_TRUE(first.process);
  const double start_ms = MsSince(t0);
  const std::vector<Answer> baseline = Baseline(first.port);
  const std::vector<Answer> again = Baseline(first.port);
  for (size_t i = 0; i < probes_.size(); ++i) {
    EXPECT_EQ(again[i].normalised, baseline[i].normalised) << probes_[i].name;
    EXPECT_EQ(again[i].log_lines, baseline[i].log_lines) << probes_[i].name;
    expected_log_lines += 2 * baseline[i].log_lines;
  }
  EXPECT_EQ(first.process->Stop(10s).exit_code, 0) << "the first sidecar did not stop cleanly";
  first.process.reset();
  log_lines += CheckLog("the baseline", &log_offset);
  ASSERT_FALSE(HasFailure()) << "the baseline is not sound";

  // The baseline itself: refused tokens refused everywhere, live ones
  // allowed somewhere.
  std::set<std::string> granted_to;
  for (size_t i = 0; i < probes_.size(); ++i) {
    for (const TokenCase& t : tokens_) {
      if (probes_[i].name.find(" " + t.name + " ") == std::string::npos &&
          !probes_[i].name.ends_with(" " + t.name))
        continue;
      if (baseline[i].grants) granted_to.insert(t.name);
      EXPECT_FALSE(t.refused && baseline[i].grants) << probes_[i].name << " is granted";
    }
  }
  EXPECT_EQ(granted_to,
            (std::set<std::string>{"dev-exporter", "prod-importer", "prod-viewer", "org-bot"}));

  // The kill windows, scaled by this build's start-up time.
  const auto start_us = static_cast<uint32_t>(std::max(1000.0, start_ms * 1000));
  const uint32_t early_us = std::clamp<uint32_t>(2 * start_us, 10'000, 200'000);
  const auto sweep_deadline = 1500ms + 4 * std::chrono::microseconds(start_us);

  int killed_starting = 0, killed_before_listening = 0, killed_early = 0, killed_after_probes = 0;
  int killed_around_sweep = 0, sweeps_committed = 0, killed_mid_sweep = 0, probe_sets = 0;
  double ready_ms_sum = 0, ready_ms_max = 0;
  int readies = 0;
  int64_t expired_pending = 0;
  for (int life = 0; life < lifetimes && !HasFatalFailure(); ++life) {
    Kill kill = life % 4 == 1    ? Kill::kAfterProbes
                : rng() % 8 == 0 ? Kill::kWhileStarting
                                 : Kill::kEarly;
    if ((life + 1) * sweeps / lifetimes != life * sweeps / lifetimes) kill = Kill::kAroundSweep;
    if (kill == Kill::kAroundSweep) {
      AddExpiredTokens(kExpiredPerSweep);
      ASSERT_FALSE(HasFatalFailure());
      expired_pending += kExpiredPerSweep;
    }
    const char* kind[] = {"while starting", "early", "after the probe set", "around a sweep"};
    const std::string when =
        "lifetime " + std::to_string(life) + " (kill " + kind[static_cast<int>(kill)] + ")";
    std::unique_ptr<Process> process;
    std::unique_ptr<Load> load;
    std::pair<int64_t, int64_t> wal{0, 0};
    bool sweep_seen = false;
    if (kill == Kill::kWhileStarting) {
      process = Process::Start(SidecarArgv(), {.stderr_path = dir_.File("gatehoused.stderr")});
      ASSERT_TRUE(process);
      // Within 1.2 times the restarts' mean time to ready so far.
      const double mean_ms = readies ? ready_ms_sum / readies : start_ms;
      const auto window_us = static_cast<uint32_t>(std::max(1000.0, mean_ms * 1200));
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % window_us));
      ++killed_starting;
    } else {
      t0 = SteadyClock::now();
      Sidecar s = StartSidecar();
      ASSERT_TRUE(s.process) << when;
      const double ready_ms = MsSince(t0);
      ready_ms_sum += ready_ms;
      ready_ms_max = std::max(ready_ms_max, ready_ms);
      ++readies;
      process = std::move(s.process);
      wal = WalState(store());
      const auto ready = SteadyClock::now();
      if (kill != Kill::kEarly) {
        CheckProbes(s.port, when, baseline, tally);
        ++probe_sets;
      }
      load = std::make_unique<Load>(s.port, rng(), when, probes_, baseline, tally);
      if (kill == Kill::kAroundSweep) {
        // Alternately inside the sweep's transaction (just after it starts
        // writing the WAL) and just after its commit (while the sidecar
        // rebuilds its token index).
        const bool after_commit = killed_around_sweep++ % 2 == 0;
        while (SteadyClock::now() - ready < sweep_deadline && !sweep_seen) {
          std::this_thread::sleep_for(200us);
          sweep_seen = WalState(store()) != wal;
        }
        while (after_commit && sweep_seen && SteadyClock::now() - ready < sweep_deadline &&
               ExpiredLeft() != 0) {
          std::this_thread::sleep_for(500us);
        }
        std::this_thread::sleep_for(
            std::chrono::microseconds(rng() % (after_commit ? 10000 : 3000)));
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % early_us));
        ++(kill == Kill::kEarly ? killed_early : killed_after_probes);
      }
    }

    if (load) load->Killing();
    if (!process->Running()) {
      ADD_FAILURE() << when << ": gatehoused died before the kill" << process->Wait(10s);
    }
    process->Kill(SIGKILL);
    const ProcessResult status = process->Wait(10s);
    EXPECT_TRUE(!status.timed_out && status.term_signal == SIGKILL)
        << when << ": gatehoused did not end by the SIGKILL" << status;
    if (load) load->Stop();
    if (kill == Kill::kWhileStarting && !process->ReadLine(1s)) ++killed_before_listening;
    process.reset();
    log_lines += CheckLog(when, &log_offset);

    if (kill == Kill::kAroundSweep) {
      const int64_t left = ExpiredLeft();
      EXPECT_TRUE(left == 0 || left == expired_pending)
          << when << ": a sweep of " << expired_pending << " expired tokens left " << left;
      if (left == 0) ++sweeps_committed;
      if (left != 0 && sweep_seen) ++killed_mid_sweep;
      expired_pending = left;
    }
  }

  // A last restart: the probe set once more, then a clean stop.
  Sidecar last = StartSidecar();
  ASSERT_TRUE(last.process);
  CheckProbes(last.port, "after the last restart", baseline, tally);
  ++probe_sets;
  EXPECT_EQ(last.process->Stop(10s).exit_code, 0)
      << "the last sidecar did not stop cleanly on SIGTERM";
  last.process.reset();
  log_lines += CheckLog("after the last restart", &log_offset, /*final=*/true);
  expected_log_lines += tally.log_lines.load();

  for (const std::string& e : tally.examples) ADD_FAILURE() << e;
  EXPECT_EQ(tally.mismatches.load(), 0) << "answers unlike the baseline";
  EXPECT_EQ(tally.wrong_grants.load(), 0) << "answers that let in what the baseline refuses";
  EXPECT_EQ(tally.errors_while_alive.load(), 0) << "failed requests while the sidecar was alive";
  EXPECT_GE(log_lines, expected_log_lines)
      << "decisions that clients received are missing from the decision log";
  EXPECT_GT(tally.served.load(), 20 * lifetimes) << "too little load to prove anything";
  EXPECT_GT(sweeps_committed, 0) << "no kill came after a sweep: the sweep window is wrong";

  EXPECT_EQ(QueryValue(store(), "PRAGMA integrity_check"), "ok");
  ProcessResult r = Cli({"token", "verify", tokens_[1].secret});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Cli({"token", "verify", tokens_[4].secret});
  EXPECT_EQ(r.exit_code, 3) << "the revoked token: " << r.out << r.err;

  std::printf(
      "sidecar crash: %d lifetimes, %d SIGKILLs (%d while starting, %d of them before it "
      "listened; %d early; %d after the probe set; %d around a sweep: %d after it committed, %d "
      "inside it), %lld requests served, %lld connection errors around kills, %d probe sets "
      "checked, %lld decision-log lines whole, %d torn by a kill, restart-to-ready mean %.1f ms "
      "(max %.1f ms, first start %.1f ms), %.1f s\n",
      lifetimes, killed_starting + killed_early + killed_after_probes + killed_around_sweep,
      killed_starting, killed_before_listening, killed_early, killed_after_probes,
      killed_around_sweep, sweeps_committed, killed_mid_sweep,
      static_cast<long long>(tally.served.load()),
      static_cast<long long>(tally.connection_errors.load()), probe_sets,
      static_cast<long long>(log_lines), tears_, readies ? ready_ms_sum / readies : 0.0,
      ready_ms_max, start_ms, MsSince(test_start) / 1000);
}

}  // namespace
}  // namespace gatehouse::testing
