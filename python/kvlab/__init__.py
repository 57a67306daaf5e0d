# SPDX-License-Identifier: Apache-2.0
"""kvlab from Python: capacity arithmetic, KV plans and simulated serving runs, over the same
C++ code as the `kvlab` command line (the `_kvlab` extension, built by `pip install .` or by
CMake with -DKVLAB_BUILD_PYTHON=ON), and the plotting scripts (plot_run, plot_accuracy).

    import kvlab
    kvlab.capacity("llama-3.1-70b", "a100-80gb", "128k", num_gpus=4)["max_sequences"]   # 3
    r = kvlab.run("configs/experiments/llama8b_h100_load.yaml", set=["workload.num_requests=200"])
    r.summary          # one row per sweep point (summary.json's keys)
    r.requests         # one row per request, with its point

Technique passes (Tangram, RedKnot, Vortex, quantisation, speculative) are not exposed yet:
they are being built as core plan passes (issue 9); `plan_footprint` takes an explicit plan.
"""
import json
import os
import tempfile
from dataclasses import dataclass


def _ext():
    try:
        from . import _kvlab
    except ImportError as e:  # the plotting scripts work without the extension
        raise ImportError(
            "kvlab's C++ extension is not built: run `pip install .` in the repository "
            "(or configure CMake with -DKVLAB_BUILD_PYTHON=ON)") from e
    return _kvlab


def __getattr__(name):
    if name == "ConfigError":
        return _ext().ConfigError
    raise AttributeError(name)


def capacity(model, gpu, context, num_gpus=1, weights="bf16", kv_dtype="bf16", kv_group_size=0,
             block_size=16, gpu_memory_utilization=0.9):
    """How many sequences of `context` tokens ("128k", 4096) fit: a dict with the arithmetic's
    steps, as `kvlab capacity --json` prints it."""
    return _ext().capacity(model, gpu, str(context), num_gpus, weights, kv_dtype, kv_group_size, block_size,
                           gpu_memory_utilization)


def model(name):
    """A catalog model (or model YAML / config.json path): architecture, parameter counts."""
    return _ext().model(name)


def catalog(kind="models"):
    """Names in the catalog: "models", "gpus" or "clusters"."""
    return _ext().catalog(kind)


def plan_footprint(model, kv_plan, tokens):
    """Bytes, pages and per-group footprint of one sequence under a KV plan: `kv_plan` is the
    `kv_plan:` section as a dict or YAML text (core/config/kv_plan_loader.h)."""
    text = kv_plan if isinstance(kv_plan, str) else json.dumps(kv_plan)
    return _ext().plan_footprint(model, text, str(tokens))


@dataclass
class RunResult:
    summary: "pandas.DataFrame"   # one row per sweep point: point, its axis values, summary.json's keys
    requests: "pandas.DataFrame"  # one row per request: point, id, arrival_s, ttft_s, tpot_s, …


def run(config, set=None):
    """Simulates an experiment — a YAML path or the experiment as a dict — and returns its
    summary and per-request results as DataFrames. Nothing is written to disk (`kvlab run`
    writes result folders). `set`: ["workload.rate=20", …] as --set."""
    import pandas as pd

    overrides = list(set or [])
    if isinstance(config, (str, os.PathLike)):
        points = _ext().run(os.fspath(config), overrides)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            json.dump(config, f)  # JSON is YAML
            path = f.name
        try:
            points = _ext().run(path, overrides)
        finally:
            os.unlink(path)
    rows, frames = [], []
    for p in points:
        row = {"point": p["name"], **dict(p["values"])}
        for key, value in p["summary"].items():
            if isinstance(value, dict):
                row.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                row[key] = value
        rows.append(row)
        frame = pd.DataFrame(p["requests"])
        done = frame["finish_s"] >= 0
        frame["ttft_s"] = (frame["first_token_s"] - frame["arrival_s"]).where(done)
        frame["e2e_s"] = (frame["finish_s"] - frame["arrival_s"]).where(done)
        # (finish − first token) / (output − 1), 0 for one token; empty (NaN) when rejected.
        steps = (frame["output_tokens"] - 1).clip(lower=1)
        tpot = ((frame["finish_s"] - frame["first_token_s"]) / steps).where(frame["output_tokens"] > 1, 0.0)
        frame["tpot_s"] = tpot.where(done)
        frame.insert(0, "point", p["name"])
        frames.append(frame)
    return RunResult(pd.DataFrame(rows), pd.concat(frames, ignore_index=True))
