# SPDX-License-Identifier: Apache-2.0
"""A sweep spread over a local Ray cluster (started here) writes point folders byte-identical
to `kvlab run --jobs 2` (summary.json's wall_s line aside), and resumes. Skipped, with the
reason, without Ray, the extension or the kvlab binary."""
import os
import pathlib
import subprocess

import pytest

ray = pytest.importorskip("ray")
kvlab = pytest.importorskip("kvlab")
try:
    kvlab._ext()
except ImportError as e:  # pragma: no cover - depends on the build
    pytest.skip(f"kvlab's extension is not built: {e}", allow_module_level=True)
from kvlab.ray_sweep import run_on_ray  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("KVLAB_BUILD_DIR", ROOT / "build" / "release")) / "experiments" / "kvlab"
EXPERIMENT = """schema_version: 1
name: ray_sweep
model: llama-3.1-8b
gpu: h100-sxm
workload:
  rate: 4
  num_requests: 60
  seed: 7
  prompt: {distribution: lognormal, mean: 800, sigma: 1.0, min: 4, max: 8192}
  output: {distribution: uniform, mean: 200, half_width: 100}
sweep:
  grid:
    workload.rate: [2, 8, 32]
    kv_cache_dtype: [bf16, int8]
"""


def without_wall(text):
    return "\n".join(line for line in text.splitlines() if '"wall_s"' not in line)


@pytest.fixture(scope="module")
def local_ray():
    if not BINARY.exists():
        pytest.skip(f"no kvlab binary at {BINARY}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_sweep_equals_the_local_run_and_resumes(tmp_path, local_ray):
    exp = tmp_path / "e.yaml"
    exp.write_text(EXPERIMENT)
    subprocess.run([str(BINARY), "run", str(exp), "--out", str(tmp_path / "local"), "--jobs", "2", "--no-plots"],
                   check=True, capture_output=True)
    ran = run_on_ray(exp, tmp_path / "ray", binary=str(BINARY))
    assert len(ran) == 6
    for name in ran:
        local, remote = tmp_path / "local" / name, tmp_path / "ray" / name
        for f in ("resolved.yaml", "requests.csv", "timeline.csv"):
            assert (local / f).read_bytes() == (remote / f).read_bytes(), f"{name}/{f}"
        assert without_wall((local / "summary.json").read_text()) == without_wall((remote / "summary.json").read_text())
    assert not [p for p in (tmp_path / "ray").iterdir() if p.name.startswith(".tmp")]

    assert run_on_ray(exp, tmp_path / "ray", binary=str(BINARY), resume=True) == []
    (tmp_path / "ray" / ran[3] / "timeline.csv").unlink()  # an incomplete folder is rerun
    assert run_on_ray(exp, tmp_path / "ray", binary=str(BINARY), resume=True) == [ran[3]]
