#!/usr/bin/env bash
# The MoE engine's GPU run (gpu/engine/README.md, "MoE"): builds engine_test and moe_bench
# for sm_90a, runs the engine tests (the grouped path's kernels, the warp router, the copy
# kernel and EngineMoeTest among them), the per-launch breakdown of decode steps, whole decode
# steps, the copy ceiling both ways and the MoE layer microbenchmark (bench/gpu/moe_bench.cc),
# an nsys kernel summary of a 2-sequence step where the image has nsys, then
# compute-sanitizer memcheck on the MoE kernels' tests and racecheck on the device routing.
# Each step under its own timeout; results in $OUT (or ./gpu-results-moe), logs tarred.
#   bash bench/gpu/moe_on_device.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpu-results-moe}
mkdir -p "$out/logs"
start=$SECONDS
stamp() { echo "[$((SECONDS - start)) s] $*" | tee -a "$out/timeline.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; date -u;
  echo "nsys: $(which nsys || echo none)"; echo "ncu: $(which ncu || echo none)"; } >"$out/logs/machine.txt" 2>&1
cmake --preset gpu "-DCMAKE_CUDA_FLAGS=--split-compile=4" >"$out/logs/configure.log" 2>&1 || tail -20 "$out/logs/configure.log"
timeout 150 cmake --build build/gpu --target engine_test moe_bench -- -j16 >"$out/logs/build.log" 2>&1
stamp "build rc=$?"
grep -E "error" -A3 "$out/logs/build.log" | head -30
tests=build/gpu/tests/gpu/engine_test
bench=build/gpu/bench/gpu/moe_bench
timeout 40 $tests --gtest_output=xml:"$out/logs/engine_test.xml" >"$out/logs/engine_test.log" 2>&1
stamp "engine_test rc=$?"
grep -E "^\[  (FAILED|PASSED) |Failure|Expected|Which is|actual" "$out/logs/engine_test.log" | head -40
timeout 40 $bench --breakdown >"$out/moe_breakdown.csv" 2>"$out/logs/moe_breakdown.err"
stamp "moe_bench --breakdown rc=$?"
cat "$out/moe_breakdown.csv"; tail -3 "$out/logs/moe_breakdown.err"
timeout 40 $bench --steps >"$out/moe_steps.csv" 2>"$out/logs/moe_steps.err"
stamp "moe_bench --steps rc=$?"
cat "$out/moe_steps.csv"; tail -3 "$out/logs/moe_steps.err"
timeout 15 $bench --copy >"$out/copy.csv" 2>"$out/logs/copy.err"
stamp "moe_bench --copy rc=$?"
cat "$out/copy.csv"
timeout 25 $bench >"$out/moe_layer.csv" 2>"$out/logs/moe_layer.err"
stamp "moe_bench rc=$?"
cat "$out/moe_layer.csv"
if command -v nsys >/dev/null; then
  timeout 40 nsys profile --cuda-graph-trace=node -o "$out/logs/step2" $bench --step 2 >"$out/logs/nsys.log" 2>&1
  timeout 20 nsys stats --report cuda_gpu_kern_sum --format csv "$out/logs/step2.nsys-rep" >"$out/nsys_step2_kernels.csv" 2>>"$out/logs/nsys.log"
  stamp "nsys rc=$?"
  head -25 "$out/nsys_step2_kernels.csv"
fi
filter='RouterTopk.*:CopyDevice.*:MoeDeviceRouting.*:*GroupedGemmTest*tiny*:MoeLayer.*:EngineMoeTest.GroupedInGraphs'
timeout 40 compute-sanitizer --tool memcheck --error-exitcode 99 $tests --gtest_filter="$filter" >"$out/logs/memcheck.log" 2>&1
stamp "memcheck rc=$?"
grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/logs/memcheck.log" | head -5
timeout 20 compute-sanitizer --tool racecheck --error-exitcode 99 $tests --gtest_filter='MoeDeviceRouting.*:RouterTopk.*' >"$out/logs/racecheck.log" 2>&1
stamp "racecheck rc=$?"
grep -E "RACECHECK SUMMARY|hazard|PASSED|FAILED" "$out/logs/racecheck.log" | sort | uniq -c | head -8
tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
