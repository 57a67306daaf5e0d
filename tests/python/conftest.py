# SPDX-License-Identifier: Apache-2.0
"""Shared pytest setup: plots render with the Agg backend (no display), and the repository
root is importable so tests can reach python/kvlab (and a build's extension, below)."""
import os
import pathlib
import sys

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

# The _kvlab extension of a CMake build (KVLAB_BUILD_DIR, e.g. build/release) joins the source
# package, so `import kvlab` finds both the Python files and the extension.
BUILD = os.environ.get("KVLAB_BUILD_DIR")
if BUILD:
    import kvlab  # noqa: E402

    kvlab.__path__.append(str(pathlib.Path(BUILD) / "python" / "kvlab"))
