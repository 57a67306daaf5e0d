// SPDX-License-Identifier: Apache-2.0
// Formatting of summary.json, requests.csv and timeline.csv. nlohmann::json prints numbers
// in their shortest round-trip form, identically on every run, which is what makes equal
// results equal bytes.
#include "experiments/runner/result_files.h"

#include <iterator>

#include <fmt/format.h>

namespace kvlab::experiments {
namespace {

nlohmann::ordered_json percentiles(const sim::Percentiles& p) {
  return {{"mean", p.mean}, {"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}};
}

// Rows are formatted into one buffer and handed over every ~1 MiB.
class ChunkedWriter {
 public:
  explicit ChunkedWriter(const TextSink& sink) : sink_(sink) {}
  template <class... Args>
  void row(fmt::format_string<Args...> format, Args&&... args) {
    fmt::format_to(std::back_inserter(buffer_), format, std::forward<Args>(args)...);
    if (buffer_.size() > (1 << 20)) flush();
  }
  void flush() {
    sink_(std::string_view(buffer_.data(), buffer_.size()));
    buffer_.clear();
  }

 private:
  const TextSink& sink_;
  fmt::memory_buffer buffer_;
};

// A CSV field: quoted when it holds a comma, quote or newline, quotes doubled.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char ch : text) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

}  // namespace

nlohmann::ordered_json summary_object(const sim::Summary& s, double wall_s) {
  nlohmann::ordered_json j;
  j["completed_requests"] = s.completed_requests;
  j["rejected_requests"] = s.rejected_requests;
  nlohmann::ordered_json reasons = nlohmann::ordered_json::object();
  for (const auto& [reason, count] : s.rejection_reasons) reasons[reason] = count;
  j["rejection_reasons"] = reasons;
  j["sim_duration_s"] = s.sim_duration_s;
  j["throughput_output_tokens_per_s"] = s.throughput_output_tokens_per_s;
  j["throughput_requests_per_s"] = s.throughput_requests_per_s;
  j["throughput_total_tokens_per_s"] = s.throughput_total_tokens_per_s;
  j["goodput_requests_per_s"] = s.goodput_requests_per_s;
  j["ttft_s"] = percentiles(s.ttft_s);
  j["tpot_s"] = percentiles(s.tpot_s);
  j["itl_s"] = percentiles(s.itl_s);
  j["e2e_s"] = percentiles(s.e2e_s);
  j["max_concurrency"] = s.max_concurrency;
  j["mean_concurrency"] = s.mean_concurrency;
  j["mean_running"] = s.mean_running;
  j["preemptions"] = s.preemptions;
  j["swaps"] = s.swaps;
  j["prefix_cache_hit_rate"] = s.prefix_cache_hit_rate;
  j["kv_utilization_mean"] = s.kv_utilization_mean;
  j["kv_fragmentation_mean"] = s.kv_fragmentation_mean;
  j["kv_pages_total"] = s.kv_pages_total;
  j["kv_page_bytes"] = s.kv_page_bytes;
  nlohmann::ordered_json cadences = nlohmann::ordered_json::array();
  for (const sim::CadenceSummary& c : s.kv_cadences) {
    cadences.push_back({{"name", c.name},
                        {"retention", c.retention},
                        {"reservation", c.reservation},
                        {"block_size", c.block_size},
                        {"tables", c.tables},
                        {"row_bytes", c.row_bytes},
                        {"host_row_bytes", c.host_row_bytes},
                        {"rows_held_mean", c.rows_held_mean},
                        {"rows_held_max", c.rows_held_max},
                        {"bytes_reserved_mean", c.bytes_reserved_mean},
                        {"bytes_used_mean", c.bytes_used_mean},
                        {"wasted_share", c.wasted_share},
                        {"tokens_evicted", c.tokens_evicted},
                        {"rows_recycled", c.rows_recycled}});
  }
  j["kv_cadences"] = cadences;
  j["iterations"] = s.iterations;
  j["wall_s"] = wall_s;
  return j;
}

std::string summary_json(const sim::Summary& summary, double wall_s) {
  return summary_object(summary, wall_s).dump(2) + "\n";
}

void write_requests_csv(const std::vector<sim::RequestRecord>& requests, const TextSink& sink) {
  ChunkedWriter out(sink);
  out.row("id,arrival_s,first_token_s,finish_s,ttft_s,tpot_s,e2e_s,prompt_tokens,output_tokens,prefix_hit_tokens,"
          "preemptions,replica,priority,session,rejected\n");
  for (const sim::RequestRecord& r : requests) {
    out.row("{},{:.9f},", r.id, r.arrival_s);
    if (r.rejected.empty()) {
      // TPOT as the summary counts it: time after the first token per later token, 0 for one token.
      const double tpot = r.output_tokens > 1 ? (r.finish_s - r.first_token_s) / static_cast<double>(r.output_tokens - 1) : 0.0;
      out.row("{:.9f},{:.9f},{:.9f},{:.9f},{:.9f},", r.first_token_s, r.finish_s, r.first_token_s - r.arrival_s, tpot,
              r.finish_s - r.arrival_s);
    } else {
      out.row(",,,,,");
    }
    out.row("{},{},{},{},{},{},{},{}\n", r.prompt_tokens, r.output_tokens, r.prefix_hit_tokens, r.preemptions, r.replica,
            r.priority, r.session, csv_field(r.rejected));
  }
  out.flush();
}

void write_timeline_csv(const std::vector<sim::TimelineSample>& timeline, const TextSink& sink) {
  ChunkedWriter out(sink);
  out.row("time_s,replica,running,waiting,kv_pages_used,kv_tokens_filled,kv_bytes_used,kv_bytes_reserved,"
          "kv_bytes_cached,kv_bytes_free,kv_fragmentation_bytes,kv_host_bytes_reserved,iteration_s,weights_s,kv_s,compute_s,"
          "communication_s,overhead_s,flops,weight_bytes,kv_bytes_moved,host_bytes_moved,wait_s\n");
  for (const sim::TimelineSample& t : timeline) {
    out.row("{:.9f},{},{},{},{},{},{},{},{},{},{},{},", t.time_s, t.replica, t.running, t.waiting, t.kv_pages_used,
            t.kv_tokens_filled, t.kv_bytes_used, t.kv_bytes_reserved, t.kv_bytes_cached, t.kv_bytes_free,
            t.kv_fragmentation_bytes, t.kv_host_bytes_reserved);
    out.row("{:.9f},{:.9f},{:.9f},{:.9f},{:.9f},{:.9f},", t.iteration_s, t.weights_s, t.kv_s, t.compute_s,
            t.communication_s, t.overhead_s);
    out.row("{:.6g},{:.6g},{:.6g},{:.6g},{:.9f}\n", t.flops, t.weight_bytes, t.kv_bytes_moved, t.host_bytes_moved, t.wait_s);
  }
  out.flush();
}

}  // namespace kvlab::experiments
