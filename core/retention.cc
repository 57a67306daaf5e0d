// SPDX-License-Identifier: Apache-2.0
#include "core/retention.h"

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

namespace kvlab::core {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

int64_t retained_tokens(const Retention& retention, int64_t n) {
  return std::visit(
      Overloaded{
          [&](const FullRetention&) { return n; },
          [&](const WindowRetention& r) { return std::min(n, r.window_tokens); },
          [&](const SinksWindowRetention& r) {
            return std::min(n, r.sink_tokens + r.window_tokens);
          },
          [&](const PrefixOnlyRetention& r) {
            return std::min(n, r.prefix_tokens + r.window_tokens);
          },
          [&](const PeriodicRetention& r) {
            const int64_t kept = r.sink_tokens + r.window_tokens;
            if (n <= kept) return n;
            // Tokens between the sinks and the window: one in every period.
            const int64_t middle = n - kept;
            return kept + (middle + r.period_tokens - 1) / r.period_tokens;
          },
          [&](const BudgetRetention& r) {
            int64_t budget = r.ratio > 0
                                 ? static_cast<int64_t>(std::ceil(r.ratio * static_cast<double>(n)))
                                 : r.budget_tokens;
            return std::min(n, std::max(budget, r.min_tokens));
          },
      },
      retention);
}

std::string retention_name(const Retention& retention) {
  return std::visit(Overloaded{
                        [](const FullRetention&) { return std::string("full"); },
                        [](const WindowRetention&) { return std::string("window"); },
                        [](const SinksWindowRetention&) { return std::string("sinks_window"); },
                        [](const PrefixOnlyRetention&) { return std::string("prefix_only"); },
                        [](const PeriodicRetention&) { return std::string("periodic"); },
                        [](const BudgetRetention&) { return std::string("budget"); },
                    },
                    retention);
}

std::string describe(const Retention& retention) {
  return std::visit(
      Overloaded{
          [](const FullRetention&) { return std::string("full"); },
          [](const WindowRetention& r) { return fmt::format("window({})", r.window_tokens); },
          [](const SinksWindowRetention& r) {
            return fmt::format("sinks({})+window({})", r.sink_tokens, r.window_tokens);
          },
          [](const PrefixOnlyRetention& r) {
            return fmt::format("prefix({})+window({})", r.prefix_tokens, r.window_tokens);
          },
          [](const PeriodicRetention& r) {
            return fmt::format("sinks({})+every({})+window({})", r.sink_tokens, r.period_tokens,
                               r.window_tokens);
          },
          [](const BudgetRetention& r) {
            std::string rule = r.rule == SelectionRule::kSnapKv ? "snapkv" : "h2o";
            return r.ratio > 0 ? fmt::format("budget({:.3g} of tokens, {})", r.ratio, rule)
                               : fmt::format("budget({} tokens, {})", r.budget_tokens, rule);
          },
      },
      retention);
}

std::string validate(const Retention& retention) {
  return std::visit(
      Overloaded{
          [](const FullRetention&) { return std::string(); },
          [](const WindowRetention& r) {
            return r.window_tokens > 0 ? std::string() : "window_tokens must be positive";
          },
          [](const SinksWindowRetention& r) {
            return r.sink_tokens >= 0 && r.window_tokens > 0
                       ? std::string()
                       : "sink_tokens must be >= 0 and window_tokens positive";
          },
          [](const PrefixOnlyRetention& r) {
            return r.prefix_tokens > 0 && r.window_tokens >= 0
                       ? std::string()
                       : "prefix_tokens must be positive and window_tokens >= 0";
          },
          [](const PeriodicRetention& r) {
            return r.period_tokens > 0 && r.sink_tokens >= 0 && r.window_tokens >= 0
                       ? std::string()
                       : "period_tokens must be positive, sink_tokens and window_tokens >= 0";
          },
          [](const BudgetRetention& r) {
            if (r.ratio < 0 || r.ratio > 1) return fmt::format("ratio must be in (0, 1] (got {})", r.ratio);
            if (r.ratio == 0 && r.budget_tokens <= 0) {
              return std::string("a budget needs ratio in (0, 1] or budget_tokens > 0");
            }
            if (r.ratio > 0 && r.budget_tokens > 0) {
              return std::string("a budget takes ratio or budget_tokens, not both");
            }
            if (r.min_tokens < 0 || r.observation_window < 0) {
              return std::string("min_tokens and observation_window must be >= 0");
            }
            return std::string();
          },
      },
      retention);
}

}  // namespace kvlab::core
