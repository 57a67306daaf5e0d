#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The accuracy table of docs/sim-accuracy.md, computed from `kvlab replay` results, never
written by hand: one row per replayed point with each target's measured value and whether
it is met, and by how much it is missed.

Targets (issue 11): per iteration, median |error| <= 5% and p90 |error| <= 10%; per run,
|error| <= 5% on output throughput and on the TTFT and TPOT medians (re-timed runs only:
a sampled replay has no request-level numbers). error = predicted / measured - 1.

Usage: accuracy_table.py RUN_DIR [RUN_DIR ...] (folders holding point folders with
replay_summary.json). Prints Markdown. Exit codes: 0 printed, 1 nothing found, 2 usage.
"""
import json
import pathlib
import sys

PER_ITERATION = [("median_abs_error", 0.05, "median abs. error"), ("p90_abs_error", 0.10, "p90 abs. error")]
PER_RUN = [
    ("throughput_output_tokens_per_s", "throughput"),
    ("ttft_p50_s", "TTFT p50"),
    ("tpot_p50_s", "TPOT p50"),
]
RUN_TARGET = 0.05


def verdict(value, target, signed=False):
    """'4.1% met' or '7.9% missed by 2.9 points' (value a fraction)."""
    shown = f"{100 * value:+.1f}%" if signed else f"{100 * value:.1f}%"
    if abs(value) <= target:
        return f"{shown} met"
    return f"{shown} missed by {100 * (abs(value) - target):.1f} points"


def rows(run_dirs):
    for run in run_dirs:
        for summary_path in sorted(pathlib.Path(run).glob("*/replay_summary.json")):
            s = json.loads(summary_path.read_text())
            per = s["per_iteration"]
            cells = [f"{pathlib.Path(run).name}/{s['point']}", s["kv_cache_dtype"], str(s["iterations_replayed"])]
            cells += [verdict(per["all"][key], target) for key, target, _ in PER_ITERATION]
            for mix in ("decode-only", "prefill-only", "mixed"):
                stats = per[mix]
                cells.append(f"{100 * stats['median_abs_error']:.1f}% ({stats['count']})" if stats["count"] else "—")
            requests = s.get("requests")
            if isinstance(requests, dict):
                cells += [verdict(requests[key]["error"], RUN_TARGET, signed=True) for key, _ in PER_RUN]
                e2e = requests.get("e2e_normalized_p95_s")
                cells.append(f"{100 * e2e['error']:+.1f}%" if e2e else "—")
            else:
                cells += ["not computed (sampled)"] * len(PER_RUN) + ["—"]
            cells.append(s.get("calibration", ""))
            yield cells


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    header = ["point", "KV", "iterations"] + [name for _, _, name in PER_ITERATION]
    header += ["decode-only med", "prefill-only med", "mixed med"] + [name for _, name in PER_RUN]
    header += ["E2E p95/token", "calibration used by the simulator"]
    found = list(rows(argv[1:]))
    if not found:
        print("no replay_summary.json under " + " ".join(argv[1:]), file=sys.stderr)
        return 1
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for cells in found:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
