// SPDX-License-Identifier: Apache-2.0
// The replica's conservation invariants, checked by walking every sequence (tests turn it
// on with SimConfig::check_invariants): what the aggregates say equals what the sequences
// hold, rows held + cached + free = capacity per arena, and each sequence holds exactly the
// rows its plan says for its tokens.
#include <cmath>
#include <unordered_set>

#include "core/check.h"
#include "sim/replica.h"

namespace kvlab::sim {

void Replica::check_invariants(const BatchShape& batch) const {
  const int cadences = kv_.num_cadences();
  std::vector<int64_t> rows(static_cast<size_t>(cadences), 0);
  std::vector<double> attended(static_cast<size_t>(aggregates_.num_curves()), 0.0);
  int64_t decoders = 0, offsets = 0;
  std::vector<int64_t> table_rows(static_cast<size_t>(cadences), 0);
  // With prefix caching: the distinct rows the sequences' tables name, per cadence.
  std::vector<std::unordered_set<int32_t>> named(kv_.prefix_caching() ? static_cast<size_t>(cadences) : 0);
  for (size_t slot = 0; slot < slots_.size(); ++slot) {
    const Seq& s = slots_[slot];
    if (s.spec == nullptr || s.kv.rows.empty()) continue;
    const bool running = s.state != State::kWaiting;
    int64_t tokens = 0;  // what its rows must hold
    switch (s.state) {
      case State::kDecoding:
        ++decoders;
        offsets += s.computed - s.join_step;
        tokens = decode_iteration_ ? tokens_after_step(s) : decode_tokens(s);
        for (int i = 0; i < aggregates_.num_curves(); ++i) {
          attended[static_cast<size_t>(i)] += curves_[static_cast<size_t>(i)].value(tokens_after_step(s));
        }
        break;
      case State::kPrefilling: tokens = s.computed + s.chunk; break;
      case State::kSwappingIn: tokens = s.computed; break;
      case State::kWaiting: break;
    }
    for (int k = 0; k < cadences; ++k) {
      const int64_t held = s.kv.rows[static_cast<size_t>(k)];
      rows[static_cast<size_t>(k)] += held;
      if (!running) {
        KVLAB_CHECK(held == 0, "waiting slot {} holds {} rows of cadence {}", slot, held, k);
      } else {
        const int64_t expected = s.state == State::kPrefilling ? chunk_rows(s, k) : rows_for(s, k, tokens);
        KVLAB_CHECK(held == expected, "slot {} holds {} rows of cadence {} at {} tokens, the plan says {}", slot, held, k,
                    tokens, expected);
      }
      table_rows[static_cast<size_t>(k)] += held;
      if (!kv_.prefix_caching()) continue;
      int64_t listed = 0;
      for (const int32_t r : s.kv.tables[static_cast<size_t>(k)].pages) {
        if (r == PageTable::kNoRow) continue;
        ++listed;
        named[static_cast<size_t>(k)].insert(r);
      }
      KVLAB_CHECK(listed == held, "slot {} cadence {}: its table names {} rows, it holds {}", slot, k, listed, held);
    }
  }
  KVLAB_CHECK(decoders == decoders_ && decoders == aggregates_.count(), "decoders: walked {}, counted {} and {}", decoders,
              decoders_, aggregates_.count());
  KVLAB_CHECK(offsets == decode_offset_sum_ && offsets == aggregates_.offset_sum(), "decode offsets: walked {}, kept {}",
              offsets, decode_offset_sum_);
  for (int k = 0; k < cadences; ++k) {
    KVLAB_CHECK(table_rows[static_cast<size_t>(k)] == table_rows_sum_[static_cast<size_t>(k)], "cadence {} rows: walked {}, kept {}",
                k, table_rows[static_cast<size_t>(k)], table_rows_sum_[static_cast<size_t>(k)]);
    if (kv_.prefix_caching()) {
      KVLAB_CHECK(static_cast<int64_t>(named[static_cast<size_t>(k)].size()) == kv_.rows_held(k),
                  "cadence {}: sequences name {} distinct rows, the pool holds {}", k, named[static_cast<size_t>(k)].size(),
                  kv_.rows_held(k));
    }
  }
  kv_.check_conservation();  // with prefix caching: every row identity against the counts and the arenas
  int64_t hbm = 0, host = 0;
  for (int k = 0; k < cadences; ++k) {
    if (!kv_.prefix_caching()) {
      KVLAB_CHECK(rows[static_cast<size_t>(k)] == kv_.rows_held(k), "cadence {}: sequences hold {} rows, the pool counts {}", k,
                  rows[static_cast<size_t>(k)], kv_.rows_held(k));
    }
    hbm += kv_.demand(k, kv_.rows_held(k)).hbm;
    host += kv_.demand(k, kv_.rows_held(k)).host;
  }
  KVLAB_CHECK(hbm == kv_.hbm_held() && host == kv_.host_held(), "arena bytes: {} / {} vs rows {} / {}", kv_.hbm_held(),
              kv_.host_held(), hbm, host);
  KVLAB_CHECK(kv_.hbm_held() + kv_.hbm_cached() + kv_.hbm_free() == kv_.hbm_capacity() && kv_.hbm_free() >= 0,
              "HBM: held {} + cached {} + free {} ≠ {}", kv_.hbm_held(), kv_.hbm_cached(), kv_.hbm_free(), kv_.hbm_capacity());
  KVLAB_CHECK(kv_.host_held() <= kv_.host_capacity(), "host: held {} of {}", kv_.host_held(), kv_.host_capacity());
  if (batch.decode_tokens > 0) {
    for (size_t i = 0; i < attended.size(); ++i) {
      KVLAB_CHECK(std::abs(batch.decode_attended[i] - attended[i]) <= 1e-9 * std::max(1.0, attended[i]),
                  "curve {}: aggregates {} vs walk {}", i, batch.decode_attended[i], attended[i]);
    }
  }
}

}  // namespace kvlab::sim
