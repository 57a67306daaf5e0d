#!/bin/bash
# The bit-plane session's one device call (2026-12-03), run from the tree's root with $OUT
# set, inside 230 s: build gpu_test and decode_bench (sm_90a), the decode, append, plan and
# prefill tests, compute-sanitizer memcheck and racecheck on int6/int5 cases, the page
# loop's static SASS, then decode_bench (every format at the issue's shapes).
set -uo pipefail
out=${OUT:-$PWD/gpu-results}
mkdir -p "$out/logs"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; date -u; } >"$out/logs/machine.txt" 2>&1
left() { echo $((220 - SECONDS)); }
cmake --preset gpu -DKVLAB_PTXAS_VERBOSE=ON "-DCMAKE_CUDA_FLAGS=--split-compile=4" >"$out/logs/configure.log" 2>&1 || tail -20 "$out/logs/configure.log"
timeout 125 cmake --build build/gpu --target gpu_test decode_bench -- -j16 -k 0 >"$out/logs/build.log" 2>&1
echo "build rc $? at ${SECONDS} s"
grep -E "error" -A3 "$out/logs/build.log" | head -30
tests=build/gpu/tests/gpu/gpu_test
timeout 40 "$tests" --gtest_filter='*PagedDecode*:*KvAppend*:ChooseNumSplits*:PlanDecode*:*Prefill*' >"$out/logs/gpu_test.log" 2>&1
echo "tests rc $? at ${SECONDS} s"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|tests ran" "$out/logs/gpu_test.log" | head -30
timeout 20 compute-sanitizer --tool memcheck --error-exitcode 99 "$tests" --gtest_filter='*PagedDecode*int6_g32:*int5_d64*:KvAppend*int6*' >"$out/logs/memcheck.log" 2>&1
echo "memcheck rc $? at ${SECONDS} s"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/logs/memcheck.log" | head -5
timeout 25 compute-sanitizer --tool racecheck --error-exitcode 99 "$tests" --gtest_filter='*PagedDecode*int6_g32' >"$out/logs/racecheck.log" 2>&1
echo "racecheck rc $? at ${SECONDS} s"; grep -E "RACECHECK SUMMARY|hazard|PASSED|FAILED" "$out/logs/racecheck.log" | sort | uniq -c | head -5
timeout "$(left)" stdbuf -oL build/gpu/bench/gpu/decode_bench >"$out/bench_kvlab.csv" 2>"$out/logs/decode_bench.err"
echo "decode_bench rc $? at ${SECONDS} s, $(wc -l <"$out/bench_kvlab.csv") lines"; tail -3 "$out/logs/decode_bench.err"
for f in int4 int5 int6 int8; do
  obj=$(find build/gpu/gpu -name "decode_$f.cu.o" | head -1)
  [ -n "$obj" ] && cuobjdump --dump-sass "$obj" >"$out/logs/sass_$f.txt" 2>&1 && python3 bench/gpu/sass_page_loop.py "$out/logs/sass_$f.txt" >>"$out/sass_page_loop.txt" 2>&1
done
grep -E "Compiling entry|Used [0-9]+ registers|spill" "$out/logs/build.log" >"$out/logs/ptxas.txt" 2>/dev/null
rm -f "$out"/logs/sass_*.txt
tar -czf "$out/logs.tgz" -C "$out" logs && rm -rf "$out/logs"
