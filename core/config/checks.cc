// SPDX-License-Identifier: Apache-2.0
#include "core/config/checks.h"

#include "core/config/config_node.h"  // edit_distance, did_you_mean

#include <algorithm>

#include <fmt/core.h>

namespace kvlab::core {

Checks& Checks::greater_than(double bound) {
  lower_ = bound;
  lower_inclusive_ = false;
  return *this;
}

Checks& Checks::at_least(double bound) {
  lower_ = bound;
  lower_inclusive_ = true;
  return *this;
}

Checks& Checks::at_most(double bound) {
  upper_ = bound;
  return *this;
}

Checks& Checks::one_of(std::vector<std::string> choices) {
  choices_ = std::move(choices);
  return *this;
}

std::string Checks::bounds_message() const {
  if (lower_ && upper_) {
    return fmt::format("must be in {}{}, {}]", lower_inclusive_ ? "[" : "(", *lower_, *upper_);
  }
  if (lower_) {
    if (*lower_ == 0) return lower_inclusive_ ? "must not be negative" : "must be positive";
    return fmt::format("must be {} {}", lower_inclusive_ ? "at least" : "greater than", *lower_);
  }
  return fmt::format("must be at most {}", *upper_);
}

std::string Checks::violation(double value) const {
  const bool below = lower_ && (lower_inclusive_ ? value < *lower_ : value <= *lower_);
  const bool above = upper_ && value > *upper_;
  return below || above ? bounds_message() : "";
}

std::string Checks::violation(const std::string& written) const {
  if (choices_.empty() || std::find(choices_.begin(), choices_.end(), written) != choices_.end()) {
    return "";
  }
  std::string list;
  for (const std::string& c : choices_) list += (list.empty() ? "" : ", ") + c;
  return "must be one of " + list;
}

std::string Checks::describe() const {
  std::string out;
  if (lower_) out += fmt::format("{} {}", lower_inclusive_ ? "≥" : ">", *lower_);
  if (upper_) out += fmt::format("{}≤ {}", out.empty() ? "" : ", ", *upper_);
  if (!choices_.empty()) {
    std::string list;
    for (const std::string& c : choices_) list += (list.empty() ? "" : ", ") + c;
    out += (out.empty() ? "one of: " : "; one of: ") + list;
  }
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best.empty() ? "" : fmt::format("; did you mean '{}'?", best);
}

}  // namespace kvlab::core
