#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes fuzz/seeds/tiny.gguf: the fuzz_gguf target's seed, a Llama-architecture model of one
layer (hidden 32, 2 query heads, 1 KV head, FFN 32) with a byte-level BPE vocabulary of 256
byte symbols and 4 merges, and tensors in every type kvlab reads (F32, F16, BF16, Q8_0, Q4_0,
Q4_1). Written with the gguf package (llama.cpp's own writer), an implementation independent
of ref/model/gguf_reader.cc; weights are seeded random numbers, the file is ~20 KB.

    python3 fuzz/make_tiny_gguf.py [out.gguf]
"""
import sys

import numpy as np
import gguf


def byte_alphabet():
    """GPT-2's printable stand-ins for the 256 bytes (ref/model/bpe_tokenizer.h, step 2)."""
    symbols, nxt = [], 256
    for b in range(256):
        printable = 33 <= b <= 126 or 161 <= b <= 172 or b >= 174
        symbols.append(chr(b if printable else nxt))
        if not printable:
            nxt += 1
    return symbols


def main(out):
    rng = np.random.default_rng(1)
    hidden, heads, kv_heads, ffn = 32, 2, 1, 32
    head_dim = hidden // heads
    merges = ["h e", "l l", "he ll", "Ġ w"]
    tokens = byte_alphabet() + [m.replace(" ", "") for m in merges]
    vocab = len(tokens)

    w = gguf.GGUFWriter(out, "llama")
    w.add_name("tiny-fuzz-seed")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_merges(merges)

    def tensor(name, rows, cols, qtype):
        data = rng.standard_normal((rows, cols)).astype(np.float32) * 0.1
        if qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, data)
        elif qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, data.astype(np.float16))
        else:
            q = gguf.quants.quantize(data, qtype)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    T = gguf.GGMLQuantizationType
    tensor("token_embd.weight", vocab, hidden, T.F16)
    w.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(hidden, dtype=np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(hidden, dtype=np.float32))
    tensor("blk.0.attn_q.weight", heads * head_dim, hidden, T.Q8_0)
    tensor("blk.0.attn_k.weight", kv_heads * head_dim, hidden, T.Q4_0)
    tensor("blk.0.attn_v.weight", kv_heads * head_dim, hidden, T.Q4_1)
    tensor("blk.0.attn_output.weight", hidden, heads * head_dim, T.BF16)
    tensor("blk.0.ffn_gate.weight", ffn, hidden, T.F32)
    tensor("blk.0.ffn_up.weight", ffn, hidden, T.Q8_0)
    tensor("blk.0.ffn_down.weight", hidden, ffn, T.F16)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/seeds/tiny.gguf")
