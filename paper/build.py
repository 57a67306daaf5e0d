#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Builds paper/paper.md from committed results only: paper/claims.json (written by
`kvlab claims --all --paper`), paper/study/study.csv (written by paper/study.py) and the
committed calibration (configs/calibration/) and GPU results (bench/results/). With pandoc on
PATH it also writes paper/paper.html, and with WeasyPrint paper/paper.pdf (both from Debian:
`tools/setup.sh --paper` installs them). `--pdf` makes the PDF required: without the tools it
stops with what to install instead of skipping it.

    tools/setup.sh --paper && python3 paper/build.py --pdf
"""
import argparse
import csv
import json
import pathlib
import re
import shutil
import subprocess
import sys
from collections import Counter

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAPER = ROOT / "paper"


def load_claims():
    path = PAPER / "claims.json"
    if not path.exists():
        sys.exit("paper/build.py: paper/claims.json is missing: run `kvlab claims --all --paper` first")
    return json.loads(path.read_text())


def fmt_value(v, unit):
    return "—" if v is None else f"{v:.4g}{unit}"


def unit_of(claimed):
    m = re.search(r"(×|%| sequences)", claimed)
    return m.group(1) if m else ""


def ledger_section(ledger):
    rows = ledger["claims"]
    tally = Counter(r["verdict"] for r in rows)
    out = [f"`{ledger['command']}` measured {len(rows)} claims: "
           + ", ".join(f"{n} {v}" for v, n in sorted(tally.items())) + ". "
           "Every number below is kvlab's; every verdict is computed from it by the claim's rule "
           "(docs/claims.md); paper/claims.md has the words, sources, quantities and links to each "
           "run folder.", "",
           "| claim | source | claimed | kvlab | verdict |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        detail = r["detail"].replace("|", "\\|")
        out.append(f"| {r['id']} | {r['document']} | {r['claimed']} | {fmt_value(r['value'], unit_of(r['claimed']))} "
                   f"| **{r['verdict']}**: {detail} |")
    return "\n".join(out)


def study_section():
    path = PAPER / "study" / "study.csv"
    if not path.exists():
        return "Not run yet: `python3 paper/study.py` writes paper/study/study.csv."
    with open(path) as f:
        rows = list(csv.DictReader(f))
    ran = [r for r in rows if r["status"] == "ran"]
    refused = Counter(f"{r['status']}: " + r["reason"].split("error: ", 1)[-1] for r in rows if r["status"] != "ran")
    out = [f"{len(rows)} points (3 MoE models × 7 technique settings × 3 contexts × 1, 8, 64 H200s, fp8 "
           f"weights, a closed loop of 16 users per replica, 1024-token answers): {len(ran)} ran; the rest "
           "were refused by kvlab, or ran with every request rejected; kvlab says why:", ""]
    for reason, n in refused.most_common():
        out.append(f"- {n} points: `{reason}`")
    out += ["", "Points that ran (output tokens/s; where an iteration's time goes, mean seconds per iteration "
            "of the timeline: weights, KV, compute, communication):", "",
            "| model | technique | context | GPUs | tokens/s | max concurrency | TTFT p50 (s) | TPOT p50 (ms) | weights / KV / compute / comm (ms) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in ran:
        split = " / ".join(f"{1e3 * float(r[k]):.2f}" for k in ("weights_s", "kv_s", "compute_s", "communication_s"))
        out.append(f"| {r['model']} | {r['technique']} | {r['context']} | {r['gpus']} | "
                   f"{float(r['throughput_output_tokens_per_s']):.0f} | {r['max_concurrency']} | {r['ttft_p50_s']} | "
                   f"{1e3 * float(r['tpot_p50_s']):.2f} | {split} |")
    return "\n".join(out)


def calibration_section():
    lines = []
    for path in sorted((ROOT / "configs" / "calibration").glob("*.yaml")):
        text = path.read_text()
        keys = re.findall(r"^([a-z_]+):[^#\n]*#(.*)$", text, re.M)
        not_measured = sorted({k for k, note in keys if "not measured" in note or "not yet measured" in note})
        measured = sorted({k for k, note in keys if k not in not_measured and re.search(r"measured|fitted", note)})
        has_section = re.search(r"^measured:", text, re.M) is not None
        lines.append(f"- {path.stem} (configs/calibration/{path.name}): measured or fitted "
                     f"{', '.join(measured) or 'nothing'}"
                     + ("; plus its `measured:` section (per-format attention, GEMM and per-layer terms)"
                        if has_section else "")
                     + (f"; not measured: {', '.join(not_measured)}" if not_measured else "") + ".")
    results = sorted(p.name for p in (ROOT / "bench" / "results").iterdir() if p.is_dir())
    lines.append(f"- GPU results committed under bench/results/: {', '.join(results) or 'none'} (decode-kernel "
                 "benchmarks against peers, docs/gpu-decode.md; cross-validation, docs/sim-accuracy.md).")
    tables = sorted((ROOT / "bench" / "results").glob("*cross-validate*/accuracy_table.md"))
    if tables:
        table = tables[-1]
        lines.append(f"- The simulator's error against the GPU engine (each logged iteration replayed on the GPU, "
                     f"docs/sim-accuracy.md), from {table.relative_to(ROOT)} (python/kvlab/accuracy_table.py; "
                     "targets: median |error| ≤ 5%, p90 ≤ 10% per iteration, ≤ 5% on throughput and the TTFT/TPOT "
                     "medians). It is measured against kvlab's own engine, not vLLM; simulated throughputs of "
                     "other models, GPUs and techniques in the ledger carry an error not measured here.\n")
        lines.append(table.read_text().strip())
    else:
        lines.append("- The simulator's error against measured serving is **not measured yet** "
                     "(bench/gpu/cross_validate.sh writes it).")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="Builds paper/paper.md (and .html/.pdf) from committed results.")
    parser.add_argument("--pdf", action="store_true", help="require paper.pdf (pandoc + weasyprint)")
    parser.add_argument("--out", type=pathlib.Path, default=PAPER, help="folder to write into (default: paper/)")
    args = parser.parse_args()
    ledger = load_claims()
    md = f"""# What the 2026 KV-cache claims survive: a ledger computed by kvlab

*Built by `python3 paper/build.py` from committed results; do not edit.*

## The question

A widely shared blog post (the seed, 2026) says three papers — Tangram, RedKnot, Vortex — and
a community KV-quantisation benchmark change LLM serving: 3 → 17 concurrent 128k users per
A100, 12 concurrent 1M-token users per B200, 5.5× and "7–9×" throughput. Some of its numbers
are the papers'; several are not (shared/papers.md). We ask of each number: what does it
assert, under which conditions does it hold, and which of those conditions can be computed
today?

## Method: one KV plan, three executors

kvlab describes a serving configuration by one intermediate representation, the KV plan (per
layer and per KV head: retention, precision, paging, placement, access), and answers it three
ways: core/ computes its bytes exactly (page rounding and quantisation metadata included);
sim/ simulates serving it (a discrete-event simulator with a calibrated roofline); ref/
executes it numerically on a real model (SmolLM2-135M on the CPU) to measure its accuracy;
gpu/ runs its decode kernels on an H200. Each claim is a file (configs/claims/) that fixes one
reading of its words as a quantity, names the kvlab measurements that compute it, the
tolerance its wording allows, and other readings to explore when the literal one fails;
`kvlab claims` computes the verdicts: **holds**, **holds only if** (the readings that make it
hold), **refuted** (by how much), **not computable yet** (the capability a measurement waits
for, as kvlab's own diagnostic states it).

## Calibration

{calibration_section()}

## The ledger

{ledger_section(ledger)}

## The untested combinations

The blog ends: "No one has tested this combination with MoE models yet … No one has measured
performance beyond 8 GPU clusters. No one has run the full stack". The study
(paper/study.py) sweeps MoE models × techniques × context × cluster size through `kvlab run`.

{study_section()}

What the points that ran assume: experts are replicated on every GPU of a tensor-parallel
group and split by tensor parallelism (kvlab does not model expert parallelism yet, so
DeepSeek-V3's 671B weights must fit in 8 H200s' fp8 memory per replica); 64 GPUs are 8
data-parallel replicas of 8 behind a round-robin router, with no traffic between them; the
roofline's efficiencies are the H100's measured ones where no H200 file exists.

## Limits

- Capacity rows are exact arithmetic over published configs; they say nothing about speed.
- Throughput rows are simulated and carry the simulator's unmeasured end-to-end error.
- Accuracy claims ("no user will notice", "<0.1% on all benchmarks") are out of reach: kvlab
  runs a 135M model on one text; its head census (SmolLM2-135M) is not the 7B–229B models
  the blog describes, which each such row says.
- Rows marked not computable yet wait for the KV plan in the simulator, the technique passes,
  new KV formats (KVarN, K≠V precisions) or a per-head profile of Qwen2.5-7B-Instruct-1M; they
  compute without edits once kvlab accepts their measurements.
"""
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper.md").write_text(md)
    written = [str(out / "paper.md")]
    pandoc = shutil.which("pandoc")
    weasyprint = shutil.which("weasyprint")
    if args.pdf and not (pandoc and weasyprint):
        sys.exit("paper/build.py: --pdf needs pandoc and weasyprint on PATH (Debian packages): "
                 "run tools/setup.sh --paper. " f"{out / 'paper.md'} was written.")
    # The title comes from the document's first heading; paper.css sets the page and table style
    # that both the HTML and the PDF use (WeasyPrint prints the HTML).
    style = ["-s", "--metadata", "pagetitle=kvlab: the 2026 KV-cache claims", "--css", str(PAPER / "paper.css")]
    if pandoc:
        subprocess.run([pandoc, "paper.md", "-o", "paper.html", "--self-contained", *style], cwd=out, check=True)
        written.append(str(out / "paper.html"))
        if weasyprint:
            subprocess.run([pandoc, "paper.md", "-o", "paper.pdf", "--pdf-engine=weasyprint", *style],
                           cwd=out, check=True)
            written.append(str(out / "paper.pdf"))
    print("written: " + ", ".join(written))


if __name__ == "__main__":
    main()
