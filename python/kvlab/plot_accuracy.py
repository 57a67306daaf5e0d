#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plot of a `kvlab accuracy` results folder, written beside the results as PNG:

- logp_delta.png: per position, the change in log-probability of the true next token
  (plan minus full-KV reference) and the KL divergence of the next-token distributions,
  with a running mean so drift along the context shows through the per-token noise.

Usage: plot_accuracy.py RESULTS_DIR [RESULTS_DIR ...]   (several folders overlay)
"""
import csv
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend chosen first)


def read_positions(folder):
    with open(folder / "positions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return ([int(r["position"]) for r in rows], [float(r["logp_delta"]) for r in rows],
            [float(r["kl"]) for r in rows])


def running_mean(values, window=32):
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot(folders):
    fig, (ax_delta, ax_kl) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for folder in folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        pos, delta, kl = read_positions(folder)
        label = (f"{metrics['experiment']}: ppl {metrics['perplexity_test']:.3f} "
                 f"(ref {metrics['perplexity_reference']:.3f}), KL {metrics['kl_mean']:.2g}")
        line, = ax_delta.plot(pos, delta, lw=0.5, alpha=0.35)
        ax_delta.plot(pos, running_mean(delta), lw=1.5, color=line.get_color(), label=label)
        ax_kl.plot(pos, kl, lw=0.5, alpha=0.35, color=line.get_color())
        ax_kl.plot(pos, running_mean(kl), lw=1.5, color=line.get_color())
    ax_delta.axhline(0, color="black", lw=0.5)
    ax_delta.set_ylabel("Δ log p(next token)  [nats]")
    ax_delta.legend(fontsize=8)
    ax_kl.set_ylabel("KL(ref ‖ plan)  [nats]")
    ax_kl.set_yscale("symlog", linthresh=1e-4)
    ax_kl.set_ylim(bottom=0)
    ax_kl.set_xlabel("position (tokens)")
    fig.suptitle("Plan vs full-precision full-KV, per position (thin: per token; thick: 32-token mean)",
                 fontsize=10)
    fig.tight_layout()
    out = folders[0] / "logp_delta.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(plot([pathlib.Path(a) for a in argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
