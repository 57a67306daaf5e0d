// SPDX-License-Identifier: Apache-2.0
// SimConfig: everything one simulation point needs, resolved — a plain data struct with no
// YAML in it (experiments/ parses experiment files into it and reports file:line errors).
// Knob names follow vLLM's. Units are in the field names or comments; time inside the
// engine is integer nanoseconds, configs give seconds as doubles.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/gpu_spec.h"
#include "core/kv_plan.h"
#include "core/model_spec.h"
#include "core/precision.h"
#include "sim/calibration.h"

namespace kvlab::sim {

enum class LengthKind {
  kFixed,      // always `mean`
  kUniform,    // uniform in [mean − spread, mean + spread]
  kLognormal,  // mean `mean`, sigma of log(length) `spread` (ShareGPT-like: ≈ 1)
  kEmpirical,  // drawn uniformly from `values`, or from a trace column (empirical_trace)
};

// A token-count distribution; every draw is rounded and clamped to [min, max].
struct LengthDistribution {
  LengthKind kind = LengthKind::kFixed;
  double mean = 256;  // tokens: the fixed value, or the mean for uniform/lognormal
  double spread = 0;  // uniform: half-width in tokens; lognormal: sigma of log(length)
  int64_t min = 1;
  int64_t max = 1 << 20;
  // kEmpirical: the sample to draw from. Empty: read `empirical_trace` (a trace CSV in
  // `empirical_trace_format`) and take its prompt column (for WorkloadConfig::prompt) or
  // its output column (for WorkloadConfig::output).
  std::vector<int64_t> values;
  std::string empirical_trace;
  std::string empirical_trace_format = "azure";  // azure | burstgpt
};

enum class ArrivalKind {
  kPoisson,     // exponential gaps (coefficient of variation 1), mean rate rate_per_s
  kGamma,       // gamma gaps with coefficient of variation `cv`: > 1 bursty, < 1 smooth
  kConstant,    // evenly spaced at rate_per_s
  kClosedLoop,  // closed_loop_users users, each sends its next request think_time after the last one finished
};

// Multi-turn conversations (the setting Tangram targets): each arrival of the arrival
// process starts a session of `turns` requests. Turn t+1 is sent think_time_s after turn t
// finishes; its prompt is the whole history so far (every earlier prompt and answer) plus
// a fresh user message drawn from WorkloadConfig::prompt. With prefix caching the history
// can hit the cache.
struct SessionConfig {
  int turns = 1;              // 1: no sessions (independent requests)
  double think_time_s = 0.0;  // mean user think time between turns, exponential; 0: none
  bool history_grows = true;  // false: every turn sends only its fresh message
};

// Shared system prompts / documents (prefix reuse): with probability `share` a request's
// prompt starts with one of `num_prefixes` shared prefixes of `prefix_tokens` tokens,
// chosen uniformly; the sampled prompt length follows it.
struct SharedPrefixConfig {
  int num_prefixes = 0;       // 0: no shared prefixes
  int64_t prefix_tokens = 0;  // tokens of each shared prefix
  double share = 1.0;         // fraction of requests that carry one, in [0, 1]
};

struct WorkloadConfig {
  ArrivalKind arrival = ArrivalKind::kPoisson;
  double cv = 1.0;          // gamma arrivals' coefficient of variation (> 0)
  double rate_per_s = 10;   // mean arrivals (sessions, with SessionConfig) per second
  int closed_loop_users = 1;          // kClosedLoop: concurrent users
  double closed_loop_think_time_s = 0;  // kClosedLoop: mean think time (exponential), 0: none
  // How many requests to run. num_requests > 0: that many (turns of sessions included);
  // duration_s > 0: arrivals stop after this much simulated time. Both set: whichever
  // comes first. At least one must be set.
  int64_t num_requests = 1000;
  double duration_s = 0;
  LengthDistribution prompt;   // prompt tokens (the fresh message, for session turns)
  LengthDistribution output;   // output tokens (≥ 1)
  // Every request's max_tokens, all the scheduler knows of its output in advance (no
  // oracle: reservations and "never fits" use it). 0: the output distribution's max (a
  // trace's outputs: unbounded), capped by the model's context. Outputs longer are cut to it.
  int64_t max_output_tokens = 0;
  SessionConfig sessions;
  SharedPrefixConfig shared_prefix;
  int num_priority_levels = 1;  // > 1: each request draws a priority in [0, levels), 0 first
  uint64_t seed = 1;
  // Trace replay: non-empty trace_path replays that CSV (arrival time, prompt and output
  // tokens) instead of the arrival process and length distributions above.
  std::string trace_path;
  std::string trace_format = "azure";  // azure | burstgpt
  double trace_time_scale = 1;  // > 1 compresses the trace's time (more load)
};

enum class PreemptionMode {
  kRecompute,  // drop the KV; recompute prompt + output so far when readmitted (vLLM's default)
  kSwap,       // copy the KV to host memory over PCIe / C2C and back (vLLM V0's swap)
};

// Which free KV row the prefix cache hands out first.
enum class PrefixEviction {
  kVllmV1,      // one free queue of released rows, cached or not, least recently freed first (vLLM V1)
  kCachedLast,  // rows never cached first; cached rows only when none are left (keeps more hits)
};

enum class SchedulingPolicy {
  kFcfs,      // first come, first served; preempt the most recently admitted
  kPriority,  // lowest priority value first (ties by arrival); preempt the highest value
};

struct SchedulerConfig {
  int block_size = 16;                    // tokens per KV page (the baseline plan's; a kv_plan has its own)
  double gpu_memory_utilization = 0.9;    // share of HBM for weights + KV, in (0, 1]
  int max_num_seqs = 256;                 // running sequences at most
  int64_t max_num_batched_tokens = 8192;  // tokens per iteration (chunked prefill budget)
  bool enable_chunked_prefill = true;     // false: whole prompts only (beside the decodes, as vLLM V1)
  bool enable_prefix_caching = false;     // reuse cached KV pages of identical prefixes
  PreemptionMode preemption_mode = PreemptionMode::kRecompute;
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  double swap_space_gib = 4;  // host memory for swapped KV per GPU, GiB (vLLM's swap_space)
  PrefixEviction prefix_eviction = PrefixEviction::kVllmV1;
  int64_t host_kv_bytes = 0;  // host memory per GPU for groups a kv_plan places on the host
};

enum class RouterPolicy {
  kRoundRobin,         // replicas in turn
  kLeastOutstanding,   // fewest requests routed and not finished (ties: lowest index)
  kPrefixAware,        // most prompt pages already in the replica's prefix cache, then least outstanding
};

// data_parallel replicas of tensor_parallel × pipeline_parallel GPUs each (sim/README.md,
// "Parallelism"). GPUs are numbered replica by replica, stage by stage within a replica, TP
// ranks adjacent, and fill nodes of gpus_per_node in that order: a group whose GPUs sit in
// two nodes talks over inter_node_link (sim/links.h).
//   pipeline_parallel  stages of consecutive layers (vLLM's split); each replica runs
//                      pipeline_parallel virtual engines, one micro-batch each in flight
//                      (sim/pipeline_parallel.h)
//   expert_parallel    ranks of an EP group: that many replicas of one GPU each (tensor_parallel
//                      1: DP attention + EP) step together and hold E / expert_parallel experts
//                      each (sim/expert_parallel.h); data_parallel is a multiple of it
struct ClusterConfig {
  int tensor_parallel = 1;
  int data_parallel = 1;
  int pipeline_parallel = 1;
  int expert_parallel = 1;
  int gpus_per_node = 0;   // 0: every GPU of the cluster in one node
  RouterPolicy router = RouterPolicy::kRoundRobin;
  core::LinkSpec tp_link;  // intra-node link (TP all-reduce, EP all-to-all, PP sends); bandwidth 0: the GPU's nvlink_bandwidth
  core::LinkSpec inter_node_link;  // one NIC per GPU; bandwidth 0: none (a group spanning nodes is refused)
  core::LinkSpec host_link;  // swap link; bandwidth 0: the GPU's pcie_bandwidth
};

// How tokens choose routed experts, and where experts live (MoE models; sim/expert_parallel.h).
enum class ExpertRouting {
  kUniform,   // every expert equally likely (each token's top_k choices i.i.d. over experts)
  kZipf,      // expert e (0-based) chosen with share ∝ (e + 1)^−zipf_exponent: expert 0 hottest
  kMeasured,  // shares from a measured per-expert load file (expert_load, load_source)
};
enum class ExpertPlacement {
  kLinear,      // rank r holds experts [r·E/ep, (r+1)·E/ep) (vLLM's default, expert_placement_strategy linear)
  kRoundRobin,  // expert e on rank e mod ep (vLLM's round_robin)
  kGiven,       // expert_rank lists each expert's rank
};
struct MoeConfig {
  ExpertRouting routing = ExpertRouting::kUniform;
  double zipf_exponent = 0;         // kZipf: ≥ 0 (0: every expert alike)
  std::vector<double> expert_load;  // kMeasured: one non-negative load per routed expert (any scale)
  std::string load_source;          // kMeasured: where the loads were measured (the file's `source`)
  std::string load_file;            // kMeasured: the file they were read from
  ExpertPlacement placement = ExpertPlacement::kLinear;
  std::vector<int> expert_rank;     // kGiven: rank of expert 0, 1, …; E / ep experts on every rank
};

// Achieved fractions of the datasheet peaks and fixed overheads (configs/calibration/
// <gpu>.yaml holds measured ones). Defaults: the H100's measured 3.00 of 3.35 TB/s copy
// and 767 of 989 TFLOP/s bf16 GEMM (../shared/GPU.md, facts.md).
struct Calibration {
  double memory_efficiency = 0.90;    // achieved / peak HBM bandwidth
  double compute_efficiency = 0.78;   // achieved / peak dense FLOP/s for large GEMMs
  // GEMM efficiency falls for few rows: eff(T) = compute_efficiency · T / (T + this).
  double gemm_half_efficiency_tokens = 0;
  double attention_efficiency = 0.78;  // achieved / peak FLOP/s in prefill attention
  double link_efficiency = 0.80;       // achieved / peak link bandwidth (all-reduce, swap)
  int64_t iteration_overhead_ns = 30'000;   // scheduling + sampling per iteration
  int64_t per_sequence_overhead_ns = 0;     // scheduler CPU time per running sequence
  int64_t kernel_launch_ns = 0;             // per kernel per layer (0: CUDA graphs hide it)
  int kernels_per_layer = 8;                // launches per layer when kernel_launch_ns > 0
  MeasuredCalibration measured;             // kvlab calibrate's terms (sim/calibration.h)
};

struct SimConfig {
  core::ModelSpec model;
  core::GpuSpec gpu;
  core::WeightDtype weights = core::WeightDtype::kBf16;
  core::Precision kv_precision;  // kv_cache_dtype; the baseline plan is built from it
  // The KV plan (an experiment's kv_plan: section). Absent: the baseline plan of
  // kv_precision and scheduler.block_size (resolved_plan()).
  std::optional<core::KvPlan> kv_plan;
  // The draft model of a plan that speculates with method draft_model (resolved from
  // kv_plan->speculation->draft_model by the caller; sim/speculative_step.h).
  std::optional<core::ModelSpec> draft_model;
  ClusterConfig cluster;
  MoeConfig moe;  // routing and placement of a MoE model's experts (ignored keys are refused by the parser)
  SchedulerConfig scheduler;
  WorkloadConfig workload;
  Calibration calibration;
  double slo_ttft_s = 2.0;   // goodput: requests meeting both SLOs, seconds
  double slo_tpot_s = 0.1;
  double timeline_interval_s = 0.1;  // one timeline sample per replica per interval of simulated time
  // Tests and debugging, not a config key: walk every sequence each iteration and check the
  // aggregates against it (sim/replica_invariants.cc). O(sequences) per iteration.
  bool check_invariants = false;
};

// The plan the simulator executes: kv_plan, or the baseline of kv_precision and block_size.
core::KvPlan resolved_plan(const SimConfig& config);

}  // namespace kvlab::sim
