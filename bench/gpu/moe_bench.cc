// SPDX-License-Identifier: Apache-2.0
// The engine's MoE paths at Qwen3-30B-A3B's shape (configs/models/qwen3-30b-a3b.yaml:
// hidden 2048, expert FFN 768, 128 experts, top-8), CSV on stdout, the device on stderr:
//   moe_bench [--quick]  one MoE layer's expert half for 1 … 4096 tokens: the per-expert path
//                        against the grouped, graph-safe path (gpu/engine/moe_microbench.h), and
//                        the grouped path's bandwidth on the used experts' weight bytes against
//                        the device-to-device copy ceiling measured in the same run
//                        (--quick: 1, 8 and 256 tokens);
//   moe_bench --steps    whole decode steps of the engine (48 layers, random weights, bf16 KV,
//                        every sequence at context 1024) with the grouped path in CUDA graphs
//                        against the per-expert path (eager), 1 … 64 sequences;
//   moe_bench --breakdown each launch of a decode step at 1, 2 and 64 sequences timed alone in
//                        a graph (gpu/engine/moe_breakdown.h), summed over the step and set
//                        beside the engine's measured step (graphs, grouped path);
//   moe_bench --step N   one grouped decode step of N sequences, timed (for a profiler);
//   moe_bench --copy     the device copy ceiling both ways: copy_device's kernel and cudaMemcpy.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/config/spec_loader.h"
#include "gpu/cuda_check.h"
#include "gpu/engine/engine.h"
#include "gpu/engine/engine_shape.h"
#include "gpu/engine/microbench.h"
#include "gpu/engine/moe_breakdown.h"
#include "gpu/engine/moe_microbench.h"

namespace {

using namespace kvlab::gpu::engine;

void layer_table(const EngineShape& s, bool quick, cudaStream_t stream) {
  const std::vector<int> tokens = quick ? std::vector<int>{1, 8, 256} : std::vector<int>{1, 2, 8, 32, 128, 256, 1024, 4096};
  const double copy = copy_bandwidth(size_t{1} << 30, stream);
  const std::vector<MoeLayerTiming> rows = time_moe_layer(s, tokens, stream);
  std::printf("tokens,experts_used,weight_mb,per_expert_us,grouped_us,grouped_gemms_us,speedup,grouped_tb_s,gemms_tb_s,copy_tb_s,"
              "grouped_of_copy,gemms_of_copy\n");
  for (const MoeLayerTiming& r : rows) {
    const double grouped_bw = r.weight_bytes / r.grouped_s, gemms_bw = r.weight_bytes / r.grouped_gemms_s;
    std::printf("%d,%.1f,%.1f,%.1f,%.1f,%.1f,%.2f,%.3f,%.3f,%.3f,%.3f,%.3f\n", r.tokens, r.experts_used, r.weight_bytes / 1e6,
                r.per_expert_s * 1e6, r.grouped_s * 1e6, r.grouped_gemms_s * 1e6, r.per_expert_s / r.grouped_s, grouped_bw / 1e12,
                gemms_bw / 1e12, copy / 1e12, grouped_bw / copy, gemms_bw / copy);
  }
}

void step_table(const EngineShape& s) {
  const std::vector<int> batches = {1, 2, 8, 32, 64};
  std::vector<std::vector<double>> ms(2);
  for (int path = 0; path < 2; ++path) {
    EngineOptions o;
    o.max_tokens = 256;
    o.max_seqs = 64;
    o.max_context = 1100;
    o.kv_precision = kvlab::core::Precision::defaults(kvlab::core::KvDtype::kBf16);
    o.moe_grouped_max_tokens = path == 0 ? 256 : 0;  // 0: the per-expert path everywhere
    Engine engine(s, o);
    for (const int b : batches) {
      const std::vector<EngineRow> rows(static_cast<size_t>(b), EngineRow{1024, 1, true, true});
      const StepTiming t = engine.time(rows, 2, 10);
      ms[static_cast<size_t>(path)].push_back(t.gpu_s * 1e3);
    }
  }
  std::printf("decode_seqs,context,grouped_graph_ms,per_expert_eager_ms,speedup\n");
  for (size_t i = 0; i < batches.size(); ++i) {
    std::printf("%d,1024,%.3f,%.3f,%.2f\n", batches[i], ms[0][i], ms[1][i], ms[1][i] / ms[0][i]);
  }
}

EngineOptions grouped_options() {
  EngineOptions o;
  o.max_tokens = 256;
  o.max_seqs = 64;
  o.max_context = 1100;
  o.kv_precision = kvlab::core::Precision::defaults(kvlab::core::KvDtype::kBf16);
  o.moe_grouped_max_tokens = 256;
  return o;
}

double grouped_step_ms(Engine& engine, int seqs) {
  const std::vector<EngineRow> rows(static_cast<size_t>(seqs), EngineRow{1024, 1, true, true});
  return engine.time(rows, 2, 10).gpu_s * 1e3;
}

void breakdown_table(const EngineShape& s) {
  const std::vector<int> batches = {1, 2, 64};
  std::vector<std::vector<KernelShare>> shares;
  {
    cudaStream_t stream = nullptr;
    KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    for (const int b : batches) shares.push_back(time_moe_decode_kernels(s, b, 1024, stream));
    cudaStreamDestroy(stream);
  }
  std::vector<double> measured;
  {
    Engine engine(s, grouped_options());
    for (const int b : batches) measured.push_back(grouped_step_ms(engine, b));
  }
  std::printf("decode_seqs,kernel,calls_per_step,us_per_call,ms_per_step,of_measured_step\n");
  for (size_t i = 0; i < batches.size(); ++i) {
    double sum_ms = 0;
    for (const KernelShare& k : shares[i]) {
      const double ms = k.seconds * 1e3 * k.calls_per_step;
      sum_ms += ms;
      std::printf("%d,%s,%d,%.2f,%.3f,%.3f\n", batches[i], k.name.c_str(), k.calls_per_step, k.seconds * 1e6, ms, ms / measured[i]);
    }
    std::printf("%d,sum of the above,,,%.3f,%.3f\n", batches[i], sum_ms, sum_ms / measured[i]);
    std::printf("%d,engine step measured (graph),1,,%.3f,1.000\n", batches[i], measured[i]);
    std::printf("%d,measured minus sum,,,%.3f,%.3f\n", batches[i], measured[i] - sum_ms, (measured[i] - sum_ms) / measured[i]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "moe_bench: no CUDA device here; run it on the GPU machine\n");
    return 2;
  }
  const EngineShape shape = engine_shape(kvlab::core::load_model("qwen3-30b-a3b"));
  std::fprintf(stderr, "moe_bench: %s, %s\n", device_description().c_str(), shape.model_name.c_str());
  if (mode == "--breakdown") {
    breakdown_table(shape);
    return 0;
  }
  if (mode == "--copy") {
    cudaStream_t stream = nullptr;
    KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::printf("bytes,copy_kernel_tb_s,cudamemcpy_tb_s\n");
    for (const size_t bytes : {size_t{256} << 20, size_t{1} << 30, size_t{2} << 30}) {
      std::printf("%zu,%.3f,%.3f\n", bytes, copy_bandwidth(bytes, stream) / 1e12, memcpy_bandwidth(bytes, stream) / 1e12);
    }
    cudaStreamDestroy(stream);
    return 0;
  }
  if (mode == "--step" && argc > 2) {
    Engine engine(shape, grouped_options());
    std::printf("decode_seqs,grouped_graph_ms\n%d,%.3f\n", std::atoi(argv[2]), grouped_step_ms(engine, std::atoi(argv[2])));
    return 0;
  }
  if (mode == "--steps") {
    step_table(shape);
    return 0;
  }
  cudaStream_t stream = nullptr;
  KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  layer_table(shape, mode == "--quick", stream);
  cudaStreamDestroy(stream);
  return 0;
}
