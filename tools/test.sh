#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing (tools/setup.sh), then
# configures, builds and tests the `ci` preset (ASan + UBSan, warnings as errors, gpu/
# compiled wherever nvcc exists; GPU tests skip without a device), then the fuzz targets'
# regressions and a 15 s run of each (the `fuzz` preset, clang), then the Python tests
# (against an optimised build: see below).
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
# The Python tests (plots, the kvlab module, notebooks, the Ray sweep) use an optimised build
# without sanitizers: an ASan-built extension cannot load into a plain Python interpreter.
if [ -d tests/python ]; then
  cmake --preset release -DKVLAB_CUDA=OFF -DKVLAB_BUILD_TESTS=OFF -DKVLAB_BUILD_BENCH=OFF -DKVLAB_BUILD_PYTHON=ON >/dev/null
  cmake --build --preset release --target kvlab _kvlab -- -j"$(nproc)" >/dev/null
  KVLAB_BUILD_DIR="$PWD/build/release" python3 -m pytest -q tests/python
fi
