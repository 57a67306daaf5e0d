#!/usr/bin/env python3
"""Joins decode_bench's and peers.py's CSVs into the results table (markdown): kvlab's
bf16 paged decode as a fraction of the copy ceiling and against the best peer, and the
quantized formats against their byte floor (their bytes, scales included, over the
ceiling)."""
import csv
import sys


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main(ours_path, peers_path):
    ours, peers = read(ours_path), read(peers_path)
    best = {}
    for row in peers:
        key = (row["model"], int(row["batch"]), int(row["context"]))
        if key not in best or float(row["tb_per_s"]) > float(best[key]["tb_per_s"]):
            best[key] = row
    lines = [
        "| model | batch × context | format | KV MB | kvlab µs | kvlab TB/s | of copy ceiling | time / byte floor | best peer | peer TB/s | kvlab / peer |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in ours:
        key = (row["model"], int(row["batch"]), int(row["context"]))
        frac = float(row["fraction_of_copy_ceiling"])
        peer = best.get(key) if row["format"] == "bf16" else None
        peer_cells = (
            f"{peer['peer']} | {float(peer['tb_per_s']):.2f} | {float(row['tb_per_s']) / float(peer['tb_per_s']):.2f}"
            if peer
            else "— | — | —"
        )
        lines.append(
            f"| {row['model']} | {row['batch']} × {row['context']} | {row['format']} | "
            f"{int(row['kv_bytes']) / 1e6:.0f} | {float(row['median_us']):.1f} | {float(row['tb_per_s']):.2f} | "
            f"{frac:.2f} | {1 / frac:.2f} | {peer_cells} |"
        )
    ceiling = float(ours[0]["copy_ceiling_tb_per_s"]) if ours else float("nan")
    print(f"Copy ceiling measured in the same run: {ceiling:.3f} TB/s\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
