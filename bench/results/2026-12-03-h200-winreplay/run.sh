#!/usr/bin/env bash
# The one device call of the winreplay helper (2026-12-03): a Release build for sm_90a, the
# prefill kernel's tests (windows, sinks, multi-slice launches) and the engine's plan tests
# (window, sinks + window, prefix + window groups), compute-sanitizer memcheck of a windowed
# prefill case and a windowed plan step, then bench/gpu/cross_validate/llama8b_tangram.yaml
# and llama8b_redknot.yaml simulated with the committed calibration (configs/calibration/
# h200.yaml) and every iteration of each point replayed on the engine; the baseline
# llama8b.yaml bf16 light point last, if time is left (the same lease's reference for TTFT).
#   OUT=... KVLAB_COMMIT=<sha> bash bench/results/2026-12-03-h200-winreplay/run.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
out=${OUT:-$PWD/winreplay-results}
mkdir -p "$out/logs"
start=$SECONDS
t="$out/timeline.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u; echo "commit ${KVLAB_COMMIT:-unknown}"; } >"$t" 2>&1
mark() { echo "[$((SECONDS - start)) s] $*" | tee -a "$t"; }
left() { local l=$(( $1 - (SECONDS - start) )); [ "$l" -lt 5 ] && l=5; echo "$l"; }

cmake --preset gpu "-DCMAKE_CUDA_FLAGS=--split-compile=4" >"$out/logs/build.log" 2>&1
timeout "$(left 120)" cmake --build build/gpu --target kvlab engine_test -- -j16 >>"$out/logs/build.log" 2>&1
mark "build rc=$?"
kvlab=build/gpu/experiments/kvlab
if [ ! -x "$kvlab" ] || [ ! -x build/gpu/tests/gpu/engine_test ]; then
  grep -E "error" -A3 "$out/logs/build.log" | head -40 >>"$t"
  tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
  exit 1
fi

timeout "$(left 150)" build/gpu/tests/gpu/engine_test \
  --gtest_filter='*PrefillTest*:PrefillSupport.*:*EnginePlan*:Kv/EngineForwardTest.*bf16_eager*' >"$out/logs/tests.log" 2>&1
mark "engine_test (prefill, plan, one baseline forward) rc=$?"
grep -E "^\[ +(OK|FAILED|SKIPPED) |^\[  (PASSED|FAILED) |Failure|Expected|Which is|actual" "$out/logs/tests.log" | head -80 >"$out/tests_summary.txt"

timeout "$(left 175)" compute-sanitizer --tool memcheck build/gpu/tests/gpu/engine_test \
  --gtest_filter='*PrefillTest*slices_full_and_sinks_window*:*PrefillTest*bf16_window40*:Plan/EnginePlanTest.*window_int8_eager*' \
  >"$out/logs/memcheck.log" 2>&1
mark "memcheck (windowed prefill and plan step) rc=$?"
grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/logs/memcheck.log" >>"$out/tests_summary.txt"

runs="$out/runs"
for x in tangram redknot; do
  $kvlab run "bench/gpu/cross_validate/llama8b_$x.yaml" --iteration-log --no-plots --out "$runs/$x" >>"$out/sim.txt" 2>&1
  mark "simulate $x rc=$?"
done
# Saturating points first (fewer, larger iterations), then the light ones: every iteration.
for p in "$runs"/redknot/p001* "$runs"/tangram/p001* "$runs"/redknot/p000* "$runs"/tangram/p000*; do
  timeout "$(left 225)" $kvlab replay "$p" --warmup 1 --repeats 3 --no-plots >>"$out/replay.txt" 2>>"$out/logs/replay.err"
  mark "replay $(basename "$(dirname "$p")")/$(basename "$p") rc=$?"
done
if [ $((SECONDS - start)) -lt 205 ]; then
  $kvlab run bench/gpu/cross_validate/llama8b.yaml --iteration-log --no-plots --out "$runs/baseline" >>"$out/sim.txt" 2>&1
  timeout "$(left 228)" $kvlab replay "$runs"/baseline/p000* --warmup 1 --repeats 3 --no-plots >>"$out/replay.txt" 2>>"$out/logs/replay.err"
  mark "replay baseline bf16 light rc=$?"
  find "$runs/baseline" -mindepth 1 -maxdepth 1 -type d ! -name 'p000*' -exec rm -rf {} +
fi
python3 python/kvlab/accuracy_table.py "$runs"/* >"$out/accuracy_table.md" 2>>"$out/logs/replay.err"
find "$runs" -name timeline.csv -delete
tar -C "$out" -czf "$out/runs.tar.gz" runs && rm -rf "$runs"
tar -C "$out" -czf "$out/logs.tar.gz" logs && rm -rf "$out/logs"
mark "done"
