#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing (tools/setup.sh), then
# configures, builds and tests the `ci` preset (ASan + UBSan, warnings as errors, gpu/
# compiled wherever nvcc exists; GPU tests skip without a device), then the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
python3 tools/check_layers.py
cmake --workflow --preset ci
# Benchmarks are smoke-run so they cannot rot (timings here mean nothing: sanitizers are on).
build/ci/bench/sim/sim_bench --benchmark_min_time=0.01 --benchmark_filter='BM_Simulate/1000|BM_CostModel' >/dev/null 2>&1
# Fuzzing (docs/reliability.md): every past finding replayed, then a short run of each
# target under ASan + UBSan (the release run is tools/fuzz.sh --minutes 60).
tools/fuzz.sh --regressions
tools/fuzz.sh --seconds 15
if [ -d tests/python ]; then
  KVLAB_BUILD_DIR="$PWD/build/ci" python3 -m pytest -q tests/python
fi
