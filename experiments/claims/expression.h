// SPDX-License-Identifier: Apache-2.0
// The arithmetic a claim applies to its measurements: `a.kv_bytes_per_token /
// b.kv_bytes_per_token`, `max(x.max_sequences, 1)`. Numbers, + − × ÷, parentheses, unary
// minus, min/max/floor/ceil, and references `measure.field.subfield` into a measurement's
// JSON result (`[n]` indexes an array). Parsed once when the claim loads, so a typo is a
// file:line error from `kvlab check`, not a surprise after an hour of runs.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kvlab::experiments {

struct Reference {
  std::string measure;             // the measurement's name
  std::vector<std::string> path;   // fields (and "[n]" indices) inside its result
  std::string text() const;        // "measure.a.b"
};

class Expression {
 public:
  // Throws std::invalid_argument with the column and what was expected.
  static Expression parse(const std::string& text);

  // Every reference, in order of appearance.
  const std::vector<Reference>& references() const { return references_; }
  // `lookup` returns a reference's number or throws std::runtime_error (missing field).
  double evaluate(const std::function<double(const Reference&)>& lookup) const;
  const std::string& text() const { return text_; }

  struct Node;

 private:
  std::string text_;
  std::shared_ptr<const Node> root_;
  std::vector<Reference> references_;
};

}  // namespace kvlab::experiments
