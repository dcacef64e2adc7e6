// Property tests with generated hostile inputs for the policy loader: depth,
// width, aliases, sizes, control bytes, unicode. Each input runs in a forked
// child under RLIMIT_AS, RLIMIT_CPU and an alarm set here (the harness), and
// must end in a positioned error or a loaded policy: never a signal (a stack
// overflow, an out-of-memory abort, a timeout), never both or neither.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>

#include "gatehouse/analysis.h"
#include "gatehouse/policy.h"

namespace fs = std::filesystem;

namespace gatehouse {
namespace {

// The bounds every input must load within.
constexpr rlim_t kMemoryBytes = rlim_t{1} << 30;  // 1 GiB of address space
constexpr rlim_t kCpuSeconds = 20;
constexpr unsigned kWallSeconds = 30;

// What a child reports through its exit status.
enum Outcome { kLoaded = 10, kRefused = 11, kBroken = 12 };

// Checks the loader's promise about one load; returns kLoaded or kRefused,
// or kBroken (with why on stderr) when the promise is broken.
int Check(const PolicyLoad& l) {
  if (l.ok() == !l.errors.empty()) {
    fprintf(stderr, "ok()=%d with %zu errors\n", l.ok(), l.errors.size());
    return kBroken;
  }
  for (const PolicyError& e : l.errors) {
    if (e.line < 1 || e.column < 1 || e.message.empty() || e.file.empty()) {
      fprintf(stderr, "unpositioned error: %s\n", e.ToString().c_str());
      return kBroken;
    }
    // Messages quote input cut short and escaped: one short, printable line.
    if (e.message.size() > 2000) {
      fprintf(stderr, "a %zu-byte message\n", e.message.size());
      return kBroken;
    }
    for (unsigned char c : e.message) {
      if (c < 0x20 || c == 0x7f) {
        fprintf(stderr, "raw control byte %02x in: %s\n", c, e.message.substr(0, 200).c_str());
        return kBroken;
      }
    }
  }
  return l.ok() ? kLoaded : kRefused;
}

// Runs f in a child under the bounds; the child's outcome, or -signal.
int RunBounded(const std::function<int()>& f) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    rlimit as{kMemoryBytes, kMemoryBytes};
    rlimit cpu{kCpuSeconds, kCpuSeconds};
    // AddressSanitizer reserves terabytes of address space for its shadow:
    // under it the memory bound cannot be an address-space limit (the CPU
    // and wall bounds still hold; the normal build checks memory).
#if !defined(GATEHOUSE_SANITIZED)
    setrlimit(RLIMIT_AS, &as);
#else
    (void)as;
#endif
    setrlimit(RLIMIT_CPU, &cpu);
    alarm(kWallSeconds);
    _exit(f());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int LoadText(const std::string& text) { return Check(LoadPolicyFromString(text, "hostile.yaml")); }

// The default policy's text, into which hostile fragments are spliced.
std::string DefaultText() {
  std::ifstream in(std::string(GATEHOUSE_SOURCE_DIR) + "/policies/api-tokens.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A small valid policy whose one rule's condition is `when`.
std::string WithWhen(const std::string& when) {
  return "gatehouse: v1\npolicy: hostile\nsettings:\n  toggle: {type: bool}\nactions:\n  a.b:\n    permit:\n"
         "      - rule: r\n        when: \"" + when + "\"\n";
}

std::string Repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// Expects the child to end with `want` (kLoaded or kRefused), not a signal.
void ExpectOutcome(const std::string& what, int got, int want) {
  EXPECT_GT(got, 0) << what << ": killed by signal " << -got;
  EXPECT_EQ(got, want) << what << (got == kBroken ? ": the loader's promise was broken (see stderr)" : "");
}

// The error of a refused text, in the parent (for cheap, bounded inputs).
std::string FirstError(const std::string& text) {
  PolicyLoad l = LoadPolicyFromString(text, "hostile.yaml");
  return l.errors.empty() ? std::string("(loaded)") : l.errors[0].ToString();
}

TEST(Hostile, DeepParenthesesAndNotsAreRefusedWithAPosition) {
  for (size_t n : {1u, 63u, 64u, 65u, 1000u, 20000u, 200000u}) {
    const std::string parens = Repeat("(", n) + "principal.org_role >= admin" + Repeat(")", n);
    ExpectOutcome("parens " + std::to_string(n), RunBounded([&] { return LoadText(WithWhen(parens)); }),
                  n <= 64 ? kLoaded : kRefused);
    const std::string nots = Repeat("not ", n) + "settings.toggle";
    ExpectOutcome("nots " + std::to_string(n), RunBounded([&] { return LoadText(WithWhen(nots)); }),
                  n <= 64 ? kLoaded : kRefused);
  }
  const std::string e = FirstError(WithWhen(Repeat("(", 100) + "true" + Repeat(")", 100)));
  // Column of the 65th '(' inside the quoted scalar (line 9, the quote at col 15).
  EXPECT_EQ(e, "hostile.yaml:9:80: expression nested too deeply: at most 64 levels of parentheses and 'not' "
               "(in actions.a.b.permit[0].when)");
}

TEST(Hostile, LongAndOrChainsAreFlatNotDeep) {
  for (size_t n : {2u, 1000u, 30000u, 100000u}) {
    std::string chain = "principal.org_role >= admin", ors = chain;
    for (size_t i = 1; i < n; ++i) {
      const char* term = i % 2 ? "settings.toggle" : "principal.workspace_role >= viewer";
      chain += std::string(" and ") + term;
      ors += std::string(" or ") + term;
    }
    ExpectOutcome("and-chain " + std::to_string(n), RunBounded([&] { return LoadText(WithWhen(chain)); }), kLoaded);
    ExpectOutcome("or-chain " + std::to_string(n), RunBounded([&] { return LoadText(WithWhen(ors)); }), kLoaded);
  }
  // The chain is one node: it decides like a short one, and prints flat.
  std::string chain = "principal.org_role >= admin";
  for (int i = 0; i < 30000; ++i) chain += " and principal.org_role >= viewer";
  PolicyLoad l = LoadPolicyFromString(WithWhen(chain));
  ASSERT_TRUE(l.ok()) << l.errors[0].ToString();
  Request r;
  r.action = 0;
  r.org_role = *l.policy->FindOrgRole("admin");
  EXPECT_TRUE(l.policy->Decide(r).allowed());
  r.org_role = *l.policy->FindOrgRole("contributor");
  EXPECT_FALSE(l.policy->Decide(r).allowed());
  EXPECT_TRUE(DiffPolicies(*l.policy, *l.policy, DiffOptions{.exhaustive = true}).equal());
}

TEST(Hostile, DeepAndWideYamlIsRefusedWithAPosition) {
  for (size_t n : {10u, 64u, 65u, 10000u, 100000u}) {
    const std::string seq = "gatehouse: v1\npolicy: x\nroutes: " + Repeat("[", n) + Repeat("]", n) + "\n";
    ExpectOutcome("flow lists " + std::to_string(n), RunBounded([&] { return LoadText(seq); }), kRefused);
    const std::string maps = "gatehouse: v1\npolicy: x\nroutes: " + Repeat("{a: ", n) + "b" + Repeat("}", n) + "\n";
    ExpectOutcome("flow maps " + std::to_string(n), RunBounded([&] { return LoadText(maps); }), kRefused);
  }
  std::string block = "gatehouse: v1\npolicy: x\nz:\n";
  for (int i = 0; i < 5000; ++i) block += std::string(2 + i, ' ') + "- \n";
  ExpectOutcome("block lists", RunBounded([&] { return LoadText(block); }), kRefused);
  EXPECT_EQ(FirstError("gatehouse: v1\npolicy: x\nroutes: " + Repeat("[", 70) + Repeat("]", 70)),
            "hostile.yaml:3:72: YAML nested too deeply: at most 64 levels of lists and mappings");
  // Width: a million-item list, 100,000 actions.
  const std::string wide = "gatehouse: v1\npolicy: x\nworkspace_types: [" + Repeat("a, ", 1000000) + "a]\n";
  ExpectOutcome("wide list", RunBounded([&] { return LoadText(wide); }), kRefused);
  EXPECT_NE(FirstError(wide).find("too many YAML nodes"), std::string::npos);
  std::string actions = "gatehouse: v1\npolicy: x\nactions:\n";
  for (int i = 0; i < 100000; ++i) actions += "  a.n" + std::to_string(i) + ": {permit: [{rule: r, when: \"true\"}]}\n";
  ExpectOutcome("100,000 actions", RunBounded([&] { return LoadText(actions); }), kRefused);
}

TEST(Hostile, AnchorsAndAliasesAreRefusedBeforeExpansion) {
  std::string bomb = "gatehouse: v1\npolicy: x\nbomb:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += "  a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) bomb += std::string(j ? ", " : "") + "*a" + std::to_string(i - 1);
    bomb += "]\n";
  }
  ExpectOutcome("alias bomb", RunBounded([&] { return LoadText(bomb + DefaultText().substr(0, 0)); }), kRefused);
  EXPECT_EQ(FirstError(bomb), "hostile.yaml:4:7: YAML anchors (&name) are not allowed in a policy: write the value out");
  ExpectOutcome("bomb before a valid policy", RunBounded([&] {
                  std::string text = DefaultText();
                  return LoadText(text.insert(text.find("\nactions:") + 1, bomb.substr(bomb.find("bomb:"))));
                }),
                kRefused);
  const std::string alias = "gatehouse: v1\npolicy: &p x\n";
  EXPECT_EQ(FirstError(alias), "hostile.yaml:2:9: YAML anchors (&name) are not allowed in a policy: write the value out");
  // An alias whose anchor is refused, and merge keys, are refused too.
  EXPECT_NE(FirstError("gatehouse: v1\npolicy: x\nroles: {<<: *r}\n"), "(loaded)");
  // '&' and '*' inside quoted scalars and comments are ordinary text.
  EXPECT_EQ(FirstError("gatehouse: v1  # &a *b\npolicy: \"&x *y\"\n"), "(loaded)");
}

TEST(Hostile, BigFilesAndIdsFailFastWithShortMessages) {
  const fs::path dir = fs::path(testing::TempDir()) / ("hostile_big_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path big = dir / "big.yaml";
  {
    std::ofstream out(big);
    out << "gatehouse: v1\npolicy: x\n# " << std::string(50u << 20, 'x') << "\n";
  }
  const auto start = std::chrono::steady_clock::now();
  ExpectOutcome("50 MB file", RunBounded([&] { return Check(LoadPolicy(big.string())); }), kRefused);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  PolicyLoad l = LoadPolicy(big.string());
  ASSERT_EQ(l.errors.size(), 1u);
  EXPECT_NE(l.errors[0].message.find("file too large"), std::string::npos) << l.errors[0].ToString();
  fs::remove_all(dir);

  const std::string id(200 * 1024, 'X');
  std::string text = "gatehouse: v1\npolicy: x\nactions:\n  a.b:\n    permit:\n      - rule: " + id +
                     "\n        when: \"true\"\n";
  ExpectOutcome("200 KB rule id", RunBounded([&] { return LoadText(text); }), kRefused);
  const std::string e = FirstError(text);
  EXPECT_LT(e.size(), 300u) << e.substr(0, 300);
  EXPECT_NE(e.find("XXXX…' (204800 bytes)"), std::string::npos) << e.substr(0, 300);
  // A megabyte of garbage inside one expression: a few messages, not a million.
  PolicyLoad g = LoadPolicyFromString(WithWhen(std::string(1 << 20, '@')));
  EXPECT_LE(g.errors.size(), 10u);
}

TEST(Hostile, ControlBytesAndUnicodeYieldEscapedMessages) {
  // Every byte value in keys, names, rule ids and expressions.
  std::mt19937_64 rng(20261201);
  const std::vector<std::string> odd = {"\x1b[2J", "\x00", "\x7f", "\xc2\x9b", "\xe2\x80\xae", "\xe2\x80\x8b",
                                        "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "\r", "\t",
                                        "\xd0\xbe", "\xef\xbb\xbf", "\\", "\"", "'", "&", "*", "%", "{", "[", ":"};
  const std::string base = DefaultText();
  for (int i = 0; i < 300; ++i) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % text.size();
      std::string frag = odd[rng() % odd.size()];
      if (rng() % 3 == 0) frag = std::string(1, static_cast<char>(rng() & 0xff));
      text.insert(at, frag);
    }
    const int got = RunBounded([&] { return LoadText(text); });
    ASSERT_TRUE(got == kLoaded || got == kRefused) << "case " << i << ": outcome " << got;
  }
  // A name with ESC is refused and echoed escaped.
  const std::string e = FirstError("gatehouse: v1\npolicy: x\nworkspace_types: [\"a\\e[31mb\"]\n");
  EXPECT_NE(e.find("'a\\x1b[31mb'"), std::string::npos) << e;
  const std::string bidi = FirstError("gatehouse: v1\npolicy: x\nworkspace_types: [\"ab\xe2\x80\xae" "cd\"]\n");
  EXPECT_NE(bidi.find("'ab\\u{202e}cd'"), std::string::npos) << bidi;
}

TEST(Hostile, RandomStructuresNeverCrash) {
  // Generated documents: random nesting of lists, maps and scalars spliced at
  // the top and inside actions of the default policy.
  std::mt19937_64 rng(7);
  std::function<std::string(int)> gen = [&](int depth) -> std::string {
    switch (depth <= 0 ? 0 : rng() % 4) {
      case 0: return std::vector<std::string>{"x", "1", "true", "\"q\"", "~", "not", "(a", "v1"}[rng() % 8];
      case 1: {
        std::string s = "[";
        for (int i = static_cast<int>(rng() % 4); i > 0; --i) s += gen(depth - 1) + (i > 1 ? ", " : "");
        return s + "]";
      }
      default: {
        std::string s = "{";
        for (int i = static_cast<int>(rng() % 4); i > 0; --i)
          s += std::vector<std::string>{"permit", "rule", "when", "roles", "k"}[rng() % 5] + ": " + gen(depth - 1) +
               (i > 1 ? ", " : "");
        return s + "}";
      }
    }
  };
  const std::string base = DefaultText();
  // Each case forks a child; under the sanitizers a case costs ~0.27 s
  // (measured in CI), so the hardening run takes the first 60 of the same
  // sequence.
#if defined(GATEHOUSE_SANITIZED)
  constexpr int kCases = 60;
#else
  constexpr int kCases = 200;
#endif
  for (int i = 0; i < kCases; ++i) {
    std::string text = base;
    const std::string frag = gen(1 + static_cast<int>(rng() % 80));
    if (i % 2) text += "extra: " + frag + "\n";
    else text.insert(text.find("\nactions:") + 10, "  z.z: " + frag + "\n");
    const int got = RunBounded([&] { return LoadText(text); });
    ASSERT_TRUE(got == kLoaded || got == kRefused) << "case " << i << ": outcome " << got;
  }
}

// One action, 16 int parameters each compared with 3 constants (CONTRACT's
// issue 10, item 3): it compiles (a table per rule), and the analyses that
// enumerate cells refuse fast instead of eating memory.
std::string SixteenParams() {
  std::string t = "gatehouse: v1\npolicy: wide\nactions:\n  a.b:\n    params:\n";
  for (int i = 0; i < 16; ++i) t += "      p" + std::to_string(i) + ": {type: int}\n";
  t += "    permit:\n";
  for (int i = 0; i < 16; ++i)
    t += "      - {rule: r" + std::to_string(i) + ", when: \"request.p" + std::to_string(i) + " in [1, 5, 9]\"}\n";
  return t;
}

TEST(Hostile, AnalysesOfAHugeInputSpaceRefuseFast) {
  const int got = RunBounded([] {
    PolicyLoad l = LoadPolicyFromString(SixteenParams());
    if (!l.ok()) return static_cast<int>(kBroken);
    Matrix m = BuildMatrix(*l.policy);
    if (m.problems.empty()) return static_cast<int>(kBroken);
    PolicyDiff d = DiffPolicies(*l.policy, *l.policy, DiffOptions{.exhaustive = true});
    return d.problems.empty() ? static_cast<int>(kBroken) : static_cast<int>(kRefused);
  });
  ExpectOutcome("16 int parameters", got, kRefused);
  PolicyLoad l = LoadPolicyFromString(SixteenParams());
  ASSERT_TRUE(l.ok());
  Matrix m = BuildMatrix(*l.policy);
  ASSERT_EQ(m.problems.size(), 1u);
  EXPECT_NE(m.problems[0].find("too large to enumerate exactly"), std::string::npos) << m.problems[0];
  EXPECT_NE(m.problems[0].find("a.b"), std::string::npos) << m.problems[0];
  // The default policy is far inside the bound.
  PolicyLoad d = LoadPolicy(std::string(GATEHOUSE_SOURCE_DIR) + "/policies");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(BuildMatrix(*d.policy).problems.empty());
}

TEST(Hostile, ACompilerTableBudgetRefusesAPolicyOfManyBigRules) {
  // 64 rules, each reading two int parameters with ~1,000 classes apiece
  // (1,000,000 cells per rule table): over the policy's cell budget.
  std::string t = "gatehouse: v1\npolicy: big\nactions:\n";
  for (int a = 0; a < 40; ++a) {
    t += "  a.n" + std::to_string(a) + ":\n    params: {x: {type: int}, y: {type: int}}\n    permit:\n";
    std::string xs, ys;
    for (int i = 0; i < 500; ++i) xs += (i ? ", " : "") + std::to_string(i * 3);
    t += "      - {rule: r, when: \"request.x in [" + xs + "] and request.y in [" + xs + "]\"}\n";
  }
  ExpectOutcome("tables over budget", RunBounded([&] { return LoadText(t); }), kRefused);
  EXPECT_NE(FirstError(t).find("decision tables grow past"), std::string::npos) << FirstError(t);
}

class FolderTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) / ("hostile_dir_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  fs::path dir_;
};

TEST_F(FolderTest, AFifoAsThePolicyIsRefusedWithoutHanging) {
  const fs::path fifo = dir_ / "policy.yaml";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const fs::path& p : {fifo, dir_}) {
    const int got = RunBounded([&] {
      alarm(5);  // a hang is a SIGALRM, a failure
      return Check(LoadPolicy(p.string()));
    });
    ExpectOutcome(p.string(), got, kRefused);
  }
  PolicyLoad l = LoadPolicy(fifo.string());
  ASSERT_EQ(l.errors.size(), 1u);
  EXPECT_NE(l.errors[0].message.find("a FIFO"), std::string::npos) << l.errors[0].ToString();
  EXPECT_EQ(LoadPolicy("/dev/null").errors.at(0).message.find("a device"), 0u);
}

TEST_F(FolderTest, EveryYamlCaseLoadsAndEverySkippedFileIsNamed) {
  Write("a.YAML", "gatehouse: v1\npolicy: p\n");
  Write("b.Yml", "gatehouse: v1\nactions:\n  b.x: {permit: [{rule: r, when: \"true\"}]}\n");
  Write("c.yaml", "gatehouse: v1\nactions:\n  c.x: {forbid: [{rule: r, when: \"true\"}]}\n");
  Write(".hidden.yaml", "gatehouse: v1\nactions:\n  h.x: {permit: [{rule: r, when: \"true\"}]}\n");
  Write("notes.txt", "hello");
  Write("schema.json", "{}");
  fs::create_directories(dir_ / "tests");
  fs::create_directories(dir_ / "invariants");
  fs::create_directories(dir_ / "drafts");
  fs::create_directories(dir_ / ".git");
  Write("drafts/d.yaml", "gatehouse: v1\nactions:\n  d.x: {permit: [{rule: r, when: \"true\"}]}\n");
  PolicyLoad l = LoadPolicy(dir_.string());
  ASSERT_TRUE(l.ok()) << l.errors[0].ToString();
  EXPECT_TRUE(l.policy->FindAction("b.x") && l.policy->FindAction("c.x"));
  EXPECT_FALSE(l.policy->FindAction("h.x") || l.policy->FindAction("d.x"));
  std::vector<std::string> w;
  for (const auto& e : l.warnings) w.push_back(e.ToString());
  const std::string d = dir_.string() + "/";
  EXPECT_EQ(w, (std::vector<std::string>{
                   d + ".hidden.yaml: warning: skipped: a hidden file (names starting with '.' are never policy files)",
                   d + "drafts/: warning: skipped: a subfolder (only tests/ and invariants/ have a meaning here)",
                   d + "notes.txt: warning: skipped: not a policy file (policy files are named *.yaml or *.yml)"}));
}

TEST(Minimal, APolicyFromTheContractAloneLoads) {
  PolicyLoad l = LoadPolicyFromString(
      "gatehouse: v1\npolicy: minimal\nactions:\n  project.import:\n    permit:\n"
      "      - rule: admins\n        when: principal.org_role >= admin\n"
      "    on_deny:\n      graphql: {field: importProject, name: PreconditionError, code: internal_error}\n");
  ASSERT_TRUE(l.ok()) << l.errors[0].ToString();
  const ActionInfo* a = l.policy->action(*l.policy->FindAction("project.import"));
  EXPECT_EQ(a->description, "project.import");
  ASSERT_TRUE(a->graphql.has_value());
  EXPECT_EQ(a->graphql->message,
            "Something unexpected happened. If this problem persists, please contact support@tray.io.");
  EXPECT_EQ(l.policy->org_role_count(), 5);  // none + the seed's four
  EXPECT_TRUE(l.policy->FindWorkspaceType("shared"));
}

}  // namespace
}  // namespace gatehouse
