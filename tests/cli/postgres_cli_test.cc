// The CLI end to end on a PostgreSQL store (support/postgres.h): the same
// commands give the same outputs as on SQLite, `store copy` carries a SQLite
// store over with its ids and audit log, and a password never goes on the
// command line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "support/postgres.h"

namespace gatehouse::testing {
namespace {

class PostgresCliTest : public CliTest {
 protected:
  void SetUp() override {
    PostgresServer* pg = PostgresServer::Get();
    ASSERT_NE(pg, nullptr);
    locator_ = pg->NewDatabase();
    ASSERT_FALSE(locator_.empty());
    sqlite_ = gh_.store;
  }

  // What every reader sees, as the owner and as a workspace admin.
  std::vector<std::pair<std::string, ProcessResult>> Listings(const std::string& store) {
    Gatehouse g(store);
    std::vector<std::pair<std::string, ProcessResult>> out;
    const std::vector<std::pair<const char*, std::vector<std::string>>> reads = {
        {kOwner, {"apiuser", "list"}},
        {kOwner, {"apiuser", "list", "--workspace", kDev}},
        {kOwner, {"settings", "show"}},
        {kWsAdmin, {"apiuser", "list"}},
        {kOwner, {"authorize", "--action", "token.create", "--workspace", kDev, "--user", kWsAdmin}},
        {kOrgViewer, {"apiuser", "create", "nope", "--workspace", kDev}},  // denied
        {kOwner, {"workspace", "create", "marketing-DEVELOPMENT", "--type", "shared"}},  // conflict
        {kOwner, {"user", "add", "ADMIN@acme.test", "--org-role", "viewer"}},            // conflict
        {kOwner, {"apiuser", "delete", "no-such-bot"}},                                   // not found
    };
    for (const auto& [who, args] : reads) {
      std::string name = who;
      for (const auto& a : args) name += " " + a;
      out.emplace_back(name, g.As(who, args));
    }
    return out;
  }

  std::string locator_;
  std::string sqlite_;
};

TEST_F(PostgresCliTest, TheSameCommandsGiveTheSameOutputsOnBothBackends) {
  BuildWorld();  // on SQLite
  gh_.store = locator_;
  BuildWorld();  // the same, through the same commands, on PostgreSQL
  auto a = Listings(sqlite_), b = Listings(locator_);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].second.exit_code, b[i].second.exit_code) << a[i].first << "\n" << b[i].second;
    EXPECT_EQ(a[i].second.out, b[i].second.out) << a[i].first;
    EXPECT_EQ(a[i].second.err, b[i].second.err) << a[i].first;
  }
  // Tokens: made, listed, verified and revoked the same way.
  NewToken t = CreateToken(kOwner, kDevBot);
  ASSERT_FALSE(t.id.empty());
  ProcessResult list = gh_.As(kOwner, {"token", "list"});
  ASSERT_TRUE(Succeeded(list));
  EXPECT_NE(list.out.find(t.id), std::string::npos);
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"token", "verify", t.secret})));
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"token", "revoke", t.id})));
  EXPECT_TRUE(Failed(gh_.As(kOwner, {"token", "verify", t.secret}), 3));
  EXPECT_TRUE(Failed(gh_.As(kOwner, {"token", "revoke", t.id}), 4));
  // Deleting an API user takes its tokens with it.
  NewToken u = CreateToken(kOwner, kProdBot);
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"apiuser", "delete", kProdBot})));
  EXPECT_TRUE(Failed(gh_.As(kOwner, {"token", "verify", u.secret}), 3));
  // init on a store that exists is a conflict, and changes nothing.
  EXPECT_TRUE(Failed(gh_.Run({"init", "--org", "Other", "--owner", kOwner}), 5));
  json audit = gh_.Json(kOwner, {"audit", "--limit", "3"});
  ASSERT_TRUE(audit.is_array());
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit[0].value("action", ""), "api_user.delete") << audit.dump();  // not init's
}

TEST_F(PostgresCliTest, StoreCopyCarriesASqliteStoreOverWithItsIdsAndAuditLog) {
  BuildWorld();
  SetToggle(true);
  NewToken keep = CreateToken(kOwner, kDevBot);
  NewToken gone = CreateToken(kWsAdmin, kDevViewerBot);
  ASSERT_TRUE(Succeeded(gh_.As(kOwner, {"token", "revoke", gone.id})));
  ProcessResult copy = gh_.Run({"store", "copy", "--to", locator_});
  ASSERT_TRUE(Succeeded(copy));
  EXPECT_NE(copy.out.find("copied store"), std::string::npos) << copy;

  auto a = Listings(sqlite_), b = Listings(locator_);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].second.exit_code, b[i].second.exit_code) << a[i].first;
    EXPECT_EQ(a[i].second.out, b[i].second.out) << a[i].first;
  }
  // Listings of what was copied, ids and times included, are identical.
  Gatehouse pg(locator_);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"token", "list"}, {"apiuser", "list"}}) {
    ProcessResult x = gh_.As(kOwner, args), y = pg.As(kOwner, args);
    ASSERT_TRUE(Succeeded(x));
    ASSERT_TRUE(Succeeded(y));
    EXPECT_EQ(x.out, y.out);
  }
  // The audit log came along: the copy's newest records are the source's.
  json src = gh_.Json(kOwner, {"audit", "--limit", "100"});
  json dst = pg.Json(kOwner, {"audit", "--limit", "100"});
  ASSERT_TRUE(src.is_array() && dst.is_array());
  ASSERT_GE(dst.size(), src.size());
  // (dst gained the audit records of the listing commands above.)
  EXPECT_EQ(dst[dst.size() - 1], src[src.size() - 1]);  // the init record, id and time kept
  // The copied token works on PostgreSQL; the revoked one does not.
  EXPECT_TRUE(Succeeded(pg.As(kOwner, {"token", "verify", keep.secret})));
  EXPECT_TRUE(Failed(pg.As(kOwner, {"token", "verify", gone.secret}), 3));
  // A second copy into the now non-empty store is refused, and changes nothing.
  EXPECT_TRUE(Failed(gh_.Run({"store", "copy", "--to", locator_}), 1));
  EXPECT_TRUE(Failed(gh_.Run({"store", "copy", "--to", dir_.File("x.db")}), 2));
}

TEST_F(PostgresCliTest, APasswordOnTheCommandLineIsRefusedAndNeverPrinted) {
  gh_.store = locator_;
  ASSERT_TRUE(Succeeded(gh_.Run({"init", "--org", "Acme", "--owner", kOwner})));
  const std::string with_password = "postgresql://gh:hunter2@/" + locator_.substr(locator_.find(":///") + 4);
  Gatehouse bad(with_password);
  ProcessResult r = bad.As(kOwner, {"apiuser", "list"});
  EXPECT_TRUE(Failed(r, 2));
  EXPECT_NE(r.err.find("PGPASSFILE"), std::string::npos) << r;
  EXPECT_EQ(r.err.find("hunter2"), std::string::npos) << r;
  ProcessResult to = gh_.Run({"store", "copy", "--from", sqlite_, "--to", with_password});
  EXPECT_TRUE(Failed(to, 2));
  EXPECT_EQ(to.err.find("hunter2"), std::string::npos) << to;
  // In GATEHOUSE_STORE it is accepted (trust authentication ignores it),
  // and never printed.
  Gatehouse env("");
  ProcessResult ok = RunProcess({GatehouseBinary(), "--as", kOwner, "apiuser", "list"},
                                {.env = ChildEnvironment({"GATEHOUSE_STORE=" + with_password})});
  EXPECT_TRUE(Succeeded(ok)) << ok;
  // PGPASSWORD is libpq's; a locator without a password works with it set.
  gh_.env = {"PGPASSWORD=hunter2"};
  EXPECT_TRUE(Succeeded(gh_.As(kOwner, {"apiuser", "list"})));
  gh_.env = {};
  ProcessResult missing = RunProcess(
      {GatehouseBinary(), "--store", locator_.substr(0, locator_.find('?')) + "_nope" +
                                         locator_.substr(locator_.find('?')),
       "--as", kOwner, "apiuser", "list"});
  EXPECT_TRUE(Failed(missing, 1));
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing;
}

TEST_F(PostgresCliTest, MigrateSaysWhereTheSchemaIsAndBackupPointsToPgDump) {
  gh_.store = locator_;
  EXPECT_TRUE(Failed(gh_.Run({"store", "migrate"}), 1));  // no store yet: run init
  ASSERT_TRUE(Succeeded(gh_.Run({"init", "--org", "Acme", "--owner", kOwner})));
  ProcessResult m = gh_.Run({"store", "migrate"});
  ASSERT_TRUE(Succeeded(m));
  EXPECT_NE(m.out.find("at schema version 3 already"), std::string::npos) << m;
  ProcessResult b = gh_.Run({"store", "backup", dir_.File("b.db")});
  EXPECT_TRUE(Failed(b, 2));
  EXPECT_NE(b.err.find("pg_dump"), std::string::npos) << b;
}

// `store renew-feed` gives the feed a new epoch on either backend (a new one
// every time), says so, and records itself in the audit log.
TEST_F(PostgresCliTest, RenewFeedGivesANewEpochOnBothBackendsAndIsAudited) {
  for (const std::string& store : {sqlite_, locator_}) {
    Gatehouse g(store);
    ASSERT_TRUE(Succeeded(g.Run({"init", "--org", "Acme", "--owner", kOwner})));
    ProcessResult r = g.As(kOwner, {"store", "renew-feed"});
    ASSERT_TRUE(Succeeded(r)) << store;
    EXPECT_NE(r.out.find("renewed the change feed of store"), std::string::npos) << r;
    std::vector<int64_t> epochs;
    for (int i = 0; i < 5; ++i) {
      json j = g.Json(kOwner, {"store", "renew-feed"});
      epochs.push_back(j["feed_epoch"].get<int64_t>());
      if (i > 0) {
        EXPECT_NE(epochs[i], epochs[i - 1]) << store;
      }
    }
    json log = g.Json(kOwner, {"audit", "--limit", "1"});
    ASSERT_EQ(log.size(), 1u) << log.dump();
    EXPECT_EQ(log[0]["action"], "store.renew-feed") << log.dump();
    EXPECT_EQ(log[0]["actor"], kOwner) << log.dump();
    EXPECT_TRUE(Failed(g.Run({"store", "renew-feed", "extra"}), 2));
  }
  Gatehouse missing(dir_.File("missing.db"));
  EXPECT_TRUE(Failed(missing.Run({"store", "renew-feed"}), 1));
}

}  // namespace
}  // namespace gatehouse::testing
