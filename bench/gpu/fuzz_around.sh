#!/usr/bin/env bash
# Runs a command on the GPU machine with the libFuzzer targets on the host's spare CPU cores
# beside it, at nice 19, for exactly as long as the command runs: the fuzzers start first,
# are stopped (SIGINT: each prints its final counts) when the command ends, and their log,
# findings and grown corpus go to $OUT/fuzz-<tag>.tgz. Exits with the command's status.
#   bash bench/gpu/fuzz_around.sh <tag> -- <command> [args...]
# Needs .gpu_stage/fuzz (bins.tar.xz, corpus.tar.xz: see bench/gpu/fuzz_on_device.sh) in
# the call's carry; without it the command runs alone and the archive is not written.
# Workers per target: every core shared by the six targets, rounded up (16 cores: 3 each). At
# nice 19 they take what the command leaves: a -j16 build beside them slows by a few percent
# (CFS weights 15 against 1024), and tools/fuzz.sh reports the CPU seconds they really got.
set -uo pipefail
cd "$(dirname "$0")/../.."
tag=$1
shift
[ "${1:-}" = "--" ] && shift
out=${OUT:-$PWD}
stage=.gpu_stage/fuzz
fuzz_pid=""
if [ -f "$stage/bins.tar.xz" ] && [ -f "$stage/corpus.tar.xz" ]; then
  workers=$(( ($(nproc) + 5) / 6 ))
  ((workers < 1)) && workers=1
  rm -f build/fuzz/stop-requested
  # An hour as the limit: the stop below ends it; the limit only guards against a lost stop.
  bash bench/gpu/fuzz_on_device.sh "$stage" 3600 "$workers" "$out/fuzz-$tag.tgz" >/dev/null 2>&1 &
  fuzz_pid=$!
else
  echo "fuzz_around.sh: no $stage/bins.tar.xz or corpus.tar.xz: running the command without fuzzers" >&2
fi
"$@"
rc=$?
if [ -n "$fuzz_pid" ]; then
  mkdir -p build/fuzz && touch build/fuzz/stop-requested
  pkill -INT -x 'fuzz_(config|hf_config|workload|trace|gguf|tokenizer)'
  wait "$fuzz_pid"
fi
exit $rc
