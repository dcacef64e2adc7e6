// The reference model of a policy, for property tests: a random policy
// generator (Gen: YAML text plus the same policy as plain data) and a
// straightforward evaluator of the documented semantics, written apart from
// the engine so that the engine can be checked against it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace gatehouse::reference {

// The reference model: attributes as strings, values as ints.
enum class T { kKind, kOrg, kWs, kType, kBool, kInt };

struct Attr {
  std::string name;  // "principal.org_role", "settings.s1", "request.p0"
  T type;
};

struct Node {
  enum K { kCmp, kIn, kBoolAttr, kConst, kAnd, kOr, kNot } k;
  Attr a, b;           // b for attr-vs-attr
  bool attr_rhs = false;
  std::string op;      // == != < <= > >=
  int64_t v = 0;       // literal
  std::vector<int64_t> list;
  bool negate_in = false;
  bool c = false;
  std::shared_ptr<Node> l, r;
};

struct Rule {
  std::string id;
  bool permit;
  std::shared_ptr<Node> when;
};

struct Param {
  std::string name;
  T type;
};

struct Action {
  std::string name;
  std::vector<Param> params;
  std::vector<Rule> rules;  // declaration order within permit / forbid
};

struct Gen {
  std::mt19937_64 rng;
  int org_n, ws_n, type_n, settings_n;
  std::vector<bool> defaults;
  int64_t max_lifetime = 0;
  std::vector<Action> actions;
  std::set<int64_t> int_constants;

  explicit Gen(uint64_t seed) : rng(seed) {}
  int Rand(int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); }

  std::string OrgName(int64_t i) { return i == 0 ? "none" : "o" + std::to_string(i); }
  std::string WsName(int64_t i) { return i == 0 ? "none" : "w" + std::to_string(i); }
  std::string TypeName(int64_t i) { return "t" + std::to_string(i); }

  int Size(T t) {
    switch (t) {
      case T::kKind: return 2;
      case T::kOrg: return org_n + 1;
      case T::kWs: return ws_n + 1;
      case T::kType: return type_n;
      case T::kBool: return 2;
      case T::kInt: return 0;
    }
    return 0;
  }

  std::string Lit(T t, int64_t v) {
    switch (t) {
      case T::kKind: return v ? "api_user" : "user";
      case T::kOrg: return OrgName(v);
      case T::kWs: return WsName(v);
      case T::kType: return TypeName(v);
      case T::kBool: return v ? "true" : "false";
      case T::kInt: return std::to_string(v);
    }
    return "";
  }

  std::vector<Attr> Attrs(const Action& a) {
    std::vector<Attr> out = {{"principal.kind", T::kKind}, {"principal.org_role", T::kOrg},
                             {"principal.workspace_role", T::kWs}, {"workspace.type", T::kType}};
    for (int i = 0; i < settings_n; ++i) out.push_back({"settings.s" + std::to_string(i), T::kBool});
    for (const auto& p : a.params) out.push_back({"request." + p.name, p.type});
    return out;
  }

  int64_t RandValue(T t) {
    if (t == T::kInt) {
      int64_t v = Rand(7) * 100 - 200;
      int_constants.insert(v);
      return v;
    }
    return Rand(Size(t));
  }

  std::shared_ptr<Node> Atom(const Action& a) {
    auto attrs = Attrs(a);
    const Attr& at = attrs[Rand(static_cast<int>(attrs.size()))];
    auto n = std::make_shared<Node>();
    n->a = at;
    bool ranked = at.type == T::kOrg || at.type == T::kWs || at.type == T::kInt;
    int choice = Rand(10);
    if (at.type == T::kBool && choice < 4) {
      n->k = Node::kBoolAttr;
      return n;
    }
    if (choice == 9) {
      n->k = Node::kConst;
      n->c = Rand(2);
      return n;
    }
    if (choice >= 7 && at.type != T::kBool) {
      n->k = Node::kIn;
      n->negate_in = Rand(3) == 0;
      int len = 1 + Rand(3);
      for (int i = 0; i < len; ++i) n->list.push_back(RandValue(at.type));
      return n;
    }
    n->k = Node::kCmp;
    static const char* kAll[] = {"==", "!=", "<", "<=", ">", ">="};
    n->op = ranked ? kAll[Rand(6)] : kAll[Rand(2)];
    if ((at.type == T::kOrg || at.type == T::kWs) && Rand(5) == 0) {
      // attr vs attr of the same type (a role parameter vs the principal's role)
      for (const auto& other : attrs) {
        if (other.type == at.type && other.name != at.name) {
          n->attr_rhs = true;
          n->b = other;
          return n;
        }
      }
    }
    n->v = RandValue(at.type);
    return n;
  }

  std::shared_ptr<Node> Expr(const Action& a, int depth) {
    if (depth == 0 || Rand(3) == 0) return Atom(a);
    auto n = std::make_shared<Node>();
    int k = Rand(5);
    n->k = k < 2 ? Node::kAnd : k < 4 ? Node::kOr : Node::kNot;
    n->l = Expr(a, depth - 1);
    if (n->k != Node::kNot) n->r = Expr(a, depth - 1);
    return n;
  }

  std::string Render(const Node& n) {
    switch (n.k) {
      case Node::kCmp: return n.a.name + " " + n.op + " " + (n.attr_rhs ? n.b.name : Lit(n.a.type, n.v));
      case Node::kIn: {
        std::string s = n.a.name + (n.negate_in ? " not in [" : " in [");
        for (size_t i = 0; i < n.list.size(); ++i) s += (i ? ", " : "") + Lit(n.a.type, n.list[i]);
        return s + "]";
      }
      case Node::kBoolAttr: return n.a.name;
      case Node::kConst: return n.c ? "true" : "false";
      case Node::kAnd: return "(" + Render(*n.l) + " and " + Render(*n.r) + ")";
      case Node::kOr: return "(" + Render(*n.l) + " or " + Render(*n.r) + ")";
      case Node::kNot: return "not (" + Render(*n.l) + ")";
    }
    return "";
  }

  void Generate() {
    org_n = 1 + Rand(4);
    ws_n = 1 + Rand(3);
    type_n = 1 + Rand(3);
    // Sometimes many settings, so that some actions exceed the dense limit
    // and take the per-rule path.
    settings_n = Rand(4) == 0 ? 14 : Rand(4);
    for (int i = 0; i < settings_n; ++i) defaults.push_back(Rand(2));
    if (Rand(2)) max_lifetime = 100 * (1 + Rand(3));
    int n_actions = 1 + Rand(3);
    for (int i = 0; i < n_actions; ++i) {
      Action a;
      a.name = "act.a" + std::to_string(i);
      int np = Rand(3);
      static const T kParamTypes[] = {T::kInt, T::kOrg, T::kWs, T::kBool};
      for (int p = 0; p < np; ++p) a.params.push_back({"p" + std::to_string(p), kParamTypes[Rand(4)]});
      if (max_lifetime && Rand(2)) a.params.push_back({"lifetime_seconds", T::kInt});
      // Many settings come with many rules, so some actions outgrow one
      // dense table (and stay small enough for the exact diff).
      int nr = settings_n > 8 ? 6 + Rand(6) : 1 + Rand(5);
      for (int r = 0; r < nr; ++r) a.rules.push_back({"r" + std::to_string(r), Rand(3) != 0, nullptr});
      for (auto& r : a.rules) r.when = Expr(a, 3);
      actions.push_back(std::move(a));
    }
  }

  std::string Yaml() {
    std::string y = "gatehouse: v1\npolicy: random\nroles:\n  organization: [";
    for (int i = 1; i <= org_n; ++i) y += (i > 1 ? ", " : "") + OrgName(i);
    y += "]\n  workspace: [";
    for (int i = 1; i <= ws_n; ++i) y += (i > 1 ? ", " : "") + WsName(i);
    y += "]\nworkspace_types: [";
    for (int i = 0; i < type_n; ++i) y += (i ? ", " : "") + TypeName(i);
    y += "]\n";
    if (settings_n) {
      y += "settings:\n";
      for (int i = 0; i < settings_n; ++i)
        y += "  s" + std::to_string(i) + ": {type: bool, default: " + (defaults[i] ? "true" : "false") + "}\n";
    }
    if (max_lifetime) y += "tokens:\n  max_lifetime: " + std::to_string(max_lifetime) + "s\n";
    y += "actions:\n";
    for (const auto& a : actions) {
      y += "  " + a.name + ":\n    description: generated\n";
      if (!a.params.empty()) {
        y += "    params:\n";
        for (const auto& p : a.params) {
          const char* t = p.type == T::kInt ? "int" : p.type == T::kOrg ? "org_role" : p.type == T::kWs ? "workspace_role" : "bool";
          y += "      " + p.name + ": {type: " + t + "}\n";
        }
      }
      for (bool permit : {true, false}) {
        bool any = false;
        for (const auto& r : a.rules) {
          if (r.permit != permit) continue;
          if (!any) y += permit ? "    permit:\n" : "    forbid:\n";
          any = true;
          y += "      - rule: " + r.id + "\n        when: \"" + Render(*r.when) + "\"\n";
        }
      }
    }
    return y;
  }
};

// The reference evaluator.
struct Input {
  int64_t kind, org, ws, type;
  std::vector<int64_t> settings;
  std::map<std::string, int64_t> params;
};

inline int64_t Value(const Attr& a, const Input& in) {
  if (a.name == "principal.kind") return in.kind;
  if (a.name == "principal.org_role") return in.org;
  if (a.name == "principal.workspace_role") return in.ws;
  if (a.name == "workspace.type") return in.type;
  if (a.name.rfind("settings.s", 0) == 0) return in.settings[std::stoi(a.name.substr(10))];
  auto it = in.params.find(a.name.substr(8));
  return it == in.params.end() ? 0 : it->second;
}

inline bool Eval(const Node& n, const Input& in) {
  switch (n.k) {
    case Node::kCmp: {
      int64_t x = Value(n.a, in), y = n.attr_rhs ? Value(n.b, in) : n.v;
      if (n.op == "==") return x == y;
      if (n.op == "!=") return x != y;
      if (n.op == "<") return x < y;
      if (n.op == "<=") return x <= y;
      if (n.op == ">") return x > y;
      return x >= y;
    }
    case Node::kIn: {
      bool found = std::find(n.list.begin(), n.list.end(), Value(n.a, in)) != n.list.end();
      return n.negate_in ? !found : found;
    }
    case Node::kBoolAttr: return Value(n.a, in) != 0;
    case Node::kConst: return n.c;
    case Node::kAnd: return Eval(*n.l, in) && Eval(*n.r, in);
    case Node::kOr: return Eval(*n.l, in) || Eval(*n.r, in);
    case Node::kNot: return !Eval(*n.l, in);
  }
  return false;
}

// Expected (allow, deciding rule) per the documented semantics.
inline std::pair<bool, std::string> Reference(const Gen& g, const Action& a, const Input& in) {
  auto it = in.params.find("lifetime_seconds");
  bool has_cap = g.max_lifetime > 0 && std::any_of(a.params.begin(), a.params.end(),
                                                   [](const Param& p) { return p.name == "lifetime_seconds"; });
  for (const auto& r : a.rules)
    if (!r.permit && Eval(*r.when, in)) return {false, r.id};
  if (has_cap && it != in.params.end() && it->second > g.max_lifetime) return {false, "tokens.max_lifetime"};
  for (const auto& r : a.rules)
    if (r.permit && Eval(*r.when, in)) return {true, r.id};
  for (const auto& r : a.rules)
    if (r.permit) return {false, r.id};
  return {false, ""};
}

}  // namespace gatehouse::reference
