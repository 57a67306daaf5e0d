// SPDX-License-Identifier: Apache-2.0
// Runs one claim: every measurement (kvlab's own subcommands started as processes, committed
// files read, catalog facts looked up), the claim's arithmetic over their results, and the
// verdict. When the literal reading fails, every combination of the claim's `explore` axes is
// measured too, and the verdict says under which ones the claim holds. Everything a verdict
// rests on is written into the claim's run folder: each command, its output, its result.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/claims/claim_spec.h"

namespace kvlab::experiments {

enum class Verdict {
  kHolds,           // the literal reading is within the claimed tolerance
  kHoldsOnlyIf,     // it is not, but other readings (explore) are: listed
  kRefuted,         // neither: by how much
  kNotComputable,   // a measurement waits for a capability that has not landed (which)
  kNotRun,          // outside the subset asked for (--all runs it)
};
std::string_view to_string(Verdict verdict);

// One reading of the claim: the parameters changed from the literal one, and its number.
struct Reading {
  std::vector<std::pair<std::string, std::string>> changes;  // ("measure.param", value)
  std::optional<double> value;  // empty when not computable
  bool holds = false;
  std::string folder;           // where its measurements are, relative to the claim folder
  std::string text() const;     // "q8.kv_group_size=128"
};

struct ClaimOutcome {
  Verdict verdict = Verdict::kNotRun;
  std::string detail;            // the verdict's sentence: by how much, under which readings, why not
  std::optional<double> value;   // the literal reading's number
  std::vector<Reading> readings; // [0] is the literal one; the rest are explored
  std::string folder;            // the claim's run folder
};

struct ClaimRunOptions {
  std::string out;            // results root; the claim's folder is out/<id>
  std::string kvlab;          // the kvlab executable to start (default: this one)
};

// Throws std::runtime_error when a measurement fails for a reason other than a missing
// capability (a measurement with `needs` whose command rejects its input, or whose file is
// absent): that is a defect of the claim or of kvlab and must not pass as a verdict.
ClaimOutcome run_claim(const Claim& claim, const ClaimRunOptions& options);

// The verdict from readings alone (pure; tested without running anything).
ClaimOutcome decide(const Claim& claim, std::vector<Reading> readings, const std::string& not_computable_reason);

}  // namespace kvlab::experiments
