#!/usr/bin/env bash
# The one GPU command: builds kvlab natively on the GPU machine (sm_90a), runs the GPU tests
# (group by group), the benchmarks (the plan launcher, page-sparse decode, MLA decode, every
# KV format, token trees, bf16 against the peers with FlashInfer where its wheels came
# along), then compute-sanitizer memcheck and racecheck on a subset, and prints a compact
# table of the issue's targets last (bench/gpu/combine.py). Every step runs under its own
# `timeout`, so a failure or a hang cannot hide the others; steps.txt records each step's exit
# code and seconds. A time budget (default 420 s from the start) skips what would not fit,
# the peers and then the sanitizers first; numbers already written stay. Results go to $OUT
# (or ./gpu-results).
#   bash bench/gpu/run_on_device.sh [--quick] [--no-sanitizers] [--no-peers] [--peers-full] [--budget SECONDS]
# --quick: two shapes a benchmark, fewer calls; --no-peers: skip peers.py (PyTorch);
# peers.py runs its two quick shapes (each shape compiles Flex anew) unless --peers-full.
# FlashInfer: wheels in .whl/ (flashinfer_python, apache_tvm_ffi; bench/gpu/README.md) are
# installed into /tmp/site for peers.py; without them peers.py says so and runs without it.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpu-results}
mkdir -p "$out/logs"
quick="" sanitize=1 peers=1 budget=420 peers_shapes=--quick
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=--quick ;;
    --no-sanitizers) sanitize=0 ;;
    --no-peers) peers=0 ;;
    --budget) budget=$2; shift ;;
    --peers-full) peers_shapes="" ;;
  esac
  shift
done
start=$SECONDS
: >"$out/steps.txt"
# step NAME TIMEOUT COMMAND...: runs COMMAND under `timeout` (cut to what is left of the
# budget; skipped under 15 s), records "NAME rc seconds" (rc 124: timed out; "skipped").
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget - (SECONDS - start)))
  if [ "$left" -lt 15 ]; then
    echo "$name skipped 0" >>"$out/steps.txt"
    echo "== $name: skipped (budget of ${budget} s spent)"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (at most ${limit} s)"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  echo "$name $rc $((SECONDS - t0))" >>"$out/steps.txt"
  echo "   $name exit code $rc, $((SECONDS - t0)) s"
  return 0
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; date -u;
  git rev-parse HEAD 2>/dev/null; } >"$out/logs/machine.txt" 2>&1

build=build/gpu
# --split-compile: nvcc optimises the many kernels of one instance file in parallel (the
# instance files are the build's critical path).
flags=(-DKVLAB_PTXAS_VERBOSE=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON "-DCMAKE_CUDA_FLAGS=--split-compile=4")
targets=(gpu_test decode_bench plan_bench tree_bench sparse_bench mla_bench)
[ "$peers" = 1 ] && targets+=(kvlab_decode_capi)
configure_and_build() {
  if ! cmake --preset gpu "${flags[@]}" >"$out/logs/configure.log" 2>&1; then
    # Another folder of the shared tree may be mid-edit: build only what the GPU run needs.
    echo "full configure failed (logs/configure.log); building core, ref, gpu and their tests alone"
    build=build/gpu-only
    cmake -S bench/gpu/device_build -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
      "${flags[@]}" >"$out/logs/configure-gpu-only.log" 2>&1 || { tail -30 "$out/logs/configure-gpu-only.log"; return 1; }
  fi
  echo "$build" >"$out/logs/build_dir.txt"
  # -k 0: a target that fails to build leaves the others built.
  cmake --build $build --target "${targets[@]}" -- -j16 -k 0 >"$out/logs/build.log" 2>&1
  local rc=$?
  [ $rc = 0 ] || grep -E "error" -A3 "$out/logs/build.log" | head -60
  return $rc
}
export out build quick
step build 420 bash -c "$(declare -p flags targets); $(declare -f configure_and_build); configure_and_build"
[ -f "$out/logs/build_dir.txt" ] && build=$(cat "$out/logs/build_dir.txt")
grep -E "Compiling entry|Used [0-9]+ registers|spill" "$out/logs/build.log" >"$out/logs/ptxas.txt" 2>/dev/null
# SASS of the decode kernels (bf16, int4, int8) and the page loop's static counts.
for f in bf16 int8 int4; do
  obj=$(find $build/gpu -name "decode_$f.cu.o" 2>/dev/null | head -1)
  [ -n "$obj" ] || continue
  cuobjdump --dump-sass "$obj" >"$out/logs/sass_$f.txt" 2>&1
  python3 bench/gpu/sass_page_loop.py "$out/logs/sass_$f.txt" >>"$out/logs/sass_page_loop.txt" 2>&1
done

tests=$build/tests/gpu/gpu_test
run_tests() {  # name filter timeout
  step "tests_$1" "$3" "$tests" --gtest_filter="$2" --gtest_output=xml:"$out/logs/gpu_test_$1.xml"
}
if [ -x "$tests" ]; then
  {
    # The split-merge handshake test alone first, under a short limit: it hung once (a
    # warp-divergent page body, fixed in decode_tile.cuh), and a hang must not hide the rest.
    run_tests merge_counters 'PagedDecodeMerge.*' 30
    run_tests paged_decode '*PagedDecode*:*KvAppend*:ChooseNumSplits*:-PagedDecodeMerge.*' 150
    run_tests plan_decode 'PlanDecode*' 120
    run_tests page_sparse 'PageSparse*' 120
    run_tests mla_decode 'Mla*' 120
  } 2>&1 | tee "$out/gpu_test.log" | grep -E "^== |exit code|FAILED|PASSED|SKIPPED \]|Failure" | head -60
else
  echo "gpu_test not built" | tee "$out/gpu_test.log"
fi

bench() {  # name binary csv timeout
  if [ -x "$build/bench/gpu/$2" ]; then
    step "$1" "$4" bash -c "'$build/bench/gpu/$2' $quick >'$out/$3' 2>'$out/logs/$3.err'"
    grep -v "^$" "$out/logs/$3.err" | tail -12
  else
    echo "== $1: $2 not built" | tee -a "$out/steps.txt"
  fi
}
bench plan_bench plan_bench bench_plan.csv 120
bench sparse_bench sparse_bench bench_sparse.csv 120
bench mla_bench mla_bench bench_mla.csv 120
bench decode_bench decode_bench bench_kvlab.csv 150
bench tree_bench tree_bench bench_tree.csv 60
# The sanitizers, then the peers last (PyTorch compiles, FlashInfer JIT): what a short budget cuts.
if [ "$sanitize" = 1 ] && [ -x "$tests" ]; then
  memcheck='*bf16_ragged*:*gqa8*:*int4_g32*:*int5*:*forced_splits*:*four_queries*:*rows_over_16*:*fused*:*separate_merge*:*Counters*:KvAppend*:PlanDecodeGpu.MixedGroups*:PlanDecodeGpu.TreeMask*:PlanDecodeGpu.PlannedOnce*:PlanDecodeGpu.TwoLevel*:PageSparseGpu.Quest*:PageSparseGpu.Int8*:MlaDecodeGpu.SixteenHeads*'
  racecheck='*bf16_ragged*:*int4_g32*:*four_queries*:*fused_rows16*:*Counters*:PlanDecodeGpu.MixedGroupsOneQuery:PlanDecodeGpu.TreeMaskPlan:PlanDecodeGpu.TwoLevel*:PageSparseGpu.Quest*:MlaDecodeGpu.SixteenHeads*'
  step memcheck 150 bash -c "compute-sanitizer --tool memcheck --error-exitcode 99 '$tests' --gtest_filter='$memcheck' >'$out/logs/memcheck.log' 2>&1"
  step racecheck 150 bash -c "compute-sanitizer --tool racecheck --error-exitcode 99 '$tests' --gtest_filter='$racecheck' >'$out/logs/racecheck.log' 2>&1"
  {
    grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/logs/memcheck.log" 2>/dev/null | head -5
    grep -E "RACECHECK SUMMARY|hazard|PASSED|FAILED" "$out/logs/racecheck.log" 2>/dev/null | sort | uniq -c | head -8
  } | tee "$out/sanitizers.txt"
fi

if [ "$peers" = 1 ] && [ -f "$build/bench/gpu/libkvlab_decode_capi.so" ]; then
  pypath=""
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      >"$out/logs/pip.log" 2>&1 && pypath=/tmp/site
  fi
  step peers 240 bash -c "PYTHONUNBUFFERED=1 PYTHONPATH='$pypath${PYTHONPATH:+:$PYTHONPATH}' MAX_JOBS=16 \
    FLASHINFER_CUDA_ARCH_LIST=9.0a python3 bench/gpu/peers.py --lib '$build/bench/gpu/libkvlab_decode_capi.so' $peers_shapes \
    >'$out/bench_peers.csv' 2>'$out/bench_peers.err'"
  grep -v Warning "$out/bench_peers.err" | grep -iE "flashinfer|copy ceiling|Error" | head -8
fi

python3 bench/gpu/combine.py "$out" >"$out/bench_table.md" 2>&1
tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
echo "== steps (name, exit code, seconds; total $((SECONDS - start)) s)"
cat "$out/steps.txt"
echo
python3 bench/gpu/combine.py "$out" --summary
