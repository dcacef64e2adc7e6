#include "html_report.h"

#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace gatehouse::cli {
namespace {

std::string Esc(std::string_view s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

const char* VerdictText(Verdict v) {
  return v == Verdict::kAllow ? "allow" : v == Verdict::kConditional ? "cond" : "deny";
}

using Principal = std::tuple<std::string, std::string, std::string>;  // kind, org role, workspace role

std::string MemberText(const Principal& p) {
  return std::get<0>(p) + "/" + std::get<1>(p) + "/" + std::get<2>(p);
}

// The request a principal makes in a slice (unread settings at their defaults;
// request parameters unset). nullopt when a name is unknown to the policy.
std::optional<Request> RequestIn(const CompiledPolicy& p, const std::string& action, const Principal& who,
                                 const MatrixSlice& sl) {
  Request r;
  auto a = p.FindAction(action);
  auto org = p.FindOrgRole(std::get<1>(who));
  auto ws = p.FindWorkspaceRole(std::get<2>(who));
  auto type = p.FindWorkspaceType(sl.workspace_type);
  if (!a || !org || !ws || !type) return std::nullopt;
  r.action = *a;
  r.kind = std::get<0>(who) == "user" ? PrincipalKind::kUser : PrincipalKind::kApiUser;
  r.org_role = *org;
  r.workspace_role = *ws;
  r.workspace_type = *type;
  r.settings = p.default_settings();
  for (const auto& [name, on] : sl.settings) {
    if (auto i = p.FindSetting(name)) {
      if (on) r.settings |= uint64_t{1} << *i;
      else r.settings &= ~(uint64_t{1} << *i);
    }
  }
  return r;
}

std::string RuleAt(const CompiledPolicy& p, const std::string& action, const Principal& who, const MatrixSlice& sl) {
  auto r = RequestIn(p, action, who, sl);
  if (!r) return "";
  Decision d = p.Decide(*r);
  return std::string(d.allowed() ? "allow" : "deny") + " by " + std::string(p.DecidingRule(d));
}

std::string SliceTitle(const MatrixSlice& sl) {
  std::string s = sl.workspace_type + " workspace";
  for (const auto& [name, on] : sl.settings) s += " · " + name + (on ? " on" : " off");
  return s;
}

std::string SliceSettings(const MatrixSlice& sl) {
  std::string s;
  for (const auto& [name, on] : sl.settings) s += (s.empty() ? "" : ",") + name + "=" + (on ? "true" : "false");
  return s;
}

const char* kStyle = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:center;white-space:nowrap}
th.action{text-align:left;font-family:monospace}
td.allow{background:#d9f2d9} td.deny{background:#f7f7f7;color:#999} td.cond{background:#fff3c4}
td.added{outline:2px dashed #1c7ed6;outline-offset:-3px}
td.changed{outline:3px solid #d6336c;outline-offset:-3px;font-weight:bold;color:#222}
.layout{display:flex;gap:32px;align-items:flex-start} .side{max-width:520px}
.side li{margin-bottom:6px} code{font-size:12px}
.legend td,.legend th{text-align:left;white-space:normal}
)css";

// Counts the highlighted cells once the page has rendered, so a browser
// proves it built the same table the file describes.
const char* kScript =
    "<script>document.addEventListener('DOMContentLoaded',function(){"
    "var n=document.querySelectorAll('td.changed').length;"
    "document.body.setAttribute('data-rendered-changed',String(n));"
    "var e=document.getElementById('rendered');if(e)e.textContent=n+' highlighted cells rendered';});</script>";

struct Column {
  std::string label;
  std::vector<Principal> members;
};

void Page(std::ostringstream& o, const std::string& title) {
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << Esc(title)
    << "</title><style>" << kStyle << "</style>" << kScript << "</head><body>\n<h1>" << Esc(title) << "</h1>\n";
}

void Legend(std::ostringstream& o, const std::vector<Column>& cols) {
  o << "<h2>Principal groups</h2><table class=\"legend\"><tr><th>column</th><th>who</th><th>members "
       "(kind/org role/workspace role)</th></tr>\n";
  for (size_t c = 0; c < cols.size(); ++c) {
    std::string members;
    for (const auto& m : cols[c].members) members += (members.empty() ? "" : ", ") + MemberText(m);
    o << "<tr><td>G" << c + 1 << "</td><td>" << Esc(cols[c].label) << "</td><td><code>" << Esc(members)
      << "</code></td></tr>\n";
  }
  o << "</table>\n";
}

}  // namespace

std::string MatrixHtml(const CompiledPolicy& policy, const Matrix& m) {
  std::ostringstream o;
  Page(o, "Policy " + m.policy + " — role × action matrix");
  o << "<p>Revision <code>" << Esc(m.revision) << "</code>. allow = allowed · cond = allowed for some request "
       "parameters · deny = denied. Hover a cell for the deciding rule (at unset request parameters).</p>\n";
  std::vector<Column> cols;
  for (const auto& g : m.groups) {
    Column c{g.label, {}};
    for (const auto& mem : g.members) c.members.emplace_back(mem.kind, mem.org_role, mem.workspace_role);
    cols.push_back(std::move(c));
  }
  Legend(o, cols);
  for (const MatrixSlice& sl : m.slices) {
    o << "<section class=\"slice\" data-type=\"" << Esc(sl.workspace_type) << "\" data-settings=\""
      << Esc(SliceSettings(sl)) << "\"><h2>" << Esc(SliceTitle(sl)) << "</h2><table><tr><th>action</th>";
    for (size_t c = 0; c < cols.size(); ++c) o << "<th title=\"" << Esc(cols[c].label) << "\">G" << c + 1 << "</th>";
    o << "</tr>\n";
    for (size_t a = 0; a < m.actions.size(); ++a) {
      o << "<tr><th class=\"action\">" << Esc(m.actions[a]) << "</th>";
      for (size_t g = 0; g < cols.size(); ++g) {
        const Verdict v = sl.cells[a][g];
        std::string title = RuleAt(policy, m.actions[a], cols[g].members.front(), sl);
        if (v == Verdict::kConditional) title += "; allowed when " + sl.conditions[a][g];
        o << "<td class=\"" << VerdictText(v) << "\" data-action=\"" << Esc(m.actions[a]) << "\" data-group=\""
          << g + 1 << "\" data-verdict=\"" << VerdictText(v) << "\" title=\"" << Esc(title) << "\">"
          << (v == Verdict::kDeny ? "–" : VerdictText(v)) << "</td>";
      }
      o << "</tr>\n";
    }
    o << "</table></section>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

std::string DiffHtml(const CompiledPolicy& before, const CompiledPolicy& after, const PolicyDiff& diff) {
  const Matrix mb = BuildMatrix(before), ma = BuildMatrix(after);
  std::ostringstream o;
  Page(o, "Policy diff: " + after.name() + " " + before.revision().substr(0, 19) + " → " +
              after.revision().substr(0, 19));
  o << "<div class=\"layout\"><div class=\"main\">\n";
  if (!ma.problems.empty() || !mb.problems.empty()) {
    o << "<p>No matrix: " << Esc(ma.problems.empty() ? mb.problems[0] : ma.problems[0]) << "</p>\n";
  }
  // Columns: the groups of both policies refined together.
  std::map<Principal, size_t> old_group;
  for (size_t g = 0; g < mb.groups.size(); ++g)
    for (const auto& mem : mb.groups[g].members) old_group[{mem.kind, mem.org_role, mem.workspace_role}] = g;
  std::vector<Column> cols;
  std::vector<size_t> new_of, old_of;  // per column
  for (size_t g = 0; g < ma.groups.size(); ++g) {
    std::map<size_t, Column> split;  // old group (or SIZE_MAX) → column
    for (const auto& mem : ma.groups[g].members) {
      Principal p{mem.kind, mem.org_role, mem.workspace_role};
      auto it = old_group.find(p);
      split[it == old_group.end() ? SIZE_MAX : it->second].members.push_back(p);
    }
    for (auto& [og, col] : split) {
      col.label = ma.groups[g].label;
      if (split.size() > 1) col.label += og == SIZE_MAX ? " (new principals)" : " (before: " + mb.groups[og].label + ")";
      cols.push_back(std::move(col));
      new_of.push_back(g);
      old_of.push_back(og);
    }
  }
  size_t changed = 0;
  std::ostringstream tables;
  for (const MatrixSlice& sl : ma.slices) {
    // The old slices this one covers: same type, same value of every setting both read.
    std::vector<const MatrixSlice*> olds;
    for (const MatrixSlice& ob : mb.slices) {
      if (ob.workspace_type != sl.workspace_type) continue;
      bool match = true;
      for (const auto& [name, on] : ob.settings)
        for (const auto& [n2, on2] : sl.settings)
          if (name == n2 && on != on2) match = false;
      if (match) olds.push_back(&ob);
    }
    tables << "<section class=\"slice\" data-type=\"" << Esc(sl.workspace_type) << "\" data-settings=\""
           << Esc(SliceSettings(sl)) << "\"><h2>" << Esc(SliceTitle(sl)) << "</h2><table><tr><th>action</th>";
    for (size_t c = 0; c < cols.size(); ++c)
      tables << "<th title=\"" << Esc(cols[c].label) << "\">G" << c + 1 << "</th>";
    tables << "</tr>\n";
    for (size_t a = 0; a < ma.actions.size(); ++a) {
      const std::string& action = ma.actions[a];
      size_t oa = SIZE_MAX;
      for (size_t i = 0; i < mb.actions.size(); ++i)
        if (mb.actions[i] == action) oa = i;
      tables << "<tr><th class=\"action\">" << Esc(action) << "</th>";
      for (size_t c = 0; c < cols.size(); ++c) {
        const Verdict v = sl.cells[a][new_of[c]];
        const std::string& cond = sl.conditions[a][new_of[c]];
        // Old verdicts over the covered old slices.
        std::set<std::string> old_texts;
        // Cells of an action, principal or workspace type the old policy lacks
        // are "added" (policy diff names them in its notes), not changed.
        const bool added = olds.empty() || oa == SIZE_MAX || old_of[c] == SIZE_MAX;
        bool differs = false;
        for (const MatrixSlice* ob : olds) {
          if (oa == SIZE_MAX || old_of[c] == SIZE_MAX) break;
          const Verdict ov = ob->cells[oa][old_of[c]];
          const std::string& ocond = ob->conditions[oa][old_of[c]];
          old_texts.insert(VerdictText(ov) + (ov == Verdict::kConditional ? " when " + ocond : ""));
          if (ov != v || (v == Verdict::kConditional && ocond != cond)) differs = true;
        }
        const Principal& rep = cols[c].members.front();
        std::string title = "after: " + RuleAt(after, action, rep, sl);
        if (v == Verdict::kConditional) title += " (allowed when " + cond + ")";
        std::string old_text;
        for (const auto& t : old_texts) {
          if (!old_text.empty()) old_text += " | ";
          old_text += t;
        }
        if (differs) {
          ++changed;
          std::string before_rule = oa == SIZE_MAX ? "" : RuleAt(before, action, rep, sl);
          title = "before: " + (old_text.empty() ? std::string("(not in the old policy)") : old_text) +
                  (before_rule.empty() ? "" : " — " + before_rule) + "\n" + title;
        }
        std::string members;
        for (const auto& mem : cols[c].members) {
          if (!members.empty()) members += ';';
          members += MemberText(mem);
        }
        tables << "<td class=\"" << VerdictText(v) << (differs ? " changed" : added ? " added" : "") << "\" data-action=\""
               << Esc(action) << "\" data-group=\"" << c + 1 << "\" data-members=\"" << Esc(members)
               << "\" data-verdict=\"" << VerdictText(v) << "\"";
        if (added) tables << " data-before=\"\"";
        if (differs) tables << " data-before=\"" << Esc(old_text) << "\"";
        tables << " title=\"" << Esc(title) << "\">";
        if (differs) {
          std::string ob = old_texts.size() == 1 ? old_text.substr(0, old_text.find(' ')) : "mixed";
          tables << Esc(ob.empty() ? "none" : ob) << " → " << VerdictText(v);
        } else if (added) {
          tables << "new: " << VerdictText(v);
        } else {
          tables << (v == Verdict::kDeny ? "–" : VerdictText(v));
        }
        tables << "</td>";
      }
      tables << "</tr>\n";
    }
    tables << "</table></section>\n";
  }
  o << "<p id=\"summary\" data-changed=\"" << changed << "\">" << changed
    << " changed cells, highlighted (dashed: cells of actions, principals or workspace types the old policy did not have); hover a cell for the rules that decided it before and after. <span "
       "id=\"rendered\"></span></p>\n";
  std::vector<Column> legend = cols;
  Legend(o, legend);
  o << tables.str() << "</div>\n<aside class=\"side\"><h2>Changes (<code>policy diff</code>)</h2>\n";
  if (diff.equal()) o << "<p>No semantic difference.</p>\n";
  if (!diff.notes.empty()) {
    o << "<ul id=\"notes\">";
    for (const auto& n : diff.notes) o << "<li>" << Esc(n) << "</li>";
    o << "</ul>\n";
  }
  o << "<ol id=\"changes\">\n";
  for (const auto& c : diff.changes)
    o << "<li data-action=\"" << Esc(c.action) << "\"><code>" << Esc(c.action) << "</code>"
      << (c.condition.empty() ? "" : ": " + Esc(c.condition)) << ": " << Esc(c.from) << " → " << Esc(c.to)
      << "</li>\n";
  o << "</ol>\n";
  for (const auto& p : diff.problems) o << "<p>Not compared: " << Esc(p) << "</p>\n";
  o << "</aside></div></body></html>\n";
  return o.str();
}

}  // namespace gatehouse::cli
