#!/usr/bin/env python3
"""Static SASS instruction counts of the decode kernels' page loop, from `cuobjdump --dump-sass`.

The page loop is the innermost backward branch whose range holds at least 32 HMMA. Since
the masked and unmasked pages run separate copies of the page body (paged_decode.cuh), the
loop holds both; the count that matters for speed is the unmasked page's path: the loop
head up to the branch into the masked copy, the unmasked copy up to its jump to the join,
and the join (the refill) up to the back branch.

    python3 sass_page_loop.py SASS_DUMP [NAME_REGEX]
prints, per kernel: the whole loop's count, the unmasked path's (or "-" where the loop has
one body) and its most frequent opcodes.
"""
import collections
import re
import sys


def parse(text):
    for block in re.split(r"\n\s*Function : ", text)[1:]:
        name = block.split("\n", 1)[0].strip()
        ins = [(int(m.group(1), 16), m.group(2).strip())
               for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", block)]
        yield name, ins


def opcode(text):
    if text.startswith("@"):
        text = text.split(None, 1)[1]
    return text.split()[0].split(".")[0]


def target(text):
    m = re.search(r"BRA(?:\.\w+)* +(?:\w+, )?0x([0-9a-f]+)", text)
    return int(m.group(1), 16) if m else None


def page_loop(ins):
    best = None
    for i, (a, t) in enumerate(ins):
        if opcode(t) != "BRA":
            continue
        tgt = target(t)
        if tgt is None or tgt >= a:
            continue
        rng = [x for x in ins if tgt <= x[0] <= a]
        if sum(opcode(x[1]) == "HMMA" for x in rng) >= 32 and (best is None or len(rng) < len(best)):
            best = rng
    return best


def unmasked_path(loop):
    """The path through the loop that skips the masked copy, or None if there is one body."""
    if sum(opcode(t) == "HMMA" for _, t in loop) < 64:
        return None
    for i, (a, t) in enumerate(loop):
        tgt = target(t) if opcode(t) == "BRA" and t.startswith("@") else None
        if tgt is None or tgt <= a:
            continue
        # Fall-through: a body with 32 HMMA that ends in an unconditional jump to the join.
        hmma = 0
        for j in range(i + 1, len(loop)):
            aj, tj = loop[j]
            hmma += opcode(tj) == "HMMA"
            if opcode(tj) == "BRA" and not tj.startswith("@"):
                join = target(tj)
                if hmma == 32 and join is not None and join > aj:
                    return loop[: j + 1] + [x for x in loop if x[0] >= join]
                break
    return None


def main():
    text = open(sys.argv[1]).read()
    pattern = sys.argv[2] if len(sys.argv) > 2 else None
    for name, ins in parse(text):
        if pattern and not re.search(pattern, name):
            continue
        loop = page_loop(ins)
        if loop is None:
            continue
        path = unmasked_path(loop)
        counted = path if path is not None else loop
        ops = collections.Counter(opcode(t) for _, t in counted)
        print(f"{name[-70:]} loop {len(loop)} unmasked {len(path) if path else '-'} "
              + " ".join(f"{k}:{v}" for k, v in ops.most_common(12)))


if __name__ == "__main__":
    main()
