// The cost of shadow evaluation (sidecar/shadow.h) per decision, in process:
// gatehouse::Authorize on the live policy (what every /v1/authorize does once
// its token is verified) against the same plus Shadow::Decide on a candidate
// one cell apart (the fast path: the live Request decided on the candidate),
// and plus the slow path (a candidate that declares one more role).
// Not a test: it prints figures.
//
//   build-release/bench/shadow_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "gatehouse/authorizer.h"
#include "gatehouse/policy.h"
#include "gatehouse/store.h"
#include "sidecar/shadow.h"

namespace {

using namespace gatehouse;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct World {
  std::string dir;
  PolicyPtr live;
  std::shared_ptr<const Directory> dir_snapshot;
  Subject subject;
  std::unique_ptr<sidecar::Shadow> quiet, slow;
  Question question;  // project.import in Marketing-Production, resolved once as the handler does
};

World& TheWorld() {
  static World* w = [] {
    auto* w = new World;
    w->dir = (std::filesystem::temp_directory_path() / ("gatehouse-shadow-bench-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(w->dir);
    const std::string text = Read(std::string(GATEHOUSE_SOURCE_DIR) + "/policies/api-tokens.yaml");
    w->live = LoadPolicyFromString(text, "live.yaml").policy;
    // One cell apart: viewers may import (the benchmark's contributor is allowed either way).
    std::string quiet = text;
    const std::string at = "  project.import:\n    description: Import a project into a workspace (environment promotion).\n    permit:\n";
    quiet.insert(quiet.find(at) + at.size(), "      - rule: shadow-viewers\n        when: principal.workspace_role == viewer\n");
    std::string slow = quiet;
    const std::string roles = "organization: [viewer, contributor, admin, owner]";
    slow.replace(slow.find(roles), roles.size(), "organization: [viewer, auditor, contributor, admin, owner]");
    std::ofstream(w->dir + "/quiet.yaml") << quiet;
    std::ofstream(w->dir + "/slow.yaml") << slow;
    for (auto [name, out] : {std::pair{"quiet", &w->quiet}, std::pair{"slow", &w->slow}}) {
      sidecar::ShadowOptions o;
      o.policy_path = w->dir + "/" + name + ".yaml";
      o.policy_poll_ms = 0;
      auto s = sidecar::Shadow::Open(o, [](sidecar::LogLevel, std::string_view) {});
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
        std::exit(1);
      }
      *out = std::move(s).value();
    }
    auto store = CreateStore(w->dir + "/g.db");
    auto org = (*store)->CreateOrganization("Demo");
    auto ws = (*store)->CreateWorkspace(org->id, "Marketing-Production", "shared", std::nullopt);
    w->dir_snapshot = *Directory::Load(**store);
    w->subject.kind = PrincipalKind::kApiUser;
    w->subject.id = 1;
    w->subject.name = "prod-importer";
    w->subject.org_id = org->id;
    w->subject.org_role = "viewer";
    w->subject.workspace_id = ws->id;
    w->subject.workspace_name = "Marketing-Production";
    w->subject.workspace_role = "contributor";
    w->question = *ParseQuestion(*w->live, "project.import", "Marketing-Production", std::nullopt, {});
    std::filesystem::remove_all(w->dir);
    return w;
  }();
  return *w;
}

void BM_AuthorizeLive(benchmark::State& state) {
  World& w = TheWorld();
  for (auto _ : state) {
    AuthzOutcome o = Authorize(*w.live, *w.dir_snapshot, w.subject, w.question);
    benchmark::DoNotOptimize(o.allow);
  }
}
BENCHMARK(BM_AuthorizeLive)->ThreadRange(1, 2);

void ShadowRun(benchmark::State& state, sidecar::Shadow& shadow) {
  World& w = TheWorld();
  for (auto _ : state) {
    AuthzOutcome o = Authorize(*w.live, *w.dir_snapshot, w.subject, w.question);
    sidecar::ShadowVerdict v;
    shadow.Decide(w.live, o.decided, o.request, o.allow, *w.dir_snapshot, w.subject, "project.import",
                  "Marketing-Production", {}, &v);
    benchmark::DoNotOptimize(v.allow);
  }
}

void BM_AuthorizeLiveAndShadow(benchmark::State& state) { ShadowRun(state, *TheWorld().quiet); }
BENCHMARK(BM_AuthorizeLiveAndShadow)->ThreadRange(1, 2);

void BM_AuthorizeLiveAndShadowSlowPath(benchmark::State& state) { ShadowRun(state, *TheWorld().slow); }
BENCHMARK(BM_AuthorizeLiveAndShadowSlowPath);

}  // namespace

BENCHMARK_MAIN();
