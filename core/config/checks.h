// SPDX-License-Identifier: Apache-2.0
// Checks: the constraints a config value must meet, stated once beside the accessor that
// reads it, so the same declaration validates the value and documents it (the "describe"
// mode that writes docs/config-reference.md renders describe()).
//
// Example:
//   node.required<int>("num_layers", "transformer layers", Checks().positive());
//   node.optional<double>("gpu_memory_utilization", 0.9, "share of HBM used",
//                         Checks().greater_than(0).at_most(1));
//   node.optional<std::string>("rule", "snapkv", "selection rule", Checks().one_of({"snapkv", "h2o"}));
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kvlab::core {

class Checks {
 public:
  // Numeric bounds. A value has at most one lower and one upper bound; a later call
  // replaces an earlier one of the same side.
  Checks& positive() { return greater_than(0); }
  Checks& non_negative() { return at_least(0); }
  Checks& greater_than(double bound);
  Checks& at_least(double bound);
  Checks& at_most(double bound);
  Checks& in_range(double lo, double hi) { return at_least(lo).at_most(hi); }  // lo ≤ v ≤ hi
  // The value, as written, must be one of `choices` (strings; numbers compare as written).
  Checks& one_of(std::vector<std::string> choices);

  // "" when the value passes, else what it must be ("must be positive", "must be one of
  // bf16, fp8"), without the value itself: callers add "(got …)".
  std::string violation(double value) const;
  std::string violation(const std::string& written) const;
  // The constraints for a reader: "> 0", "≥ 0, ≤ 1", "one of: bf16, fp8"; "" when none.
  std::string describe() const;
  bool has_bounds() const { return lower_.has_value() || upper_.has_value(); }
  bool empty() const { return !has_bounds() && choices_.empty(); }

 private:
  std::string bounds_message() const;
  std::optional<double> lower_;
  bool lower_inclusive_ = false;
  std::optional<double> upper_;
  std::vector<std::string> choices_;
};

}  // namespace kvlab::core
