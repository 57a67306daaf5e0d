# SPDX-License-Identifier: Apache-2.0
"""A `kvlab run` sweep spread over a Ray cluster: each point is sent to a worker as its
resolved.yaml (a single-point experiment that reruns exactly that point), the worker runs
`kvlab run` on it into a private folder, and the driver publishes the point folder under its
sweep name by one rename — so a folder exists only when complete, as with `kvlab run --jobs`,
and `resume=True` keeps every folder whose resolved.yaml matches. The simulator is
deterministic, so the folders are byte-identical to a local run's (summary.json's wall_s, the
one measured value, aside). Workers need this checkout and its kvlab binary at the same path.

    from kvlab.ray_sweep import run_on_ray
    run_on_ray("configs/experiments/llama8b_h100_load.yaml", "results/load", address="auto")

Without Ray installed, use `kvlab run --jobs N` (the local path).
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import uuid


def _run_point(binary, name, resolved_yaml, out):
    """On a worker: runs one point and leaves its folder at out/.tmp-ray-<name>-<uuid>."""
    with tempfile.TemporaryDirectory() as scratch:
        spec = pathlib.Path(scratch) / "point.yaml"
        spec.write_text(resolved_yaml)
        run_out = pathlib.Path(scratch) / "out"
        p = subprocess.run([binary, "run", str(spec), "--out", str(run_out), "--no-plots"], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{name}: kvlab run failed ({p.returncode}): {p.stderr.strip()}")
        (folder,) = [d for d in run_out.iterdir() if d.is_dir() and not d.name.startswith(".")]
        staged = pathlib.Path(out) / f".tmp-ray-{name}-{uuid.uuid4().hex}"
        shutil.copytree(folder, staged)
        # The folder reran a one-point file: put back the sweep's own resolved.yaml (same keys and
        # values, so the point it describes is the same).
        (staged / "resolved.yaml").write_text(resolved_yaml)
        return str(staged)


def _complete(folder, resolved_yaml):
    files = ["resolved.yaml", "summary.json", "requests.csv", "timeline.csv"]
    return all((folder / f).exists() for f in files) and (folder / "resolved.yaml").read_text() == resolved_yaml


def run_on_ray(experiment, out, address=None, set=None, resume=False, binary=None):
    """Runs every point of `experiment` (a YAML path) on the Ray cluster at `address` (None:
    a local one) into `out`; returns the point names that ran."""
    import ray

    from . import _ext

    root = pathlib.Path(__file__).resolve().parents[2]
    binary = binary or os.environ.get("KVLAB_BINARY", str(root / "build" / "release" / "experiments" / "kvlab"))
    out = pathlib.Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    points = _ext().points(os.fspath(experiment), list(set or []))
    todo = [(n, y) for n, y in points if not (resume and _complete(out / n, y))]
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    # Workers need not have kvlab importable: the task function travels by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    task = ray.remote(_run_point)
    pending = {task.remote(binary, n, y, str(out)): n for n, y in todo}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(done[0])
        staged = pathlib.Path(ray.get(done[0]))
        final = out / name
        if final.exists():
            shutil.rmtree(final)
        os.rename(staged, final)  # one rename: the folder appears complete or not at all
    return [n for n, _ in todo]
