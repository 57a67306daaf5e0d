# SPDX-License-Identifier: Apache-2.0
"""bench/gpu/collectives.py's fit and links file, without torch or a GPU: exact synthetic
timings fitted back by hand, world size 1 reported as not measured. (That yaml-cpp reads
the file as the cost model expects: tests/experiments/calibration_fit_test.cc.)"""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("collectives", ROOT / "bench" / "gpu" / "collectives.py")
collectives = importlib.util.module_from_spec(spec)
spec.loader.exec_module(collectives)


def test_bus_factors_are_nccl_tests():
    assert collectives.bus_factor("all_reduce", 4) == 1.5  # 2·3/4
    assert collectives.bus_factor("all_gather", 8) == 0.875  # 7/8
    assert collectives.bus_factor("all_to_all", 2) == 0.5
    assert collectives.bus_factor("all_reduce", 1) == 0.0


def test_fit_recovers_latency_and_bandwidth():
    # 4 ranks, all-reduce: t = 10 µs + 1.5 · bytes / 100 GB/s. 1 MiB: 10 + 15.73 µs.
    sizes = [1 << 20, 1 << 22, 1 << 24]
    times = [1e-5 + 1.5 * b / 1e11 for b in sizes]
    f = collectives.fit_link("all_reduce", 4, sizes, times)
    assert abs(f["latency_s"] - 1e-5) < 1e-12
    assert abs(f["bus_bytes_per_s"] - 1e11) / 1e11 < 1e-9
    assert f["max_rel_residual"] < 1e-9


def test_world_size_one_is_not_measured():
    rows = [{"collective": "all_reduce", "world_size": "1", "bytes": str(b), "time_s": str(t)}
            for b, t in [(4096, 8e-6), (1 << 20, 1.2e-5)]]
    fits = collectives.fits_from_rows(rows)
    assert fits[0]["bus_bytes_per_s"] is None
    text = collectives.links_yaml(fits, "1x NVIDIA H200", "2026-12-03", "abc", 450e9)
    assert "  multi_gpu_measured: false\n" in text
    assert "nothing multi-GPU was measured" in text
    assert "      bus_bytes_per_s: 0  # not measured\n" in text
    assert "      latency_s: 1.000000e-05\n" in text  # the mean of 8 and 12 µs


def test_links_file_with_two_gpus():
    sizes = [1 << 20, 1 << 24]
    fit = collectives.fit_link("all_gather", 2, sizes, [2e-5 + 0.5 * b / 3.6e11 for b in sizes])
    text = collectives.links_yaml([fit], "2x NVIDIA H200", "2026-12-03", "abc", 450e9)
    assert "  multi_gpu_measured: true\n" in text
    assert "note:" not in text
    assert "      bus_bytes_per_s: 3.600000e+11\n" in text
    assert "      efficiency: 0.8000\n" in text  # 360 / 450 GB/s
