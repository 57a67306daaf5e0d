#!/usr/bin/env bash
# The libFuzzer targets on the GPU machine's spare CPU cores, all six at once, while a GPU
# script runs beside them at normal priority. That machine has no clang, so the binaries come
# from this one (the `fuzz` preset, debug info stripped) with the corpus grown so far:
#   here:   tools/fuzz.sh --seconds 1 && mkdir -p .gpu_stage/fuzz &&
#           (cd build/fuzz/fuzz && for f in fuzz_*; do [ -f "$f" ] && strip --strip-debug -o /tmp/$f $f; done) &&
#           cp -L /usr/lib/x86_64-linux-gnu/libyaml-cpp.so.0.7 /tmp/ &&   # Ubuntu 24.04 has 0.8 only
#           tar -C /tmp -cJf .gpu_stage/fuzz/bins.tar.xz fuzz_config fuzz_hf_config fuzz_workload fuzz_trace fuzz_gguf fuzz_tokenizer libyaml-cpp.so.0.7 &&
#           tar -C build/fuzz -cJf .gpu_stage/fuzz/corpus.tar.xz corpus
#   there:  bash bench/gpu/fuzz_on_device.sh .gpu_stage/fuzz SECONDS WORKERS_PER_TARGET OUT_TAR [TARGETS] &
#           or, for exactly as long as a GPU command runs: bash bench/gpu/fuzz_around.sh TAG -- CMD
# Each target runs under tools/fuzz.sh --prebuilt --nice --jobs WORKERS_PER_TARGET; OUT_TAR
# gets fuzz.log (one line per target, as fuzz/runs.log keeps them), every finding and the
# grown corpus.
set -uo pipefail
cd "$(dirname "$0")/../.."
stage=$1 seconds=$2 workers=$3 out_tar=$4
targets=${5:-fuzz_config fuzz_hf_config fuzz_workload fuzz_trace fuzz_gguf fuzz_tokenizer}
mkdir -p build/fuzz/bin
tar -xJf "$stage/bins.tar.xz" -C build/fuzz/bin && tar -xJf "$stage/corpus.tar.xz" -C build/fuzz || exit 1
# Debian's libraries the binaries link that the GPU image lacks travel beside them.
export LD_LIBRARY_PATH="$PWD/build/fuzz/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log=build/fuzz/fuzz-device.log
{ echo "# on $(nproc) cores of $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)'s host, beside a GPU run";
  ldd build/fuzz/bin/fuzz_config | grep -c "not found" | sed 's/^/missing libraries: /'; } >"$log"
for t in $targets; do
  tools/fuzz.sh --prebuilt build/fuzz/bin --targets "$t" --seconds "$seconds" --jobs "$workers" --nice --log "$log" \
    >/dev/null 2>&1 &
done
wait
tar -C build/fuzz -czf "$out_tar" fuzz-device.log findings corpus
