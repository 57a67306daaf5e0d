#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Reference values for gguf_kquants_test: the first N elements of each named GGUF tensor as
# the `gguf` package's own dequantizers (gguf.quants, numpy) compute them: per tensor a line
# "<name> <type>", then its values one a line. (One call for all tensors: reading the
# 262k-token vocabulary dominates the run time.) The GGUF
# may be given as several parts joined by " + " (concatenated into a temporary file).
# Exit code 77 when `gguf` or numpy is not installed (the C++ test then skips).
import os
import sys

try:
    import numpy as np
    import gguf
    from gguf.quants import dequantize
except ImportError as e:  # pragma: no cover
    print(f"missing Python package: {e.name}", file=sys.stderr)
    sys.exit(77)

from gguf_parts import open_reader  # noqa: E402 - after the packages it needs


def main():
    spec, count, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    reader, tmp = open_reader(spec)
    try:
        for name in names:
            t = next(t for t in reader.tensors if t.name == name)
            values = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)[:count]
            print(name, t.tensor_type.name)
            sys.stdout.write("\n".join(f"{v:.9g}" for v in values) + "\n")
    finally:
        if tmp:
            os.remove(tmp)


if __name__ == "__main__":
    main()
