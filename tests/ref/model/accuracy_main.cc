// SPDX-License-Identifier: Apache-2.0
// A stand-alone `accuracy` command for developers (kvlab_accuracy <experiment.yaml>), the
// same code `kvlab accuracy` runs once experiments/main.cc registers it; the numbers in
// docs/ref-accuracy.md were produced with it. Exit codes as kvlab's: 2 user, 1 environment.
#include <cstdio>
#include <exception>

#include "core/error.h"
#include "experiments/accuracy_command.h"

int main(int argc, char** argv) {
  CLI::App app{"kvlab accuracy (stand-alone)"};
  app.require_subcommand(1);
  kvlab::experiments::register_accuracy_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const kvlab::core::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvlab: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
