#!/usr/bin/env python3
"""kvlab's paged bf16 decode against the peers, in one process, on one stream, over the same
K/V: PyTorch SDPA with the cuDNN and flash backends and compiled FlexAttention (on
contiguous K/V: the layout they take), kvlab on the same K/V copied into its paged layout
with pages scattered through the pool. Also measures the device-to-device copy ceiling in
the same process. Median of CUDA-event timings after warm-up; random data; kvlab's output
checked against cuDNN's (relative error) before it is timed, its output poisoned first.

    peers.py --lib build/gpu/bench/gpu/libkvlab_decode_capi.so [--quick] > peers.csv
"""
import argparse
import ctypes
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [(1, 32768), (1, 131072), (8, 16384), (32, 8192), (64, 4096), (32, 32768), (128, 2048)]
QUICK = [(1, 131072), (32, 8192)]  # both ≥ 256 MB of bf16 KV
MODELS = [("llama-3.1-8b", 32, 8), ("llama-3.1-70b", 64, 8)]
HEAD_DIM = 128
PAGE = 16


def median_ms(fn, iterations):
    """Median of per-call event timings with the queue kept full (no host synchronisation
    between calls, as triton.testing.do_bench does), so host launch overhead stays out of
    every implementation's numbers alike. fn(i) runs call i (rotating input buffers)."""
    for i in range(3):
        fn(i)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iterations)]
    for i, (start, stop) in enumerate(events):
        start.record()
        fn(i)
        stop.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(stop) for start, stop in events)


def copy_ceiling_bytes_per_s():
    """Device-to-device copy of 4 GiB: bytes read plus bytes written over the median time."""
    src = torch.randint(0, 255, (4 << 30,), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = median_ms(lambda i: dst.copy_(src), 20)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * (4 << 30) / (ms * 1e-3)


class Kvlab:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.kvlab_paged_decode.restype = ctypes.c_int
        self.lib.kvlab_paged_decode.argtypes = [
            ctypes.c_char_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
            ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_longlong,
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self.lib.kvlab_page_bytes.restype = ctypes.c_longlong
        self.lib.kvlab_page_bytes.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        self.lib.kvlab_set_fused_merge.restype = None
        self.lib.kvlab_set_fused_merge.argtypes = [ctypes.c_int]

    def fused_merge(self, fused):
        """Split-KV merge inside the decode kernel (default) or in a separate kernel."""
        self.lib.kvlab_set_fused_merge(1 if fused else 0)

    def prepare(self, q, k, v, generator):
        """Copies contiguous K/V [B, H, T, D] into kvlab's bf16 pages ([page][head][K, V][16][D],
        docs/kv-format.md), pages shuffled through the pool; returns the decode closure."""
        batch, kv_heads, context, dim = k.shape
        pages_per_seq = context // PAGE
        assert self.lib.kvlab_page_bytes(b"bf16", dim, kv_heads) == kv_heads * 2 * PAGE * dim * 2
        num_pages = batch * pages_per_seq
        perm = torch.randperm(num_pages, device="cuda", generator=generator)
        pool = torch.empty(num_pages, kv_heads, 2, PAGE, dim, dtype=torch.bfloat16, device="cuda")
        for c, x in enumerate((k, v)):
            pool[perm, :, c] = x.view(batch, kv_heads, pages_per_seq, PAGE, dim).permute(0, 2, 1, 3, 4).reshape(
                num_pages, kv_heads, PAGE, dim)
        table = perm.view(batch, pages_per_seq).to(torch.int32).contiguous()
        lens = torch.full((batch,), context, dtype=torch.int32, device="cuda")
        q_heads = q.shape[1]
        qk = q.transpose(1, 2).contiguous()  # [B, 1, Hq, D]
        out = torch.empty_like(qk)
        splits_bound = min(4 * 132, context // 256 + 1)
        # Zeroed once: its tail holds the split-merge counters (one per sequence and KV head),
        # which every call leaves at zero.
        workspace = torch.zeros(batch * splits_bound * q_heads * (dim + 2) + batch * kv_heads + 64,
                                dtype=torch.float32, device="cuda")
        error = ctypes.create_string_buffer(512)
        scale = dim ** -0.5

        def run():
            rc = self.lib.kvlab_paged_decode(
                b"bf16", pool.data_ptr(), num_pages, qk.data_ptr(), out.data_ptr(), table.data_ptr(), lens.data_ptr(),
                batch, 1, q_heads, kv_heads, dim, pages_per_seq, context, scale, workspace.data_ptr(),
                workspace.numel() * 4, torch.cuda.current_stream().cuda_stream, error, 512)
            if rc != 0:
                raise RuntimeError(error.value.decode())
            return out

        return run, (pool, table, lens, qk, out, workspace, perm)


class FlexPaged:
    """FlexAttention over the same paged layout kvlab reads: K and V caches of shape
    [1, KV heads, pages·16, D] with each sequence's pages scattered (the same permutation as
    kvlab's pool), and a BlockMask whose KV blocks are pages (BLOCK_SIZE 16): sequence b
    visits exactly its pages, in order, all of them full (no mask_mod work). Flex's decode
    kernel needs its KV tile (BLOCK_N) to divide the block size, so BLOCK_N = 16."""

    def __init__(self, compiled):
        from torch.nn.attention.flex_attention import BlockMask

        self.block_mask_type = BlockMask
        self.compiled = compiled

    def prepare(self, q, k, v, perm):
        batch, kv_heads, context, dim = k.shape
        pages = context // PAGE
        num_pages = batch * pages
        caches = []
        for x in (k, v):
            cache = torch.empty(kv_heads, num_pages, PAGE, dim, dtype=x.dtype, device=x.device)
            cache[:, perm] = x.view(batch, kv_heads, pages, PAGE, dim).transpose(0, 1).reshape(kv_heads, num_pages, PAGE, dim)
            caches.append(cache.view(1, kv_heads, num_pages * PAGE, dim))
        # Indices as wide as the pool: BlockMask builds a dense [.., KV blocks] view from them,
        # and physical page numbers go up to num_pages − 1.
        table = torch.zeros(batch, 1, 1, num_pages, dtype=torch.int32, device=q.device)
        table[:, 0, 0, :pages] = perm.view(batch, pages).to(torch.int32)
        full_blocks = torch.full((batch, 1, 1), pages, dtype=torch.int32, device=q.device)
        partial_blocks = torch.zeros_like(full_blocks)
        block_mask = self.block_mask_type.from_kv_blocks(
            partial_blocks, torch.zeros_like(table), full_blocks, table, BLOCK_SIZE=(128, PAGE),
            seq_lengths=(1, num_pages * PAGE))
        k_cache, v_cache = caches

        def run():
            return self.compiled(q, k_cache, v_cache, block_mask=block_mask, enable_gqa=True,
                                 kernel_options={"BLOCK_N": PAGE})

        return run


class FlashInferPaged:
    """FlashInfer's paged decode (BatchDecodeWithPagedKVCacheWrapper, HND layout, page size 16)
    on kvlab's own pages: K and V are strided views of kvlab's pool ([page][head][K, V][16][D]
    is HND with K and V interleaved per head), the page list is kvlab's page table. Where
    FlashInfer refuses the strided views, it reads a copy of the same pages in its own
    contiguous HND layout, same page ids (the row says which). FlashInfer compiles its
    kernels on first use (JIT, nvcc on this machine, no network)."""

    def __init__(self, flashinfer):
        self.flashinfer = flashinfer
        self.workspace = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def prepare(self, q, keep, contiguous=False, tensor_cores=False):
        pool, table = keep[0], keep[1]
        batch, pages = table.shape
        num_pages, kv_heads, _, page, dim = pool.shape
        q_heads = q.shape[1]
        indptr = torch.arange(0, (batch + 1) * pages, pages, dtype=torch.int32, device="cuda")
        indices = table.reshape(-1).contiguous()
        last = torch.full((batch,), page, dtype=torch.int32, device="cuda")
        # use_tensor_cores: FlashInfer's prefill-style decode, which its documentation advises
        # for large GQA groups; the default is its CUDA-core decode.
        wrapper = self.flashinfer.BatchDecodeWithPagedKVCacheWrapper(self.workspace, "HND", use_tensor_cores=tensor_cores)
        wrapper.plan(indptr, indices, last, q_heads, kv_heads, dim, page, pos_encoding_mode="NONE",
                     q_data_type=torch.bfloat16, kv_data_type=torch.bfloat16)
        q3 = q.view(batch, q_heads, dim)
        views = (pool[:, :, 0], pool[:, :, 1])
        if contiguous:
            # FlashInfer's own layout, so that a slow strided read is not charged to FlashInfer.
            cache = (views[0].contiguous(), views[1].contiguous())
            return (lambda: wrapper.run(q3, cache)), "contiguous copy of the same pages (FlashInfer's HND layout)"
        try:
            wrapper.run(q3, views)
            layout = "strided views of kvlab's pool"
            cache = views
        except Exception as error:  # noqa: BLE001 - fall back to a contiguous copy of the same pages
            print(f"flashinfer: strided kvlab pages refused ({type(error).__name__}: {error}"[:300] + "); "
                  "using a contiguous copy of the same pages", file=sys.stderr)
            cache = (pool[:, :, 0].contiguous(), pool[:, :, 1].contiguous())
            layout = "contiguous copy of the same pages"

        def run():
            return wrapper.run(q3, cache)

        return run, layout


def load_flashinfer():
    """FlashInfer if its wheels were installed (run_on_device.sh installs .whl/*.whl), else
    None with the reason on stderr."""
    try:
        import flashinfer  # noqa: PLC0415

        print(f"flashinfer {flashinfer.__version__} loaded", file=sys.stderr)
        return FlashInferPaged(flashinfer)
    except Exception as error:  # noqa: BLE001 - a peer that is not there is reported, not fatal
        print(f"flashinfer unavailable, skipped: {type(error).__name__}: {error}"[:400], file=sys.stderr)
        return None


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
        flex_paged = FlexPaged(compiled)
    except Exception as error:  # noqa: BLE001 - report and go on with the others
        print(f"flex_attention unavailable: {error}", file=sys.stderr)
        flex_paged = None
    return runs, flex_paged


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-flashinfer", action="store_true")
    args = parser.parse_args()
    torch._dynamo.config.cache_size_limit = 64
    torch._dynamo.config.recompile_limit = 64
    kvlab = Kvlab(args.lib)
    runs, flex_paged = peers()
    flashinfer = None if args.no_flashinfer else load_flashinfer()
    torch.manual_seed(0)
    generator = torch.Generator(device="cuda")
    generator.manual_seed(1)
    ceiling = copy_ceiling_bytes_per_s()
    print(f"copy ceiling (torch, same process): {ceiling / 1e12:.3f} TB/s", file=sys.stderr)
    print("model,impl,batch,context,kv_bytes,median_us,tb_per_s,fraction_of_copy_ceiling,copy_ceiling_tb_per_s,"
          "rel_err_vs_cudnn")
    iters = 10 if args.quick else 50
    for model, q_heads, kv_heads in MODELS:
        for batch, context in QUICK if args.quick else SHAPES:
            kv_bytes = 2 * batch * kv_heads * context * HEAD_DIM * 2
            # Several input sets, rotated call by call, so that no call finds the previous
            # call's K/V in the 50 MB L2: at least 600 MB in all.
            sets = max(1, -(-600_000_000 // kv_bytes))
            inputs, kvlab_runs = [], []
            for _ in range(sets):
                q = torch.randn(batch, q_heads, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
                k = torch.randn(batch, kv_heads, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
                v = torch.randn_like(k)
                inputs.append((q, k, v))
                kvlab_runs.append(kvlab.prepare(q, k, v, generator))
            errs = []
            for (q, k, v), (run_kvlab, keep) in zip(inputs, kvlab_runs):
                with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                    expected = F.scaled_dot_product_attention(q, k, v, enable_gqa=True).float()
                keep[4].fill_(float("nan"))  # poison kvlab's output
                got = run_kvlab().transpose(1, 2).float()
                errs.append(((got - expected).norm() / expected.norm()).item())
            err = max(errs)
            # The separate merge kernel: checked and timed too (the fused merge's gain, same run).
            kvlab.fused_merge(False)
            keep = kvlab_runs[0][1]
            keep[4].fill_(float("nan"))
            got = kvlab_runs[0][0]().transpose(1, 2).float()
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                expected = F.scaled_dot_product_attention(*inputs[0], enable_gqa=True).float()
            err_separate = ((got - expected).norm() / expected.norm()).item()
            kvlab.fused_merge(True)

            def separate(i):
                kvlab.fused_merge(False)
                try:
                    return kvlab_runs[i % sets][0]()
                finally:
                    kvlab.fused_merge(True)

            rows = [("kvlab_paged", lambda i: kvlab_runs[i % sets][0](), err),
                    ("kvlab_paged_separate_merge", separate, err_separate)]
            # FlexAttention on the same pages (8B layout only: each shape compiles anew).
            if flex_paged is not None and model == MODELS[0][0]:
                try:
                    flex_runs = [flex_paged.prepare(q, k, v, keep_i[6]) for (q, k, v), (_, keep_i) in
                                 zip(inputs, kvlab_runs)]
                    got = flex_runs[0]().float()
                    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                        expected = F.scaled_dot_product_attention(*inputs[0], enable_gqa=True).float()
                    err_flex = ((got - expected).norm() / expected.norm()).item()
                    rows.append(("flex_paged", lambda i: flex_runs[i % sets](), err_flex))
                except Exception as error:  # noqa: BLE001 - report and go on with the others
                    print(f"{model} flex_paged {batch}x{context}: {type(error).__name__}: {error}"[:600],
                          file=sys.stderr)
            # FlashInfer's paged decode on kvlab's pages (both layouts).
            if flashinfer is not None:
                try:
                    fi_runs = [flashinfer.prepare(q, keep_i) for (q, _, _), (_, keep_i) in zip(inputs, kvlab_runs)]
                    got = fi_runs[0][0]().float().view(batch, q_heads, 1, HEAD_DIM)
                    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                        expected = F.scaled_dot_product_attention(*inputs[0], enable_gqa=True).float()
                    err_fi = ((got - expected).norm() / expected.norm()).item()
                    print(f"{model} flashinfer {batch}x{context}: {fi_runs[0][1]}", file=sys.stderr)
                    rows.append(("flashinfer_paged", lambda i: fi_runs[i % sets][0](), err_fi))
                    # The same pages copied into FlashInfer's contiguous HND layout.
                    fc_runs = [flashinfer.prepare(q, keep_i, contiguous=True)
                               for (q, _, _), (_, keep_i) in zip(inputs, kvlab_runs)]
                    got = fc_runs[0][0]().float().view(batch, q_heads, 1, HEAD_DIM)
                    err_fc = ((got - expected).norm() / expected.norm()).item()
                    rows.append(("flashinfer_paged_contiguous", lambda i: fc_runs[i % sets][0](), err_fc))
                    # Its tensor-core decode on the same contiguous pages (not yet run on a GPU).
                    ft_runs = [flashinfer.prepare(q, keep_i, contiguous=True, tensor_cores=True)
                               for (q, _, _), (_, keep_i) in zip(inputs, kvlab_runs)]
                    got = ft_runs[0][0]().float().view(batch, q_heads, 1, HEAD_DIM)
                    err_ft = ((got - expected).norm() / expected.norm()).item()
                    rows.append(("flashinfer_paged_tensor_cores", lambda i: ft_runs[i % sets][0](), err_ft))
                except Exception as error:  # noqa: BLE001 - report and go on with the others
                    print(f"{model} flashinfer_paged {batch}x{context}: {type(error).__name__}: {error}"[:600],
                          file=sys.stderr)
            for name, run in runs.items():
                rows.append((name, lambda i, run=run: run(*inputs[i % sets]), float("nan")))
            for name, fn, rel in rows:
                try:
                    ms = median_ms(fn, iters)
                    tbps = kv_bytes / (ms * 1e-3) / 1e12
                    print(f"{model},{name},{batch},{context},{kv_bytes},{ms * 1e3:.2f},{tbps:.4f},"
                          f"{tbps * 1e12 / ceiling:.4f},{ceiling / 1e12:.4f},{rel:.3e}")
                except Exception as error:  # noqa: BLE001 - a peer that cannot run this shape
                    print(f"{model} {name} {batch}x{context}: {type(error).__name__}: {error}"[:300], file=sys.stderr)
                sys.stdout.flush()
            del q, k, v, keep, run_kvlab, expected, got, inputs, kvlab_runs, rows
            flex_runs = None
            fi_runs = None
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
