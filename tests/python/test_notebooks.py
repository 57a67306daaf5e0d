# SPDX-License-Identifier: Apache-2.0
"""Every notebook in notebooks/ runs top to bottom (nbclient, a fresh kernel), on the small
configurations it holds; together they must stay under two minutes (CI budget). Skipped, with
the reason, without nbclient/ipykernel or without kvlab's extension."""
import os
import pathlib
import time

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
kvlab = pytest.importorskip("kvlab")
try:
    kvlab._ext()
except ImportError as e:  # pragma: no cover - depends on the build
    pytest.skip(f"kvlab's extension is not built: {e}", allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMES = {}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    TIMES[path.stem] = time.monotonic() - started
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_notebooks_together_stay_under_two_minutes():
    if len(TIMES) != len(NOTEBOOKS):
        pytest.skip("not every notebook ran in this session")
    assert sum(TIMES.values()) < 120, TIMES
