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
# The short runs two targets at a time (CI has two cores), from the binaries just built.
tools/fuzz.sh --seconds 15 --prebuilt build/fuzz/fuzz --targets "fuzz_config fuzz_workload fuzz_gguf" &
first=$!
tools/fuzz.sh --seconds 15 --prebuilt build/fuzz/fuzz --targets "fuzz_hf_config fuzz_trace fuzz_tokenizer"
wait "$first"
# The Python tests (plots, the kvlab module, notebooks, the Ray sweep) use a build without
# sanitizers (an ASan-built extension cannot load into a plain Python interpreter), at -O1 in
# a folder of its own: -O3 compiles slower and the tests' runs are small; build/release stays
# the main job's.
if [ -d tests/python ]; then
  cmake --preset release -B build/pytest -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DKVLAB_CUDA=OFF \
    -DKVLAB_BUILD_TESTS=OFF -DKVLAB_BUILD_BENCH=OFF -DKVLAB_BUILD_PYTHON=ON >/dev/null
  cmake --build build/pytest --target kvlab _kvlab -- -j"$(nproc)" >/dev/null
  KVLAB_BUILD_DIR="$PWD/build/pytest" python3 -m pytest -q tests/python
fi
