#!/usr/bin/env bash
# The one GPU command: builds kvlab natively on the GPU machine (sm_90a), runs the GPU tests
# (then a subset under compute-sanitizer memcheck and racecheck), runs kvlab's bf16 paged
# decode against the peers in one process (peers.py), every KV format through the C++
# benchmark (decode_bench) and the plan launcher against dense decode (plan_bench), each
# with the copy ceiling measured in the same run, and prints the tables last. Results go to
# $OUT (or ./gpu-results when run by hand).
#   bash bench/gpu/run_on_device.sh [--quick] [--no-sanitizers] [--no-peers]
# --quick: two shapes a benchmark, fewer calls; --no-peers: skip peers.py (PyTorch).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpu-results}
mkdir -p "$out/logs"
quick="" sanitize=1 peers=1
for arg in "$@"; do
  case $arg in --quick) quick=--quick ;; --no-sanitizers) sanitize=0 ;; --no-peers) peers=0 ;; esac
done
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; date -u; } \
  >"$out/logs/machine.txt" 2>&1
build=build/gpu
# --split-compile: nvcc optimises the many kernels of one instance file in parallel (the
# instance files are the build's critical path).
flags=(-DKVLAB_PTXAS_VERBOSE=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON "-DCMAKE_CUDA_FLAGS=--split-compile=4")
if ! cmake --preset gpu "${flags[@]}" >"$out/logs/configure.log" 2>&1; then
  # Another folder of the shared tree may be mid-edit: build only what the GPU run needs.
  echo "full configure failed (logs/configure.log); building core, ref, gpu and their tests alone"
  build=build/gpu-only
  cmake -S bench/gpu/device_build -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
    "${flags[@]}" >"$out/logs/configure-gpu-only.log" 2>&1 || { tail -30 "$out/logs/configure-gpu-only.log"; exit 1; }
fi
targets=(gpu_test decode_bench plan_bench tree_bench)
[ "$peers" = 1 ] && targets+=(kvlab_decode_capi)
cmake --build $build --target "${targets[@]}" -- -j16 >"$out/logs/build.log" 2>&1 \
  || { grep -E "error" -A3 "$out/logs/build.log" | head -60; exit 1; }
grep -E "Compiling entry|Used [0-9]+ registers|spill" "$out/logs/build.log" >"$out/logs/ptxas.txt"
# SASS of the decode kernels (bf16, int4, int8) and an instruction count of each kernel.
for f in bf16 int8 int4; do
  cuobjdump --dump-sass $(find $build/gpu -name "decode_$f.cu.o") >"$out/logs/sass_$f.txt" 2>&1
  awk '/Function :/{name=$3} /^ +\/\*[0-9a-f]+\*\//{split($2,a,"."); op=a[1]; if(op ~ /^@/) op=$3; n[name" "op]++}
       END{for(k in n) print k, n[k]}' "$out/logs/sass_$f.txt" | grep -E "paged_decode|plan_decode" | sort >"$out/logs/sass_ops_$f.txt"
done
echo "== GPU tests"
$build/tests/gpu/gpu_test --gtest_output=xml:"$out/logs/gpu_test.xml" >"$out/gpu_test.log" 2>&1
echo "gpu_test exit code: $?" | tee -a "$out/gpu_test.log"
grep -E "FAILED|Failure|error|PASSED|SKIPPED" "$out/gpu_test.log" | head -30
echo "== benchmarks"
$build/bench/gpu/plan_bench $quick >"$out/bench_plan.csv" 2>"$out/logs/bench_plan.err"
echo "plan_bench exit code: $?"; cat "$out/logs/bench_plan.err"; cat "$out/bench_plan.csv"
$build/bench/gpu/tree_bench $quick >"$out/bench_tree.csv" 2>"$out/logs/bench_tree.err"
echo "tree_bench exit code: $?"; cat "$out/logs/bench_tree.err"; cat "$out/bench_tree.csv"
if [ "$peers" = 1 ]; then
  PYTHONUNBUFFERED=1 python3 bench/gpu/peers.py --lib $build/bench/gpu/libkvlab_decode_capi.so $quick \
    >"$out/bench_peers.csv" 2>"$out/bench_peers.err"
  echo "peers.py exit code: $?"; grep -v Warning "$out/bench_peers.err" | tail -5
fi
$build/bench/gpu/decode_bench $quick >"$out/bench_kvlab.csv" 2>"$out/logs/bench_kvlab.err"
echo "decode_bench exit code: $?"; cat "$out/logs/bench_kvlab.err"
[ "$peers" = 1 ] && python3 bench/gpu/combine.py "$out/bench_peers.csv" "$out/bench_kvlab.csv" | tee "$out/bench_table.md"
# Sanitizers last: the slowest part, and a run cut short still keeps the numbers above.
if [ "$sanitize" = 1 ]; then
  echo "== compute-sanitizer"
  filter='*bf16_ragged*:*gqa8*:*int4_g32*:*int5*:*forced_splits*:*four_queries*:*rows_over_16*:*fused*:*separate_merge*:*Counters*:KvAppend*:PlanDecodeGpu.MixedGroups*:PlanDecodeGpu.TreeMask*:PlanDecodeGpu.PlannedOnce*'
  compute-sanitizer --tool memcheck $build/tests/gpu/gpu_test --gtest_filter="$filter" >"$out/logs/memcheck.log" 2>&1
  echo "memcheck exit code: $?" | tee "$out/sanitizers.txt"
  grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/logs/memcheck.log" | head -5 | tee -a "$out/sanitizers.txt"
  compute-sanitizer --tool racecheck $build/tests/gpu/gpu_test --gtest_filter='*bf16_ragged*:*int4_g32*:*four_queries*:*fused_rows16*:*Counters*:PlanDecodeGpu.MixedGroupsOneQuery:PlanDecodeGpu.TreeMaskPlan' \
    >"$out/logs/racecheck.log" 2>&1
  echo "racecheck exit code: $?" | tee -a "$out/sanitizers.txt"
  grep -E "RACECHECK SUMMARY|hazard|PASSED|FAILED" "$out/logs/racecheck.log" | sort | uniq -c | head -8 | tee -a "$out/sanitizers.txt"
fi
tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
