// The directory on a SQLite store of --orgs organizations (default 1,000) of
// --users users each (default 50), 5 workspaces per organization, every user
// a member of two of them, two settings per organization:
//   BM_FindUser, BM_FindWorkspace, BM_SettingsMask: the request path's lookups
//   BM_CatchUp_WholeLoad: a catch-up after one user's workspace role changed,
//     reading the feed batch and the whole directory (Directory::Load)
//   BM_CatchUp_Reload: the same catch-up reloading only the organizations the
//     batch names (Directory::Reload), every other one shared
// Not a test: it prints figures.
//
//   build-release/bench/directory_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gatehouse/authorizer.h"
#include "gatehouse/policy.h"
#include "gatehouse/store.h"

namespace {

using namespace gatehouse;

int g_orgs = 1000;
int g_users = 50;
constexpr int kWorkspaces = 5;

void Die(const Status& s, const char* what) {
  std::fprintf(stderr, "directory_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

struct World {
  std::string dir;
  std::unique_ptr<Store> store;
  std::shared_ptr<const Directory> directory;
  PolicyPtr policy;
  std::vector<int64_t> org_ids;
  std::vector<int64_t> workspace_ids;  // kWorkspaces per organization, in order
  std::vector<int64_t> user_ids;       // g_users per organization, in order
  std::vector<std::string> emails;
};

std::string Email(int org, int user) {
  return "someone.with.a.long.name." + std::to_string(user) + "@org-" + std::to_string(org) + ".example.com";
}

World& TheWorld() {
  static World* w = [] {
    auto* w = new World;
    w->dir = (std::filesystem::temp_directory_path() /
              ("gatehouse-directory-bench-" + std::to_string(::getpid())))
                 .string();
    std::filesystem::create_directories(w->dir);
    auto created = CreateStore(w->dir + "/gatehouse.db", StoreOptions{.durable_commits = false});
    if (!created.ok()) Die(created.status(), "creating the store");
    w->store = std::move(created).value();
    Store& store = *w->store;
    Status seeded = store.Transaction([&]() -> Status {
      for (int o = 0; o < g_orgs; ++o) {
        auto org = store.CreateOrganization("org-" + std::to_string(o));
        if (!org.ok()) return org.status();
        w->org_ids.push_back(org->id);
        for (int k = 0; k < kWorkspaces; ++k) {
          auto ws = store.CreateWorkspace(org->id, "Workspace-" + std::to_string(k), "shared", std::nullopt);
          if (!ws.ok()) return ws.status();
          w->workspace_ids.push_back(ws->id);
        }
        for (int u = 0; u < g_users; ++u) {
          auto user = store.AddUser(org->id, Email(o, u), u == 0 ? "admin" : "member");
          if (!user.ok()) return user.status();
          w->user_ids.push_back(user->id);
          w->emails.push_back(Email(o, u));
          for (int k : {u % kWorkspaces, (u + 1) % kWorkspaces}) {
            GATEHOUSE_RETURN_IF_ERROR(store.SetMembership(
                w->workspace_ids[static_cast<size_t>(o * kWorkspaces + k)], user->id, "contributor"));
          }
        }
        GATEHOUSE_RETURN_IF_ERROR(store.SetSetting(org->id, "workspace_admins_can_create_tokens", "true"));
        GATEHOUSE_RETURN_IF_ERROR(store.SetSetting(org->id, "an_undeclared_setting", "true"));
      }
      return Status::Ok();
    });
    if (!seeded.ok()) Die(seeded, "seeding the store");
    auto dir = Directory::Load(store);
    if (!dir.ok()) Die(dir.status(), "loading the directory");
    w->directory = std::move(dir).value();
    PolicyLoad policy = LoadPolicy(std::string(GATEHOUSE_SOURCE_DIR) + "/policies/api-tokens.yaml");
    if (!policy.policy) {
      std::fprintf(stderr, "directory_bench: the policy does not load\n");
      std::exit(1);
    }
    w->policy = policy.policy;
    std::fprintf(stderr, "directory: %zu users, %zu workspaces\n", w->directory->user_count(),
                 w->directory->workspace_count());
    return w;
  }();
  return *w;
}

void BM_FindUser(benchmark::State& state) {
  World& w = TheWorld();
  size_t i = 0;
  for (auto _ : state) {
    const Directory::UserEntry* u = w.directory->FindUser(w.emails[i]);
    benchmark::DoNotOptimize(u);
    i = (i + 7919) % w.emails.size();
  }
}
BENCHMARK(BM_FindUser);

void BM_FindWorkspace(benchmark::State& state) {
  World& w = TheWorld();
  size_t i = 0;
  for (auto _ : state) {
    const Directory::WorkspaceEntry* ws = w.directory->FindWorkspace(w.org_ids[i], "workspace-3");
    benchmark::DoNotOptimize(ws);
    i = (i + 7) % w.org_ids.size();
  }
}
BENCHMARK(BM_FindWorkspace);

void BM_SettingsMask(benchmark::State& state) {
  World& w = TheWorld();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(w.directory->SettingsMask(*w.policy, w.org_ids[i]));
    i = (i + 7) % w.org_ids.size();
  }
}
BENCHMARK(BM_SettingsMask);

// One user's role in one workspace changes; the catch-up reads the feed batch
// and then the directory, `reload` choosing how.
void CatchUp(benchmark::State& state, bool reload) {
  World& w = TheWorld();
  Store& store = *w.store;
  std::shared_ptr<const Directory> current = w.directory;
  int64_t head = store.ChangeHead().value();
  size_t i = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const size_t org = (i * 7) % w.org_ids.size();
    const int64_t user = w.user_ids[org * static_cast<size_t>(g_users)];
    const int64_t ws = w.workspace_ids[org * kWorkspaces];
    Status changed = store.SetMembership(ws, user, (i % 2) == 0 ? "viewer" : "contributor");
    if (!changed.ok()) Die(changed, "changing a role");
    ++i;
    state.ResumeTiming();
    Status read = store.ReadSnapshot([&]() -> Status {
      auto batch = store.ReadChangesSince(head, 1000);
      if (!batch.ok()) return batch.status();
      head = batch->head;
      auto next = reload ? Directory::Reload(store, *current, current->OrgsChangedBy(*batch))
                         : Directory::Load(store);
      if (!next.ok()) return next.status();
      current = std::move(next).value();
      return Status::Ok();
    });
    if (!read.ok()) Die(read, "catching up");
  }
}
void BM_CatchUp_WholeLoad(benchmark::State& state) { CatchUp(state, false); }
BENCHMARK(BM_CatchUp_WholeLoad)->Unit(benchmark::kMicrosecond);
void BM_CatchUp_Reload(benchmark::State& state) { CatchUp(state, true); }
BENCHMARK(BM_CatchUp_Reload)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--orgs=", 7) == 0) g_orgs = std::atoi(argv[i] + 7);
    if (std::strncmp(argv[i], "--users=", 8) == 0) g_users = std::atoi(argv[i] + 8);
  }
  if (g_orgs <= 0 || g_users <= 0) {
    std::fprintf(stderr, "directory_bench: --orgs and --users must be positive\n");
    return 2;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(TheWorld().dir);
  return 0;
}
