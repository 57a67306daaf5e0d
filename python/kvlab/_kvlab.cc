// SPDX-License-Identifier: Apache-2.0
// The `kvlab._kvlab` extension: a thin pybind11 layer over core/ (capacity, model and GPU
// facts, KV plans and their footprint) and experiments/runner + sim/ (`run`). Results come
// back as plain dicts and column lists; python/kvlab/__init__.py turns them into pandas
// DataFrames. User errors (core::ConfigError) raise kvlab.ConfigError, a ValueError, with the
// same file:line diagnostics the command line prints.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/capacity.h"
#include "core/config/config_node.h"
#include "core/config/kv_plan_loader.h"
#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/footprint.h"
#include "experiments/runner/experiment_config.h"
#include "experiments/runner/result_files.h"
#include "sim/simulate.h"

namespace py = pybind11;
using namespace kvlab;

namespace {

py::object from_json(const nlohmann::ordered_json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

core::Precision precision_of(const std::string& dtype, int group_size) {
  core::KvDtype d;
  if (!core::parse_kv_dtype(dtype, &d)) {
    throw core::ConfigError("kv_dtype: expected bf16, fp16, fp8, int8, int6, int5 or int4 (got \"" + dtype + "\")");
  }
  core::Precision p = core::Precision::defaults(d);
  if (group_size != 0) p.group_size = group_size;
  return p;
}

py::dict capacity(const std::string& model, const std::string& gpu, const std::string& context, int num_gpus,
                  const std::string& weights, const std::string& kv_dtype, int kv_group_size, int block_size,
                  double gpu_memory_utilization) {
  core::CapacityInput in;
  in.model = core::load_model(model);
  in.gpu = core::load_gpu(gpu);
  in.num_gpus = num_gpus;
  if (!core::parse_weight_dtype(weights, &in.weights)) throw core::ConfigError("weights: expected bf16, fp8 or int4");
  in.kv_precision = precision_of(kv_dtype, kv_group_size);
  in.block_size = block_size;
  in.gpu_memory_utilization = gpu_memory_utilization;
  in.context_tokens = core::parse_tokens(context);
  const core::CapacityReport r = core::compute_capacity(in);
  py::dict d;
  d["model"] = in.model.name;
  d["gpu"] = in.gpu.name;
  d["num_gpus"] = num_gpus;
  d["kv_dtype"] = core::describe(in.kv_precision);
  d["context_tokens"] = in.context_tokens;
  d["weights_bytes"] = r.weights_bytes;
  d["weights_bytes_per_gpu"] = r.weights_bytes_per_gpu;
  d["usable_bytes_per_gpu"] = r.usable_bytes_per_gpu;
  d["kv_bytes_per_token"] = r.kv_bytes_per_token;
  d["kv_bytes_available"] = r.kv_bytes_available;
  d["sequence_bytes_per_gpu"] = r.sequence_bytes_per_gpu;
  d["max_sequences"] = r.max_sequences;
  d["reason"] = r.reason;
  std::vector<std::pair<std::string, std::string>> steps;
  for (const core::CapacityStep& s : r.steps) steps.emplace_back(s.label, s.formula);
  d["steps"] = steps;
  return d;
}

py::dict model_facts(const std::string& name) {
  const core::ModelSpec m = core::load_model(name);
  const core::ParamCounts p = core::count_params(m);
  py::dict d;
  d["name"] = m.name;
  d["source"] = m.source;
  d["num_layers"] = m.num_layers;
  d["hidden_size"] = m.hidden_size;
  d["num_q_heads"] = m.num_q_heads;
  d["num_kv_heads"] = m.num_kv_heads;
  d["head_dim"] = m.head_dim;
  d["mla"] = m.mla.has_value();
  d["moe"] = m.moe.has_value();
  d["params_total"] = p.total();
  d["params_active"] = p.active;
  d["kv_bytes_per_token"] = core::kv_bytes_per_token(core::make_baseline_plan(m, core::Precision{}));
  d["max_context_tokens"] = m.max_context_tokens;
  return d;
}

// A `kv_plan:` section as YAML text (JSON is YAML too) for `model`, parsed by core's loader.
core::KvPlan load_plan(const std::string& model, const std::string& plan_yaml) {
  const core::ModelSpec m = core::load_model(model);
  core::ConfigDocument doc = core::ConfigDocument::parse_string(plan_yaml, "<kv_plan>");
  core::KvPlan plan = core::parse_kv_plan(doc.root(), m);
  doc.throw_if_errors();
  return plan;
}

py::dict plan_footprint(const std::string& model, const std::string& plan_yaml, const std::string& tokens) {
  const core::KvPlan plan = load_plan(model, plan_yaml);
  const core::SequenceFootprint f = core::sequence_footprint(plan, core::parse_tokens(tokens));
  const core::StepCost step = core::decode_step_cost(plan, core::parse_tokens(tokens));
  py::dict d;
  d["kv_bytes_per_token"] = core::kv_bytes_per_token(plan);
  d["bytes_stored"] = f.bytes_stored;
  d["bytes_filled"] = f.bytes_filled;
  d["pages"] = f.pages;
  d["state_bytes"] = f.state_bytes;
  d["fragmentation_bytes"] = f.fragmentation_bytes();
  d["decode_kv_bytes_read"] = step.kv_bytes_read;
  d["decode_tokens_attended"] = step.tokens_attended;
  py::list groups;
  for (const core::GroupFootprint& g : f.groups) {
    py::dict gd;
    gd["name"] = g.name;
    gd["retained_tokens"] = g.retained_tokens;
    gd["page_tables"] = g.page_tables;
    gd["pages"] = g.pages;
    gd["bytes_stored"] = g.bytes_stored;
    gd["bytes_filled"] = g.bytes_filled;
    groups.append(gd);
  }
  d["groups"] = groups;
  return d;
}

// Every point of an experiment file: its name, summary (summary.json's keys) and requests
// as columns.
py::list run(const std::string& path, const std::vector<std::string>& overrides) {
  const experiments::Experiment e = experiments::load_experiment(path, overrides);
  py::list points;
  for (size_t i = 0; i < e.points.size(); ++i) {
    sim::SimResult result;
    double wall_s = 0;
    {
      py::gil_scoped_release release;
      const auto started = std::chrono::steady_clock::now();
      result = sim::simulate(e.resolved[i].sim.config);
      wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    }
    py::dict point;
    point["name"] = e.points[i].name;
    std::vector<std::pair<std::string, std::string>> values;
    for (const auto& [key, value] : e.points[i].set) values.emplace_back(key, value.text);
    point["values"] = values;
    point["summary"] = from_json(experiments::summary_object(result.summary, wall_s));
    std::vector<int64_t> id, prompt, output, preemptions, replica;
    std::vector<double> arrival, first_token, finish;
    std::vector<std::string> rejected;
    for (const sim::RequestRecord& r : result.requests) {
      id.push_back(r.id);
      arrival.push_back(r.arrival_s);
      first_token.push_back(r.first_token_s);
      finish.push_back(r.finish_s);
      prompt.push_back(r.prompt_tokens);
      output.push_back(r.output_tokens);
      preemptions.push_back(r.preemptions);
      replica.push_back(r.replica);
      rejected.push_back(r.rejected);
    }
    py::dict requests;
    requests["id"] = id;
    requests["arrival_s"] = arrival;
    requests["first_token_s"] = first_token;
    requests["finish_s"] = finish;
    requests["prompt_tokens"] = prompt;
    requests["output_tokens"] = output;
    requests["preemptions"] = preemptions;
    requests["replica"] = replica;
    requests["rejected"] = rejected;
    point["requests"] = requests;
    points.append(point);
  }
  return points;
}

// The sweep's points without running them: (folder name, resolved.yaml) — a single-point
// experiment that reruns exactly that point (what distributed sweeps send to workers).
std::vector<std::pair<std::string, std::string>> points(const std::string& path, const std::vector<std::string>& overrides) {
  const experiments::Experiment e = experiments::load_experiment(path, overrides);
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < e.points.size(); ++i) out.emplace_back(e.points[i].name, e.resolved[i].resolved_yaml);
  return out;
}

}  // namespace

PYBIND11_MODULE(_kvlab, m) {
  m.doc() = "kvlab's C++ core, simulator and experiment runner (see python/kvlab/__init__.py)";
  py::register_exception<core::ConfigError>(m, "ConfigError", PyExc_ValueError);
  m.def("capacity", &capacity, py::arg("model"), py::arg("gpu"), py::arg("context"), py::arg("num_gpus") = 1,
        py::arg("weights") = "bf16", py::arg("kv_dtype") = "bf16", py::arg("kv_group_size") = 0,
        py::arg("block_size") = 16, py::arg("gpu_memory_utilization") = 0.9,
        "How many sequences of `context` tokens fit (core::compute_capacity, as `kvlab capacity`)");
  m.def("model", &model_facts, py::arg("name"), "A catalog model's architecture facts and parameter counts");
  m.def("catalog", &core::catalog_names, py::arg("kind"), "Catalog names of a kind: models, gpus, clusters");
  m.def("plan_footprint", &plan_footprint, py::arg("model"), py::arg("plan_yaml"), py::arg("tokens"),
        "Bytes and pages one sequence of `tokens` holds under a kv_plan (YAML or JSON text)");
  m.def("points", &points, py::arg("path"), py::arg("overrides") = std::vector<std::string>{},
        "Every point of an experiment file: (folder name, resolved.yaml text), nothing run");
  m.def("run", &run, py::arg("path"), py::arg("overrides") = std::vector<std::string>{},
        "Simulate every point of an experiment file (docs/experiments.md); nothing is written");
}
