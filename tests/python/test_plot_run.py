"""python/kvlab/plot_run.py draws its three figures from a results folder laid out as
`kvlab run` writes it (a small one made here)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "python" / "kvlab" / "plot_run.py"


def make_point(folder, rate, scale):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}\n")
    (folder / "resolved.yaml").write_text(f"workload:\n  rate: {rate}\n")
    rows = ["id,arrival_s,first_token_s,finish_s,prompt_tokens,output_tokens,preemptions,rejected"]
    for i in range(50):
        rows.append(f"{i},{i * 0.1},{i * 0.1 + 0.02 * scale},{i * 0.1 + 1.0 * scale},100,20,0,")
    (folder / "requests.csv").write_text("\n".join(rows) + "\n")
    timeline = ["time_s,running,waiting,kv_pages_used,kv_tokens_filled,iteration_s,weights_s,kv_s,compute_s,overhead_s"]
    for i in range(30):
        timeline.append(f"{i * 0.1},{i % 7},{i % 3},{10 * i},{150 * i},0.01,0.006,0.002,0.004,0.00003")
    (folder / "timeline.csv").write_text("\n".join(timeline) + "\n")


def test_plots_are_drawn(tmp_path):
    make_point(tmp_path / "p000_workload.rate=5", 5, 1)
    make_point(tmp_path / "p001_workload.rate=10", 10, 2)
    (tmp_path / "sweep.csv").write_text(
        "point,completed_requests,throughput_output_tokens_per_s,ttft_p50_s,tpot_p50_s,e2e_p99_s,preemptions\n"
        "p000_workload.rate=5,50,1000,0.02,0.05,1.0,0\n"
        "p001_workload.rate=10,50,1900,0.04,0.1,2.0,0\n"
    )
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("latency.png", "load.png", "kv_memory.png"):
        png = tmp_path / name
        assert png.exists() and png.stat().st_size > 10_000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_folder_is_an_error(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "no completed points" in done.stderr
