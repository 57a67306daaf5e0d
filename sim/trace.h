// SPDX-License-Identifier: Apache-2.0
// Request traces replayed as workloads: the Azure LLM inference trace layout (TIMESTAMP as
// "YYYY-MM-DD HH:MM:SS.fffffff", ContextTokens, GeneratedTokens) and BurstGPT's
// (Timestamp in seconds, Model, Request tokens, Response tokens, Total tokens, Log Type).
// Arrival times are made relative to the first request and divided by `time_scale` (2 =
// twice the load). A malformed or truncated row is an error naming the file and line.
#pragma once

#include <istream>
#include <string>
#include <vector>

#include "sim/workload.h"

namespace kvlab::sim {

enum class TraceFormat { kAzure, kBurstGpt };

// Throws core::ConfigError. max_requests ≤ 0 reads every row. Rows must be sorted by time
// (an earlier timestamp after a later one is an error naming its line, not reordered); a
// trace without rows is an error; time_scale must lie in core/limits.h's range.
std::vector<RequestSpec> read_trace(const std::string& path, TraceFormat format, int64_t max_requests = 0,
                                    double time_scale = 1.0);
// The same over any stream (`name` is the file named in diagnostics): the fuzz target's entry.
std::vector<RequestSpec> parse_trace(std::istream& in, const std::string& name, TraceFormat format,
                                     int64_t max_requests = 0, double time_scale = 1.0);

// Seconds since 1970-01-01 of an Azure timestamp, or a negative value if malformed.
double parse_azure_timestamp(const std::string& text);

}  // namespace kvlab::sim
