// SPDX-License-Identifier: Apache-2.0
// `kvlab claims [--only ID …] [--all] [--out DIR] [--paper]`: runs the claims ledger
// (configs/claims/, docs/claims.md) and writes DIR/<id>/ (each claim's measurements and
// verdict), DIR/claims.md and DIR/claims.json; prints the verdict table, with a progress bar
// on a terminal. Without --all only the quick claims run (the rest are listed as not run);
// --paper (needs --all) also writes paper/claims.md and paper/claims.json.
#pragma once

#include <CLI/CLI.hpp>

namespace kvlab::experiments {

void register_claims_command(CLI::App& app);

}  // namespace kvlab::experiments
