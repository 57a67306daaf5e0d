// SPDX-License-Identifier: Apache-2.0
#include "gpu/launch/plan_decode.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <queue>
#include <sstream>
#include <string_view>
#include <stdexcept>
#include <tuple>


#include "core/footprint.h"
#include "gpu/cuda_check.h"
#include "gpu/launch/decode_dispatch.h"
#include "gpu/launch/kernel_instances.h"
#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// "{}" placeholders filled in order: fmt's format-string checks do not build in a .cu file.
template <class... Args>
std::string format(std::string_view text, const Args&... args) {
  std::ostringstream out;
  const auto put = [&](const auto& arg) {
    const size_t at = text.find("{}");
    out << text.substr(0, at) << arg;
    text = at == std::string_view::npos ? std::string_view() : text.substr(at + 2);
  };
  (put(args), ...);
  out << text;
  return out.str();
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("plan decode: " + what);
}

// What an item costs beyond its pages, in pages, for the balancer: the pipeline's ramp and
// the partial's write (a guess of the right size: 4 pages a warp in flight, half of them idle).
constexpr int kItemOverheadPages = 2;

int pages_of(const TokenRange& r) {
  if (r.hi <= r.lo) return 0;
  return (r.hi + kDecodePageSize - 1) / kDecodePageSize - r.lo / kDecodePageSize;
}

// A device allocation that frees itself.
class DeviceBytes {
 public:
  DeviceBytes() = default;
  explicit DeviceBytes(size_t bytes) { KVLAB_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(bytes, 1))); }
  ~DeviceBytes() { cudaFree(data_); }
  DeviceBytes(DeviceBytes&& other) noexcept : data_(std::exchange(other.data_, nullptr)) {}
  DeviceBytes& operator=(DeviceBytes&& other) noexcept {
    std::swap(data_, other.data_);
    return *this;
  }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }

 private:
  void* data_ = nullptr;
};

template <class T>
DeviceBytes upload(const std::vector<T>& host) {
  DeviceBytes d(host.size() * sizeof(T));
  if (!host.empty()) KVLAB_CUDA_CHECK(cudaMemcpy(d.as<void>(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

std::string group_support(const core::KvPlan& plan, int g) {
  const core::HeadGroup& group = plan.groups[static_cast<size_t>(g)];
  if (!std::holds_alternative<core::DenseAccess>(group.access)) {
    return format("group '{}': page-sparse access is not in the plan launcher", group.name);
  }
  if (group.v_precision && *group.v_precision != group.precision) {
    return format("group '{}': a separate V precision (K≠V) has no GPU kernel yet", group.name);
  }
  if (std::holds_alternative<core::PeriodicRetention>(group.retention)) {
    return format("group '{}': periodic retention keeps no contiguous page range", group.name);
  }
  if (const auto* w = std::get_if<core::WindowRetention>(&group.retention); w && w->window_tokens <= 0) {
    return format("group '{}': a window of {} tokens keeps nothing", group.name, w->window_tokens);
  }
  return "";
}

}  // namespace

GroupLayerShape group_layer_shape(const core::KvPlan& plan, int group_index, int layer) {
  require(group_index >= 0 && group_index < static_cast<int>(plan.groups.size()), format("no group {}", group_index));
  require(layer >= 0 && layer < static_cast<int>(plan.layers.size()), format("no layer {}", layer));
  const core::HeadGroup& group = plan.groups[static_cast<size_t>(group_index)];
  GroupLayerShape shape;
  for (const core::HeadRef& h : group.heads) {
    if (h.layer == layer) shape.kv_heads.push_back(h.head);
  }
  require(!shape.kv_heads.empty(), format("group '{}' has no head in layer {}", group.name, layer));
  const int heads = static_cast<int>(shape.kv_heads.size());
  const bool per_head = group.page_table == core::PageTableScope::kPerHead;
  shape.num_tables = per_head ? heads : 1;
  shape.heads_per_table = per_head ? 1 : heads;
  const core::LayerShape& s = plan.layers[static_cast<size_t>(layer)];
  shape.layout = core::make_page_layout(group.precision, s.vector_width, plan.block_size, shape.heads_per_table,
                                        s.num_components);
  return shape;
}

TableRanges decode_ranges(const core::Retention& retention, int64_t seq_len, int num_queries) {
  require(seq_len >= num_queries && num_queries >= 1, format("a sequence of {} tokens cannot hold {} queries", seq_len, num_queries));
  const int n = static_cast<int>(seq_len);
  const int first_query = n - num_queries;
  TableRanges out;
  out.table_len = n;
  const auto sinks_then_window = [&](int64_t sinks, int64_t window) {
    const int sink_hi = static_cast<int>(std::min<int64_t>(sinks, n));
    if (sink_hi > 0) out.ranges.push_back({0, sink_hi, 0});
    // The earliest query's window starts lowest; each row cuts its own start in the kernel.
    const int lo = static_cast<int>(std::max<int64_t>(sinks, first_query + 1 - window));
    if (window > 0 && lo < n) out.ranges.push_back({lo, n, static_cast<int>(window)});
  };
  std::visit(Overloaded{
                 [&](const core::FullRetention&) { out.ranges.push_back({0, n, 0}); },
                 [&](const core::WindowRetention& r) {
                   require(r.window_tokens > 0, "a window of 0 tokens keeps nothing");
                   sinks_then_window(0, r.window_tokens);
                 },
                 [&](const core::SinksWindowRetention& r) { sinks_then_window(r.sink_tokens, r.window_tokens); },
                 [&](const core::PrefixOnlyRetention& r) { sinks_then_window(r.prefix_tokens, r.window_tokens); },
                 [&](const core::PeriodicRetention&) {
                   require(false, "periodic retention keeps no contiguous page range (ref/ executes it; the GPU does not)");
                 },
                 [&](const core::BudgetRetention&) {
                   // Compacted: the kept tokens fill the table from its start, the newest last.
                   out.table_len = static_cast<int>(core::retained_tokens(retention, seq_len));
                   require(out.table_len >= num_queries, "a budget must keep at least the step's queries");
                   out.ranges.push_back({0, out.table_len, 0});
                 },
             },
             retention);
  return out;
}

namespace {

// Pieces to cut a range of `pages` pages into: near-equal, at most `target` pages each,
// unless that would make them shorter than `floor` (then as many as the floor allows).
int piece_count(int pages, int target, int floor) {
  const int64_t by_target = (int64_t{pages} + target - 1) / target;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(by_target, pages / floor)));
}

// Time of list scheduling `sizes` (pages, longest first) on `slots` CTA slots, in pages plus
// kItemOverheadPages a piece: what the hardware's in-order dispatch to the first free slot
// does with the work list.
int64_t list_schedule_makespan(std::vector<int>& sizes, int slots) {
  std::sort(sizes.begin(), sizes.end(), std::greater<>());
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> free_at;
  for (int i = 0; i < slots; ++i) free_at.push(0);
  int64_t makespan = 0;
  for (int size : sizes) {
    const int64_t done = free_at.top() + size + kItemOverheadPages;
    free_at.pop();
    free_at.push(done);
    makespan = std::max(makespan, done);
  }
  return makespan;
}

}  // namespace

PlannedWork plan_work_items(const std::vector<SliceWork>& slices, int cta_slots, bool balance, int min_item_pages) {
  require(cta_slots > 0, "cta_slots must be positive");
  require(min_item_pages >= 1, "min_item_pages must be positive");
  // Pages of every range of every (slice, sequence, head, row chunk): heads and row chunks
  // of one sequence read the same pages, so one range stands for all of them.
  std::vector<std::pair<int, int64_t>> range_pages;  // (pages, copies)
  int64_t total_pages = 0;
  for (const SliceWork& s : slices) {
    for (const TableRanges& seq : s.seqs) {
      for (const TokenRange& r : seq.ranges) {
        const int64_t copies = int64_t{s.num_heads} * s.num_row_chunks;
        range_pages.emplace_back(pages_of(r), copies);
        total_pages += pages_of(r) * copies;
      }
    }
  }
  // The piece size: the one whose list schedule finishes first, among fractions of an even
  // share (smaller pieces balance better, each costs a ramp and a merge share); ties go to
  // the larger piece (fewer items). Never under min_item_pages.
  const int share = static_cast<int>(std::max<int64_t>(min_item_pages, (total_pages + cta_slots - 1) / cta_slots));
  int target = balance ? share : std::numeric_limits<int>::max();
  int64_t best = -1;
  for (const double fraction : {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1}) {
    if (!balance) break;
    const int candidate = std::max(min_item_pages, static_cast<int>(share * fraction));
    std::vector<int> sizes;
    for (const auto& [pages, copies] : range_pages) {
      if (pages == 0) continue;
      const int n = piece_count(pages, candidate, min_item_pages);
      for (int64_t c = 0; c < copies; ++c) {
        for (int i = 0; i < n; ++i) sizes.push_back(static_cast<int>(int64_t{pages} * (i + 1) / n - int64_t{pages} * i / n));
      }
    }
    const int64_t makespan = list_schedule_makespan(sizes, cta_slots);
    if (best < 0 || makespan < best) {
      best = makespan;
      target = candidate;
    }
    if (candidate == min_item_pages) break;
  }

  PlannedWork work;
  work.target_pages = target;
  std::vector<PlannedItem> pieces;
  for (int sl = 0; sl < static_cast<int>(slices.size()); ++sl) {
    const SliceWork& s = slices[static_cast<size_t>(sl)];
    for (int b = 0; b < static_cast<int>(s.seqs.size()); ++b) {
      const TableRanges& seq = s.seqs[static_cast<size_t>(b)];
      for (int h = 0; h < s.num_heads; ++h) {
        for (int rc = 0; rc < s.num_row_chunks; ++rc) {
          pieces.clear();
          for (const TokenRange& r : seq.ranges) {
            const int pages = pages_of(r);
            if (pages == 0) continue;
            const int first = r.lo / kDecodePageSize;
            const int n = piece_count(pages, target, min_item_pages);
            for (int i = 0; i < n; ++i) {
              PlannedItem item;
              item.page_begin = first + static_cast<int>(int64_t{pages} * i / n);
              item.num_pages = first + static_cast<int>(int64_t{pages} * (i + 1) / n) - item.page_begin;
              item.range = r;
              pieces.push_back(item);
            }
          }
          if (pieces.empty()) pieces.push_back(PlannedItem{});  // nothing to read: writes zeros
          const int splits = static_cast<int>(pieces.size());
          work.max_splits = std::max(work.max_splits, splits);
          const int slot = splits > 1 ? work.num_slots : 0;
          const int counter = splits > 1 ? work.num_counters : 0;
          if (splits > 1) {
            work.num_slots += splits;
            ++work.num_counters;
          }
          for (int i = 0; i < splits; ++i) {
            PlannedItem item = pieces[static_cast<size_t>(i)];
            item.slice = sl;
            item.seq = b;
            item.head = h;
            item.row_chunk = rc;
            item.table_len = seq.table_len;
            item.split = i;
            item.num_splits = splits;
            item.slot = slot;
            item.counter = counter;
            work.items.push_back(item);
          }
        }
      }
    }
  }
  // Longest first: CTAs are dispatched in index order to whichever slot frees up first.
  std::stable_sort(work.items.begin(), work.items.end(),
                   [](const PlannedItem& x, const PlannedItem& y) { return x.num_pages > y.num_pages; });
  return work;
}

std::string plan_decode_support(const core::KvPlan& plan, int layer) {
  if (layer < 0 || layer >= static_cast<int>(plan.layers.size())) return format("no layer {}", layer);
  const core::LayerShape& s = plan.layers[static_cast<size_t>(layer)];
  if (s.num_components != 2) return format("layer {} is not a K/V layer (an MLA latent or linear state)", layer);
  for (int g = 0; g < static_cast<int>(plan.groups.size()); ++g) {
    bool here = false;
    for (const core::HeadRef& h : plan.groups[static_cast<size_t>(g)].heads) here = here || h.layer == layer;
    if (!here) continue;
    if (std::string why = group_support(plan, g); !why.empty()) return why;
    const std::string layout = decode_support(group_layer_shape(plan, g, layer).layout);
    if (!layout.empty()) return format("group '{}': {}", plan.groups[static_cast<size_t>(g)].name, layout);
  }
  return "";
}

// One launch: the slices of one instance class and their device copies.
struct LaunchClass {
  core::Precision precision;
  PlanInstanceShape shape;
  DecodeFormat format{};
  size_t smem = 0;
  PlannedWork planned;
  DeviceBytes items, slices, kv_heads, workspace;
  PlanDecodeParams params{};
};

struct PlanDecodeWork::Impl {
  std::vector<LaunchClass> launches;
};

PlanDecodeWork::PlanDecodeWork() : impl_(std::make_unique<Impl>()) {}
PlanDecodeWork::~PlanDecodeWork() = default;
PlanDecodeWork::PlanDecodeWork(PlanDecodeWork&&) noexcept = default;
PlanDecodeWork& PlanDecodeWork::operator=(PlanDecodeWork&&) noexcept = default;
int PlanDecodeWork::num_launches() const { return static_cast<int>(impl_->launches.size()); }
const PlannedWork& PlanDecodeWork::planned(int launch) const { return impl_->launches.at(static_cast<size_t>(launch)).planned; }

PlanDecodeWork plan_decode_work(const PlanDecodeArgs& a) {
  require(a.plan != nullptr, "no plan");
  const core::KvPlan& plan = *a.plan;
  if (const std::string why = plan_decode_support(plan, a.layer); !why.empty()) require(false, why);
  const core::LayerShape& layer = plan.layers[static_cast<size_t>(a.layer)];
  require(a.q && a.out, "q or out is null");
  require(!a.seq_lens.empty(), "an empty batch");
  require(a.num_queries >= 1, "num_queries must be positive");
  require(a.tree_mask == nullptr || a.num_queries <= kMaxTreeQueries,
          format("a tree mask takes at most {} queries", kMaxTreeQueries));
  require(std::isfinite(a.sm_scale) && a.sm_scale > 0, "sm_scale must be positive and finite");
  require(layer.num_q_heads % layer.num_cache_heads == 0, "query heads must be a multiple of the KV heads");
  const int batch = static_cast<int>(a.seq_lens.size());
  const int group = layer.num_q_heads / layer.num_cache_heads;
  const int num_row_chunks = (group * a.num_queries + kDecodeRows - 1) / kDecodeRows;

  // Every group with heads in the layer, given exactly once.
  std::vector<int> given(plan.groups.size(), 0);
  for (const PlanGroupPages& g : a.groups) {
    require(g.group >= 0 && g.group < static_cast<int>(plan.groups.size()), format("no group {}", g.group));
    ++given[static_cast<size_t>(g.group)];
  }
  for (int g = 0; g < static_cast<int>(plan.groups.size()); ++g) {
    bool here = false;
    for (const core::HeadRef& h : plan.groups[static_cast<size_t>(g)].heads) here = here || h.layer == a.layer;
    const std::string& name = plan.groups[static_cast<size_t>(g)].name;
    require(given[static_cast<size_t>(g)] == (here ? 1 : 0),
            format("group '{}' is given {} times; {}", name, given[static_cast<size_t>(g)],
                   here ? format("once, as it has heads in layer {}", a.layer) : format("it has no heads in layer {}", a.layer)));
  }

  // Slices, by instance class (precision and head_dim: every group of a layer has the same
  // rows per CTA).
  struct HostSlice {
    DecodeSlice device{};
    std::vector<int32_t> kv_heads;
    SliceWork work;
  };
  std::vector<LaunchClass> launches;
  std::vector<std::vector<HostSlice>> class_slices;
  for (const PlanGroupPages& g : a.groups) {
    const core::HeadGroup& hg = plan.groups[static_cast<size_t>(g.group)];
    const GroupLayerShape shape = group_layer_shape(plan, g.group, a.layer);
    require(g.pool && g.page_table, format("group '{}': pool or page table is null", hg.name));
    HostSlice s;
    s.kv_heads.assign(shape.kv_heads.begin(), shape.kv_heads.end());
    s.work.num_heads = static_cast<int>(shape.kv_heads.size());
    s.work.num_row_chunks = num_row_chunks;
    for (int b = 0; b < batch; ++b) {
      TableRanges ranges = decode_ranges(hg.retention, a.seq_lens[static_cast<size_t>(b)], a.num_queries);
      const int pages = (ranges.table_len + kDecodePageSize - 1) / kDecodePageSize;
      require(pages <= g.max_pages, format("group '{}': sequence {} needs {} pages, the table holds {}", hg.name, b,
                                                pages, g.max_pages));
      s.work.seqs.push_back(std::move(ranges));
    }
    DecodeSlice& d = s.device;
    d.pool = g.pool;
    d.page_bytes = shape.layout.page_bytes;
    d.page_table = g.page_table;
    d.q = a.q;
    d.out = a.out;
    d.tree_mask = a.tree_mask;
    d.num_tables = shape.num_tables;
    d.heads_per_table = shape.heads_per_table;
    d.heads_per_page = shape.layout.heads_per_page;
    d.max_pages = g.max_pages;
    d.num_q_heads = layer.num_q_heads;
    d.group = group;
    d.num_queries = a.num_queries;
    size_t c = 0;
    while (c < launches.size() && !(launches[c].precision == hg.precision && launches[c].shape.head_dim == layer.vector_width)) ++c;
    if (c == launches.size()) {
      LaunchClass lc;
      lc.precision = hg.precision;
      lc.shape.head_dim = layer.vector_width;
      lc.shape.full_m = group * a.num_queries > 8;
      lc.shape.group_size = hg.precision.group_size;
      lc.format = decode_format(shape.layout, a.sm_scale);
      lc.smem = decode_smem_bytes(lc.format, lc.shape.head_dim);
      launches.push_back(std::move(lc));
      class_slices.emplace_back();
    }
    class_slices[c].push_back(std::move(s));
  }

  int device = 0, num_sms = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  PlanDecodeWork work;
  for (size_t c = 0; c < launches.size(); ++c) {
    LaunchClass& lc = launches[c];
    std::vector<HostSlice>& slices = class_slices[c];
    int ctas_per_sm = 1;
    dispatch_code(lc.precision, [&]<KvCode C, bool kAsym>() { ctas_per_sm = plan_ctas_per_sm_typed<C, kAsym>(lc.shape, lc.smem); });
    require(ctas_per_sm >= 1, "the work-list kernel does not fit on an SM");
    std::vector<SliceWork> slice_work;
    for (const HostSlice& s : slices) slice_work.push_back(s.work);
    lc.planned = plan_work_items(slice_work, ctas_per_sm * num_sms, a.balance, a.min_item_pages);
    lc.smem = std::max(lc.smem, fused_merge_smem_bytes(lc.planned.max_splits));
    require(lc.smem <= 227 * 1024, format("{} splits of one head need more shared memory than an SM has", lc.planned.max_splits));

    std::vector<int32_t> kv_heads;
    std::vector<DecodeSlice> device_slices;
    std::vector<size_t> kv_head_offset;
    for (const HostSlice& s : slices) {
      kv_head_offset.push_back(kv_heads.size());
      kv_heads.insert(kv_heads.end(), s.kv_heads.begin(), s.kv_heads.end());
      device_slices.push_back(s.device);
    }
    lc.kv_heads = upload(kv_heads);
    for (size_t i = 0; i < device_slices.size(); ++i) device_slices[i].kv_head_of = lc.kv_heads.as<int32_t>() + kv_head_offset[i];
    std::vector<DecodeWorkItem> items;
    for (const PlannedItem& p : lc.planned.items) {
      items.push_back(DecodeWorkItem{p.slice, p.seq, p.head, p.row_chunk, p.page_begin, p.num_pages, p.table_len, p.range.lo,
                                     p.range.hi, p.range.window, p.split, p.num_splits, p.slot, p.counter});
    }
    lc.items = upload(items);
    lc.slices = upload(device_slices);
    // Workspace: counters first (zeroed once here; each launch leaves them at zero), then
    // the partial accumulators and (m, l) of every slot.
    const size_t counter_floats = (static_cast<size_t>(lc.planned.num_counters) + 63) / 64 * 64;
    const size_t slot_rows = static_cast<size_t>(lc.planned.num_slots) * kDecodeRows;
    const size_t floats = counter_floats + slot_rows * (lc.shape.head_dim + 2);
    lc.workspace = DeviceBytes(floats * sizeof(float));
    KVLAB_CUDA_CHECK(cudaMemset(lc.workspace.as<void>(), 0, counter_floats * sizeof(float)));
    PlanDecodeParams& p = lc.params;
    p.format = lc.format;
    p.items = lc.items.as<DecodeWorkItem>();
    p.slices = lc.slices.as<DecodeSlice>();
    p.counters = lc.workspace.as<unsigned int>();
    p.partial_acc = lc.workspace.as<float>() + counter_floats;
    p.partial_ml = p.partial_acc + slot_rows * lc.shape.head_dim;
    work.impl_->launches.push_back(std::move(lc));
  }
  return work;
}

void launch_plan_decode(const PlanDecodeWork& work, cudaStream_t stream) {
  for (const LaunchClass& lc : work.impl_->launches) {
    const int num_items = static_cast<int>(lc.planned.items.size());
    dispatch_code(lc.precision, [&]<KvCode C, bool kAsym>() { launch_plan_typed<C, kAsym>(lc.params, num_items, lc.shape, lc.smem, stream); });
  }
}

}  // namespace kvlab::gpu
