// SPDX-License-Identifier: Apache-2.0
// TokenCurve: a piecewise-linear function of a sequence's token count n — how many tokens a
// retention policy keeps, or a decode step attends to, as the sequence grows. The simulator
// keeps, per curve and segment, a count of sequences and the sum of their token counts, so
// Σ value over every sequence in a segment is count·(base − slope·from) + slope·Σn: an O(1)
// update per iteration however many sequences decode (docs/sim-performance.md).
//
// The curves are exact where a policy is (full, window, sinks+window, prefix, token budgets,
// a page-sparse cap); ratio budgets (⌈r·n⌉) and periodic retention (⌈(n − S − W)/p⌉) drop
// the ceiling, within one token per head of the exact count (retained_tokens).
#pragma once

#include <cstdint>
#include <vector>

#include "core/retention.h"

namespace kvlab::core {

// value(n) = base + slope·(n − from_tokens) for from_tokens ≤ n < the next segment's from.
struct CurveSegment {
  int64_t from_tokens = 0;
  double base = 0;
  double slope = 0;
  bool operator==(const CurveSegment&) const = default;
};

struct TokenCurve {
  std::vector<CurveSegment> segments;  // from_tokens strictly increasing, the first at 0

  // The segment holding n (n ≥ 0), and where the next one starts (INT64_MAX: none).
  int segment_of(int64_t n) const;
  int64_t next_from(int segment) const;
  double value(int64_t n) const;
  // Σ_{n = first}^{last} value(n), exactly for this curve (0 when last < first).
  double sum(int64_t first, int64_t last) const;
  // min(value, cap) for a non-decreasing curve: segments past the point where it reaches
  // cap are replaced by a flat one.
  TokenCurve capped(double cap) const { return limited(cap, 0); }
  // min(value, max(cap, ratio·value)) for a non-decreasing curve, ratio in [0, 1]: what a
  // page-sparse step reads of what is retained (at least cap, else a share of it).
  TokenCurve limited(double cap, double ratio) const;

  bool operator==(const TokenCurve&) const = default;
};

// Tokens a head with `retention` keeps of a sequence of n tokens (retained_tokens, as a curve).
TokenCurve retained_curve(const Retention& retention);

// value(n) = n: every token (full retention, or prefill attention over the whole prompt).
TokenCurve identity_curve();

}  // namespace kvlab::core
