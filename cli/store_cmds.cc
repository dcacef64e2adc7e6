// gatehouse store backup|restore: thin handlers over gatehouse/store_backup.h.
#include "cli.h"
#include "gatehouse/clock.h"
#include "gatehouse/store_backup.h"
#include "gatehouse/text.h"

namespace gatehouse::cli {
namespace {

int StoreBackup(Invocation& inv) {
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
}

}  // namespace gatehouse::cli
