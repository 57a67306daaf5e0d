// SPDX-License-Identifier: Apache-2.0
// Where a dense decode step's time goes, per KV format (Llama-3.1-8B, random weights), CSV
// on stdout, the device on stderr:
//   step_bench [--formats bf16,int8] [--batches 1,16,64] [--contexts 1000,3000]
// For each format, batch and context: every launch of the engine's decode step timed alone
// in a CUDA graph (gpu/engine/dense_breakdown.h), summed over the step (× layers), and the
// engine's whole step (graph) measured beside it. The replay found int8 steps of 1-64
// sequences 0.3-1.2 ms slower than the cost model (and slower than bf16 at one sequence)
// while int8's decode kernel alone is faster: this table says in which launch.
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/config/spec_loader.h"
#include "core/precision.h"
#include "gpu/cuda_check.h"
#include "gpu/engine/dense_breakdown.h"
#include "gpu/engine/engine.h"
#include "gpu/engine/engine_shape.h"
#include "gpu/engine/microbench.h"

namespace {

using namespace kvlab::gpu::engine;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

std::vector<int> ints(const std::string& s) {
  std::vector<int> out;
  for (const std::string& item : split(s)) out.push_back(std::stoi(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string formats = "bf16,int8", batches = "1,16,64", contexts = "1000,3000";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--formats") formats = argv[i + 1];
    else if (key == "--batches") batches = argv[i + 1];
    else if (key == "--contexts") contexts = argv[i + 1];
    else {
      std::fprintf(stderr, "step_bench: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "step_bench: no CUDA device here; run it on the GPU machine\n");
    return 2;
  }
  const EngineShape shape = engine_shape(kvlab::core::load_model("llama-3.1-8b"));
  std::fprintf(stderr, "step_bench: %s, %s\n", device_description().c_str(), shape.model_name.c_str());
  const std::vector<int> batch_list = ints(batches), context_list = ints(contexts);
  int max_batch = 1, max_context = 1;
  for (const int b : batch_list) max_batch = std::max(max_batch, b);
  for (const int c : context_list) max_context = std::max(max_context, c);
  std::printf("format,decode_seqs,context,kernel,calls_per_step,us_per_call,ms_per_step,of_measured_step\n");
  for (const std::string& name : split(formats)) {
    kvlab::core::KvDtype dtype{};
    if (!kvlab::core::parse_kv_dtype(name, &dtype)) {
      std::fprintf(stderr, "step_bench: unknown KV format %s\n", name.c_str());
      return 2;
    }
    const kvlab::core::Precision kv = kvlab::core::Precision::defaults(dtype);
    EngineOptions o;
    o.max_tokens = std::max(256, max_batch);
    o.max_seqs = max_batch;
    o.max_context = max_context + 64;
    o.kv_precision = kv;
    std::vector<std::vector<double>> measured(batch_list.size());
    {
      Engine engine(shape, o);
      for (size_t i = 0; i < batch_list.size(); ++i) {
        for (const int c : context_list) {
          const std::vector<EngineRow> rows(static_cast<size_t>(batch_list[i]), EngineRow{c, 1, true, true});
          measured[i].push_back(engine.time(rows, 2, 10).gpu_s * 1e3);
        }
      }
    }
    cudaStream_t stream = nullptr;
    KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    for (size_t i = 0; i < batch_list.size(); ++i) {
      for (size_t j = 0; j < context_list.size(); ++j) {
        const int b = batch_list[i], c = context_list[j];
        const double step_ms = measured[i][j];
        double sum_ms = 0;
        for (const KernelShare& k : time_dense_decode_kernels(shape, kv, b, c, stream)) {
          const double ms = k.seconds * 1e3 * k.calls_per_step;
          sum_ms += ms;
          std::printf("%s,%d,%d,%s,%d,%.2f,%.3f,%.3f\n", name.c_str(), b, c, k.name.c_str(), k.calls_per_step, k.seconds * 1e6, ms,
                      ms / step_ms);
        }
        std::printf("%s,%d,%d,sum of the above,,,%.3f,%.3f\n", name.c_str(), b, c, sum_ms, sum_ms / step_ms);
        std::printf("%s,%d,%d,engine step measured (graph),1,,%.3f,1.000\n", name.c_str(), b, c, step_ms);
        std::printf("%s,%d,%d,measured minus sum,,,%.3f,%.3f\n", name.c_str(), b, c, step_ms - sum_ms, (step_ms - sum_ms) / step_ms);
        std::fflush(stdout);
      }
    }
    cudaStreamDestroy(stream);
  }
  return 0;
}
