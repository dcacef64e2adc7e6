// gatehouse store backup|restore|migrate|copy|renew-feed: thin handlers over
// gatehouse/store_backup.h and gatehouse/store_admin.h.
#include "cli.h"
#include "gatehouse/clock.h"
#include "gatehouse/store.h"
#include "gatehouse/store_admin.h"
#include "gatehouse/store_backup.h"
#include "gatehouse/text.h"

namespace gatehouse::cli {
namespace {

// Backup and restore copy SQLite's pages; a PostgreSQL database has its own
// tools.
int RefusePostgres(Invocation& inv, const char* what) {
  if (!IsPostgresLocator(inv.store)) return kOk;
  return Fail(inv, kUsage,
              std::string("store ") + what + " works on SQLite stores; back up a PostgreSQL store with "
              "pg_dump and restore it with pg_restore");
}

int StoreMigrate(Invocation& inv) {
  auto from = MigrateStore(inv.store);
  if (!from.ok()) return Fail(inv, from.status());
  const std::string shown = RedactLocator(inv.store);
  if (inv.json) {
    PrintJson(inv, {{"store", shown}, {"from_version", *from}, {"schema_version", kStoreSchemaVersion}});
  } else if (*from == kStoreSchemaVersion) {
    *inv.out << "store " << EscapeText(shown) << " is at schema version " << kStoreSchemaVersion
             << " already\n";
  } else {
    *inv.out << "migrated store " << EscapeText(shown) << " from schema version " << *from << " to "
             << kStoreSchemaVersion << "\n";
  }
  return kOk;
}

// Copies a store (normally SQLite) into a new PostgreSQL store, ids and
// audit log kept, in one transaction. Not a policy decision, like init: it
// needs write access to the target database.
int StoreCopy(Invocation& inv) {
  const std::optional<std::string> to = inv.opt("to");
  if (!to || to->empty()) return Fail(inv, kUsage, "store copy needs --to, the PostgreSQL store to copy into");
  const std::string from = inv.opt("from").value_or(inv.store);
  if (from.empty()) return Fail(inv, kUsage, "--from must not be empty");
  Status st = CopyStore(from, *to);
  if (!st.ok()) return Fail(inv, st);
  if (inv.json) {
    PrintJson(inv, {{"from", RedactLocator(from)}, {"to", RedactLocator(*to)}});
  } else {
    *inv.out << "copied store " << EscapeText(RedactLocator(from)) << " to "
             << EscapeText(RedactLocator(*to)) << "\n";
  }
  return kOk;
}

// Gives the change feed a new epoch: every sidecar loads everything on its
// next catch-up (after a failover the store cannot see, a pg_restore, rows
// changed by hand). Not a policy decision, like migrate: it needs write
// access to the store; recorded in the audit log with the change.
int StoreRenewFeed(Invocation& inv) {
  StoreOptions so;
  auto store = OpenStore(inv.store, so);
  if (!store.ok()) return Fail(inv, store.status());
  Store& s = **store;
  int64_t epoch = 0;
  Status st = s.Transaction([&]() -> Status {
    auto renewed = s.RenewFeedEpoch();
    if (!renewed.ok()) return renewed.status();
    epoch = *renewed;
    AuditRecord a;
    a.time = RealClock::Instance().NowSeconds();
    // In the organization's log when the store holds one (as `token gc`).
    auto org = s.TheOnlyOrganization();
    if (org.ok()) a.org_id = org->id;
    a.actor = inv.as.empty() ? "renew-feed" : inv.as;
    a.action = "store.renew-feed";
    a.target = "change-feed";
    a.decision = AuditDecision::kAllow;
    a.message = "gave the change feed a new epoch (not policy-checked: needs write access to the store)";
    return s.AppendAudit(a).status();
  });
  if (!st.ok()) return Fail(inv, st);
  const std::string shown = RedactLocator(inv.store);
  if (inv.json) {
    PrintJson(inv, {{"store", shown}, {"feed_epoch", epoch}});
  } else {
    *inv.out << "renewed the change feed of store " << EscapeText(shown)
             << "; every sidecar loads everything on its next catch-up\n";
  }
  return kOk;
}

int StoreBackup(Invocation& inv) {
  if (int refused = RefusePostgres(inv, "backup")) return refused;
  BackupOptions o;
  o.overwrite = inv.opt("force").has_value();
  Status st = BackupSqliteStore(inv.store, inv.args[0], o);
  if (!st.ok()) return Fail(inv, st);
  if (inv.json) PrintJson(inv, {{"store", inv.store}, {"backup", inv.args[0]}});
  else *inv.out << "backed up store " << EscapeText(inv.store) << " to " << EscapeText(inv.args[0]) << "\n";
  return kOk;
}

// A restore replaces everything, users and policy-visible data alike, so it
// is not a policy decision: whoever may write the store's file may restore it
// (as with init). It is recorded in the restored audit log.
int StoreRestore(Invocation& inv) {
  if (int refused = RefusePostgres(inv, "restore")) return refused;
  RestoreOptions o;
  AuditRecord a;
  a.time = RealClock::Instance().NowSeconds();
  a.actor = inv.as.empty() ? "restore" : inv.as;
  a.action = "store.restore";
  a.target = "backup:" + inv.args[0];
  a.decision = AuditDecision::kAllow;
  a.message = "restored from a backup (not policy-checked: needs write access to the store's file)";
  o.audit = a;
  Status st = RestoreSqliteStore(inv.store, inv.args[0], o);
  if (!st.ok()) return Fail(inv, st);
  if (inv.json) PrintJson(inv, {{"store", inv.store}, {"restored_from", inv.args[0]}});
  else *inv.out << "restored store " << EscapeText(inv.store) << " from " << EscapeText(inv.args[0]) << "\n";
  return kOk;
}

}  // namespace

void RegisterStoreCommands(std::vector<Command>* c) {
  c->push_back({{"store", "backup"}, "PATH",
                "Write an online, consistent copy of the SQLite store to PATH (mode 0600); refuses an existing PATH unless --force.",
                {"force"}, 1, 1, StoreBackup});
  c->push_back({{"store", "restore"}, "PATH",
                "Replace the store's content with the backup at PATH, in one transaction under the store's lock (running sidecars follow); refused while a writer holds it.",
                {}, 1, 1, StoreRestore});
  c->push_back({{"store", "migrate"}, "",
                "Bring the store's schema to this version's (PostgreSQL: under an advisory lock; SQLite: what any write does). Sidecars never migrate.",
                {}, 0, 0, StoreMigrate});
  c->push_back({{"store", "copy"}, "",
                "Copy the store at --from (default: the store) into the PostgreSQL store at --to, ids and audit log kept, all or nothing; refuses a target that holds data.",
                {"from", "to"}, 0, 0, StoreCopy});
  c->push_back({{"store", "renew-feed"}, "",
                "Give the change feed a new epoch, so every sidecar loads everything on its next catch-up: after a failover PostgreSQL's timeline does not show (e.g. a logical replica), a pg_restore, or rows changed by hand.",
                {}, 0, 0, StoreRenewFeed});
}

}  // namespace gatehouse::cli
