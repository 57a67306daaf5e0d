#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plots of a `kvlab run` results folder, written beside the results as PNG files:

- latency.png: CDFs of TTFT, TPOT and E2E latency, one line per sweep point;
- load.png: output throughput and TTFT/TPOT p50/p99 versus offered load (the swept arrival
  rate) or, without one, versus the first numeric sweep axis or the point index; one
  line per combination of the other sweep axes;
- kv_memory.png: KV bytes used, reserved and fragmented (reserved but unfilled) over
  simulated time, per point (replica 0 when there are several).

Usage: plot_run.py RESULTS_DIR. Exit codes: 0 drawn, 1 nothing to draw, 2 usage,
3 matplotlib missing (kvlab run turns that into a warning).
"""
import csv
import json
import pathlib
import re
import sys

GIB = 1024.0**3
MAX_KV_PANELS = 12  # beyond this the figure is unreadable; the first points are drawn


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_points(results):
    """[(name, values, summary)] of complete points, from sweep.json when present."""
    index = results / "sweep.json"
    if index.exists():
        data = json.loads(index.read_text())
        return [
            (p["name"], p.get("values", {}), p["summary"])
            for p in data["points"]
            if "summary" in p and (results / p["name"] / "requests.csv").exists()
        ]
    points = []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        if (folder / "summary.json").exists():
            points.append((folder.name, {}, json.loads((folder / "summary.json").read_text())))
    return points


def multi_turn(resolved_yaml):
    """True when the point's workload has sessions of more than one turn: its rate then
    counts session arrivals, not requests (resolved.yaml writes `sessions: {turns: N, …}`)."""
    if not resolved_yaml.exists():
        return False
    match = re.search(r"^\s*sessions:\s*\{turns:\s*(\d+)", resolved_yaml.read_text(), re.MULTILINE)
    return bool(match) and int(match.group(1)) > 1


def x_axis(results, points):
    """(key, label, xs): the offered load when it is swept, else a numeric axis, else the index."""
    keys = list(points[0][1].keys()) if points else []
    numeric = [k for k in keys if all(isinstance(p[1].get(k), (int, float)) for p in points)]
    if "workload.rate" in numeric:
        unit = "sessions/s" if multi_turn(results / points[0][0] / "resolved.yaml") else "requests/s"
        return "workload.rate", f"offered load ({unit})", [p[1]["workload.rate"] for p in points]
    if numeric:
        return numeric[0], numeric[0], [p[1][numeric[0]] for p in points]
    return None, "sweep point", list(range(len(points)))


def series(points, x_key, xs):
    """{legend label: [(x, summary)] sorted by x}: one line per value of the other sweep axes,
    so a grid over load × something draws one curve per something instead of a zigzag."""
    lines = {}
    for (name, values, summary), x in zip(points, xs):
        others = [f"{k}={v}" for k, v in values.items() if k != x_key]
        lines.setdefault(", ".join(others) or "all points", []).append((x, summary))
    return {label: sorted(line, key=lambda xy: xy[0]) for label, line in lines.items()}


def cdf(ax, values, label):
    values = sorted(v for v in values if v > 0)
    if values:
        ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)


def plot_latency(plt, results, points):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, _, _ in points:
        rows = [r for r in read_csv(results / name / "requests.csv") if not r["rejected"]]
        for ax, column in zip(axes, ("ttft_s", "tpot_s", "e2e_s")):
            cdf(ax, [float(r[column]) for r in rows], name)
    titles = ("Time to first token", "Time per output token", "End-to-end latency")
    for ax, title in zip(axes, titles):
        ax.set(title=title, xlabel="seconds (log scale)", ylabel="fraction of requests")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(results / "latency.png", dpi=110)
    plt.close(fig)


def plot_load(plt, results, points):
    x_key, label, xs = x_axis(results, points)
    lines = series(points, x_key, xs)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    throughput, ttft, tpot = axes
    for i, (name, line) in enumerate(lines.items()):
        color = f"C{i % 10}"
        x = [xy[0] for xy in line]
        throughput.plot(x, [xy[1]["throughput_output_tokens_per_s"] for xy in line], "o-", color=color, label=name)
        for ax, metric in ((ttft, "ttft_s"), (tpot, "tpot_s")):
            ax.plot(x, [xy[1][metric]["p50"] for xy in line], "o-", color=color, label=f"{name} p50")
            ax.plot(x, [xy[1][metric]["p99"] for xy in line], "^--", color=color, alpha=0.6, label=f"{name} p99")
    throughput.set(title="Output throughput", xlabel=label, ylabel="output tokens/s")
    ttft.set(title="Time to first token (p50 solid, p99 dashed)", xlabel=label, ylabel="seconds (log scale)", yscale="log")
    tpot.set(title="Time per output token (p50 solid, p99 dashed)", xlabel=label, ylabel="seconds (log scale)", yscale="log")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    if len(lines) > 1:
        throughput.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(results / "load.png", dpi=110)
    plt.close(fig)


def plot_kv(plt, results, points):
    shown = points[:MAX_KV_PANELS]
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.8 * len(shown)), squeeze=False)
    for ax, (name, _, _) in zip(axes[:, 0], shown):
        rows = read_csv(results / name / "timeline.csv")
        replicas = {r["replica"] for r in rows}
        rows = [r for r in rows if r["replica"] == "0"]
        t = [float(r["time_s"]) for r in rows]

        def gib(column):
            return [int(r[column]) / GIB for r in rows]

        total = [
            (int(r["kv_bytes_reserved"]) + int(r["kv_bytes_cached"]) + int(r["kv_bytes_free"])) / GIB for r in rows
        ]
        ax.plot(t, total, "k--", linewidth=0.8, label="KV capacity")
        ax.fill_between(t, gib("kv_bytes_reserved"), color="tab:blue", alpha=0.25, label="reserved (pages held)")
        ax.plot(t, gib("kv_bytes_used"), color="tab:blue", label="used (tokens stored)")
        ax.plot(t, gib("kv_fragmentation_bytes"), color="tab:red", label="fragmented (held, unfilled)")
        suffix = f" (replica 0 of {len(replicas)})" if len(replicas) > 1 else ""
        ax.set(title=name + suffix, xlabel="simulated time (s)", ylabel="GiB")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
    if len(points) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(points)} points")
    fig.tight_layout()
    fig.savefig(results / "kv_memory.png", dpi=110)
    plt.close(fig)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a display
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"plot_run: matplotlib is not available ({e})", file=sys.stderr)
        return 3
    results = pathlib.Path(argv[1])
    points = load_points(results) if results.is_dir() else []
    if not points:
        print(f"plot_run: no completed points in {results}", file=sys.stderr)
        return 1
    plot_latency(plt, results, points)
    plot_load(plt, results, points)
    plot_kv(plt, results, points)
    names = ", ".join(str(results / n) for n in ("latency.png", "load.png", "kv_memory.png"))
    print(f"plots: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
