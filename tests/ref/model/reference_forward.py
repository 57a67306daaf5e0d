#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# An independent forward pass of a llama GGUF for llama_model_test: weights dequantized by
# the `gguf` package's own dequantizers, the network written in numpy (float64) from the
# architecture description, not from kvlab's C++. Reads token ids on stdin (one line) and
# prints, per position, the log-probability of the next given token and the arg-max, then
# the full log-softmax of the last position. Exit code 77 when `gguf` or numpy is missing.
import sys

try:
    import numpy as np
    import gguf
    from gguf.quants import dequantize
except ImportError as e:  # pragma: no cover
    print(f"missing Python package: {e.name}", file=sys.stderr)
    sys.exit(77)


def scalar(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.parts[f.data[0]][0]


def main():
    path, num_layers = sys.argv[1], int(sys.argv[2])
    ids = [int(t) for t in sys.stdin.read().split()]
    r = gguf.GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}

    def w(name):  # [ne1, ne0] float64
        t = tensors[name]
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        return a.reshape([int(d) for d in reversed(t.shape)])

    heads = int(scalar(r, "llama.attention.head_count"))
    kv_heads = int(scalar(r, "llama.attention.head_count_kv"))
    eps = float(scalar(r, "llama.attention.layer_norm_rms_epsilon"))
    theta = float(scalar(r, "llama.rope.freq_base", 10000.0))
    emb = w("token_embd.weight")
    hidden = emb.shape[1]
    d = hidden // heads
    n = len(ids)

    def norm(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    # Adjacent-pair rotation (ggml "normal" RoPE on the converter's permuted Q/K rows).
    pos = np.arange(n)[:, None]
    ang = pos * theta ** (-np.arange(0, d, 2) / d)[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):  # [n, h, d]
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos[:, None, :] - b * sin[:, None, :]
        out[..., 1::2] = a * sin[:, None, :] + b * cos[:, None, :]
        return out

    x = emb[ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(num_layers):
        p = f"blk.{l}."
        h = norm(x, w(p + "attn_norm.weight"))
        q = rope((h @ w(p + "attn_q.weight").T).reshape(n, heads, d))
        k = rope((h @ w(p + "attn_k.weight").T).reshape(n, kv_heads, d))
        v = (h @ w(p + "attn_v.weight").T).reshape(n, kv_heads, d)
        k = np.repeat(k, heads // kv_heads, axis=1)
        v = np.repeat(v, heads // kv_heads, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = np.einsum("hqk,khd->qhd", s, v).reshape(n, hidden)
        x = x + a @ w(p + "attn_output.weight").T
        h = norm(x, w(p + "ffn_norm.weight"))
        g = h @ w(p + "ffn_gate.weight").T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w(p + "ffn_up.weight").T)) @ w(p + "ffn_down.weight").T
    head = w("output.weight") if "output.weight" in tensors else emb
    logits = norm(x, w("output_norm.weight")) @ head.T
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    for i in range(n - 1):
        print(f"{logp[i, ids[i + 1]]:.9g} {int(logp[i].argmax())}")
    print(" ".join(f"{v:.9g}" for v in logp[n - 1]))


if __name__ == "__main__":
    main()
