#!/usr/bin/env bash
# fp8 weights on the GPU machine, one command (about 4 minutes on an H200):
#   1. builds kvlab and engine_test (gpu preset, -j16);
#   2. the fp8 tests (engine_fp8_test.cc: quantization and the fp8 GEMM against host
#      arithmetic; EngineForwardTest: whole steps with fp8 weights against the CPU forward,
#      and its bf16 cases beside them), then compute-sanitizer memcheck on the fp8 subset;
#   3. `kvlab calibrate --gpu h200 --fp8-gemm-only`: times the fp8 GEMMs of Llama-3.1-8B's
#      five weight shapes and merges measured.fp8_gemm into configs/calibration/h200.yaml
#      (the other terms kept as measured before);
#   4. simulates bench/gpu/cross_validate/llama8b_fp8.yaml (light and saturating load) with
#      --iteration-log and replays every iteration on the engine with fp8 weights;
#   5. the same experiment simulated without the fp8 terms (the file as it was) and 40
#      iterations per point replayed, if time is left: what the terms change.
# Results in $OUT: tests.log, memcheck.log, h200.yaml, fp8_gemm_raw.csv, summary.txt,
# accuracy_table.md, runs.tar.gz (point folders, build log, gtest XML).
#   KVLAB_COMMIT=<sha> bash bench/gpu/fp8_on_device.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
out=${OUT:-$PWD/fp8-results}
mkdir -p "$out/runs"
commit=${KVLAB_COMMIT:-unknown}
log="$out/tests.log"
summary="$out/summary.txt"
stamp() { echo "[$((SECONDS - start)) s] $*" | tee -a "$summary"; }
left() { local l=$(( $1 - (SECONDS - start) )); [ "$l" -lt 5 ] && l=5; echo "$l"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u; echo "commit $commit"; } >"$log" 2>&1

stamp "build"
cmake --preset gpu >"$out/runs/build.log" 2>&1 || { tail -30 "$out/runs/build.log"; exit 1; }
cmake --build build/gpu --target kvlab engine_test -- -j16 >>"$out/runs/build.log" 2>&1 \
  || { grep -E "error" -A3 "$out/runs/build.log" | head -60 | tee -a "$summary"; tar -C "$out" -czf "$out/runs.tar.gz" runs; exit 1; }
kvlab=build/gpu/experiments/kvlab

stamp "tests"
timeout "$(left 150 60)" build/gpu/tests/gpu/engine_test --gtest_filter='EngineFp8*:*EngineForwardTest.*' \
  --gtest_output=xml:"$out/runs/engine_test.xml" >>"$log" 2>&1
echo "engine_test exit code: $?" | tee -a "$summary"
grep -E "^\[ +(OK|FAILED|SKIPPED) " "$log" | tee -a "$summary"
grep -E 'testcase name=".*fp8_weights|relative_error' "$out/runs/engine_test.xml" >>"$summary" 2>/dev/null

stamp "memcheck"
timeout "$(left 110 45)" compute-sanitizer --tool memcheck build/gpu/tests/gpu/engine_test \
  --gtest_filter='EngineFp8Quantize.*:EngineFp8Gemm.*:*EngineForwardTest.*fp8_weights_eager*' >"$out/memcheck.log" 2>&1
echo "memcheck exit code: $?" | tee -a "$summary"
grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/memcheck.log" | tee -a "$summary"

stamp "calibrate (fp8 GEMMs only)"
cp configs/calibration/h200.yaml "$out/runs/h200.before.yaml"
timeout "$(left 150 40)" $kvlab calibrate --gpu h200 --fp8-gemm-only --commit "$commit" --raw "$out/fp8_gemm_raw.csv" \
  2>>"$log" | tee -a "$summary"
cp configs/calibration/h200.yaml "$out/h200.yaml"

stamp "simulate and replay (fp8 terms)"
runs="$out/runs"
$kvlab run bench/gpu/cross_validate/llama8b_fp8.yaml --iteration-log --no-plots --out "$runs/fp8" >>"$summary" 2>&1
timeout "$(left 205 60)" $kvlab replay "$runs/fp8" --warmup 1 --repeats 3 2>>"$log" | tee -a "$summary"
echo "replay exit code: ${PIPESTATUS[0]}" | tee -a "$summary"

if [ $((SECONDS - start)) -lt 195 ]; then
  stamp "without the fp8 terms: simulate, replay 40 iterations per point"
  cp "$out/runs/h200.before.yaml" configs/calibration/h200.yaml
  $kvlab run bench/gpu/cross_validate/llama8b_fp8.yaml --iteration-log --no-plots --out "$runs/fp8_bf16_terms" >>"$summary" 2>&1
  timeout "$(left 228 30)" $kvlab replay "$runs/fp8_bf16_terms" --max-iterations 40 --warmup 1 --repeats 3 2>>"$log" \
    | tee -a "$summary"
  cp "$out/h200.yaml" configs/calibration/h200.yaml
fi
python3 python/kvlab/accuracy_table.py "$runs"/fp8* >"$out/accuracy_table.md" 2>>"$log"
tar -C "$out" -czf "$out/runs.tar.gz" runs && rm -rf "$out/runs"
stamp "done"
