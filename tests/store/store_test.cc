#include "gatehouse/store.h"

#include <fcntl.h>
#include <signal.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gatehouse/store_admin.h"
#include "gatehouse/tokens.h"
#include "store/pg_schema.h"
#include "store/pg_store.h"
#include "store/sqlite_store.h"
#include "store/sqlite_store_testing.h"
#include "support/postgres.h"
#include "support/assert_ok.h"
#include "support/temp_dir.h"

namespace gatehouse {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1'767'225'600;  // 2026-01-01T00:00:00Z

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

uint32_t BigEndian32(const std::string& bytes, size_t offset) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + 3]));
}

// SQL that takes a current store back to schema version 2 (no change feed).
std::string DownToVersion2() {
  std::string down = "DROP TABLE changes; DROP TABLE change_feed; ";
  for (const char* table : {"organizations", "users", "workspaces", "memberships", "api_users",
                            "tokens", "settings"})
    for (const char* op : {"insert", "update", "delete"})
      down += "DROP TRIGGER " + std::string(table) + "_" + op + "_feeds; ";
  return down + "PRAGMA user_version = 2; ";
}

enum class Backend { kSqlite, kPostgres };

// The fixture every store test uses: a fresh store per test on one backend.
// SQLite: a file in a temporary directory; PostgreSQL: a fresh database on
// the binary's throwaway server (support/postgres.h).
class StoreFixture : public ::testing::Test {
 protected:
  explicit StoreFixture(Backend backend) : backend_(backend) {}

  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    path_ = dir_.File("gatehouse.db");
    if (backend_ == Backend::kSqlite) {
      locator_ = path_;
    } else {
      testing::PostgresServer* pg = testing::PostgresServer::Get();
      ASSERT_NE(pg, nullptr);
      locator_ = pg->NewDatabase();
      ASSERT_FALSE(locator_.empty());
    }
  }

  bool IsPostgres() const { return backend_ == Backend::kPostgres; }

  std::unique_ptr<Store> Create(StoreOptions options = {}) {
    auto s = CreateStore(locator_, options);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::unique_ptr<Store> Open(StoreOptions options = {}) {
    auto s = OpenStore(locator_, options);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  // Raw SQL on the store's own connection, in the backend's dialect
  // (`pg_sql` empty: the same text on both).
  Status Raw(Store& store, const std::string& sqlite_sql, const std::string& pg_sql = "") {
    if (IsPostgres()) return internal::ExecPostgresForTesting(store, pg_sql.empty() ? sqlite_sql : pg_sql);
    return internal::ExecSqliteForTesting(store, sqlite_sql);
  }
  Result<int64_t> RawInt(Store& store, const std::string& sqlite_sql, const std::string& pg_sql = "") {
    if (IsPostgres()) {
      return internal::QueryPostgresIntForTesting(store, pg_sql.empty() ? sqlite_sql : pg_sql);
    }
    return internal::QuerySqliteIntForTesting(store, sqlite_sql);
  }

  // An organization, a shared workspace and an API user in it.
  struct Fixture {
    Organization org;
    Workspace ws;
    ApiUser api_user;
  };
  Fixture Populate(Store& store, std::string org = "Acme") {
    Fixture f;
    f.org = store.CreateOrganization(org).value();
    f.ws = store.CreateWorkspace(f.org.id, "Marketing-Production", "shared", std::nullopt).value();
    f.api_user = store
                     .CreateApiUser(NewApiUser{f.ws.id, "ci-bot", "viewer", "contributor",
                                               "owner@example.com", kNow})
                     .value();
    return f;
  }

  // Inserts a fresh token for `api_user_id`; returns the minted token.
  MintedToken AddToken(Store& store, int64_t api_user_id, int64_t expires_at,
                       std::string name = "deploy") {
    MintedToken m = MintToken().value();
    Status s = store.InsertToken(NewToken{m.id, api_user_id, std::move(name), m.hash, kNow,
                                          expires_at, "owner@example.com"});
    EXPECT_TRUE(s.ok()) << s.ToString();
    return m;
  }

  Backend backend_;
  testing::TempDir dir_;
  std::string path_;     // the SQLite file (also set, unused, for PostgreSQL)
  std::string locator_;  // what OpenStore/CreateStore get
};

// Every behaviour of the Store contract, on both backends, with the same
// expectations.
class StoreTest : public StoreFixture, public ::testing::WithParamInterface<Backend> {
 protected:
  StoreTest() : StoreFixture(GetParam()) {}
};
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreTest, ::testing::Values(Backend::kSqlite),
                         [](const auto&) { return std::string("sqlite"); });
INSTANTIATE_TEST_SUITE_P(Postgres, StoreTest, ::testing::Values(Backend::kPostgres),
                         [](const auto&) { return std::string("postgres"); });

// What only a SQLite file has: the file itself, its mode, WAL, probing.
class SqliteStoreTest : public StoreFixture {
 protected:
  SqliteStoreTest() : StoreFixture(Backend::kSqlite) {}
};

// What only PostgreSQL has: a database without a schema, a lost server,
// advisory locks across connections.
class PostgresStoreTest : public StoreFixture {
 protected:
  PostgresStoreTest() : StoreFixture(Backend::kPostgres) {}
};

// ---- creating and opening ----

TEST_F(SqliteStoreTest, CreateRefusesAnExistingFile) {
  { std::ofstream(path_) << "precious"; }
  auto s = CreateSqliteStore(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kAlreadyExists) << s.status().ToString();
  EXPECT_NE(s.status().message().find(path_), std::string::npos);
  EXPECT_EQ(ReadFile(path_), "precious");  // untouched

  path_ = dir_.File("other.db");  // a fresh path works, then a second create fails
  ASSERT_TRUE(CreateSqliteStore(path_).ok());
  EXPECT_TRUE(CreateSqliteStore(path_).status().IsAlreadyExists());
}

// CreateStore fills a new store in its first transaction (`gatehouse init`).
// Whichever step of the fill fails, its writes are gone and its error is
// returned; a SQLite file is removed with its -wal and -shm (nothing left
// behind), a PostgreSQL database keeps only the empty schema.
TEST_P(StoreTest, CreateWithAFailingInitLeavesNoHalfMadeStore) {
  // (PostgreSQL: the last step only; each case needs a database of its own.)
  for (int fail_after = IsPostgres() ? 2 : 0; fail_after < 3; ++fail_after) {
    SCOPED_TRACE("fail after step " + std::to_string(fail_after));
    auto created = CreateStore(locator_, {}, [&](Store& store) -> Status {
      auto o = store.CreateOrganization("Acme");
      if (!o.ok()) return o.status();
      if (fail_after == 0) return Status::InvalidArgument("refused at step 0");
      auto ws = store.CreateWorkspace(o->id, "Organization", "organization", std::nullopt);
      if (!ws.ok()) return ws.status();
      if (fail_after == 1) return Status::InvalidArgument("refused at step 1");
      // A real store error, not one made up by the fill: a clashing name.
      auto again = store.CreateOrganization("ACME");
      return again.ok() ? Status::Ok() : again.status();
    });
    ASSERT_FALSE(created.ok());
    if (fail_after < 2) {
      EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument) << created.status().ToString();
      EXPECT_EQ(created.status().message(), "refused at step " + std::to_string(fail_after));
    } else {
      EXPECT_TRUE(created.status().IsAlreadyExists()) << created.status().ToString();
    }
    if (IsPostgres()) {
      auto s = Open();
      ASSERT_NE(s, nullptr);
      EXPECT_TRUE(s->ListOrganizations().value().empty());  // the fill rolled back
    } else {
      for (const char* suffix : {"", "-wal", "-shm"}) EXPECT_FALSE(fs::exists(path_ + suffix)) << suffix;
      EXPECT_EQ(OpenStore(path_).status().code(), StatusCode::kFailedPrecondition);
    }
  }
  // A fill that succeeds is committed: a new connection sees it.
  if (IsPostgres()) locator_ = testing::PostgresServer::Get()->NewDatabase();
  auto created = CreateStore(locator_, {}, [](Store& store) -> Status {
    return store.CreateOrganization("Acme").status();
  });
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  created->reset();
  auto s = Open();
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->ListOrganizations().value().size(), 1u);
  EXPECT_EQ(s->ListOrganizations().value()[0].name, "Acme");
}

TEST_F(SqliteStoreTest, OpenRefusesAMissingFileAndSaysToRunInit) {
  auto s = OpenSqliteStore(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.status().message(), "store " + path_ + " does not exist; run `gatehouse init`");
  EXPECT_FALSE(fs::exists(path_));  // and did not create it
}

TEST_F(SqliteStoreTest, CreateInAMissingDirectoryIsAnIoError) {
  path_ = dir_.File("no/such/dir/gatehouse.db");
  auto s = CreateSqliteStore(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kIoError) << s.status().ToString();
}

TEST_F(SqliteStoreTest, GarbageFileIsCorruptionNotACrash) {
  std::mt19937 rng(42);
  std::string junk(16384, '\0');
  for (char& c : junk) c = static_cast<char>(rng());
  { std::ofstream(path_, std::ios::binary) << junk; }
  auto s = OpenSqliteStore(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption) << s.status().ToString();
  EXPECT_NE(s.status().message().find("not a Gatehouse store"), std::string::npos)
      << s.status().ToString();

  { std::ofstream(path_, std::ios::trunc) << "gatehouse: v1\npolicy: oops\n"; }
  s = OpenSqliteStore(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption) << s.status().ToString();
  EXPECT_EQ(ReadFile(path_), "gatehouse: v1\npolicy: oops\n");  // never written to
}

TEST_F(SqliteStoreTest, EmptyFileIsCorruptionNotANewStore) {
  { std::ofstream{path_}; }
  auto s = OpenSqliteStore(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption);
  EXPECT_NE(s.status().message().find("empty"), std::string::npos) << s.status().ToString();
  EXPECT_EQ(fs::file_size(path_), 0u);
}

TEST_F(SqliteStoreTest, TruncatedFileIsCorruptionNotACrash) {
  {
    auto store = Create();
    Fixture f = Populate(*store);
    ASSERT_OK(store->Transaction([&]() -> Status {
      for (int i = 0; i < 2000; ++i) AddToken(*store, f.api_user.id, kNow + 1000);
      return Status::Ok();
    }));
  }  // closing checkpoints everything into the main file
  ASSERT_FALSE(fs::exists(path_ + "-wal"));
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 64u * 1024);
  for (auto keep :
       {size / 2, size - 4096, size - 1, uintmax_t{4096}, uintmax_t{100}, uintmax_t{50}}) {
    SCOPED_TRACE("truncated to " + std::to_string(keep));
    std::string copy = dir_.File("truncated.db");
    fs::copy_file(path_, copy, fs::copy_options::overwrite_existing);
    fs::resize_file(copy, keep);
    auto s = OpenSqliteStore(copy);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), StatusCode::kCorruption) << s.status().ToString();
    fs::remove(copy);
  }
}

TEST_F(SqliteStoreTest, AnotherApplicationsDatabaseIsRefused) {
  {
    auto store = Create();
    ASSERT_OK(internal::ExecSqliteForTesting(*store, "PRAGMA application_id = 12345"));
  }
  auto s = OpenSqliteStore(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption);
  EXPECT_NE(s.status().message().find("not a Gatehouse store"), std::string::npos);
}

TEST_P(StoreTest, ANewerSchemaIsRefused) {
  {
    auto store = Create();
    ASSERT_OK(Raw(*store, "PRAGMA user_version = 99",
                  "UPDATE gatehouse_meta SET schema_version = 99"));
  }
  auto s = OpenStore(locator_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition) << s.status().ToString();
  EXPECT_NE(s.status().message().find("99"), std::string::npos);
}

TEST_F(SqliteStoreTest, FileIsCreatedWithMode0600WhateverTheUmask) {
  const mode_t old = ::umask(0);
  auto store = Create();
  ::umask(old);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->CreateOrganization("Acme").status());  // the WAL now exists
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  for (const char* suffix : {"-wal", "-shm"}) {
    std::string side = path_ + suffix;
    if (::stat(side.c_str(), &st) == 0) {
      EXPECT_EQ(st.st_mode & 0777, 0600u) << suffix;
    }
  }
  path_ = dir_.File("strict-umask.db");
  const mode_t old2 = ::umask(0277);  // would leave 0400: unwritable
  auto strict = CreateSqliteStore(path_);
  ::umask(old2);
  ASSERT_TRUE(strict.ok()) << strict.status().ToString();
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SqliteStoreTest, IsInWalModeWithTheSchemaVersionSet) {
  {
    auto store = Create();
    ASSERT_OK_AND_ASSIGN(v, store->SchemaVersion());
    EXPECT_EQ(v, kStoreSchemaVersion);
    ASSERT_OK_AND_ASSIGN(fk, internal::QuerySqliteIntForTesting(*store, "PRAGMA foreign_keys"));
    EXPECT_EQ(fk, 1);
    ASSERT_OK_AND_ASSIGN(busy, internal::QuerySqliteIntForTesting(*store, "PRAGMA busy_timeout"));
    EXPECT_EQ(busy, 5000);
  }
  // Read the SQLite header itself: bytes 18 and 19 are 2 in WAL mode,
  // user_version is at 60, application_id at 68 (big-endian).
  std::string header = ReadFile(path_).substr(0, 100);
  ASSERT_EQ(header.substr(0, 16), std::string("SQLite format 3\0", 16));
  EXPECT_EQ(header[18], 2);
  EXPECT_EQ(header[19], 2);
  EXPECT_EQ(BigEndian32(header, 60), static_cast<uint32_t>(kStoreSchemaVersion));
  EXPECT_EQ(BigEndian32(header, 68), 0x47617465u);  // "Gate"

  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  ASSERT_OK_AND_ASSIGN(v, reopened->SchemaVersion());
  EXPECT_EQ(v, kStoreSchemaVersion);
}

TEST_P(StoreTest, DataSurvivesReopening) {
  int64_t org_id;
  MintedToken t;
  {
    auto store = Create();
    Fixture f = Populate(*store);
    org_id = f.org.id;
    t = AddToken(*store, f.api_user.id, kNow + 60);
  }
  auto store = Open();
  ASSERT_OK_AND_ASSIGN(org, store->TheOnlyOrganization());
  EXPECT_EQ(org.id, org_id);
  ASSERT_OK_AND_ASSIGN(rec, store->FindTokenByHash(t.hash));
  EXPECT_EQ(rec.token_id, t.id);
}

// ---- entities ----

TEST_P(StoreTest, NamesAreUniqueWithoutRegardToCase) {
  auto store = Create();
  Fixture f = Populate(*store);

  auto org = store->CreateOrganization("ACME");
  EXPECT_EQ(org.status().code(), StatusCode::kAlreadyExists) << org.status().ToString();
  ASSERT_OK_AND_ASSIGN(found_org, store->FindOrganization("aCmE"));
  EXPECT_EQ(found_org.id, f.org.id);
  EXPECT_EQ(found_org.name, "Acme");

  auto ws = store->CreateWorkspace(f.org.id, "marketing-PRODUCTION", "shared", std::nullopt);
  EXPECT_EQ(ws.status().code(), StatusCode::kAlreadyExists) << ws.status().ToString();
  EXPECT_NE(ws.status().message().find("already exists"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(found_ws, store->FindWorkspace(f.org.id, "MARKETING-production"));
  EXPECT_EQ(found_ws.id, f.ws.id);

  ASSERT_OK_AND_ASSIGN(alice, store->AddUser(f.org.id, "Alice@Example.com", "admin"));
  auto dup = store->AddUser(f.org.id, "alice@example.COM", "viewer");
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  ASSERT_OK_AND_ASSIGN(found_alice, store->FindUserByEmail("ALICE@example.com"));
  EXPECT_EQ(found_alice.id, alice.id);
  EXPECT_EQ(found_alice.org_role, "admin");

  auto api = store->CreateApiUser(
      NewApiUser{f.ws.id, "CI-Bot", "viewer", "viewer", "owner@example.com", kNow});
  EXPECT_EQ(api.status().code(), StatusCode::kAlreadyExists) << api.status().ToString();
  ASSERT_OK_AND_ASSIGN(found_api, store->FindApiUser(f.org.id, "ci-BOT"));
  EXPECT_EQ(found_api.id, f.api_user.id);

  // Unique per organization only: another organization may reuse the names.
  ASSERT_OK_AND_ASSIGN(other, store->CreateOrganization("Globex"));
  ASSERT_OK_AND_ASSIGN(other_ws,
                       store->CreateWorkspace(other.id, "Marketing-Production", "shared", {}));
  ASSERT_OK(store->CreateApiUser(NewApiUser{other_ws.id, "ci-bot", "viewer", "viewer", "x", kNow})
                .status());
  EXPECT_EQ(store->TheOnlyOrganization().status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, TheOnlyOrganization) {
  auto store = Create();
  auto none = store->TheOnlyOrganization();
  EXPECT_TRUE(none.status().IsNotFound());
  EXPECT_NE(none.status().message().find("gatehouse init"), std::string::npos);
  ASSERT_OK(store->CreateOrganization("Acme").status());
  ASSERT_OK_AND_ASSIGN(org, store->TheOnlyOrganization());
  EXPECT_EQ(org.name, "Acme");
  ASSERT_OK(store->CreateOrganization("Globex").status());
  EXPECT_EQ(store->TheOnlyOrganization().status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(all, store->ListOrganizations());
  EXPECT_EQ(all.size(), 2u);
}

TEST_P(StoreTest, WorkspacesUsersAndMemberships) {
  auto store = Create();
  ASSERT_OK_AND_ASSIGN(org, store->CreateOrganization("Acme"));
  ASSERT_OK_AND_ASSIGN(owner, store->AddUser(org.id, "owner@example.com", "owner"));
  ASSERT_OK_AND_ASSIGN(orgws, store->CreateWorkspace(org.id, "Organization", "organization", {}));
  ASSERT_OK_AND_ASSIGN(personal,
                       store->CreateWorkspace(org.id, "Owner's space", "personal", owner.id));
  EXPECT_EQ(personal.owner_user_id, owner.id);
  ASSERT_OK_AND_ASSIGN(got, store->GetWorkspace(personal.id));
  EXPECT_EQ(got.owner_user_id, owner.id);
  EXPECT_EQ(got.type, "personal");
  ASSERT_OK_AND_ASSIGN(got_org, store->GetWorkspace(orgws.id));
  EXPECT_FALSE(got_org.owner_user_id.has_value());
  ASSERT_OK_AND_ASSIGN(list, store->ListWorkspaces(org.id));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "Organization");

  EXPECT_TRUE(store->CreateWorkspace(org.id, "X", "shared", 9999).status().IsNotFound());
  EXPECT_TRUE(store->CreateWorkspace(9999, "X", "shared", {}).status().IsNotFound());
  EXPECT_TRUE(store->FindWorkspace(org.id, "nope").status().IsNotFound());
  EXPECT_TRUE(store->AddUser(9999, "x@example.com", "viewer").status().IsNotFound());

  ASSERT_OK_AND_ASSIGN(bob, store->AddUser(org.id, "bob@example.com", "contributor"));
  EXPECT_TRUE(store->GetMembershipRole(orgws.id, bob.id).status().IsNotFound());
  ASSERT_OK(store->SetMembership(orgws.id, bob.id, "viewer"));
  ASSERT_OK_AND_ASSIGN(role, store->GetMembershipRole(orgws.id, bob.id));
  EXPECT_EQ(role, "viewer");
  ASSERT_OK(store->SetMembership(orgws.id, bob.id, "admin"));  // replaces
  ASSERT_OK_AND_ASSIGN(role2, store->GetMembershipRole(orgws.id, bob.id));
  EXPECT_EQ(role2, "admin");
  ASSERT_OK_AND_ASSIGN(members, store->ListMemberships(orgws.id));
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].user_email, "bob@example.com");
  EXPECT_EQ(members[0].workspace_role, "admin");
  EXPECT_TRUE(store->SetMembership(orgws.id, 9999, "viewer").IsNotFound());

  // A user of another organization cannot join.
  ASSERT_OK_AND_ASSIGN(globex, store->CreateOrganization("Globex"));
  ASSERT_OK_AND_ASSIGN(eve, store->AddUser(globex.id, "eve@globex.com", "owner"));
  EXPECT_TRUE(store->SetMembership(orgws.id, eve.id, "admin").IsNotFound());
  EXPECT_TRUE(store->CreateWorkspace(org.id, "Eve's", "personal", eve.id).status().IsNotFound());
  ASSERT_OK_AND_ASSIGN(users, store->ListUsers(org.id));
  EXPECT_EQ(users.size(), 2u);
}

TEST_P(StoreTest, ApiUsersCanBeListedPromotedAndReRoled) {
  auto store = Create();
  Fixture f = Populate(*store);
  ASSERT_OK_AND_ASSIGN(sales, store->CreateWorkspace(f.org.id, "Sales", "shared", {}));
  ASSERT_OK_AND_ASSIGN(b, store->CreateApiUser(NewApiUser{sales.id, "exporter", "viewer", "viewer",
                                                          "admin@example.com", kNow + 5}));
  EXPECT_EQ(b.org_id, f.org.id);
  EXPECT_EQ(b.workspace_name, "Sales");
  EXPECT_EQ(b.created_by, "admin@example.com");
  EXPECT_EQ(b.created_at, kNow + 5);

  ASSERT_OK_AND_ASSIGN(all, store->ListApiUsers(f.org.id, std::nullopt));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "ci-bot");
  EXPECT_EQ(all[1].name, "exporter");
  ASSERT_OK_AND_ASSIGN(in_sales, store->ListApiUsers(f.org.id, sales.id));
  ASSERT_EQ(in_sales.size(), 1u);
  EXPECT_EQ(in_sales[0].id, b.id);

  ASSERT_OK(store->SetApiUserWorkspaceRole(b.id, "admin"));
  ASSERT_OK(store->SetApiUserOrgRole(b.id, "admin"));
  ASSERT_OK_AND_ASSIGN(b2, store->GetApiUser(b.id));
  EXPECT_EQ(b2.workspace_role, "admin");
  EXPECT_EQ(b2.org_role, "admin");
  EXPECT_TRUE(store->SetApiUserWorkspaceRole(9999, "admin").IsNotFound());
  EXPECT_TRUE(store->SetApiUserOrgRole(9999, "admin").IsNotFound());
  EXPECT_TRUE(store->GetApiUser(9999).status().IsNotFound());
  auto bad = store->CreateApiUser(NewApiUser{9999, "ghost", "viewer", "viewer", "x", kNow});
  EXPECT_TRUE(bad.status().IsNotFound()) << bad.status().ToString();
}

// ---- tokens ----

TEST_P(StoreTest, FindTokenByHashReturnsEverythingNeededToVerify) {
  auto store = Create();
  Fixture f = Populate(*store);
  MintedToken t = AddToken(*store, f.api_user.id, kNow + 3600, "nightly");
  ASSERT_OK_AND_ASSIGN(r, store->FindTokenByHash(HashToken(t.secret)));
  EXPECT_EQ(r.token_id, t.id);
  EXPECT_EQ(r.name, "nightly");
  EXPECT_EQ(r.hash, t.hash);
  EXPECT_EQ(r.created_at, kNow);
  EXPECT_EQ(r.expires_at, kNow + 3600);
  EXPECT_EQ(r.created_by, "owner@example.com");
  EXPECT_EQ(r.api_user_id, f.api_user.id);
  EXPECT_EQ(r.api_user_name, "ci-bot");
  EXPECT_EQ(r.org_id, f.org.id);
  EXPECT_EQ(r.org_role, "viewer");
  EXPECT_EQ(r.workspace_id, f.ws.id);
  EXPECT_EQ(r.workspace_name, "Marketing-Production");
  EXPECT_EQ(r.workspace_type, "shared");
  EXPECT_EQ(r.workspace_role, "contributor");
  EXPECT_FALSE(r.IsExpiredAt(kNow));

  ASSERT_OK_AND_ASSIGN(by_id, store->FindTokenById(t.id));
  EXPECT_EQ(by_id.hash, t.hash);

  // A promotion shows in the next lookup: roles are read through the API user.
  ASSERT_OK(store->SetApiUserWorkspaceRole(f.api_user.id, "admin"));
  ASSERT_OK_AND_ASSIGN(r2, store->FindTokenByHash(t.hash));
  EXPECT_EQ(r2.workspace_role, "admin");

  EXPECT_TRUE(store->FindTokenByHash(MintToken()->hash).status().IsNotFound());
  EXPECT_TRUE(store->FindTokenById("tok_000000000000").status().IsNotFound());
}

TEST_P(StoreTest, InsertTokenRefusesUnknownApiUserAndDuplicates) {
  auto store = Create();
  Fixture f = Populate(*store);
  MintedToken t = AddToken(*store, f.api_user.id, kNow + 60);
  MintedToken m = MintToken().value();
  Status s = store->InsertToken(NewToken{m.id, 9999, "x", m.hash, kNow, kNow + 60, "x"});
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  s = store->InsertToken(NewToken{t.id, f.api_user.id, "x", m.hash, kNow, kNow + 60, "x"});
  EXPECT_TRUE(s.IsAlreadyExists()) << s.ToString();
  s = store->InsertToken(NewToken{m.id, f.api_user.id, "x", t.hash, kNow, kNow + 60, "x"});
  EXPECT_TRUE(s.IsAlreadyExists()) << s.ToString();
}

TEST_P(StoreTest, DeletingAnApiUserDeletesItsTokensInOneTransaction) {
  auto store = Create();
  Fixture f = Populate(*store);
  ASSERT_OK_AND_ASSIGN(
      other, store->CreateApiUser(NewApiUser{f.ws.id, "other", "viewer", "viewer", "x", kNow}));
  std::vector<MintedToken> mine;
  for (int i = 0; i < 3; ++i) mine.push_back(AddToken(*store, f.api_user.id, kNow + 60));
  MintedToken theirs = AddToken(*store, other.id, kNow + 60);

  // Inside a transaction that then fails: nothing at all is deleted.
  Status failed = store->Transaction([&]() -> Status {
    auto n = store->DeleteApiUser(f.api_user.id);
    EXPECT_TRUE(n.ok());
    EXPECT_EQ(n.ok() ? *n : -1, 3);
    EXPECT_TRUE(store->FindTokenByHash(mine[0].hash).status().IsNotFound());
    return Status::IoError("simulated failure after the delete");
  });
  EXPECT_EQ(failed.code(), StatusCode::kIoError);
  ASSERT_OK(store->GetApiUser(f.api_user.id).status());
  for (const auto& t : mine) ASSERT_OK(store->FindTokenByHash(t.hash).status());

  ASSERT_OK_AND_ASSIGN(deleted, store->DeleteApiUser(f.api_user.id));
  EXPECT_EQ(deleted, 3);
  EXPECT_TRUE(store->GetApiUser(f.api_user.id).status().IsNotFound());
  for (const auto& t : mine) EXPECT_TRUE(store->FindTokenByHash(t.hash).status().IsNotFound());
  ASSERT_OK(store->FindTokenByHash(theirs.hash).status());
  EXPECT_TRUE(store->DeleteApiUser(f.api_user.id).status().IsNotFound());

  // The schema's own cascade, for a delete that bypasses DeleteApiUser.
  ASSERT_OK(Raw(*store, "DELETE FROM api_users WHERE id = " + std::to_string(other.id)));
  EXPECT_TRUE(store->FindTokenByHash(theirs.hash).status().IsNotFound());
}

TEST_P(StoreTest, ExpiredTokensAreNotListedAndAreDeletedByGc) {
  auto store = Create();
  Fixture f = Populate(*store);
  ASSERT_OK_AND_ASSIGN(
      other, store->CreateApiUser(NewApiUser{f.ws.id, "other", "viewer", "viewer", "x", kNow}));
  MintedToken t100 = AddToken(*store, f.api_user.id, kNow + 100, "a");
  MintedToken t200 = AddToken(*store, f.api_user.id, kNow + 200, "b");
  MintedToken t300 = AddToken(*store, f.api_user.id, kNow + 300, "c");
  MintedToken o300 = AddToken(*store, other.id, kNow + 300, "d");

  ASSERT_OK_AND_ASSIGN(all, store->ListTokens(f.org.id, std::nullopt, kNow));
  EXPECT_EQ(all.size(), 4u);
  ASSERT_OK_AND_ASSIGN(mine, store->ListTokens(f.org.id, f.api_user.id, kNow + 150));
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].token_id == t200.id || mine[1].token_id == t200.id, true);
  // A token is expired from its expires_at second on.
  ASSERT_OK_AND_ASSIGN(at200, store->ListTokens(f.org.id, std::nullopt, kNow + 200));
  ASSERT_EQ(at200.size(), 2u);
  for (const auto& t : at200) EXPECT_TRUE(t.token_id == t300.id || t.token_id == o300.id);
  ASSERT_OK_AND_ASSIGN(active, store->LoadActiveTokens(kNow + 200));
  EXPECT_EQ(active.size(), 2u);
  ASSERT_OK_AND_ASSIGN(none_in_other_org, store->ListTokens(f.org.id + 1, std::nullopt, kNow));
  EXPECT_TRUE(none_in_other_org.empty());

  // Expired but not yet collected: still found by hash, flagged by IsExpiredAt.
  ASSERT_OK_AND_ASSIGN(old, store->FindTokenByHash(t100.hash));
  EXPECT_TRUE(old.IsExpiredAt(kNow + 200));

  ASSERT_OK_AND_ASSIGN(gone, store->DeleteExpiredTokens(kNow + 200));
  EXPECT_EQ(gone, 2);
  EXPECT_TRUE(store->FindTokenByHash(t100.hash).status().IsNotFound());
  EXPECT_TRUE(store->FindTokenByHash(t200.hash).status().IsNotFound());
  ASSERT_OK(store->FindTokenByHash(t300.hash).status());
  ASSERT_OK_AND_ASSIGN(again, store->DeleteExpiredTokens(kNow + 200));
  EXPECT_EQ(again, 0);
}

TEST_P(StoreTest, RevokingATokenDeletesIt) {
  auto store = Create();
  Fixture f = Populate(*store);
  MintedToken t = AddToken(*store, f.api_user.id, kNow + 60);
  ASSERT_OK(store->DeleteToken(t.id));
  EXPECT_TRUE(store->FindTokenByHash(t.hash).status().IsNotFound());
  EXPECT_TRUE(store->DeleteToken(t.id).IsNotFound());
}

// The full scan (what a sidecar loads at start) gives each active token
// with every field as the single-token lookup gives it, whichever API user,
// workspace and organization it belongs to (PostgreSQL reads the scan's rows
// in binary and joins the principals itself; the lookup reads text).
TEST_P(StoreTest, ScanActiveTokensGivesEveryFieldAsTheLookupDoes) {
  auto store = Create();
  Fixture a = Populate(*store, "Acme");
  Fixture b = Populate(*store, "Beta");
  ASSERT_OK_AND_ASSIGN(ws2, store->CreateWorkspace(a.org.id, "Ünïcode-Space", "shared", std::nullopt));
  ASSERT_OK_AND_ASSIGN(u2, store->CreateApiUser(NewApiUser{ws2.id, "Importer-2", "admin", "admin",
                                                           "admin@example.com", kNow - 5}));
  ASSERT_OK_AND_ASSIGN(u3, store->CreateApiUser(NewApiUser{b.ws.id, "reader", "viewer", "viewer",
                                                           "x", kNow}));
  const int64_t users[] = {a.api_user.id, b.api_user.id, u2.id, u3.id};
  std::mt19937_64 rng(7);
  std::set<std::string> active;
  std::vector<MintedToken> all;
  for (int i = 0; i < 60; ++i) {
    const int64_t expires = kNow - 50 + static_cast<int64_t>(rng() % 100);
    MintedToken m = AddToken(*store, users[rng() % 4], expires, "tök-" + std::to_string(rng() % 1000));
    if (expires > kNow) active.insert(m.id);
    all.push_back(m);
  }
  ASSERT_OK_AND_ASSIGN(scanned, store->LoadActiveTokens(kNow));
  std::set<std::string> seen;
  for (const TokenRecord& t : scanned) {
    seen.insert(t.token_id);
    ASSERT_OK_AND_ASSIGN(one, store->FindTokenByHash(t.hash));
    EXPECT_EQ(t.token_id, one.token_id);
    EXPECT_EQ(t.name, one.name);
    EXPECT_EQ(t.created_at, one.created_at);
    EXPECT_EQ(t.expires_at, one.expires_at);
    EXPECT_EQ(t.created_by, one.created_by);
    EXPECT_EQ(t.api_user_id, one.api_user_id);
    EXPECT_EQ(t.api_user_name, one.api_user_name);
    EXPECT_EQ(t.org_id, one.org_id);
    EXPECT_EQ(t.org_role, one.org_role);
    EXPECT_EQ(t.workspace_id, one.workspace_id);
    EXPECT_EQ(t.workspace_name, one.workspace_name);
    EXPECT_EQ(t.workspace_type, one.workspace_type);
    EXPECT_EQ(t.workspace_role, one.workspace_role);
  }
  EXPECT_EQ(seen, active);
  EXPECT_EQ(scanned.size(), active.size());
}

TEST_P(StoreTest, ScanActiveTokensStopsOnTheCallbacksError) {
  auto store = Create();
  Fixture f = Populate(*store);
  for (int i = 0; i < 5; ++i) AddToken(*store, f.api_user.id, kNow + 60);
  int seen = 0;
  Status s = store->ScanActiveTokens(kNow, [&](const TokenRecord& r) -> Status {
    EXPECT_EQ(r.api_user_name, "ci-bot");
    return ++seen == 2 ? Status::Internal("enough") : Status::Ok();
  });
  EXPECT_EQ(s.message(), "enough");
  EXPECT_EQ(seen, 2);
  // The statement was reset: the store keeps working.
  ASSERT_OK_AND_ASSIGN(all, store->LoadActiveTokens(kNow));
  EXPECT_EQ(all.size(), 5u);
}

TEST_F(SqliteStoreTest, PlaintextTokenIsNeverInTheFile) {
  std::vector<MintedToken> tokens;
  {
    auto store = Create();
    Fixture f = Populate(*store);
    for (int i = 0; i < 50; ++i) tokens.push_back(AddToken(*store, f.api_user.id, kNow + 60));
    // While open, the data sits in the WAL: search both files.
    std::string bytes = ReadFile(path_) + ReadFile(path_ + "-wal");
    std::string hash0(reinterpret_cast<const char*>(tokens[0].hash.data()), 32);
    ASSERT_NE(bytes.find(hash0), std::string::npos) << "the search itself must work";
    ASSERT_NE(bytes.find(tokens[0].id), std::string::npos);
    for (const auto& t : tokens) {
      ASSERT_EQ(bytes.find(t.secret), std::string::npos);
      ASSERT_EQ(bytes.find(t.secret.substr(4, 20)), std::string::npos);
    }
  }
  std::string bytes = ReadFile(path_);
  for (const auto& t : tokens) {
    ASSERT_EQ(bytes.find(t.secret), std::string::npos);
    ASSERT_EQ(bytes.find(t.secret.substr(4, 20)), std::string::npos);
  }
}

// ---- transactions ----

TEST_P(StoreTest, FailedTransactionLeavesTheStoreUnchanged) {
  auto store = Create();
  Fixture f = Populate(*store);
  MintedToken kept = AddToken(*store, f.api_user.id, kNow + 60);
  MintedToken added;
  Status s = store->Transaction([&]() -> Status {
    GATEHOUSE_RETURN_IF_ERROR(store->CreateWorkspace(f.org.id, "Temp", "shared", {}).status());
    GATEHOUSE_RETURN_IF_ERROR(store->SetApiUserOrgRole(f.api_user.id, "admin"));
    GATEHOUSE_RETURN_IF_ERROR(store->DeleteToken(kept.id));
    GATEHOUSE_RETURN_IF_ERROR(
        store->SetSetting(f.org.id, "workspace_admins_can_create_tokens", "true"));
    added = AddToken(*store, f.api_user.id, kNow + 60);
    // Fails: the name is taken. Everything above must be undone.
    return store->CreateWorkspace(f.org.id, "marketing-production", "shared", {}).status();
  });
  EXPECT_TRUE(s.IsAlreadyExists()) << s.ToString();
  EXPECT_TRUE(store->FindWorkspace(f.org.id, "Temp").status().IsNotFound());
  ASSERT_OK_AND_ASSIGN(api, store->GetApiUser(f.api_user.id));
  EXPECT_EQ(api.org_role, "viewer");
  ASSERT_OK(store->FindTokenByHash(kept.hash).status());
  EXPECT_TRUE(store->FindTokenByHash(added.hash).status().IsNotFound());
  EXPECT_TRUE(
      store->GetSetting(f.org.id, "workspace_admins_can_create_tokens").status().IsNotFound());

  // A body that throws is rolled back too, and the store stays usable.
  EXPECT_THROW((void)store->Transaction([&]() -> Status {
    (void)store->CreateWorkspace(f.org.id, "Thrown", "shared", {});
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  EXPECT_TRUE(store->FindWorkspace(f.org.id, "Thrown").status().IsNotFound());

  // A committed transaction keeps everything.
  ASSERT_OK(store->Transaction([&]() -> Status {
    GATEHOUSE_RETURN_IF_ERROR(store->CreateWorkspace(f.org.id, "Kept", "shared", {}).status());
    return store->SetSetting(f.org.id, "workspace_admins_can_create_tokens", "true");
  }));
  ASSERT_OK(store->FindWorkspace(f.org.id, "Kept").status());
}

TEST_P(StoreTest, NestedTransactionRollsBackAlone) {
  auto store = Create();
  Fixture f = Populate(*store);
  ASSERT_OK(store->Transaction([&]() -> Status {
    GATEHOUSE_RETURN_IF_ERROR(store->CreateWorkspace(f.org.id, "Outer", "shared", {}).status());
    Status inner = store->Transaction([&]() -> Status {
      GATEHOUSE_RETURN_IF_ERROR(store->CreateWorkspace(f.org.id, "Inner", "shared", {}).status());
      return Status::Internal("inner fails");
    });
    EXPECT_EQ(inner.message(), "inner fails");
    return Status::Ok();
  }));
  ASSERT_OK(store->FindWorkspace(f.org.id, "Outer").status());
  EXPECT_TRUE(store->FindWorkspace(f.org.id, "Inner").status().IsNotFound());
}

// ---- the audit log ----

TEST_P(StoreTest, AuditLogIsAppendOnlyAndListsNewestFirst) {
  auto store = Create();
  ASSERT_OK_AND_ASSIGN(org, store->CreateOrganization("Acme"));
  for (int i = 0; i < 5; ++i) {
    AuditRecord r;
    r.time = kNow + i;
    r.org_id = org.id;
    r.actor = "owner@example.com";
    r.action = "token.create";
    r.target = "apiuser:ci-bot#" + std::to_string(i);
    r.decision = i % 2 == 0 ? AuditDecision::kAllow : AuditDecision::kDeny;
    r.rule = "org-admins";
    r.message = "m";
    r.detail = "{\"token_id\":\"tok_x\"}";
    ASSERT_OK(store->AppendAudit(r).status());
  }
  AuditRecord no_org;
  no_org.time = kNow + 10;
  no_org.actor = "stranger@example.com";
  no_org.action = "user.add";
  ASSERT_OK_AND_ASSIGN(id, store->AppendAudit(no_org));
  EXPECT_GT(id, 0);

  ASSERT_OK_AND_ASSIGN(last2, store->ListAudit(org.id, 2));
  ASSERT_EQ(last2.size(), 2u);
  EXPECT_EQ(last2[0].target, "apiuser:ci-bot#4");
  EXPECT_EQ(last2[0].decision, AuditDecision::kAllow);
  EXPECT_EQ(last2[1].target, "apiuser:ci-bot#3");
  EXPECT_EQ(last2[1].decision, AuditDecision::kDeny);
  EXPECT_EQ(last2[0].time, kNow + 4);
  EXPECT_EQ(last2[0].detail, "{\"token_id\":\"tok_x\"}");
  ASSERT_OK_AND_ASSIGN(everything, store->ListAudit(std::nullopt, 100));
  ASSERT_EQ(everything.size(), 6u);
  EXPECT_EQ(everything[0].actor, "stranger@example.com");
  EXPECT_FALSE(everything[0].org_id.has_value());
  EXPECT_TRUE(store->ListAudit(std::nullopt, -1).status().IsInvalidArgument());

  Status upd = Raw(*store, "UPDATE audit_log SET decision = 'allow'");
  EXPECT_EQ(upd.code(), StatusCode::kFailedPrecondition) << upd.ToString();
  EXPECT_NE(upd.message().find("append-only"), std::string::npos) << upd.ToString();
  Status del = Raw(*store, "DELETE FROM audit_log");
  EXPECT_EQ(del.code(), StatusCode::kFailedPrecondition) << del.ToString();
  Status del1 = Raw(*store, "DELETE FROM audit_log WHERE id = 1");
  EXPECT_EQ(del1.code(), StatusCode::kFailedPrecondition) << del1.ToString();
  ASSERT_OK_AND_ASSIGN(after, store->ListAudit(std::nullopt, 100));
  ASSERT_EQ(after.size(), 6u);
  EXPECT_EQ(after[4].decision, AuditDecision::kDeny);
}

TEST_P(StoreTest, Settings) {
  auto store = Create();
  ASSERT_OK_AND_ASSIGN(org, store->CreateOrganization("Acme"));
  EXPECT_TRUE(
      store->GetSetting(org.id, "workspace_admins_can_create_tokens").status().IsNotFound());
  ASSERT_OK(store->SetSetting(org.id, "workspace_admins_can_create_tokens", "true"));
  ASSERT_OK(store->SetSetting(org.id, "workspace_admins_can_create_tokens", "false"));
  ASSERT_OK(store->SetSetting(org.id, "another", "1"));
  ASSERT_OK_AND_ASSIGN(v, store->GetSetting(org.id, "workspace_admins_can_create_tokens"));
  EXPECT_EQ(v, "false");
  ASSERT_OK_AND_ASSIGN(all, store->ListSettings(org.id));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "another");
  EXPECT_TRUE(store->SetSetting(9999, "x", "y").IsNotFound());
}

// ---- several connections ----

TEST_P(StoreTest, DataVersionChangesAfterAnotherConnectionWrites) {
  auto writer = Create();
  Fixture f = Populate(*writer);
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  ASSERT_OK_AND_ASSIGN(v1, reader->DataVersion());
  ASSERT_OK_AND_ASSIGN(v1b, reader->DataVersion());
  EXPECT_EQ(v1, v1b);  // nothing happened

  MintedToken t = AddToken(*writer, f.api_user.id, kNow + 60);
  ASSERT_OK_AND_ASSIGN(v2, reader->DataVersion());
  EXPECT_NE(v2, v1);
  ASSERT_OK(reader->FindTokenByHash(t.hash).status());  // and sees the write

  ASSERT_OK(writer->DeleteToken(t.id));
  ASSERT_OK_AND_ASSIGN(v3, reader->DataVersion());
  EXPECT_NE(v3, v2);
  EXPECT_TRUE(reader->FindTokenByHash(t.hash).status().IsNotFound());
}

TEST_P(StoreTest, ReadOnlyStoreRefusesWrites) {
  {
    auto store = Create();
    Populate(*store);
  }
  auto ro = Open(StoreOptions{.read_only = true});
  ASSERT_NE(ro, nullptr);
  ASSERT_OK(ro->TheOnlyOrganization().status());
  Status s = ro->CreateOrganization("Globex").status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("read-only"), std::string::npos) << s.ToString();
  EXPECT_EQ(ro->Transaction([] { return Status::Ok(); }).code(), StatusCode::kFailedPrecondition);
}

TEST_P(StoreTest, TwoWritersWithABusyTimeoutBothSucceed) {
  {
    auto store = Create();
    Populate(*store);
  }
  constexpr int kPerWriter = 100;
  std::atomic<int> failures{0};
  auto writer = [&](int which) {
    auto opened = OpenStore(locator_, StoreOptions{.busy_timeout_ms = 10000});
    if (!opened.ok()) {
      ++failures;
      return;
    }
    Store& store = **opened;
    auto org = store.TheOnlyOrganization();
    auto api = store.FindApiUser(org->id, "ci-bot");
    for (int i = 0; i < kPerWriter; ++i) {
      Status s = store.Transaction([&]() -> Status {
        MintedToken m = MintToken().value();
        GATEHOUSE_RETURN_IF_ERROR(store.InsertToken(
            NewToken{m.id, api->id, "w" + std::to_string(which), m.hash, kNow, kNow + 60, "x"}));
        AuditRecord r;
        r.time = kNow;
        r.org_id = org->id;
        r.actor = "writer" + std::to_string(which);
        r.action = "token.create";
        r.decision = AuditDecision::kAllow;
        return store.AppendAudit(r).status();
      });
      if (!s.ok()) {
        ADD_FAILURE() << s.ToString();
        ++failures;
      }
    }
  };
  std::thread a(writer, 1), b(writer, 2);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  auto store = Open();
  ASSERT_OK_AND_ASSIGN(tokens, store->LoadActiveTokens(kNow));
  EXPECT_EQ(tokens.size(), 2u * kPerWriter);
  ASSERT_OK_AND_ASSIGN(audit, store->ListAudit(std::nullopt, 1000));
  EXPECT_EQ(audit.size(), 2u * kPerWriter);
}

TEST_P(StoreTest, AWriterGivesUpAfterTheBusyTimeoutWithAClearError) {
  auto holder = Create();
  ASSERT_OK(holder->CreateOrganization("Acme").status());
  auto waiter = Open(StoreOptions{.busy_timeout_ms = 50});
  ASSERT_NE(waiter, nullptr);
  ASSERT_OK(holder->Transaction([&]() -> Status {
    auto start = std::chrono::steady_clock::now();
    Status s = waiter->CreateOrganization("Globex").status();
    auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
    EXPECT_NE(s.message().find("store is locked by another writer"), std::string::npos)
        << s.ToString();
    EXPECT_GE(waited, std::chrono::milliseconds(40));
    Status t = waiter->Transaction([] { return Status::Ok(); });
    EXPECT_NE(t.message().find("store is locked by another writer"), std::string::npos)
        << t.ToString();
    return Status::Ok();
  }));
  // Once the holder commits, the waiter gets through.
  ASSERT_OK(waiter->CreateOrganization("Globex").status());
}

// The sidecar reads its directory on read-only connections while the CLI
// writes: a read snapshot must neither wait for the writer nor see its
// uncommitted changes.
TEST_P(StoreTest, ReadSnapshotNeitherWaitsForAWriterNorSeesItsUncommittedChanges) {
  auto writer = Create();
  ASSERT_OK(writer->CreateOrganization("Acme").status());
  auto reader = Open(StoreOptions{.busy_timeout_ms = 2000, .read_only = true});
  ASSERT_NE(reader, nullptr);
  ASSERT_OK(writer->Transaction([&]() -> Status {
    EXPECT_TRUE(writer->CreateOrganization("Globex").ok());
    auto start = std::chrono::steady_clock::now();
    size_t seen = 0;
    Status s = reader->ReadSnapshot([&]() -> Status {
      auto orgs = reader->ListOrganizations();
      if (!orgs.ok()) return orgs.status();
      seen = orgs->size();
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(seen, 1u);  // not Globex: uncommitted
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
    return Status::Ok();
  }));
  size_t after = 0;
  ASSERT_OK(reader->ReadSnapshot([&]() -> Status {
    after = reader->ListOrganizations()->size();
    return Status::Ok();
  }));
  EXPECT_EQ(after, 2u);
}

// ---- looking at the file from outside SQLite ----

TEST_F(SqliteStoreTest, ProbeStoreFileTellsWhyAStoreCannotBeRead) {
  EXPECT_EQ(ProbeStoreFile(path_).code(), StatusCode::kFailedPrecondition);  // nothing there
  fs::create_directory(path_);
  EXPECT_EQ(ProbeStoreFile(path_).code(), StatusCode::kFailedPrecondition);  // not a file
  fs::remove(path_);
  std::ofstream(path_).close();
  EXPECT_EQ(ProbeStoreFile(path_).code(), StatusCode::kCorruption);  // empty
  fs::remove(path_);
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Populate(*store);
  ASSERT_OK(ProbeStoreFile(path_));
  const std::string head = ReadFile(path_).substr(0, 16);
  {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.write("garbage garbage!", 16);
  }
  const Status damaged = ProbeStoreFile(path_);
  EXPECT_EQ(damaged.code(), StatusCode::kCorruption);
  EXPECT_NE(damaged.message().find(path_), std::string::npos) << damaged.ToString();
  {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.write(head.data(), 16);
  }
  ASSERT_OK(ProbeStoreFile(path_));
  if (::geteuid() != 0) {  // root reads whatever the mode says
    fs::permissions(path_, fs::perms::none);
    EXPECT_EQ(ProbeStoreFile(path_).code(), StatusCode::kPermissionDenied);
    fs::permissions(path_, fs::perms::owner_read | fs::perms::owner_write);
  }
}

TEST_F(SqliteStoreTest, StoreWatchStampChangesWithEveryCommitAndOnlyThen) {
  auto writer = Create();
  ASSERT_NE(writer, nullptr);
  Fixture f = Populate(*writer);
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  ASSERT_OK(reader->DataVersion().status());
  auto watch = SqliteWalWatch::Open(path_);
  ASSERT_NE(watch, nullptr) << "no -shm file beside a WAL store";
  StoreStamp before, same, after;
  ASSERT_TRUE(watch->Read(&before));
  ASSERT_OK(reader->ListApiUsers(f.org.id, std::nullopt).status());  // reads commit nothing
  ASSERT_TRUE(watch->Read(&same));
  EXPECT_EQ(before, same);
  AddToken(*writer, f.api_user.id, kNow + 3600);
  ASSERT_TRUE(watch->Read(&after));
  EXPECT_NE(before, after);
  // The stamp is read through a mapping of the -shm file: every commit is
  // seen by the very next read, one after another, from this process's
  // writer and from another process's (the sqlite3 shell).
  std::set<StoreStamp> seen{before, after};
  for (int i = 0; i < 12; ++i) {
    if (i % 3 == 2) {
      ASSERT_EQ(::access("/usr/bin/sqlite3", X_OK), 0) << "no sqlite3 shell (scripts/setup.sh installs it)";
      const std::string cmd = "/usr/bin/sqlite3 '" + path_ +
                              "' 'BEGIN; CREATE TABLE gh_probe(x); DROP TABLE gh_probe; COMMIT;'";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    } else {
      AddToken(*writer, f.api_user.id, kNow + 3600 + i);
    }
    StoreStamp now, again;
    ASSERT_TRUE(watch->Read(&now));
    EXPECT_TRUE(seen.insert(now).second) << "commit " << i << " left the stamp as it was";
    ASSERT_TRUE(watch->Read(&again));
    EXPECT_EQ(now, again) << "no commit, yet the stamp moved";
  }
  EXPECT_EQ(SqliteWalWatch::Open(dir_.File("none.db")), nullptr);
  // A -shm file shorter than the header is not mapped (a read past its end
  // would fault): no watch, so the reader asks the store instead.
  for (const size_t size : {size_t{0}, size_t{3}, sizeof(StoreStamp) - 1}) {
    const std::string db = dir_.File("short" + std::to_string(size) + ".db");
    std::ofstream(db + "-shm", std::ios::binary) << std::string(size, '\1');
    EXPECT_EQ(SqliteWalWatch::Open(db), nullptr) << "a " << size << "-byte -shm file";
  }
}

// Regression: the probe used to open and close the store file each poll, which
// dropped the POSIX locks SQLite held on it in this process; another process
// then thought itself the last connection and deleted the WAL under the
// sidecar (the soak test saw revoked tokens allowed and a "malformed" store).
TEST_F(SqliteStoreTest, ProbingAndWatchingLeaveSqlitesLocksInThisProcessAlone) {
  ASSERT_EQ(::access("/usr/bin/sqlite3", X_OK), 0) << "no sqlite3 shell (scripts/setup.sh installs it)";
  {
    auto writer = Create();
    ASSERT_NE(writer, nullptr);
    Populate(*writer);
  }
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  ASSERT_OK(reader->DataVersion().status());
  ASSERT_TRUE(fs::exists(path_ + "-wal"));
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(ProbeStoreFile(path_));
    ASSERT_NE(SqliteWalWatch::Open(path_), nullptr);
  }
  // Another process opens and closes the store: it must see this process's
  // connection, so it is not the last one and leaves the WAL in place.
  const std::string cmd = "/usr/bin/sqlite3 '" + path_ + "' 'SELECT count(*) FROM tokens;' >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_TRUE(fs::exists(path_ + "-wal")) << "another process deleted the WAL: this process's locks were gone";
  ASSERT_OK(reader->DataVersion().status());
}

// ---- the content generation (schema version 2) ----

TEST_P(StoreTest, ContentGenerationMovesWithTheDataNotWithTheAuditLog) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Store& s = *store;
  Fixture f = Populate(s);
  int64_t last = s.ContentGeneration().value();
  auto moved = [&](const char* what) {
    auto now = s.ContentGeneration();
    EXPECT_TRUE(now.ok()) << now.status().ToString();
    const bool changed = now.ok() && *now != last;
    if (now.ok()) last = *now;
    EXPECT_TRUE(changed) << what << " left the generation as it was";
  };
  AuditRecord audit;
  audit.time = kNow;
  audit.actor = "owner@example.com";
  audit.action = "token.list";
  ASSERT_OK(s.AppendAudit(audit).status());
  EXPECT_EQ(s.ContentGeneration().value(), last) << "an audit record moved it";

  ASSERT_OK(s.CreateOrganization("Other").status());
  moved("an organization");
  auto user = s.AddUser(f.org.id, "alice@example.com", "viewer");
  ASSERT_OK(user.status());
  moved("a user");
  ASSERT_OK(s.CreateWorkspace(f.org.id, "Dev", "shared", std::nullopt).status());
  moved("a workspace");
  ASSERT_OK(s.SetMembership(f.ws.id, user->id, "viewer"));
  moved("a membership");
  ASSERT_OK(s.SetMembership(f.ws.id, user->id, "admin"));
  moved("a membership's role");
  ASSERT_OK(s.SetApiUserWorkspaceRole(f.api_user.id, "admin"));
  moved("an API user's role");
  MintedToken t = AddToken(s, f.api_user.id, kNow + 3600);
  moved("a token");
  ASSERT_OK(s.SetSetting(f.org.id, "workspace_admins_can_create_tokens", "true"));
  moved("a setting");
  ASSERT_OK(s.DeleteToken(t.id));
  moved("a revocation");
  AddToken(s, f.api_user.id, kNow - 1);
  moved("an expired token");
  ASSERT_OK(s.DeleteExpiredTokens(kNow).status());
  moved("a sweep");
  ASSERT_OK(s.DeleteApiUser(f.api_user.id).status());
  moved("an API user's deletion");
}

TEST_F(SqliteStoreTest, AVersion1StoreIsMigratedByTheNextWriter) {
  {
    auto store = Create();
    ASSERT_NE(store, nullptr);
    Populate(*store);
    // Back to version 1, as a store made by an old release.
    std::string down = DownToVersion2() + "DROP TABLE generation; PRAGMA user_version = 1;";
    for (const char* table : {"organizations", "users", "workspaces", "memberships", "api_users",
                              "tokens", "settings"})
      for (const char* op : {"insert", "update", "delete"})
        down = "DROP TRIGGER " + std::string(table) + "_" + op + "_bumps; " + down;
    ASSERT_OK(internal::ExecSqliteForTesting(*store, down));
  }
  // A reader (the sidecar) does not migrate: it says what to do.
  auto refused = OpenSqliteStore(path_, StoreOptions{.read_only = true});
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("needs a migration"), std::string::npos)
      << refused.status().ToString();
  auto writer = Open();
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->SchemaVersion().value(), kStoreSchemaVersion);
  EXPECT_EQ(writer->FindOrganization("Acme").status().code(), StatusCode::kOk);
  const int64_t before = writer->ContentGeneration().value();
  ASSERT_OK(writer->CreateOrganization("Other").status());
  EXPECT_NE(writer->ContentGeneration().value(), before);
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->ContentGeneration().value(), writer->ContentGeneration().value());
}

TEST_F(SqliteStoreTest, AVersion2StoreGetsTheChangeFeedFromTheNextWriter) {
  {
    auto store = Create();
    ASSERT_NE(store, nullptr);
    Populate(*store);
    ASSERT_OK(internal::ExecSqliteForTesting(*store, DownToVersion2()));
  }
  auto writer = Open();
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->SchemaVersion().value(), 3);
  // The feed starts at the migration; the version 2 generation still moves
  // (a sidecar of that version keeps serving the migrated store).
  EXPECT_EQ(writer->ChangeHead().value(), 0);
  const int64_t generation = writer->ContentGeneration().value();
  ASSERT_OK(writer->CreateOrganization("Other").status());
  EXPECT_EQ(writer->ChangeHead().value(), 1);
  EXPECT_NE(writer->ContentGeneration().value(), generation);
}

// ---- the change feed ----

TEST_P(StoreTest, TheFeedNumbersEveryChangeWithoutGapsAndSkipsTheAuditLog) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ChangeHead().value(), 0);
  Fixture f = Populate(*store);  // organization, workspace, API user
  EXPECT_EQ(store->ChangeHead().value(), 3);
  ASSERT_OK_AND_ASSIGN(directory, store->ReadChangesSince(0, 100));
  EXPECT_EQ(directory.head, 3);
  EXPECT_EQ(directory.changes, 3);
  EXPECT_TRUE(directory.directory_changed);
  ASSERT_EQ(directory.principals.size(), 1u);
  EXPECT_EQ(directory.principals[0].api_user_name, "ci-bot");
  EXPECT_EQ(directory.principals[0].workspace_type, "shared");

  MintedToken t = AddToken(*store, f.api_user.id, kNow + 3600);
  ASSERT_OK_AND_ASSIGN(created, store->ReadChangesSince(3, 100));
  EXPECT_EQ(created.head, 4);
  EXPECT_FALSE(created.directory_changed);
  ASSERT_EQ(created.tokens.size(), 1u);
  EXPECT_EQ(created.tokens[0].token_id, t.id);
  EXPECT_EQ(created.tokens[0].workspace_role, "contributor");
  EXPECT_TRUE(created.removed_tokens.empty());

  // Audit records are not in the feed; a rolled-back transaction takes no number.
  ASSERT_OK(store->AppendAudit(AuditRecord{0, kNow, f.org.id, "a@example.com", "token.list", "x",
                                           AuditDecision::kAllow, "", "", ""})
                .status());
  EXPECT_EQ(store->ChangeHead().value(), 4);
  Status failed = store->Transaction([&]() -> Status {
    (void)store->CreateOrganization("Doomed");
    return Status::Internal("no");
  });
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(store->ChangeHead().value(), 4);
  ASSERT_OK_AND_ASSIGN(nothing, store->ReadChangesSince(4, 100));
  EXPECT_EQ(nothing.changes, 0);
  EXPECT_EQ(nothing.head, 4);

  ASSERT_OK(store->DeleteToken(t.id));
  ASSERT_OK_AND_ASSIGN(revoked, store->ReadChangesSince(4, 100));
  EXPECT_TRUE(revoked.tokens.empty());
  ASSERT_EQ(revoked.removed_tokens.size(), 1u);
  EXPECT_EQ(revoked.removed_tokens[0], t.hash);

  // A role change is the API user's principal, as it is now.
  ASSERT_OK(store->SetApiUserWorkspaceRole(f.api_user.id, "admin"));
  ASSERT_OK_AND_ASSIGN(role, store->ReadChangesSince(5, 100));
  ASSERT_EQ(role.principals.size(), 1u);
  EXPECT_EQ(role.principals[0].workspace_role, "admin");
  EXPECT_FALSE(role.directory_changed);

  // Every directory table is in the feed.
  const int64_t before = store->ChangeHead().value();
  auto user = store->AddUser(f.org.id, "u@example.com", "member");
  ASSERT_TRUE(user.ok());
  ASSERT_OK(store->SetMembership(f.ws.id, user->id, "viewer"));
  ASSERT_OK(store->SetSetting(f.org.id, "workspace_admins_can_create_tokens", "false"));
  EXPECT_EQ(store->ChangeHead().value(), before + 3);
  ASSERT_OK_AND_ASSIGN(dir, store->ReadChangesSince(before, 100));
  EXPECT_TRUE(dir.directory_changed);
  EXPECT_TRUE(dir.tokens.empty() && dir.principals.empty());
}

// Which organizations' directory parts a batch says changed, for every kind
// of directory change: each alone, from the head before it. Orgs are what
// the store can resolve now; the changed users' and workspaces' ids are
// there too (a reader maps deleted or moved ones through its old directory).
TEST_P(StoreTest, TheFeedNamesTheOrganizationsWhoseDirectoryChanged) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(a, store->CreateOrganization("A"));
  ASSERT_OK_AND_ASSIGN(b, store->CreateOrganization("B"));
  ASSERT_OK_AND_ASSIGN(c, store->CreateOrganization("C"));
  ASSERT_OK_AND_ASSIGN(wa, store->CreateWorkspace(a.id, "Dev", "shared", std::nullopt));
  ASSERT_OK_AND_ASSIGN(wb, store->CreateWorkspace(b.id, "Dev", "shared", std::nullopt));
  ASSERT_OK_AND_ASSIGN(ua, store->AddUser(a.id, "ua@example.com", "member"));
  ASSERT_OK_AND_ASSIGN(ua2, store->AddUser(a.id, "ua2@example.com", "member"));
  ASSERT_OK_AND_ASSIGN(ub, store->AddUser(b.id, "ub@example.com", "member"));
  ASSERT_OK_AND_ASSIGN(lonely, store->AddUser(b.id, "lonely@example.com", "member"));
  ASSERT_OK(store->SetMembership(wa.id, ua.id, "viewer"));
  ASSERT_OK(store->SetMembership(wa.id, ua2.id, "viewer"));
  ASSERT_OK(store->SetMembership(wb.id, ub.id, "viewer"));
  ASSERT_OK_AND_ASSIGN(bot, store->CreateApiUser(NewApiUser{wa.id, "bot", "viewer", "viewer",
                                                            "o@example.com", kNow}));
  using Ids = std::vector<int64_t>;
  struct Want {
    Ids orgs, users, workspaces;
  };
  auto expect = [&](const char* what, const std::function<Status()>& change, const Want& want) {
    const int64_t head = store->ChangeHead().value();
    {
      Status s = change();
      ASSERT_TRUE(s.ok()) << what << ": " << s.ToString();
    }
    ASSERT_OK_AND_ASSIGN(batch, store->ReadChangesSince(head, 100));
    EXPECT_TRUE(batch.directory_changed) << what;
    EXPECT_EQ(batch.directory_orgs, want.orgs) << what;
    EXPECT_EQ(batch.directory_users, want.users) << what;
    EXPECT_EQ(batch.directory_workspaces, want.workspaces) << what;
  };
  auto raw = [&](std::string sql) { return [&, sql] { return Raw(*store, sql); }; };
  const std::string id_ua = std::to_string(ua.id), id_lonely = std::to_string(lonely.id);
  expect("a setting", [&] { return store->SetSetting(c.id, "toggle", "true"); }, {{c.id}, {}, {}});
  expect("a membership", [&] { return store->SetMembership(wa.id, ua.id, "admin"); },
         {{a.id}, {ua.id}, {wa.id}});
  {
    const int64_t head = store->ChangeHead().value();
    ASSERT_OK(store->AddUser(b.id, "new@example.com", "member").status());
    ASSERT_OK_AND_ASSIGN(batch, store->ReadChangesSince(head, 100));
    EXPECT_EQ(batch.directory_orgs, Ids{b.id});
  }
  ASSERT_OK_AND_ASSIGN(added, store->FindUserByEmail("new@example.com"));
  expect("a role", raw("UPDATE users SET org_role = 'admin' WHERE id = " + id_lonely),
         {{b.id}, {lonely.id}, {}});
  expect("a workspace renamed", raw("UPDATE workspaces SET name = 'Prod' WHERE id = " + std::to_string(wb.id)),
         {{b.id}, {}, {wb.id}});
  expect("a user moved", raw("UPDATE users SET org_id = " + std::to_string(a.id) + " WHERE id = " + id_lonely),
         {{a.id}, {lonely.id}, {}});
  // Gone rows: the store cannot say where they were, only their ids.
  expect("a user without memberships deleted", raw("DELETE FROM users WHERE id = " + std::to_string(added.id)),
         {{}, {added.id}, {}});
  // A deleted member's memberships go with it: their workspace is still there.
  expect("a member deleted", raw("DELETE FROM users WHERE id = " + id_ua), {{a.id}, {ua.id}, {wa.id}});
  // An organization deleted with everything in it (its API user first).
  ASSERT_OK(store->DeleteApiUser(bot.id).status());
  expect("an organization deleted",
         raw("DELETE FROM memberships WHERE workspace_id = " + std::to_string(wa.id) +
             "; DELETE FROM workspaces WHERE org_id = " + std::to_string(a.id) +
             "; DELETE FROM users WHERE org_id = " + std::to_string(a.id) +
             "; DELETE FROM organizations WHERE id = " + std::to_string(a.id)),
         {{a.id}, {ua2.id, lonely.id}, {wa.id}});
  int64_t head = store->ChangeHead().value();
  ASSERT_OK_AND_ASSIGN(d, store->CreateOrganization("D"));
  ASSERT_OK_AND_ASSIGN(created, store->ReadChangesSince(head, 100));
  EXPECT_EQ(created.directory_orgs, Ids{d.id});
  // Not the directory: nothing named.
  head = store->ChangeHead().value();
  ASSERT_OK_AND_ASSIGN(other, store->CreateApiUser(NewApiUser{wb.id, "other", "viewer", "viewer",
                                                              "o@example.com", kNow}));
  ASSERT_OK_AND_ASSIGN(batch, store->ReadChangesSince(head, 100));
  EXPECT_FALSE(batch.directory_changed);
  EXPECT_TRUE(batch.directory_orgs.empty() && batch.directory_users.empty() &&
              batch.directory_workspaces.empty());
  (void)other;
  (void)ub;
}

TEST_P(StoreTest, AnApiUsersDeletionIsInTheFeedWithEveryCascadedToken) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Fixture f = Populate(*store);
  MintedToken a = AddToken(*store, f.api_user.id, kNow + 3600, "a");
  MintedToken b = AddToken(*store, f.api_user.id, kNow + 3600, "b");
  const int64_t head = store->ChangeHead().value();
  ASSERT_OK(store->DeleteApiUser(f.api_user.id).status());
  ASSERT_OK_AND_ASSIGN(batch, store->ReadChangesSince(head, 100));
  EXPECT_EQ(batch.removed_api_users, std::vector<int64_t>{f.api_user.id});
  std::vector<TokenHash> want{a.hash, b.hash};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(batch.removed_tokens, want);
  EXPECT_TRUE(batch.tokens.empty());
}

TEST_P(StoreTest, AChangedWorkspaceChangesItsApiUsersPrincipals) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Fixture f = Populate(*store);
  const int64_t head = store->ChangeHead().value();
  ASSERT_OK(Raw(
      *store, "UPDATE workspaces SET type = 'personal', name = 'Renamed' WHERE id = " +
                  std::to_string(f.ws.id)));
  ASSERT_OK_AND_ASSIGN(batch, store->ReadChangesSince(head, 100));
  EXPECT_TRUE(batch.directory_changed);
  ASSERT_EQ(batch.principals.size(), 1u);
  EXPECT_EQ(batch.principals[0].workspace_type, "personal");
  EXPECT_EQ(batch.principals[0].workspace_name, "Renamed");
}

TEST_P(StoreTest, APrunedFeedOrABigBacklogOrAForeignNumberIsRefused) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Fixture f = Populate(*store);
  for (int i = 0; i < 10; ++i) AddToken(*store, f.api_user.id, kNow + 3600);
  const int64_t head = store->ChangeHead().value();
  EXPECT_EQ(head, 13);
  EXPECT_EQ(store->ReadChangesSince(0, 5).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->ReadChangesSince(head + 1, 5).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ReadChangesSince(-1, 5).status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(dropped, store->PruneChanges(4));
  EXPECT_EQ(dropped, head - 4);
  EXPECT_EQ(store->ChangeHead().value(), head);  // numbers are never reused
  auto pruned = store->ReadChangesSince(head - 5, 100);
  EXPECT_EQ(pruned.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(pruned.status().message().find("pruned"), std::string::npos) << pruned.status().ToString();
  ASSERT_OK_AND_ASSIGN(kept, store->ReadChangesSince(head - 4, 100));
  EXPECT_EQ(kept.tokens.size(), 4u);
  // Pruning everything still keeps the numbering.
  ASSERT_OK(store->PruneChanges(0).status());
  AddToken(*store, f.api_user.id, kNow + 3600);
  EXPECT_EQ(store->ChangeHead().value(), head + 1);
  ASSERT_OK_AND_ASSIGN(next, store->ReadChangesSince(head, 100));
  EXPECT_EQ(next.tokens.size(), 1u);
}

TEST_P(StoreTest, FeedNumbersAreGaplessUnderConcurrentWriters) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Fixture f = Populate(*store);
  const int64_t start = store->ChangeHead().value();
  constexpr int kWriters = 8, kEach = 25;
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&] {
      auto mine = OpenStore(locator_, StoreOptions{.busy_timeout_ms = 20000});
      if (!mine.ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < kEach; ++i) {
        MintedToken m = MintToken().value();
        Status s = (*mine)->InsertToken(
            NewToken{m.id, f.api_user.id, "t", m.hash, kNow, kNow + 3600, "o@example.com"});
        if (!s.ok()) ++failures;
      }
    });
  }
  for (std::thread& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);
  const int64_t head = store->ChangeHead().value();
  EXPECT_EQ(head - start, kWriters * kEach);
  ASSERT_OK_AND_ASSIGN(rows, RawInt(*store,
                                    "SELECT count(*) FROM changes WHERE seq > " + std::to_string(start),
                                    "SELECT count(*) FROM changes WHERE txn > " + std::to_string(start)));
  EXPECT_EQ(rows, kWriters * kEach);
  ASSERT_OK_AND_ASSIGN(batch, store->ReadChangesSince(start, 1000));
  EXPECT_EQ(batch.tokens.size(), static_cast<size_t>(kWriters * kEach));
}

// ---- both backends: names, the feed followed live, waiting ----

// Names fold ASCII only, on both backends, whatever the database's locale
// (the test server runs in C.UTF-8, where lower() folds 'É'): generated
// names that differ only in ASCII case clash, names that differ in a
// non-ASCII letter do not, and listings come out in the same order.
TEST_P(StoreTest, NamesFoldAsciiOnlyAndListInTheSameOrderOnBothBackends) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  std::mt19937 rng(20260101);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
  auto fold = [](std::string x) {
    for (char& c : x)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return x;
  };
  std::set<std::string> taken;  // folded
  std::vector<std::string> created;
  for (int i = 0; i < 40; ++i) {
    std::string name;
    const int len = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < len; ++k) name.push_back(alphabet[rng() % alphabet.size()]);
    if (i % 5 == 0) name += "\xc3\x89";  // É
    if (i % 7 == 0) name += "\xc3\xa9";  // é
    auto made = store->CreateOrganization(name);
    if (taken.count(fold(name))) {
      EXPECT_EQ(made.status().code(), StatusCode::kAlreadyExists) << name;
      continue;
    }
    ASSERT_OK(made.status());
    taken.insert(fold(name));
    created.push_back(name);
    // Another spelling of the same name, differing only in ASCII case, clashes
    // and finds it.
    std::string other = name;
    for (char& c : other)
      if (std::isalpha(static_cast<unsigned char>(c)) && (c & 0x80) == 0)
        c = static_cast<char>(std::islower(static_cast<unsigned char>(c)) ? std::toupper(c) : std::tolower(c));
    EXPECT_EQ(store->CreateOrganization(other).status().code(), StatusCode::kAlreadyExists) << other;
    ASSERT_OK_AND_ASSIGN(found, store->FindOrganization(other));
    EXPECT_EQ(found.name, name);
  }
  // Non-ASCII letters are not folded: É and é are different names.
  ASSERT_OK(store->CreateOrganization("Caf\xc3\x89").status());
  ASSERT_OK(store->CreateOrganization("Caf\xc3\xa9").status());
  EXPECT_TRUE(store->FindOrganization("CAF\xc3\xa9").ok());
  created.push_back("Caf\xc3\x89");
  created.push_back("Caf\xc3\xa9");
  std::vector<std::string> want = created;
  std::sort(want.begin(), want.end(), [&](const std::string& a, const std::string& b) {
    return fold(a) < fold(b);  // byte order of the folded names
  });
  ASSERT_OK_AND_ASSIGN(all, store->ListOrganizations());
  std::vector<std::string> got;
  for (const Organization& o : all) got.push_back(o.name);
  EXPECT_EQ(got, want);
}

TEST_P(StoreTest, TextAStoreCannotKeepIsRefusedOnBothBackendsOrKeptExactly) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  // Control characters, quotes and SQL are kept byte for byte.
  const std::string odd = "a'b\"c;--\t\\%_";
  ASSERT_OK_AND_ASSIGN(org, store->CreateOrganization(odd));
  ASSERT_OK_AND_ASSIGN(found, store->FindOrganization(odd));
  EXPECT_EQ(found.id, org.id);
  EXPECT_EQ(found.name, odd);
  ASSERT_OK(store->SetSetting(org.id, "s", ""));
  EXPECT_EQ(store->GetSetting(org.id, "s").value(), "");
}

// A follower that reads "everything after what I applied" while 8 writers
// commit sees every token exactly as the writers made them: none is skipped
// (a number that commits after a later one would be).
TEST_P(StoreTest, AFollowerReadingTheFeedWhileEightWritersCommitMissesNothing) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Fixture f = Populate(*store);
  auto follower = Open(StoreOptions{.read_only = true});
  ASSERT_NE(follower, nullptr);
  const int64_t start = store->ChangeHead().value();
  constexpr int kWriters = 8, kEach = 15;
  std::atomic<int> failures{0}, done{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto mine = OpenStore(locator_, StoreOptions{.busy_timeout_ms = 20000});
      if (!mine.ok()) {
        ++failures;
        ++done;
        return;
      }
      for (int i = 0; i < kEach; ++i) {
        Status s = (*mine)->Transaction([&]() -> Status {
          // Two tokens per transaction, and a rolled-back savepoint between.
          for (int k = 0; k < 2; ++k) {
            MintedToken m = MintToken().value();
            GATEHOUSE_RETURN_IF_ERROR((*mine)->InsertToken(
                NewToken{m.id, f.api_user.id, "w" + std::to_string(w), m.hash, kNow, kNow + 3600, "o"}));
            (void)(*mine)->Transaction([&] {
              (void)(*mine)->CreateOrganization("doomed-" + std::to_string(w));
              return Status::Internal("rolled back");
            });
          }
          return Status::Ok();
        });
        if (!s.ok()) ++failures;
      }
      ++done;
    });
  }
  std::set<TokenHash> seen;
  int64_t applied = start;
  for (int round = 0; round < 100000; ++round) {
    const bool last = done.load() == kWriters;
    auto batch = follower->ReadChangesSince(applied, 100000);
    ASSERT_OK(batch.status());
    for (const TokenRecord& t : batch->tokens) EXPECT_TRUE(seen.insert(t.hash).second);
    applied = batch->head;
    if (last) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (std::thread& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kWriters * kEach * 2));
  ASSERT_OK_AND_ASSIGN(all, store->LoadActiveTokens(kNow));
  EXPECT_EQ(all.size(), static_cast<size_t>(kWriters * kEach * 2));
  EXPECT_EQ(store->FindOrganization("doomed-0").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreTest, WaitForChangeTimesOutWithoutACommit) {
  auto writer = Create();
  ASSERT_NE(writer, nullptr);
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  ASSERT_OK(reader->Subscribe());
  auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(woke, reader->WaitForChange(50));
  EXPECT_FALSE(woke);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(45));
  EXPECT_EQ(reader->WaitForChange(-1).status().code(), StatusCode::kInvalidArgument);
  // An audit-only commit changes nothing decisions read: no wake-up either.
  ASSERT_OK(writer->AppendAudit(AuditRecord{0, kNow, std::nullopt, "a", "token.list", "x",
                                            AuditDecision::kAllow, "", "", ""})
                .status());
  ASSERT_OK_AND_ASSIGN(audit_only, reader->WaitForChange(50));
  EXPECT_FALSE(audit_only);
}

// A renewed feed epoch is new every time, is what every later batch carries,
// and is refused on a read-only store; on PostgreSQL it wakes subscribers.
TEST_P(StoreTest, RenewFeedEpochGivesEveryLaterBatchANewEpoch) {
  auto writer = Create();
  ASSERT_NE(writer, nullptr);
  Populate(*writer);
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  ASSERT_OK(reader->Subscribe());
  ASSERT_OK_AND_ASSIGN(head, writer->ChangeHead());
  ASSERT_OK_AND_ASSIGN(first, reader->FeedEpoch());
  std::set<int64_t> seen = {first};
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(renewed, writer->RenewFeedEpoch());
    EXPECT_TRUE(seen.insert(renewed).second) << "epoch " << renewed << " came again";
    EXPECT_GE(renewed, 0);
    ASSERT_OK_AND_ASSIGN(now, reader->FeedEpoch());
    EXPECT_EQ(now, renewed);
    ASSERT_OK_AND_ASSIGN(batch, reader->ReadChangesSince(head, 1000));
    EXPECT_EQ(batch.epoch, renewed);
    EXPECT_EQ(batch.head, head);  // no feed row: nothing else changed
  }
  if (IsPostgres()) {
    ASSERT_OK_AND_ASSIGN(woke, reader->WaitForChange(5000));
    EXPECT_TRUE(woke) << "a renewal must wake the subscribers";
  }
  EXPECT_EQ(reader->RenewFeedEpoch().status().code(), StatusCode::kFailedPrecondition);
}

// ---- the locator ----

TEST(StoreLocator, PostgresLocatorsAreUrisOfEitherSchemeAndEverythingElseIsAPath) {
  EXPECT_TRUE(IsPostgresLocator("postgresql://db.example.com/gatehouse"));
  EXPECT_TRUE(IsPostgresLocator("postgres:///gatehouse?host=/run/postgresql"));
  EXPECT_FALSE(IsPostgresLocator("./gatehouse.db"));
  EXPECT_FALSE(IsPostgresLocator("postgresql.db"));
  EXPECT_FALSE(IsPostgresLocator("PostgreSQL://x"));  // a file name, as SQLite would take it
}

TEST(StoreLocator, APasswordIsNeverShownAndRefusedOnTheCommandLine) {
  const std::string with_userinfo = "postgresql://admin:s3cr%40t@db.example.com:5432/gh";
  const std::string with_param = "postgres://admin@db/gh?sslmode=require&password=s3cret&x=1";
  EXPECT_EQ(RedactLocator(with_userinfo), "postgresql://admin:***@db.example.com:5432/gh");
  EXPECT_EQ(RedactLocator(with_param), "postgres://admin@db/gh?sslmode=require&password=***&x=1");
  for (const std::string& l : {with_userinfo, with_param}) {
    Status s = CheckCommandLineLocator(l);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << l;
    EXPECT_NE(s.message().find("PGPASSFILE"), std::string::npos);
    EXPECT_EQ(s.message().find("s3c"), std::string::npos) << s.message();
  }
  ASSERT_OK(CheckCommandLineLocator("postgresql://admin@db.example.com/gh"));
  ASSERT_OK(CheckCommandLineLocator("./with:colon@and.db"));  // a path may hold anything
  EXPECT_EQ(RedactLocator("./a:b@c.db"), "./a:b@c.db");
}

// ---- PostgreSQL only ----

TEST_F(PostgresStoreTest, ADatabaseWithoutAStoreSaysToRunInitAndCreateRefusesASecondTime) {
  auto none = OpenStore(locator_);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("gatehouse init"), std::string::npos) << none.status().ToString();
  auto store = Create();
  ASSERT_NE(store, nullptr);
  auto again = CreateStore(locator_);
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists) << again.status().ToString();
  EXPECT_EQ(CreateStore(locator_, StoreOptions{.read_only = true}).status().code(),
            StatusCode::kInvalidArgument);
  // A database that does not exist, and a server that is not there.
  testing::PostgresServer* pg = testing::PostgresServer::Get();
  ASSERT_NE(pg, nullptr);
  auto missing = OpenStore(pg->Locator("no_such_db"));
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition) << missing.status().ToString();
  auto nobody = OpenStore("postgresql:///gh?host=" + dir_.path() + "&user=gh&connect_timeout=2");
  EXPECT_EQ(nobody.status().code(), StatusCode::kIoError) << nobody.status().ToString();
}

TEST_F(PostgresStoreTest, ErrorsNeverShowThePassword) {
  testing::PostgresServer* pg = testing::PostgresServer::Get();
  ASSERT_NE(pg, nullptr);
  auto s = OpenStore("postgresql://gh:hunter2@/no_such_db?host=" + pg->socket_dir());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message().find("hunter2"), std::string::npos) << s.status().ToString();
  EXPECT_NE(s.status().message().find("***"), std::string::npos) << s.status().ToString();
}

TEST_F(PostgresStoreTest, AnOlderOrNewerSchemaIsRefusedAndOnlyAnExplicitMigrationMigrates) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Populate(*store);
  // An older schema (version 2 never existed on PostgreSQL; here it stands
  // for "older"): nobody opens it, reader or writer; they say what to do.
  ASSERT_OK(Raw(*store, "", "UPDATE gatehouse_meta SET schema_version = 2"));
  for (bool read_only : {true, false}) {
    auto refused = OpenStore(locator_, StoreOptions{.read_only = read_only});
    EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(refused.status().message().find("gatehouse store migrate"), std::string::npos)
        << refused.status().ToString();
  }
  // A newer one: refused by everyone, the migration included.
  ASSERT_OK(Raw(*store, "", "UPDATE gatehouse_meta SET schema_version = 99"));
  for (bool read_only : {true, false}) {
    auto refused = OpenStore(locator_, StoreOptions{.read_only = read_only});
    EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(refused.status().message().find("upgrade gatehouse"), std::string::npos)
        << refused.status().ToString();
  }
  EXPECT_EQ(MigrateStore(locator_).status().code(), StatusCode::kFailedPrecondition);
  // The current one: migrating finds nothing to do, and the data is intact.
  ASSERT_OK(Raw(*store, "", "UPDATE gatehouse_meta SET schema_version = 3"));
  ASSERT_OK_AND_ASSIGN(from, MigrateStore(locator_));
  EXPECT_EQ(from, kStoreSchemaVersion);
  auto reopened = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(reopened->FindApiUser(reopened->TheOnlyOrganization()->id, "ci-bot").ok());
  EXPECT_EQ(MigrateStore(locator_, StoreOptions{.read_only = true}).status().code(),
            StatusCode::kInvalidArgument);
}

// SQLite migrates on the next write; MigrateStore says from which version.
TEST_F(SqliteStoreTest, MigrateStoreBringsAVersion2StoreToTheCurrentSchema) {
  {
    auto store = Create();
    ASSERT_NE(store, nullptr);
    Populate(*store);
    ASSERT_OK(internal::ExecSqliteForTesting(*store, DownToVersion2()));
  }
  ASSERT_OK_AND_ASSIGN(from, MigrateStore(locator_));
  EXPECT_EQ(from, 2);
  ASSERT_OK_AND_ASSIGN(again, MigrateStore(locator_));
  EXPECT_EQ(again, kStoreSchemaVersion);
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->SchemaVersion().value(), kStoreSchemaVersion);
}

TEST_F(PostgresStoreTest, TheSweeperAndThePrunerRunOnOneConnectionAtATime) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Fixture f = Populate(*store);
  AddToken(*store, f.api_user.id, kNow - 10);
  AddToken(*store, f.api_user.id, kNow - 5);
  auto other = Open();
  ASSERT_NE(other, nullptr);
  // Another host's sweeper holds the lock: this one does nothing.
  ASSERT_OK(Raw(*other, "", "BEGIN; SELECT pg_advisory_xact_lock(" +
                                 std::to_string(internal::kPgSweeperLock) + ")"));
  ASSERT_OK_AND_ASSIGN(none, store->DeleteExpiredTokens(kNow));
  EXPECT_EQ(none, 0);
  ASSERT_OK(Raw(*other, "", "COMMIT"));
  ASSERT_OK_AND_ASSIGN(two, store->DeleteExpiredTokens(kNow));
  EXPECT_EQ(two, 2);

  ASSERT_OK(Raw(*other, "", "BEGIN; SELECT pg_advisory_xact_lock(" +
                                 std::to_string(internal::kPgPruneLock) + ")"));
  ASSERT_OK_AND_ASSIGN(kept, store->PruneChanges(0));
  EXPECT_EQ(kept, 0);
  ASSERT_OK(Raw(*other, "", "COMMIT"));
  ASSERT_OK_AND_ASSIGN(pruned, store->PruneChanges(0));
  EXPECT_GT(pruned, 0);
}

// A commit on another connection wakes a subscriber, also when the
// notification arrived while the subscriber ran another statement.
TEST_F(PostgresStoreTest, ACommitElsewhereWakesTheSubscriber) {
  auto writer = Create();
  ASSERT_NE(writer, nullptr);
  Fixture f = Populate(*writer);
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  ASSERT_OK(reader->Subscribe());
  ASSERT_OK_AND_ASSIGN(quiet, reader->WaitForChange(0));
  EXPECT_FALSE(quiet);

  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    AddToken(*writer, f.api_user.id, kNow + 60);
  });
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(woke, reader->WaitForChange(10000));
  const auto waited = std::chrono::steady_clock::now() - start;
  later.join();
  EXPECT_TRUE(woke);
  EXPECT_LT(waited, std::chrono::seconds(5));

  // Committed while the reader was busy with a query: counted at once.
  AddToken(*writer, f.api_user.id, kNow + 60);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_OK(reader->ListOrganizations().status());
  ASSERT_OK_AND_ASSIGN(buffered, reader->WaitForChange(0));
  EXPECT_TRUE(buffered);
  ASSERT_OK_AND_ASSIGN(drained, reader->WaitForChange(0));
  EXPECT_FALSE(drained);
  // A rolled-back write notifies nobody.
  (void)writer->Transaction([&] {
    (void)writer->CreateOrganization("Doomed");
    return Status::Internal("no");
  });
  ASSERT_OK_AND_ASSIGN(rolled_back, reader->WaitForChange(100));
  EXPECT_FALSE(rolled_back);
}

// A server that dies: the waiter gets IoError at once, not a hang, and so
// does every later call on that Store; a new Store works once the server is
// back.
TEST_F(PostgresStoreTest, ALostServerIsAnIoErrorNotAHang) {
  testing::PostgresServer* pg = testing::PostgresServer::Get();
  ASSERT_NE(pg, nullptr);
  auto writer = Create();
  ASSERT_NE(writer, nullptr);
  Populate(*writer);
  auto reader = Open(StoreOptions{.read_only = true});
  ASSERT_NE(reader, nullptr);
  ASSERT_OK(reader->Subscribe());
  Result<bool> woke = false;
  const auto start = std::chrono::steady_clock::now();
  std::thread waiter([&] { woke = reader->WaitForChange(30000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(pg->Crash());
  waiter.join();
  const auto waited = std::chrono::steady_clock::now() - start;
  const bool restarted = pg->Start();
  EXPECT_EQ(woke.status().code(), StatusCode::kIoError) << woke.status().ToString();
  EXPECT_LT(waited, std::chrono::seconds(10));
  EXPECT_EQ(writer->ListOrganizations().status().code(), StatusCode::kIoError);
  EXPECT_EQ(writer->CreateOrganization("x").status().code(), StatusCode::kIoError);
  EXPECT_EQ(reader->WaitForChange(0).status().code(), StatusCode::kIoError);
  ASSERT_TRUE(restarted);
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(again->TheOnlyOrganization().ok());
}

// 400 tokens for `api_user_id` in one statement: token i is tok_<i>, named
// n<i>, expiring at kNow - 200 + i (so 201..400 are active).
void InsertNumberedTokens(Store& store, int64_t api_user_id) {
  ASSERT_OK(internal::ExecPostgresForTesting(
      store, "INSERT INTO tokens(hash, public_id, api_user_id, name, created_at, expires_at, "
             "created_by) SELECT sha256(convert_to(i::text, 'UTF8')), 'tok_' || i, " +
                 std::to_string(api_user_id) + ", 'n' || i, " + std::to_string(kNow) + ", " +
                 std::to_string(kNow - 200) + " + i, 'maker' FROM generate_series(1, 400) i"));
}

// The token scan reads the table in page ranges, one COPY each, the last
// one open-ended. However the ranges fall (one page each, a few, more than
// the table), across holes left by deletions and rows moved by updates,
// every active token comes once with its own fields.
TEST_F(PostgresStoreTest, ScanActiveTokensOverPageRangesGivesEveryActiveTokenOnce) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Fixture f = Populate(*store);
  InsertNumberedTokens(*store, f.api_user.id);
  ASSERT_OK(internal::ExecPostgresForTesting(
      *store, "DELETE FROM tokens WHERE public_id IN "
              "(SELECT 'tok_' || i FROM generate_series(1, 400, 7) i)"));
  ASSERT_OK(internal::ExecPostgresForTesting(
      *store, "UPDATE tokens SET name = 'moved' WHERE public_id IN "
              "(SELECT 'tok_' || i FROM generate_series(3, 400, 5) i)"));
  ASSERT_OK_AND_ASSIGN(pages, internal::QueryPostgresIntForTesting(
                                  *store, "SELECT pg_relation_size('tokens') / 8192"));
  ASSERT_GE(pages, 4) << "the ranges must be more than one";
  std::map<std::string, std::string> expected;  // token id -> name
  for (int i = 201; i <= 400; ++i) {
    if (i % 7 == 1) continue;
    expected["tok_" + std::to_string(i)] = i % 5 == 3 ? "moved" : "n" + std::to_string(i);
  }
  for (int64_t range : {1, 2, 3, 1000}) {
    SCOPED_TRACE("pages per range: " + std::to_string(range));
    ASSERT_OK(internal::SetPostgresScanPagesForTesting(*store, range));
    ASSERT_OK_AND_ASSIGN(scanned, store->LoadActiveTokens(kNow));
    std::map<std::string, std::string> seen;
    for (const TokenRecord& t : scanned) {
      EXPECT_TRUE(seen.emplace(t.token_id, t.name).second) << t.token_id << " came twice";
      const int i = std::stoi(t.token_id.substr(4));
      EXPECT_EQ(t.expires_at, kNow - 200 + i);
      EXPECT_EQ(t.created_at, kNow);
      EXPECT_EQ(t.created_by, "maker");
      EXPECT_EQ(t.api_user_name, "ci-bot");
      ASSERT_OK_AND_ASSIGN(one, store->FindTokenById(t.token_id));
      EXPECT_EQ(t.hash, one.hash);
    }
    EXPECT_EQ(seen, expected);
  }
  // A callback's error in a later range: the rest is dropped, the store works on.
  ASSERT_OK(internal::SetPostgresScanPagesForTesting(*store, 1));
  size_t n = 0;
  Status s = store->ScanActiveTokens(kNow, [&](const TokenRecord&) -> Status {
    return ++n == expected.size() - 3 ? Status::Internal("enough") : Status::Ok();
  });
  EXPECT_EQ(s.message(), "enough");
  EXPECT_EQ(n, expected.size() - 3);
  ASSERT_OK_AND_ASSIGN(again, store->LoadActiveTokens(kNow));
  EXPECT_EQ(again.size(), expected.size());
}

// A scan whose connection is cut midway (the backend terminated between
// two ranges) fails as a lost connection, and the connection is given up.
TEST_F(PostgresStoreTest, AScanWhoseConnectionIsCutMidwayFails) {
  auto store = Create();
  ASSERT_NE(store, nullptr);
  Fixture f = Populate(*store);
  InsertNumberedTokens(*store, f.api_user.id);
  ASSERT_OK(internal::SetPostgresScanPagesForTesting(*store, 1));
  ASSERT_OK_AND_ASSIGN(backend, internal::QueryPostgresIntForTesting(*store, "SELECT pg_backend_pid()"));
  auto killer = Open();
  ASSERT_NE(killer, nullptr);
  int seen = 0;
  Status s = store->ScanActiveTokens(kNow, [&](const TokenRecord&) -> Status {
    if (++seen == 1) {
      // Waits (up to 5 s) until the backend is gone.
      auto killed = internal::QueryPostgresIntForTesting(
          *killer, "SELECT pg_terminate_backend(" + std::to_string(backend) + ", 5000)::int");
      EXPECT_TRUE(killed.ok() && *killed == 1) << killed.status().ToString();
    }
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  EXPECT_LT(seen, 200);
  EXPECT_EQ(store->ListOrganizations().status().code(), StatusCode::kIoError);
}

// A server that stops answering (its backend frozen: no error, no close)
// costs the statement deadline plus the client's slack, never a hang; the
// connection is given up.
TEST_F(PostgresStoreTest, AServerThatStopsAnsweringCostsTheDeadlineNotAHang) {
  {
    auto created = Create();
    ASSERT_NE(created, nullptr);
    Populate(*created);
  }
  auto store = Open(StoreOptions{});
  ASSERT_NE(store, nullptr);
  // The locator's own statement_timeout is kept (and sets the deadline).
  const std::string shortened = locator_ + "&options=-c%20statement_timeout%3D300";
  auto quick = OpenStore(shortened);
  ASSERT_OK(quick.status());
  ASSERT_OK_AND_ASSIGN(timeout, internal::QueryPostgresIntForTesting(
                                    **quick, "SELECT setting::bigint FROM pg_settings "
                                             "WHERE name = 'statement_timeout'"));
  EXPECT_EQ(timeout, 300);
  ASSERT_OK_AND_ASSIGN(backend, internal::QueryPostgresIntForTesting(**quick, "SELECT pg_backend_pid()"));
  ASSERT_EQ(::kill(static_cast<pid_t>(backend), SIGSTOP), 0);
  const auto start = std::chrono::steady_clock::now();
  auto listed = (*quick)->ListOrganizations();
  const auto waited = std::chrono::steady_clock::now() - start;
  ::kill(static_cast<pid_t>(backend), SIGCONT);
  EXPECT_EQ(listed.status().code(), StatusCode::kIoError) << listed.status().ToString();
  EXPECT_NE(listed.status().message().find("did not answer"), std::string::npos)
      << listed.status().ToString();
  EXPECT_LT(waited, std::chrono::seconds(10));
  EXPECT_EQ((*quick)->ListOrganizations().status().code(), StatusCode::kIoError);
  // Another connection never noticed.
  EXPECT_TRUE(store->TheOnlyOrganization().ok());
}

// A "server" that never answers: a Unix socket where PostgreSQL's would be,
// listening but never accepting. A connect is taken into its backlog, and
// nothing ever replies to the startup packet.
class SilentSocket {
 public:
  SilentSocket() {
    char tmpl[] = "/tmp/gh-silent-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string path = dir_ + "/.s.PGSQL.5432";
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 64) != 0) {
      ADD_FAILURE() << "cannot listen on " << path;
    }
  }
  ~SilentSocket() {
    if (fd_ >= 0) ::close(fd_);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string Locator(const std::string& extra = "") const {
    return "postgresql:///gatehouse?host=" + dir_ + "&user=gh" + extra;
  }

 private:
  std::string dir_;
  int fd_ = -1;
};

// The connect has one deadline (the locator's connect_timeout, default 5 s)
// and ends at once when the caller's cancel_fd becomes readable; a
// subscriber's wait for a change does too. Never a hang.
TEST_F(PostgresStoreTest, AConnectNobodyAnswersEndsAtItsDeadlineOrAtOnceWhenCancelled) {
  SilentSocket silent;
  auto timed_out = OpenStore(silent.Locator("&connect_timeout=2"));
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.status().code(), StatusCode::kIoError) << timed_out.status().ToString();
  EXPECT_NE(timed_out.status().message().find("no answer within 2 s"), std::string::npos)
      << timed_out.status().ToString();

  const int cancel = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(cancel, 0);
  StoreOptions options;
  options.cancel_fd = cancel;
  const auto start = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const uint64_t one = 1;
    EXPECT_EQ(::write(cancel, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  });
  auto cancelled = OpenStore(silent.Locator(), options);  // the default deadline: 5 s
  const auto waited = std::chrono::steady_clock::now() - start;
  stopper.join();
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.status().code(), StatusCode::kIoError) << cancelled.status().ToString();
  EXPECT_NE(cancelled.status().message().find("stopped while connecting"), std::string::npos)
      << cancelled.status().ToString();
  EXPECT_LT(waited, std::chrono::milliseconds(4000));
  // Already readable: a real server's connect ends before it starts.
  auto created = Create();
  ASSERT_NE(created, nullptr);
  options.read_only = true;
  auto refused = OpenStore(locator_, options);
  EXPECT_EQ(refused.status().code(), StatusCode::kIoError) << refused.status().ToString();
  // A subscriber's wait for a change ends when its cancel_fd becomes
  // readable (false: no change seen), not at its timeout.
  const int stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(stop, 0);
  options.cancel_fd = stop;
  auto reader = OpenStore(locator_, options);
  ASSERT_OK(reader.status());
  ASSERT_OK((*reader)->Subscribe());
  const auto wait_start = std::chrono::steady_clock::now();
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const uint64_t one = 1;
    EXPECT_EQ(::write(stop, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  });
  Result<bool> woke = (*reader)->WaitForChange(30'000);
  const auto wait_took = std::chrono::steady_clock::now() - wait_start;
  waker.join();
  ASSERT_OK(woke.status());
  EXPECT_FALSE(*woke);
  EXPECT_LT(wait_took, std::chrono::seconds(10));
  reader->reset();
  ::close(stop);
  ::close(cancel);
}

TEST_F(PostgresStoreTest, CopyFromSqliteKeepsIdsAndTheAuditLogAndRefusesANonEmptyTarget) {
  const std::string sqlite = dir_.File("source.db");
  MintedToken live, expired;
  {
    auto src = CreateStore(sqlite);
    ASSERT_OK(src.status());
    Store& s = **src;
    ASSERT_OK(s.CreateOrganization("Spare").status());
    Fixture f = Populate(s, "Acme");
    ASSERT_OK_AND_ASSIGN(alice, s.AddUser(f.org.id, "Alice@example.com", "admin"));
    ASSERT_OK_AND_ASSIGN(ws, s.CreateWorkspace(f.org.id, "alice", "personal", alice.id));
    ASSERT_OK(s.SetMembership(ws.id, alice.id, "admin"));
    ASSERT_OK(s.SetSetting(f.org.id, "workspace_admins_can_create_tokens", "true"));
    live = AddToken(s, f.api_user.id, kNow + 3600, "live");
    expired = AddToken(s, f.api_user.id, kNow - 1, "expired");
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(s.AppendAudit(AuditRecord{0, kNow + i, f.org.id, "owner@example.com", "token.create",
                                          "apiuser:ci-bot", AuditDecision::kAllow, "r", "m", "{}"})
                    .status());
    }
  }
  ASSERT_OK(CopyStore(sqlite, locator_));
  auto a = OpenStore(sqlite, StoreOptions{.read_only = true});
  auto b = OpenStore(locator_, StoreOptions{.read_only = true});
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  ASSERT_OK_AND_ASSIGN(orgs_a, (*a)->ListOrganizations());
  ASSERT_OK_AND_ASSIGN(orgs_b, (*b)->ListOrganizations());
  ASSERT_EQ(orgs_a.size(), orgs_b.size());
  for (size_t i = 0; i < orgs_a.size(); ++i) {
    EXPECT_EQ(orgs_a[i].id, orgs_b[i].id);
    EXPECT_EQ(orgs_a[i].name, orgs_b[i].name);
    const int64_t org = orgs_a[i].id;
    auto wa = (*a)->ListWorkspaces(org).value(), wb = (*b)->ListWorkspaces(org).value();
    ASSERT_EQ(wa.size(), wb.size());
    for (size_t k = 0; k < wa.size(); ++k) {
      EXPECT_EQ(wa[k].id, wb[k].id);
      EXPECT_EQ(wa[k].name, wb[k].name);
      EXPECT_EQ(wa[k].owner_user_id, wb[k].owner_user_id);
      EXPECT_EQ((*a)->ListMemberships(wa[k].id).value().size(),
                (*b)->ListMemberships(wb[k].id).value().size());
    }
    auto ua = (*a)->ListUsers(org).value(), ub = (*b)->ListUsers(org).value();
    ASSERT_EQ(ua.size(), ub.size());
    for (size_t k = 0; k < ua.size(); ++k) EXPECT_EQ(ua[k].email, ub[k].email);
    auto aa = (*a)->ListApiUsers(org, std::nullopt).value(), ab = (*b)->ListApiUsers(org, std::nullopt).value();
    ASSERT_EQ(aa.size(), ab.size());
    for (size_t k = 0; k < aa.size(); ++k) EXPECT_EQ(aa[k].id, ab[k].id);
    auto sa = (*a)->ListSettings(org).value(), sb = (*b)->ListSettings(org).value();
    ASSERT_EQ(sa.size(), sb.size());
  }
  ASSERT_OK_AND_ASSIGN(t, (*b)->FindTokenByHash(live.hash));
  EXPECT_EQ(t.token_id, live.id);
  ASSERT_OK((*b)->FindTokenById(expired.id).status());  // expired tokens are copied too
  auto audit_a = (*a)->ListAudit(std::nullopt, 100).value(), audit_b = (*b)->ListAudit(std::nullopt, 100).value();
  ASSERT_EQ(audit_a.size(), audit_b.size());
  for (size_t i = 0; i < audit_a.size(); ++i) {
    EXPECT_EQ(audit_a[i].id, audit_b[i].id);
    EXPECT_EQ(audit_a[i].time, audit_b[i].time);
    EXPECT_EQ(audit_a[i].detail, audit_b[i].detail);
  }
  // New rows continue after the copied ids.
  {
    auto w = OpenStore(locator_);
    ASSERT_OK(w.status());
    ASSERT_OK_AND_ASSIGN(next, (*w)->CreateOrganization("Next"));
    EXPECT_GT(next.id, orgs_a.back().id);
  }
  Status twice = CopyStore(sqlite, locator_);
  EXPECT_EQ(twice.code(), StatusCode::kFailedPrecondition) << twice.ToString();
  EXPECT_NE(twice.message().find("not empty"), std::string::npos);
  EXPECT_EQ(CopyStore(sqlite, dir_.File("other.db")).code(), StatusCode::kInvalidArgument);
}

// The copy sends rows in multi-row INSERTs of 1,000: every row arrives, on
// and across the batch boundaries (an organization with exactly one batch of
// tokens, one with one more than a batch, an audit log one past a batch), with
// every column intact.
TEST_F(PostgresStoreTest, CopyCarriesEveryRowAcrossItsBatches) {
  const std::string sqlite = dir_.File("source.db");
  std::vector<std::pair<MintedToken, int64_t>> tokens;  // and each one's expiry
  std::mt19937_64 rng(11);
  {
    auto src = CreateStore(sqlite);
    ASSERT_OK(src.status());
    Store& s = **src;
    ASSERT_OK(s.Transaction([&]() -> Status {
      for (const auto& [org, n] : {std::pair<const char*, int>{"Acme", 1000}, {"Beta", 1001}}) {
        Fixture f = Populate(s, org);
        for (int i = 0; i < n; ++i) {
          const int64_t expires = kNow - 100 + static_cast<int64_t>(rng() % 100000);
          tokens.emplace_back(AddToken(s, f.api_user.id, expires, "t-" + std::to_string(i)), expires);
        }
      }
      for (int i = 0; i < 1001; ++i) {
        GATEHOUSE_RETURN_IF_ERROR(
            s.AppendAudit(AuditRecord{0, kNow + i, std::nullopt, "owner@example.com", "token.create",
                                      "apiuser:ci-bot", i % 2 ? AuditDecision::kAllow : AuditDecision::kDeny,
                                      "r" + std::to_string(i), "m", "{\"i\":" + std::to_string(i) + "}"})
                .status());
      }
      return Status::Ok();
    }));
  }
  ASSERT_OK(CopyStore(sqlite, locator_));
  auto b = OpenStore(locator_, StoreOptions{.read_only = true});
  ASSERT_OK(b.status());
  ASSERT_OK_AND_ASSIGN(count, internal::QueryPostgresIntForTesting(**b, "SELECT count(*) FROM tokens"));
  EXPECT_EQ(count, static_cast<int64_t>(tokens.size()));
  std::map<std::string, TokenRecord> copied;  // by id, from one query per organization
  ASSERT_OK_AND_ASSIGN(orgs, (*b)->ListOrganizations());
  for (const Organization& o : orgs) {
    ASSERT_OK_AND_ASSIGN(list, (*b)->ListTokens(o.id, std::nullopt, INT64_MIN));
    for (TokenRecord& t : list) copied[t.token_id] = std::move(t);
  }
  ASSERT_EQ(copied.size(), tokens.size());
  for (const auto& [m, expires] : tokens) {
    auto it = copied.find(m.id);
    ASSERT_NE(it, copied.end()) << m.id;
    EXPECT_EQ(it->second.hash, m.hash);
    EXPECT_EQ(it->second.expires_at, expires);
    EXPECT_EQ(it->second.created_at, kNow);
    EXPECT_EQ(it->second.created_by, "owner@example.com");
  }
  auto a = OpenStore(sqlite, StoreOptions{.read_only = true});
  ASSERT_OK(a.status());
  auto audit_a = (*a)->ListAudit(std::nullopt, 5000).value(), audit_b = (*b)->ListAudit(std::nullopt, 5000).value();
  ASSERT_EQ(audit_a.size(), 1001u);
  ASSERT_EQ(audit_a.size(), audit_b.size());
  for (size_t i = 0; i < audit_a.size(); ++i) {
    EXPECT_EQ(audit_a[i].id, audit_b[i].id);
    EXPECT_EQ(audit_a[i].time, audit_b[i].time);
    EXPECT_EQ(audit_a[i].decision, audit_b[i].decision);
    EXPECT_EQ(audit_a[i].rule, audit_b[i].rule);
    EXPECT_EQ(audit_a[i].detail, audit_b[i].detail);
  }
}

// All or nothing: a source row PostgreSQL cannot hold (not UTF-8) fails the
// copy and leaves the target empty.
TEST_F(PostgresStoreTest, AFailedCopyLeavesTheTargetEmpty) {
  const std::string sqlite = dir_.File("source.db");
  {
    auto src = CreateStore(sqlite);
    ASSERT_OK(src.status());
    Populate(**src, "Acme");
    ASSERT_OK(internal::ExecSqliteForTesting(**src, "INSERT INTO organizations(name) VALUES (CAST(X'FF41' AS TEXT))"));
  }
  Status s = CopyStore(sqlite, locator_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  auto target = OpenStore(locator_);
  ASSERT_OK(target.status());
  EXPECT_TRUE((*target)->ListOrganizations().value().empty());
  EXPECT_EQ((*target)->ChangeHead().value(), 0);
}

}  // namespace
}  // namespace gatehouse
