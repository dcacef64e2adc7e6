// OpenStore / CreateStore: the one place that maps a locator to a backend,
// and the locator rules shared by both programs (gatehouse/store.h).
#include <string>
#include <string_view>

#include "gatehouse/store.h"
#include "gatehouse/store_admin.h"
#include "store/pg_store.h"
#include "store/sqlite_store.h"

namespace gatehouse {
namespace {

constexpr std::string_view kSchemes[] = {"postgresql://", "postgres://"};

// The locator's parts that may hold a password: the URI's user-info
// ("user:password@") and a "password=" query parameter.
struct PasswordSpans {
  size_t userinfo_colon = std::string_view::npos;  // ':' inside user-info
  size_t userinfo_end = std::string_view::npos;    // the '@'
  size_t query_value = std::string_view::npos;     // after "password="
  size_t query_value_end = std::string_view::npos;
};

PasswordSpans FindPasswords(std::string_view locator) {
  PasswordSpans spans;
  const size_t start = locator.find("://");
  if (start == std::string_view::npos) return spans;
  const size_t authority = start + 3;
  size_t end = locator.find_first_of("/?", authority);
  if (end == std::string_view::npos) end = locator.size();
  const size_t at = locator.rfind('@', end - 1);
  if (at != std::string_view::npos && at >= authority) {
    const size_t colon = locator.find(':', authority);
    if (colon < at) {
      spans.userinfo_colon = colon;
      spans.userinfo_end = at;
    }
  }
  const size_t query = locator.find('?', authority);
  if (query != std::string_view::npos) {
    size_t pos = query + 1;
    while (pos < locator.size()) {
      size_t amp = locator.find('&', pos);
      if (amp == std::string_view::npos) amp = locator.size();
      const std::string_view param = locator.substr(pos, amp - pos);
      if (param.substr(0, 9) == "password=") {
        spans.query_value = pos + 9;
        spans.query_value_end = amp;
      }
      pos = amp + 1;
    }
  }
  return spans;
}

}  // namespace

bool IsPostgresLocator(std::string_view locator) {
  for (std::string_view scheme : kSchemes) {
    if (locator.substr(0, scheme.size()) == scheme) return true;
  }
  return false;
}

std::string RedactLocator(std::string_view locator) {
  if (!IsPostgresLocator(locator)) return std::string(locator);
  const PasswordSpans spans = FindPasswords(locator);
  std::string out(locator);
  // The query comes after the user-info: replace it first, offsets stay valid.
  if (spans.query_value != std::string_view::npos) {
    out.replace(spans.query_value, spans.query_value_end - spans.query_value, "***");
  }
  if (spans.userinfo_colon != std::string_view::npos) {
    out.replace(spans.userinfo_colon + 1, spans.userinfo_end - spans.userinfo_colon - 1, "***");
  }
  return out;
}

Status CheckCommandLineLocator(std::string_view locator) {
  if (!IsPostgresLocator(locator)) return Status::Ok();
  const PasswordSpans spans = FindPasswords(locator);
  if (spans.userinfo_colon == std::string_view::npos && spans.query_value == std::string_view::npos) {
    return Status::Ok();
  }
  return Status::InvalidArgument(
      "a password inside --store would show in `ps`; put it in a password file (PGPASSFILE) or "
      "PGPASSWORD, or pass the locator in GATEHOUSE_STORE");
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& locator, const StoreOptions& options) {
  if (IsPostgresLocator(locator)) return OpenPostgresStore(locator, options);
  return OpenSqliteStore(locator, options);
}

Result<std::unique_ptr<Store>> CreateStore(const std::string& locator, const StoreOptions& options,
                                           const StoreInit& init) {
  if (!IsPostgresLocator(locator)) return CreateSqliteStore(locator, options, init);
  auto created = CreatePostgresStore(locator, options);
  if (!created.ok() || !init) return created;
  Store& store = **created;
  // The database is not ours to drop: a failed init leaves its empty schema.
  GATEHOUSE_RETURN_IF_ERROR(store.Transaction([&] { return init(store); }));
  return created;
}

Result<int> MigrateStore(const std::string& locator, const StoreOptions& options) {
  if (IsPostgresLocator(locator)) return MigratePostgresStore(locator, options);
  // SQLite: a read-only look at the version, then opening for writing
  // migrates (in one transaction, under SQLite's write lock).
  int from = 0;
  {
    StoreOptions look = options;
    look.read_only = true;
    auto old = OpenSqliteStore(locator, look);
    if (old.ok()) {
      auto v = (*old)->SchemaVersion();
      if (!v.ok()) return v.status();
      from = *v;
    } else if (old.status().code() != StatusCode::kFailedPrecondition ||
               old.status().message().find("needs a migration") == std::string::npos) {
      return old.status();
    }
  }
  StoreOptions write = options;
  write.read_only = false;
  auto store = OpenSqliteStore(locator, write);
  if (!store.ok()) return store.status();
  if (from == 0) {
    // The read-only open refused an old schema; the writable open migrated it.
    from = kStoreSchemaVersion - 1;
  }
  return from;
}

Status CopyStore(const std::string& from, const std::string& to, const StoreOptions& options) {
  if (!IsPostgresLocator(to)) {
    return Status::InvalidArgument("the target of a copy must be a PostgreSQL store "
                                   "(postgresql://...), not " + RedactLocator(to));
  }
  StoreOptions read = options;
  read.read_only = true;
  auto source = OpenStore(from, read);
  if (!source.ok()) return source.status();
  StoreOptions write = options;
  write.read_only = false;
  auto target = CreateStore(to, write);
  if (!target.ok() && target.status().code() == StatusCode::kAlreadyExists) {
    target = OpenStore(to, write);
  }
  if (!target.ok()) return target.status();
  return CopyIntoPostgresStore(**source, **target);
}

}  // namespace gatehouse
