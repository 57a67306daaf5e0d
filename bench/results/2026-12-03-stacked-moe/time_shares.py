"""Shares of the simulated iteration time per point, from each point's timeline.csv (not
committed: 16 MB each): all-to-all communication, waiting for other EP ranks. Run from
this folder after `kvlab run` (README.md) to write time_shares.csv."""
import csv
import glob
import json

with open("time_shares.csv", "w", newline="") as out:
    w = csv.writer(out)
    w.writerow(["point", "iterations", "communication_share", "wait_share", "preemptions", "kv_utilization_mean",
                "mean_running", "output_tokens_per_s", "tpot_p50_s", "ttft_p50_s"])
    for point in sorted(glob.glob("p0*")):
        s = json.load(open(f"{point}/summary.json"))
        total = comm = wait = 0.0
        for r in csv.DictReader(open(f"{point}/timeline.csv")):
            total += float(r["iteration_s"])
            comm += float(r["communication_s"])
            wait += float(r["wait_s"])
        w.writerow([point.split("_", 1)[0], s["iterations"], f"{comm / total:.3f}", f"{wait / total:.3f}", s["preemptions"],
                    f"{s['kv_utilization_mean']:.3f}", f"{s['mean_running']:.1f}",
                    f"{s['throughput_output_tokens_per_s']:.0f}", f"{s['tpot_s']['p50']:.4f}", f"{s['ttft_s']['p50']:.2f}"])
