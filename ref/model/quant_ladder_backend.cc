// SPDX-License-Identifier: Apache-2.0
#include "ref/model/quant_ladder_backend.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace kvlab::ref::model {
namespace {

void append_rows(RowMatrixXf& to, const RowMatrixXf& rows) {
  const Eigen::Index old = to.rows();
  to.conservativeResize(old + rows.rows(), rows.cols());
  to.bottomRows(rows.rows()) = rows;
}

RowMatrixXf bf16_rows(const RowMatrixXf& m) { return m.unaryExpr([](float x) { return bf16_round(x); }); }

}  // namespace

KvFormat parse_kv_format(const std::string& name, const KvarnOptions& kvarn) {
  KvFormat f;
  f.kvarn = kvarn;
  if (name == "f32") {
    f.kind = KvFormat::Kind::kFloat32;
    f.bits = 32;
  } else if (name == "bf16") {
    f.kind = KvFormat::Kind::kBf16;
  } else if (name == "q8_0" || name == "q6_0" || name == "q5_0" || name == "q4_0") {
    f.kind = KvFormat::Kind::kGgml;
    f.bits = name[1] - '0';
  } else if (name.size() == 6 && name.rfind("kvarn", 0) == 0 && name[5] >= '1' && name[5] <= '8') {
    f.kind = KvFormat::Kind::kKvarn;
    f.bits = name[5] - '0';
    f.kvarn.bits = f.bits;
  } else {
    throw std::invalid_argument(fmt::format("unknown KV format \"{}\" (f32, bf16, q8_0, q6_0, q5_0, q4_0, kvarn1–kvarn8)", name));
  }
  return f;
}

std::string kv_format_name(const KvFormat& f) {
  switch (f.kind) {
    case KvFormat::Kind::kFloat32: return "f32";
    case KvFormat::Kind::kBf16: return "bf16";
    case KvFormat::Kind::kGgml: return fmt::format("q{}_0", f.bits);
    case KvFormat::Kind::kKvarn: return fmt::format("kvarn{}", f.bits);
  }
  return "?";
}

double kv_format_bits_per_value(const KvFormat& f, int head_dim) {
  switch (f.kind) {
    case KvFormat::Kind::kFloat32: return 32;
    case KvFormat::Kind::kBf16: return 16;
    case KvFormat::Kind::kGgml: return ggml_q_bits_per_value(f.bits);
    case KvFormat::Kind::kKvarn: return kvarn_bits_per_value(f.kvarn, head_dim);
  }
  return 0;
}

QuantLadderBackend::QuantLadderBackend(int num_layers, int num_q_heads, int num_kv_heads, int head_dim,
                                       KvFormat k_format, KvFormat v_format)
    : num_q_heads_(num_q_heads),
      num_kv_heads_(num_kv_heads),
      head_dim_(head_dim),
      k_format_(k_format),
      v_format_(v_format),
      stored_(static_cast<size_t>(num_layers)) {}

int64_t QuantLadderBackend::quantize(const KvFormat& f, RowMatrixXf& m, int64_t done) const {
  const int64_t n = m.rows();
  switch (f.kind) {
    case KvFormat::Kind::kFloat32: return n;
    case KvFormat::Kind::kBf16:
      m.bottomRows(n - done) = bf16_rows(m.bottomRows(n - done));
      return n;
    case KvFormat::Kind::kGgml:
      for (int64_t t = done; t < n; ++t) ggml_q_roundtrip(f.bits, std::span<float>(m.row(t).data(), static_cast<size_t>(m.cols())));
      return n;
    case KvFormat::Kind::kKvarn: {
      const int64_t b = f.kvarn.block_tokens;
      int64_t t = done;
      for (; t + b <= n; t += b) {
        for (int h = 0; h < num_kv_heads_; ++h) {
          RowBlock block = m.block(t, h * head_dim_, b, head_dim_);
          kvarn_roundtrip(f.kvarn, block);
          m.block(t, h * head_dim_, b, head_dim_) = block;
        }
      }
      m.middleRows(t, n - t) = bf16_rows(m.middleRows(t, n - t));  // the tail, until its block completes
      return t;
    }
  }
  return n;
}

int64_t QuantLadderBackend::final_before(const KvFormat& f, int64_t position) const {
  if (f.kind != KvFormat::Kind::kKvarn) return position + 1;
  return (position + 1) / f.kvarn.block_tokens * f.kvarn.block_tokens;
}

void QuantLadderBackend::append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) {
  Layer& s = stored_[static_cast<size_t>(layer)];
  append_rows(s.k_tail, bf16_rows(k));
  append_rows(s.v_tail, bf16_rows(v));
  append_rows(s.k_raw, k);
  append_rows(s.v_raw, v);
  // Rows not final yet are quantized again from the inputs (a KVarN block waits for its last
  // token; until then those rows hold bf16).
  const int64_t n = s.k_raw.rows();
  s.k.conservativeResize(n, s.k_raw.cols());
  s.v.conservativeResize(n, s.v_raw.cols());
  s.k.bottomRows(n - s.k_done) = s.k_raw.bottomRows(n - s.k_done);
  s.v.bottomRows(n - s.v_done) = s.v_raw.bottomRows(n - s.v_done);
  s.k_done = quantize(k_format_, s.k, s.k_done);
  s.v_done = quantize(v_format_, s.v, s.v_done);
}

void QuantLadderBackend::truncate(int layer, int64_t num_tokens) {
  Layer& s = stored_[static_cast<size_t>(layer)];
  if (num_tokens >= s.k.rows()) return;
  for (RowMatrixXf* m : {&s.k, &s.v, &s.k_tail, &s.v_tail, &s.k_raw, &s.v_raw}) m->conservativeResize(num_tokens, m->cols());
  // A KVarN block cut short is not final any more (its rows hold bf16 already, or are
  // quantized again when the block completes).
  if (s.k_done > num_tokens) s.k_done = num_tokens - num_tokens % k_format_.kvarn.block_tokens;
  if (s.v_done > num_tokens) s.v_done = num_tokens - num_tokens % v_format_.kvarn.block_tokens;
  if (k_format_.kind != KvFormat::Kind::kKvarn) s.k_done = std::min(s.k_done, num_tokens);
  if (v_format_.kind != KvFormat::Kind::kKvarn) s.v_done = std::min(s.v_done, num_tokens);
}

RowMatrixXf QuantLadderBackend::attend(int layer, const RowMatrixXf& q) {
  const Layer& s = stored_[static_cast<size_t>(layer)];
  const int64_t n = s.k.rows(), nq = q.rows();
  const int group = num_q_heads_ / num_kv_heads_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  const bool k_tail = k_format_.kind == KvFormat::Kind::kKvarn, v_tail = v_format_.kind == KvFormat::Kind::kKvarn;
  RowMatrixXf out(nq, q.cols());
  for (int qh = 0; qh < num_q_heads_; ++qh) {
    const Eigen::Index col = (qh / group) * head_dim_;
    const RowMatrixXf qm = q.middleCols(qh * head_dim_, head_dim_);
    // Scores against the stored keys, and against the bf16 copies where a query still reads
    // some of its tokens in bf16 (KVarN's incomplete block); causal mask; softmax per row.
    RowMatrixXf scores = (qm * s.k.middleCols(col, head_dim_).transpose()) * scale;  // [nq, n]
    RowMatrixXf tail_scores;
    if (k_tail) tail_scores = (qm * s.k_tail.middleCols(col, head_dim_).transpose()) * scale;
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t pos = n - nq + i;
      if (k_tail) {
        const int64_t kq = final_before(k_format_, pos);
        scores.row(i).segment(kq, pos + 1 - kq) = tail_scores.row(i).segment(kq, pos + 1 - kq);
      }
      scores.row(i).tail(n - pos - 1).setConstant(-INFINITY);
      if (s.window > 0 && pos + 1 > s.window) scores.row(i).head(pos + 1 - s.window).setConstant(-INFINITY);
      const float top = scores.row(i).head(pos + 1).maxCoeff();
      scores.row(i) = (scores.row(i).array() - top).exp();
      scores.row(i) /= scores.row(i).sum();
    }
    RowMatrixXf o = scores * s.v.middleCols(col, head_dim_);  // [nq, d]
    if (v_tail) {
      // Probabilities of the tokens read in bf16 move from the stored values to the copies.
      RowMatrixXf tail_p = RowMatrixXf::Zero(nq, n);
      for (int64_t i = 0; i < nq; ++i) {
        const int64_t pos = n - nq + i, vq = final_before(v_format_, pos);
        tail_p.row(i).segment(vq, pos + 1 - vq) = scores.row(i).segment(vq, pos + 1 - vq);
      }
      o += tail_p * (s.v_tail.middleCols(col, head_dim_) - s.v.middleCols(col, head_dim_));
    }
    out.middleCols(qh * head_dim_, head_dim_) = o;
  }
  return out;
}

}  // namespace kvlab::ref::model
