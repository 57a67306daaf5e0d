// SPDX-License-Identifier: Apache-2.0
#include "gpu/launch/plan_decode.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <queue>
#include <sstream>
#include <string_view>
#include <stdexcept>
#include <tuple>


#include "core/footprint.h"
#include "gpu/cuda_check.h"
#include "gpu/launch/decode_dispatch.h"
#include "gpu/launch/kernel_instances.h"
#include "gpu/launch/page_patterns.h"
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
  if (const auto* sparse = std::get_if<core::PageSparseAccess>(&group.access)) {
    if (!std::holds_alternative<core::FullRetention>(group.retention)) {
      return format("group '{}': page-sparse access selects among the pages of full retention only on the GPU", group.name);
    }
    if (sparse->recent_pages < 1) {
      return format("group '{}': page-sparse decode on the GPU keeps at least one recent page (the query's)", group.name);
    }
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
  shape.layout = core::make_page_layout(group.precision, s.vector_width, group.block_size, shape.heads_per_table,
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

double format_time_factor(const core::Precision& precision) {
  // decode_bench, H200, 32 × 8k (docs/gpu-decode.md, commits 00e265e and f416567; int6/int5
  // since their bit planes, bench/results/2026-12-03-h200-bitplane: 1.49–1.52 and 1.74–1.77):
  // time over byte floor; bf16 runs at 0.97–1.00 of the copy ceiling there.
  switch (precision.dtype) {
    case core::KvDtype::kBf16:
    case core::KvDtype::kFp16: return 1.0;
    case core::KvDtype::kFp8E4m3: return 1.23;
    case core::KvDtype::kInt8: return 1.08;
    case core::KvDtype::kInt6: return 1.5;
    case core::KvDtype::kInt5: return 1.75;
    case core::KvDtype::kInt4: return 2.0;
  }
  return 1.0;
}

namespace {

// One output (slice, sequence, head, row chunk) of the step: its launch and token ranges.
struct Output {
  int launch = 0;
  int slice = 0, seq = 0, head = 0, row_chunk = 0;
  const TableRanges* ranges = nullptr;
};

// Pieces of each of an output's ranges for a piece cost `target`: near-equal, at least
// min_item_pages each, at most max_splits over the output (the longest ranges give way).
std::vector<int> cut_output(const Output& o, double page_cost, double target, const PlanCostModel& m, bool balance) {
  std::vector<int> n;
  int total = 0;
  for (const TokenRange& r : o.ranges->ranges) {
    const int pages = pages_of(r);
    int pieces = pages == 0 ? 0 : 1;
    if (balance && pages > 0) {
      const double want = std::ceil(pages * page_cost / target);
      pieces = static_cast<int>(std::clamp<double>(want, 1, std::max(1, pages / m.min_item_pages)));
    }
    n.push_back(pieces);
    total += pieces;
  }
  while (total > m.max_splits()) {  // give a piece back where pieces are shortest
    size_t at = 0;
    double shortest = std::numeric_limits<double>::max();
    for (size_t i = 0; i < n.size(); ++i) {
      if (n[i] <= 1) continue;
      const double len = static_cast<double>(pages_of(o.ranges->ranges[i])) / n[i];
      if (len < shortest) {
        shortest = len;
        at = i;
      }
    }
    --n[at];
    --total;
  }
  return n;
}

// What merging `splits` slots of one output costs its last item.
double merge_cost(int splits, double slot_cost, const PlanCostModel& m) {
  if (splits <= 1) return 0;
  if (splits <= m.merge_fan_in) return m.merge_latency + splits * slot_cost;
  const int groups = (splits + m.merge_fan_in - 1) / m.merge_fan_in;
  return 2 * m.merge_latency + (m.merge_fan_in + groups) * slot_cost;
}

struct Piece {
  double cost;  // pages × page cost + overhead, plus the merge on the output's last piece
  int launch;
};

// Longest-first within each launch, launches in `order`, each piece to the slot that frees
// first: the hardware's in-order dispatch of the launches' CTAs.
double list_schedule(std::vector<std::vector<Piece>>& by_launch, const std::vector<int>& order, int slots) {
  std::priority_queue<double, std::vector<double>, std::greater<>> free_at;
  for (int i = 0; i < slots; ++i) free_at.push(0);
  double makespan = 0;
  for (int l : order) {
    for (const Piece& p : by_launch[static_cast<size_t>(l)]) {
      const double done = free_at.top() + p.cost;
      free_at.pop();
      free_at.push(done);
      makespan = std::max(makespan, done);
    }
  }
  return makespan;
}

}  // namespace

PlannedStep plan_work_items(const std::vector<SliceWork>& slices, const PlanCostModel& m, bool balance) {
  require(m.cta_slots > 0, "cta_slots must be positive");
  require(m.min_item_pages >= 1, "min_item_pages must be positive");
  require(m.merge_fan_in >= 2, "merge_fan_in must be at least 2");
  int num_launches = 0;
  for (const SliceWork& s : slices) {
    require(s.launch >= 0, "a slice's launch must not be negative");
    num_launches = std::max(num_launches, s.launch + 1);
  }
  require(static_cast<int>(m.page_cost.size()) >= num_launches && static_cast<int>(m.merge_slot_cost.size()) >= num_launches,
          "a page cost and a merge cost for every launch");
  std::vector<Output> outputs;
  double total = 0;
  for (int sl = 0; sl < static_cast<int>(slices.size()); ++sl) {
    const SliceWork& s = slices[static_cast<size_t>(sl)];
    for (int b = 0; b < static_cast<int>(s.seqs.size()); ++b) {
      for (int h = 0; h < s.num_heads; ++h) {
        for (int rc = 0; rc < s.num_row_chunks; ++rc) {
          outputs.push_back({s.launch, sl, b, h, rc, &s.seqs[static_cast<size_t>(b)]});
          for (const TokenRange& r : s.seqs[static_cast<size_t>(b)].ranges) {
            total += pages_of(r) * m.page_cost[static_cast<size_t>(s.launch)];
          }
        }
      }
    }
  }
  PlannedStep step;
  step.even_share = total / m.cta_slots;
  // Launch orders to try: every permutation up to 4 launches, else the given order.
  std::vector<std::vector<int>> orders;
  std::vector<int> order(static_cast<size_t>(num_launches));
  std::iota(order.begin(), order.end(), 0);
  if (num_launches <= 4) {
    do orders.push_back(order);
    while (std::next_permutation(order.begin(), order.end()));
  } else {
    orders.push_back(order);
  }
  const auto pieces_for = [&](double target) {
    std::vector<std::vector<Piece>> by_launch(static_cast<size_t>(num_launches));
    for (const Output& o : outputs) {
      const double page_cost = m.page_cost[static_cast<size_t>(o.launch)];
      const std::vector<int> n = cut_output(o, page_cost, target, m, balance);
      const int splits = std::max(1, std::accumulate(n.begin(), n.end(), 0));
      std::vector<Piece>& list = by_launch[static_cast<size_t>(o.launch)];
      const size_t first = list.size();
      for (size_t i = 0; i < n.size(); ++i) {
        const int pages = pages_of(o.ranges->ranges[i]);
        for (int j = 0; j < n[i]; ++j) {
          const int len = static_cast<int>(int64_t{pages} * (j + 1) / n[i] - int64_t{pages} * j / n[i]);
          list.push_back({len * page_cost + m.item_overhead, o.launch});
        }
      }
      if (list.size() == first) list.push_back({m.item_overhead, o.launch});  // writes zeros
      // The merge falls to the output's last piece to finish: with near-equal pieces
      // dispatched together, the shortest (dispatched last).
      auto last = std::min_element(list.begin() + static_cast<int64_t>(first), list.end(),
                                   [](const Piece& x, const Piece& y) { return x.cost < y.cost; });
      last->cost += merge_cost(splits, m.merge_slot_cost[static_cast<size_t>(o.launch)], m);
    }
    for (auto& list : by_launch) {
      std::stable_sort(list.begin(), list.end(), [](const Piece& x, const Piece& y) { return x.cost > y.cost; });
    }
    return by_launch;
  };
  step.target_cost = std::numeric_limits<double>::max();
  step.makespan = -1;
  const std::vector<double> fractions = balance ? std::vector<double>{1.0, 0.8, 0.65, 0.5, 0.4, 0.3, 0.22, 0.15, 0.1}
                                                : std::vector<double>{1.0};
  for (const double fraction : fractions) {
    const double target = balance ? std::max(step.even_share * fraction, 1.0) : std::numeric_limits<double>::max();
    std::vector<std::vector<Piece>> by_launch = pieces_for(target);
    for (const std::vector<int>& o : orders) {
      const double makespan = list_schedule(by_launch, o, m.cta_slots);
      if (step.makespan < 0 || makespan < step.makespan * (1 - 1e-9)) {
        step.makespan = makespan;
        step.target_cost = target;
        step.order = o;
      }
    }
  }

  // The chosen cut, as items.
  step.launches.resize(static_cast<size_t>(num_launches));
  std::vector<PlannedItem> pieces;
  for (const Output& o : outputs) {
    PlannedWork& work = step.launches[static_cast<size_t>(o.launch)];
    const double page_cost = m.page_cost[static_cast<size_t>(o.launch)];
    const std::vector<int> n = cut_output(o, page_cost, step.target_cost, m, balance);
    pieces.clear();
    for (size_t i = 0; i < n.size(); ++i) {
      const TokenRange& r = o.ranges->ranges[i];
      const int pages = pages_of(r);
      const int first = r.lo / kDecodePageSize;
      for (int j = 0; j < n[i]; ++j) {
        PlannedItem item;
        item.page_begin = first + static_cast<int>(int64_t{pages} * j / n[i]);
        item.num_pages = first + static_cast<int>(int64_t{pages} * (j + 1) / n[i]) - item.page_begin;
        item.range = r;
        pieces.push_back(item);
      }
    }
    if (pieces.empty()) pieces.push_back(PlannedItem{});  // nothing to read: writes zeros
    const int splits = static_cast<int>(pieces.size());
    work.max_splits = std::max(work.max_splits, splits);
    // Slots: one per split, then (two levels) one per group of merge_fan_in splits; counters:
    // the output's, then (two levels) one per group.
    const int groups = splits > m.merge_fan_in ? (splits + m.merge_fan_in - 1) / m.merge_fan_in : 0;
    const int slot = splits > 1 ? work.num_slots : 0;
    const int counter = splits > 1 ? work.num_counters : 0;
    if (splits > 1) {
      work.num_slots += splits + groups;
      work.num_counters += 1 + groups;
    }
    for (int i = 0; i < splits; ++i) {
      PlannedItem item = pieces[static_cast<size_t>(i)];
      item.slice = o.slice;
      item.seq = o.seq;
      item.head = o.head;
      item.row_chunk = o.row_chunk;
      item.table_len = o.ranges->table_len;
      item.split = i;
      item.num_splits = splits;
      item.slot = slot;
      item.counter = counter;
      item.cost = item.num_pages * page_cost + m.item_overhead;
      work.target_pages = std::max(work.target_pages, item.num_pages);
      work.items.push_back(item);
    }
  }
  // Most costly first: CTAs are dispatched in index order to whichever slot frees up first.
  for (PlannedWork& work : step.launches) {
    std::stable_sort(work.items.begin(), work.items.end(),
                     [](const PlannedItem& x, const PlannedItem& y) { return x.num_pages > y.num_pages; });
  }
  return step;
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
  int ctas_per_sm = 1;
  int64_t page_bytes_per_head = 0;  // K and V of one head's page
  PlannedWork planned;
  DeviceBytes items, slices, kv_heads, workspace;
  PlanDecodeParams params{};
};

// Streams and events that fork the classes' launches off the caller's stream and join them
// back (concurrent_classes).
struct ForkJoin {
  std::vector<cudaStream_t> streams;  // one per launch but the first
  std::vector<cudaEvent_t> joined;    // recorded on each of them
  cudaEvent_t forked = nullptr;
  ForkJoin() = default;
  ForkJoin(const ForkJoin&) = delete;
  ForkJoin& operator=(const ForkJoin&) = delete;
  ~ForkJoin() {
    for (cudaStream_t s : streams) cudaStreamDestroy(s);
    for (cudaEvent_t e : joined) cudaEventDestroy(e);
    if (forked != nullptr) cudaEventDestroy(forked);
  }
};

// A page-sparse group's selection: its kernel's parameters and buffers.
struct SparseGroup {
  int group = 0;
  const PagePattern* pattern = nullptr;
  int head_dim = 0;
  int batch = 0;
  std::vector<int> counts;  // pages selected, per sequence
  DeviceBytes selected, codes, counters, kv_heads, seq_lens, num_selected;
  PageSelectParams params{};
};

struct PlanDecodeWork::Impl {
  std::vector<LaunchClass> launches;
  std::vector<std::unique_ptr<SparseGroup>> sparse;
  PlannedStep step;  // its launches' items moved into `launches`
  std::vector<int> order;
  std::unique_ptr<ForkJoin> fork;  // null: the launches run one after another
};

PlanDecodeWork::PlanDecodeWork() : impl_(std::make_unique<Impl>()) {}
PlanDecodeWork::~PlanDecodeWork() = default;
PlanDecodeWork::PlanDecodeWork(PlanDecodeWork&&) noexcept = default;
PlanDecodeWork& PlanDecodeWork::operator=(PlanDecodeWork&&) noexcept = default;
int PlanDecodeWork::num_launches() const { return static_cast<int>(impl_->launches.size()); }
const PlannedWork& PlanDecodeWork::planned(int launch) const { return impl_->launches.at(static_cast<size_t>(launch)).planned; }
const PlannedStep& PlanDecodeWork::step() const { return impl_->step; }

SparseSelection PlanDecodeWork::selection(int group) const {
  for (const auto& sg : impl_->sparse) {
    if (sg->group != group) continue;
    SparseSelection out;
    out.num_heads = sg->params.num_heads;
    out.width = sg->params.width;
    out.counts = sg->counts;
    out.pages.resize(static_cast<size_t>(sg->batch) * out.num_heads * out.width);
    KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
    KVLAB_CUDA_CHECK(cudaMemcpy(out.pages.data(), sg->selected.as<void>(), out.pages.size() * sizeof(int32_t),
                                cudaMemcpyDeviceToHost));
    return out;
  }
  require(false, format("group {} is not a page-sparse group of this work", group));
  return {};
}

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
  require(a.merge_fan_in >= 2 && a.merge_fan_in <= 32, "merge_fan_in must be in [2, 32]");
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
  std::vector<HostSlice> slices;
  std::vector<std::unique_ptr<SparseGroup>> sparse;
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
    if (const auto* access = std::get_if<core::PageSparseAccess>(&hg.access)) {
      // The decode reads each head's compacted table of selected pages: `n` selected of N
      // pages, the last (a recent page, the query's) partial, so the table holds
      // (n − 1)·16 + the last page's tokens, the query last.
      require(a.num_queries == 1, format("group '{}': page-sparse decode takes one query a step (each query would "
                                         "select its own pages)", hg.name));
      require(g.summaries != nullptr, format("group '{}': page-sparse decode needs the pool's key summaries", hg.name));
      require(layer.num_q_heads / layer.num_cache_heads <= kSelectMaxGroup,
              format("group '{}': page selection takes at most {} query heads per KV head", hg.name, kSelectMaxGroup));
      auto sg = std::make_unique<SparseGroup>();
      sg->group = g.group;
      sg->pattern = g.pattern.empty() ? &page_pattern_of(*access) : find_page_pattern(g.pattern);
      require(sg->pattern != nullptr, format("group '{}': no page pattern '{}' (gpu/launch/page_patterns.h)", hg.name, g.pattern));
      sg->head_dim = layer.vector_width;
      sg->batch = batch;
      int width = 1;
      std::vector<int32_t> lens, counts;
      for (int b = 0; b < batch; ++b) {
        const int n = a.seq_lens[static_cast<size_t>(b)];
        const int pages = (n + kDecodePageSize - 1) / kDecodePageSize;
        const int chosen = static_cast<int>(core::sparse_pages_read(*access, pages));
        const int table_len = (chosen - 1) * kDecodePageSize + (n - (pages - 1) * kDecodePageSize);
        s.work.seqs[static_cast<size_t>(b)] = TableRanges{table_len, {TokenRange{0, table_len, 0}}};
        width = std::max(width, chosen);
        lens.push_back(n);
        counts.push_back(chosen);
        sg->counts.push_back(chosen);
      }
      const int heads = s.work.num_heads;
      sg->selected = DeviceBytes(static_cast<size_t>(batch) * heads * width * sizeof(int32_t));
      sg->codes = DeviceBytes(static_cast<size_t>(batch) * heads * g.max_pages * sizeof(uint32_t));
      sg->counters = DeviceBytes(static_cast<size_t>(batch) * heads * sizeof(unsigned int));
      KVLAB_CUDA_CHECK(cudaMemset(sg->counters.as<void>(), 0, static_cast<size_t>(batch) * heads * sizeof(unsigned int)));
      sg->kv_heads = upload(s.kv_heads);
      sg->seq_lens = upload(lens);
      sg->num_selected = upload(counts);
      PageSelectParams& sp = sg->params;
      sp.summaries = g.summaries;
      sp.summary_page_bytes = page_summary_bytes(shape.layout);
      sp.page_table = g.page_table;
      sp.num_tables = shape.num_tables;
      sp.heads_per_table = shape.heads_per_table;
      sp.heads_per_page = shape.layout.heads_per_page;
      sp.max_pages = g.max_pages;
      sp.kv_head_of = sg->kv_heads.as<int32_t>();
      sp.q = a.q;
      sp.num_q_heads = layer.num_q_heads;
      sp.group = layer.num_q_heads / layer.num_cache_heads;
      sp.num_heads = heads;
      sp.seq_lens = sg->seq_lens.as<int32_t>();
      sp.num_selected = sg->num_selected.as<int32_t>();
      sp.sink_pages = static_cast<int>(access->sink_pages);
      sp.recent_pages = static_cast<int>(access->recent_pages);
      sp.codes = sg->codes.as<uint32_t>();
      sp.counters = sg->counters.as<unsigned int>();
      sp.selected = sg->selected.as<int32_t>();
      sp.width = width;
      // The decode: one compacted table per head, into the same pool pages.
      d.page_table = sg->selected.as<int32_t>();
      d.num_tables = heads;
      d.heads_per_table = 1;
      d.max_pages = width;
      sparse.push_back(std::move(sg));
    }
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
      lc.page_bytes_per_head = 2 * shape.layout.component_bytes;
      launches.push_back(std::move(lc));
    }
    s.work.launch = static_cast<int>(c);
    slices.push_back(std::move(s));
  }

  // Plan every class's work together: one list schedule over the CTA slots.
  int device = 0, num_sms = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  PlanCostModel model;
  model.min_item_pages = a.min_item_pages;
  model.item_overhead = a.item_overhead_bytes;
  model.merge_fan_in = a.merge_fan_in;
  int ctas_per_sm = std::numeric_limits<int>::max();
  const int live_rows = std::min(kDecodeRows, group * a.num_queries);
  for (LaunchClass& lc : launches) {
    // The merge's shared memory (at most merge_fan_in slots a merge) is within the stages'.
    lc.smem = std::max(lc.smem, fused_merge_smem_bytes(a.merge_fan_in));
    dispatch_code(lc.precision, [&]<KvCode C, bool kAsym>() { lc.ctas_per_sm = plan_ctas_per_sm_typed<C, kAsym>(lc.shape, lc.smem); });
    require(lc.ctas_per_sm >= 1, "the work-list kernel does not fit on an SM");
    ctas_per_sm = std::min(ctas_per_sm, lc.ctas_per_sm);
    model.page_cost.push_back(static_cast<double>(lc.page_bytes_per_head) * format_time_factor(lc.precision));
    model.merge_slot_cost.push_back(static_cast<double>(live_rows) * lc.shape.head_dim * sizeof(float));
  }
  model.cta_slots = ctas_per_sm * num_sms;
  std::vector<SliceWork> slice_work;
  for (const HostSlice& s : slices) slice_work.push_back(s.work);
  PlannedStep step = plan_work_items(slice_work, model, a.balance);

  PlanDecodeWork work;
  for (size_t c = 0; c < launches.size(); ++c) {
    LaunchClass& lc = launches[c];
    lc.planned = std::move(step.launches[c]);
    std::vector<int32_t> kv_heads;
    std::vector<DecodeSlice> device_slices;
    std::vector<size_t> kv_head_offset;
    std::vector<int> slice_index(slices.size(), -1);  // global slice → this launch's
    for (size_t i = 0; i < slices.size(); ++i) {
      if (slices[i].work.launch != static_cast<int>(c)) continue;
      slice_index[i] = static_cast<int>(device_slices.size());
      kv_head_offset.push_back(kv_heads.size());
      kv_heads.insert(kv_heads.end(), slices[i].kv_heads.begin(), slices[i].kv_heads.end());
      device_slices.push_back(slices[i].device);
    }
    lc.kv_heads = upload(kv_heads);
    for (size_t i = 0; i < device_slices.size(); ++i) device_slices[i].kv_head_of = lc.kv_heads.as<int32_t>() + kv_head_offset[i];
    std::vector<DecodeWorkItem> items;
    for (PlannedItem& p : lc.planned.items) {
      p.slice = slice_index[static_cast<size_t>(p.slice)];
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
    p.merge_fan_in = a.merge_fan_in;
    work.impl_->launches.push_back(std::move(lc));
  }
  step.launches.clear();
  work.impl_->sparse = std::move(sparse);
  work.impl_->order = step.order;
  work.impl_->step = std::move(step);
  if (a.concurrent_classes && work.impl_->launches.size() > 1) {
    auto fork = std::make_unique<ForkJoin>();
    KVLAB_CUDA_CHECK(cudaEventCreateWithFlags(&fork->forked, cudaEventDisableTiming));
    for (size_t i = 1; i < work.impl_->launches.size(); ++i) {
      cudaStream_t s = nullptr;
      KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      fork->streams.push_back(s);
      cudaEvent_t e = nullptr;
      KVLAB_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      fork->joined.push_back(e);
    }
    work.impl_->fork = std::move(fork);
  }
  return work;
}

void launch_plan_decode(const PlanDecodeWork& work, cudaStream_t stream, PlanPhases phases) {
  const PlanDecodeWork::Impl& w = *work.impl_;
  // Page selection first, on the caller's stream: the decode reads the tables it writes.
  if (phases != PlanPhases::kDecodeOnly) {
    for (const auto& sg : w.sparse) launch_page_select(*sg->pattern, sg->head_dim, sg->params, sg->batch, stream);
  }
  if (phases == PlanPhases::kSelectOnly) return;
  const auto launch = [&](const LaunchClass& lc, cudaStream_t s) {
    const int num_items = static_cast<int>(lc.planned.items.size());
    dispatch_code(lc.precision, [&]<KvCode C, bool kAsym>() { launch_plan_typed<C, kAsym>(lc.params, num_items, lc.shape, lc.smem, s); });
  };
  if (w.fork == nullptr) {
    for (int l : w.order) launch(w.launches[static_cast<size_t>(l)], stream);
    return;
  }
  // The first launch in the planned order on the caller's stream, the others on side
  // streams that wait for the caller's earlier work; the caller's stream then waits for
  // them. Issued in the planned order: the hardware dispatches their CTAs in that order.
  const ForkJoin& f = *w.fork;
  KVLAB_CUDA_CHECK(cudaEventRecord(f.forked, stream));
  for (size_t i = 0; i < w.order.size(); ++i) {
    const LaunchClass& lc = w.launches[static_cast<size_t>(w.order[i])];
    if (i == 0) {
      launch(lc, stream);
      continue;
    }
    KVLAB_CUDA_CHECK(cudaStreamWaitEvent(f.streams[i - 1], f.forked, 0));
    launch(lc, f.streams[i - 1]);
    KVLAB_CUDA_CHECK(cudaEventRecord(f.joined[i - 1], f.streams[i - 1]));
  }
  for (cudaEvent_t e : f.joined) KVLAB_CUDA_CHECK(cudaStreamWaitEvent(stream, e, 0));
}

}  // namespace kvlab::gpu
