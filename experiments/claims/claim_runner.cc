// SPDX-License-Identifier: Apache-2.0
#include "experiments/claims/claim_runner.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/footprint.h"
#include "experiments/atomic_file.h"
#include "experiments/claims/subprocess.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;
using Params = std::vector<std::pair<std::string, std::string>>;

// What a measurement gave: a JSON result, or why there is none.
struct MeasureResult {
  nlohmann::json result;
  bool ok = false;
  bool waits = false;    // for a capability (the measurement's `needs`)
  std::string problem;   // when not ok
  std::string folder;    // relative to the claim's folder
};

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.size() > 300 ? line.substr(0, 300) + "…" : line;
}

std::string dashed(std::string key) {
  for (char& c : key) c = c == '_' ? '-' : c;
  return "--" + key;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json read_result_file(const fs::path& p) {
  const std::string text = read_text(p);
  if (p.extension() == ".json") return nlohmann::json::parse(text);
  core::ConfigDocument doc = core::ConfigDocument::parse_string(text, p.string());
  doc.throw_if_errors();
  return yaml_to_json(doc.root());
}

// Means of every numeric column of a CSV (the timeline's per-iteration split).
nlohmann::json csv_column_means(const fs::path& p) {
  std::ifstream in(p);
  std::string header;
  std::getline(in, header);
  std::vector<std::string> names;
  std::stringstream hs(header);
  for (std::string n; std::getline(hs, n, ',');) names.push_back(n);
  std::vector<double> sums(names.size(), 0);
  size_t rows = 0;
  for (std::string line; std::getline(in, line);) {
    std::stringstream ls(line);
    size_t i = 0;
    for (std::string cell; std::getline(ls, cell, ',') && i < names.size(); ++i) {
      try {
        sums[i] += std::stod(cell);
      } catch (const std::exception&) {
      }
    }
    ++rows;
  }
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < names.size(); ++i) j[names[i]] = rows > 0 ? sums[i] / static_cast<double>(rows) : 0.0;
  j["rows"] = rows;
  return j;
}

// The run's one point folder (the folder holding summary.json), or why there is none.
fs::path single_point(const fs::path& out) {
  std::vector<fs::path> points;
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.is_directory() && fs::exists(e.path() / "summary.json")) points.push_back(e.path());
  }
  if (points.size() != 1) {
    throw std::runtime_error(fmt::format("{}: a claim's run must have exactly one point (found {})", out.string(), points.size()));
  }
  return points[0];
}

nlohmann::json gpu_facts(const std::string& name) {
  const core::GpuSpec g = core::load_gpu(name);
  return {{"name", g.name},
          {"hbm_capacity_bytes", g.hbm_capacity.value},
          {"hbm_bandwidth_bytes_per_s", g.hbm_bandwidth.bytes_per_s},
          {"bf16_flops_per_s", g.bf16_rate.flops_per_s},
          {"fp8_flops_per_s", g.fp8_rate.flops_per_s},
          {"fp4_flops_per_s", g.fp4_rate.flops_per_s},
          {"num_sms", g.num_sms},
          {"source", g.source}};
}

// `context` (optional, "128k"): adds flops_per_token, the FLOPs of one token attending to that
// many (core::flops_per_token: matmuls over active parameters plus attention).
nlohmann::json model_facts(const std::string& name, const std::string& context) {
  const core::ModelSpec m = core::load_model(name);
  const core::ParamCounts p = core::count_params(m);
  int attention_layers = 0;
  for (int l = 0; l < m.num_layers; ++l) attention_layers += m.layer_kind(l) != core::LayerKind::kLinearState;
  nlohmann::json facts = {{"name", m.name},
          {"num_layers", m.num_layers},
          {"attention_layers", attention_layers},
          {"params_total", p.total()},
          {"params_active", p.active},
          {"kv_bytes_per_token", core::kv_bytes_per_token(core::make_baseline_plan(m, core::Precision{}))},
          {"source", m.source}};
  if (!context.empty()) {
    facts["context_tokens"] = core::parse_tokens(context);
    facts["flops_per_token"] = core::flops_per_token(m, core::parse_tokens(context));
  }
  return facts;
}

class MeasureRunner {
 public:
  MeasureRunner(const fs::path& claim_dir, std::string kvlab) : dir_(claim_dir), kvlab_(std::move(kvlab)) {}

  // Measures once per distinct (measurement, parameters); later readings reuse the result.
  MeasureResult get(const Measure& m, const Params& params) {
    const std::string key = m.name + "\x1f" + nlohmann::json(params).dump() + "\x1f" + m.document.dump();
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    int& n = counts_[m.name];
    const std::string folder = n == 0 ? m.name : fmt::format("{}~{}", m.name, n);
    ++n;
    MeasureResult r = measure(m, params, folder);
    r.folder = folder;
    cache_[key] = r;
    return r;
  }

 private:
  MeasureResult measure(Measure m, const Params& params, const std::string& folder) {
    const fs::path where = dir_ / folder;
    fs::create_directories(where);
    MeasureResult r;
    nlohmann::json record = {{"measure", m.name}, {"kind", to_string(m.kind)}, {"params", params}};
    // An accuracy experiment that writes a head profile writes it here, and the profile
    // joins the result (result.head_profile.…), so a claim can read the classes it measured.
    const fs::path profile_path = where / "head_profile.yaml";
    const bool writes_profile = m.kind == MeasureKind::kAccuracy && m.document.contains("head_profile_out");
    if (!m.document_key.empty()) {
      if (writes_profile) m.document["head_profile_out"] = profile_path.string();
      const fs::path doc_path = where / (m.document_key + ".yaml");
      // JSON is YAML flow syntax: kvlab reads it like any YAML file.
      write_file_atomically(doc_path.string(), m.document.dump(2) + "\n");
      record["document"] = m.document;
      if (m.document_key == "plan") {
        params_with_doc_ = params;
        params_with_doc_.emplace_back("plan", doc_path.string());
      } else {
        params_with_doc_ = {{"experiment", doc_path.string()}};
        params_with_doc_.insert(params_with_doc_.end(), params.begin(), params.end());
      }
    } else {
      params_with_doc_ = params;
    }
    const Params& all = params_with_doc_;
    auto param = [&](const std::string& k) {
      for (const auto& [key, value] : all) if (key == k) return value;
      return std::string();
    };
    auto from_process = [&](std::vector<std::string> argv) {
      record["command"] = display_command(argv);
      const ProcessResult p = run_process(argv, (where / "stdout.txt").string(), (where / "stderr.txt").string());
      record["exit_code"] = p.exit_code;
      if (p.exit_code != 0) {
        r.problem = first_line(p.stderr_text.empty() ? p.stdout_text : p.stderr_text);
        // Exit 2 is kvlab's "your input is wrong": for a measurement that waits on a
        // capability, the input kvlab rejects is that capability's.
        r.waits = p.exit_code == 2 && !m.needs.empty();
      }
      return p;
    };
    try {
      switch (m.kind) {
        case MeasureKind::kCapacity: {
          std::vector<std::string> argv = {kvlab_, "capacity", "--json"};
          for (const auto& [k, v] : all) {
            argv.push_back(dashed(k));
            argv.push_back(v);
          }
          const ProcessResult p = from_process(argv);
          if (p.exit_code == 0) {
            r.result = nlohmann::json::parse(p.stdout_text);
            r.ok = true;
          }
          break;
        }
        case MeasureKind::kRun:
        case MeasureKind::kAccuracy: {
          const bool run = m.kind == MeasureKind::kRun;
          const fs::path out = where / "out";
          std::vector<std::string> argv = {kvlab_, run ? "run" : "accuracy", param("experiment"), "--out", out.string(), "--no-plots"};
          for (const auto& [k, v] : all) {
            if (k == "experiment") continue;
            argv.push_back("--set");
            argv.push_back(k + "=" + v);
          }
          const ProcessResult p = from_process(argv);
          if (p.exit_code == 0) {
            if (run) {
              const fs::path point = single_point(out);
              r.result = nlohmann::json::parse(read_text(point / "summary.json"));
              r.result["timeline_mean"] = csv_column_means(point / "timeline.csv");
            } else {
              r.result = nlohmann::json::parse(read_text(out / "metrics.json"));
              if (writes_profile) r.result["head_profile"] = read_result_file(profile_path);
            }
            r.ok = true;
          }
          break;
        }
        case MeasureKind::kFile: {
          fs::path path = param("path");
          if (!fs::exists(path)) path = fs::path(KVLAB_SOURCE_DIR) / path;
          record["command"] = "read " + param("path");
          if (!fs::exists(path)) {
            r.problem = param("path") + " is not committed";
            r.waits = !m.needs.empty();
          } else {
            r.result = read_result_file(path);
            r.ok = true;
          }
          break;
        }
        case MeasureKind::kGpu:
        case MeasureKind::kModel:
          record["command"] = fmt::format("catalog lookup: {} {}", to_string(m.kind), param("name"));
          r.result = m.kind == MeasureKind::kGpu ? gpu_facts(param("name")) : model_facts(param("name"), param("context"));
          r.ok = true;
          break;
      }
    } catch (const core::ConfigError& e) {
      r.ok = false;
      r.problem = first_line(e.what());
    } catch (const std::exception& e) {
      r.ok = false;
      r.problem = first_line(e.what());
    }
    if (r.waits) r.problem = fmt::format("needs {}: {}", m.needs, r.problem);
    record["ok"] = r.ok;
    if (r.ok) record["result"] = r.result;
    if (!r.ok) record["problem"] = r.problem;
    write_file_atomically((where / "measurement.json").string(), record.dump(2) + "\n");
    return r;
  }

  fs::path dir_;
  std::string kvlab_;
  std::map<std::string, MeasureResult> cache_;
  std::map<std::string, int> counts_;
  Params params_with_doc_;
};

// Sets a dotted path inside a JSON document, creating maps on the way.
void set_path(nlohmann::json& doc, const std::string& dotted, const std::string& text) {
  nlohmann::json* j = &doc;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    const std::string key = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!j->is_object()) *j = nlohmann::json::object();
    j = &(*j)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // An explored value is always a scalar (claim_spec.cc). Not parsed as a YAML document:
  // a bare scalar document came back as an empty map, so every explored plan key was {}.
  *j = scalar_to_json(text);
}

double lookup(const nlohmann::json& root, const Reference& ref) {
  const nlohmann::json* j = &root;
  for (const std::string& step : ref.path) {
    if (step.front() == '[') {
      const size_t i = std::stoul(step.substr(1, step.size() - 2));
      if (!j->is_array() || i >= j->size()) throw std::runtime_error(fmt::format("{}: no element {}", ref.text(), step));
      j = &(*j)[i];
    } else {
      if (!j->is_object() || !j->contains(step)) throw std::runtime_error(fmt::format("{}: no field '{}'", ref.text(), step));
      j = &(*j)[step];
    }
  }
  if (j->is_boolean()) return j->get<bool>() ? 1.0 : 0.0;
  if (!j->is_number()) throw std::runtime_error(fmt::format("{} is not a number ({})", ref.text(), j->dump()));
  return j->get<double>();
}

std::string num(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "undefined (0/0)" : "unbounded (x/0)";
  return fmt::format("{:.4g}", v);
}

std::vector<std::vector<std::pair<std::string, std::string>>> combinations(const std::vector<ExploreAxis>& axes) {
  std::vector<std::vector<std::pair<std::string, std::string>>> out = {{}};
  for (const ExploreAxis& a : axes) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& partial : out) {
      for (const auto& assignment : a.assignments) {
        auto c = partial;
        c.insert(c.end(), assignment.begin(), assignment.end());
        next.push_back(std::move(c));
      }
    }
    out = std::move(next);
  }
  return out;
}

}  // namespace

std::string_view to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::kHolds: return "holds";
    case Verdict::kHoldsOnlyIf: return "holds only if";
    case Verdict::kRefuted: return "refuted";
    case Verdict::kNotComputable: return "not computable yet";
    case Verdict::kNotRun: return "not run";
  }
  return "?";
}

std::string Reading::text() const {
  std::string out;
  for (const auto& [k, v] : changes) out += (out.empty() ? "" : ", ") + k + "=" + v;
  return out.empty() ? "as written" : out;
}

ClaimOutcome decide(const Claim& claim, std::vector<Reading> readings, const std::string& not_computable_reason) {
  ClaimOutcome o;
  o.readings = std::move(readings);
  const std::string unit = claim.claimed.unit;
  if (o.readings.empty() || !o.readings[0].value) {
    o.verdict = Verdict::kNotComputable;
    o.detail = not_computable_reason;
    return o;
  }
  const double v = *o.readings[0].value;
  o.value = v;
  if (o.readings[0].holds) {
    o.verdict = Verdict::kHolds;
    o.detail = fmt::format("kvlab: {}{} (claimed {})", num(v), unit, claim.claimed.text());
    return o;
  }
  std::vector<std::string> passing;
  for (size_t i = 1; i < o.readings.size(); ++i) {
    const Reading& r = o.readings[i];
    if (r.holds) passing.push_back(fmt::format("{} ({}{})", r.text(), num(*r.value), unit));
  }
  if (!passing.empty()) {
    o.verdict = Verdict::kHoldsOnlyIf;
    o.detail = fmt::format("as written kvlab gives {}{} (claimed {}); holds with {}", num(v), unit, claim.claimed.text(),
                           fmt::join(passing, "; "));
    return o;
  }
  o.verdict = Verdict::kRefuted;
  const Claimed& c = claim.claimed;
  double reference = c.value;
  if (c.kind == Claimed::Kind::kRange) reference = v < c.low ? c.low : c.high;
  std::string off;
  if (std::isfinite(v) && reference != 0) {
    off = fmt::format(", {:+.1f}% from {}{}", 100.0 * (v - reference) / std::abs(reference), num(reference), unit);
  } else if (std::isfinite(v)) {
    off = fmt::format(", {} from 0", num(v));
  }
  o.detail = fmt::format("kvlab: {}{} against {} claimed{}", num(v), unit, c.text(), off);
  if (o.readings.size() > 1) {
    // Only readings that produced a number count as tried; the others are named as failed.
    size_t measured = 0;
    for (size_t i = 1; i < o.readings.size(); ++i) measured += o.readings[i].value.has_value() ? 1 : 0;
    o.detail += fmt::format("; no explored reading holds ({} measured", measured);
    if (measured + 1 < o.readings.size()) o.detail += fmt::format(", {} without a number", o.readings.size() - 1 - measured);
    o.detail += ")";
  }
  return o;
}

ClaimOutcome run_claim(const Claim& claim, const ClaimRunOptions& options) {
  const fs::path dir = fs::path(options.out) / claim.id;
  fs::remove_all(dir);
  fs::create_directories(dir);
  MeasureRunner runner(dir, options.kvlab.empty() ? self_executable() : options.kvlab);

  std::vector<Reading> readings;
  std::string not_computable;
  nlohmann::json readings_json = nlohmann::json::array();
  auto measure_reading = [&](const std::vector<std::pair<std::string, std::string>>& changes, bool literal) {
    Reading reading;
    reading.changes = changes;
    std::map<std::string, nlohmann::json> results;
    std::vector<std::string> folders;
    std::string problem;
    for (const Measure& measure : claim.measures) {
      Measure m = measure;
      Params& params = m.params;
      for (const auto& [key, value] : changes) {
        if (key.rfind(m.name + ".", 0) != 0) continue;
        const std::string p = key.substr(m.name.size() + 1);
        if (!m.document_key.empty() && p.rfind(m.document_key + ".", 0) == 0) {
          set_path(m.document, p.substr(m.document_key.size() + 1), value);
          continue;
        }
        bool replaced = false;
        for (auto& kv : params) {
          if (kv.first == p) {
            kv.second = value;
            replaced = true;
          }
        }
        if (!replaced) params.emplace_back(p, value);
      }
      const MeasureResult r = runner.get(m, params);
      folders.push_back(r.folder);
      if (!r.ok) {
        if (literal && !r.waits) {
          throw std::runtime_error(fmt::format("{}: measurement '{}' failed: {} (see {})", claim.file, m.name, r.problem,
                                               (dir / r.folder).string()));
        }
        problem = r.problem;
        break;  // the reading has no number: measuring the rest would only cost time
      }
      results[m.name] = r.result;
    }
    if (problem.empty()) {
      try {
        reading.value = claim.value.evaluate([&](const Reference& ref) { return lookup(results.at(ref.measure), ref); });
        reading.holds = claim.claimed.holds(*reading.value);
      } catch (const std::exception& e) {
        if (literal) throw std::runtime_error(fmt::format("{}: value '{}': {}", claim.file, claim.value.text(), e.what()));
        problem = e.what();
      }
    }
    if (literal && !reading.value) not_computable = problem;
    nlohmann::json rj = {{"reading", reading.text()}, {"measurements", folders}};
    if (reading.value) {
      rj["value"] = std::isfinite(*reading.value) ? nlohmann::json(*reading.value) : nlohmann::json(num(*reading.value));
      rj["holds"] = reading.holds;
    } else {
      rj["problem"] = problem;
    }
    readings_json.push_back(rj);
    readings.push_back(reading);
  };

  measure_reading({}, true);
  if (readings[0].value && !readings[0].holds) {
    for (const auto& combo : combinations(claim.explore)) {
      if (!claim.explore.empty()) measure_reading(combo, false);
    }
  }
  ClaimOutcome o = decide(claim, std::move(readings), not_computable);
  o.folder = dir.string();
  const nlohmann::json verdict = {{"claim", claim.id},     {"verdict", to_string(o.verdict)},
                                  {"detail", o.detail},    {"value_expression", claim.value.text()},
                                  {"claimed", claim.claimed.text()}, {"readings", readings_json}};
  write_file_atomically((dir / "verdict.json").string(), verdict.dump(2) + "\n");
  return o;
}

}  // namespace kvlab::experiments
