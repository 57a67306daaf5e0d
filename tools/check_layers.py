#!/usr/bin/env python3
"""Enforces the include arrows of docs/architecture.md: core knows nothing of sim, ref or
gpu; sim, ref and gpu know nothing of each other; yaml-cpp only in core/config/*.cc;
gpu/kernels sees no core headers. Exits 1 listing every violation."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "core": ["sim/", "ref/", "gpu/", "experiments/", "python/"],
    "sim": ["ref/", "gpu/", "experiments/"],
    "ref": ["sim/", "gpu/", "experiments/"],
    "gpu": ["sim/", "ref/", "experiments/"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
SOURCES = (".h", ".cc", ".cuh", ".cu")


def violations():
    for layer, banned in FORBIDDEN.items():
        for path in sorted((ROOT / layer).rglob("*")):
            if path.suffix not in SOURCES:
                continue
            rel = path.relative_to(ROOT).as_posix()
            for header in INCLUDE.findall(path.read_text(errors="replace")):
                if any(header.startswith(b) for b in banned):
                    yield f"{rel}: includes {header}: {layer}/ must not depend on it"
                if header.startswith("yaml-cpp/") and not (
                    rel.startswith("core/config/") and path.suffix == ".cc"
                ):
                    yield f"{rel}: includes {header}: yaml-cpp belongs in core/config/*.cc only"
                if rel.startswith("gpu/kernels/") and header.startswith("core/"):
                    yield f"{rel}: includes {header}: device code takes POD params, not core types"


def main():
    found = list(violations())
    for v in found:
        print(v, file=sys.stderr)
    if found:
        print(f"check_layers: {len(found)} violation(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
