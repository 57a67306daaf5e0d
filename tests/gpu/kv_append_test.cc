// SPDX-License-Identifier: Apache-2.0
// KV append on the GPU writes the same bytes ref/ writes for the same tokens, in every
// element format (and leaves every other byte of the pool alone).
#include <random>

#include <gtest/gtest.h>

#include "gpu/launch/paged_decode.h"
#include "ref/paged_kv.h"
#include "tests/gpu/device.h"

namespace kvlab::gpu {
namespace {

using core::KvDtype;
using core::MetaFormat;
using core::Precision;
using testing::DeviceBuffer;

class KvAppend : public ::testing::TestWithParam<Precision> {};

TEST_P(KvAppend, WritesTheReferenceBytes) {
  KVLAB_REQUIRE_GPU();
  const Precision precision = GetParam();
  const int heads = 4, head_dim = 128, tokens = 45, pages = 6;
  const core::PageLayout layout = core::make_page_layout(precision, head_dim, 16, heads, 2);
  std::vector<uint8_t> pool(pages * layout.page_bytes, 0x5A);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> k(tokens * heads * head_dim), v(k.size());
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng) + 1.5f;  // off-centre, for the asymmetric formats
  std::vector<int32_t> slot_page(tokens), slot_offset(tokens);
  for (int t = 0; t < tokens; ++t) {
    slot_page[t] = (t * 5) % pages;  // scattered, each (page, slot) used once
    slot_offset[t] = t / pages;
  }
  DeviceBuffer<uint8_t> d_pool(pool);
  DeviceBuffer<float> d_k(k), d_v(v);
  DeviceBuffer<int32_t> d_page(slot_page), d_slot(slot_offset);
  KvAppendArgs args;
  args.layout = layout;
  args.pool = d_pool.get();
  args.num_pages = pages;
  args.k = d_k.get();
  args.v = d_v.get();
  args.slot_page = d_page.get();
  args.slot_offset = d_slot.get();
  args.num_tokens = tokens;
  launch_kv_append(args, nullptr);
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      const size_t at = (static_cast<size_t>(t) * heads + h) * head_dim;
      ref::write_token(layout, pool, slot_page[t], slot_offset[t], h, 0, std::span<const float>(k).subspan(at, head_dim));
      ref::write_token(layout, pool, slot_page[t], slot_offset[t], h, 1, std::span<const float>(v).subspan(at, head_dim));
    }
  }
  const std::vector<uint8_t> gpu_pool = d_pool.download();
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < pool.size(); ++i) {
    if (pool[i] != gpu_pool[i] && mismatches++ == 0) first = i;
  }
  std::string context;
  for (size_t i = first & ~size_t{7}; i < std::min(pool.size(), (first & ~size_t{7}) + 16); ++i) {
    context += " " + std::to_string(int(gpu_pool[i])) + "/" + std::to_string(int(pool[i]));
  }
  EXPECT_EQ(mismatches, 0u) << mismatches << " bytes differ; from byte " << (first & ~size_t{7})
                            << " (gpu/ref):" << context << "; k[0..1] = " << k[0] << ", " << k[1];
}

INSTANTIATE_TEST_SUITE_P(
    Formats, KvAppend,
    ::testing::Values(Precision::defaults(KvDtype::kBf16), Precision::defaults(KvDtype::kFp16),
                      Precision::defaults(KvDtype::kFp8E4m3),
                      Precision{KvDtype::kFp8E4m3, 32, MetaFormat::kFp16, MetaFormat::kNone},
                      Precision::defaults(KvDtype::kInt8), Precision::defaults(KvDtype::kInt6),
                      Precision::defaults(KvDtype::kInt5), Precision::defaults(KvDtype::kInt4),
                      Precision{KvDtype::kInt4, 64, MetaFormat::kFp16, MetaFormat::kFp16},
                      Precision{KvDtype::kInt5, 32, MetaFormat::kFp16, MetaFormat::kFp16},
                      Precision{KvDtype::kInt6, 8, MetaFormat::kFp16, MetaFormat::kFp16},
                      Precision{KvDtype::kInt8, 128, MetaFormat::kFp16, MetaFormat::kFp16}),
    [](const ::testing::TestParamInfo<Precision>& param_info) {
      std::string name = core::describe(param_info.param);
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

}  // namespace
}  // namespace kvlab::gpu
