#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# An independent forward pass of a Gemma 3 GGUF for gemma3_model_test: weights dequantized by
# the `gguf` package's own dequantizers, the network written in numpy (float64) from the
# architecture as HuggingFace's Gemma3 text model describes it (embedding × √hidden;
# per layer: RMSNorm → Q/K/V → per-head RMSNorm of Q and K → rotate-half RoPE, base 10k on
# local layers and rope.freq_base on every 6th → attention (local layers: the last
# `window` keys) → output projection → RMSNorm → residual; RMSNorm → GELU-tanh(gate)·up →
# down → RMSNorm → residual; final RMSNorm; tied LM head), not from kvlab's C++. The GGUF
# stores Gemma's norm weights as 1 + w already. Reads token ids on stdin; args: the GGUF
# (parts joined by " + "), the layer count, and optionally a window that replaces the file's
# (to test windowing on short inputs). Prints per position the log-probability of the next
# given token and the arg-max, then the full log-softmax of the last position.
# Exit code 77 when `gguf` or numpy is missing.
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


def scalar(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.parts[f.data[0]][0]


def main():
    spec, num_layers = sys.argv[1], int(sys.argv[2])
    ids = [int(t) for t in sys.stdin.read().split()]
    r, tmp = open_reader(spec)
    try:
        run(r, ids, num_layers, int(sys.argv[3]) if len(sys.argv) > 3 else None)
    finally:
        if tmp:
            os.remove(tmp)


def run(r, ids, num_layers, window_override):
    tensors = {t.name: t for t in r.tensors}

    def w(name):  # [ne1, ne0] float64
        t = tensors[name]
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        return a.reshape([int(d) for d in reversed(t.shape)])

    heads = int(scalar(r, "gemma3.attention.head_count"))
    kv_heads = int(scalar(r, "gemma3.attention.head_count_kv"))
    d = int(scalar(r, "gemma3.attention.key_length"))
    eps = float(scalar(r, "gemma3.attention.layer_norm_rms_epsilon"))
    theta_global = float(scalar(r, "gemma3.rope.freq_base"))
    window = window_override or int(scalar(r, "gemma3.attention.sliding_window"))
    emb = w("token_embd.weight")
    hidden = emb.shape[1]
    n = len(ids)

    def norm(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    def rope(x, theta):  # [n, h, d], rotate-half
        ang = np.arange(n)[:, None] * theta ** (-np.arange(0, d, 2) / d)[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., : d // 2], x[..., d // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)

    def gelu_tanh(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    x = emb[ids] * np.sqrt(hidden)
    qpos, kpos = np.arange(n)[:, None], np.arange(n)[None, :]
    causal = np.where(kpos <= qpos, 0.0, -np.inf)
    local = np.where((kpos <= qpos) & (kpos > qpos - window), 0.0, -np.inf)
    for l in range(num_layers):
        is_local = l % 6 != 5
        p = f"blk.{l}."
        h = norm(x, w(p + "attn_norm.weight"))
        q = norm((h @ w(p + "attn_q.weight").T).reshape(n, heads, d), w(p + "attn_q_norm.weight"))
        k = norm((h @ w(p + "attn_k.weight").T).reshape(n, kv_heads, d), w(p + "attn_k_norm.weight"))
        v = (h @ w(p + "attn_v.weight").T).reshape(n, kv_heads, d)
        theta = 10000.0 if is_local else theta_global
        q, k = rope(q, theta), rope(k, theta)
        k = np.repeat(k, heads // kv_heads, axis=1)
        v = np.repeat(v, heads // kv_heads, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d) + (local if is_local else causal)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = np.einsum("hqk,khd->qhd", s, v).reshape(n, heads * d)
        x = x + norm(a @ w(p + "attn_output.weight").T, w(p + "post_attention_norm.weight"))
        h = norm(x, w(p + "ffn_norm.weight"))
        f = (gelu_tanh(h @ w(p + "ffn_gate.weight").T) * (h @ w(p + "ffn_up.weight").T)) @ w(p + "ffn_down.weight").T
        x = x + norm(f, w(p + "post_ffw_norm.weight"))
    logits = norm(x, w("output_norm.weight")) @ emb.T
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    for i in range(n - 1):
        print(f"{logp[i, ids[i + 1]]:.9g} {int(logp[i].argmax())}")
    print(" ".join(f"{v:.9g}" for v in logp[n - 1]))


if __name__ == "__main__":
    main()
