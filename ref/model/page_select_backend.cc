// SPDX-License-Identifier: Apache-2.0
#include "ref/model/page_select_backend.h"

#include <cmath>

#include "ref/page_sparse.h"

namespace kvlab::ref::model {
namespace {

void append_rows(RowMatrixXf& to, const RowMatrixXf& rows) {
  const Eigen::Index old = to.rows();
  to.conservativeResize(old + rows.rows(), rows.cols());
  to.bottomRows(rows.rows()) = rows;
}

}  // namespace

PageSelectBackend::PageSelectBackend(int num_layers, int num_q_heads, int num_kv_heads, int head_dim,
                                     PageSelectOptions options)
    : num_q_heads_(num_q_heads),
      num_kv_heads_(num_kv_heads),
      head_dim_(head_dim),
      options_(options),
      k_(static_cast<size_t>(num_layers)),
      v_(static_cast<size_t>(num_layers)),
      last_pages_(static_cast<size_t>(num_layers)) {}

void PageSelectBackend::append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) {
  append_rows(k_[static_cast<size_t>(layer)], k);
  append_rows(v_[static_cast<size_t>(layer)], v);
}

RowMatrixXf PageSelectBackend::attend(int layer, const RowMatrixXf& q) {
  const RowMatrixXf& keys = k_[static_cast<size_t>(layer)];
  const RowMatrixXf& values = v_[static_cast<size_t>(layer)];
  const int64_t n = keys.rows(), nq = q.rows();
  const int group = num_q_heads_ / num_kv_heads_;
  const int b = options_.block_size;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  RowMatrixXf out(nq, q.cols());
  auto& last = last_pages_[static_cast<size_t>(layer)];
  last.assign(static_cast<size_t>(num_kv_heads_), {});
  for (int h = 0; h < num_kv_heads_; ++h) {
    const Eigen::Index col = h * head_dim_;
    const auto kh = keys.middleCols(col, head_dim_);
    std::vector<RowMatrixXf> scores(static_cast<size_t>(group));
    for (int g = 0; g < group; ++g) {
      scores[static_cast<size_t>(g)] = (q.middleCols((h * group + g) * head_dim_, head_dim_) * kh.transpose()) * scale;
    }
    // Page metadata of the pages complete before this call, extended as each query's page fills.
    // Page metadata as the pages fill: each query sees the keys up to its own position.
    std::vector<PageMetadataValues> pages;
    int64_t folded = 0;
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t pos = n - nq + i, ctx = pos + 1;
      for (; folded < ctx; ++folded) {
        if (folded % b == 0) pages.emplace_back();
        add_key(pages.back(), kh.row(folded).data(), head_dim_);  // a row of a row-major slice is contiguous
      }
      const int64_t num_pages = (ctx + b - 1) / b;
      std::vector<bool> read(static_cast<size_t>(num_pages), true);
      std::vector<Eigen::VectorXd> probs(static_cast<size_t>(group));
      for (int g = 0; g < group; ++g) {
        Eigen::VectorXd s = scores[static_cast<size_t>(g)].row(i).head(ctx).transpose().cast<double>();
        s = (s.array() - s.maxCoeff()).exp();
        probs[static_cast<size_t>(g)] = s / s.sum();
      }
      if (num_pages > options_.sink_pages + options_.recent_pages + options_.top_k) {
        std::vector<double> score(static_cast<size_t>(num_pages), 0.0);
        if (options_.selector == PageSelector::kExactMass) {
          for (int g = 0; g < group; ++g) {
            const auto m = page_mass(probs[static_cast<size_t>(g)], b);
            for (size_t p = 0; p < m.size(); ++p) score[p] += m[p];
          }
        } else {
          const core::PageMetadata kind =
              options_.selector == PageSelector::kQuestMinMax ? core::PageMetadata::kMinMax : core::PageMetadata::kCentroid;
          for (int g = 0; g < group; ++g) {
            const Eigen::VectorXf qg = q.row(i).segment((h * group + g) * head_dim_, head_dim_).transpose();
            for (int64_t p = 0; p < num_pages; ++p) score[static_cast<size_t>(p)] += page_score(kind, pages[static_cast<size_t>(p)], qg);
          }
        }
        // Only the middle pages compete; sinks and recent pages are read anyway.
        std::vector<double> middle(score.begin() + options_.sink_pages, score.end() - options_.recent_pages);
        std::fill(read.begin() + options_.sink_pages, read.end() - options_.recent_pages, false);
        for (int64_t p : top_k(middle, options_.top_k)) read[static_cast<size_t>(p + options_.sink_pages)] = true;
      }
      if (i == nq - 1) {
        for (int64_t p = 0; p < num_pages; ++p) {
          if (read[static_cast<size_t>(p)]) last[static_cast<size_t>(h)].push_back(p);
        }
      }
      for (int g = 0; g < group; ++g) {
        Eigen::VectorXd p = probs[static_cast<size_t>(g)];
        for (int64_t t = 0; t < ctx; ++t) {
          if (!read[static_cast<size_t>(t / b)]) p(t) = 0;
        }
        p /= p.sum();
        const Eigen::VectorXf o = values.block(0, col, ctx, head_dim_).transpose() * p.cast<float>();
        out.row(i).segment((h * group + g) * head_dim_, head_dim_) = o.transpose();
      }
    }
  }
  return out;
}

}  // namespace kvlab::ref::model
