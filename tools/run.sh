#!/usr/bin/env bash
# kvlab's main job: builds the optimised `kvlab` binary (installing what is missing on
# first use) and runs it. With no arguments it writes the capacity report for the built-in
# catalog to results/capacity/ and prints it; with arguments it runs `kvlab <arguments>`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake --preset release -DKVLAB_CUDA=OFF -DKVLAB_BUILD_TESTS=OFF -DKVLAB_BUILD_BENCH=OFF >/dev/null
cmake --build --preset release --target kvlab -- -j"$(nproc)" >/dev/null
if [ $# -eq 0 ]; then
  exec build/release/experiments/kvlab capacity --catalog --out results/capacity
fi
exec build/release/experiments/kvlab "$@"
