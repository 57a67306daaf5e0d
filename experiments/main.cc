// SPDX-License-Identifier: Apache-2.0
// The kvlab command line: wires each subcommand's registration function into one CLI11 app
// and maps errors to exit codes (2: the user's input is wrong, 1: the environment failed).
#include <cstdio>
#include <exception>
#include <new>

#include <CLI/CLI.hpp>

#include "core/error.h"
#include "experiments/accuracy_command.h"
#include "experiments/capacity_command.h"
#include "experiments/check_command.h"
#if KVLAB_WITH_ENGINE
#include "experiments/calibrate_command.h"
#include "experiments/replay_command.h"
#endif
#include "experiments/claims_command.h"
#include "experiments/run_command.h"

int main(int argc, char** argv) {
  CLI::App app{"kvlab: KV-cache techniques in LLM serving, simulated, referenced and measured"};
  app.require_subcommand(1);
  // Subcommands register themselves here, one line each.
  kvlab::experiments::register_accuracy_command(app);
  kvlab::experiments::register_capacity_command(app);
  kvlab::experiments::register_check_command(app);
  kvlab::experiments::register_claims_command(app);
  kvlab::experiments::register_run_command(app);
#if KVLAB_WITH_ENGINE
  kvlab::experiments::register_calibrate_command(app);
  kvlab::experiments::register_replay_command(app);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const kvlab::core::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kvlab: error: out of memory: the configuration needs more memory than this machine has\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvlab: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
