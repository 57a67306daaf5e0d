// SPDX-License-Identifier: Apache-2.0
#include "experiments/capacity_command.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/capacity.h"
#include "core/config/spec_loader.h"
#include "core/error.h"
#include "experiments/atomic_file.h"

namespace kvlab::experiments {
namespace {

struct CapacityOptions {
  std::string model;
  std::string gpu;
  int num_gpus = 1;
  std::string weights = "bf16";
  std::string kv_dtype = "bf16";
  int kv_group_size = 0;
  int block_size = 16;
  double gpu_memory_utilization = 0.9;
  std::string context;
  bool json = false;
  bool catalog = false;
  std::string out = "results/capacity";
};

core::CapacityInput make_input(const CapacityOptions& o, const core::ModelSpec& model,
                               const core::GpuSpec& gpu, int64_t context) {
  core::CapacityInput in;
  in.model = model;
  in.gpu = gpu;
  in.num_gpus = o.num_gpus;
  if (!core::parse_weight_dtype(o.weights, &in.weights)) {
    throw core::ConfigError(fmt::format("--weights: expected bf16, fp8 or int4 (got \"{}\")", o.weights));
  }
  core::KvDtype dtype;
  if (!core::parse_kv_dtype(o.kv_dtype, &dtype)) {
    throw core::ConfigError(
        fmt::format("--kv-dtype: expected bf16, fp16, fp8, int8, int6, int5 or int4 (got \"{}\")", o.kv_dtype));
  }
  in.kv_precision = core::Precision::defaults(dtype);
  if (o.kv_group_size != 0) {
    if (!core::is_integer(dtype)) {
      throw core::ConfigError(fmt::format("--kv-group-size: only integer KV formats have scale groups (got --kv-dtype {})", o.kv_dtype));
    }
    in.kv_precision.group_size = o.kv_group_size;
    if (std::string why = core::make_baseline_plan(model, in.kv_precision, o.block_size).validate(); !why.empty()) {
      throw core::ConfigError("--kv-group-size: " + why);
    }
  }
  in.block_size = o.block_size;
  in.gpu_memory_utilization = o.gpu_memory_utilization;
  in.context_tokens = context;
  return in;
}

int64_t parse_context(const std::string& text) {
  try {
    return core::parse_tokens(text);
  } catch (const core::UnitError& e) {
    throw core::ConfigError(fmt::format("--context: {}", e.what()));
  }
}

// core names inputs by their field (num_gpus); the user typed a flag (--num-gpus).
core::ConfigError with_flag_names(const core::ConfigError& e) {
  std::vector<core::Diagnostic> out = e.diagnostics();
  for (core::Diagnostic& d : out) {
    if (d.key_path == "model" || d.key_path == "context" || d.key_path == "num_gpus" ||
        d.key_path == "block_size" || d.key_path == "gpu_memory_utilization") {
      std::string flag = "--" + d.key_path;
      for (char& c : flag) c = c == '_' ? '-' : c;
      d.key_path = flag;
    }
  }
  return core::ConfigError(out);
}

nlohmann::ordered_json to_json(const core::CapacityInput& in, const core::CapacityReport& r) {
  nlohmann::ordered_json j;
  j["model"] = in.model.name;
  j["gpu"] = in.gpu.name;
  j["num_gpus"] = in.num_gpus;
  j["weights_dtype"] = core::to_string(in.weights);
  j["kv_dtype"] = core::describe(in.kv_precision);
  j["block_size"] = in.block_size;
  j["gpu_memory_utilization"] = in.gpu_memory_utilization;
  j["context_tokens"] = in.context_tokens;
  j["weights_bytes"] = r.weights_bytes;
  j["weights_bytes_per_gpu"] = r.weights_bytes_per_gpu;
  j["usable_bytes_per_gpu"] = r.usable_bytes_per_gpu;
  j["kv_bytes_per_token"] = r.kv_bytes_per_token;
  j["kv_bytes_available"] = r.kv_bytes_available;
  j["sequence_bytes_per_gpu"] = r.sequence_bytes_per_gpu;
  j["max_sequences"] = r.max_sequences;
  if (!r.reason.empty()) j["reason"] = r.reason;
  return j;
}

void run_single(const CapacityOptions& o) {
  if (o.model.empty() || o.gpu.empty() || o.context.empty()) {
    throw core::ConfigError("capacity needs --model, --gpu and --context (or --catalog)");
  }
  const int64_t context = parse_context(o.context);
  const core::CapacityInput in = make_input(o, core::load_model(o.model), core::load_gpu(o.gpu), context);
  core::CapacityReport r;
  try {
    r = core::compute_capacity(in);
  } catch (const core::ConfigError& e) {
    throw with_flag_names(e);
  }
  if (o.json) {
    std::cout << to_json(in, r).dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("{} on {} × {}, weights {}, KV {}, context {} tokens\n", in.model.name,
                           in.num_gpus, in.gpu.name, core::to_string(in.weights),
                           core::describe(in.kv_precision), context);
  for (const core::CapacityStep& s : r.steps) std::cout << fmt::format("  {:<22} {}\n", s.label + ":", s.formula);
  if (context > in.model.max_context_tokens) {
    std::cout << fmt::format("  note: {} tokens exceeds the model's max context of {}\n", context,
                             in.model.max_context_tokens);
  }
  std::cout << "  (GiB = 2^30 bytes, GB = 10^9 bytes; activation workspace and CUDA graphs are not\n"
               "   subtracted: vLLM profiles them at start)\n";
}

// Every catalog model × GPU on 1 and 8 GPUs, bf16 weights and KV, at four contexts.
void run_catalog(const CapacityOptions& o) {
  const std::vector<std::string> contexts = {"8k", "32k", "128k", "1M"};
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  std::string table =
      "| model | GPU | GPUs | weights/GPU (GiB) | KV room/GPU (GiB) | KV bytes/token | 8k | 32k | 128k | 1M |\n";
  table += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const std::string& model_name : core::catalog_names("models")) {
    const core::ModelSpec model = core::load_model(model_name);
    for (const std::string& gpu_name : core::catalog_names("gpus")) {
      const core::GpuSpec gpu = core::load_gpu(gpu_name);
      for (int num_gpus : {1, 8}) {
        CapacityOptions opt = o;
        opt.num_gpus = num_gpus;
        std::string cells;
        core::CapacityReport last;
        bool ok = true;
        for (const std::string& c : contexts) {
          const core::CapacityInput in = make_input(opt, model, gpu, parse_context(c));
          try {
            last = core::compute_capacity(in);
            rows.push_back(to_json(in, last));
            cells += fmt::format(" {} |", last.max_sequences);
          } catch (const core::ConfigError& e) {
            ok = false;
            cells += " — |";
          }
        }
        if (!ok) continue;  // heads not divisible by this GPU count: nothing to report
        table += fmt::format("| {} | {} | {} | {:.1f} | {:.1f} | {} |{}\n", model.name, gpu.name, num_gpus,
                             static_cast<double>(last.weights_bytes_per_gpu) / (1 << 30),
                             static_cast<double>(last.kv_bytes_available) / (1 << 30), last.kv_bytes_per_token,
                             cells);
      }
    }
  }
  const std::string header = fmt::format(
      "# Capacity of the built-in catalog\n\nMaximum concurrent sequences of each context, bf16 weights and "
      "KV, block size {}, gpu_memory_utilization {}; tensor parallelism over the GPUs; 0 = not even one fits "
      "(negative KV room: the weights alone do not fit). GiB = 2^30 bytes. Contexts: 8k = 8192, 32k = 32768, "
      "128k = 131072, 1M = 1048576 tokens. Made by `kvlab capacity --all-catalog`.\n\n",
      o.block_size, o.gpu_memory_utilization);
  std::filesystem::create_directories(o.out);
  write_file_atomically(o.out + "/capacity.md", header + table);
  write_file_atomically(o.out + "/capacity.json", rows.dump(2) + "\n");
  std::cout << header << table << fmt::format("\nwritten: {0}/capacity.md, {0}/capacity.json\n", o.out);
}

}  // namespace

void register_capacity_command(CLI::App& app) {
  auto options = std::make_shared<CapacityOptions>();
  CLI::App* cmd = app.add_subcommand("capacity", "How many sequences of a context fit, arithmetic shown");
  cmd->add_option("--model", options->model, "catalog name, model YAML, or HuggingFace config.json");
  cmd->add_option("--gpu", options->gpu, "catalog name or GPU YAML");
  cmd->add_option("--num-gpus", options->num_gpus, "GPUs in the tensor-parallel group")->capture_default_str();
  cmd->add_option("--weights", options->weights, "bf16, fp8 or int4")->capture_default_str();
  cmd->add_option("--kv-dtype", options->kv_dtype, "bf16, fp16, fp8, int8, int6, int5 or int4")->capture_default_str();
  cmd->add_option("--kv-group-size", options->kv_group_size,
                  "elements per scale group of integer KV (0: the dtype's default, 32)")->capture_default_str();
  cmd->add_option("--block-size", options->block_size, "tokens per KV page")->capture_default_str();
  cmd->add_option("--gpu-memory-utilization", options->gpu_memory_utilization, "share of HBM kvlab may use")
      ->capture_default_str();
  cmd->add_option("--context", options->context, "tokens per sequence: 4096, 128k, 1M");
  cmd->add_flag("--json", options->json, "print one JSON object");
  cmd->add_flag("--all-catalog,--catalog", options->catalog,
                "report every catalog model × GPU (1 and 8 GPUs) at 8k, 32k, 128k and 1M tokens");
  cmd->add_option("--out", options->out, "folder for --catalog's report")->capture_default_str();
  cmd->callback([options] { options->catalog ? run_catalog(*options) : run_single(*options); });
}

}  // namespace kvlab::experiments
