#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The untested-combinations study: MoE models × techniques × context × cluster size, each
point a `kvlab run` of one experiment (written to results/study/<point>/experiment.yaml), its
summary and iteration-time split kept in paper/study/study.csv. A point kvlab refuses (exit 2:
a key or option that does not exist yet, weights that do not fit) is kept with kvlab's own
first line of diagnostic, so the table says what is missing, point by point.

    python3 paper/study.py [--kvlab build/release/experiments/kvlab] [--quick]

The blog (seeds/000) says no one has tested the techniques with MoE models or past 8 GPUs; the
study asks what kvlab can say about that today, and where it must stop.
"""
import argparse
import csv
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ["qwen3-30b-a3b", "deepseek-v3", "gpt-oss-120b"]
CONTEXTS = {"32k": 32768, "128k": 131072, "1M": 1048576}
# GPUs → (tensor parallel within a node of 8 H200, data-parallel replicas).
CLUSTERS = {1: (1, 1), 8: (8, 1), 64: (8, 8)}
ANSWER = 1024
# Each technique as the experiment keys it adds. Only kv_cache_dtype exists in `kvlab run`
# today; the others use the interfaces being built (issue 9: kv_plan: and techniques:), so
# kvlab itself says, per point, whether it can run them.
TECHNIQUES = {
    "baseline": {},
    "q6": {"kv_cache_dtype": "int6"},
    "tangram": {"kv_plan": {"retention": {"policy": "budget", "ratio": 0.25}, "reservation": "reserve_budget"}},
    "redknot": {"kv_plan": {"retention": {"policy": "sinks_window", "sink_tokens": 4, "window_tokens": 512},
                            "groups": [{"name": "global", "heads": [0], "retention": {"policy": "full"}}]}},
    "vortex": {"kv_plan": {"access": {"kind": "page_sparse", "top_k_pages": 30}}},
    "speculative": {"techniques": [{"speculative": {"method": "mtp", "num_speculative_tokens": 2,
                                                    "acceptance_rate": 0.7}}]},
    "all": {"techniques": [{"quant": {"precision": {"dtype": "int6"}}},
                           {"tangram": {"compression_ratio": 0.25}},
                           {"redknot": {"local_share": 0.85, "window_tokens": 512}},
                           {"vortex": {"top_k_pages": 30}},
                           {"speculative": {"method": "mtp", "num_speculative_tokens": 2, "acceptance_rate": 0.7}}]},
}
COLUMNS = ["model", "technique", "context", "gpus", "tensor_parallel", "data_parallel", "status",
           "completed_requests", "throughput_output_tokens_per_s", "max_concurrency", "mean_running",
           "ttft_p50_s", "tpot_p50_s", "weights_s", "kv_s", "compute_s", "communication_s", "overhead_s",
           "kv_pages_total", "reason"]


def experiment(model, technique, context, gpus):
    tp, dp = CLUSTERS[gpus]
    e = {"schema_version": 1, "name": f"{model}_{technique}_{context}_{gpus}gpu", "model": model, "gpu": "h200",
         "weights": "fp8", "cluster": {"tensor_parallel": tp, "data_parallel": dp},
         "scheduler": {"max_num_seqs": 256, "max_num_batched_tokens": 8192},
         "workload": {"arrival": "closed_loop", "users": 16 * dp, "num_requests": 32 * dp, "seed": 1,
                      "prompt": {"distribution": "fixed", "mean": CONTEXTS[context] - ANSWER},
                      "output": {"distribution": "fixed", "mean": ANSWER}}}
    e.update(TECHNIQUES[technique])
    return e


def timeline_means(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    keys = ["weights_s", "kv_s", "compute_s", "communication_s", "overhead_s"]
    return {k: sum(float(r[k]) for r in rows) / max(len(rows), 1) for k in keys}


def run_point(kvlab, out, model, technique, context, gpus):
    folder = out / f"{model}_{technique}_{context}_{gpus}gpu"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.yaml").write_text(json.dumps(experiment(model, technique, context, gpus), indent=2))
    tp, dp = CLUSTERS[gpus]
    row = {"model": model, "technique": technique, "context": context, "gpus": gpus, "tensor_parallel": tp,
           "data_parallel": dp}
    p = subprocess.run([kvlab, "run", str(folder / "experiment.yaml"), "--out", str(folder / "out"), "--no-plots"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        row["status"] = "refused" if p.returncode == 2 else "failed"
        row["reason"] = (p.stderr or p.stdout).strip().splitlines()[0][:300] if (p.stderr or p.stdout) else ""
        row["reason"] = row["reason"].replace(str(folder) + "/", "")
        return row
    point = next(d for d in (folder / "out").iterdir() if (d / "summary.json").exists())
    s = json.loads((point / "summary.json").read_text())
    row.update({"status": "ran", "completed_requests": s["completed_requests"],
                "throughput_output_tokens_per_s": round(s["throughput_output_tokens_per_s"], 3),
                "max_concurrency": s["max_concurrency"], "mean_running": round(s["mean_running"], 3),
                "ttft_p50_s": round(s["ttft_s"]["p50"], 4), "tpot_p50_s": round(s["tpot_s"]["p50"], 6),
                "kv_pages_total": s["kv_pages_total"], "reason": ""})
    row.update({k: round(v, 6) for k, v in timeline_means(point / "timeline.csv").items()})
    if s["completed_requests"] == 0:  # every request rejected (e.g. longer than the model's context)
        row["status"] = "rejected"
        row["reason"] = "; ".join(f"{n} × {why}" for why, n in s["rejection_reasons"].items())
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kvlab", default=str(ROOT / "build" / "release" / "experiments" / "kvlab"))
    ap.add_argument("--out", default=str(ROOT / "results" / "study"))
    ap.add_argument("--table", default=str(ROOT / "paper" / "study" / "study.csv"))
    ap.add_argument("--quick", action="store_true", help="one model, 32k, 1 and 8 GPUs (a smoke run)")
    a = ap.parse_args()
    models, contexts, clusters = MODELS, list(CONTEXTS), list(CLUSTERS)
    if a.quick:
        models, contexts, clusters = MODELS[:1], ["32k"], [1, 8]
    rows = []
    points = [(m, t, c, g) for m in models for t in TECHNIQUES for c in contexts for g in clusters]
    for i, (m, t, c, g) in enumerate(points, 1):
        rows.append(run_point(a.kvlab, pathlib.Path(a.out), m, t, c, g))
        print(f"\r[{i}/{len(points)}] {m} {t} {c} {g} GPUs: {rows[-1]['status']}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    table = pathlib.Path(a.table)
    table.parent.mkdir(parents=True, exist_ok=True)
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in COLUMNS})
    ran = sum(r["status"] == "ran" for r in rows)
    print(f"{len(rows)} points: {ran} ran, {len(rows) - ran} refused or failed; table: {table}")


if __name__ == "__main__":
    main()
