// SPDX-License-Identifier: Apache-2.0
// The text of a point's result files: summary.json (fixed key order, shortest round-trip
// numbers, wall_s alone on the last line so a byte comparison can leave it out),
// requests.csv and timeline.csv (fixed decimals: times to the engine's nanosecond).
// Columns and units: docs/experiments.md.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/sim_result.h"

namespace kvlab::experiments {

// The summary as an ordered JSON object, wall_s (measured, machine-dependent) last.
nlohmann::ordered_json summary_object(const sim::Summary& summary, double wall_s);
// summary_object dumped with two-space indents and a final newline.
std::string summary_json(const sim::Summary& summary, double wall_s);

// CSV writers hand their text to `sink` in chunks, so a million rows never sit in memory.
using TextSink = std::function<void(std::string_view chunk)>;
void write_requests_csv(const std::vector<sim::RequestRecord>& requests, const TextSink& sink);
void write_timeline_csv(const std::vector<sim::TimelineSample>& timeline, const TextSink& sink);

}  // namespace kvlab::experiments
