#!/usr/bin/env bash
# The one GPU command: builds kvlab natively on the GPU machine (sm_90a), runs the GPU tests
# (then a subset under compute-sanitizer memcheck and racecheck), runs the decode benchmark
# and the peers in the same call, and prints the table last. Results go to $OUT (or
# ./gpu-results when run by hand): the two benchmark CSVs, the table, the test log and
# logs.tar.gz with everything else (the device tool returns at most 8 files).
#   bash bench/gpu/run_on_device.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpu-results}
mkdir -p "$out/logs"
quick=${1:-}
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; date -u; } \
  >"$out/logs/machine.txt" 2>&1
cmake --preset gpu -DKVLAB_PTXAS_VERBOSE=ON >"$out/logs/configure.log" 2>&1 || { tail -30 "$out/logs/configure.log"; exit 1; }
cmake --build --preset gpu --target gpu_test decode_bench -- -j16 >"$out/logs/build.log" 2>&1 \
  || { grep -E "error" -A3 "$out/logs/build.log" | head -60; exit 1; }
grep -E "Used [0-9]+ registers|spill" "$out/logs/build.log" | sort | uniq -c | sort -rn | head -20 >"$out/logs/ptxas_summary.txt"
./build/gpu/tests/gpu/gpu_test --gtest_output=xml:"$out/gpu_test.xml" >"$out/gpu_test.log" 2>&1
echo "gpu_test exit code: $?" | tee -a "$out/gpu_test.log"
tail -5 "$out/gpu_test.log"
sanitize_filter='*bf16_ragged_gqa4*:*int4_g32*:*forced_splits*:*four_queries*:KvAppend*'
compute-sanitizer --tool memcheck ./build/gpu/tests/gpu/gpu_test --gtest_filter="$sanitize_filter" >"$out/logs/memcheck.log" 2>&1
echo "memcheck exit code: $?" | tee -a "$out/logs/memcheck.log"; tail -3 "$out/logs/memcheck.log"
grep -E "ERROR SUMMARY|Invalid|hazard" "$out/logs/memcheck.log" | head -5
compute-sanitizer --tool racecheck ./build/gpu/tests/gpu/gpu_test --gtest_filter='*bf16_ragged_gqa4*:*int4_g32*' >"$out/logs/racecheck.log" 2>&1
echo "racecheck exit code: $?" | tee -a "$out/logs/racecheck.log"
grep -E "RACECHECK SUMMARY|Warning|Error|hazard" "$out/logs/racecheck.log" | sort | uniq -c | head -10
./build/gpu/bench/gpu/decode_bench $quick >"$out/bench_kvlab.csv" 2>"$out/logs/bench_kvlab.err"
echo "decode_bench exit code: $?"; cat "$out/logs/bench_kvlab.err"
python3 bench/gpu/peers.py $quick >"$out/bench_peers.csv" 2>"$out/logs/bench_peers.err"
echo "peers exit code: $?"; tail -5 "$out/logs/bench_peers.err"
python3 bench/gpu/combine.py "$out/bench_kvlab.csv" "$out/bench_peers.csv" | tee "$out/bench_table.md"
tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
