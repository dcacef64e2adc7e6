// The HTML review pages (`policy diff OLD NEW --html`, `policy matrix --html`)
// rendered by a real headless browser (Debian's chromium): the page renders
// (a screenshot is taken), its inline script counts the highlighted cells in
// the live DOM, and the highlighted cells are exactly those whose principals
// the two policies decide differently — the ones `policy diff` lists.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "cli/cli_util.h"
#include "gatehouse/policy.h"

namespace fs = std::filesystem;

namespace gatehouse::testing {
namespace {

const std::string kChromium = "/usr/bin/chromium";

std::string AttrOf(const std::string& tag, const std::string& name) {
  const std::string key = " " + name + "=\"";
  const size_t at = tag.find(key);
  if (at == std::string::npos) return "";
  const size_t start = at + key.size();
  return tag.substr(start, tag.find('"', start) - start);
}

std::string Unescape(std::string s) {
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}}) {
    for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
  }
  return s;
}

struct Cell {
  std::string type, settings, action, members, cls;
};

// Every <td data-action=...> of the DOM, with its slice's type and settings.
std::vector<Cell> Cells(const std::string& dom) {
  std::vector<Cell> out;
  std::string type, settings;
  for (size_t at = 0; (at = dom.find('<', at)) != std::string::npos; ++at) {
    const size_t end = dom.find('>', at);
    if (end == std::string::npos) break;
    const std::string tag = dom.substr(at, end - at);
    if (tag.rfind("<section", 0) == 0) {
      type = Unescape(AttrOf(tag, "data-type"));
      settings = Unescape(AttrOf(tag, "data-settings"));
    } else if (tag.rfind("<td", 0) == 0 && !AttrOf(tag, "data-action").empty()) {
      out.push_back({type, settings, Unescape(AttrOf(tag, "data-action")), Unescape(AttrOf(tag, "data-members")),
                     AttrOf(tag, "class")});
    }
  }
  return out;
}

class HtmlReportTest : public CliTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kChromium)) << "chromium is not installed (scripts/setup.sh installs it)";
  }
  ProcessResult Chromium(std::vector<std::string> args) {
    std::vector<std::string> argv = {kChromium, "--headless", "--no-sandbox", "--disable-gpu",
                                     "--no-first-run", "--user-data-dir=" + dir_.File("chromium-profile")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {.timeout = std::chrono::seconds(90)});
  }
};

// The decision of a principal ("kind/org/ws") in a slice, at unset parameters.
bool Allowed(const CompiledPolicy& p, const std::string& action, const std::string& member, const std::string& type,
             const std::string& settings) {
  Request r;
  r.action = p.FindAction(action).value();
  const size_t a = member.find('/'), b = member.find('/', a + 1);
  r.kind = member.substr(0, a) == "user" ? PrincipalKind::kUser : PrincipalKind::kApiUser;
  r.org_role = p.FindOrgRole(member.substr(a + 1, b - a - 1)).value();
  r.workspace_role = p.FindWorkspaceRole(member.substr(b + 1)).value();
  r.workspace_type = p.FindWorkspaceType(type).value();
  r.settings = p.default_settings();
  for (size_t at = 0; at < settings.size();) {
    size_t comma = settings.find(',', at);
    if (comma == std::string::npos) comma = settings.size();
    const std::string kv = settings.substr(at, comma - at);
    const size_t eq = kv.find('=');
    if (auto i = p.FindSetting(kv.substr(0, eq))) {
      if (kv.substr(eq + 1) == "true") r.settings |= uint64_t{1} << *i;
      else r.settings &= ~(uint64_t{1} << *i);
    }
    at = comma + 1;
  }
  return p.Decide(r).allowed();
}

TEST_F(HtmlReportTest, DiffPageHighlightsExactlyTheCellsPolicyDiffListsInARealBrowser) {
  const fs::path data = fs::path(GATEHOUSE_SOURCE_DIR) / "tests" / "testdata" / "diff";
  // Every diff case, and the viewer-import edit of the default policy itself.
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& e : fs::directory_iterator(data))
    if (e.is_directory()) pairs.emplace_back((e.path() / "old.yaml").string(), (e.path() / "new.yaml").string());
  {
    std::string text = ReadFileBytes(DefaultPolicyDir() + "/api-tokens.yaml");
    const std::string from = "when: principal.workspace_role >= contributor\n        message: Importing";
    text.replace(text.find(from), from.size(), "when: principal.workspace_role >= viewer\n        message: Importing");
    WriteFileBytes(dir_.File("edited.yaml"), text);
    pairs.emplace_back(DefaultPolicyDir() + "/api-tokens.yaml", dir_.File("edited.yaml"));
  }
  std::sort(pairs.begin(), pairs.end());
  ASSERT_GE(pairs.size(), 5u);
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto& [old_path, new_path] = pairs[i];
    SCOPED_TRACE(new_path);
    const std::string html = dir_.File("diff" + std::to_string(i) + ".html");
    ProcessResult r = gh_.Run({"policy", "diff", old_path, new_path, "--html", html, "--json"});
    ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r;
    json diff = json::parse(r.out);
    std::set<std::string> listed;
    for (const auto& c : diff["changes"]) listed.insert(c["action"].get<std::string>());
    // Self-contained: no external resource of any kind.
    const std::string page = ReadFileBytes(html);
    for (const char* external : {"http://", "https://", " src=", "<link", "@import", "url("})
      EXPECT_EQ(page.find(external), std::string::npos) << external;

    ProcessResult dom = Chromium({"--dump-dom", "file://" + html});
    ASSERT_EQ(dom.exit_code, 0) << dom;
    std::vector<Cell> cells = Cells(dom.out);
    ASSERT_FALSE(cells.empty()) << dom.out.substr(0, 2000);
    size_t changed = 0;
    std::set<std::string> highlighted;
    PolicyLoad before = LoadPolicy(old_path), after = LoadPolicy(new_path);
    ASSERT_TRUE(before.ok() && after.ok());
    for (const Cell& c : cells) {
      const bool is_changed = c.cls.find("changed") != std::string::npos;
      if (is_changed) {
        ++changed;
        highlighted.insert(c.action);
      }
      if (c.cls.find("added") != std::string::npos) continue;  // nothing to compare with
      // Actions without request parameters decide by principal and slice
      // alone: the cell is highlighted exactly when a member is decided
      // differently before and after.
      const ActionInfo* info = after.policy->action(after.policy->FindAction(c.action).value());
      if (!info->params.empty()) continue;
      bool differs = false;
      for (size_t at = 0; at <= c.members.size();) {
        size_t semi = c.members.find(';', at);
        if (semi == std::string::npos) semi = c.members.size();
        const std::string m = c.members.substr(at, semi - at);
        differs |= Allowed(*before.policy, c.action, m, c.type, c.settings) !=
                   Allowed(*after.policy, c.action, m, c.type, c.settings);
        at = semi + 1;
      }
      EXPECT_EQ(is_changed, differs) << c.action << " " << c.members << " in " << c.type << " " << c.settings;
    }
    EXPECT_EQ(highlighted, listed);
    // The browser's own count, from the page's script over the live DOM.
    EXPECT_NE(dom.out.find("data-rendered-changed=\"" + std::to_string(changed) + "\""), std::string::npos);
    EXPECT_NE(dom.out.find("data-changed=\"" + std::to_string(changed) + "\""), std::string::npos);
    if (new_path == dir_.File("edited.yaml")) {
      EXPECT_GT(changed, 0u);
      EXPECT_EQ(listed, std::set<std::string>{"project.import"});
      // Rendered: a screenshot of the page.
      const std::string png = dir_.File("diff.png");
      ProcessResult shot = Chromium({"--screenshot=" + png, "--window-size=1600,1200", "file://" + html});
      ASSERT_EQ(shot.exit_code, 0) << shot;
      const std::string bytes = ReadFileBytes(png);
      ASSERT_GT(bytes.size(), 10'000u);
      EXPECT_EQ(bytes.substr(1, 3), "PNG");
    }
  }
}

TEST_F(HtmlReportTest, MatrixPageRendersEveryCellOfTheMatrix) {
  const std::string html = dir_.File("matrix.html");
  ASSERT_TRUE(Succeeded(gh_.Run({"policy", "matrix", "--html", html})));
  json m = gh_.Json("", {"policy", "matrix"});
  size_t expected = 0;
  for (const auto& s : m["slices"]) expected += s["cells"].size();
  ProcessResult dom = Chromium({"--dump-dom", "file://" + html});
  ASSERT_EQ(dom.exit_code, 0) << dom;
  std::vector<Cell> cells = Cells(dom.out);
  EXPECT_EQ(cells.size(), expected);
  EXPECT_NE(dom.out.find("data-rendered-changed=\"0\""), std::string::npos);
  // Usage: --html needs a writable file.
  EXPECT_TRUE(Failed(gh_.Run({"policy", "matrix", "--html", dir_.File("no/such/dir/m.html")}), 1));
}

}  // namespace
}  // namespace gatehouse::testing
