// SPDX-License-Identifier: Apache-2.0
// What a technique pass returns besides the rewritten plan: the inputs it took (a stated
// share or ratio is an assumption, and every result that uses one must say so; a profiled
// value names its file) and the figures it computed (Tangram's over-allocation). Passes
// compose (core/techniques/technique_list.h) and their records accumulate in order.
#pragma once

#include <string>
#include <vector>

#include "core/kv_plan.h"

namespace kvlab::core {

struct TechniqueInput {
  std::string key;     // "tangram.compression_ratio"
  std::string value;   // as written, e.g. "0.25"
  bool stated = true;  // true: an assumption the user stated; false: measured (see source)
  std::string source;  // "stated", or the file it was measured in
};

struct TechniqueFigure {
  std::string name;  // "tangram.over_allocation_sorted"
  double value = 0;
  std::string meaning;
};

struct TechniqueResult {
  KvPlan plan;
  std::vector<TechniqueInput> inputs;
  std::vector<TechniqueFigure> figures;
  std::vector<std::string> notes;  // what the pass left alone and why
};

}  // namespace kvlab::core
