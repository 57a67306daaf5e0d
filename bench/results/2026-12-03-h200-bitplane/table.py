#!/usr/bin/env python3
"""Time over byte floor (1 / fraction of the copy ceiling, decode_bench) per format and shape:
this run's bench_kvlab.csv against a before CSV.  python3 table.py BEFORE.csv [AFTER.csv]"""
import csv
import sys


def load(path):
    out, shapes = {}, []
    for r in csv.reader(open(path)):
        if not r or not r[0].startswith("llama"):
            continue
        shape = (int(r[2]), int(r[3]))
        if shape not in shapes:
            shapes.append(shape)
        out[(r[0], r[1], shape)] = (1.0 / float(r[7]), float(r[5]))
    return out, shapes


before, _ = load(sys.argv[1])
after, shapes = load(sys.argv[2] if len(sys.argv) > 2 else "bench_kvlab.csv")
print("| model | format | " + " | ".join(f"{b} × {c // 1024}k" for b, c in shapes) + " |")
print("| --- | --- |" + " --- |" * len(shapes))
for model in ("llama-3.1-8b", "llama-3.1-70b"):
    for fmt in ("int6", "int5", "int4", "int8", "fp8", "bf16"):
        cells = []
        for s in shapes:
            a = after.get((model, fmt, s))
            b = before.get((model, fmt, s))
            if a is None:
                cells.append("-")
            elif b is None:
                cells.append(f"{a[0]:.2f} ({a[1]:.1f} µs)")
            else:
                cells.append(f"{b[0]:.2f} → **{a[0]:.2f}** ({b[1]:.1f} → {a[1]:.1f} µs)")
        print(f"| {model[10:]} | {fmt} | " + " | ".join(cells) + " |")
