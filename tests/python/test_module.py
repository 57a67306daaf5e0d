# SPDX-License-Identifier: Apache-2.0
"""The kvlab Python module (python/kvlab, the _kvlab extension) against hand arithmetic and
against the command line. Skipped, with the reason, when the extension is not built."""
import json
import pathlib
import subprocess

import pytest

kvlab = pytest.importorskip("kvlab")
try:
    kvlab._ext()
except ImportError as e:  # pragma: no cover - depends on the build
    pytest.skip(f"kvlab's extension is not built: {e}", allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_capacity_matches_hand_arithmetic():
    # Llama-3.1-70B bf16 on 4 × A100 80 GB: usable 0.9 × 80 GiB = 72 GiB per GPU; weights
    # 141.1 GB / 4; one 131072-token sequence is 131072 × 327,680 B = 40 GiB, 10 GiB per GPU;
    # floor(39.1 GiB / 10 GiB) = 3.
    r = kvlab.capacity("llama-3.1-70b", "a100-80gb", "128k", num_gpus=4)
    assert r["kv_bytes_per_token"] == 327_680
    assert r["sequence_bytes_per_gpu"] == 10 * 2**30
    assert r["max_sequences"] == 3
    assert r["steps"][0][0] == "weights"


def test_capacity_equals_the_command_line():
    binary = ROOT / "build" / "release" / "experiments" / "kvlab"
    import os
    build = os.environ.get("KVLAB_BUILD_DIR")
    if build:
        binary = pathlib.Path(build) / "experiments" / "kvlab"
    if not binary.exists():
        pytest.skip(f"no kvlab binary at {binary}")
    out = subprocess.run([str(binary), "capacity", "--json", "--model", "qwen3-32b", "--gpu", "h100-sxm",
                          "--context", "32k", "--kv-dtype", "int4", "--num-gpus", "2"],
                         check=True, capture_output=True, text=True).stdout
    cli = json.loads(out)
    py = kvlab.capacity("qwen3-32b", "h100-sxm", "32k", num_gpus=2, kv_dtype="int4")
    for key in ("weights_bytes", "kv_bytes_per_token", "sequence_bytes_per_gpu", "max_sequences"):
        assert py[key] == cli[key], key


def test_bad_input_raises_config_error_with_the_reason():
    with pytest.raises(kvlab.ConfigError, match="unknown model 'lama-3.1-8b'.*did you mean 'llama-3.1-8b'"):
        kvlab.capacity("lama-3.1-8b", "h100-sxm", "4k")
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        kvlab.capacity("llama-3.1-8b", "h100-sxm", "4k", kv_dtype="int3")


def test_plan_footprint_of_a_window_plan():
    # Llama-3.1-8B, 4 sinks + a 124-token window: 128 tokens per head kept at 1000 tokens;
    # bf16: 2 × 32 layers × 8 heads × 128 tokens × 256 B = 16 MiB filled; pages of 16 tokens
    # hold 128 tokens exactly, so nothing is wasted.
    f = kvlab.plan_footprint("llama-3.1-8b", {"retention": {"policy": "sinks_window", "sink_tokens": 4,
                                                           "window_tokens": 124}}, 1000)
    assert f["bytes_filled"] == 2 * 32 * 8 * 128 * 256
    assert f["kv_bytes_per_token"] == 131_072
    with pytest.raises(kvlab.ConfigError, match="retention.policy"):
        kvlab.plan_footprint("llama-3.1-8b", {"retention": {"policy": "everything"}}, 10)


def test_run_returns_dataframes_equal_to_kvlab_run(tmp_path):
    experiment = {
        "schema_version": 1, "name": "py_run", "model": "llama-3.1-8b", "gpu": "h100-sxm",
        "workload": {"rate": 4, "num_requests": 40, "seed": 3,
                     "prompt": {"distribution": "fixed", "mean": 512},
                     "output": {"distribution": "fixed", "mean": 64}},
        "sweep": {"grid": {"workload.rate": [2, 8]}},
    }
    r = kvlab.run(experiment)
    assert list(r.summary["point"]) == ["p000_workload.rate=2", "p001_workload.rate=8"]
    assert (r.summary["completed_requests"] == 40).all()
    assert len(r.requests) == 80
    assert (r.requests["output_tokens"] == 64).all()
    # The same experiment through `kvlab run` writes the same summary (wall_s aside).
    build = pathlib.Path(__import__("os").environ.get("KVLAB_BUILD_DIR", ROOT / "build" / "release"))
    binary = build / "experiments" / "kvlab"
    if not binary.exists():
        return
    path = tmp_path / "e.yaml"
    path.write_text(json.dumps(experiment))
    subprocess.run([str(binary), "run", str(path), "--out", str(tmp_path / "out"), "--no-plots"],
                   check=True, capture_output=True)
    cli = json.loads((tmp_path / "out" / "p001_workload.rate=8" / "summary.json").read_text())
    row = r.summary.iloc[1]
    for key in ("completed_requests", "throughput_output_tokens_per_s", "iterations", "max_concurrency"):
        assert row[key] == cli[key], key
    assert row["ttft_s.p99"] == cli["ttft_s"]["p99"]
