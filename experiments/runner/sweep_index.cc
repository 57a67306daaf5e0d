// SPDX-License-Identifier: Apache-2.0
// sweep.csv picks its metric columns out of each point's summary JSON by path, so the
// numbers are printed exactly as in summary.json.
#include "experiments/runner/sweep_index.h"

#include <cstdlib>
#include <string>

#include "experiments/runner/point_folder.h"

namespace kvlab::experiments {
namespace {

// sweep.csv's metric columns: name, then the path into summary.json.
struct MetricColumn {
  const char* name;
  const char* key;
  const char* stat;  // nullptr: a plain number
};
constexpr MetricColumn kMetrics[] = {
    {"completed_requests", "completed_requests", nullptr},
    {"rejected_requests", "rejected_requests", nullptr},
    {"throughput_requests_per_s", "throughput_requests_per_s", nullptr},
    {"throughput_output_tokens_per_s", "throughput_output_tokens_per_s", nullptr},
    {"goodput_requests_per_s", "goodput_requests_per_s", nullptr},
    {"ttft_p50_s", "ttft_s", "p50"},
    {"ttft_p99_s", "ttft_s", "p99"},
    {"tpot_p50_s", "tpot_s", "p50"},
    {"tpot_p99_s", "tpot_s", "p99"},
    {"itl_p50_s", "itl_s", "p50"},
    {"e2e_p50_s", "e2e_s", "p50"},
    {"e2e_p99_s", "e2e_s", "p99"},
    {"max_concurrency", "max_concurrency", nullptr},
    {"preemptions", "preemptions", nullptr},
    {"kv_utilization_mean", "kv_utilization_mean", nullptr},
    {"wall_s", "wall_s", nullptr},
};

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char ch : text) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// An axis value as JSON: a number when the whole text is one, else the text.
nlohmann::ordered_json axis_value(const std::string& text) {
  char* end = nullptr;
  const double x = std::strtod(text.c_str(), &end);
  if (!text.empty() && end == text.c_str() + text.size()) return x;
  return text;
}

std::string metric(const nlohmann::ordered_json& summary, const MetricColumn& m) {
  if (!summary.is_object() || !summary.contains(m.key)) return "";
  const nlohmann::ordered_json& v = m.stat == nullptr ? summary[m.key] : summary[m.key].value(m.stat, nlohmann::ordered_json());
  return v.is_number() ? v.dump() : "";
}

nlohmann::ordered_json sweep_object(const Experiment& e, const std::vector<PointOutcome>& outcomes) {
  nlohmann::ordered_json j;
  j["experiment"] = e.name;
  j["description"] = e.description;
  j["file"] = e.path;
  j["overrides"] = e.overrides;
  j["axes"] = nlohmann::ordered_json::array();
  for (const SweepAxis& a : e.axes) {
    nlohmann::ordered_json values = nlohmann::ordered_json::array();
    for (const AxisValue& v : a.values) values.push_back(axis_value(v.text));
    j["axes"].push_back({{"key", a.key}, {"kind", a.zip ? "zip" : "grid"}, {"values", values}});
  }
  j["points"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < e.points.size(); ++i) {
    nlohmann::ordered_json p;
    p["name"] = e.points[i].name;
    p["status"] = std::string(to_string(outcomes[i].status));
    nlohmann::ordered_json values = nlohmann::ordered_json::object();
    for (const auto& [key, value] : e.points[i].set) values[key] = axis_value(value.text);
    p["values"] = values;
    if (!outcomes[i].error.empty()) p["error"] = outcomes[i].error;
    if (!outcomes[i].summary.is_null()) p["summary"] = outcomes[i].summary;
    j["points"].push_back(p);
  }
  return j;
}

}  // namespace

std::string sweep_csv(const Experiment& e, const std::vector<PointOutcome>& outcomes) {
  std::string csv = "point,status";
  for (const SweepAxis& a : e.axes) csv += "," + csv_field(a.key);
  for (const MetricColumn& m : kMetrics) csv += std::string(",") + m.name;
  csv += "\n";
  for (size_t i = 0; i < e.points.size(); ++i) {
    csv += csv_field(e.points[i].name) + "," + std::string(to_string(outcomes[i].status));
    for (const auto& [key, value] : e.points[i].set) csv += "," + csv_field(value.text);
    for (const MetricColumn& m : kMetrics) csv += "," + metric(outcomes[i].summary, m);
    csv += "\n";
  }
  return csv;
}

void write_sweep_index(const std::filesystem::path& out, const Experiment& e, const std::vector<PointOutcome>& outcomes) {
  replace_file(out / "sweep.json", sweep_object(e, outcomes).dump(2) + "\n");
  replace_file(out / "sweep.csv", sweep_csv(e, outcomes));
}

}  // namespace kvlab::experiments
