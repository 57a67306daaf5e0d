// SPDX-License-Identifier: Apache-2.0
#include "core/token_curve.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"

namespace kvlab::core {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// n up to `cap`, then flat at cap (cap ≤ 0: flat at 0 from the start).
TokenCurve linear_then_flat(int64_t cap) {
  if (cap <= 0) return TokenCurve{{{0, 0, 0}}};
  return TokenCurve{{{0, 0, 1}, {cap, static_cast<double>(cap), 0}}};
}

}  // namespace

int TokenCurve::segment_of(int64_t n) const {
  KVLAB_DCHECK(!segments.empty() && segments.front().from_tokens == 0, "a curve starts at 0");
  int s = 0;
  while (s + 1 < static_cast<int>(segments.size()) && segments[static_cast<size_t>(s) + 1].from_tokens <= n) ++s;
  return s;
}

int64_t TokenCurve::next_from(int segment) const {
  const auto next = static_cast<size_t>(segment) + 1;
  return next < segments.size() ? segments[next].from_tokens : std::numeric_limits<int64_t>::max();
}

double TokenCurve::value(int64_t n) const {
  const CurveSegment& s = segments[static_cast<size_t>(segment_of(n))];
  return s.base + s.slope * static_cast<double>(n - s.from_tokens);
}

double TokenCurve::sum(int64_t first, int64_t last) const {
  double total = 0;
  for (size_t i = 0; i < segments.size() && first <= last; ++i) {
    const CurveSegment& s = segments[i];
    const int64_t end = i + 1 < segments.size() ? std::min(last, segments[i + 1].from_tokens - 1) : last;
    if (end < first) continue;
    // Σ_{n=first}^{end} base + slope·(n − from): count·base + slope·Σ(n − from).
    const auto count = static_cast<double>(end - first + 1);
    const auto lo = static_cast<double>(first - s.from_tokens), hi = static_cast<double>(end - s.from_tokens);
    total += count * s.base + s.slope * (lo + hi) * count / 2;
    first = end + 1;
  }
  return total;
}

TokenCurve TokenCurve::limited(double cap, double ratio) const {
  // Three regimes of the value v: v below cap (kept), cap up to cap/ratio (flat at cap), and
  // past it (ratio·v). Each segment is split where its value crosses cap and cap/ratio.
  const double upper = ratio > 0 ? cap / ratio : std::numeric_limits<double>::infinity();
  TokenCurve out;
  auto push = [&](int64_t from, double base, double slope) {
    if (!out.segments.empty()) {
      const CurveSegment& last = out.segments.back();
      if (last.slope == 0 && slope == 0 && last.base == base) return;  // the flat part goes on
    }
    out.segments.push_back({from, base, slope});
  };
  for (size_t i = 0; i < segments.size(); ++i) {
    const CurveSegment& s = segments[i];
    const int64_t end = next_from(static_cast<int>(i));
    std::vector<int64_t> cuts = {s.from_tokens};
    for (const double at : {cap, upper}) {
      if (s.slope <= 0 || !std::isfinite(at)) continue;
      const auto n = s.from_tokens + static_cast<int64_t>(std::ceil((at - s.base) / s.slope));
      if (n > s.from_tokens && n < end) cuts.push_back(n);
    }
    std::sort(cuts.begin(), cuts.end());
    for (const int64_t from : cuts) {
      const double v = s.base + s.slope * static_cast<double>(from - s.from_tokens);
      if (v < cap) {
        push(from, v, s.slope);
      } else if (v < upper) {
        push(from, cap, 0);
      } else {
        push(from, ratio * v, ratio * s.slope);
      }
    }
  }
  return out;
}

TokenCurve identity_curve() { return TokenCurve{{{0, 0, 1}}}; }

TokenCurve retained_curve(const Retention& retention) {
  return std::visit(
      Overloaded{
          [](const FullRetention&) { return identity_curve(); },
          [](const WindowRetention& r) { return linear_then_flat(r.window_tokens); },
          [](const SinksWindowRetention& r) { return linear_then_flat(r.sink_tokens + r.window_tokens); },
          [](const PrefixOnlyRetention& r) { return linear_then_flat(r.prefix_tokens + r.window_tokens); },
          [](const PeriodicRetention& r) {
            const int64_t kept = r.sink_tokens + r.window_tokens;
            TokenCurve c{{{0, 0, 1}}};
            if (kept > 0) c.segments.push_back({kept, static_cast<double>(kept), 1.0 / static_cast<double>(r.period_tokens)});
            if (kept == 0) c.segments[0].slope = 1.0 / static_cast<double>(r.period_tokens);
            return c;
          },
          [](const BudgetRetention& r) {
            if (r.ratio <= 0) return linear_then_flat(std::max(r.budget_tokens, r.min_tokens));
            // min(n, max(⌈r·n⌉, m)): n up to m, flat at m until r·n passes it, then r·n.
            if (r.min_tokens <= 0) return TokenCurve{{{0, 0, r.ratio}}};
            const auto m = static_cast<double>(r.min_tokens);
            const auto past = static_cast<int64_t>(std::floor(m / r.ratio)) + 1;
            TokenCurve c{{{0, 0, 1}, {r.min_tokens, m, 0}}};
            if (past > r.min_tokens) {
              c.segments.push_back({past, r.ratio * static_cast<double>(past), r.ratio});
            } else {
              c.segments.pop_back();
            }
            return c;
          },
      },
      retention);
}

}  // namespace kvlab::core
