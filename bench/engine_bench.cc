// Policy engine micro-benchmarks: deciding (from resolved ids and from names),
// compiling the default policy (from its folder and from memory), compiling a
// generated large policy (500 actions x 20 rules, 16 settings; see
// large_policy.h) with its table size and peak RSS, and deciding on it.
//
// Run (medians):
//   engine_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Peak memory of the large policy, measured in a fresh process:
//   engine_bench --peak_memory
//
// Targets (issue 2): decide from ids <= 10 ns, from names <= 100 ns, default
// policy compile <= 5 ms, large policy compile <= 1 s and <= 64 MiB. Figures,
// not tests: nothing here fails on a wall-clock number.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gatehouse/decision.h"
#include "gatehouse/policy.h"
#include "large_policy.h"

namespace gatehouse::bench {
namespace {

const std::string kPolicyDir = GATEHOUSE_SOURCE_DIR "/policies";
const std::string kPolicyFile = kPolicyDir + "/api-tokens.yaml";

// ---------------------------------------------------------------------------
// Process memory, from /proc/self/status (kB values).

int64_t StatusKb(std::string_view field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size(), field) == 0 && line.size() > field.size() &&
        line[field.size()] == ':')
      return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}
double PeakRssMiB() { return static_cast<double>(StatusKb("VmHWM")) / 1024.0; }
double RssMiB() { return static_cast<double>(StatusKb("VmRSS")) / 1024.0; }

// Resets VmHWM to the current RSS (Linux >= 4.0), so a later VmHWM is the peak
// of what follows. Returns false where that is not allowed; VmHWM is then the
// peak of the whole process so far.
bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

double HeapInUseMiB() { return static_cast<double>(mallinfo2().uordblks) / (1024.0 * 1024.0); }

// ---------------------------------------------------------------------------
// The default policy and a realistic mix of requests against it.

const PolicyPtr& DefaultPolicy() {
  static const PolicyPtr policy = [] {
    PolicyLoad load = LoadPolicy(kPolicyDir);
    if (!load.ok()) {
      for (const PolicyError& e : load.errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
    }
    return load.policy;
  }();
  return policy;
}

// One request as it arrives at the edge: names, plus the already-typed rest.
struct RequestSpec {
  std::string action;
  PrincipalKind kind;
  std::string org_role;
  std::string workspace_role;
  std::string workspace_type;
  bool toggle;  // settings.workspace_admins_can_create_tokens
  // Parameter name -> a role name, or an integer or duration ("30d").
  std::vector<std::pair<std::string, std::string>> params;
};

// One request per action of the default policy, across roles, kinds, workspace
// types and the toggle, allowed and denied (by a forbid and by no permit).
const std::vector<RequestSpec>& DefaultMix() {
  // One request per line, read as a table.
  // clang-format off
  static const std::vector<RequestSpec> mix = {
      {"workspace.create",      PrincipalKind::kUser,    "owner",       "none",        "organization", false, {}},
      {"user.add",              PrincipalKind::kUser,    "admin",       "none",        "organization", false, {{"org_role", "owner"}}},
      {"settings.update",       PrincipalKind::kUser,    "contributor", "viewer",      "shared",       false, {}},
      {"audit.read",            PrincipalKind::kUser,    "admin",       "none",        "personal",     false, {}},
      {"member.add",            PrincipalKind::kUser,    "viewer",      "admin",       "shared",       false, {{"workspace_role", "viewer"}}},
      {"api_user.create",       PrincipalKind::kUser,    "viewer",      "admin",       "shared",       true,  {{"workspace_role", "contributor"}, {"org_role", "viewer"}}},
      {"api_user.promote",      PrincipalKind::kUser,    "contributor", "admin",       "shared",       false, {{"workspace_role", "admin"}}},
      {"api_user.set_org_role", PrincipalKind::kUser,    "owner",       "none",        "organization", false, {{"org_role", "admin"}}},
      {"api_user.delete",       PrincipalKind::kUser,    "admin",       "admin",       "shared",       false, {}},
      {"api_user.list",         PrincipalKind::kApiUser, "viewer",      "admin",       "shared",       false, {}},
      {"token.list",            PrincipalKind::kUser,    "contributor", "contributor", "shared",       false, {}},
      {"token.create",          PrincipalKind::kUser,    "viewer",      "admin",       "shared",       false, {{"lifetime_seconds", "30d"}}},
      {"token.revoke",          PrincipalKind::kUser,    "admin",       "none",        "personal",     false, {}},
      {"token.use",             PrincipalKind::kApiUser, "admin",       "none",        "shared",       false, {}},
      {"project.export",        PrincipalKind::kUser,    "contributor", "none",        "organization", false, {}},
      {"project.import",        PrincipalKind::kApiUser, "viewer",      "viewer",      "shared",       false, {}},
  };
  // clang-format on
  return mix;
}

// Resolves a spec against the policy; false (and `error`) when a name is unknown.
bool Resolve(const CompiledPolicy& p, const RequestSpec& s, Request* r, std::string* error) {
  auto action = p.FindAction(s.action);
  auto org = p.FindOrgRole(s.org_role);
  auto ws = p.FindWorkspaceRole(s.workspace_role);
  auto type = p.FindWorkspaceType(s.workspace_type);
  auto toggle = p.FindSetting("workspace_admins_can_create_tokens");
  if (!action || !org || !ws || !type || !toggle) {
    *error = "unknown name in the request for " + s.action;
    return false;
  }
  *r = Request{};
  r->action = *action;
  r->kind = s.kind;
  r->org_role = *org;
  r->workspace_role = *ws;
  r->workspace_type = *type;
  r->settings = p.default_settings();
  if (s.toggle) r->settings |= uint64_t{1} << *toggle;
  for (const auto& [name, value] : s.params) {
    auto slot = p.FindParam(*action, name);
    if (!slot) {
      *error = "unknown parameter " + name + " of " + s.action;
      return false;
    }
    std::optional<int64_t> v;
    switch (p.action(*action)->params[*slot].type) {
      case ValueType::kOrgRole:
        v = p.FindOrgRole(value);
        break;
      case ValueType::kWorkspaceRole:
        v = p.FindWorkspaceRole(value);
        break;
      case ValueType::kBool:
        v = value == "true" ? 1 : 0;
        break;
      default:
        v = ParseDuration(value);
        break;
    }
    if (!v) {
      *error = "bad value " + value + " for " + name + " of " + s.action;
      return false;
    }
    r->params[*slot] = *v;
  }
  return true;
}

// The whole mix resolved to ids; false (and `error`) when a name is unknown.
bool ResolvedMix(const CompiledPolicy& p, std::vector<Request>* out, std::string* error) {
  out->clear();
  for (const RequestSpec& s : DefaultMix()) {
    Request r;
    if (!Resolve(p, s, &r, error)) return false;
    out->push_back(r);
  }
  return true;
}

void ReportMix(benchmark::State& state, const CompiledPolicy& p, const std::vector<Request>& reqs) {
  int allowed = 0, forbidden = 0;
  for (const Request& r : reqs) {
    Decision d = p.Decide(r);
    allowed += d.allowed();
    forbidden += d.cause == Cause::kForbidden;
  }
  state.counters["allowed"] = allowed;
  state.counters["forbidden"] = forbidden;
  state.counters["no_permit"] = static_cast<double>(reqs.size()) - allowed - forbidden;
}

// ---------------------------------------------------------------------------
// 1. Deciding from already-resolved ids.

void BM_DecideFromIds(benchmark::State& state) {
  const PolicyPtr& p = DefaultPolicy();
  if (!p) return state.SkipWithError("the default policy does not load");
  std::vector<Request> reqs;
  std::string error;
  if (!ResolvedMix(*p, &reqs, &error)) return state.SkipWithError(error.c_str());
  const size_t mask = reqs.size() - 1;  // 16 requests
  size_t i = 0;
  for (auto _ : state) {
    Decision d = p->Decide(reqs[i++ & mask]);
    benchmark::DoNotOptimize(d);
  }
  ReportMix(state, *p, reqs);
}
BENCHMARK(BM_DecideFromIds)->Name("BM_DecideFromIds/mix16");

// The same request every time: the best case for caches and branch prediction.
void BM_DecideFromIdsFixed(benchmark::State& state) {
  const PolicyPtr& p = DefaultPolicy();
  if (!p) return state.SkipWithError("the default policy does not load");
  std::vector<Request> reqs;
  std::string error;
  if (!ResolvedMix(*p, &reqs, &error)) return state.SkipWithError(error.c_str());
  // api_user.create: the most rules (6) and dimensions (6) of the default policy.
  const Request r = reqs[5];
  for (auto _ : state) {
    Decision d = p->Decide(r);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_DecideFromIdsFixed)->Name("BM_DecideFromIds/fixed");

// ---------------------------------------------------------------------------
// 2. Deciding from names: action, org role, workspace role and workspace type
// resolved with Find* on every request, then Decide. Settings and parameters
// arrive typed (as the sidecar has them after reading the store).

template <bool kFixed>
void BM_DecideFromNames(benchmark::State& state) {
  const PolicyPtr& p = DefaultPolicy();
  if (!p) return state.SkipWithError("the default policy does not load");
  const std::vector<RequestSpec>& specs = DefaultMix();
  std::vector<Request> typed;
  std::string error;
  if (!ResolvedMix(*p, &typed, &error)) return state.SkipWithError(error.c_str());
  const size_t mask = specs.size() - 1;
  size_t i = 0;
  for (auto _ : state) {
    const size_t k = kFixed ? 5 : (i++ & mask);
    const RequestSpec& s = specs[k];
    Request r;
    r.action = p->FindAction(s.action).value_or(kNoAction);
    r.org_role = p->FindOrgRole(s.org_role).value_or(kNoRole);
    r.workspace_role = p->FindWorkspaceRole(s.workspace_role).value_or(kNoRole);
    r.workspace_type = p->FindWorkspaceType(s.workspace_type).value_or(0);
    r.kind = s.kind;
    r.settings = typed[k].settings;
    r.params = typed[k].params;
    Decision d = p->Decide(r);
    benchmark::DoNotOptimize(d);
  }
  ReportMix(state, *p, typed);
}
BENCHMARK(BM_DecideFromNames<false>)->Name("BM_DecideFromNames/mix16");
BENCHMARK(BM_DecideFromNames<true>)->Name("BM_DecideFromNames/fixed");

// Resolution alone (four hash lookups), to split the figure above.
void BM_ResolveNames(benchmark::State& state) {
  const PolicyPtr& p = DefaultPolicy();
  if (!p) return state.SkipWithError("the default policy does not load");
  const std::vector<RequestSpec>& specs = DefaultMix();
  const size_t mask = specs.size() - 1;
  size_t i = 0;
  for (auto _ : state) {
    const RequestSpec& s = specs[i++ & mask];
    auto a = p->FindAction(s.action);
    auto o = p->FindOrgRole(s.org_role);
    auto w = p->FindWorkspaceRole(s.workspace_role);
    auto t = p->FindWorkspaceType(s.workspace_type);
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(o);
    benchmark::DoNotOptimize(w);
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_ResolveNames)->Name("BM_ResolveNames/mix16");

// ---------------------------------------------------------------------------
// 3. Compiling the default policy: from its folder (directory listing, file
// read, YAML parse, validation, compile, revision hash) and from memory.

void BM_CompileDefaultPolicy(benchmark::State& state) {
  for (auto _ : state) {
    PolicyLoad load = LoadPolicy(kPolicyDir);
    if (!load.ok()) return state.SkipWithError("the default policy does not load");
    benchmark::DoNotOptimize(load.policy.get());
  }
  if (const PolicyPtr& p = DefaultPolicy())
    state.counters["table_bytes"] = static_cast<double>(p->TableBytes());
}
BENCHMARK(BM_CompileDefaultPolicy)
    ->Name("BM_CompileDefaultPolicy/folder")
    ->Unit(benchmark::kMicrosecond);

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void BM_CompileDefaultPolicyFromString(benchmark::State& state) {
  const std::string text = ReadText(kPolicyFile);
  if (text.empty()) return state.SkipWithError(("cannot read " + kPolicyFile).c_str());
  for (auto _ : state) {
    PolicyLoad load = LoadPolicyFromString(text, "api-tokens.yaml");
    if (!load.ok()) return state.SkipWithError("the default policy does not load from a string");
    benchmark::DoNotOptimize(load.policy.get());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_CompileDefaultPolicyFromString)
    ->Name("BM_CompileDefaultPolicy/string")
    ->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------
// 4. The generated large policy.

const std::string& LargeText() {
  static const std::string text = GenerateLargePolicy();
  return text;
}

std::string FirstErrors(const PolicyLoad& load) {
  std::string s = "the large policy does not load:";
  for (size_t i = 0; i < load.errors.size() && i < 3; ++i) {
    s += ' ';
    s += load.errors[i].ToString();
  }
  return s;
}

void BM_CompileLargePolicy(benchmark::State& state) {
  const std::string& text = LargeText();
  // Freed heap goes back to the kernel first, so the RSS before is a floor
  // and the peak rise below is what compiling takes, even on a repetition.
  malloc_trim(0);
  const bool reset = ResetPeakRss();
  const double rss_before = RssMiB();
  // Once untimed, to fail loudly and to count actions and rules.
  {
    PolicyLoad load = LoadPolicyFromString(text, "large.yaml");
    if (!load.ok()) return state.SkipWithError(FirstErrors(load).c_str());
    size_t rules = 0;
    for (const ActionInfo& a : load.policy->actions()) rules += a.rules.size();
    state.counters["actions"] = static_cast<double>(load.policy->actions().size());
    state.counters["rules"] = static_cast<double>(rules);
  }
  size_t table_bytes = 0;
  for (auto _ : state) {
    PolicyLoad load = LoadPolicyFromString(text, "large.yaml");
    benchmark::DoNotOptimize(load.policy.get());
    table_bytes = load.policy ? load.policy->TableBytes() : 0;
  }
  const double peak = PeakRssMiB();
  state.counters["yaml_KiB"] = static_cast<double>(text.size()) / 1024.0;
  state.counters["table_MiB"] = static_cast<double>(table_bytes) / (1024.0 * 1024.0);
  state.counters["table_bytes"] = static_cast<double>(table_bytes);
  state.counters["peak_rss_MiB"] = peak;  // VmHWM after compiling (reset above if allowed)
  // The rise of the peak over the RSS before the loop: what one compile needs
  // at its worst (the YAML tree, the model and the tables at once).
  if (reset) state.counters["peak_rise_MiB"] = peak - rss_before;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_CompileLargePolicy)->Unit(benchmark::kMillisecond);

const PolicyPtr& LargePolicy() {
  static const PolicyPtr policy = LoadPolicyFromString(LargeText(), "large.yaml").policy;
  return policy;
}

// Requests over every action of the large policy, with random roles, types,
// settings and parameters (values on both sides of the policy's constants).
std::vector<Request> LargeMix(const CompiledPolicy& p, size_t n) {
  uint64_t state = 0x5eedfeedULL;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  static const int64_t kInts[] = {5,           60, 3600, 86400, 8 * 86400, 100 * 86400,
                                  400 * 86400, 10, 100,  1000,  5000};
  std::vector<Request> out;
  for (size_t i = 0; i < n; ++i) {
    Request r;
    r.action = static_cast<ActionId>(next() % p.actions().size());
    r.kind = next() % 3 == 0 ? PrincipalKind::kApiUser : PrincipalKind::kUser;
    r.org_role = static_cast<RoleId>(next() % p.org_role_count());
    r.workspace_role = static_cast<RoleId>(next() % p.workspace_role_count());
    r.workspace_type = static_cast<TypeId>(next() % p.workspace_type_count());
    r.settings = next() & ((uint64_t{1} << p.settings().size()) - 1);
    const ActionInfo& a = *p.action(r.action);
    for (size_t slot = 0; slot < a.params.size(); ++slot) {
      switch (a.params[slot].type) {
        case ValueType::kOrgRole:
          r.params[slot] = static_cast<int64_t>(next() % p.org_role_count());
          break;
        case ValueType::kWorkspaceRole:
          r.params[slot] = static_cast<int64_t>(next() % p.workspace_role_count());
          break;
        case ValueType::kBool:
          r.params[slot] = static_cast<int64_t>(next() % 2);
          break;
        default:
          r.params[slot] = kInts[next() % std::size(kInts)];
          break;
      }
    }
    out.push_back(r);
  }
  return out;
}

// state.range(0) requests cycled: 16 stays in L1; 4096 spreads over all 500
// actions' tables, as a busy sidecar would.
void BM_DecideLargePolicy(benchmark::State& state) {
  const PolicyPtr& p = LargePolicy();
  if (!p) return state.SkipWithError("the large policy does not load");
  const std::vector<Request> reqs = LargeMix(*p, static_cast<size_t>(state.range(0)));
  const size_t mask = reqs.size() - 1;
  size_t i = 0;
  for (auto _ : state) {
    Decision d = p->Decide(reqs[i++ & mask]);
    benchmark::DoNotOptimize(d);
  }
  int allowed = 0;
  for (const Request& r : reqs) allowed += p->Decide(r).allowed();
  state.counters["allowed_share"] = static_cast<double>(allowed) / static_cast<double>(reqs.size());
}
BENCHMARK(BM_DecideLargePolicy)->Arg(16)->Arg(4096);

// ---------------------------------------------------------------------------
// 5. Peak memory of compiling the large policy, in a fresh process.

int PeakMemoryReport() {
  const double rss_start = RssMiB();
  const std::string text = GenerateLargePolicy();
  malloc_trim(0);
  const bool reset = ResetPeakRss();
  const double rss_before = RssMiB();
  const double heap_before = HeapInUseMiB();
  const auto t0 = std::chrono::steady_clock::now();
  PolicyLoad load = LoadPolicyFromString(text, "large.yaml");
  const auto t1 = std::chrono::steady_clock::now();
  if (!load.ok()) {
    std::fprintf(stderr, "%s\n", FirstErrors(load).c_str());
    return 1;
  }
  const double peak = PeakRssMiB();
  const double rss_after = RssMiB();
  const double heap_after = HeapInUseMiB();
  malloc_trim(0);  // return what compiling freed: what stays is the policy
  const double rss_held = RssMiB();
  const double table_mib = static_cast<double>(load.policy->TableBytes()) / (1024.0 * 1024.0);
  size_t rules = 0;
  for (const ActionInfo& a : load.policy->actions()) rules += a.rules.size();
  const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();

  std::printf("large policy: %zu actions, %zu rules (implicit caps included), %zu settings, ",
              load.policy->actions().size(), rules, load.policy->settings().size());
  std::printf("%.0f KiB of YAML\n", static_cast<double>(text.size()) / 1024.0);
  std::printf("  compile (one, cold)        %10.1f ms     (target <= 1000 ms)\n", ms);
  std::printf("  TableBytes()               %10.2f MiB    (%zu bytes)\n", table_mib,
              load.policy->TableBytes());
  std::printf("  heap held by the policy    %10.2f MiB    (mallinfo2, after - before)\n",
              heap_after - heap_before);
  std::printf("  VmRSS rise, policy held    %10.2f MiB    (%.2f MiB before malloc_trim)\n",
              rss_held - rss_before, rss_after - rss_before);
  if (reset) {
    std::printf("  VmHWM rise while compiling %10.2f MiB    (target <= 64 MiB)\n",
                peak - rss_before);
  } else {
    std::printf("  VmHWM rise while compiling %10.2f MiB    (VmHWM not resettable: since start)\n",
                peak - rss_start);
  }
  std::printf("  VmHWM of the process       %10.2f MiB    (VmRSS %.2f at start, %.2f before)\n",
              peak, rss_start, rss_before);
  return 0;
}

}  // namespace
}  // namespace gatehouse::bench

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--peak_memory") return gatehouse::bench::PeakMemoryReport();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
