#!/usr/bin/env python3
"""Joins peers.py's and decode_bench's CSVs into the results tables (markdown): kvlab's bf16
paged decode against the copy ceiling and the peers measured in the same process, and every
KV format against its byte floor (its bytes, scales included, over the copy ceiling of
decode_bench's run)."""
import csv
import sys


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def separate_cell(row):
    value = row.get("median_us_separate_merge", "nan")
    return "—" if value in ("", "nan") else f"{float(value):.1f}"


def main(peers_path, ours_path):
    peers, ours = read(peers_path), read(ours_path)
    by_shape = {}
    for row in peers:
        by_shape.setdefault((row["model"], int(row["batch"]), int(row["context"])), {})[row["impl"]] = row
    if peers:
        print(f"bf16, one process (peers.py): copy ceiling {float(peers[0]['copy_ceiling_tb_per_s']):.3f} TB/s\n")
    print("| model | batch × context | KV MB | kvlab µs | kvlab TB/s | of copy ceiling | rel. err vs cuDNN "
          "| µs, separate merge kernel | SDPA cuDNN TB/s | SDPA flash TB/s | Flex TB/s | Flex paged TB/s "
          "| kvlab / best peer |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (model, batch, context), impls in by_shape.items():
        ours_row = impls.get("kvlab_paged")
        if ours_row is None:
            continue
        peer_tb = {name: float(impls[name]["tb_per_s"])
                   for name in ("sdpa_cudnn", "sdpa_flash", "flex_compiled", "flex_paged") if name in impls}
        separate = impls.get("kvlab_paged_separate_merge")
        separate_us = f"{float(separate['median_us']):.1f}" if separate else "—"
        best = max(peer_tb.values()) if peer_tb else float("nan")
        cell = lambda name: f"{peer_tb[name]:.2f}" if name in peer_tb else "—"  # noqa: E731
        tb = float(ours_row["tb_per_s"])
        print(f"| {model} | {batch} × {context} | {int(ours_row['kv_bytes']) / 1e6:.0f} | "
              f"{float(ours_row['median_us']):.1f} | {tb:.2f} | {float(ours_row['fraction_of_copy_ceiling']):.2f} | "
              f"{float(ours_row['rel_err_vs_cudnn']):.1e} | {separate_us} | {cell('sdpa_cudnn')} | "
              f"{cell('sdpa_flash')} | {cell('flex_compiled')} | {cell('flex_paged')} | {tb / best:.2f} |")
    if ours:
        print(f"\nAll formats (decode_bench): copy ceiling {float(ours[0]['copy_ceiling_tb_per_s']):.3f} TB/s\n")
    print("| model | format | batch × context | KV MB | µs | TB/s | of copy ceiling | time / byte floor | splits "
          "| µs, separate merge kernel |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in ours:
        frac = float(row["fraction_of_copy_ceiling"])
        print(f"| {row['model']} | {row['format']} | {row['batch']} × {row['context']} | "
              f"{int(row['kv_bytes']) / 1e6:.0f} | {float(row['median_us']):.1f} | {float(row['tb_per_s']):.2f} | "
              f"{frac:.2f} | {1 / frac:.2f} | {row['num_splits']} | {separate_cell(row)} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
