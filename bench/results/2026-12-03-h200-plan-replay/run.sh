#!/usr/bin/env bash
# The one device call of the planreplay helper (2026-12-03): a Release build for sm_90a, the
# engine's tests (plan path included) and memcheck of the plan tests, then
# bench/gpu/cross_validate/llama8b_tangram.yaml simulated (calibrated) and replayed on the
# engine, every iteration of each point, each under its own timeout. Results in $OUT.
#   OUT=... KVLAB_COMMIT=<sha> bash bench/results/2026-12-03-h200-plan-replay/run.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
out=${OUT:-$PWD/plan-replay-results}
mkdir -p "$out/logs"
start=$SECONDS
t="$out/timeline.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u; echo "commit ${KVLAB_COMMIT:-unknown}"; } >"$t" 2>&1
mark() { echo "[$((SECONDS - start)) s] $*" | tee -a "$t"; }
left() { local l=$(( $1 - (SECONDS - start) )); [ "$l" -lt 5 ] && l=5; echo "$l"; }

cmake --preset gpu "-DCMAKE_CUDA_FLAGS=--split-compile=4" >"$out/logs/build.log" 2>&1
timeout "$(left 250)" cmake --build build/gpu --target kvlab engine_test -- -j16 >>"$out/logs/build.log" 2>&1
mark "build rc=$?"
kvlab=build/gpu/experiments/kvlab
if [ ! -x "$kvlab" ] || [ ! -x build/gpu/tests/gpu/engine_test ]; then
  grep -E "error" -A3 "$out/logs/build.log" | head -40 >>"$t"
  tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
  exit 1
fi

timeout 60 build/gpu/tests/gpu/engine_test --gtest_filter='*EnginePlan*:*EngineForwardTest*:EngineTiming.*:*PrefillTest*:PrefillSupport.*' \
  >"$out/logs/tests.log" 2>&1
mark "engine_test (plan, forward, timing, prefill) rc=$?"
grep -E "^\[ +(OK|FAILED|SKIPPED) |^\[  (PASSED|FAILED) |Failure|Expected|Which is|actual" "$out/logs/tests.log" | head -60 >"$out/tests_summary.txt"

timeout 60 compute-sanitizer --tool memcheck build/gpu/tests/gpu/engine_test \
  --gtest_filter='Plan/EnginePlanTest.*bf16_eager*:Plan/EnginePlanTest.*bf16_int8_graphs*' >"$out/logs/memcheck.log" 2>&1
mark "memcheck (plan tests) rc=$?"
grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/logs/memcheck.log" >>"$out/tests_summary.txt"

runs="$out/runs"
$kvlab run bench/gpu/cross_validate/llama8b_tangram.yaml --iteration-log --no-plots --out "$runs/tangram" >"$out/sim.txt" 2>&1
mark "simulate rc=$?"
# Saturating point first (fewer, larger iterations), then the light one: every iteration.
for p in "$runs"/tangram/p001* "$runs"/tangram/p000*; do
  timeout "$(left 390)" $kvlab replay "$p" --warmup 1 --repeats 3 >>"$out/replay.txt" 2>>"$out/logs/replay.err"
  mark "replay $(basename "$p") rc=$?"
done
python3 python/kvlab/accuracy_table.py "$runs"/tangram >"$out/accuracy_table.md" 2>>"$out/logs/replay.err"
find "$runs" -name timeline.csv -delete
tar -C "$out" -czf "$out/runs.tar.gz" runs && rm -rf "$runs"
tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
mark "done"
