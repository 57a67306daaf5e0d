// SPDX-License-Identifier: Apache-2.0
// A measured head profile as plan passes consume it: one entry per (layer, KV head) with
// its class and how much of the context it uses. Files live in data/head_profiles/
// (written by ref/model/head_profile.cc through `kvlab accuracy`; their format is described
// there) and are read by core/config/techniques_loader.h.
#pragma once

#include <string>
#include <vector>

#include "core/kv_plan.h"

namespace kvlab::core {

struct HeadProfileEntry {
  int layer = 0;
  int kv_head = 0;
  std::string head_class;        // sink_prefix | local | periodic | retrieval
  double context_frac_mean = 0;  // fewest tokens holding 95% of attention, over context
  double context_frac_p90 = 0;   // its 90th percentile over queries
};

struct HeadProfile {
  std::string file;   // where it was read (for TechniqueInput::source)
  std::string model;  // as the file names it
  std::vector<HeadProfileEntry> kv_heads;

  // The entry of (layer, kv_head), or nullptr.
  const HeadProfileEntry* find(int layer, int kv_head) const;
  // "" when every cache head of the plan has an entry, else the first one missing and the
  // shapes of both (a profile of another model is the usual cause).
  std::string covers(const KvPlan& plan) const;
};

}  // namespace kvlab::core
