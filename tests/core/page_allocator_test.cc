// SPDX-License-Identifier: Apache-2.0
#include "core/page_allocator.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

namespace kvlab::core {
namespace {

TEST(PageAllocator, AllOrNothing) {
  PageAllocator pool(10);
  auto a = pool.allocate(7);
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)[0], 0);
  EXPECT_FALSE(pool.allocate(4));
  EXPECT_EQ(pool.num_free(), 3);
  pool.release(*a);
  EXPECT_EQ(pool.num_free(), 10);
}

TEST(PageAllocator, ShuffledPlacementIsSeededAndComplete) {
  PageAllocator a(1000, 7), b(1000, 7), c(1000, 8);
  auto pa = *a.allocate(1000), pb = *b.allocate(1000), pc = *c.allocate(1000);
  EXPECT_EQ(pa, pb);
  EXPECT_NE(pa, pc);
  EXPECT_FALSE(std::is_sorted(pa.begin(), pa.end()));
  EXPECT_EQ(std::set<int32_t>(pa.begin(), pa.end()).size(), 1000u);
}

TEST(PageAllocatorDeathTest, DoubleReleaseIsABug) {
  PageAllocator pool(4);
  auto a = *pool.allocate(1);
  pool.release(a);
  EXPECT_DEATH(pool.release(a), "released twice");
}

}  // namespace
}  // namespace kvlab::core
