// SPDX-License-Identifier: Apache-2.0
#include "experiments/claims/expression.h"

#include <cctype>
#include <cmath>
#include <stdexcept>

#include <fmt/core.h>

namespace kvlab::experiments {

struct Expression::Node {
  enum class Kind { kNumber, kReference, kUnary, kBinary, kCall } kind = Kind::kNumber;
  double number = 0;
  size_t reference = 0;  // index into references_
  char op = 0;           // + - * / (binary), - (unary)
  std::string function;  // min, max, floor, ceil
  std::vector<std::shared_ptr<const Node>> children;
};

namespace {

using NodePtr = std::shared_ptr<const Expression::Node>;
using Node = Expression::Node;

class Parser {
 public:
  Parser(const std::string& text, std::vector<Reference>& refs) : text_(text), refs_(refs) {}

  NodePtr parse_all() {
    NodePtr n = sum();
    skip_space();
    if (pos_ != text_.size()) fail(fmt::format("unexpected '{}'", text_[pos_]));
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(fmt::format("expression column {}: {}", pos_ + 1, what));
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool accept(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  static NodePtr binary(char op, NodePtr a, NodePtr b) {
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::kBinary;
    n->op = op;
    n->children = {std::move(a), std::move(b)};
    return n;
  }
  NodePtr sum() {
    NodePtr left = product();
    while (true) {
      if (accept('+')) {
        left = binary('+', left, product());
      } else if (accept('-')) {
        left = binary('-', left, product());
      } else {
        return left;
      }
    }
  }
  NodePtr product() {
    NodePtr left = factor();
    while (true) {
      if (accept('*')) {
        left = binary('*', left, factor());
      } else if (accept('/')) {
        left = binary('/', left, factor());
      } else {
        return left;
      }
    }
  }
  std::string identifier() {
    const size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) ++pos_;
    return text_.substr(start, pos_ - start);
  }
  NodePtr factor() {
    skip_space();
    if (pos_ >= text_.size()) fail("expected a number, a reference or '(', got the end");
    const char c = text_[pos_];
    if (accept('(')) {
      NodePtr inner = sum();
      if (!accept(')')) fail("expected ')'");
      return inner;
    }
    if (accept('-')) {
      auto n = std::make_shared<Node>();
      n->kind = Node::Kind::kUnary;
      n->op = '-';
      n->children = {factor()};
      return n;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      size_t used = 0;
      double value = 0;
      try {
        value = std::stod(text_.substr(pos_), &used);
      } catch (const std::exception&) {
        fail("malformed number");
      }
      pos_ += used;
      auto n = std::make_shared<Node>();
      n->number = value;
      return n;
    }
    if (!(std::isalpha(static_cast<unsigned char>(c)) || c == '_')) fail(fmt::format("unexpected '{}'", c));
    const std::string first = identifier();
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '(') {
      if (first != "min" && first != "max" && first != "floor" && first != "ceil") {
        fail(fmt::format("unknown function '{}' (min, max, floor, ceil)", first));
      }
      ++pos_;
      auto n = std::make_shared<Node>();
      n->kind = Node::Kind::kCall;
      n->function = first;
      n->children.push_back(sum());
      while (accept(',')) n->children.push_back(sum());
      if (!accept(')')) fail("expected ')' after the arguments");
      const size_t want = first == "floor" || first == "ceil" ? 1 : 2;
      if (first == "floor" || first == "ceil" ? n->children.size() != want : n->children.size() < want) {
        fail(fmt::format("{} takes {} argument(s)", first, first == "floor" || first == "ceil" ? "1" : "2 or more"));
      }
      return n;
    }
    Reference ref{first, {}};
    while (pos_ < text_.size() && (text_[pos_] == '.' || text_[pos_] == '[')) {
      if (text_[pos_] == '.') {
        ++pos_;
        std::string field = identifier();
        if (field.empty()) fail("expected a field name after '.'");
        ref.path.push_back(field);
      } else {
        ++pos_;
        const size_t start = pos_;
        while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
        if (pos_ == start || pos_ >= text_.size() || text_[pos_] != ']') fail("expected [index]");
        ref.path.push_back("[" + text_.substr(start, pos_ - start) + "]");
        ++pos_;
      }
    }
    if (ref.path.empty()) fail(fmt::format("'{}' needs a field: measure.field", first));
    refs_.push_back(ref);
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::kReference;
    n->reference = refs_.size() - 1;
    return n;
  }

  const std::string& text_;
  std::vector<Reference>& refs_;
  size_t pos_ = 0;
};

double eval(const Node& n, const std::vector<double>& values) {
  switch (n.kind) {
    case Node::Kind::kNumber: return n.number;
    case Node::Kind::kReference: return values[n.reference];
    case Node::Kind::kUnary: return -eval(*n.children[0], values);
    case Node::Kind::kBinary: {
      const double a = eval(*n.children[0], values), b = eval(*n.children[1], values);
      switch (n.op) {
        case '+': return a + b;
        case '-': return a - b;
        case '*': return a * b;
        default: return a / b;  // IEEE: x/0 is ±inf or NaN, which verdicts report as such
      }
    }
    case Node::Kind::kCall: {
      double r = eval(*n.children[0], values);
      if (n.function == "floor") return std::floor(r);
      if (n.function == "ceil") return std::ceil(r);
      for (size_t i = 1; i < n.children.size(); ++i) {
        const double v = eval(*n.children[i], values);
        r = n.function == "min" ? std::min(r, v) : std::max(r, v);
      }
      return r;
    }
  }
  return 0;
}

}  // namespace

std::string Reference::text() const {
  std::string out = measure;
  for (const std::string& p : path) out += p.front() == '[' ? p : "." + p;
  return out;
}

Expression Expression::parse(const std::string& text) {
  Expression e;
  e.text_ = text;
  Parser parser(text, e.references_);
  e.root_ = parser.parse_all();
  return e;
}

double Expression::evaluate(const std::function<double(const Reference&)>& lookup) const {
  std::vector<double> values;
  values.reserve(references_.size());
  for (const Reference& r : references_) values.push_back(lookup(r));
  return eval(*root_, values);
}

}  // namespace kvlab::experiments
