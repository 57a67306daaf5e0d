#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Reference token ids for spm_tokenizer_test: Google's `sentencepiece` library running a BPE
# model rebuilt from the GGUF's own pieces, scores and types (read with the `gguf` package):
# byte fallback on; the normalizer as Gemma's GGUF says (tokenizer.ggml.add_space_prefix
# false): identity rules, spaces escaped to U+2581, no dummy prefix, whitespace kept. No BOS.
# User-defined pieces are split out of the raw text first, longest match first, as llama.cpp
# and HuggingFace `tokenizers` do (spm_tokenizer.h says why); `sentencepiece` encodes the rest.
# The GGUF may be several parts joined by " + ". Prints the ids on one line.
# Exit code 77 when `gguf`, `sentencepiece` or its protobuf module is missing (the test skips).
import os
import sys

try:
    import gguf
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
except ImportError as e:  # pragma: no cover
    print(f"missing Python package: {e.name}", file=sys.stderr)
    sys.exit(77)

from gguf_parts import open_reader  # noqa: E402 - after the packages it needs


def field(reader, key):
    return reader.fields[key].contents()


def build_processor(reader):
    model = pb.ModelProto()
    tokens = field(reader, "tokenizer.ggml.tokens")
    scores = field(reader, "tokenizer.ggml.scores")
    types = field(reader, "tokenizer.ggml.token_type")
    for piece, score, kind in zip(tokens, scores, types):
        p = model.pieces.add()
        p.piece, p.score, p.type = piece, score, kind  # GGUF's token types are SentencePiece's
    t = model.trainer_spec
    t.model_type = pb.TrainerSpec.BPE
    t.vocab_size = len(tokens)
    t.byte_fallback = True
    t.unk_id = field(reader, "tokenizer.ggml.unknown_token_id")
    t.bos_id = field(reader, "tokenizer.ggml.bos_token_id")
    t.eos_id = field(reader, "tokenizer.ggml.eos_token_id")
    t.pad_id = field(reader, "tokenizer.ggml.padding_token_id")
    n = model.normalizer_spec
    n.name = "identity"
    n.add_dummy_prefix = bool(field(reader, "tokenizer.ggml.add_space_prefix"))
    n.remove_extra_whitespaces = False
    n.escape_whitespaces = True
    return spm.SentencePieceProcessor(model_proto=model.SerializeToString())


def main():
    spec, text_path, num_chars = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reader, tmp = open_reader(spec)
    try:
        sp = build_processor(reader)
        with open(text_path, encoding="utf-8") as f:
            text = f.read()[:num_chars]
        print(" ".join(str(i) for i in encode(reader, sp, text)))
    finally:
        if tmp:
            os.remove(tmp)


def encode(reader, sp, text):
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    user = sorted(((t, i) for i, t in enumerate(tokens) if types[i] == 4), key=lambda p: -len(p[0]))
    ids, start, pos = [], 0, 0
    while pos < len(text):
        match = next(((t, i) for t, i in user if text.startswith(t, pos)), None)
        if match is None:
            pos += 1
            continue
        ids += sp.encode(text[start:pos]) if pos > start else []
        ids.append(match[1])
        pos += len(match[0])
        start = pos
    return ids + (sp.encode(text[start:]) if start < len(text) else [])


if __name__ == "__main__":
    main()
