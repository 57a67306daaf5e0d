// SPDX-License-Identifier: Apache-2.0
// `kvlab calibrate --gpu <name>`: times the GPU engine's kernels on this machine
// (gpu/engine/microbench.h), fits the cost model's terms to them (runner/calibration_fit.h)
// and writes configs/calibration/<name>.yaml — every key of sim::Calibration, each with where
// it came from, and the `measured:` section with the date, commit and machine — plus the
// raw timings as CSV. Built only where CUDA is.
#include "experiments/calibrate_command.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>

#include <cuda_runtime.h>
#include <fmt/core.h>

#include "core/config/config_node.h"
#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/file_text.h"
#include "experiments/calibrate_moe.h"
#include "experiments/runner/calibration_fit.h"
#include "experiments/runner/measured_calibration.h"
#include "experiments/runner/point_folder.h"
#include "experiments/runner/sim_config_parser.h"
#include "gpu/cuda_check.h"
#include "gpu/engine/microbench.h"
#include "sim/sim_config.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;
using gpu::engine::AttentionShapeCase;

struct CalibrateOptions {
  std::string gpu;
  std::string model = "llama-3.1-8b";
  std::string out;
  std::string raw;
  std::string commit = "unknown";
  std::string moe_model = "qwen3-30b-a3b";  // whose MoE layer is timed; "none": no MoE terms
  bool moe_only = false;                    // time only the MoE terms, merged into the existing file
  bool fp8_gemm_only = false;
};

std::string today() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[16];
  std::strftime(text, sizeof(text), "%Y-%m-%d", &utc);
  return text;
}

// `--moe-only`: the MoE terms timed and written into the existing calibration file, whose
// other terms (and their date and commit) stay as measured.
void calibrate_moe_only(const CalibrateOptions& o, const core::GpuSpec& spec, const fs::path& out, cudaStream_t stream) {
  if (!fs::exists(out)) throw core::ConfigError(out.string() + ": --moe-only adds to a calibration file; there is none");
  const std::string machine = gpu::engine::device_description();
  std::cerr << fmt::format("kvlab calibrate --moe-only: {} as {} with {}'s MoE layer\n", machine, spec.name, o.moe_model);
  std::string raw = "kind,name,dtype,tokens_or_batch,context,n,k,bytes,flops,seconds\n";
  const MoeCalibration moe = calibrate_moe(core::load_model(o.moe_model), spec.hbm_bandwidth.bytes_per_s, stream, raw);
  sim::MeasuredCalibration m;
  set_moe_terms(moe, m);
  const std::string note = fmt::format("terms: kvlab calibrate --moe-only on {} (commit {}, {}) at {}'s shapes; fit: experts {:.1f}% "
                                       "(leave-one-out), router {:.1f}%, MoE layer small kernels {:.1f}%",
                                       today(), o.commit, machine, o.moe_model, 100 * moe.experts_fit_error, 100 * moe.router_fit_error,
                                       100 * moe.layer_fit_error);
  const std::string merged = replace_moe_terms(core::read_file_text(out.string(), int64_t{1} << 24, "calibration"), m, note);
  // What is written must load: checked before the file is replaced.
  core::ConfigDocument doc = core::ConfigDocument::parse_string(merged, out.string());
  parse_calibration_file(doc.root());
  if (!doc.diagnostics().empty()) {
    throw core::ConfigError("kvlab calibrate --moe-only: the merged file would not load: " +
                            doc.diagnostics().items().front().to_string());
  }
  replace_file(out, merged);
  if (!o.raw.empty()) replace_file(o.raw, raw);
  std::cout << fmt::format("MoE terms of {} written into {}: {:.2f} us per MoE layer, share {:.3f} at {:.2f} rows per expert to "
                           "{:.3f} at {:.0f} (fit {:.1f}%); router {:.2f} us + {:.3f} ns/token (fit {:.1f}%)\n",
                           o.moe_model, out.string(), moe.experts.fixed_s * 1e6, moe.experts.share.front(),
                           moe.experts.rows_per_expert.front(), moe.experts.share.back(), moe.experts.rows_per_expert.back(),
                           100 * moe.experts_fit_error, moe.router_fixed_s * 1e6, moe.router_per_token_s * 1e9,
                           100 * moe.router_fit_error);
  std::cout << fmt::format("  MoE layer small kernels: {:.2f} us + {:.2f} ns/token (fit {:.1f}%)\n", moe.layer_fixed_s * 1e6,
                           moe.layer_per_token_s * 1e9, 100 * moe.layer_fit_error);
}

// The fp8-weight GEMMs of `shape`'s five weight shapes (each call quantizing its input, as
// the engine runs them), fitted against the GPU's fp8 rate; rows appended to `raw`.
GemmFit calibrate_fp8_gemms(const gpu::engine::EngineShape& shape, const core::GpuSpec& spec, std::span<const int> tokens,
                            cudaStream_t stream, std::string& raw) {
  const double fp8_rate = spec.fp8_rate.flops_per_s;
  if (!(fp8_rate > 0)) throw core::ConfigError(spec.name + ": the GPU spec has no fp8 rate; fp8 GEMMs cannot be calibrated");
  std::vector<GemmPoint> points;
  for (const gpu::engine::GemmTiming& t : gpu::engine::time_gemms(shape, tokens, stream, core::WeightDtype::kFp8)) {
    const double bytes = 1.0 * t.n * t.k, flops = 2.0 * t.tokens * t.n * t.k;  // one byte a weight
    points.push_back({static_cast<double>(t.tokens), bytes, flops, t.seconds});
    raw += fmt::format("gemm,{},fp8,{},0,{},{},{},{},{}\n", t.name, t.tokens, t.n, t.k, bytes, flops, t.seconds);
  }
  return fit_gemms(points, spec.hbm_bandwidth.bytes_per_s, fp8_rate);
}

sim::GemmTerms gemm_terms(const GemmFit& f) {
  return {f.memory_efficiency, f.fixed_s, f.compute_efficiency, f.half_tokens};
}

std::string describe_gemm_fit(const char* what, const GemmFit& f, double bandwidth, double rate) {
  return fmt::format("  {}: fixed {:.2f} us, weights at {:.1f}% of {:.2f} TB/s, compute {:.1f}% of {:.0f} TFLOP/s, "
                     "T½ {:.0f} tokens (fit {:.1f}%)\n",
                     what, f.fixed_s * 1e6, 100 * f.memory_efficiency, bandwidth / 1e12, 100 * f.compute_efficiency, rate / 1e12,
                     f.half_tokens, 100 * f.median_relative_error);
}

// --fp8-gemm-only: times the fp8 GEMMs alone and merges their terms into the existing
// calibration file, every other line kept as measured before.
void calibrate_fp8_only(const CalibrateOptions& o, const core::GpuSpec& spec, const gpu::engine::EngineShape& shape,
                        const fs::path& out, const std::vector<int>& tokens, cudaStream_t stream) {
  std::ifstream in(out);
  if (!in) throw std::runtime_error("kvlab calibrate --fp8-gemm-only: " + out.string() + " does not exist (run a full calibrate first)");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string raw = "kind,name,dtype,tokens_or_batch,context,n,k,bytes,flops,seconds\n";
  const GemmFit f = calibrate_fp8_gemms(shape, spec, tokens, stream, raw);
  const std::string note = fmt::format("measured on {} ({}), kvlab commit {}, by `kvlab calibrate --fp8-gemm-only` at {}'s shapes (fit {:.1f}%)",
                                       today(), gpu::engine::device_description(), o.commit, shape.model_name,
                                       100 * f.median_relative_error);
  replace_file(out, merge_fp8_gemm(text, fp8_gemm_yaml(gemm_terms(f)), note));
  if (!o.raw.empty()) replace_file(o.raw, raw);
  std::cout << fmt::format("fp8 GEMM terms of {} merged into {}\n", spec.name, out.string());
  std::cout << describe_gemm_fit("fp8 GEMM", f, spec.hbm_bandwidth.bytes_per_s, spec.fp8_rate.flops_per_s);
}

void calibrate(const CalibrateOptions& o) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    throw std::runtime_error("kvlab calibrate: no CUDA device here; calibrate on the GPU machine (docs/sim-accuracy.md)");
  }
  const core::GpuSpec spec = core::load_gpu(o.gpu);
  if (o.moe_only) {
    const fs::path moe_out = o.out.empty() ? fs::path(core::configs_dir()) / "calibration" / (spec.name + ".yaml") : fs::path(o.out);
    cudaStream_t moe_stream = nullptr;
    KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&moe_stream, cudaStreamNonBlocking));
    calibrate_moe_only(o, spec, moe_out, moe_stream);
    cudaStreamDestroy(moe_stream);
    return;
  }
  const core::ModelSpec model = core::load_model(o.model);
  const gpu::engine::EngineShape shape = gpu::engine::engine_shape(model);
  if (shape.moe()) {
    throw core::ConfigError(o.model + ": kvlab calibrate times a dense model's kernels (the expert GEMMs are not timed yet); "
                            "pass a dense --model");
  }
  const double bandwidth = spec.hbm_bandwidth.bytes_per_s, rate = spec.bf16_rate.flops_per_s;
  if (!(bandwidth > 0 && rate > 0)) throw core::ConfigError(o.gpu + ": the GPU spec needs hbm_bandwidth and bf16");
  const fs::path out = o.out.empty() ? fs::path(core::configs_dir()) / "calibration" / (spec.name + ".yaml") : fs::path(o.out);
  cudaStream_t stream = nullptr;
  KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const std::string machine = gpu::engine::device_description();
  std::cerr << fmt::format("kvlab calibrate: {} as {} with {}'s shapes\n", machine, spec.name, model.name);
  // GEMMs of every weight shape against the token count.
  const std::vector<int> gemm_tokens = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
  if (o.fp8_gemm_only) {
    calibrate_fp8_only(o, spec, shape, out, gemm_tokens, stream);
    cudaStreamDestroy(stream);
    return;
  }
  std::string raw = "kind,name,dtype,tokens_or_batch,context,n,k,bytes,flops,seconds\n";
  std::vector<GemmPoint> gemm_points;
  for (const gpu::engine::GemmTiming& t : gpu::engine::time_gemms(shape, gemm_tokens, stream)) {
    const double bytes = 2.0 * t.n * t.k, flops = 2.0 * t.tokens * t.n * t.k;
    gemm_points.push_back({static_cast<double>(t.tokens), bytes, flops, t.seconds});
    raw += fmt::format("gemm,{},bf16,{},0,{},{},{},{},{}\n", t.name, t.tokens, t.n, t.k, bytes, flops, t.seconds);
  }
  const GemmFit gemm = fit_gemms(gemm_points, bandwidth, rate);
  double gemm_factor_error = 0;
  const sim::GemmTokenFactor gemm_factor = gemm_token_factor(gemm_points, gemm, bandwidth, rate, &gemm_factor_error);
  // fp8 GEMMs: a failure there (cuBLASLt refusing the fp8 matmul on 2026-12-03's H200, status
  // 15) must not cost the rest of the calibration; the file then has no fp8_gemm line, and
  // fp8-weight runs keep the bf16 terms with the fp8 rate, as for a GPU without fp8.
  bool with_fp8 = spec.fp8_rate.flops_per_s > 0;
  GemmFit gemm_fp8;
  if (with_fp8) {
    try {
      gemm_fp8 = calibrate_fp8_gemms(shape, spec, gemm_tokens, stream, raw);
    } catch (const std::exception& e) {
      with_fp8 = false;
      KVLAB_CUDA_CHECK(cudaGetLastError());
      std::cerr << "  fp8 GEMMs not timed (no fp8_gemm terms written): " << e.what() << "\n";
    }
  }
  std::cerr << "  GEMMs timed\n";

  // Decode attention per KV format.
  std::vector<core::Precision> formats;
  for (const core::KvDtype d : {core::KvDtype::kBf16, core::KvDtype::kFp8E4m3, core::KvDtype::kInt8, core::KvDtype::kInt4}) {
    formats.push_back(core::Precision::defaults(d));
  }
  // A grid of batch × tokens per sequence (the cost model's table), without the cells past
  // 2^20 tokens a layer (4 GiB of bf16 KV at Llama-3.1-8B's width), which the table fills from
  // the largest batch timed at their context (calibration_fit.h).
  std::vector<AttentionShapeCase> decode_cases;
  for (const int batch : {1, 4, 16, 64, 256}) {
    for (const int context : {256, 1024, 4096, 16384}) {
      if (int64_t{batch} * context <= (int64_t{1} << 20)) decode_cases.push_back({batch, context});
    }
  }
  std::vector<AttentionPoint> attention_points;
  std::vector<AttentionGridPoint> grid_points;
  for (const gpu::engine::AttentionTiming& t : gpu::engine::time_decode_attention(shape, formats, decode_cases, stream)) {
    attention_points.push_back({t.dtype, t.kv_bytes, t.seconds});
    grid_points.push_back({t.dtype, t.batch, t.context, t.kv_bytes, t.seconds});
    raw += fmt::format("decode_attention,paged_decode,{},{},{},0,0,{},0,{}\n", core::to_string(t.dtype), t.batch, t.context,
                       t.kv_bytes, t.seconds);
  }
  const AttentionFit attention = fit_attention(attention_points, bandwidth);
  const sim::DecodeAttentionTable attention_table = decode_attention_table(grid_points, attention.fixed_s, bandwidth);
  std::cerr << "  decode attention timed\n";

  // Prefill attention: FLOP rate of the chunked-prefill kernel (chunks of ≥ 1024 tokens).
  const std::vector<AttentionShapeCase> prefill_cases = {{512, 0}, {1024, 0}, {2048, 0}, {4096, 0}, {1024, 4096}, {2048, 8192}};
  std::vector<double> prefill_rates;
  for (const gpu::engine::PrefillTiming& t : gpu::engine::time_prefill_attention(shape, prefill_cases, stream)) {
    raw += fmt::format("prefill_attention,prefill,bf16,{},{},0,0,0,{},{}\n", t.chunk, t.context, t.flops, t.seconds);
    if (t.chunk >= 1024) prefill_rates.push_back(t.flops / t.seconds);
  }
  std::sort(prefill_rates.begin(), prefill_rates.end());
  const double prefill_efficiency = std::clamp(prefill_rates[prefill_rates.size() / 2] / rate, 1e-3, 1.0);
  std::cerr << "  prefill attention timed\n";

  // One layer's small kernels against the token count.
  const std::vector<int> layer_tokens = {1, 16, 64, 256, 1024, 4096, 8192};
  std::vector<double> layer_x, layer_t;
  for (const gpu::engine::LayerKernelTiming& t :
       gpu::engine::time_layer_kernels(shape, core::Precision::defaults(core::KvDtype::kBf16), layer_tokens, stream)) {
    layer_x.push_back(t.tokens);
    layer_t.push_back(t.seconds);
    raw += fmt::format("layer_kernels,rope+append+norms+swiglu,bf16,{},0,0,0,0,0,{}\n", t.tokens, t.seconds);
  }
  const LayerFit layer = fit_layer(layer_x, layer_t);
  // The same kernels with each quantized KV format: what its append adds beyond bf16's.
  std::array<double, 7> layer_extra_fixed{}, layer_extra_per_token{};
  for (const core::Precision& p : formats) {
    if (p.dtype == core::KvDtype::kBf16) continue;
    std::vector<double> x, y;
    for (const gpu::engine::LayerKernelTiming& t : gpu::engine::time_layer_kernels(shape, p, layer_tokens, stream)) {
      x.push_back(t.tokens);
      y.push_back(t.seconds);
      raw += fmt::format("layer_kernels,rope+append+norms+swiglu,{},{},0,0,0,0,0,{}\n", core::to_string(p.dtype), t.tokens, t.seconds);
    }
    const LayerFit f = fit_layer(x, y);
    layer_extra_fixed[static_cast<size_t>(p.dtype)] = f.fixed_s - layer.fixed_s;
    layer_extra_per_token[static_cast<size_t>(p.dtype)] = f.per_token_s - layer.per_token_s;
  }
  const double step_fixed = gpu::engine::time_step_fixed(shape, stream);
  raw += fmt::format("step_fixed,upload+embed+norm+gather+argmax,bf16,1,0,0,0,0,0,{}\n", step_fixed);
  const double copy = gpu::engine::copy_bandwidth(size_t{2} << 30, stream);
  raw += fmt::format("copy,copy_kernel_16B,,0,0,0,0,{},0,{}\n", 2.0 * (size_t{2} << 30), 2.0 * (size_t{2} << 30) / copy);
  const double memcpy_copy = gpu::engine::memcpy_bandwidth(size_t{2} << 30, stream);  // beside it, not used by the fit
  raw += fmt::format("copy,cudaMemcpy_d2d,,0,0,0,0,{},0,{}\n", 2.0 * (size_t{2} << 30), 2.0 * (size_t{2} << 30) / memcpy_copy);
  std::optional<MoeCalibration> moe;
  if (o.moe_model != "none") moe = calibrate_moe(core::load_model(o.moe_model), bandwidth, stream, raw);
  const gpu::engine::HostLinkTiming link = gpu::engine::host_link_bandwidth(size_t{256} << 20, stream);
  raw += fmt::format("host_link,to_device,,0,0,0,0,{},0,{}\n", 256.0 * (1 << 20), 256.0 * (1 << 20) / link.to_device_bytes_per_s);
  raw += fmt::format("host_link,to_host,,0,0,0,0,{},0,{}\n", 256.0 * (1 << 20), 256.0 * (1 << 20) / link.to_host_bytes_per_s);
  cudaStreamDestroy(stream);

  sim::MeasuredCalibration m;
  m.measured_on = today();
  m.commit = o.commit;
  m.machine = machine;
  m.gemm_memory_efficiency = gemm.memory_efficiency;
  m.gemm_fixed_s = gemm.fixed_s;
  m.gemm_token_factor = gemm_factor;
  if (with_fp8) m.fp8_gemm = gemm_terms(gemm_fp8);
  m.attention_memory_efficiency = attention.memory_efficiency;
  m.attention_fixed_s = attention.fixed_s;
  m.decode_attention_table = attention_table;
  m.layer_fixed_s = layer.fixed_s;
  m.layer_per_token_s = layer.per_token_s;
  m.layer_extra_fixed_s = layer_extra_fixed;
  m.layer_extra_per_token_s = layer_extra_per_token;
  if (moe) set_moe_terms(*moe, m);
  m.host_link_bytes_per_s = std::min(link.to_device_bytes_per_s, link.to_host_bytes_per_s);

  CalibrationFile file;
  file.gpu = spec.name;
  file.model = model.name;
  file.raw_file = o.raw.empty() ? "" : fs::path(o.raw).filename().string();
  file.peak_bandwidth = bandwidth;
  file.copy_bandwidth = copy;
  file.compute_efficiency = gemm.compute_efficiency;
  file.half_tokens = gemm.half_tokens;
  file.prefill_efficiency = prefill_efficiency;
  file.step_fixed_s = step_fixed;
  file.gemm_fit_error = gemm.median_relative_error;
  file.gemm_factor_fit_error = gemm_factor_error;
  file.attention_fit_error = attention.median_relative_error;
  file.layer_fit_error = layer.median_relative_error;
  if (moe) {
    file.moe_model = o.moe_model;
    file.moe_fit_error = moe->experts_fit_error;
    file.moe_router_fit_error = moe->router_fit_error;
  }
  file.measured = m;
  const std::string y = calibration_file_yaml(file);
  replace_file(out, y);
  if (!o.raw.empty()) replace_file(o.raw, raw);

  std::cout << fmt::format("calibration of {} written to {}\n", spec.name, out.string());
  std::cout << describe_gemm_fit("GEMM", gemm, bandwidth, rate);
  if (with_fp8) std::cout << describe_gemm_fit("fp8 GEMM", gemm_fp8, bandwidth, spec.fp8_rate.flops_per_s);
  std::string formats_line;
  for (const core::Precision& p : formats) {
    formats_line += fmt::format(" {} {:.1f}%", core::to_string(p.dtype), 100 * attention.memory_efficiency[static_cast<size_t>(p.dtype)]);
  }
  std::cout << fmt::format("  decode attention: fixed {:.2f} us,{} of bandwidth (fit {:.1f}%)\n", attention.fixed_s * 1e6,
                           formats_line, 100 * attention.median_relative_error);
  for (const core::Precision& p : formats) {
    const std::vector<double>& cells = attention_table.share[static_cast<size_t>(p.dtype)];
    if (cells.empty()) continue;
    const auto [lo, hi] = std::minmax_element(cells.begin(), cells.end());
    std::cout << fmt::format("  decode attention table, {}: {:.1f}% to {:.1f}% of bandwidth over {} batches × {} contexts\n",
                             core::to_string(p.dtype), 100 * *lo, 100 * *hi, attention_table.batches.size(),
                             attention_table.contexts.size());
  }
  std::cout << fmt::format("  prefill attention: {:.1f}% of the bf16 rate\n", 100 * prefill_efficiency);
  std::cout << fmt::format("  layer small kernels: {:.2f} us + {:.2f} ns/token (fit {:.1f}%)\n", layer.fixed_s * 1e6,
                           layer.per_token_s * 1e9, 100 * layer.median_relative_error);
  for (const core::Precision& p : formats) {
    if (p.dtype == core::KvDtype::kBf16) continue;
    std::cout << fmt::format("    with {} KV: {:+.2f} us {:+.2f} ns/token\n", core::to_string(p.dtype),
                             layer_extra_fixed[static_cast<size_t>(p.dtype)] * 1e6, layer_extra_per_token[static_cast<size_t>(p.dtype)] * 1e9);
  }
  if (moe) {
    std::cout << fmt::format("  MoE ({}): {:.2f} us per MoE layer, experts' weights at {:.3f} of peak at {:.2f} rows per used expert "
                             "to {:.3f} at {:.0f} (leave-one-out {:.1f}%); router top-k {:.2f} us + {:.3f} ns/token (fit {:.1f}%)\n",
                             o.moe_model, moe->experts.fixed_s * 1e6, moe->experts.share.front(), moe->experts.rows_per_expert.front(),
                             moe->experts.share.back(), moe->experts.rows_per_expert.back(), 100 * moe->experts_fit_error,
                             moe->router_fixed_s * 1e6, moe->router_per_token_s * 1e9, 100 * moe->router_fit_error);
    std::cout << fmt::format("  MoE layer small kernels: {:.2f} us + {:.2f} ns/token (fit {:.1f}%)\n", moe->layer_fixed_s * 1e6,
                             moe->layer_per_token_s * 1e9, 100 * moe->layer_fit_error);
  }
  std::cout << fmt::format("  step fixed {:.2f} us; copy {:.2f} TB/s; host link {:.1f} / {:.1f} GB/s (to device / to host)\n",
                           step_fixed * 1e6, copy / 1e12, link.to_device_bytes_per_s / 1e9, link.to_host_bytes_per_s / 1e9);
}

}  // namespace

void register_calibrate_command(CLI::App& app) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate", "Time the GPU engine's kernels here and write the cost model's calibration (configs/calibration/<gpu>.yaml)");
  cmd->add_option("--gpu", o->gpu, "catalog GPU this machine is (its datasheet peaks; the file's name)")->required();
  cmd->add_option("--model", o->model, "catalog model whose weight shapes are timed")->capture_default_str();
  cmd->add_option("--out", o->out, "calibration file (default: configs/calibration/<gpu>.yaml)");
  cmd->add_option("--raw", o->raw, "also write every timing to this CSV");
  cmd->add_option("--commit", o->commit, "the kvlab commit being measured (recorded in the file)")->capture_default_str();
  cmd->add_option("--moe-model", o->moe_model, "catalog MoE model whose expert half and router are timed (none: no MoE terms)")
      ->capture_default_str();
  cmd->add_flag("--moe-only", o->moe_only, "time only the MoE terms and write them into the existing calibration file (--out)");
  cmd->add_flag("--fp8-gemm-only", o->fp8_gemm_only,
                "time only the fp8-weight GEMMs and merge their terms (measured.fp8_gemm) into the existing --out file");
  cmd->callback([o] { calibrate(*o); });
}

}  // namespace kvlab::experiments
