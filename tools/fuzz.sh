#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, the `fuzz` preset: clang, ASan + UBSan) and runs them.
#
#   tools/fuzz.sh --seconds 15          # the test suite's short run: 15 s per target
#   tools/fuzz.sh --minutes 60 --nice   # the release run: an hour per target, at nice 19
#   tools/fuzz.sh --regressions         # only replay tests/data/fuzz_regressions (seconds)
#   tools/fuzz.sh --targets "fuzz_trace fuzz_gguf" --seconds 60
#   tools/fuzz.sh --prebuilt DIR ...    # run binaries built elsewhere (the GPU machine has no
#                                       # clang: bench/gpu/fuzz_on_device.sh), no build here
# A run may be ended early from outside (bench/gpu/fuzz_around.sh): touch build/fuzz/stop-requested,
# then SIGINT the fuzzers; the run then counts as stopped, not failed, unless it found something.
# Several targets may run at once (one script per target, e.g. with --jobs 2): each keeps its
# files, per-job logs included, in its own folders.
#
# Seeds come from the repository (configs/, tests/, data/, fuzz/seeds/) plus every input
# under tests/data/fuzz_regressions/<target>/; the growing corpus lives in
# build/fuzz/corpus/<target>/ (kept between runs, never committed). A crash, timeout or
# out-of-memory input is written to build/fuzz/findings/<target>/ and the script fails.
# Counts (executions, corpus size, findings) go to the log, by default
# build/fuzz/fuzz-<UTC date>.log; docs/reliability.md cites the release run's log.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=15
regressions_only=0
use_nice=0
jobs=1
log=""
prebuilt=""
targets="fuzz_config fuzz_hf_config fuzz_workload fuzz_trace fuzz_gguf fuzz_tokenizer"
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --minutes) seconds=$(($2 * 60)); shift 2 ;;
    --regressions) regressions_only=1; shift ;;
    --nice) use_nice=1; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    --prebuilt) prebuilt="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

build=build/fuzz
mkdir -p "$build"
rm -f "$build/stop-requested"
[ -n "$log" ] || log="$build/fuzz-$(date -u +%Y%m%dT%H%M%SZ).log"
nice_cmd=()
((use_nice)) && nice_cmd=(nice -n 19)
# libFuzzer's -timeout counts wall-clock seconds per input. At nice 19 on a loaded machine an
# input that takes 1 s can wait 10 s for a core (a 20-minute run of 2026-12-03 stopped on such
# a false timeout; its input replays in 0.9 s), so a niced run allows 60 s.
unit_timeout=10
((use_nice)) && unit_timeout=60

# Configure once; ccache when present (tools/setup.sh installs it).
if [ -n "$prebuilt" ]; then
  [ -d "$prebuilt" ] || { echo "fuzz.sh: --prebuilt $prebuilt is not a folder" >&2; exit 2; }
else
  if [ ! -f "$build/build.ninja" ]; then
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake --preset fuzz "${launcher[@]}" >/dev/null
  fi
  "${nice_cmd[@]}" cmake --build "$build" --target fuzz_targets -- -j"$(nproc)" >/dev/null
fi

# The seed files of each target (copied into its corpus the first time and after a change).
seeds_of() {
  case "$1" in
    fuzz_config) find configs tests/golden tests/ref/model/experiments data/head_profiles -name '*.yaml'
                 find tests/data/hf -name config.json ;;
    fuzz_hf_config) find tests/data/hf -name config.json ;;
    fuzz_workload) find configs/workloads -name '*.yaml' ;;
    fuzz_trace) ;;  # written below: a format byte in front of each CSV
    fuzz_gguf) echo fuzz/seeds/tiny.gguf ;;
    fuzz_tokenizer) find docs -name '*.md' | head -3 ;;
  esac
}

# Trace seeds: byte 0 selects the format (bit 0: BurstGPT) and time_scale (bits 1–3).
write_trace_seeds() {
  local dir="$1"
  { printf '\x00'; head -50 data/traces/azure_llm_conv_2023_first2000.csv; } > "$dir/seed_azure.csv"
  { printf '\x03'; printf 'Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n7.5,GPT-4,1022,0,1022,API log\n'; } > "$dir/seed_burstgpt.csv"
}

max_len_of() {
  case "$1" in
    fuzz_gguf) echo 65536 ;;
    fuzz_tokenizer) echo 4096 ;;
    *) echo 16384 ;;
  esac
}

# CPU seconds used by this script's finished children, into cpu_s: bash's `times` (second
# line: user and system) run in this shell, since a $(...) subshell has no children. A niced
# run on a busy machine gets less CPU than its wall-clock seconds.
times_file="$build/times.$$"
cpu_now() {
  times >"$times_file"
  cpu_s=$(tail -1 "$times_file" | awk '{ s = 0; for (i = 1; i <= NF; i++) { split($i, p, "m"); sub("s", "", p[2]); s += p[1] * 60 + p[2] } printf "%.0f", s }')
}

status=0
echo "fuzz run $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), ${seconds} s per target" | tee -a "$log"
for t in $targets; do
  corpus="$build/corpus/$t"
  findings="$build/findings/$t"
  regressions="tests/data/fuzz_regressions/$t"
  mkdir -p "$corpus" "$findings"
  rm -f "$findings"/crash-* "$findings"/timeout-* "$findings"/oom-* "$findings"/leak-*  # this run's only
  while read -r f; do
    [ -n "$f" ] && cp -f "$f" "$corpus/seed_$(echo "$f" | tr '/' '_')"
  done < <(seeds_of "$t")
  [ "$t" = fuzz_trace ] && write_trace_seeds "$corpus"
  exe="$build/fuzz/$t"
  [ -n "$prebuilt" ] && exe="$prebuilt/$t"
  exe=$(realpath "$exe")
  if ((regressions_only)); then
    if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
      if ! "$exe" -runs=0 "$regressions"/* >"$findings/replay.txt" 2>&1; then
        echo "$t: a regression input fails again (see $findings/replay.txt)" | tee -a "$log"
        status=1
      else
        echo "$t: $(ls "$regressions" | wc -l) regression input(s) pass" | tee -a "$log"
      fi
    fi
    continue
  fi
  dirs=("$(realpath "$corpus")")
  [ -d "$regressions" ] && dirs+=("$(realpath "$regressions")")
  out="$findings/run.txt"
  set +e
  parallel=()  # -jobs runs children that log to ./fuzz-N.log (here: the target's findings folder)
  ((jobs > 1)) && parallel=(-jobs="$jobs" -workers="$jobs")
  t0=$SECONDS
  cpu_now
  cpu0=$cpu_s
  (cd "$findings" && "${nice_cmd[@]}" "$exe" "${dirs[@]}" -max_total_time="$seconds" -timeout="$unit_timeout" \
    -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" "${parallel[@]}" -print_final_stats=1 -artifact_prefix=./) \
    >"$out" 2>&1
  code=$?
  set -e
  # Executions: the last count each process printed (a crash prints its stats twice), summed
  # over the per-job logs when -jobs > 1.
  if ((jobs > 1)); then
    runs=$(for f in "$findings"/fuzz-*.log; do grep -h 'stat::number_of_executed_units' "$f" | tail -1; done | awk '{s += $2} END {print s + 0}')
  else
    runs=$(grep -h 'stat::number_of_executed_units' "$out" | tail -1 | awk '{print $2 + 0}')
  fi
  found=$(find "$findings" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  size=$(ls "$corpus" | wc -l)
  cpu_now
  cpu=$((cpu_s - cpu0))
  stopped=""
  if ((code != 0 && found == 0)) && [ -f "$build/stop-requested" ]; then
    stopped=" (stopped on request)"
    code=0
  fi
  # The seconds it ran: a finding stops a target before -max_total_time.
  echo "$t: $((SECONDS - t0)) s of ${seconds}${stopped}, ${cpu} CPU-s, ${runs} executions, corpus ${size} inputs, findings ${found}, exit ${code}" | tee -a "$log"
  rm -f "$findings"/fuzz-*.log  # per-job logs of -jobs > 1, summed above
  if ((code != 0 || found > 0)); then
    status=1
    tail -40 "$out" | tee -a "$log"
  fi
done
rm -f "$times_file"
echo "log: $log"
exit $status
