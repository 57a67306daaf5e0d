#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Scatter plots of `kvlab replay` results: for each point folder given, the predicted
time of every replayed iteration against its measured time on the GPU engine (log-log),
coloured by kind (decode-only, prefill-only, mixed), with the y = x line and ±10% band.
Writes replay.png into each point folder.

Usage: plot_replay.py POINT_DIR [POINT_DIR …]. Exit codes: 0 drawn, 1 nothing to draw,
2 usage, 3 matplotlib missing (kvlab replay turns that into a warning).
"""
import csv
import pathlib
import sys

COLOURS = {"decode-only": "tab:blue", "prefill-only": "tab:orange", "mixed": "tab:green"}


def read_rows(folder):
    with open(folder / "replay.csv", newline="") as f:
        return list(csv.DictReader(f))


def draw(folder, plt):
    rows = read_rows(folder)
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(6, 6))
    lo, hi = float("inf"), 0.0
    for mix, colour in COLOURS.items():
        measured = [float(r["measured_s"]) * 1e3 for r in rows if r["mix"] == mix]
        predicted = [float(r["predicted_s"]) * 1e3 for r in rows if r["mix"] == mix]
        if not measured:
            continue
        ax.scatter(measured, predicted, s=8, alpha=0.6, color=colour, label=f"{mix} ({len(measured)})")
        lo = min(lo, min(measured), min(predicted))
        hi = max(hi, max(measured), max(predicted))
    line = [lo * 0.9, hi * 1.1]
    ax.plot(line, line, color="black", linewidth=1, label="predicted = measured")
    ax.fill_between(line, [x * 0.9 for x in line], [x * 1.1 for x in line], color="grey", alpha=0.15, label="±10%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured iteration time on the engine (ms)")
    ax.set_ylabel("predicted iteration time (ms)")
    ax.set_title(folder.name, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "replay.png", dpi=120)
    plt.close(fig)
    return True


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 3
    drawn = [draw(pathlib.Path(a), plt) for a in argv[1:]]
    return 0 if any(drawn) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
