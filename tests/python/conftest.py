# SPDX-License-Identifier: Apache-2.0
"""Shared pytest setup: plots render with the Agg backend (no display), and the repository
root is importable so tests can reach python/kvlab."""
import os
import pathlib
import sys

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
