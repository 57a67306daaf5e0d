#!/usr/bin/env bash
# The MoE terms of the cost model measured and checked in one GPU call: builds kvlab and
# engine_test for sm_90a, runs the engine's MoE tests (and compute-sanitizer memcheck on the
# MoE kernels' tests), `kvlab calibrate --gpu h200 --moe-only` (the routed-expert table and
# the router's top-k, merged into configs/calibration/h200.yaml; the dense terms kept as
# measured), then simulates bench/gpu/cross_validate/qwen3_30b_a3b.yaml with that file and
# replays every logged iteration on the engine, and tabulates the result
# (python/kvlab/accuracy_table.py). Each step under its own timeout; results in $OUT.
#   KVLAB_COMMIT=<commit> bash bench/gpu/moe_calibrate_on_device.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpu-results-moecal}
commit=${KVLAB_COMMIT:-unknown}
mkdir -p "$out/logs"
start=$SECONDS
stamp() { echo "[$((SECONDS - start)) s] $*" | tee -a "$out/summary.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; date -u;
  echo "tree: $commit"; } >"$out/logs/machine.txt" 2>&1
cmake --preset gpu "-DCMAKE_CUDA_FLAGS=--split-compile=4" >"$out/logs/configure.log" 2>&1 || tail -20 "$out/logs/configure.log"
timeout 130 cmake --build build/gpu --target kvlab engine_test -- -j16 >"$out/logs/build.log" 2>&1
stamp "build rc=$?"
grep -E "error" -A3 "$out/logs/build.log" | head -30 | tee -a "$out/summary.txt"
kvlab=build/gpu/experiments/kvlab
tests=build/gpu/tests/gpu/engine_test
timeout 30 $tests --gtest_filter='EngineMoeTest.*:MoeLayer*:MoeDeviceRouting*:RouterTopk*:*GroupedGemm*:MoeRouting*' >"$out/logs/moe_tests.log" 2>&1
stamp "MoE engine tests rc=$?"
grep -E "^\[  (FAILED|PASSED) |^\[==========\]|Failure" "$out/logs/moe_tests.log" | head -20 | tee -a "$out/summary.txt"
timeout 40 compute-sanitizer --tool memcheck --error-exitcode 99 $tests \
  --gtest_filter='RouterTopk.*:MoeDeviceRouting.*:MoeLayer.*:EngineMoeTest.GroupedInGraphs' >"$out/logs/memcheck.log" 2>&1
stamp "memcheck rc=$?"
grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/logs/memcheck.log" | head -5 | tee -a "$out/summary.txt"
cp configs/calibration/h200.yaml "$out/logs/h200_before.yaml"
timeout 60 $kvlab calibrate --gpu h200 --moe-only --commit "$commit" --raw "$out/moe_calibration_raw.csv" \
  >"$out/logs/calibrate.txt" 2>&1
stamp "calibrate --moe-only rc=$?"
cat "$out/logs/calibrate.txt" | tee -a "$out/summary.txt"
cp configs/calibration/h200.yaml "$out/h200.yaml"
runs=$out/runs
timeout 30 $kvlab run bench/gpu/cross_validate/qwen3_30b_a3b.yaml --iteration-log --no-plots --out "$runs/moe" \
  >"$out/logs/sim.txt" 2>&1
stamp "simulate rc=$?"
tail -5 "$out/logs/sim.txt" | tee -a "$out/summary.txt"
timeout 120 $kvlab replay "$runs/moe" --warmup 1 --repeats 3 >"$out/logs/replay.txt" 2>"$out/logs/replay.err"
stamp "replay (every iteration) rc=$?"
cat "$out/logs/replay.txt" | tee -a "$out/summary.txt"
tail -5 "$out/logs/replay.err"
python3 python/kvlab/accuracy_table.py "$runs"/* >"$out/accuracy_table.md" 2>>"$out/logs/replay.err"
cat "$out/accuracy_table.md" | tee -a "$out/summary.txt"
tar -C "$out" -czf "$out/runs.tar.gz" runs && rm -rf "$runs"
tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
stamp "done"
