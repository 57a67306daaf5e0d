// SPDX-License-Identifier: Apache-2.0
// The ranges numbers must fall in where they enter kvlab (config keys, trace rows, HF
// config.json files), stated once. They are chosen so that every accepted input keeps the
// simulator's int64 arithmetic (nanoseconds, tokens, bytes, pages) from overflowing and its
// memory bounded, and each lies far beyond any real deployment (the reason is beside it).
// docs/reliability.md lists them with the arithmetic that makes them sufficient.
// Header-only, and must compile under nvcc (no fmt, no yaml-cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>

namespace kvlab::core::limits {

// ---- time ---------------------------------------------------------------------------
// Simulated time (arrival times, the engine's clock) stays below 10^18 ns = 31.7 years.
// int64 nanoseconds hold 9.2·10^18, so a time plus any accepted duration cannot overflow.
inline constexpr int64_t kMaxSimulatedNs = 1'000'000'000'000'000'000;
// A span given in a config or found in a trace (a workload duration, a mean think time, an
// SLO, a timeline interval, a trace's length after time_scale): at most 10^7 s (116 days).
// An exponential draw reaches at most −ln(2^−53) ≈ 36.7 times its mean (sim/random.cc),
// so a drawn think time stays below 3.7·10^17 ns, inside kMaxSimulatedNs.
inline constexpr double kMaxSpanSeconds = 1e7;
// A fixed cost per step (iteration, running sequence, kernel launch, link message): at most
// one second; measured ones are microseconds (configs/calibration/).
inline constexpr int64_t kMaxOverheadNs = 1'000'000'000;

// ---- workload -----------------------------------------------------------------------
// Tokens of one prompt, output, shared prefix or context: 2^30 (1.07·10^9), a hundred
// times the longest context of any model in facts.md. A token count times bytes per token
// (kMaxKvBytesPerToken) then stays below 2^60.
inline constexpr int64_t kMaxTokens = int64_t{1} << 30;
// Requests of one run: 10^8. The simulator keeps about 200 bytes per request (spec,
// record, queue entries), 20 GB at this limit; requests ids and sums of tokens over all
// requests (≤ 10^8 · 2^31 · turns) stay far inside int64.
inline constexpr int64_t kMaxRequests = 100'000'000;
// Turns of one session: 10^4. A turn's prompt carries the history of the earlier ones, so
// a prompt reaches turns · 2 · kMaxTokens ≈ 2·10^13 tokens at most.
inline constexpr int kMaxSessionTurns = 10'000;
// Distinct priorities and shared prefixes: 10^6 each.
inline constexpr int kMaxPriorityLevels = 1'000'000;
inline constexpr int kMaxSharedPrefixes = 1'000'000;
// Closed-loop users: no more than requests (one slot per user is allocated up front).
inline constexpr int64_t kMaxUsers = kMaxRequests;
// Open-loop arrival rate, per second: from one a month (3.9·10^-7/s, so the mean gap stays
// below kMaxSpanSeconds) to 10^9 (a gap of 1 ns, the clock's resolution).
inline constexpr double kMinRatePerS = 1.0 / kMaxSpanSeconds;
inline constexpr double kMaxRatePerS = 1e9;
// Coefficient of variation of gamma arrivals. Below 10^-3 the gamma sampler's shape 1/cv²
// passes 10^6 and its acceptance test loses its precision (use arrival: constant for an
// even pace); above 10^3 almost every gap is 0 and the rest are beyond any horizon.
inline constexpr double kMinGammaCv = 1e-3;
inline constexpr double kMaxGammaCv = 1e3;
// A trace's time_scale: 10^-6 (a million times slower) to 10^6 (a million times faster).
inline constexpr double kMinTimeScale = 1e-6;
inline constexpr double kMaxTimeScale = 1e6;

// Points of one sweep: 10^4. Each is parsed (and its resolved YAML kept) before the run.
inline constexpr int64_t kMaxSweepPoints = 10'000;

// ---- hardware and parallelism ----------------------------------------------------------
// Tensor-parallel degree: 1024 (no model here has more KV heads than that to split); data-
// parallel replicas: 65,536 (each replica is simulated, with its own page tables); GPUs of
// one cluster: 2^20.
inline constexpr int kMaxTensorParallel = 1024;
inline constexpr int kMaxDataParallel = 65'536;
inline constexpr int64_t kMaxClusterGpus = int64_t{1} << 20;
// Scheduler: tokens per KV page up to 65,536 (vLLM uses 16–256), running sequences per
// replica up to 2^20.
inline constexpr int kMaxBlockSize = 1 << 16;
inline constexpr int kMaxRunningSeqs = 1 << 20;
// HBM of one GPU: 2^50 bytes (1 PiB; the largest today holds 192 GB), so byte counts of a
// replica's memory stay below 2^60.
inline constexpr int64_t kMaxHbmBytes = int64_t{1} << 50;
// KV pages of all replicas together: 2^28 (268 M). The KV manager keeps ~25 bytes of
// bookkeeping per page (6.7 GB at this limit) and numbers pages with int32. A real model on
// a real GPU has 10^4–10^6 pages of 16 tokens; only toy models with tiny pages come near.
inline constexpr int64_t kMaxSimulatedPages = int64_t{1} << 28;
// Bytes of KV per token of one sequence (all layers): 2^30. Real models need 70 KB
// (DeepSeek-V3) to 0.5 MB (Llama-3.1-405B in bf16).
inline constexpr int64_t kMaxKvBytesPerToken = int64_t{1} << 30;
// Parameters of one model: 10^15, a thousand times the largest published one. Keeps the
// int64 parameter and weight-byte counts (core/model_spec.cc) exact.
inline constexpr double kMaxModelParams = 1e15;

// ---- model dimensions (a HuggingFace config.json or a catalog YAML) -------------------
// Each is at least ten times the largest in any released model (facts.md: 126 layers,
// hidden 16384, 128 heads, head_dim 256, vocab 262k, FFN 53248, 256 experts).
inline constexpr int kMaxLayers = 4096;
inline constexpr int kMaxHiddenSize = 1 << 20;
inline constexpr int kMaxHeads = 1 << 14;
inline constexpr int kMaxHeadDim = 1 << 14;
inline constexpr int kMaxVocabSize = 1 << 26;
inline constexpr int kMaxFfnDim = 1 << 22;
inline constexpr int kMaxExperts = 1 << 16;

// ---- files ---------------------------------------------------------------------------
// A YAML or JSON config: 16 MiB (the largest in the repository is a few KB). Reading stops
// there, so `kvlab check /dev/zero` ends with an error instead of reading forever.
inline constexpr int64_t kMaxConfigFileBytes = int64_t{16} << 20;
// Trace files are read row by row: a row is at most 64 KiB and a replay at most
// kMaxRequests rows (sim/trace.cc), which bounds them the same way.
// A text `kvlab accuracy` tokenizes: 64 MiB.
inline constexpr int64_t kMaxTextFileBytes = int64_t{64} << 20;

// Whole nanoseconds of `seconds`, or nullopt when it is not finite, negative, or past
// kMaxSimulatedNs: the one conversion from double seconds to the simulator's clock.
inline std::optional<int64_t> simulated_ns(double seconds) {
  if (!(seconds >= 0) || !(seconds * 1e9 <= static_cast<double>(kMaxSimulatedNs))) return std::nullopt;
  return static_cast<int64_t>(std::llround(seconds * 1e9));
}

// Whole nanoseconds of a computed duration (an iteration's time from the cost model),
// saturated: anything past kMaxSimulatedNs, infinite or not a number becomes
// kMaxSimulatedNs + 1, which the engine's horizon check reports, so no conversion or
// addition of times can overflow.
inline int64_t saturated_ns(double seconds) {
  if (!(seconds * 1e9 <= static_cast<double>(kMaxSimulatedNs))) return kMaxSimulatedNs + 1;
  return seconds > 0 ? static_cast<int64_t>(std::llround(seconds * 1e9)) : 0;
}

}  // namespace kvlab::core::limits
