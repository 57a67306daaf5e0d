#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Reference token ids for bpe_tokenizer_test: HuggingFace `tokenizers` built from the same
# GGUF vocabulary and merges (read with the `gguf` package), with SmolLM2's pre-tokenizer
# (digits split one by one, then GPT-2's byte-level pattern). Prints the ids, one line.
# Exit code 77 when `gguf` or `tokenizers` is not installed (the C++ test then skips).
import sys

try:
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
except ImportError as e:  # pragma: no cover
    print(f"missing Python package: {e.name}", file=sys.stderr)
    sys.exit(77)


def field_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def main():
    gguf_path, text_path, num_chars = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reader = gguf.GGUFReader(gguf_path)
    tokens = field_strings(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field_strings(reader, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    with open(text_path, encoding="utf-8") as f:
        text = f.read()[:num_chars]
    print(" ".join(str(i) for i in tok.encode(text).ids))


if __name__ == "__main__":
    main()
