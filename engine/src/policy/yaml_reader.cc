// The only yaml-cpp include in the project.
#include "policy/yaml_reader.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <sstream>

namespace gatehouse::internal {

std::pair<int, int> YDoc::LineCol(size_t byte) const {
  auto it = std::upper_bound(line_starts.begin(), line_starts.end(), byte);
  size_t line = static_cast<size_t>(it - line_starts.begin());  // 1-based
  size_t start = line_starts[line - 1];
  return {static_cast<int>(line), static_cast<int>(byte - start + 1)};
}

std::pair<int, int> YDoc::PosInScalar(const YNode& n, size_t offset) const {
  size_t j = n.offset;
  if (j < text.size() && (text[j] == '"' || text[j] == '\'')) {
    ++j;
  } else if (j < text.size() && (text[j] == '|' || text[j] == '>')) {
    while (j < text.size() && text[j] != '\n') ++j;
  }
  // Walk the value and the source together; whitespace runs in the source
  // (folded newlines, indentation) stand for at most one value character.
  const std::string& v = n.value;
  for (size_t i = 0; i < offset && i < v.size() && j < text.size(); ++i) {
    while (j < text.size() && text[j] != v[i] && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j < text.size() && text[j] == v[i]) ++j;
  }
  if (offset < v.size()) {
    while (j < text.size() && text[j] != v[offset] && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
  }
  return LineCol(std::min(j, text.size()));
}

namespace {

void Convert(const YAML::Node& in, const YDoc& doc, int line, int col, size_t off, YNode* out) {
  const YAML::Mark m = in.Mark();
  if (m.line >= 0 && m.pos >= 0) {
    out->offset = static_cast<size_t>(m.pos);
    auto [l, c] = doc.LineCol(out->offset);
    out->line = l;
    out->column = c;
  } else {
    out->line = line;
    out->column = col;
    out->offset = off;
  }
  switch (in.Type()) {
    case YAML::NodeType::Scalar:
      out->kind = YNode::Kind::kScalar;
      out->value = in.Scalar();
      out->quoted = in.Tag() == "!";
      break;
    case YAML::NodeType::Sequence:
      out->kind = YNode::Kind::kSeq;
      for (const auto& item : in) {
        YNode child;
        Convert(item, doc, out->line, out->column, out->offset, &child);
        out->items.push_back(std::move(child));
      }
      break;
    case YAML::NodeType::Map:
      out->kind = YNode::Kind::kMap;
      for (const auto& kv : in) {
        YNode k, v;
        Convert(kv.first, doc, out->line, out->column, out->offset, &k);
        Convert(kv.second, doc, k.line, k.column, k.offset, &v);
        out->entries.push_back(YEntry{std::move(k), std::move(v)});
      }
      break;
    default:
      out->kind = YNode::Kind::kNull;
      break;
  }
}

// The 1-based line of a document separator ("---" or "...") that follows
// content, or 0. Separators start a line; block scalar content is indented.
int SecondDocumentLine(const std::string& text) {
  bool content = false;
  int line = 1;
  for (size_t i = 0; i < text.size(); ++line) {
    size_t end = text.find('\n', i);
    if (end == std::string::npos) end = text.size();
    std::string_view l(text.data() + i, end - i);
    const bool separator = (l.starts_with("---") || l.starts_with("...")) &&
                           (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
    if (separator && content) return line;
    if (!separator) {
      size_t first = l.find_first_not_of(" \t\r");
      if (first != std::string_view::npos && l[first] != '#') content = true;
    }
    i = end + 1;
  }
  return 0;
}

// Thrown by the scan to stop the parser at the first refused construct.
struct Refused {
  size_t pos;
  std::string message;
};

// Reads the event stream without building a tree: anchors, aliases, depth
// and node count are checked before yaml-cpp expands anything.
class Scan : public YAML::EventHandler {
 public:
  explicit Scan(YamlBudget* budget) : budget_(budget) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { Node(mark, anchor); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    Refuse(mark, "YAML aliases (*name) are not allowed in a policy: write the value out");
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string&) override {
    Node(mark, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, anchor);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, anchor);
  }
  void OnMapEnd() override { --depth_; }
  void OnAnchor(const YAML::Mark& mark, const std::string&) override { Anchor(mark); }

 private:
  [[noreturn]] static void Refuse(const YAML::Mark& mark, std::string message) {
    throw Refused{mark.pos > 0 ? static_cast<size_t>(mark.pos) : 0, std::move(message)};
  }
  static void Anchor(const YAML::Mark& mark) {
    Refuse(mark, "YAML anchors (&name) are not allowed in a policy: write the value out");
  }
  void Node(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) Anchor(mark);
    if (budget_->nodes_left == 0)
      Refuse(mark, "too many YAML nodes: a policy holds at most " + std::to_string(kMaxYamlNodes) +
                       " values, lists and mappings");
    --budget_->nodes_left;
  }
  void Open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    Node(mark, anchor);
    if (++depth_ > kMaxYamlDepth)
      Refuse(mark, "YAML nested too deeply: at most " + std::to_string(kMaxYamlDepth) +
                       " levels of lists and mappings");
  }

  YamlBudget* budget_;
  int depth_ = 0;
};

}  // namespace

bool ReadYaml(const std::string& file, std::string text, YDoc* doc, std::vector<PolicyError>* errors,
              YamlBudget* budget) {
  YamlBudget fresh;
  if (budget == nullptr) budget = &fresh;
  doc->file = file;
  doc->text = std::move(text);
  doc->line_starts = {0};
  for (size_t i = 0; i < doc->text.size(); ++i)
    if (doc->text[i] == '\n') doc->line_starts.push_back(i + 1);
  try {
    // One document only. YAML::LoadAll is not used: on some malformed input
    // yaml-cpp 0.7 never stops producing empty documents (found by
    // fuzz_policy). A second document is almost always a stray "---"; refuse
    // it rather than guess.
    if (int line = SecondDocumentLine(doc->text); line > 0) {
      errors->push_back({file, line, 1, "a policy file holds one YAML document; remove this separator"});
      return false;
    }
    {
      std::istringstream in(doc->text);
      YAML::Parser parser(in);
      Scan scan(budget);
      parser.HandleNextDocument(scan);
    }
    YAML::Node root = YAML::Load(doc->text);
    Convert(root, *doc, 1, 1, 0, &doc->root);
    return true;
  } catch (const Refused& r) {
    auto [line, col] = doc->LineCol(std::min(r.pos, doc->text.size()));
    errors->push_back({file, line, col, r.message});
    return false;
  } catch (const YAML::Exception& e) {
    int line = e.mark.line + 1, col = e.mark.column + 1;
    // Some errors at the end of input carry 0:0 with a real byte offset.
    if (e.mark.line <= 0 && e.mark.column <= 0 && e.mark.pos > 0) {
      auto [l, c] = doc->LineCol(std::min(static_cast<size_t>(e.mark.pos), doc->text.size()));
      line = l;
      col = c;
    }
    if (e.mark.line < 0) line = col = 1;
    errors->push_back({file, line, col, "YAML syntax error: " + e.msg});
    return false;
  } catch (const std::exception& e) {
    errors->push_back({file, 1, 1, std::string("cannot read YAML: ") + e.what()});
    return false;
  }
}

}  // namespace gatehouse::internal
