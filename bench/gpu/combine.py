#!/usr/bin/env python3
"""Turns one GPU run's CSVs (bench/gpu/run_on_device.sh) into markdown tables, each with the
issue's target and whether the run met it, computed from the rows (never typed by hand).

    combine.py RESULTS_DIR                      # all tables, to stdout
    combine.py RESULTS_DIR --summary            # the compact verdict table only
    combine.py RESULTS_DIR --fill-doc DOC.md    # replace DOC's generated section with the tables

Reads whichever of bench_peers.csv, bench_kvlab.csv, bench_plan.csv, bench_sparse.csv,
bench_mla.csv, bench_tree.csv the run left (a missing or empty file: "not run"). "≥ 256 MB"
is of the dense bf16 KV of the shape (batch × context × the 8B layout's 128 KiB a token and
layer / 32 layers), so quantized formats are judged at the same shapes as bf16.
"""
import csv
import math
import os
import sys

BEGIN = "<!-- combine.py:begin (generated from the CSVs of one run; do not edit by hand) -->"
END = "<!-- combine.py:end -->"
MB = 1e6
FLOORS = {"int6": 1.3, "int5": 1.3, "int4": 1.25, "int4_g32": 1.25, "int8": 1.25, "int8_g32": 1.25, "fp8": 1.25}


def read(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [r for r in csv.DictReader(f)]
    return [r for r in rows if r and all(v is not None for v in r.values())]


def num(row, key):
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return math.nan


def dense_bf16_bytes(batch, context):
    return batch * context * 2 * 8 * 128 * 2  # K and V, 8 KV heads, head_dim 128, bf16


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def verdict(values, ok):
    """'met' / 'missed' over the values that count, or 'not run'."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "not run"
    return "met" if all(ok(v) for v in values) else "missed"


def peers_section(d, summary):
    rows = read(d, "bench_peers.csv")
    if not rows:
        summary.append(("bf16 against the peers, FlashInfer among them", "not run", "—"))
        return "### bf16 against the peers (peers.py)\n\nnot run\n"
    by = {}
    for r in rows:
        by.setdefault((r["model"], int(r["batch"]), int(r["context"])), {})[r["impl"]] = r
    names = ("sdpa_cudnn", "sdpa_flash", "flex_compiled", "flex_paged", "flashinfer_paged", "flashinfer_paged_contiguous",
             "flashinfer_paged_tensor_cores")
    out, fractions, vs_peer, vs_fi = [], [], [], []
    for (model, batch, context), impls in by.items():
        ours = impls.get("kvlab_paged")
        if ours is None:
            continue
        tb = num(ours, "tb_per_s")
        peer = {n: num(impls[n], "tb_per_s") for n in names if n in impls}
        best = max(peer.values()) if peer else math.nan
        big = dense_bf16_bytes(batch, context) >= 256 * MB
        if big:
            fractions.append(num(ours, "fraction_of_copy_ceiling"))
            vs_peer.append(tb / best)
            fi = [peer[n] for n in ("flashinfer_paged", "flashinfer_paged_contiguous", "flashinfer_paged_tensor_cores") if n in peer]
            if fi:
                vs_fi.append(tb / max(fi))  # FlashInfer in its faster layout
        cell = lambda n: f"{peer[n]:.2f}" if n in peer else "—"  # noqa: E731
        fi_err = f"{num(impls['flashinfer_paged'], 'rel_err_vs_cudnn'):.1e}" if "flashinfer_paged" in impls else "—"
        out.append([model, f"{batch} × {context}", f"{num(ours, 'kv_bytes') / MB:.0f}", f"{num(ours, 'median_us'):.1f}",
                    f"{num(ours, 'fraction_of_copy_ceiling'):.2f}", f"{num(ours, 'rel_err_vs_cudnn'):.1e}"]
                   + [cell(n) for n in names] + [fi_err, f"{tb / best:.2f}"])
    summary.append(("bf16 ≥ 0.90 of the copy ceiling (≥ 256 MB)", verdict(fractions, lambda v: v >= 0.90),
                    f"{min(fractions):.2f}–{max(fractions):.2f}" if fractions else "—"))
    summary.append(("bf16 at or above the best peer (≥ 256 MB)", verdict(vs_peer, lambda v: v >= 1.0),
                    f"{min(vs_peer):.2f}–{max(vs_peer):.2f}" if vs_peer else "—"))
    summary.append(("FlashInfer paged decode run as a peer", "met" if vs_fi else "not run",
                    f"kvlab / FlashInfer (its fastest variant) {min(vs_fi):.2f}–{max(vs_fi):.2f}" if vs_fi else "—"))
    ceiling = num(rows[0], "copy_ceiling_tb_per_s")
    return (f"### bf16 against the peers (peers.py; copy ceiling {ceiling:.3f} TB/s, same process)\n\n"
            + table(["model", "batch × context", "KV MB", "kvlab µs", "of ceiling", "rel. err", "cuDNN TB/s",
                     "flash TB/s", "Flex TB/s", "Flex paged TB/s", "FlashInfer paged TB/s",
                     "FlashInfer contiguous TB/s", "FlashInfer tensor cores TB/s", "FlashInfer rel. err",
                     "kvlab / best peer"], out) + "\n")


def formats_section(d, summary):
    rows = read(d, "bench_kvlab.csv")
    if not rows:
        summary.append(("int6/int5 ≤ 1.3×, int4/int8/fp8 ≤ 1.25× their byte floor", "not run", "—"))
        return "### every KV format (decode_bench)\n\nnot run\n"
    out, per_format = [], {}
    for r in rows:
        frac = num(r, "fraction_of_copy_ceiling")
        over = 1 / frac if frac > 0 else math.nan
        batch, context = int(r["batch"]), int(r["context"])
        if dense_bf16_bytes(batch, context) >= 256 * MB:
            per_format.setdefault(r["format"], []).append(over)
        out.append([r["model"], r["format"], f"{batch} × {context}", f"{num(r, 'kv_bytes') / MB:.0f}",
                    f"{num(r, 'median_us'):.1f}", f"{frac:.2f}", f"{over:.2f}", r.get("num_splits", "")])
    for fmt, overs in per_format.items():
        base = fmt.split("_")[0]
        limit = FLOORS.get(fmt, FLOORS.get(base))
        if limit is None:
            continue
        summary.append((f"{fmt} ≤ {limit}× its byte floor (≥ 256 MB)", verdict(overs, lambda v, lim=limit: v <= lim),
                        f"{min(overs):.2f}–{max(overs):.2f}×"))
    ceiling = num(rows[0], "copy_ceiling_tb_per_s")
    return (f"### every KV format (decode_bench; copy ceiling {ceiling:.3f} TB/s; time over byte floor = "
            f"1 / fraction)\n\n"
            + table(["model", "format", "batch × context", "KV MB", "µs", "of ceiling", "time / byte floor", "splits"],
                    out) + "\n")


def plan_section(d, summary):
    rows = read(d, "bench_plan.csv")
    if not rows:
        summary.append(("plan keeping 25% of the bytes ≤ 0.30 of dense time (≥ 256 MB)", "not run", "—"))
        return "### KV plan launcher (plan_bench)\n\nnot run\n"
    out, ratios = [], []
    for r in rows:
        ratio = num(r, "time_ratio")
        if num(r, "dense_kv_bytes") >= 256 * MB:
            ratios.append(ratio)
        out.append([f"{r['batch']} × {r['context']}", f"{num(r, 'dense_kv_bytes') / MB:.0f}", f"{num(r, 'bytes_ratio'):.3f}",
                    f"{num(r, 'dense_us'):.1f}", f"{num(r, 'plan_us'):.1f}", f"**{ratio:.2f}**",
                    f"{num(r, 'plan_classes_in_sequence_us'):.1f}", f"{num(r, 'groups_one_by_one_us'):.1f}",
                    f"{num(r, 'plan_unbalanced_us'):.1f}", f"{num(r, 'plan_modelled_over_share'):.2f}",
                    r["plan_launches"], r["plan_items"]])
    summary.append(("plan keeping 25% of the bytes ≤ 0.30 of dense time (≥ 256 MB)", verdict(ratios, lambda v: v <= 0.30),
                    f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "—"))
    return ("### KV plan launcher against dense bf16 (plan_bench)\n\n"
            + table(["batch × context", "dense MB", "plan / dense bytes", "dense µs", "plan µs", "plan / dense time",
                     "classes in sequence µs", "one group per launch µs", "unbalanced µs", "modelled / even share",
                     "launches", "items"], out) + "\n")


def sparse_section(d, summary):
    rows = read(d, "bench_sparse.csv")
    if not rows:
        summary.append(("page-sparse step time measured at top-k 1/8, 1/16, 1/32", "not run", "—"))
        return "### page-sparse decode (sparse_bench)\n\nnot run\n"
    out = []
    for r in rows:
        out.append([f"{r['batch']} × {r['context']}", r["pattern"], f"1/{round(1 / num(r, 'top_k_ratio'))}",
                    r["pages_selected"], f"{num(r, 'dense_us'):.1f}", f"{num(r, 'select_us'):.1f}",
                    f"{num(r, 'sparse_decode_us'):.1f}", f"{num(r, 'step_us'):.1f}", f"**{num(r, 'step_over_dense'):.3f}**",
                    f"{num(r, 'select_over_dense'):.3f}"])
    steps = [num(r, "step_over_dense") for r in rows]
    summary.append(("page-sparse step time measured at top-k 1/8, 1/16, 1/32", "met" if rows else "not run",
                    f"step / dense {min(steps):.3f}–{max(steps):.3f}"))
    return ("### page-sparse decode against dense bf16 (sparse_bench; 1 sink + 1 recent page)\n\n"
            + table(["batch × context", "pattern", "top-k", "pages read", "dense µs", "selection µs", "sparse decode µs",
                     "step µs", "step / dense", "selection / dense"], out) + "\n")


def mla_section(d, summary):
    rows = read(d, "bench_mla.csv")
    if not rows:
        summary.append(("MLA decode ≥ 0.85 of the copy ceiling (≥ 256 MB latent)", "not run", "—"))
        return "### MLA decode (mla_bench)\n\nnot run\n"
    out, fractions = [], []
    for r in rows:
        frac = num(r, "fraction_of_copy_ceiling")
        if num(r, "latent_bytes") >= 256 * MB:
            fractions.append(frac)
        out.append([r["format"], r["heads"], f"{r['batch']} × {r['context']}", f"{num(r, 'latent_bytes') / MB:.0f}",
                    r["splits"], f"{num(r, 'median_us'):.1f}", f"{num(r, 'tb_per_s'):.2f}", f"**{frac:.2f}**",
                    f"{num(r, 'tflop_per_s'):.0f}"])
    summary.append(("MLA decode ≥ 0.85 of the copy ceiling (≥ 256 MB latent)", verdict(fractions, lambda v: v >= 0.85),
                    f"{min(fractions):.2f}–{max(fractions):.2f}" if fractions else "—"))
    return ("### absorbed MLA decode (mla_bench; DeepSeek-V3 latent 512 + 64)\n\n"
            + table(["latent", "q heads", "batch × context", "latent MB", "splits", "µs", "TB/s", "of ceiling", "TFLOP/s"],
                    out) + "\n")


def tree_section(d, summary):
    rows = read(d, "bench_tree.csv")
    if not rows:
        summary.append(("tree verification k = 1…16 timed against one decode step", "not run", "—"))
        return "### token-tree verification (tree_bench)\n\nnot run\n"
    out = [[f"{r['batch']} × {r['context']}", r["k"], f"{num(r, 'median_us'):.1f}", f"{num(r, 'ratio_to_decode'):.2f}"]
           for r in rows]
    summary.append(("tree verification k = 1…16 timed against one decode step", "met",
                    f"k = {rows[-1]['k']}: {num(rows[-1], 'ratio_to_decode'):.2f}× a step"))
    return "### token-tree verification (tree_bench, bf16)\n\n" + table(["batch × context", "k", "µs", "× one decode step"],
                                                                         out) + "\n"


def tests_line(d, summary):
    """The run's steps; the test groups and sanitizers as verdict rows."""
    path = os.path.join(d, "steps.txt")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        steps = [line.split() for line in f if line.strip()]
    for name, rc, *_ in steps:
        if name.startswith("tests_") or name in ("memcheck", "racecheck"):
            state = {"0": "passed", "124": "timed out", "skipped": "not run"}.get(rc, f"failed (exit code {rc})")
            summary.append((f"{name.replace('tests_', 'GPU tests: ')}", state, "see gpu_test.log / sanitizers.txt"))
    return "### steps of the run (name, exit code, seconds)\n\n" + table(["step", "exit code", "s"], steps) + "\n"


def build(d):
    summary = []
    sections = [peers_section(d, summary), formats_section(d, summary), plan_section(d, summary),
                sparse_section(d, summary), mla_section(d, summary), tree_section(d, summary), tests_line(d, summary)]
    head = "### issue 10 targets in this run\n\n" + table(["target", "verdict", "measured"], summary) + "\n"
    return head, "\n".join(s for s in sections if s)


def main():
    d = sys.argv[1]
    head, body = build(d)
    if "--summary" in sys.argv:
        print(head)
    elif "--fill-doc" in sys.argv:
        doc = sys.argv[sys.argv.index("--fill-doc") + 1]
        text = open(doc).read()
        if BEGIN not in text or END not in text:
            sys.exit(f"{doc}: no generated section ({BEGIN} … {END})")
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        source = f"From `{os.path.normpath(d)}` (bench/gpu/combine.py).\n\n"
        with open(doc, "w") as f:
            f.write(before + BEGIN + "\n" + source + head + "\n" + body + END + after)
    else:
        print(head)
        print(body)


if __name__ == "__main__":
    main()
