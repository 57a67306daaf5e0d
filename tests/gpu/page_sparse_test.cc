// SPDX-License-Identifier: Apache-2.0
// Page-sparse decode on the GPU (Quest, centroid, and the pattern written only in
// gpu/launch/page_patterns.h) against ref/: the key summaries the append kernel keeps equal
// ref::build_page_metadata's over the same float keys; the pages each (sequence, KV head)
// selects equal ref::select_pages_by_score's over ref/'s scores (ref::page_score, summed —
// or for centroid_max_head, maxed — over the KV head's query heads); and the decode over the
// selected pages equals a float64 attention (ref::attend_rows) over those pages' stored
// tokens.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <cstring>
#include <set>
#include <span>

#include <gtest/gtest.h>

#include "core/page_allocator.h"
#include "gpu/kernels/page_select_params.h"
#include "gpu/launch/page_patterns.h"
#include "gpu/launch/paged_decode.h"
#include "gpu/launch/plan_decode.h"
#include "ref/float_formats.h"
#include "ref/page_sparse.h"
#include "ref/paged_attention.h"
#include "ref/paged_kv.h"
#include "tests/gpu/device.h"

namespace kvlab::gpu {
namespace {

using core::KvDtype;
using testing::DeviceBuffer;

struct SparseCase {
  int kv_heads;
  int q_heads;
  int head_dim;
  KvDtype dtype;
  core::PageTableScope scope;
  std::vector<int32_t> lens;
  core::PageSparseAccess access;
  std::string pattern;  // a name in page_patterns.h
};

core::KvPlan sparse_plan(const SparseCase& c) {
  core::KvPlan plan;
  plan.model_name = "test";
  core::LayerShape s;
  s.num_cache_heads = c.kv_heads;
  s.num_components = 2;
  s.vector_width = c.head_dim;
  s.num_q_heads = c.q_heads;
  s.qk_dim = s.v_dim = c.head_dim;
  plan.layers = {s};
  core::HeadGroup g;
  g.name = "sparse";
  for (int h = 0; h < c.kv_heads; ++h) g.heads.push_back({0, h});
  g.retention = core::FullRetention{};
  g.access = c.access;
  g.precision = core::Precision::defaults(c.dtype);
  g.page_table = c.scope;
  plan.groups = {g};
  return plan;
}

// The KV cache of one page-sparse group, appended on the GPU with summaries, and the float
// keys it came from.
class SparseProblem {
 public:
  explicit SparseProblem(const SparseCase& c, uint32_t seed) : c_(c), plan_(sparse_plan(c)) {
    shape_ = group_layer_shape(plan_, 0, 0);
    const int d = c.head_dim, batch = static_cast<int>(c.lens.size());
    for (int32_t n : c.lens) max_pages_ = std::max(max_pages_, (n + 15) / 16);
    const int64_t pool_pages = int64_t{batch} * shape_.num_tables * max_pages_ + 3;
    table_.assign(static_cast<size_t>(batch) * shape_.num_tables * max_pages_, -1);
    core::PageAllocator allocator(pool_pages, seed);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    keys_.resize(static_cast<size_t>(batch) * c.kv_heads);
    d_pool_ = std::make_unique<DeviceBuffer<uint8_t>>(static_cast<size_t>(pool_pages * shape_.layout.page_bytes));
    d_summaries_ = std::make_unique<DeviceBuffer<uint8_t>>(static_cast<size_t>(pool_pages * page_summary_bytes(shape_.layout)));
    d_pool_->fill_bytes(0xFF);
    d_summaries_->fill_bytes(0);  // every page's summary empty when allocated
    for (int b = 0; b < batch; ++b) {
      const int n = c.lens[static_cast<size_t>(b)];
      for (int h = 0; h < c.kv_heads; ++h) keys_[static_cast<size_t>(b * c.kv_heads + h)] = Eigen::MatrixXf(n, d);
      for (int t = 0; t < shape_.num_tables; ++t) {
        int32_t* row = &table_[(static_cast<size_t>(b) * shape_.num_tables + t) * max_pages_];
        for (int p = 0; p < (n + 15) / 16; ++p) row[p] = (*allocator.allocate(1))[0];
        // One append of the table's heads: K and V [n, heads_per_table, d].
        const int hpt = shape_.heads_per_table;
        std::vector<float> k(static_cast<size_t>(n) * hpt * d), v(k.size());
        std::vector<int32_t> slot_page(static_cast<size_t>(n)), slot_offset(static_cast<size_t>(n));
        for (int tok = 0; tok < n; ++tok) {
          slot_page[static_cast<size_t>(tok)] = row[tok / 16];
          slot_offset[static_cast<size_t>(tok)] = tok % 16;
          for (int j = 0; j < hpt; ++j) {
            const int kv = t * hpt + j;
            for (int i = 0; i < d; ++i) {
              // Keys with a per-token drift, so pages differ in more than noise.
              const float key = normal(rng) + 0.5f * std::sin(0.01f * static_cast<float>(tok) * static_cast<float>(i % 7 + 1));
              k[(static_cast<size_t>(tok) * hpt + j) * d + i] = key;
              v[(static_cast<size_t>(tok) * hpt + j) * d + i] = 2.0f * normal(rng);
              keys_[static_cast<size_t>(b * c.kv_heads + kv)](tok, i) = key;
            }
          }
        }
        DeviceBuffer<float> d_k(k), d_v(v);
        DeviceBuffer<int32_t> d_page(slot_page), d_slot(slot_offset);
        KvAppendArgs a;
        a.layout = shape_.layout;
        a.pool = d_pool_->get();
        a.num_pages = pool_pages;
        a.k = d_k.get();
        a.v = d_v.get();
        a.slot_page = d_page.get();
        a.slot_offset = d_slot.get();
        a.num_tokens = n;
        a.summaries = d_summaries_->get();
        launch_kv_append(a, nullptr);
        KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
      }
    }
    d_table_ = std::make_unique<DeviceBuffer<int32_t>>(table_);
    const size_t q_count = static_cast<size_t>(batch) * c.q_heads * d;
    std::vector<uint16_t> q_bf16(q_count);
    q_.resize(q_count);
    for (size_t i = 0; i < q_count; ++i) {
      q_bf16[i] = ref::float_to_bf16(normal(rng));
      q_[i] = ref::bf16_to_float(q_bf16[i]);
    }
    d_q_ = std::make_unique<DeviceBuffer<uint16_t>>(q_bf16);
    d_out_ = std::make_unique<DeviceBuffer<uint16_t>>(q_count);
  }

  PlanDecodeArgs args() const {
    PlanDecodeArgs a;
    a.plan = &plan_;
    a.groups.push_back({0, d_pool_->get(), 0, d_table_->get(), max_pages_, d_summaries_->get(), c_.pattern});
    a.q = reinterpret_cast<const __nv_bfloat16*>(d_q_->get());
    a.out = reinterpret_cast<__nv_bfloat16*>(d_out_->get());
    a.seq_lens = c_.lens;
    a.sm_scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim));
    return a;
  }

  // ref/'s selection (logical pages, ascending) for sequence b, KV head kv.
  std::vector<int64_t> ref_selection(int b, int kv, std::vector<float>* scores_out = nullptr) const {
    const std::vector<ref::PageMetadataValues> pages = ref::build_page_metadata(keys(b, kv), 16);
    const PagePattern& pattern = *find_page_pattern(c_.pattern);
    const core::PageMetadata kind = pattern.score == SummaryScore::kEnvelope ? core::PageMetadata::kMinMax
                                                                             : core::PageMetadata::kCentroid;
    const int group = c_.q_heads / c_.kv_heads, d = c_.head_dim;
    std::vector<float> scores(pages.size(), pattern.heads == HeadReduce::kSum ? 0.0f : -INFINITY);
    for (size_t p = 0; p < pages.size(); ++p) {
      for (int g = 0; g < group; ++g) {
        const Eigen::Map<const Eigen::VectorXf> qh(&q_[(static_cast<size_t>(b) * c_.q_heads + kv * group + g) * d], d);
        const float s = ref::page_score(kind, pages[p], qh);
        scores[p] = pattern.heads == HeadReduce::kSum ? scores[p] + s : std::max(scores[p], s);
      }
    }
    if (scores_out != nullptr) *scores_out = scores;
    return ref::select_pages_by_score(c_.access, scores);
  }

  const Eigen::MatrixXf& keys(int b, int kv) const { return keys_[static_cast<size_t>(b * c_.kv_heads + kv)]; }
  int32_t pool_page(int b, int kv, int64_t logical) const {
    const int t = kv / shape_.heads_per_table;
    return table_[(static_cast<size_t>(b) * shape_.num_tables + t) * max_pages_ + static_cast<size_t>(logical)];
  }
  const SparseCase& c() const { return c_; }
  const GroupLayerShape& shape() const { return shape_; }
  std::vector<uint8_t> pool() const { return d_pool_->download(); }
  std::vector<uint8_t> summaries() const { return d_summaries_->download(); }
  std::vector<uint16_t> out() const { return d_out_->download(); }
  void poison_out() { d_out_->fill_bytes(0xFF); }
  const std::vector<float>& q() const { return q_; }

 private:
  SparseCase c_;
  core::KvPlan plan_;
  GroupLayerShape shape_;
  int max_pages_ = 0;
  std::vector<int32_t> table_;
  std::vector<Eigen::MatrixXf> keys_;  // [batch × kv_heads]: [tokens, head_dim]
  std::vector<float> q_;
  std::unique_ptr<DeviceBuffer<uint8_t>> d_pool_, d_summaries_;
  std::unique_ptr<DeviceBuffer<int32_t>> d_table_;
  std::unique_ptr<DeviceBuffer<uint16_t>> d_q_, d_out_;
};

core::PageSparseAccess access_of(core::PageMetadata metadata, double ratio) {
  core::PageSparseAccess a;
  a.top_k_pages = 0;
  a.sink_pages = 1;
  a.recent_pages = 2;
  a.metadata = metadata;
  a.top_k_ratio = ratio;
  return a;
}

SparseCase bf16_case(const std::string& pattern, core::PageMetadata metadata) {
  return {8, 32, 128, KvDtype::kBf16, core::PageTableScope::kPerLayer, {3001, 1000, 40},
          access_of(metadata, 1.0 / 8), pattern};
}

TEST(PageSparseGpu, AppendKeepsRefSummaries) {
  KVLAB_REQUIRE_GPU();
  const SparseProblem problem(bf16_case("quest", core::PageMetadata::kMinMax), 31);
  const std::vector<uint8_t> bytes = problem.summaries();
  const int d = 128;
  const int64_t page_bytes = page_summary_bytes(problem.shape().layout);
  int64_t checked = 0;
  for (int b = 0; b < 3; ++b) {
    for (int kv = 0; kv < 8; ++kv) {
      const std::vector<ref::PageMetadataValues> want = ref::build_page_metadata(problem.keys(b, kv), 16);
      for (size_t p = 0; p < want.size(); ++p) {
        const uint8_t* head = bytes.data() + problem.pool_page(b, kv, static_cast<int64_t>(p)) * page_bytes +
                              static_cast<int64_t>(kv) * page_summary_head_bytes(d);
        const uint32_t* min_code = reinterpret_cast<const uint32_t*>(head);
        const uint32_t* max_code = min_code + d;
        const double* sum = reinterpret_cast<const double*>(max_code + d);
        for (int i = 0; i < d; ++i) {
          // order_code inverted on the host: the float's bits with the sign bit flipped (≥ 0)
          // or all bits flipped (< 0).
          const auto decode = [](uint32_t c) {
            const uint32_t u = (c & 0x80000000u) != 0u ? (c & 0x7FFFFFFFu) : ~c;
            float f;
            std::memcpy(&f, &u, 4);
            return f;
          };
          ASSERT_EQ(decode(~min_code[i]), want[p].min[i]) << b << " " << kv << " " << p << " " << i;
          ASSERT_EQ(decode(max_code[i]), want[p].max[i]) << b << " " << kv << " " << p << " " << i;
          ASSERT_EQ(static_cast<float>(sum[i] / static_cast<double>(want[p].count)), want[p].centroid[i]);
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 0);
}

// Runs the case: selection against ref/'s, decode against float64 attention over the pages
// the GPU selected.
void check_case(const SparseCase& c, uint32_t seed) {
  SparseProblem problem(c, seed);
  const PlanDecodeWork work = plan_decode_work(problem.args());
  problem.poison_out();
  launch_plan_decode(work, nullptr);
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  const SparseSelection sel = work.selection(0);
  const std::vector<uint8_t> pool = problem.pool();
  const std::vector<uint16_t> out = problem.out();
  const int batch = static_cast<int>(c.lens.size()), d = c.head_dim, group = c.q_heads / c.kv_heads;
  const int hpp = problem.shape().layout.heads_per_page;
  double err2 = 0, ref2 = 0;
  int near_ties = 0;
  for (int b = 0; b < batch; ++b) {
    for (int kv = 0; kv < c.kv_heads; ++kv) {
      std::vector<float> scores;
      const std::vector<int64_t> want = problem.ref_selection(b, kv, &scores);
      ASSERT_EQ(static_cast<int>(want.size()), sel.counts[static_cast<size_t>(b)]) << "core::sparse_pages_read";
      // The GPU's pages, as logical pages (pool page → logical through the table).
      std::vector<int64_t> got;
      const int32_t* row = &sel.pages[(static_cast<size_t>(b) * sel.num_heads + kv) * sel.width];
      const int pages = (c.lens[static_cast<size_t>(b)] + 15) / 16;
      for (int i = 0; i < sel.counts[static_cast<size_t>(b)]; ++i) {
        int64_t logical = -1;
        for (int p = 0; p < pages; ++p) logical = problem.pool_page(b, kv, p) == row[i] ? p : logical;
        ASSERT_GE(logical, 0) << "selected pool page " << row[i] << " is not in the sequence";
        got.push_back(logical);
      }
      ASSERT_TRUE(std::is_sorted(got.begin(), got.end()));
      if (got != want) {
        // Only a swap of pages whose ref/ scores tie to float rounding (the GPU sums in
        // another order) is allowed; none is expected.
        std::set<int64_t> a(got.begin(), got.end()), w(want.begin(), want.end());
        float kth = INFINITY;
        for (int64_t p : want) kth = std::min(kth, scores[static_cast<size_t>(p)]);
        for (int64_t p : got) {
          if (w.count(p) == 0) {
            EXPECT_NEAR(scores[static_cast<size_t>(p)], kth, 1e-4 * std::abs(kth)) << "page " << p << " not in ref's selection";
            ++near_ties;
          }
        }
        for (int64_t p : want) {
          if (a.count(p) == 0) {
            EXPECT_NEAR(scores[static_cast<size_t>(p)], kth, 1e-4 * std::abs(kth)) << "page " << p;
          }
        }
      }
      // float64 attention over the selected pages' stored tokens.
      std::vector<std::vector<float>> ks, vs;
      for (int64_t p : got) {
        for (int64_t t = p * 16; t < std::min<int64_t>(p * 16 + 16, c.lens[static_cast<size_t>(b)]); ++t) {
          const int page = problem.pool_page(b, kv, p);
          ks.push_back(ref::read_token(problem.shape().layout, pool, page, static_cast<int>(t % 16), kv % hpp, 0));
          vs.push_back(ref::read_token(problem.shape().layout, pool, page, static_cast<int>(t % 16), kv % hpp, 1));
        }
      }
      std::vector<const float*> kp, vp;
      for (size_t i = 0; i < ks.size(); ++i) {
        kp.push_back(ks[i].data());
        vp.push_back(vs[i].data());
      }
      for (int g = 0; g < group; ++g) {
        const size_t at = (static_cast<size_t>(b) * c.q_heads + kv * group + g) * d;
        std::vector<double> expected(static_cast<size_t>(d));
        ref::attend_rows(std::span<const float>(problem.q()).subspan(at, static_cast<size_t>(d)), kp, vp,
                         1.0 / std::sqrt(static_cast<double>(d)), std::span<double>(expected));
        for (int i = 0; i < d; ++i) {
          const float v = ref::bf16_to_float(out[at + static_cast<size_t>(i)]);
          ASSERT_TRUE(std::isfinite(v)) << "output " << at + static_cast<size_t>(i) << " unwritten";
          err2 += (v - expected[static_cast<size_t>(i)]) * (v - expected[static_cast<size_t>(i)]);
          ref2 += expected[static_cast<size_t>(i)] * expected[static_cast<size_t>(i)];
        }
      }
    }
  }
  EXPECT_EQ(near_ties, 0) << "pages swapped at float ties";
  EXPECT_LT(std::sqrt(err2 / ref2), 1e-2);
}

TEST(PageSparseGpu, QuestSelectsRefPagesAndDecodes) {
  KVLAB_REQUIRE_GPU();
  check_case(bf16_case("quest", core::PageMetadata::kMinMax), 41);
}

TEST(PageSparseGpu, CentroidSelectsRefPagesAndDecodes) {
  KVLAB_REQUIRE_GPU();
  check_case(bf16_case("centroid", core::PageMetadata::kCentroid), 42);
}

TEST(PageSparseGpu, PatternFromTheTableOnly) {
  KVLAB_REQUIRE_GPU();
  // centroid_max_head exists only as a line of page_patterns.h.
  check_case(bf16_case("centroid_max_head", core::PageMetadata::kCentroid), 43);
}

TEST(PageSparseGpu, Int8PerHeadTablesGroupOf8HeadDim64) {
  KVLAB_REQUIRE_GPU();
  // Per-head tables (one head a page), 8 query heads per KV head, 1/32 of 400 pages, a
  // sequence shorter than sinks + recent (all its pages), top_k_pages beside the ratio.
  SparseCase c{2, 16, 64, KvDtype::kInt8, core::PageTableScope::kPerHead, {6400, 33, 700},
               access_of(core::PageMetadata::kMinMax, 1.0 / 32), "quest"};
  c.access.top_k_pages = 5;
  check_case(c, 44);
}

TEST(PageSparseGpu, RepeatedStepsReuseCounters) {
  KVLAB_REQUIRE_GPU();
  // The selection's counters wrap back to zero: three steps of one plan select the same.
  SparseProblem problem(bf16_case("quest", core::PageMetadata::kMinMax), 45);
  const PlanDecodeWork work = plan_decode_work(problem.args());
  launch_plan_decode(work, nullptr);
  const SparseSelection first = work.selection(0);
  for (int step = 0; step < 2; ++step) {
    launch_plan_decode(work, nullptr, PlanPhases::kSelectOnly);
    EXPECT_EQ(work.selection(0).pages, first.pages) << "step " << step;
  }
}

}  // namespace
}  // namespace kvlab::gpu
