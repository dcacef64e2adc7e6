// Validation: parsed YAML documents → a PolicyModel, every name, type and
// key checked, every problem collected with its position. Knows nothing of
// files (policy/files.h) or of compiling (compile/compiler.h).
#include "policy/validate.h"

#include <algorithm>
#include <map>
#include <set>

#include "policy/expr.h"

namespace gatehouse {
namespace internal {
namespace {

struct Ctx {
  std::vector<PolicyError>* errors;
  void At(const YDoc& d, const YNode& n, std::string msg) {
    errors->push_back({d.file, n.line, n.column, std::move(msg)});
  }
};

// A name as part of a YAML path: as is when short and plain, else quoted.
std::string Shown(const std::string& s) {
  const bool plain = s.size() <= kQuoteLimit && std::all_of(s.begin(), s.end(), [](char c) {
    return c > 0x20 && c < 0x7f && c != '\'';
  });
  return plain ? s : Quote(s);
}

// Where something else was defined: "line L:C" in the same file, else FILE:L:C.
std::string Where(const YDoc& d, const YNode& n) {
  return d.file + ":" + std::to_string(n.line) + ":" + std::to_string(n.column);
}

struct Field {
  const YNode* key = nullptr;
  const YNode* value = nullptr;
};
using Fields = std::map<std::string, Field>;

// Reads a mapping's fields, reporting duplicates, unknown and missing keys.
bool GetFields(Ctx& ctx, const YDoc& d, const YNode& n, const std::string& path,
               const std::vector<std::string>& allowed, const std::vector<std::string>& required,
               Fields* out) {
  if (!n.IsMap()) {
    ctx.At(d, n, path + " must be a mapping");
    return false;
  }
  for (const auto& [k, v] : n.entries) {
    if (!k.IsScalar()) {
      ctx.At(d, k, path + ": keys must be plain names");
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), k.value) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      ctx.At(d, k, "unknown key " + Quote(k.value) + " in " + path + " (expected: " + list + ")");
      continue;
    }
    auto [it, inserted] = out->try_emplace(k.value, Field{&k, &v});
    if (!inserted) ctx.At(d, k, "duplicate key " + Quote(k.value) + " in " + path + " (first at " + Where(d, *it->second.key) + ")");
  }
  bool ok = true;
  for (const auto& r : required) {
    if (!out->count(r)) {
      ctx.At(d, n, "missing required key " + Quote(r) + " in " + path);
      ok = false;
    }
  }
  return ok;
}

std::optional<std::string> Scalar(Ctx& ctx, const YDoc& d, const YNode& n, const std::string& path) {
  if (!n.IsScalar()) {
    ctx.At(d, n, path + " must be a single value" + (n.kind == YNode::Kind::kNull ? " (it is empty)" : ""));
    return std::nullopt;
  }
  return n.value;
}

std::optional<bool> Bool(Ctx& ctx, const YDoc& d, const YNode& n, const std::string& path) {
  auto s = Scalar(ctx, d, n, path);
  if (!s) return std::nullopt;
  if (*s == "true" && !n.quoted) return true;
  if (*s == "false" && !n.quoted) return false;
  ctx.At(d, n, path + " must be true or false, not " + Quote(*s));
  return std::nullopt;
}

std::optional<int> Int(Ctx& ctx, const YDoc& d, const YNode& n, const std::string& path) {
  auto s = Scalar(ctx, d, n, path);
  if (!s) return std::nullopt;
  if (s->empty() || s->size() > 6 || !std::all_of(s->begin(), s->end(), ::isdigit)) {
    ctx.At(d, n, path + " must be a positive integer, not " + Quote(*s));
    return std::nullopt;
  }
  return std::stoi(*s);
}

bool ValidActionName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty() || part[0] < 'a' || part[0] > 'z') return false;
    for (char c : part)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool ValidRuleId(std::string_view s) {
  if (s.empty() || s.size() > 100) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

const std::set<std::string>& Reserved() {
  static const std::set<std::string> k = {"none", "and", "or", "not", "in", "true", "false", "user", "api_user"};
  return k;
}

// A list of declared names (roles, types).
std::vector<std::string> NameList(Ctx& ctx, const YDoc& d, const YNode& n, const std::string& path,
                                  bool allow_reserved_kinds) {
  std::vector<std::string> out;
  if (!n.IsSeq()) {
    ctx.At(d, n, path + " must be a list of names, e.g. [viewer, contributor, admin]");
    return out;
  }
  if (n.items.empty()) ctx.At(d, n, path + " must name at least one value");
  std::map<std::string, const YNode*> seen;
  for (const YNode& item : n.items) {
    auto s = Scalar(ctx, d, item, path + " entry");
    if (!s) continue;
    if (!ValidName(*s)) {
      ctx.At(d, item, "invalid name " + Quote(*s) + " in " + path + " (lower case letters, digits, '_', starting with a letter)");
      continue;
    }
    if (Reserved().count(*s) && !(allow_reserved_kinds && (*s == "user" || *s == "api_user"))) {
      ctx.At(d, item, Quote(*s) + " is reserved and cannot be declared in " + path +
                          (*s == "none" ? " (\"none\" is implicit and ranks below every role)" : ""));
      continue;
    }
    auto [it, inserted] = seen.emplace(*s, &item);
    if (!inserted) {
      ctx.At(d, item, Quote(*s) + " is declared twice in " + path + " (first at " + Where(d, *it->second) + ")");
      continue;
    }
    out.push_back(*s);
  }
  if (out.size() > 250) ctx.At(d, n, path + " declares too many values (at most 250)");
  return out;
}

// Where each top-level piece was defined, across files.
struct Def {
  const YDoc* doc = nullptr;
  const YNode* key = nullptr;
  const YNode* value = nullptr;
};

class Builder {
 public:
  Builder(std::vector<PolicyError>* errors) : ctx_{errors} {}

  bool Build(const std::vector<YDoc>& docs, PolicyModel* m) {
    size_t before = ctx_.errors->size();
    for (const YDoc& d : docs) Gather(d);
    BuildHeader(m);
    BuildActions(m);
    BuildRoutes(m);
    return ctx_.errors->size() == before;
  }

 private:
  void Once(const char* what, const YDoc& d, const Field& f, std::optional<Def>* slot) {
    if (*slot) {
      ctx_.At(d, *f.key, std::string("'") + what + "' is defined twice (also at " +
                             Where(*(*slot)->doc, *(*slot)->key) + ")");
      return;
    }
    *slot = Def{&d, f.key, f.value};
  }

  void Gather(const YDoc& d) {
    if (d.root.kind == YNode::Kind::kNull) {
      ctx_.errors->push_back({d.file, 1, 1, "empty policy file (expected 'gatehouse: v1' and a policy)"});
      return;
    }
    gathered_any_ = true;
    Fields f;
    GetFields(ctx_, d, d.root, "the policy file",
              {"gatehouse", "policy", "roles", "workspace_types", "settings", "tokens", "actions", "routes"},
              {"gatehouse"}, &f);
    if (f.count("gatehouse")) {
      auto v = Scalar(ctx_, d, *f["gatehouse"].value, "gatehouse");
      if (v && *v != "v1") ctx_.At(d, *f["gatehouse"].value, "unsupported format version " + Quote(*v) + " (this Gatehouse reads v1)");
    }
    if (f.count("policy")) Once("policy", d, f["policy"], &policy_);
    if (f.count("roles")) Once("roles", d, f["roles"], &roles_);
    if (f.count("workspace_types")) Once("workspace_types", d, f["workspace_types"], &types_);
    if (f.count("tokens")) Once("tokens", d, f["tokens"], &tokens_);
    if (f.count("settings")) GatherMap(d, *f["settings"].value, "settings", &settings_);
    if (f.count("actions")) GatherMap(d, *f["actions"].value, "actions", &actions_);
    if (f.count("routes")) {
      const YNode& r = *f["routes"].value;
      if (!r.IsSeq()) ctx_.At(d, r, "routes must be a list of {method, path, action}");
      else for (const YNode& item : r.items) routes_.push_back(Def{&d, &item, &item});
    }
  }

  void GatherMap(const YDoc& d, const YNode& n, const std::string& path, std::map<std::string, Def>* out) {
    if (n.kind == YNode::Kind::kNull) return;
    if (!n.IsMap()) {
      ctx_.At(d, n, path + " must be a mapping of names");
      return;
    }
    for (const auto& [k, v] : n.entries) {
      if (!k.IsScalar()) {
        ctx_.At(d, k, path + ": keys must be plain names");
        continue;
      }
      auto [it, inserted] = out->try_emplace(k.value, Def{&d, &k, &v});
      if (!inserted) {
        ctx_.At(d, k, path + "." + Shown(k.value) + " is defined twice (first at " + Where(*it->second.doc, *it->second.key) + ")");
      }
    }
  }

  void BuildHeader(PolicyModel* m) {
    if (!policy_) {
      Missing("policy", "policy: api-tokens");
    } else if (auto v = Scalar(ctx_, *policy_->doc, *policy_->value, "policy")) {
      if (v->empty()) ctx_.At(*policy_->doc, *policy_->value, "policy must name the policy");
      m->name = *v;
    }
    // roles and workspace_types are optional (CONTRACT.md): the seed's.
    m->org_roles = {"none"};
    m->ws_roles = {"none"};
    std::vector<std::string> org = DefaultOrgRoles(), ws = DefaultWorkspaceRoles();
    if (roles_) {
      Fields f;
      const YDoc& d = *roles_->doc;
      if (roles_->value->kind != YNode::Kind::kNull)
        GetFields(ctx_, d, *roles_->value, "roles", {"organization", "workspace"}, {}, &f);
      if (f.count("organization")) org = NameList(ctx_, d, *f["organization"].value, "roles.organization", false);
      if (f.count("workspace")) ws = NameList(ctx_, d, *f["workspace"].value, "roles.workspace", false);
    }
    m->org_roles.insert(m->org_roles.end(), org.begin(), org.end());
    m->ws_roles.insert(m->ws_roles.end(), ws.begin(), ws.end());
    m->ws_types = DefaultWorkspaceTypes();
    if (types_) m->ws_types = NameList(ctx_, *types_->doc, *types_->value, "workspace_types", false);
    for (const auto& [name, def] : settings_) {
      const YDoc& d = *def.doc;
      std::string path = "settings." + name;
      if (!ValidName(name) || Reserved().count(name)) {
        ctx_.At(d, *def.key, "invalid setting name " + Quote(name) + " (lower case letters, digits, '_')");
        continue;
      }
      Fields f;
      if (!GetFields(ctx_, d, *def.value, path, {"type", "default", "description"}, {"type"}, &f)) continue;
      SettingInfo s;
      s.name = name;
      if (auto t = Scalar(ctx_, d, *f["type"].value, path + ".type"); t && *t != "bool") {
        ctx_.At(d, *f["type"].value, "unsupported setting type " + Quote(*t) + " in " + path + ".type (settings are bool)");
      }
      if (f.count("default")) {
        if (auto b = Bool(ctx_, d, *f["default"].value, path + ".default")) s.default_value = *b;
      }
      if (f.count("description")) {
        if (auto t = Scalar(ctx_, d, *f["description"].value, path + ".description")) s.description = *t;
      }
      m->settings.push_back(std::move(s));
    }
    if (m->settings.size() > static_cast<size_t>(kMaxSettings)) {
      const Def& first = settings_.begin()->second;
      ctx_.At(*first.doc, *first.key, "too many settings: " + std::to_string(m->settings.size()) + " (at most " +
                                          std::to_string(kMaxSettings) + ")");
    }
    if (tokens_) {
      Fields f;
      const YDoc& d = *tokens_->doc;
      if (GetFields(ctx_, d, *tokens_->value, "tokens", {"max_lifetime"}, {}, &f) && f.count("max_lifetime")) {
        const YNode& v = *f["max_lifetime"].value;
        if (auto s = Scalar(ctx_, d, v, "tokens.max_lifetime")) {
          auto secs = ParseDuration(*s);
          if (!secs) ctx_.At(d, v, "tokens.max_lifetime must be a duration like 365d (a positive integer and s, m, h, d or w), not " + Quote(*s));
          else m->max_lifetime = *secs;
        }
      }
    }
  }

  void Missing(const std::string& key, const std::string& example) {
    if (!gathered_any_) return;  // every file was empty: that error says it all
    const std::string file = first_file_.empty() ? "<policy>" : first_file_;
    ctx_.errors->push_back({file, 1, 1, "missing required key " + Quote(key) + " (e.g. " + example + ")"});
  }

  static std::optional<ValueType> ParamType(std::string_view s) {
    if (s == "org_role") return ValueType::kOrgRole;
    if (s == "workspace_role") return ValueType::kWorkspaceRole;
    if (s == "int") return ValueType::kInt;
    if (s == "bool") return ValueType::kBool;
    return std::nullopt;
  }

  void BuildActions(PolicyModel* m) {
    // No actions is a policy that denies everything: valid, if useless.
    for (const auto& [name, def] : actions_) {  // std::map: sorted by name, so ActionId is stable
      const YDoc& d = *def.doc;
      const std::string path = "actions." + name;
      if (!ValidActionName(name)) {
        ctx_.At(d, *def.key, "invalid action name " + Quote(name) + " (dot-separated lower-case words, e.g. project.import)");
        continue;
      }
      Fields f;
      GetFields(ctx_, d, *def.value, path, {"description", "params", "permit", "forbid", "on_deny"}, {}, &f);
      ActionModel a;
      a.name = name;
      a.description = name;  // the default (CONTRACT.md)
      a.pos = {d.file, def.key->line, def.key->column};
      if (f.count("description")) {
        if (auto s = Scalar(ctx_, d, *f["description"].value, path + ".description")) a.description = *s;
      }
      if (f.count("params") && f["params"].value->kind != YNode::Kind::kNull) {
        const YNode& pn = *f["params"].value;
        if (!pn.IsMap()) {
          ctx_.At(d, pn, path + ".params must be a mapping NAME: {type: org_role|workspace_role|int|bool}");
        } else {
          std::set<std::string> seen;
          for (const auto& [k, v] : pn.entries) {
            const std::string ppath = path + ".params." + k.value;
            if (!k.IsScalar() || !ValidName(k.value)) {
              ctx_.At(d, k, "invalid parameter name " + Quote(k.value) + " in " + path + ".params");
              continue;
            }
            if (!seen.insert(k.value).second) {
              ctx_.At(d, k, "duplicate key " + Quote(k.value) + " in " + path + ".params");
              continue;
            }
            Fields pf;
            if (!GetFields(ctx_, d, v, ppath, {"type", "description"}, {"type"}, &pf)) continue;
            auto t = Scalar(ctx_, d, *pf["type"].value, ppath + ".type");
            if (!t) continue;
            auto type = ParamType(*t);
            if (!type) {
              ctx_.At(d, *pf["type"].value, "unknown parameter type " + Quote(*t) + " in " + ppath + ".type (org_role, workspace_role, int, bool)");
              continue;
            }
            if (k.value == kLifetimeParam && *type != ValueType::kInt) {
              ctx_.At(d, *pf["type"].value, ppath + ".type must be int: token lifetimes are seconds");
              continue;
            }
            a.params.push_back({k.value, *type});
          }
          if (a.params.size() > static_cast<size_t>(kMaxParams))
            ctx_.At(d, pn, path + ".params: at most " + std::to_string(kMaxParams) + " parameters");
        }
      }
      std::set<std::string> rule_ids;
      std::vector<RuleModel> forbids;  // kept apart: permits first, then forbids (the compiler's order)
      size_t rule_count = 0;
      bool malformed_rules = false;
      for (const char* kind : {"permit", "forbid"}) {
        if (!f.count(kind) || f[kind].value->kind == YNode::Kind::kNull) continue;
        const YNode& list = *f[kind].value;
        const std::string lpath = path + "." + kind;
        if (!list.IsSeq()) {
          ctx_.At(d, list, lpath + " must be a list of {rule, when, message}");
          malformed_rules = true;
          continue;
        }
        rule_count += list.items.size();
        if (rule_count > static_cast<size_t>(kMaxRules)) {
          // Refused before parsing: thousands of rules must not cost time.
          ctx_.At(d, list, path + ": more than " + std::to_string(kMaxRules) +
                               " rules (the implicit tokens.max_lifetime rule included)");
          break;
        }
        const bool permit = std::string(kind) == "permit";
        std::vector<RuleModel>& rules = permit ? a.rules : forbids;
        for (size_t i = 0; i < list.items.size(); ++i) {
          const YNode& rn = list.items[i];
          const std::string rpath = lpath + "[" + std::to_string(i) + "]";
          Fields rf;
          if (!GetFields(ctx_, d, rn, rpath, {"rule", "when", "message"}, {"rule", "when"}, &rf)) continue;
          RuleModel r;
          r.effect = permit ? Effect::kAllow : Effect::kDeny;
          if (auto id = Scalar(ctx_, d, *rf["rule"].value, rpath + ".rule")) {
            if (!ValidRuleId(*id)) {
              ctx_.At(d, *rf["rule"].value, "invalid rule id " + Quote(*id) + " in " + rpath + ".rule (lower case letters, digits, '-', '_')");
            } else if (!rule_ids.insert(*id).second) {
              ctx_.At(d, *rf["rule"].value, "rule id " + Quote(*id) + " is used twice in " + path);
            }
            r.id = *id;
          }
          if (rf.count("message")) {
            if (auto msg = Scalar(ctx_, d, *rf["message"].value, rpath + ".message")) r.message = *msg;
          }
          const YNode& wn = *rf["when"].value;
          r.pos = {d.file, wn.line, wn.column};
          if (auto w = Scalar(ctx_, d, wn, rpath + ".when")) {
            r.when = *w;
            // Parsed after the model's names are known (below).
            pending_.push_back({&d, &wn, m->actions.size(), permit, rules.size(), rpath + ".when"});
          }
          rules.push_back(std::move(r));
        }
      }
      // The rules are the one thing an action must have (CONTRACT.md): an
      // action without any would deny everything, silently; more likely a
      // misplaced or misspelt permit list.
      if (rule_count == 0 && !malformed_rules)
        ctx_.At(d, *def.key, path + " has no rules: give it a permit (or forbid) list with at least one rule");
      const size_t permits = a.rules.size();
      for (RuleModel& r : forbids) a.rules.push_back(std::move(r));
      for (Pending& p : pending_)
        if (p.action == m->actions.size() && !p.permit) p.rule += permits;
      if (f.count("on_deny") && f["on_deny"].value->kind != YNode::Kind::kNull) {
        Fields of;
        if (GetFields(ctx_, d, *f["on_deny"].value, path + ".on_deny", {"graphql"}, {}, &of) && of.count("graphql")) {
          Fields gf;
          const std::string gpath = path + ".on_deny.graphql";
          if (GetFields(ctx_, d, *of["graphql"].value, gpath, {"field", "name", "code", "message", "line", "column"},
                        {"field", "name", "code"}, &gf)) {
            GraphqlTemplate g;
            g.message = kDefaultGraphqlMessage;  // the seed's, when not given
            if (auto s = Scalar(ctx_, d, *gf["field"].value, gpath + ".field")) g.field = *s;
            if (auto s = Scalar(ctx_, d, *gf["name"].value, gpath + ".name")) g.name = *s;
            if (auto s = Scalar(ctx_, d, *gf["code"].value, gpath + ".code")) g.code = *s;
            if (gf.count("message"))
              if (auto s = Scalar(ctx_, d, *gf["message"].value, gpath + ".message")) g.message = *s;
            if (gf.count("line")) if (auto n = Int(ctx_, d, *gf["line"].value, gpath + ".line")) g.line = *n;
            if (gf.count("column")) if (auto n = Int(ctx_, d, *gf["column"].value, gpath + ".column")) g.column = *n;
            a.graphql = g;
          }
        }
      }
      m->actions.push_back(std::move(a));
    }
    for (const Pending& p : pending_) {
      if (p.action >= m->actions.size() || p.rule >= m->actions[p.action].rules.size()) continue;
      ActionModel& a = m->actions[p.action];
      RuleModel* rule = &a.rules[p.rule];
      std::vector<ExprError> errs;
      rule->expr = ParseExpr(rule->when, *m, a, &errs);
      for (const ExprError& e : errs) {
        auto [line, col] = p.doc->PosInScalar(*p.node, e.offset);
        ctx_.errors->push_back({p.doc->file, line, col, e.message + " (in " + p.path + ")"});
      }
    }
    // The cap on token lifetimes, whatever the rules say.
    if (m->max_lifetime > 0) {
      for (ActionModel& a : m->actions) {
        for (size_t i = 0; i < a.params.size(); ++i) {
          if (a.params[i].name != kLifetimeParam || a.params[i].type != ValueType::kInt) continue;
          RuleModel r;
          r.id = kMaxLifetimeRule;
          r.effect = Effect::kDeny;
          r.when = std::string("request.") + kLifetimeParam + " > " + FormatDuration(m->max_lifetime);
          r.message = "token lifetime exceeds tokens.max_lifetime (" + FormatDuration(m->max_lifetime) + ")";
          r.pos = a.pos;
          r.expr = std::make_unique<Expr>();
          r.expr->op = Expr::Op::kCmpConst;
          r.expr->cmp = CmpOp::kGt;
          r.expr->lhs = {AttrKind::kParam, static_cast<uint16_t>(i)};
          r.expr->value = m->max_lifetime;
          a.rules.push_back(std::move(r));
        }
      }
    }
  }

  void BuildRoutes(PolicyModel* m) {
    std::map<std::string, const YNode*> shapes;
    for (const Def& def : routes_) {
      const YDoc& d = *def.doc;
      const YNode& n = *def.value;
      const std::string path = "routes[" + std::to_string(&def - routes_.data()) + "]";
      Fields f;
      if (!GetFields(ctx_, d, n, path, {"method", "path", "action"}, {"method", "path", "action"}, &f)) continue;
      RouteModel r;
      bool ok = true;
      if (auto s = Scalar(ctx_, d, *f["method"].value, path + ".method")) {
        bool valid = *s == "*" || (!s->empty() && std::all_of(s->begin(), s->end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
        if (!valid) {
          ctx_.At(d, *f["method"].value, "invalid HTTP method " + Quote(*s) + " in " + path + ".method (upper case, e.g. POST, or *)");
          ok = false;
        }
        r.method = *s;
      } else ok = false;
      if (auto s = Scalar(ctx_, d, *f["path"].value, path + ".path")) {
        r.path = *s;
        ok = ParsePath(d, *f["path"].value, path + ".path", &r) && ok;
      } else ok = false;
      if (auto s = Scalar(ctx_, d, *f["action"].value, path + ".action")) {
        auto it = std::find_if(m->actions.begin(), m->actions.end(), [&](const ActionModel& a) { return a.name == *s; });
        if (it == m->actions.end()) {
          ctx_.At(d, *f["action"].value, "unknown action " + Quote(*s) + " in " + path + ".action");
          ok = false;
        } else {
          r.action = static_cast<ActionId>(it - m->actions.begin());
        }
      } else ok = false;
      if (!ok) continue;
      std::string shape = r.method + " ";
      for (const auto& seg : r.segments) shape += "/" + (seg.placeholder.empty() ? seg.literal : std::string("{}"));
      auto [it, inserted] = shapes.emplace(shape, &n);
      if (!inserted) {
        ctx_.At(d, n, path + " matches the same requests as the route at " + Where(d, *it->second));
        continue;
      }
      m->routes.push_back(std::move(r));
    }
  }

  bool ParsePath(const YDoc& d, const YNode& n, const std::string& path, RouteModel* r) {
    const std::string& p = r->path;
    if (p.empty() || p[0] != '/') {
      ctx_.At(d, n, path + " must start with '/'");
      return false;
    }
    std::set<std::string> names;
    size_t start = 1;
    while (true) {
      size_t slash = p.find('/', start);
      std::string seg = p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      auto bad = [&](const std::string& msg) {
        // Found only on an error: walking the scalar per segment is quadratic.
        const auto [line, col] = d.PosInScalar(n, start);
        ctx_.errors->push_back({d.file, line, col, msg + " (in " + path + ")"});
        return false;
      };
      if (seg.empty() && slash != std::string::npos) return bad("empty path segment");
      if (!seg.empty() && seg.front() == '{') {
        if (seg.back() != '}' || seg.size() < 3) return bad("malformed placeholder " + Quote(seg) + " (write {name})");
        std::string name = seg.substr(1, seg.size() - 2);
        if (!ValidName(name)) return bad("invalid placeholder name " + Quote(name));
        if (!names.insert(name).second) return bad("placeholder {" + name + "} appears twice");
        if (name == "workspace") r->workspace_segment = static_cast<int>(r->segments.size());
        r->segments.push_back({"", name});
      } else {
        if (seg.find_first_of("{}?#% ") != std::string::npos) return bad("malformed path segment " + Quote(seg));
        r->segments.push_back({seg, ""});
      }
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return true;
  }

 public:
  std::string first_file_;

 private:
  struct Pending {
    const YDoc* doc;
    const YNode* node;
    size_t action;  // index into the model's actions
    bool permit;
    size_t rule;    // index into the action's rules (permits first)
    std::string path;
  };
  Ctx ctx_;
  std::optional<Def> policy_, roles_, types_, tokens_;
  std::map<std::string, Def> settings_, actions_;
  std::vector<Def> routes_;
  std::vector<Pending> pending_;
  bool gathered_any_ = false;
};

}  // namespace

const std::vector<std::string>& DefaultOrgRoles() {
  static const std::vector<std::string> k = {"viewer", "contributor", "admin", "owner"};
  return k;
}
const std::vector<std::string>& DefaultWorkspaceRoles() {
  static const std::vector<std::string> k = {"viewer", "contributor", "admin"};
  return k;
}
const std::vector<std::string>& DefaultWorkspaceTypes() {
  static const std::vector<std::string> k = {"personal", "organization", "shared"};
  return k;
}

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 64 || s[0] < 'a' || s[0] > 'z') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

bool BuildModel(const std::vector<YDoc>& docs, PolicyModel* model, std::vector<PolicyError>* errors) {
  Builder b(errors);
  if (!docs.empty()) b.first_file_ = docs.front().file;
  return b.Build(docs, model);
}

void SortErrors(std::vector<PolicyError>* errors) {
  auto key = [](const PolicyError& e) { return std::tie(e.file, e.line, e.column, e.message); };
  std::sort(errors->begin(), errors->end(), [&](const PolicyError& a, const PolicyError& b) { return key(a) < key(b); });
  errors->erase(std::unique(errors->begin(), errors->end(),
                            [&](const PolicyError& a, const PolicyError& b) { return key(a) == key(b); }),
                errors->end());
}

}  // namespace internal
}  // namespace gatehouse
