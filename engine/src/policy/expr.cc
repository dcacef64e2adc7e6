#include "policy/expr.h"

#include <cctype>
#include <charconv>
#include <optional>

namespace gatehouse::internal {
namespace {

enum class Tok { kIdent, kInt, kOp, kLParen, kRParen, kLBracket, kRBracket, kComma, kEnd, kBad };

struct Token {
  Tok kind = Tok::kEnd;
  std::string_view text;
  size_t offset = 0;
  int64_t int_value = 0;
};

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

// Past this many errors in one expression the rest is not worth reading
// (and a megabyte of '@' must not become a million messages).
constexpr size_t kMaxExprErrors = 10;

std::vector<Token> Tokenize(std::string_view s, std::vector<ExprError>* errors) {
  std::vector<Token> out;
  size_t i = 0;
  const size_t first_error = errors->size();
  while (i < s.size()) {
    if (errors->size() - first_error >= kMaxExprErrors) break;
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    Token t;
    t.offset = i;
    if (IsIdentStart(c)) {
      size_t j = i;
      while (j < s.size() && IsIdentChar(s[j])) ++j;
      t.kind = Tok::kIdent;
      t.text = s.substr(i, j - i);
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '-' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i + 1;
      while (j < s.size() && std::isalnum(static_cast<unsigned char>(s[j]))) ++j;
      t.text = s.substr(i, j - i);
      i = j;
      // An integer, or a duration ("30d") meaning seconds.
      int64_t v = 0;
      auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
      if (ec == std::errc() && p == t.text.data() + t.text.size()) {
        t.kind = Tok::kInt;
        t.int_value = v;
      } else if (auto d = ParseDuration(t.text)) {
        t.kind = Tok::kInt;
        t.int_value = *d;
      } else {
        t.kind = Tok::kBad;
        errors->push_back({t.offset, "malformed number or duration " + Quote(t.text)});
      }
    } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',') {
      t.kind = c == '(' ? Tok::kLParen : c == ')' ? Tok::kRParen : c == '[' ? Tok::kLBracket
             : c == ']' ? Tok::kRBracket : Tok::kComma;
      t.text = s.substr(i, 1);
      ++i;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
      bool two = i + 1 < s.size() && s[i + 1] == '=';
      t.text = s.substr(i, two ? 2 : 1);
      i += two ? 2 : 1;
      if (t.text == "=" || t.text == "!") {
        t.kind = Tok::kBad;
        errors->push_back({t.offset, "unknown operator " + Quote(t.text) +
                                         " (use ==, !=, <, <=, >, >=, in, and, or, not)"});
      } else {
        t.kind = Tok::kOp;
      }
    } else if (c == '&' || c == '|') {
      size_t j = i;
      while (j < s.size() && s[j] == c) ++j;
      t.kind = Tok::kBad;
      t.text = s.substr(i, j - i);
      errors->push_back({i, "unknown operator " + Quote(t.text) + " (write " +
                                (c == '&' ? "'and'" : "'or'") + ")"});
      i = j;
    } else {
      t.kind = Tok::kBad;
      // One character, not one byte: a UTF-8 sequence is quoted whole.
      size_t j = i + 1;
      while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xc0) == 0x80 && j - i < 4) ++j;
      t.text = s.substr(i, j - i);
      errors->push_back({i, "unexpected character " + Quote(t.text)});
      i = j;
    }
    out.push_back(t);
  }
  Token end;
  end.kind = Tok::kEnd;
  end.offset = s.size();
  out.push_back(end);
  return out;
}

const char* TypeNoun(ValueType t) {
  switch (t) {
    case ValueType::kKind: return "a principal kind (user, api_user)";
    case ValueType::kOrgRole: return "an organization role";
    case ValueType::kWorkspaceRole: return "a workspace role";
    case ValueType::kWorkspaceType: return "a workspace type";
    case ValueType::kBool: return "a boolean";
    case ValueType::kInt: return "an integer";
  }
  return "?";
}

bool Ranked(ValueType t) {
  return t == ValueType::kOrgRole || t == ValueType::kWorkspaceRole || t == ValueType::kInt;
}

std::string JoinNames(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// A term: an attribute or a literal, before typing.
struct Term {
  bool is_attr = false;
  Attr attr;
  Token tok;  // the literal's token, or the attribute's
};

class Parser {
 public:
  Parser(std::string_view text, const PolicyModel& m, const ActionModel& a,
         std::vector<ExprError>* errors)
      : m_(m), a_(a), errors_(errors), start_(errors->size()), toks_(Tokenize(text, errors)) {}

  std::unique_ptr<Expr> Parse() {
    const size_t before = start_;  // tokenizer errors count too
    if (toks_.front().kind == Tok::kEnd) {
      Error(0, "empty expression");
      return nullptr;
    }
    auto e = ParseOr();
    if (errors_->size() == before && Peek().kind != Tok::kEnd) {
      Error(Peek().offset, "unexpected " + Quote(Peek().text) + " after a complete condition");
    }
    if (errors_->size() != before) return nullptr;
    return e;
  }

 private:
  const Token& Peek() const { return toks_[pos_]; }
  const Token& Next() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }
  bool IsWord(const Token& t, std::string_view w) const { return t.kind == Tok::kIdent && t.text == w; }
  void Error(size_t offset, std::string msg) {
    failed_ = true;
    // One message per offset keeps cascades out of the report; a few are
    // enough to fix the expression.
    if (errors_->size() - start_ >= kMaxExprErrors) return;
    for (size_t i = start_; i < errors_->size(); ++i)
      if ((*errors_)[i].offset == offset) return;
    errors_->push_back({offset, std::move(msg)});
  }

  // Parsing stops at the first nesting error: the rest of the text would be
  // read at the wrong level anyway.
  bool Stop() const { return too_deep_ || errors_->size() - start_ >= kMaxExprErrors; }

  // `x or y or z` is one n-ary node (a chain costs no depth).
  std::unique_ptr<Expr> ParseChain(Expr::Op op, const char* word) {
    auto first = op == Expr::Op::kOr ? ParseChain(Expr::Op::kAnd, "and") : ParseUnary();
    if (!IsWord(Peek(), word)) return first;
    auto e = std::make_unique<Expr>();
    e->op = op;
    bool ok = first != nullptr;
    e->args.push_back(std::move(first));
    while (!Stop() && IsWord(Peek(), word)) {
      Next();
      auto next = op == Expr::Op::kOr ? ParseChain(Expr::Op::kAnd, "and") : ParseUnary();
      ok = ok && next != nullptr;
      e->args.push_back(std::move(next));
    }
    return ok && !Stop() ? std::move(e) : nullptr;
  }

  std::unique_ptr<Expr> ParseOr() { return ParseChain(Expr::Op::kOr, "or"); }

  // Entering a parenthesis or a `not`: false (with an error) past the limit.
  bool Enter(size_t offset) {
    if (++depth_ <= kMaxExprDepth) return true;
    if (!too_deep_) {
      Error(offset, "expression nested too deeply: at most " + std::to_string(kMaxExprDepth) +
                        " levels of parentheses and 'not'");
    }
    too_deep_ = true;
    return false;
  }

  std::unique_ptr<Expr> ParseUnary() {
    // A run of `not`s is counted here, without recursing once per `not`.
    size_t nots = 0;
    while (IsWord(Peek(), "not")) {
      if (!Enter(Peek().offset)) {
        depth_ -= static_cast<int>(nots) + 1;
        return nullptr;
      }
      Next();
      ++nots;
    }
    auto e = ParsePrimary();
    depth_ -= static_cast<int>(nots);
    if (!e) return nullptr;
    for (size_t i = 0; i < nots; ++i) {
      auto n = std::make_unique<Expr>();
      n->op = Expr::Op::kNot;
      n->a = std::move(e);
      e = std::move(n);
    }
    return e;
  }

  std::unique_ptr<Expr> ParsePrimary() {
    if (Stop()) return nullptr;
    const Token& t = Peek();
    if (t.kind == Tok::kLParen) {
      if (!Enter(t.offset)) {
        --depth_;
        return nullptr;
      }
      Next();
      auto e = ParseOr();
      --depth_;
      if (Stop()) return nullptr;
      if (Peek().kind != Tok::kRParen) {
        if (!failed_) Error(Peek().offset, Peek().kind == Tok::kEnd ? "missing ')'" : "expected ')' here");
        return nullptr;
      }
      Next();
      return e;
    }
    if (t.kind == Tok::kEnd) {
      Error(t.offset, "expression ends where a condition is expected");
      return nullptr;
    }
    if (t.kind == Tok::kBad) {
      Next();
      return nullptr;
    }
    if (t.kind != Tok::kIdent && t.kind != Tok::kInt) {
      Error(t.offset, "expected a condition, found " + Quote(t.text));
      Next();
      return nullptr;
    }
    if (IsWord(t, "and") || IsWord(t, "or") || IsWord(t, "in")) {
      Error(t.offset, "expected a condition before " + Quote(t.text));
      Next();
      return nullptr;
    }
    std::optional<Term> lhs = ParseTerm();
    if (!lhs) return nullptr;
    const Token& op = Peek();
    if (op.kind == Tok::kOp) {
      Next();
      if (Peek().kind != Tok::kIdent && Peek().kind != Tok::kInt) {
        Error(Peek().offset, Peek().kind == Tok::kEnd
                                 ? "expression ends after '" + std::string(op.text) + "'"
                                 : "expected a value after '" + std::string(op.text) + "'");
        return nullptr;
      }
      std::optional<Term> rhs = ParseTerm();
      if (!rhs) return nullptr;
      return Comparison(*lhs, op, *rhs);
    }
    if (IsWord(op, "in") || (IsWord(op, "not") && IsWord(toks_[pos_ + 1], "in"))) {
      bool negate = IsWord(op, "not");
      if (negate) Next();
      Next();
      auto e = InList(*lhs);
      if (!e || !negate) return e;
      auto n = std::make_unique<Expr>();
      n->op = Expr::Op::kNot;
      n->a = std::move(e);
      return n;
    }
    return Bare(*lhs);
  }

  // An attribute reference or a literal token.
  std::optional<Term> ParseTerm() {
    Token t = Next();
    Term term;
    term.tok = t;
    if (t.kind == Tok::kInt) return term;
    std::string_view s = t.text;
    auto dot = s.find('.');
    std::string_view head = dot == std::string_view::npos ? s : s.substr(0, dot);
    if (dot == std::string_view::npos ||
        !(head == "principal" || head == "workspace" || head == "settings" || head == "request")) {
      if (dot != std::string_view::npos) {
        Error(t.offset, "unknown attribute " + Quote(s) +
                            " (attributes start with principal., workspace., settings. or request.)");
        return std::nullopt;
      }
      return term;  // a literal name, typed by the other side
    }
    std::string_view rest = s.substr(dot + 1);
    term.is_attr = true;
    if (head == "principal") {
      if (rest == "kind") term.attr = {AttrKind::kPrincipalKind, 0};
      else if (rest == "org_role") term.attr = {AttrKind::kOrgRole, 0};
      else if (rest == "workspace_role") term.attr = {AttrKind::kWorkspaceRole, 0};
      else {
        Error(t.offset, "unknown attribute " + Quote(s) +
                            " (principal has kind, org_role, workspace_role)");
        return std::nullopt;
      }
    } else if (head == "workspace") {
      if (rest == "type") term.attr = {AttrKind::kWorkspaceType, 0};
      else {
        Error(t.offset, "unknown attribute " + Quote(s) + " (workspace has type)");
        return std::nullopt;
      }
    } else if (head == "settings") {
      bool found = false;
      for (size_t i = 0; i < m_.settings.size(); ++i) {
        if (m_.settings[i].name == rest) {
          term.attr = {AttrKind::kSetting, static_cast<uint16_t>(i)};
          found = true;
        }
      }
      if (!found) {
        std::vector<std::string> names;
        for (const auto& st : m_.settings) names.push_back(st.name);
        Error(t.offset, "unknown setting " + Quote(rest) + " (declared: " +
                            (names.empty() ? std::string("none") : JoinNames(names)) + ")");
        return std::nullopt;
      }
    } else {
      bool found = false;
      for (size_t i = 0; i < a_.params.size(); ++i) {
        if (a_.params[i].name == rest) {
          term.attr = {AttrKind::kParam, static_cast<uint16_t>(i)};
          found = true;
        }
      }
      if (!found) {
        Error(t.offset, "unknown request parameter " + Quote(rest) + ": declare it in actions." +
                            a_.name + ".params");
        return std::nullopt;
      }
    }
    return term;
  }

  // Resolves a literal token in the domain of `type`.
  std::optional<int64_t> Literal(const Token& t, ValueType type, const std::string& attr_name) {
    auto lookup = [&](const std::vector<std::string>& names, const char* what) -> std::optional<int64_t> {
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == t.text) return static_cast<int64_t>(i);
      std::string hint;
      if (IsOtherDomainName(t.text, type))
        hint = "type mismatch: " + attr_name + " is " + TypeNoun(type) + ", " + Quote(t.text) + " is not";
      else
        hint = std::string("unknown ") + what + " " + Quote(t.text) + " (declared: " +
               JoinNames(names) + ")";
      Error(t.offset, hint);
      return std::nullopt;
    };
    if (t.kind == Tok::kInt && type != ValueType::kInt) {
      Error(t.offset, "type mismatch: " + attr_name + " is " + TypeNoun(type) + ", not an integer");
      return std::nullopt;
    }
    switch (type) {
      case ValueType::kKind:
        if (t.text == "user") return 0;
        if (t.text == "api_user") return 1;
        if (IsOtherDomainName(t.text, type)) {
          Error(t.offset, "type mismatch: " + attr_name + " is " + TypeNoun(type) + ", '" +
                              std::string(t.text) + "' is not");
        } else {
          Error(t.offset, "unknown principal kind " + Quote(t.text) + " (user, api_user)");
        }
        return std::nullopt;
      case ValueType::kOrgRole: return lookup(m_.org_roles, "organization role");
      case ValueType::kWorkspaceRole: return lookup(m_.ws_roles, "workspace role");
      case ValueType::kWorkspaceType: return lookup(m_.ws_types, "workspace type");
      case ValueType::kBool:
        if (t.text == "true") return 1;
        if (t.text == "false") return 0;
        Error(t.offset, "type mismatch: " + attr_name + " is a boolean; compare it with true or false");
        return std::nullopt;
      case ValueType::kInt:
        if (t.kind == Tok::kInt) return t.int_value;
        Error(t.offset, "type mismatch: " + attr_name + " is an integer, " + Quote(t.text) + " is not");
        return std::nullopt;
    }
    return std::nullopt;
  }

  bool IsOtherDomainName(std::string_view name, ValueType type) const {
    auto in = [&](const std::vector<std::string>& v) {
      for (const auto& n : v)
        if (n == name) return true;
      return false;
    };
    return (type != ValueType::kOrgRole && in(m_.org_roles)) ||
           (type != ValueType::kWorkspaceRole && in(m_.ws_roles)) ||
           (type != ValueType::kWorkspaceType && in(m_.ws_types)) ||
           (type != ValueType::kKind && (name == "user" || name == "api_user")) ||
           (type != ValueType::kBool && (name == "true" || name == "false"));
  }

  static CmpOp OpOf(std::string_view s) {
    if (s == "==") return CmpOp::kEq;
    if (s == "!=") return CmpOp::kNe;
    if (s == "<") return CmpOp::kLt;
    if (s == "<=") return CmpOp::kLe;
    if (s == ">") return CmpOp::kGt;
    return CmpOp::kGe;
  }

  static CmpOp Flip(CmpOp op) {
    switch (op) {
      case CmpOp::kLt: return CmpOp::kGt;
      case CmpOp::kLe: return CmpOp::kGe;
      case CmpOp::kGt: return CmpOp::kLt;
      case CmpOp::kGe: return CmpOp::kLe;
      default: return op;
    }
  }

  std::unique_ptr<Expr> Comparison(const Term& l, const Token& op_tok, const Term& r) {
    CmpOp op = OpOf(op_tok.text);
    if (!l.is_attr && !r.is_attr) {
      Error(l.tok.offset, "a comparison needs an attribute on one side (e.g. principal.org_role)");
      return nullptr;
    }
    if (l.is_attr && r.is_attr) {
      ValueType lt = AttrType(m_, a_, l.attr), rt = AttrType(m_, a_, r.attr);
      if (lt != rt) {
        Error(r.tok.offset, "type mismatch: " + std::string(l.tok.text) + " is " + TypeNoun(lt) + ", " +
                                std::string(r.tok.text) + " is " + TypeNoun(rt));
        return nullptr;
      }
      if (op != CmpOp::kEq && op != CmpOp::kNe && !Ranked(lt)) {
        Error(op_tok.offset, "'" + std::string(op_tok.text) + "' needs ranked values; " +
                                 std::string(l.tok.text) + " is " + TypeNoun(lt));
        return nullptr;
      }
      if (lt == ValueType::kInt) {
        Error(r.tok.offset, "integers can only be compared with constants");
        return nullptr;
      }
      auto e = std::make_unique<Expr>();
      e->op = Expr::Op::kCmpAttr;
      e->cmp = op;
      e->lhs = l.attr;
      e->rhs = r.attr;
      return e;
    }
    const Term& attr = l.is_attr ? l : r;
    const Term& lit = l.is_attr ? r : l;
    if (!l.is_attr) op = Flip(op);
    ValueType type = AttrType(m_, a_, attr.attr);
    if (op != CmpOp::kEq && op != CmpOp::kNe && !Ranked(type)) {
      Error(op_tok.offset, "'" + std::string(op_tok.text) + "' needs ranked values; " +
                               std::string(attr.tok.text) + " is " + TypeNoun(type));
      return nullptr;
    }
    auto v = Literal(lit.tok, type, std::string(attr.tok.text));
    if (!v) return nullptr;
    auto e = std::make_unique<Expr>();
    e->op = Expr::Op::kCmpConst;
    e->cmp = op;
    e->lhs = attr.attr;
    e->value = *v;
    return e;
  }

  std::unique_ptr<Expr> InList(const Term& l) {
    if (!l.is_attr) {
      Error(l.tok.offset, "'in' needs an attribute on its left");
      return nullptr;
    }
    if (Peek().kind != Tok::kLBracket) {
      Error(Peek().offset, "expected '[' to start a list after 'in'");
      return nullptr;
    }
    Next();
    ValueType type = AttrType(m_, a_, l.attr);
    auto e = std::make_unique<Expr>();
    e->op = Expr::Op::kIn;
    e->lhs = l.attr;
    bool ok = true;
    while (true) {
      const Token& t = Peek();
      if (t.kind == Tok::kRBracket && e->list.empty()) {
        Error(t.offset, "empty list");
        return nullptr;
      }
      if (t.kind != Tok::kIdent && t.kind != Tok::kInt) {
        Error(t.offset, t.kind == Tok::kEnd ? "missing ']'" : "expected a value in the list");
        return nullptr;
      }
      Token v = Next();
      auto val = Literal(v, type, std::string(l.tok.text));
      if (val) e->list.push_back(*val);
      else ok = false;
      if (Peek().kind == Tok::kComma) {
        Next();
        continue;
      }
      if (Peek().kind == Tok::kRBracket) {
        Next();
        break;
      }
      Error(Peek().offset, Peek().kind == Tok::kEnd ? "missing ']'" : "expected ',' or ']'");
      return nullptr;
    }
    return ok ? std::move(e) : nullptr;
  }

  std::unique_ptr<Expr> Bare(const Term& t) {
    auto e = std::make_unique<Expr>();
    if (!t.is_attr) {
      if (t.tok.text == "true" || t.tok.text == "false") {
        e->op = Expr::Op::kConst;
        e->const_value = t.tok.text == "true";
        return e;
      }
      Error(t.tok.offset, Quote(t.tok.text) +
                              " is not a condition: compare an attribute with it");
      return nullptr;
    }
    ValueType type = AttrType(m_, a_, t.attr);
    if (type != ValueType::kBool) {
      Error(t.tok.offset, std::string(t.tok.text) + " is " + TypeNoun(type) +
                              ", not a condition: compare it (e.g. with >=)");
      return nullptr;
    }
    e->op = Expr::Op::kBoolAttr;
    e->lhs = t.attr;
    return e;
  }

  const PolicyModel& m_;
  const ActionModel& a_;
  std::vector<ExprError>* errors_;
  size_t start_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  bool failed_ = false;
  int depth_ = 0;  // parentheses and `not`s open around the current token
  bool too_deep_ = false;
};

}  // namespace

std::unique_ptr<Expr> ParseExpr(std::string_view text, const PolicyModel& model,
                                const ActionModel& action, std::vector<ExprError>* errors) {
  Parser p(text, model, action, errors);
  return p.Parse();
}

}  // namespace gatehouse::internal
