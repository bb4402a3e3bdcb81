"""Compile fastbert's Triton kernels for an H100 (sm_90) without a GPU; print one JSON line per kernel.

Run by ``test_h100_compile.py`` in a fresh process: the test session has
``TRITON_INTERPRET=1`` set, under which ``@triton.jit`` makes interpreter functions
that cannot be compiled. Here the real launchers (``_varlen_fwd_impl`` …) run on
CPU tensors of the real shapes, so they pick the block sizes and build the argument
lists a GPU run would; each kernel's ``run`` is replaced by an ahead-of-time compile
for ``GPUTarget("cuda", 90, 32)`` — what ``JITFunction.run`` does before a launch
(bind and specialise the arguments, pack them, compile), with the target given
instead of read off a device. That uses Triton internals
(``create_function_from_signature``, ``JITFunction._pack_args``) as of the Triton
that torch pins (3.9); if an upgrade moves them, this script fails loudly.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import create_function_from_signature

import fastbert.kernels.attention_kernels as attention
import fastbert.kernels.lora as lora
import fastbert.kernels.lora_dropout as lora_dropout

TARGET = GPUTarget("cuda", 90, 32)
BACKEND = make_backend(TARGET)


def compile_instead_of_launching(fn, case: str) -> None:
    def run(*args, grid, warmup, **kwargs):
        binder = create_function_from_signature(fn.signature, fn.params, BACKEND)
        bound, specialization, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = fn._pack_args(BACKEND, kwargs, bound, specialization, options)
        kernel = triton.compile(
            ASTSource(fn, signature, constexprs, attrs), target=TARGET, options=options.__dict__
        )
        config = {
            k: v for k, v in kwargs.items() if k.startswith("BLOCK") or k in ("num_warps", "num_stages")
        }
        print(
            json.dumps(
                {
                    "case": case,
                    "kernel": fn.__name__,
                    "config": config,
                    "shared": kernel.metadata.shared,
                    "wgmma": "wgmma" in kernel.asm["ptx"],
                }
            ),
            flush=True,
        )

    fn.run = run


def attention_case(dtype: torch.dtype, head_dim: int, max_seqlen: int, dropout_p: float) -> None:
    case = f"attention {dtype} d={head_dim} L={max_seqlen} p={dropout_p}"
    for fn in (attention._attn_fwd_kernel, attention._attn_bwd_kernel, attention._attn_bwd_preprocess_kernel):
        compile_instead_of_launching(fn, case)
    batch, heads = 4, 12
    total = batch * max_seqlen
    q, k, v, out, dout = (torch.empty(total, heads, head_dim, dtype=dtype) for _ in range(5))
    cu_seqlens = torch.arange(0, total + 1, max_seqlen, dtype=torch.int32)
    seed = torch.full((1,), 2**33, dtype=torch.int64)
    scale = head_dim**-0.5
    _, lse = attention.varlen_forward(q, k, v, cu_seqlens, max_seqlen, dropout_p, scale, seed)
    attention.varlen_backward(dout, q, k, v, out, lse, cu_seqlens, max_seqlen, dropout_p, scale, seed)


def lora_case(dtype: torch.dtype, m: int, k: int, n: int, rank: int, dropout: bool) -> None:
    case = f"lora {dtype} {m}x{k}->{n} r={rank} dropout={dropout}"
    for fn in (lora._lora_fwd_kernel, lora._lora_bwd_dx_kernel):
        compile_instead_of_launching(fn, case)
    x, dy = torch.empty(m, k, dtype=dtype), torch.empty(m, n, dtype=dtype)
    weight, bias = torch.empty(n, k, dtype=dtype), torch.empty(n, dtype=dtype)
    a, b = torch.empty(rank, k, dtype=dtype), torch.empty(n, rank, dtype=dtype)
    keep = torch.ones(m, k, dtype=torch.uint8) if dropout else None
    lora._lora_fwd_impl(x, weight, bias, a, b, 2.0, keep, 1.0)
    lora._lora_bwd_dx_impl(dy, weight, a, b, 2.0, keep, 1.0)


def lora_split_case(dtype: torch.dtype, m: int, k: int, rank: int) -> None:
    """The ``split`` strategy's two Triton kernels (its large products are cuBLAS's)."""
    case = f"lora split {dtype} {m}x{k} r={rank}"
    for fn in (lora_dropout._lora_down_kernel, lora_dropout._lora_up_kernel):
        compile_instead_of_launching(fn, case)
    x, dx, g = (
        torch.empty(m, k, dtype=dtype),
        torch.empty(m, k, dtype=dtype),
        torch.empty(m, rank, dtype=dtype),
    )
    a, seed = torch.empty(rank, k, dtype=dtype), torch.full((1,), 2**33, dtype=torch.int64)
    lora_dropout._lora_down_impl(x, a, seed, 0.1)
    lora_dropout._lora_up_impl(g, a, x, dx, seed, 2.0, 0.1)


def main() -> None:
    if os.environ.get("TRITON_INTERPRET") == "1":  # read at import, too late to unset here
        sys.exit("run without TRITON_INTERPRET=1: this compiles for a real GPU")
    # The launchers ask the device whether it is a Hopper; these CPU tensors stand for an H100's.
    lora._is_hopper = lambda device: True
    # The benchmarks' shapes (BERT-base heads at SST-2, CoNLL and 512-token lengths; BERT-base
    # projections) and the extremes of the supported range (head size 32 and 128, rank 64, fp16).
    attention_case(torch.bfloat16, 64, 64, 0.0)
    attention_case(torch.bfloat16, 64, 512, 0.1)
    attention_case(torch.float16, 128, 128, 0.1)
    attention_case(torch.bfloat16, 32, 512, 0.0)
    lora_case(torch.bfloat16, 16384, 768, 768, 8, dropout=True)
    lora_case(torch.bfloat16, 16384, 768, 3072, 8, dropout=False)
    lora_case(torch.float16, 777, 1024, 1000, 64, dropout=True)
    lora_split_case(torch.bfloat16, 16384, 768, 8)
    lora_split_case(torch.float16, 777, 1024, 64)


if __name__ == "__main__":
    main()
