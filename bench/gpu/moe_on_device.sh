#!/usr/bin/env bash
# The MoE engine's GPU run (gpu/engine/README.md, "MoE"): builds engine_test and moe_bench
# for sm_90a, runs the engine tests (the grouped path's kernels and EngineMoeTest among
# them), the MoE layer microbenchmark and whole decode steps (bench/gpu/moe_bench.cc), then
# compute-sanitizer memcheck on the new kernels' tests and racecheck on the device routing.
# Each step under its own timeout; results in $OUT (or ./gpu-results-moe), logs tarred.
#   bash bench/gpu/moe_on_device.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpu-results-moe}
mkdir -p "$out/logs"
start=$SECONDS
stamp() { echo "[$((SECONDS - start)) s] $*" | tee -a "$out/timeline.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; date -u; } \
  >"$out/logs/machine.txt" 2>&1
cmake --preset gpu "-DCMAKE_CUDA_FLAGS=--split-compile=4" >"$out/logs/configure.log" 2>&1 || tail -20 "$out/logs/configure.log"
timeout 230 cmake --build build/gpu --target engine_test moe_bench -- -j16 >"$out/logs/build.log" 2>&1
stamp "build rc=$?"
grep -E "error" -A3 "$out/logs/build.log" | head -30
tests=build/gpu/tests/gpu/engine_test
bench=build/gpu/bench/gpu/moe_bench
timeout 60 $tests --gtest_output=xml:"$out/logs/engine_test.xml" >"$out/logs/engine_test.log" 2>&1
stamp "engine_test rc=$?"
grep -E "^\[  (FAILED|PASSED) |Failure|Expected|Which is|actual" "$out/logs/engine_test.log" | head -40
timeout 45 $bench >"$out/moe_layer.csv" 2>"$out/logs/moe_layer.err"
stamp "moe_bench rc=$?"
cat "$out/moe_layer.csv"; tail -3 "$out/logs/moe_layer.err"
timeout 60 $bench --steps >"$out/moe_steps.csv" 2>"$out/logs/moe_steps.err"
stamp "moe_bench --steps rc=$?"
cat "$out/moe_steps.csv"; tail -3 "$out/logs/moe_steps.err"
filter='MoeDeviceRouting.*:*GroupedGemmTest*partial*:*GroupedGemmTest*tiny*:*GroupedGemmTest*skewed*:MoeLayer.*:EngineMoeTest.GroupedInGraphs'
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 99 $tests --gtest_filter="$filter" >"$out/logs/memcheck.log" 2>&1
stamp "memcheck rc=$?"
grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/logs/memcheck.log" | head -5
timeout 30 compute-sanitizer --tool racecheck --error-exitcode 99 $tests --gtest_filter='MoeDeviceRouting.*' >"$out/logs/racecheck.log" 2>&1
stamp "racecheck rc=$?"
grep -E "RACECHECK SUMMARY|hazard|PASSED|FAILED" "$out/logs/racecheck.log" | sort | uniq -c | head -8
tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
