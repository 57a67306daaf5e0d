// SPDX-License-Identifier: Apache-2.0
// Host-side argument checks of the GPU launchers, kept apart from the launches so they run
// (and are tested, tests/gpu/launch_validation_test.cc) on a machine without a device. Each
// returns "" or what is wrong, naming the argument; the launchers throw
// std::invalid_argument with it. The kernels check nothing of this themselves (STYLE.md C7).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu {

// Everything of a decode launch that the host knows: the layout is supported, pointers are
// set, counts are positive and their products fit the kernels' index types, the page table
// covers max_seq_len, sm_scale is positive and finite, num_splits is in range.
std::string paged_decode_args_problem(const PagedDecodeArgs& args);
std::string kv_append_args_problem(const KvAppendArgs& args);

// A page table ([batch, max_pages_per_seq], row-major) and sequence lengths ([batch]) as
// the host built them, before upload: every length in [0, max_seq_len], every page a
// sequence's tokens use in [0, num_pages). The kernels follow the table without bounds
// checks, so a caller that builds tables from untrusted input checks them here first.
std::string page_table_problem(std::span<const int32_t> page_table, std::span<const int32_t> seq_lens,
                               int max_pages_per_seq, int block_size, int max_seq_len, int64_t num_pages);

}  // namespace kvlab::gpu
