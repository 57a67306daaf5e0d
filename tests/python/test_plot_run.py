# SPDX-License-Identifier: Apache-2.0
"""python/kvlab/plot_run.py on a small results folder laid out as `kvlab run` writes it
(made here), and its exit codes when there is nothing to draw or no matplotlib."""
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "python" / "kvlab" / "plot_run.py"

REQUESTS = "id,arrival_s,first_token_s,finish_s,ttft_s,tpot_s,e2e_s,prompt_tokens,output_tokens,prefix_hit_tokens,preemptions,replica,priority,session,rejected"
TIMELINE = "time_s,replica,running,waiting,kv_pages_used,kv_tokens_filled,kv_bytes_used,kv_bytes_reserved,kv_bytes_cached,kv_bytes_free,kv_fragmentation_bytes,iteration_s,weights_s,kv_s,compute_s,communication_s,overhead_s"


def summary(rate, scale):
    lat = {"mean": scale, "p50": scale, "p90": 2 * scale, "p99": 3 * scale}
    return {
        "completed_requests": 50,
        "throughput_output_tokens_per_s": 100.0 * rate,
        "throughput_requests_per_s": rate * 0.9,
        "ttft_s": lat,
        "tpot_s": lat,
        "e2e_s": lat,
        "wall_s": 0.01,
    }


def make_point(results, name, scale, replicas=1):
    folder = results / name
    folder.mkdir(parents=True)
    rows = [REQUESTS]
    for i in range(50):
        a = i * 0.1
        rows.append(f"{i},{a},{a + 0.02 * scale},{a + scale},{0.02 * scale},{0.01 * scale},{scale},100,20,0,0,0,0,-1,")
    rows.append('50,5.0,,,,,,999999,20,0,0,-1,0,-1,"never fits in KV memory: 1, 2"')
    (folder / "requests.csv").write_text("\n".join(rows) + "\n")
    timeline = [TIMELINE]
    for i in range(30):
        for r in range(replicas):
            used = (i % 7) * 1 << 28
            timeline.append(f"{i * 0.1},{r},{i % 7},{i % 3},0,0,{used},{used + (1 << 26)},0,{(40 << 30) - used},{1 << 26},0.01,0.006,0.002,0.004,0,0.00003")
    (folder / "timeline.csv").write_text("\n".join(timeline) + "\n")


def make_results(tmp_path, replicas=1):
    points = []
    for i, (rate, scale) in enumerate(((5, 1.0), (10, 2.0), (20, 4.0))):
        name = f"p00{i}_workload.rate={rate}"
        make_point(tmp_path, name, scale, replicas)
        points.append({"name": name, "status": "done", "values": {"workload.rate": rate}, "summary": summary(rate, scale)})
    (tmp_path / "sweep.json").write_text(json.dumps({"experiment": "t", "axes": [], "points": points}))


def run(path, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_three_plots_are_drawn(tmp_path, replicas):
    pytest.importorskip("matplotlib")
    make_results(tmp_path, replicas)
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("latency.png", "load.png", "kv_memory.png"):
        png = tmp_path / name
        assert png.exists() and png.stat().st_size > 10_000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_folder_is_an_error(tmp_path):
    pytest.importorskip("matplotlib")
    done = run(tmp_path)
    assert done.returncode == 1
    assert "no completed points" in done.stderr


def test_without_matplotlib_it_says_so_and_exits_3(tmp_path):
    # A matplotlib package that fails to import stands in for a missing one.
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no module named matplotlib (test)')\n")
    make_results(tmp_path / "results")
    done = run(tmp_path / "results", env={"PYTHONPATH": str(tmp_path / "fake"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 3
    assert "matplotlib is not available" in done.stderr
    assert not (tmp_path / "results" / "latency.png").exists()


def load_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("plot_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_second_sweep_axis_gives_one_load_curve_per_value(tmp_path):
    plot_run = load_module()
    points = []
    for caching in (False, True):
        for rate in (4, 1, 2):  # out of order: each curve is sorted by load
            points.append((f"r{rate}_{caching}", {"workload.rate": rate, "scheduler.enable_prefix_caching": caching},
                           summary(rate, 1.0)))
    key, label, xs = plot_run.x_axis(tmp_path, points)
    assert key == "workload.rate" and label == "offered load (requests/s)"
    lines = plot_run.series(points, key, xs)
    assert list(lines) == ["scheduler.enable_prefix_caching=False", "scheduler.enable_prefix_caching=True"]
    for line in lines.values():
        assert [x for x, _ in line] == [1, 2, 4]


def test_session_workloads_label_the_load_in_sessions(tmp_path):
    plot_run = load_module()
    (tmp_path / "p0").mkdir()
    (tmp_path / "p0" / "resolved.yaml").write_text("workload:\n  sessions: {turns: 5, think_time: 10 s}\n")
    _, label, _ = plot_run.x_axis(tmp_path, [("p0", {"workload.rate": 2}, summary(2, 1.0))])
    assert label == "offered load (sessions/s)"
    (tmp_path / "p0" / "resolved.yaml").write_text("workload:\n  sessions: {turns: 1, think_time: 0 s}\n")
    _, label, _ = plot_run.x_axis(tmp_path, [("p0", {"workload.rate": 2}, summary(2, 1.0))])
    assert label == "offered load (requests/s)"
