#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Collective-communication timings for the simulator's link model (issue 14): all-reduce,
all-gather, reduce-scatter and all-to-all time against message size, NCCL through
torch.distributed, for world sizes 1, 2, 4, 8 up to the GPUs present, and the fit the
simulator reads (sim/calibration.h, collective_time_s):

    time = latency + factor(collective, n) * bytes / bus_bandwidth

factor is NCCL-tests' bus-bandwidth factor (all-reduce 2(n-1)/n; all-gather, reduce-scatter
and all-to-all (n-1)/n) and `bytes` NCCL-tests' size (all-reduce: the buffer; all-gather:
the gathered output; reduce-scatter: the input; all-to-all: one rank's buffer). The fit is
least squares on the times; efficiency = bus bandwidth / the GPU's NVLink bandwidth (one
direction, --link-peak-gbs). With one GPU the world size is 1: factor 0, no byte crosses a
link, so every fit says "not measured" and the file says nothing multi-GPU was measured.

NVLink multicast stays off (the device README): NCCL_NVLS_ENABLE=0,
TORCH_SYMM_MEM_DISABLE_MULTICAST=1, NVSHMEM_DISABLE_NVLS=1 are set for every worker.

    python3 bench/gpu/collectives.py --out DIR [--commit SHA] [--max-world N] [--quick]

writes DIR/collectives.csv (every timing) and DIR/links.yaml (the fits, with machine, date,
commit). Each world size runs as `python3 -m torch.distributed.run --nproc_per_node=W
collectives.py --worker ...` under a timeout. The fit and the YAML need no torch
(tests/python/test_collectives.py runs them here).
"""
import argparse
import csv
import datetime
import os
import pathlib
import subprocess
import sys

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def bus_factor(collective, n):
    """NCCL-tests' bus-bandwidth factor: bytes each link carries per byte of message."""
    if collective == "all_reduce":
        return 2.0 * (n - 1) / n
    if collective in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    raise ValueError(f"unknown collective {collective!r}")


def fit_link(collective, n, sizes, times):
    """Least squares of time = latency + factor * bytes / bus_bandwidth over the points.

    Returns a dict: latency_s, bus_bytes_per_s (None where nothing crossed a link: n = 1, or
    a fit without a positive slope), points, max_rel_residual."""
    if len(sizes) != len(times) or not sizes:
        raise ValueError("fit_link: sizes and times must be non-empty and of one length")
    factor = bus_factor(collective, n)
    xs = [factor * b for b in sizes]
    count = len(xs)
    mean_x, mean_t = sum(xs) / count, sum(times) / count
    sxx = sum((x - mean_x) ** 2 for x in xs)
    out = {"collective": collective, "world_size": n, "points": count}
    if sxx == 0:  # one size, or world size 1: no bandwidth to fit
        out.update(latency_s=mean_t, bus_bytes_per_s=None,
                   max_rel_residual=max(abs(t - mean_t) / t for t in times))
        return out
    slope = sum((x - mean_x) * (t - mean_t) for x, t in zip(xs, times)) / sxx
    latency = mean_t - slope * mean_x
    if slope <= 0:
        out.update(latency_s=mean_t, bus_bytes_per_s=None,
                   max_rel_residual=max(abs(t - mean_t) / t for t in times))
        return out
    out.update(latency_s=max(latency, 0.0), bus_bytes_per_s=1.0 / slope,
               max_rel_residual=max(abs(latency + slope * x - t) / t for x, t in zip(xs, times)))
    return out


def fits_from_rows(rows):
    """One fit per (collective, world size) of collectives.csv's rows."""
    groups = {}
    for r in rows:
        groups.setdefault((r["collective"], int(r["world_size"])), []).append(r)
    fits = []
    for (collective, n), rs in sorted(groups.items()):
        rs.sort(key=lambda r: int(r["bytes"]))
        fits.append(fit_link(collective, n, [int(r["bytes"]) for r in rs], [float(r["time_s"]) for r in rs]))
    return fits


def links_yaml(fits, machine, date, commit, link_peak_bytes_per_s):
    """The links calibration file: plain YAML written by hand (no library needed on the device)."""
    multi = any(f["world_size"] > 1 and f["bus_bytes_per_s"] for f in fits)
    lines = [
        "# Collective timings fitted by bench/gpu/collectives.py: time = latency_s + factor * bytes / bus_bytes_per_s",
        "# (factor: all_reduce 2(n-1)/n, the others (n-1)/n; NCCL-tests' sizes). efficiency = bus_bytes_per_s /",
        f"# the link peak ({link_peak_bytes_per_s:.4g} B/s). NCCL through torch.distributed, NVLink multicast off.",
        "links:",
        f"  measured_on: \"{date}\"",
        f"  commit: \"{commit}\"",
        f"  machine: \"{machine}\"",
        f"  multi_gpu_measured: {'true' if multi else 'false'}",
    ]
    if not multi:
        lines.append("  note: \"world size 1 only: no byte crossed a link, nothing multi-GPU was measured\"")
    lines.append("  fits:")
    for f in fits:
        bw = f["bus_bytes_per_s"]
        eff = bw / link_peak_bytes_per_s if bw and link_peak_bytes_per_s > 0 else None
        lines.append(f"    - collective: {f['collective']}")
        lines.append(f"      world_size: {f['world_size']}")
        lines.append(f"      latency_s: {f['latency_s']:.6e}")
        lines.append(f"      bus_bytes_per_s: {bw:.6e}" if bw else "      bus_bytes_per_s: 0  # not measured")
        lines.append(f"      efficiency: {eff:.4f}" if eff is not None else "      efficiency: 0  # not measured")
        lines.append(f"      points: {f['points']}")
        lines.append(f"      max_rel_residual: {f['max_rel_residual']:.4f}")
    return "\n".join(lines) + "\n"


def sizes(quick):
    """Message sizes in bytes: 4 KiB to 256 MiB by 4x (quick: 64 KiB to 64 MiB by 16x)."""
    if quick:
        return [1 << e for e in range(16, 27, 4)]
    return [1 << e for e in range(12, 29, 2)]


def worker(args):
    """One rank: times every collective at every size, rank 0 appends to the CSV."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl", device_id=torch.device("cuda", int(os.environ["LOCAL_RANK"])))
    rows = []
    for collective in COLLECTIVES:
        for size in sizes(args.quick):
            elements = max(world, size // 2) // world * world  # bf16, a multiple of the world size
            if collective == "all_gather":
                out = torch.empty(elements, dtype=torch.bfloat16, device="cuda")
                buf = torch.ones(elements // world, dtype=torch.bfloat16, device="cuda")
                op = lambda: dist.all_gather_into_tensor(out, buf)
            elif collective == "reduce_scatter":
                buf = torch.ones(elements, dtype=torch.bfloat16, device="cuda")
                out = torch.empty(elements // world, dtype=torch.bfloat16, device="cuda")
                op = lambda: dist.reduce_scatter_tensor(out, buf)
            elif collective == "all_to_all":
                buf = torch.ones(elements, dtype=torch.bfloat16, device="cuda")
                out = torch.empty_like(buf)
                op = lambda: dist.all_to_all_single(out, buf)
            else:
                buf = torch.ones(elements, dtype=torch.bfloat16, device="cuda")
                op = lambda: dist.all_reduce(buf)
            for _ in range(args.warmup):
                op()
            torch.cuda.synchronize()
            dist.barrier()
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(args.iters):
                op()
            stop.record()
            torch.cuda.synchronize()
            seconds = torch.tensor([start.elapsed_time(stop) * 1e-3 / args.iters], device="cuda")
            dist.all_reduce(seconds, op=dist.ReduceOp.MAX)  # the slowest rank's time
            rows.append({"collective": collective, "world_size": world, "bytes": elements * 2, "time_s": seconds.item()})
    if rank == 0:
        path = pathlib.Path(args.csv)
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["collective", "world_size", "bytes", "time_s"])
            if new:
                w.writeheader()
            w.writerows(rows)
    dist.destroy_process_group()


def machine_description():
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=30).stdout.split("\n")
        names = [n.strip() for n in names if n.strip()]
        return f"{len(names)}x {names[0]}" if names else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def gpu_count():
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
        return sum(1 for line in out.splitlines() if line.startswith("GPU "))
    except (OSError, subprocess.SubprocessError):
        return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="collectives-results")
    p.add_argument("--commit", default="unknown")
    p.add_argument("--max-world", type=int, default=0, help="largest world size (0: every GPU present)")
    p.add_argument("--quick", action="store_true", help="3 sizes, fewer iterations")
    p.add_argument("--link-peak-gbs", type=float, default=450.0,
                   help="one-direction NVLink peak in GB/s for the efficiency (H200: 450, configs/gpus/h200.yaml)")
    p.add_argument("--timeout", type=int, default=120, help="seconds per world size")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.quick:
        args.warmup, args.iters = 2, 5
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "collectives.csv"
    table.unlink(missing_ok=True)
    gpus = gpu_count()
    if gpus == 0:
        print("collectives.py: no GPU here (nvidia-smi lists none)", file=sys.stderr)
        return 1
    top = min(gpus, args.max_world) if args.max_world > 0 else gpus
    env = dict(os.environ, **NO_MULTICAST)
    for world in (w for w in (1, 2, 4, 8) if w <= top):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", __file__,
               "--worker", "--csv", str(table), "--warmup", str(args.warmup), "--iters", str(args.iters)]
        if args.quick:
            cmd.append("--quick")
        try:
            done = subprocess.run(cmd, env=env, timeout=args.timeout)
            print(f"world size {world}: exit code {done.returncode}")
        except subprocess.TimeoutExpired:
            print(f"world size {world}: timed out after {args.timeout} s")
    if not table.exists():
        print("collectives.py: no timing was written", file=sys.stderr)
        return 1
    with table.open() as f:
        fits = fits_from_rows(list(csv.DictReader(f)))
    text = links_yaml(fits, machine_description(), datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
                      args.commit, args.link_peak_gbs * 1e9)
    (out / "links.yaml").write_text(text)
    print(text, end="")
    if not any(f["world_size"] > 1 for f in fits):
        print(f"collectives.py: {gpus} GPU(s) here, world size 1 only: nothing multi-GPU was measured")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
