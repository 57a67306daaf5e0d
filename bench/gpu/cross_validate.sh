#!/usr/bin/env bash
# Cross-validation of the simulator against the GPU engine, one command on the GPU machine:
#   1. builds kvlab natively (gpu preset: Release, sm_90a, ninja -j16);
#   2. runs the engine's tests (prefill kernel against ref/, whole steps against a CPU
#      forward pass) and compute-sanitizer memcheck on a small subset of them;
#   3. `kvlab calibrate --gpu h200`: times the engine's kernels and writes
#      configs/calibration/h200.yaml (copied to $OUT);
#   4. simulates bench/gpu/cross_validate/llama8b.yaml (Llama-3.1-8B, bf16 and int8 KV,
#      light and saturating load) with --iteration-log, with that calibration and without
#      it (the built-in defaults);
#   5. replays the logged iterations on the engine (`kvlab replay`): every iteration of the
#      calibrated run, 100 per point of the other;
#   5b. a technique plan: bench/gpu/cross_validate/llama8b_tangram.yaml (Llama-3.1-8B under a
#      uniform Tangram plan, light and saturating load) simulated with the calibration and
#      every iteration replayed through the engine's plan path (26 s for both points on the
#      H200, bench/results/2026-12-03-h200-plan-replay), under a timeout; then the same for
#      bench/gpu/cross_validate/llama8b_redknot.yaml (RedKnot's head split: one global head a
#      layer, seven keeping 4 sinks + a 512-token window);
#   5c. fp8 weights: bench/gpu/cross_validate/llama8b_fp8.yaml (Llama-3.1-8B with fp8
#      projections and LM head, bf16 KV, light and saturating load) simulated with the
#      calibration (its measured.fp8_gemm terms, which step 3 now also times) and 40
#      iterations per point replayed on the engine with fp8 weights, under a timeout (skipped
#      past 430 s; it runs before the MoE step, which it can push past that step's own 440 s);
#   6. MoE, a step of its own, every command under `timeout` so a crash or hang there
#      cannot spoil the dense results: the engine's MoE test (tiny model against a CPU
#      forward), then Qwen3-30B-A3B (bench/gpu/cross_validate/qwen3_30b_a3b.yaml, light
#      load) simulated and every iteration replayed (142 in 8 s on the H200,
#      bench/results/2026-12-03-h200-moe-calibrate; steps of up to
#      moe_grouped_max_tokens tokens in CUDA graphs, larger ones eagerly: gpu/engine/engine.h),
#      memcheck of the MoE test if time is left;
#   7. bench/gpu/collectives.py with world size 1 (this machine has one GPU): NCCL timings
#      and links.yaml, which says that nothing multi-GPU was measured; prints the summary last.
# Results in $OUT (or ./cross-validate-results), at most 8 files: summary.txt (the tables),
# accuracy_table.md (docs/sim-accuracy.md's table, by python/kvlab/accuracy_table.py),
# h200.yaml, calibration_raw.csv, tests.log, links.yaml (collectives.py's fits), runs.tar.gz
# (every point's results, iterations.csv, replay.csv, replay_summary.json, replay.png) and
# logs.tar.gz (build and sanitizer logs, collectives.csv). The dense steps were estimated at
# 5-6 minutes on an H200 (not yet measured whole); the MoE step and collectives.py then run
# under timeouts that end them by 500 s and 530 s from the start (budget()).
#   KVLAB_COMMIT=<sha> bash bench/gpu/cross_validate.sh [--quick]
# --quick (a first check, about 4 minutes): 40 evenly spaced iterations per point of the
# calibrated run only, memcheck last and only if time is left.
set -uo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
out=${OUT:-$PWD/cross-validate-results}
mkdir -p "$out"
commit=${KVLAB_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
quick=0
[ "${1:-}" = "--quick" ] && quick=1
log="$out/tests.log"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u; echo "commit $commit"; } >"$log" 2>&1
stamp() { echo "[$((SECONDS - start)) s] $*"; }
# Seconds a later step may take: at most $2, and only until $1 s after the start (the whole
# script must stay under 9 minutes); never below 5 (timeout 0 would mean no limit).
budget() { local left=$(( $1 - (SECONDS - start) )); [ "$left" -gt "$2" ] && left=$2; [ "$left" -lt 5 ] && left=5; echo "$left"; }

stamp "build"
# The flags of run_on_device.sh, so one machine can run both scripts on one build folder.
cmake --preset gpu -DKVLAB_PTXAS_VERBOSE=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON "-DCMAKE_CUDA_FLAGS=--split-compile=4" \
  >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
cmake --build build/gpu --target kvlab engine_test -- -j16 >>"$out/build.log" 2>&1 \
  || { grep -E "error" -A3 "$out/build.log" | head -60; tar -C "$out" -czf "$out/logs.tar.gz" build.log; exit 1; }
kvlab=build/gpu/experiments/kvlab

memcheck() {
  stamp "memcheck"
  compute-sanitizer --tool memcheck build/gpu/tests/gpu/engine_test \
    --gtest_filter='*bf16_gqa4_d128*:*int8_g32_gqa4_d128*:EngineForwardTest.*bf16_eager*:EnginePlanTest.*bf16_eager*:EnginePlanTest.*window_int8_eager*:*slices_full_and_sinks_window*' \
    >"$out/memcheck.log" 2>&1
  echo "memcheck exit code: $?" | tee -a "$log"
  grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/memcheck.log" | tee -a "$log"
}

stamp "engine tests"
build/gpu/tests/gpu/engine_test --gtest_filter='-EngineMoeTest.*' >>"$log" 2>&1
echo "engine_test exit code: $?" | tee -a "$log"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED  \]" "$log" | head -20
[ $quick = 0 ] && memcheck

stamp "calibrate"
$kvlab calibrate --gpu h200 --commit "$commit" --raw "$out/calibration_raw.csv" 2>>"$log" | tee "$out/calibration.txt"
cp configs/calibration/h200.yaml "$out/h200.yaml"

stamp "simulate and replay"
runs="$out/runs"
$kvlab run bench/gpu/cross_validate/llama8b.yaml --iteration-log --no-plots --out "$runs/calibrated" >"$out/sim.txt" 2>&1
if [ $quick = 1 ]; then
  echo "-- replay: calibrated, 40 iterations per point" | tee -a "$out/replay.txt"
  $kvlab replay "$runs/calibrated" --max-iterations 40 --warmup 1 --repeats 3 2>>"$log" | tee -a "$out/replay.txt"
else
  # The same experiment on the built-in defaults (the calibration file set aside).
  mv configs/calibration/h200.yaml "$out/h200.yaml.in-use"
  $kvlab run bench/gpu/cross_validate/llama8b.yaml --iteration-log --no-plots --out "$runs/uncalibrated" >>"$out/sim.txt" 2>&1
  mv "$out/h200.yaml.in-use" configs/calibration/h200.yaml
  echo "-- replay: calibrated, every iteration" | tee -a "$out/replay.txt"
  $kvlab replay "$runs/calibrated" --warmup 1 --repeats 3 2>>"$log" | tee -a "$out/replay.txt"
  echo "-- replay: uncalibrated (built-in defaults), 100 iterations per point" | tee -a "$out/replay.txt"
  $kvlab replay "$runs/uncalibrated" --max-iterations 100 --warmup 1 --repeats 3 2>>"$log" | tee -a "$out/replay.txt"
fi
plan_step() {  # $1: the workload file, $2: its run folder, $3: what it is, $4: its end (s from the start)
  stamp "technique plan: $3, simulated and replayed"
  timeout "$(budget $(($4 - 30)) 30)" $kvlab run "bench/gpu/cross_validate/$1" --iteration-log --no-plots \
    --out "$runs/$2" >>"$out/sim.txt" 2>&1 || { echo "plan simulation failed (exit $?)" | tee -a "$log"; return; }
  echo "-- replay: $3 (calibrated), every iteration" | tee -a "$out/replay.txt"
  timeout "$(budget "$4" 90)" $kvlab replay "$runs/$2" --warmup 1 --repeats 3 2>>"$log" \
    | tee -a "$out/replay.txt"
  echo "plan replay exit code: ${PIPESTATUS[0]}" | tee -a "$log"
}
plan_step llama8b_tangram.yaml tangram "Llama-3.1-8B, Tangram plan" 430
plan_step llama8b_redknot.yaml redknot "Llama-3.1-8B, RedKnot-shaped plan (sinks + window)" 460
fp8_step() {
  stamp "fp8 weights: Llama-3.1-8B simulated and replayed"
  if [ $((SECONDS - start)) -gt 430 ]; then echo "fp8 step skipped: $((SECONDS - start)) s gone" | tee -a "$log"; return; fi
  timeout "$(budget 465 20)" $kvlab run bench/gpu/cross_validate/llama8b_fp8.yaml --iteration-log --no-plots \
    --out "$runs/fp8" >>"$out/sim.txt" 2>&1 || { echo "fp8 simulation failed (exit $?)" | tee -a "$log"; return; }
  echo "-- replay: Llama-3.1-8B, fp8 weights (calibrated), 40 iterations per point" | tee -a "$out/replay.txt"
  timeout "$(budget 480 45)" $kvlab replay "$runs/fp8" --max-iterations 40 --warmup 1 --repeats 3 2>>"$log" \
    | tee -a "$out/replay.txt"
  echo "fp8 replay exit code: ${PIPESTATUS[0]}" | tee -a "$log"
}
fp8_step
moe_step() {
  stamp "MoE: engine test, then Qwen3-30B-A3B simulated and replayed"
  if [ $((SECONDS - start)) -gt 440 ]; then echo "MoE step skipped: $((SECONDS - start)) s gone" | tee -a "$log"; return; fi
  timeout "$(budget 470 60)" build/gpu/tests/gpu/engine_test --gtest_filter='EngineMoeTest.*' >"$out/moe_test.log" 2>&1
  echo "engine_test (MoE) exit code: $?" | tee -a "$log"
  grep -E "^\[ +(OK|FAILED|SKIPPED) |near ties|Failure" "$out/moe_test.log" | head -20 | tee -a "$log"
  cat "$out/moe_test.log" >>"$log" && rm -f "$out/moe_test.log"
  timeout "$(budget 480 30)" $kvlab run bench/gpu/cross_validate/qwen3_30b_a3b.yaml --iteration-log --no-plots --out "$runs/moe" \
    >>"$out/sim.txt" 2>&1 || { echo "MoE simulation failed (exit $?)" | tee -a "$log"; return; }
  echo "-- replay: Qwen3-30B-A3B (MoE), every iteration" | tee -a "$out/replay.txt"
  timeout "$(budget 500 150)" $kvlab replay "$runs/moe" --warmup 1 --repeats 3 2>>"$log" | tee -a "$out/replay.txt"
  echo "MoE replay exit code: ${PIPESTATUS[0]}" | tee -a "$log"
  if [ $((SECONDS - start)) -lt 420 ]; then
    stamp "memcheck (MoE)"
    timeout "$(budget 500 45)" compute-sanitizer --tool memcheck build/gpu/tests/gpu/engine_test --gtest_filter='EngineMoeTest.*' \
      >"$out/memcheck_moe.log" 2>&1
    echo "memcheck (MoE) exit code: $?" | tee -a "$log"
    grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/memcheck_moe.log" | tee -a "$log"
    cat "$out/memcheck_moe.log" >>"$out/memcheck.log" 2>/dev/null; rm -f "$out/memcheck_moe.log"
  fi
}
moe_step
stamp "collectives (world size 1)"
timeout "$(budget 530 60)" python3 bench/gpu/collectives.py --out "$out/collectives" --commit "$commit" --max-world 1 --quick --timeout 50 \
  >>"$log" 2>&1
echo "collectives.py exit code: $?" | tee -a "$log"
[ -f "$out/collectives/links.yaml" ] && mv "$out/collectives/links.yaml" "$out/links.yaml"
python3 python/kvlab/accuracy_table.py "$runs"/* >"$out/accuracy_table.md" 2>>"$log"
tar -C "$out" -czf "$out/runs.tar.gz" runs && rm -rf "$runs"
[ $quick = 1 ] && [ $((SECONDS - start)) -lt 240 ] && memcheck
{ echo "# cross-validation, commit $commit, $(date -u +%F), $((SECONDS - start)) s"; cat "$out/calibration.txt"; echo;
  cat "$out/sim.txt"; echo; cat "$out/replay.txt"; echo; cat "$out/accuracy_table.md"; } >"$out/summary.txt"
rm -f "$out/calibration.txt" "$out/replay.txt" "$out/sim.txt"
tar -C "$out" -czf "$out/logs.tar.gz" build.log $(cd "$out" && ls memcheck.log collectives 2>/dev/null) \
  && rm -rf "$out/build.log" "$out/memcheck.log" "$out/collectives"
echo
stamp "summary"
cat "$out/summary.txt"
