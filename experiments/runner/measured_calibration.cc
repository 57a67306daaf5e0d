// SPDX-License-Identifier: Apache-2.0
#include "experiments/runner/measured_calibration.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "core/units.h"

namespace kvlab::experiments {
namespace {

constexpr core::KvDtype kDtypes[] = {core::KvDtype::kBf16, core::KvDtype::kFp16, core::KvDtype::kFp8E4m3,
                                     core::KvDtype::kInt8, core::KvDtype::kInt6, core::KvDtype::kInt5,
                                     core::KvDtype::kInt4};

// bench/gpu/collectives.py's links file, as it writes it, under measured: (only the fits
// that measured a bandwidth are kept: world size 1 moves no byte across a link).
std::vector<sim::LinkFit> parse_links(core::ConfigNode n) {
  std::vector<sim::LinkFit> fits;
  if (n.is_null() && !n.describing()) return fits;
  n.required<std::string>("measured_on", "date of the collective timings");
  n.required<std::string>("commit", "kvlab commit that measured them");
  n.required<std::string>("machine", "the GPUs they were measured on");
  n.required<bool>("multi_gpu_measured", "whether any world size above 1 was measured");
  n.optional<std::string>("note", "", "what was not measured");
  core::ConfigNode list = n.child("fits", "one per collective and world size");
  n.document("fits", "list", "", "collective, world_size, latency_s, bus_bytes_per_s, efficiency, points, max_rel_residual");
  if (list.is_sequence()) {
    for (core::ConfigNode f : list.elements()) {
      sim::LinkFit fit;
      const std::string name = f.required<std::string>("collective", "all_reduce, all_gather, reduce_scatter or all_to_all");
      if (name == "all_reduce") {
        fit.collective = sim::Collective::kAllReduce;
      } else if (name == "all_gather") {
        fit.collective = sim::Collective::kAllGather;
      } else if (name == "reduce_scatter") {
        fit.collective = sim::Collective::kReduceScatter;
      } else if (name == "all_to_all") {
        fit.collective = sim::Collective::kAllToAll;
      } else {
        f.error_at("collective", "expected all_reduce, all_gather, reduce_scatter or all_to_all, got " + name);
      }
      fit.world_size = f.required<int>("world_size", "ranks");
      fit.latency_s = f.required<double>("latency_s", "fitted latency, seconds");
      fit.bus_bytes_per_s = f.required<double>("bus_bytes_per_s", "fitted bus bandwidth (0: not measured)");
      f.optional<double>("efficiency", 0.0, "bus bandwidth / link peak");
      f.optional<int>("points", 0, "message sizes fitted");
      f.optional<double>("max_rel_residual", 0.0, "largest relative residual of the fit");
      f.require_positive("world_size", fit.world_size);
      f.require_non_negative("latency_s", fit.latency_s);
      f.require_non_negative("bus_bytes_per_s", fit.bus_bytes_per_s);
      f.finish();
      if (fit.measured()) fits.push_back(fit);
    }
  } else if (!list.is_null()) {
    list.error("expected a list of fits");
  }
  n.finish();
  return fits;
}

// A map of KV format → number (may be negative: a difference), scaled by `unit`.
std::array<double, 7> read_per_format(core::ConfigNode n, const std::string& key, const std::string& help, double unit) {
  std::array<double, 7> out{};
  core::ConfigNode map = n.child(key, help);
  n.document(key, "map", "{}", help);
  if (map.is_map()) {
    for (const std::string& name : map.keys()) {
      core::KvDtype dtype = core::KvDtype::kBf16;
      if (!core::parse_kv_dtype(name, &dtype)) {
        map.error_at(name, "not a KV format: expected bf16, fp16, fp8, int8, int6, int5 or int4");
        continue;
      }
      const double v = map.required<double>(name, help);
      map.require_in_range(name, v, -1e9, 1e9);
      out[static_cast<size_t>(dtype)] = v * unit;
    }
  } else if (!map.is_null()) {
    map.error("expected a map of KV format → number");
  }
  return out;
}

std::string per_format_yaml(const std::string& key, const std::array<double, 7>& values, double unit) {
  std::string items;
  for (const core::KvDtype d : kDtypes) {
    const double v = values[static_cast<size_t>(d)];
    if (v != 0) items += fmt::format("{}{}: {:.4g}", items.empty() ? "" : ", ", core::to_string(d), v / unit);
  }
  return items.empty() ? "" : fmt::format("  {}: {{{}}}\n", key, items);
}

// A list of numbers; each element that is not one is reported where it is.
std::vector<double> read_numbers(core::ConfigNode list, const std::string& what) {
  std::vector<double> out;
  if (!list.is_sequence()) {
    list.error("expected a list of " + what);
    return out;
  }
  for (core::ConfigNode e : list.elements()) {
    const std::string text = e.is_scalar() ? e.scalar() : "";
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
      e.error(fmt::format("expected a number ({})", what));
      continue;
    }
    out.push_back(v);
  }
  return out;
}

// An ascending grid of positive integers (batches, tokens per sequence).
std::vector<int> read_grid(core::ConfigNode n, const std::string& key, const std::string& what) {
  std::vector<int> grid;
  core::ConfigNode list = n.child(key, what);
  n.document(key, "list", "", what + ", ascending");
  if (n.describing()) return grid;
  for (const double v : read_numbers(list, what)) {
    if (v < 1 || v > 1e8 || v != std::floor(v)) {
      list.error(fmt::format("{}: expected whole numbers from 1 to 1e8, got {}", what, v));
      return {};
    }
    if (!grid.empty() && v <= grid.back()) {
      list.error(fmt::format("{}: expected ascending values, got {} after {}", what, v, grid.back()));
      return {};
    }
    grid.push_back(static_cast<int>(v));
  }
  if (grid.empty() && list.error_count() == 0) list.error(what + ": expected at least one value");
  return grid;
}

// measured.fp8_gemm: {memory_efficiency, fixed, compute_efficiency, half_tokens}, all four.
sim::GemmTerms parse_fp8_gemm(core::ConfigNode n) {
  sim::GemmTerms g;
  if (n.is_null() && !n.describing()) return g;
  if (!n.is_map() && !n.describing()) {
    n.error("expected a map {memory_efficiency, fixed, compute_efficiency, half_tokens}");
    return g;
  }
  g.memory_efficiency = n.required<double>("memory_efficiency", "fp8 weight streaming / peak HBM bandwidth");
  g.fixed_s = n.required<core::Duration>("fixed", "per fp8 GEMM launch, with its input's quantization").seconds();
  g.compute_efficiency = n.required<double>("compute_efficiency", "large-batch share of the GPU's fp8 rate");
  g.half_tokens = n.required<double>("half_tokens", "tokens at which fp8 GEMMs reach half that share");
  n.require_in_range("memory_efficiency", g.memory_efficiency, 1e-3, 1.0);
  n.require_in_range("compute_efficiency", g.compute_efficiency, 1e-3, 1.0);
  n.require_non_negative("fixed", g.fixed_s);
  n.require_non_negative("half_tokens", g.half_tokens);
  n.finish();
  return g;
}

// measured.decode_attention_table (sim/calibration.h): the grid, then one matrix per format.
sim::DecodeAttentionTable parse_decode_attention_table(core::ConfigNode n) {
  sim::DecodeAttentionTable t;
  if (n.is_null() && !n.describing()) return t;
  t.batches = read_grid(n, "batches", "decode batch sizes");
  t.contexts = read_grid(n, "contexts", "tokens per sequence");
  if (n.describing()) {
    n.document("<format>", "list", "", "KV format → [batches × contexts] shares of peak HBM bandwidth after attention_fixed");
    return t;
  }
  for (const std::string& key : n.keys()) {
    if (key == "batches" || key == "contexts") continue;
    core::KvDtype dtype = core::KvDtype::kBf16;
    if (!core::parse_kv_dtype(key, &dtype)) {
      n.error_at(key, "not a KV format: expected bf16, fp16, fp8, int8, int6, int5 or int4 (or batches, contexts)");
      continue;
    }
    core::ConfigNode rows = n.child(key);
    if (!rows.is_sequence() || rows.elements().size() != t.batches.size()) {
      n.error_at(key, fmt::format("expected {} rows (one per batch size) of {} shares (one per context)", t.batches.size(),
                                  t.contexts.size()));
      continue;
    }
    std::vector<double> shares;
    for (core::ConfigNode row : rows.elements()) {
      const std::vector<double> r = read_numbers(row, "shares of peak HBM bandwidth");
      if (r.size() != t.contexts.size()) {
        row.error(fmt::format("expected {} shares (one per context), got {}", t.contexts.size(), r.size()));
        break;
      }
      for (const double v : r) {
        if (!(v >= 1e-3 && v <= 1.0)) {
          row.error(fmt::format("a share of peak bandwidth must lie in [0.001, 1], got {}", v));
          break;
        }
      }
      shares.insert(shares.end(), r.begin(), r.end());
    }
    if (shares.size() == t.batches.size() * t.contexts.size()) t.share[static_cast<size_t>(dtype)] = std::move(shares);
  }
  return t;
}

std::string decode_attention_table_yaml(const sim::DecodeAttentionTable& t) {
  if (t.empty()) return "";
  std::string y = "  # decode attention per KV format on a grid of batch × tokens per sequence: share of peak\n"
                  "  # HBM bandwidth after attention_fixed (rows: batches; columns: contexts)\n"
                  "  decode_attention_table:\n";
  y += fmt::format("    batches: [{}]\n    contexts: [{}]\n", fmt::join(t.batches, ", "), fmt::join(t.contexts, ", "));
  for (const core::KvDtype d : kDtypes) {
    if (!t.has(d)) continue;
    const std::vector<double>& s = t.share[static_cast<size_t>(d)];
    std::string rows;
    for (size_t b = 0; b < t.batches.size(); ++b) {
      std::string row;
      for (size_t c = 0; c < t.contexts.size(); ++c) row += fmt::format("{}{:.4g}", c ? ", " : "", s[b * t.contexts.size() + c]);
      rows += fmt::format("{}[{}]", b ? ", " : "", row);
    }
    y += fmt::format("    {}: [{}]\n", core::to_string(d), rows);
  }
  return y;
}

// measured.gemm_token_factor (sim/calibration.h): token counts and one factor each.
sim::GemmTokenFactor parse_gemm_token_factor(core::ConfigNode n) {
  sim::GemmTokenFactor f;
  if (n.is_null() && !n.describing()) return f;
  f.tokens = read_grid(n, "tokens", "GEMM token counts");
  n.document("factor", "list", "", "measured time over the roofline, one per token count");
  if (n.describing()) return f;
  core::ConfigNode list = n.child("factor", "measured time over the roofline, one per token count");
  f.factor = read_numbers(list, "measured time over the roofline");
  if (list.error_count() == 0 && f.factor.size() != f.tokens.size()) {
    list.error(fmt::format("expected {} factors (one per token count), got {}", f.tokens.size(), f.factor.size()));
  }
  for (const double v : f.factor) {
    if (!(v >= 0.1 && v <= 10)) {
      list.error(fmt::format("a factor over the roofline must lie in [0.1, 10], got {}", v));
      break;
    }
  }
  n.finish();
  if (f.factor.size() != f.tokens.size()) return {};
  return f;
}

std::string gemm_token_factor_yaml(const sim::GemmTokenFactor& f) {
  if (f.empty()) return "";
  std::vector<std::string> factors;
  for (const double v : f.factor) factors.push_back(fmt::format("{:.4g}", v));
  return "  # GEMM time over the roofline (after gemm_fixed) at each token count timed, bf16 weights\n" +
         fmt::format("  gemm_token_factor:\n    tokens: [{}]\n    factor: [{}]\n", fmt::join(f.tokens, ", "),
                     fmt::join(factors, ", "));
}

// measured.moe_experts (sim/calibration.h's MoeExpertTable): the fixed cost per MoE layer
// and the share of peak bandwidth per rows per used expert.
sim::MoeExpertTable parse_moe_experts(core::ConfigNode n) {
  sim::MoeExpertTable t;
  if (n.is_null() && !n.describing()) return t;
  t.fixed_s = n.required<core::Duration>("fixed", "per MoE layer").seconds();
  n.require_non_negative("fixed", t.fixed_s);
  core::ConfigNode rows = n.child("rows_per_expert", "token-expert rows per used expert, ascending, ≥ 1");
  n.document("rows_per_expert", "list", "", "token-expert rows per used expert, ascending, ≥ 1");
  core::ConfigNode shares = n.child("share", "share of peak HBM bandwidth after fixed, one per row count");
  n.document("share", "list", "", "share of peak HBM bandwidth after fixed, one per row count");
  if (n.describing()) return t;
  const size_t errors_before = n.error_count();
  t.rows_per_expert = read_numbers(rows, "rows per used expert");
  t.share = read_numbers(shares, "shares of peak HBM bandwidth");
  for (size_t i = 0; i < t.rows_per_expert.size(); ++i) {
    const double r = t.rows_per_expert[i];
    if (!(r >= 1 && r <= 1e8) || (i > 0 && r <= t.rows_per_expert[i - 1])) {
      rows.error(fmt::format("rows per used expert: expected ascending values from 1 to 1e8, got {}", r));
      break;
    }
  }
  for (const double v : t.share) {
    if (!(v >= 1e-3 && v <= 1.0)) {
      shares.error(fmt::format("a share of peak bandwidth must lie in [0.001, 1], got {}", v));
      break;
    }
  }
  if (n.error_count() == errors_before) {
    if (t.share.empty()) {
      shares.error("expected at least one row count and its share");
    } else if (t.share.size() != t.rows_per_expert.size()) {
      shares.error(fmt::format("expected {} shares (one per row count), got {}", t.rows_per_expert.size(), t.share.size()));
    }
  }
  if (n.error_count() != errors_before) t = {};
  n.finish();
  return t;
}

std::string moe_experts_yaml(const sim::MeasuredCalibration& m) {
  std::string y;
  const sim::MoeExpertTable& t = m.moe_experts;
  if (!t.empty()) {
    y += "  # MoE routed experts (permutation, gather, expert GEMMs, SwiGLU, combine) per MoE layer:\n"
         "  # fixed + used experts' bytes / (peak · share(rows per used expert))\n";
    y += fmt::format("  moe_experts:\n    fixed: {} ns\n", static_cast<int64_t>(t.fixed_s * 1e9 + 0.5));
    std::string rows;
    for (const double r : t.rows_per_expert) rows += fmt::format("{}{:.5g}", rows.empty() ? "" : ", ", r);
    y += fmt::format("    rows_per_expert: [{}]\n", rows);
    std::string shares;
    for (const double v : t.share) shares += fmt::format("{}{:.4g}", shares.empty() ? "" : ", ", v);
    y += fmt::format("    share: [{}]\n", shares);
  }
  if (m.moe_router_fixed_s > 0) y += fmt::format("  moe_router_fixed: {} ns\n", static_cast<int64_t>(m.moe_router_fixed_s * 1e9 + 0.5));
  if (m.moe_router_per_token_s > 0) y += fmt::format("  moe_router_per_token_ns: {:.4g}\n", m.moe_router_per_token_s * 1e9);
  if (m.moe_layer_fixed_s > 0) y += fmt::format("  moe_layer_fixed: {} ns\n", static_cast<int64_t>(m.moe_layer_fixed_s * 1e9 + 0.5));
  if (m.moe_layer_per_token_s > 0) y += fmt::format("  moe_layer_per_token_ns: {:.4g}\n", m.moe_layer_per_token_s * 1e9);
  return y;
}

}  // namespace

sim::MeasuredCalibration parse_measured_calibration(core::ConfigNode n) {
  sim::MeasuredCalibration m;
  if (n.is_null() && !n.describing()) return m;
  m.measured_on = n.required<std::string>("date", "date of the measurement (kvlab calibrate)");
  m.commit = n.required<std::string>("commit", "kvlab commit that measured it");
  m.machine = n.required<std::string>("machine", "the GPU it was measured on");
  m.gemm_memory_efficiency = n.optional<double>("gemm_memory_efficiency", 0.0, "weight streaming / peak HBM bandwidth");
  m.gemm_fixed_s = n.optional<core::Duration>("gemm_fixed", {}, "per GEMM launch").seconds();
  m.gemm_token_factor = parse_gemm_token_factor(
      n.child("gemm_token_factor", "measured GEMM time over the roofline, against tokens (bf16 weights)"));
  m.fp8_gemm = parse_fp8_gemm(n.child("fp8_gemm", "GEMMs with fp8 weights: the same terms, fitted against the fp8 rate"));
  core::ConfigNode attention = n.child("attention_memory_efficiency", "decode attention / peak HBM bandwidth, per KV format");
  n.document("attention_memory_efficiency", "map", "{}", "KV format (bf16, fp8, int8, …) → share of HBM bandwidth");
  if (attention.is_map()) {
    for (const std::string& key : attention.keys()) {
      core::KvDtype dtype = core::KvDtype::kBf16;
      if (!core::parse_kv_dtype(key, &dtype)) {
        attention.error_at(key, fmt::format("not a KV format: expected bf16, fp16, fp8, int8, int6, int5 or int4"));
        continue;
      }
      const double e = attention.required<double>(key, "share of HBM bandwidth");
      attention.require_in_range(key, e, 1e-3, 1.0);
      m.attention_memory_efficiency[static_cast<size_t>(dtype)] = e;
    }
  } else if (!attention.is_null()) {
    attention.error("expected a map of KV format → share of HBM bandwidth");
  }
  m.attention_fixed_s = n.optional<core::Duration>("attention_fixed", {}, "per layer and attention launch").seconds();
  m.decode_attention_table = parse_decode_attention_table(
      n.child("decode_attention_table", "decode attention timed on a grid of batch × tokens per sequence, per KV format"));
  m.layer_fixed_s = n.optional<core::Duration>("layer_fixed", {}, "per layer: small kernels at one token").seconds();
  m.layer_per_token_s = n.optional<double>("layer_per_token_ns", 0.0, "per layer and token, ns") * 1e-9;
  m.layer_extra_fixed_s = read_per_format(n, "layer_extra_fixed_ns", "the small kernels' fixed cost beyond bf16's, ns, per KV format", 1e-9);
  m.layer_extra_per_token_s =
      read_per_format(n, "layer_extra_per_token_ns", "the small kernels' cost per token beyond bf16's, ns, per KV format", 1e-9);
  m.moe_experts = parse_moe_experts(n.child("moe_experts", "MoE layers' routed experts timed on the engine"));
  m.moe_router_fixed_s = n.optional<core::Duration>("moe_router_fixed", {}, "per MoE layer: the router's top-k at one token").seconds();
  m.moe_router_per_token_s = n.optional<double>("moe_router_per_token_ns", 0.0, "per MoE layer and token, ns") * 1e-9;
  m.moe_layer_fixed_s = n.optional<core::Duration>("moe_layer_fixed", {}, "per MoE layer: its small kernels at one token").seconds();
  m.moe_layer_per_token_s = n.optional<double>("moe_layer_per_token_ns", 0.0, "per MoE layer and token, ns") * 1e-9;
  n.require_non_negative("moe_layer_fixed", m.moe_layer_fixed_s);
  n.require_non_negative("moe_layer_per_token_ns", m.moe_layer_per_token_s);
  n.require_non_negative("moe_router_fixed", m.moe_router_fixed_s);
  n.require_non_negative("moe_router_per_token_ns", m.moe_router_per_token_s);
  m.host_link_bytes_per_s =
      n.optional<core::Bandwidth>("host_link_bandwidth", {}, "pinned host ↔ device copy, each way").bytes_per_s;
  m.links = parse_links(n.child("links", "bench/gpu/collectives.py's fits of collective times"));
  if (n.has("gemm_memory_efficiency")) n.require_in_range("gemm_memory_efficiency", m.gemm_memory_efficiency, 1e-3, 1.0);
  n.require_non_negative("layer_per_token_ns", m.layer_per_token_s);
  n.finish();
  return m;
}

std::string fp8_gemm_yaml(const sim::GemmTerms& g) {
  if (!g.measured()) return "";
  return fmt::format("  fp8_gemm: {{memory_efficiency: {:.4g}, fixed: {} ns, compute_efficiency: {:.4g}, half_tokens: {:.4g}}}\n",
                     g.memory_efficiency, static_cast<int64_t>(g.fixed_s * 1e9 + 0.5), g.compute_efficiency, g.half_tokens);
}

std::string measured_calibration_yaml(const sim::MeasuredCalibration& m) {
  if (!m.measured()) return "";
  std::string y = "measured:\n";
  y += fmt::format("  date: \"{}\"\n  commit: \"{}\"\n  machine: \"{}\"\n", m.measured_on, m.commit, m.machine);
  if (m.gemm_memory_efficiency > 0) y += fmt::format("  gemm_memory_efficiency: {:.4g}\n", m.gemm_memory_efficiency);
  if (m.gemm_fixed_s > 0) y += fmt::format("  gemm_fixed: {} ns\n", static_cast<int64_t>(m.gemm_fixed_s * 1e9 + 0.5));
  y += gemm_token_factor_yaml(m.gemm_token_factor);
  y += fp8_gemm_yaml(m.fp8_gemm);
  std::string attention;
  for (const core::KvDtype d : kDtypes) {
    const double e = m.attention_memory_efficiency[static_cast<size_t>(d)];
    if (e > 0) attention += fmt::format("{}{}: {:.4g}", attention.empty() ? "" : ", ", core::to_string(d), e);
  }
  if (!attention.empty()) y += "  attention_memory_efficiency: {" + attention + "}\n";
  if (m.attention_fixed_s > 0) y += fmt::format("  attention_fixed: {} ns\n", static_cast<int64_t>(m.attention_fixed_s * 1e9 + 0.5));
  y += decode_attention_table_yaml(m.decode_attention_table);
  if (m.layer_fixed_s > 0) y += fmt::format("  layer_fixed: {} ns\n", static_cast<int64_t>(m.layer_fixed_s * 1e9 + 0.5));
  if (m.layer_per_token_s > 0) y += fmt::format("  layer_per_token_ns: {:.4g}\n", m.layer_per_token_s * 1e9);
  y += per_format_yaml("layer_extra_fixed_ns", m.layer_extra_fixed_s, 1e-9);
  y += per_format_yaml("layer_extra_per_token_ns", m.layer_extra_per_token_s, 1e-9);
  y += moe_experts_yaml(m);
  if (m.host_link_bytes_per_s > 0) y += fmt::format("  host_link_bandwidth: {:.4g} GB/s\n", m.host_link_bytes_per_s / 1e9);
  return y;
}

std::string replace_moe_terms(const std::string& file_text, const sim::MeasuredCalibration& moe, const std::string& note) {
  // Line by line: the measured: section's own keys sit at two spaces, nested ones deeper.
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < file_text.size()) {
    const size_t end = file_text.find('\n', start);
    lines.push_back(file_text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    start = end == std::string::npos ? file_text.size() : end + 1;
  }
  std::string out;
  bool in_measured = false, seen_measured = false, dropping = false;
  for (const std::string& line : lines) {
    const bool top = !line.empty() && line[0] != ' ' && line[0] != '#';
    if (top) {
      in_measured = line.rfind("measured:", 0) == 0;
      seen_measured = seen_measured || in_measured;
      dropping = false;
    } else if (in_measured && line.rfind("  ", 0) == 0 && line.size() > 2 && line[2] != ' ') {
      // A key of the section (or its comment): the old MoE terms and their comments go.
      dropping = line.rfind("  moe_", 0) == 0 || line.rfind("  # MoE", 0) == 0 || line.rfind("  # fixed + used experts", 0) == 0;
      if (dropping) continue;
    } else if (dropping) {
      continue;  // nested under a dropped key
    }
    out += line + "\n";
  }
  if (!seen_measured) throw std::invalid_argument("the calibration file has no measured: section to add MoE terms to");
  if (!in_measured) throw std::invalid_argument("the calibration file's measured: section is not its last top-level key");
  // The section is the file's last top-level key (calibration_file_yaml writes it last).
  std::string terms = moe_experts_yaml(moe);
  if (terms.empty()) return out;
  return out + "  # MoE " + note + "\n" + terms;
}

std::string calibration_file_yaml(const CalibrationFile& f) {
  const sim::MeasuredCalibration& m = f.measured;
  std::string y;
  y += fmt::format("# Calibration of the simulator's cost model for the {} (sim/sim_config.h's Calibration and\n", f.gpu);
  y += fmt::format("# sim/calibration.h's measured terms), written by `kvlab calibrate --gpu {}` on {}\n", f.gpu, m.measured_on);
  y += fmt::format("# ({}), kvlab commit {}, timing the GPU engine's kernels at {}'s shapes.\n", m.machine, m.commit, f.model);
  y += fmt::format("# Fit quality (median |relative error| of each fitted form over its own timings): GEMMs {:.1f}%\n",
                   100 * f.gemm_fit_error);
  if (!m.gemm_token_factor.empty()) {
    y += fmt::format("# ({:.1f}% with measured.gemm_token_factor),", 100 * f.gemm_factor_fit_error);
  } else {
    y += "#";
  }
  y += fmt::format(" decode attention {:.1f}%, layer small kernels {:.1f}%. Raw timings: {}.\n", 100 * f.attention_fit_error,
                   100 * f.layer_fit_error, f.raw_file.empty() ? "not kept (--raw)" : f.raw_file);
  if (!m.moe_experts.empty()) {
    y += fmt::format("# MoE terms at {}'s routed-expert shape: experts {:.1f}% (each point from the others), router {:.1f}%.\n",
                     f.moe_model, 100 * f.moe_fit_error, 100 * f.moe_router_fit_error);
  }
  y += fmt::format("gpu: {}\n", f.gpu);
  y += fmt::format("memory_efficiency: {:.4g}  # measured: copy kernel (16-byte grid-stride) {:.3g} TB/s (read + write) of {:.3g};"
                   " cudaMemcpy's slower copy in the raw timings only\n",
                   std::min(1.0, f.copy_bandwidth / f.peak_bandwidth), f.copy_bandwidth / 1e12, f.peak_bandwidth / 1e12);
  y += fmt::format("compute_efficiency: {:.4g}  # fitted: large-batch GEMM plateau of {}'s weight shapes\n",
                   f.compute_efficiency, f.model);
  y += fmt::format("gemm_half_efficiency_tokens: {:.4g}  # fitted: tokens at which GEMMs reach half that rate\n", f.half_tokens);
  // kvlab's prefill kernel is far from a production one: its rate is written down for the
  // experiments replayed on this engine to set, not applied to every simulation of the GPU.
  y += fmt::format("# Prefill attention: kvlab's own prefill kernel measured {:.4g} of the bf16 rate (median of\n"
                   "# chunks of 1024 or more), an engine far slower than a production one. Not applied by\n"
                   "# default; experiments replayed on kvlab's engine set it (bench/gpu/cross_validate/*.yaml).\n",
                   f.prefill_efficiency);
  y += fmt::format("attention_efficiency: {:.4g}  # not measured for a production kernel: the GEMM plateau above\n",
                   f.compute_efficiency);
  y += "link_efficiency: 0.80  # not measured (NVLink: one GPU lent); the host link is measured below\n";
  y += fmt::format("iteration_overhead: {} ns  # measured: a step's table upload, embedding, first norm, gather, argmax\n",
                   static_cast<int64_t>(f.step_fixed_s * 1e9 + 0.5));
  y += "per_sequence_overhead: 0 us  # not measured: the engine has no host scheduler\n";
  y += "kernel_launch: 0 us  # launches are inside the measured fixed costs (CUDA graphs)\n";
  y += "kernels_per_layer: 8\n";
  return y + measured_calibration_yaml(m);
}

std::string merge_fp8_gemm(const std::string& text, const std::string& line, const std::string& note) {
  std::vector<std::string> lines;
  for (size_t begin = 0; begin < text.size();) {
    const size_t end = std::min(text.find('\n', begin), text.size());
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  const auto starts = [](const std::string& l, const std::string& prefix) { return l.rfind(prefix, 0) == 0; };
  std::vector<std::string> kept;
  for (const std::string& l : lines) {
    if (!starts(l, "  fp8_gemm:") && !starts(l, "  # fp8_gemm:")) kept.push_back(l);
  }
  const auto measured = std::find(kept.begin(), kept.end(), "measured:");
  if (measured == kept.end()) throw std::invalid_argument("merge_fp8_gemm: the calibration file has no measured: section");
  auto at = measured;
  for (auto it = measured + 1; it != kept.end() && starts(*it, "  "); ++it) {
    if (starts(*it, "  machine:") || starts(*it, "  gemm_fixed:")) at = it;
  }
  std::string body = line;
  while (!body.empty() && body.back() == '\n') body.pop_back();
  kept.insert(at + 1, {"  # fp8_gemm: " + note, body});
  std::string out;
  for (const std::string& l : kept) out += l + "\n";
  return out;
}

}  // namespace kvlab::experiments
