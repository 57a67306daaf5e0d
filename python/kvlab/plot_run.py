#!/usr/bin/env python3
"""Plots of a `kvlab run` results folder, written beside the results as PNG:

- latency.png: CDFs of TTFT, TPOT and E2E latency, one line per sweep point;
- load.png: output throughput and p50/p99 latency versus offered load (or point) across points;
- kv_memory.png: KV pages in use, tokens held and running/waiting sequences over time.

Usage: plot_run.py RESULTS_DIR
"""
import csv
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend chosen first)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def points(results):
    return sorted(p for p in results.iterdir() if p.is_dir() and (p / "summary.json").exists())


def offered_load(point):
    """The point's arrival rate from resolved.yaml, or None for trace replays."""
    for line in (point / "resolved.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("rate:"):
            return float(stripped.split(":", 1)[1])
    return None


def cdf(ax, values, label):
    values = sorted(values)
    if values:
        ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)


def plot_latency(results, pts):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for p in pts:
        rows = [r for r in read_csv(p / "requests.csv") if not r["rejected"]]
        ttft = [float(r["first_token_s"]) - float(r["arrival_s"]) for r in rows]
        e2e = [float(r["finish_s"]) - float(r["arrival_s"]) for r in rows]
        tpot = [
            (float(r["finish_s"]) - float(r["first_token_s"])) / (int(r["output_tokens"]) - 1)
            for r in rows
            if int(r["output_tokens"]) > 1
        ]
        for ax, values in zip(axes, (ttft, tpot, e2e)):
            cdf(ax, values, p.name)
    for ax, title in zip(axes, ("TTFT", "TPOT", "E2E latency")):
        ax.set(title=title, xlabel="seconds", ylabel="fraction of requests")
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(results / "latency.png", dpi=110)
    plt.close(fig)


def plot_load(results, pts):
    rows = read_csv(results / "sweep.csv")
    by_name = {r["point"]: r for r in rows}
    loads = [offered_load(p) for p in pts]
    use_load = all(x is not None for x in loads)
    xs = loads if use_load else list(range(len(pts)))
    sel = [by_name[p.name] for p in pts if p.name in by_name]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(xs, [float(r["throughput_output_tokens_per_s"]) for r in sel], "o-")
    left.set(title="Output throughput", ylabel="tokens/s")
    right.plot(xs, [float(r["ttft_p50_s"]) for r in sel], "o-", label="TTFT p50")
    right.plot(xs, [float(r["e2e_p99_s"]) for r in sel], "s-", label="E2E p99")
    right.plot(xs, [float(r["tpot_p50_s"]) for r in sel], "^-", label="TPOT p50")
    right.set(title="Latency", ylabel="seconds", yscale="log")
    right.legend()
    for ax in (left, right):
        ax.set_xlabel("offered load (requests/s)" if use_load else "sweep point")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(results / "load.png", dpi=110)
    plt.close(fig)


def plot_kv(results, pts):
    fig, axes = plt.subplots(len(pts), 1, figsize=(10, 2.6 * len(pts)), squeeze=False)
    for ax, p in zip(axes[:, 0], pts):
        rows = read_csv(p / "timeline.csv")
        t = [float(r["time_s"]) for r in rows]
        ax.plot(t, [int(r["kv_pages_used"]) for r in rows], label="KV pages in use")
        ax.plot(t, [int(r["kv_tokens_filled"]) / 16 for r in rows], label="pages' worth of tokens held")
        ax.set(title=p.name, xlabel="simulated time (s)", ylabel="pages")
        twin = ax.twinx()
        twin.plot(t, [int(r["running"]) for r in rows], color="tab:green", alpha=0.5, label="running")
        twin.plot(t, [int(r["waiting"]) for r in rows], color="tab:red", alpha=0.5, label="waiting")
        twin.set_ylabel("sequences")
        ax.legend(loc="upper left", fontsize=7)
        twin.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(results / "kv_memory.png", dpi=110)
    plt.close(fig)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = pathlib.Path(argv[1])
    pts = points(results)
    if not pts:
        print(f"plot_run: no completed points in {results}", file=sys.stderr)
        return 1
    plot_latency(results, pts)
    plot_load(results, pts)
    plot_kv(results, pts)
    print(f"plots: {results / 'latency.png'}, {results / 'load.png'}, {results / 'kv_memory.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
