// SPDX-License-Identifier: Apache-2.0
// One MoE layer at Qwen3-30B-A3B's shape (hidden 2048, expert FFN 768, 128 experts, top-8;
// configs/models/qwen3-30b-a3b.yaml) for 1 … 4096 tokens: the engine's per-expert path
// against its grouped, graph-safe path (gpu/engine/moe_microbench.h), and the grouped path's
// bandwidth on the used experts' weight bytes against the device-to-device copy ceiling
// measured in the same run. CSV on stdout, the device on stderr.
//   moe_bench [--quick]   (--quick: 1, 8 and 256 tokens)
#include <cstdio>
#include <cstring>
#include <vector>

#include "gpu/cuda_check.h"
#include "gpu/engine/engine_shape.h"
#include "gpu/engine/microbench.h"
#include "gpu/engine/moe_microbench.h"

int main(int argc, char** argv) {
  using namespace kvlab::gpu::engine;
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  EngineShape s;
  s.model_name = "qwen3-30b-a3b (MoE layer)";
  s.hidden = 2048;
  s.expert_ffn_dim = 768;
  s.num_experts = 128;
  s.top_k = 8;
  const std::vector<int> tokens = quick ? std::vector<int>{1, 8, 256} : std::vector<int>{1, 2, 8, 32, 128, 256, 1024, 4096};
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "moe_bench: no CUDA device here; run it on the GPU machine\n");
    return 2;
  }
  cudaStream_t stream = nullptr;
  KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::fprintf(stderr, "moe_bench: %s\n", device_description().c_str());
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
  cudaStreamDestroy(stream);
  return 0;
}
