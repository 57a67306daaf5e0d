#!/usr/bin/env bash
# kvlab's main job: builds the optimised `kvlab` binary (installing what is missing on
# first use) and runs it. With no arguments it runs the claims ledger's quick subset
# (`kvlab claims`: every claim computable in a few minutes on a laptop-class CPU; `--all` runs
# every claim) and prints the verdict table; results/claims/ keeps each claim's run folder and
# claims.md. With arguments it runs `kvlab <arguments>` (e.g. `capacity --catalog`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake --preset release -DKVLAB_CUDA=OFF -DKVLAB_BUILD_TESTS=OFF -DKVLAB_BUILD_BENCH=OFF >/dev/null
cmake --build --preset release --target kvlab -- -j"$(nproc)" >/dev/null
if [ $# -eq 0 ]; then
  exec build/release/experiments/kvlab claims --out results/claims
fi
exec build/release/experiments/kvlab "$@"
