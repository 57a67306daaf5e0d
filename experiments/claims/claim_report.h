// SPDX-License-Identifier: Apache-2.0
// The ledger's table: claims.md (one row per claim, linking its run folder) and claims.json
// (the same rows with every explored reading), both rendered from outcomes, never edited.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/claims/claim_runner.h"
#include "experiments/claims/claim_spec.h"

namespace kvlab::experiments {

struct LedgerRow {
  Claim claim;
  ClaimOutcome outcome;
};

// `link_base`: the run folders' path as seen from where claims.md will be read.
std::string render_claims_markdown(const std::vector<LedgerRow>& rows, const std::string& command,
                                   const std::string& link_base);
nlohmann::ordered_json render_claims_json(const std::vector<LedgerRow>& rows, const std::string& command,
                                          const std::string& link_base);
// The terminal table: id, claimed, kvlab, verdict.
std::string render_claims_terminal(const std::vector<LedgerRow>& rows);

}  // namespace kvlab::experiments
