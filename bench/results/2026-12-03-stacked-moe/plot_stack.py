"""stack.png from time_shares.csv: output throughput and the all-to-all's share of the
iteration time as the techniques are added, at both prefill attention efficiencies (the
sweep's points p000-p005 and p006-p011). Run after time_shares.py."""
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STACK = ["bf16 (vLLM)", "+ int6", "+ RedKnot", "+ Tangram", "+ Vortex", "+ spec."]
rows = list(csv.DictReader(open("time_shares.csv")))
fig, (tput, comm) = plt.subplots(1, 2, figsize=(11, 4))
for offset, label in ((0, "prefill attention 0.047 (h200.yaml)"), (6, "prefill attention 0.78 (default)")):
    part = rows[offset:offset + 6]
    tput.plot(STACK, [float(r["output_tokens_per_s"]) for r in part], marker="o", label=label)
    comm.plot(STACK, [float(r["communication_share"]) for r in part], marker="o", label=label)
tput.set_ylabel("output tokens/s (16 GPUs)")
comm.set_ylabel("share of iteration time in all-to-all")
comm.set_ylim(0, 1)
for ax in (tput, comm):
    ax.tick_params(axis="x", rotation=30)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.suptitle("Qwen3-30B-A3B, EP 16 over two 8-GPU H200 nodes (simulated)")
fig.tight_layout()
fig.savefig("stack.png", dpi=110)
