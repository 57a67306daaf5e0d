// SPDX-License-Identifier: Apache-2.0
// Retention policies: which of a sequence's tokens a head keeps. A closed set (a variant),
// so every layer that handles retention must handle every policy (STYLE.md C3).
//   full            every token
//   window          the last W tokens (sliding window)
//   sinks_window    the first S tokens and the last W (StreamingLLM)
//   prefix_only     the first P tokens (a static system prompt) and the last W
//   periodic        the first S tokens, one token in every `period` of the rest, the last W
//   budget          a fixed share or count of tokens picked by a selection rule (SnapKV, H2O),
//                   never fewer than min_tokens and never more than the sequence
#pragma once

#include <cstdint>
#include <string>
#include <variant>

namespace kvlab::core {

struct FullRetention {
  bool operator==(const FullRetention&) const = default;
};
struct WindowRetention {
  int64_t window_tokens = 0;
  bool operator==(const WindowRetention&) const = default;
};
struct SinksWindowRetention {
  int64_t sink_tokens = 4;
  int64_t window_tokens = 0;
  bool operator==(const SinksWindowRetention&) const = default;
};
struct PrefixOnlyRetention {
  int64_t prefix_tokens = 0;
  int64_t window_tokens = 0;
  bool operator==(const PrefixOnlyRetention&) const = default;
};
struct PeriodicRetention {
  int64_t sink_tokens = 0;
  int64_t period_tokens = 0;
  int64_t window_tokens = 0;
  bool operator==(const PeriodicRetention&) const = default;
};

enum class SelectionRule {
  kSnapKv,  // scores from the last observation_window queries, pooled, top-k per head
  kH2o,     // accumulated attention score over all queries so far, top-k per head
};

struct BudgetRetention {
  double ratio = 0;         // share of the sequence kept, in (0, 1]; 0 = use budget_tokens
  int64_t budget_tokens = 0;
  int64_t min_tokens = 0;   // floor, e.g. sinks + observation window
  SelectionRule rule = SelectionRule::kSnapKv;
  int64_t observation_window = 32;
  bool operator==(const BudgetRetention&) const = default;
};

using Retention = std::variant<FullRetention, WindowRetention, SinksWindowRetention,
                               PrefixOnlyRetention, PeriodicRetention, BudgetRetention>;

// Tokens a head with this policy keeps of a sequence of `seq_tokens` tokens.
int64_t retained_tokens(const Retention& retention, int64_t seq_tokens);

// Short name ("full", "window", …) and a one-line description with its parameters.
std::string retention_name(const Retention& retention);
std::string describe(const Retention& retention);

// "" or why the parameters are invalid (negative window, ratio outside (0, 1], …).
std::string validate(const Retention& retention);

}  // namespace kvlab::core
