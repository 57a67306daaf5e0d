// SPDX-License-Identifier: Apache-2.0
#include "experiments/claims_command.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "core/error.h"
#include "experiments/atomic_file.h"
#include "experiments/check_command.h"
#include "experiments/claims/claim_report.h"
#include "experiments/claims/claim_runner.h"
#include "experiments/claims/claim_spec.h"
#include "experiments/runner/progress_bar.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;

struct ClaimsOptions {
  std::vector<std::string> only;
  bool all = false;
  bool paper = false;
  std::string out = "results/claims";
};

// The path from folder `from` to `to`, for links in a Markdown file that lives in `from`.
std::string relative_link(const fs::path& from, const fs::path& to) {
  return fs::relative(fs::absolute(to), fs::absolute(from)).generic_string();
}

void run(const ClaimsOptions& o) {
  if (o.paper && (!o.all || !o.only.empty())) {
    throw core::ConfigError("--paper writes the whole ledger: use it with --all and without --only");
  }
  // Load every claim first: a broken file stops everything before anything runs.
  std::vector<Claim> claims;
  std::vector<core::Diagnostic> problems;
  for (const std::string& file : claim_files()) {
    try {
      claims.push_back(load_claim(file));
    } catch (const core::ConfigError& e) {
      problems.insert(problems.end(), e.diagnostics().begin(), e.diagnostics().end());
    }
  }
  if (!problems.empty()) throw core::ConfigError(problems);
  for (const std::string& id : o.only) {
    if (std::none_of(claims.begin(), claims.end(), [&](const Claim& c) { return c.id == id; })) {
      std::string known;
      for (const Claim& c : claims) known += (known.empty() ? "" : ", ") + c.id;
      throw core::ConfigError(fmt::format("--only: no claim '{}' (claims: {})", id, known));
    }
  }
  std::vector<size_t> selected;
  for (size_t i = 0; i < claims.size(); ++i) {
    const bool named = std::find(o.only.begin(), o.only.end(), claims[i].id) != o.only.end();
    if (o.only.empty() ? (o.all || claims[i].quick) : named) selected.push_back(i);
  }

  fs::create_directories(o.out);
  std::vector<LedgerRow> rows;
  for (const Claim& c : claims) rows.push_back({c, {}});
  ProgressBar progress(selected.size(), ::isatty(STDERR_FILENO) != 0);
  for (size_t k = 0; k < selected.size(); ++k) {
    LedgerRow& row = rows[selected[k]];
    row.outcome = run_claim(row.claim, {o.out, ""});
    progress.finish_point(k);
  }
  progress.close();
  for (LedgerRow& row : rows) {
    if (row.outcome.verdict == Verdict::kNotRun && row.outcome.detail.empty()) {
      row.outcome.detail = row.claim.quick ? "not selected (--only)" : "slow: run with --all";
    }
  }
  if (!o.only.empty()) {
    std::vector<LedgerRow> kept;
    for (size_t i : selected) kept.push_back(rows[i]);
    rows = kept;
  }

  std::string command = "kvlab claims";
  if (o.all) command += " --all";
  for (const std::string& id : o.only) command += " --only " + id;
  write_file_atomically((fs::path(o.out) / "claims.md").string(), render_claims_markdown(rows, command, "."));
  write_file_atomically((fs::path(o.out) / "claims.json").string(), render_claims_json(rows, command, ".").dump(2) + "\n");
  if (o.paper) {
    const fs::path paper = fs::path(KVLAB_SOURCE_DIR) / "paper";
    fs::create_directories(paper);
    const std::string link = relative_link(paper, o.out);
    write_file_atomically((paper / "claims.md").string(), render_claims_markdown(rows, command, link));
    write_file_atomically((paper / "claims.json").string(), render_claims_json(rows, command, link).dump(2) + "\n");
  }
  std::cout << render_claims_terminal(rows);
  std::cout << fmt::format("written: {0}/claims.md, {0}/claims.json{1}\n", o.out,
                           o.paper ? ", paper/claims.md, paper/claims.json" : "");
}

}  // namespace

void register_claims_command(CLI::App& app) {
  auto o = std::make_shared<ClaimsOptions>();
  CLI::App* cmd = app.add_subcommand("claims", "Run the claims ledger (configs/claims/) and write its verdict table");
  cmd->add_option("--only", o->only, "run only this claim (repeatable)");
  cmd->add_flag("--all", o->all, "run every claim, slow ones included (default: the quick subset)");
  cmd->add_option("--out", o->out, "folder for the run folders, claims.md and claims.json")->capture_default_str();
  cmd->add_flag("--paper", o->paper, "also write paper/claims.md and paper/claims.json (with --all)");
  cmd->callback([o] { run(*o); });
  register_check_kind("claims", "claim", [](const std::string& path) { load_claim(path); });
  register_config_section("Claims (configs/claims/)",
                          "A claim of the ledger: `kvlab claims` measures it and computes its verdict "
                          "(docs/claims.md).",
                          [](core::ConfigNode root) { parse_claim(root, ""); });
}

}  // namespace kvlab::experiments
