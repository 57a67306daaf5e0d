#!/usr/bin/env python3
"""Times the peer decode-attention kernels on the benchmark's shapes: PyTorch SDPA with
the cuDNN and flash backends, and compiled FlexAttention, on contiguous bf16 KV with GQA
(the peers have no paged bf16 decode path to compare on). Median of CUDA-event timings
after warm-up, random data. Prints CSV rows like decode_bench's."""
import argparse
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [(1, 32768), (1, 131072), (8, 16384), (32, 8192), (64, 4096), (32, 32768), (128, 2048)]
QUICK = [(1, 32768), (32, 8192)]
MODELS = [("llama-3.1-8b", 32, 8), ("llama-3.1-70b", 64, 8)]
HEAD_DIM = 128


def median_ms(fn, iterations):
    for _ in range(3):
        fn()
    times = []
    for _ in range(iterations):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def peers():
    def sdpa(backend):
        def run(q, k, v):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

        return run

    runs = {"sdpa_cudnn": sdpa(SDPBackend.CUDNN_ATTENTION), "sdpa_flash": sdpa(SDPBackend.FLASH_ATTENTION)}
    try:
        from torch.nn.attention.flex_attention import flex_attention

        compiled = torch.compile(flex_attention, dynamic=False)
        runs["flex_compiled"] = lambda q, k, v: compiled(q, k, v, enable_gqa=True)
    except Exception as error:  # noqa: BLE001 - report and go on with the others
        print(f"flex_attention unavailable: {error}", file=sys.stderr)
    return runs


def main():
    # One compiled FlexAttention serves every shape; each shape is a recompile.
    torch._dynamo.config.cache_size_limit = 64
    torch._dynamo.config.recompile_limit = 64
    runs = peers()
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print("model,peer,batch,context,kv_bytes,median_us,tb_per_s")
    for model, q_heads, kv_heads in MODELS:
        for batch, context in QUICK if args.quick else SHAPES:
            q = torch.randn(batch, q_heads, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(batch, kv_heads, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            kv_bytes = 2 * k.numel() * k.element_size()
            for name, run in runs.items():
                try:
                    ms = median_ms(lambda: run(q, k, v), 10 if args.quick else 50)
                    print(f"{model},{name},{batch},{context},{kv_bytes},{ms * 1e3:.2f},{kv_bytes / (ms * 1e-3) / 1e12:.4f}")
                except Exception as error:  # noqa: BLE001 - a peer that cannot run this shape
                    print(f"{model} {name} {batch}x{context}: {type(error).__name__}: {error}"[:300], file=sys.stderr)
                sys.stdout.flush()
            del q, k, v
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
