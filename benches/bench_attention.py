"""Benchmark: fastbert.kernels.varlen_attention against PyTorch's scaled_dot_product_attention (GPU only).

Two claims, each printed as a ratio against the named competitor, in one run:

1. **Fixed length** — BERT-base attention (12 heads of d = 64), 32 sequences of 512
   tokens, bf16 and fp16: forward and forward+backward TFLOP/s of our kernel vs
   every SDPA backend PyTorch has here (flash, efficient, cuDNN, math), each timed,
   the fastest named.
2. **Real lengths** — the token lengths of SST-2 and CoNLL-2003 train sentences
   (``fastbert.Tokenizer`` with the packaged all-MiniLM-L6-v2 vocab, [CLS]/[SEP]
   included, truncated at 512), shuffled into batches of 32 and 256 sequences: our
   kernel on the packed batch vs SDPA on the padded batch (padded to a multiple of
   8) with a boolean key-padding mask, i.e. what a model without a varlen kernel
   runs. Time per batch, and useful TFLOP/s counting real tokens only.

FLOPs: forward 4·h·d·Σ Lᵢ² (two products); backward 2.5× forward (FlashAttention's
convention: five products; our backward recomputes the scores and does seven).
Times are medians with inputs drawn random normal, two ways: ``call`` — eager calls
back to back (``triton.testing.do_bench``, CUDA events), what a training loop pays,
Python overhead included; ``gpu`` — the same call replayed from a CUDA graph
(``do_bench_cudagraph``), device time alone. Ratios are printed for both.

Usage::

    python benches/bench_attention.py [--quick] [--out results.json]
    # on a machine without fastbert's compiled tokenizer (a GPU box with another Python):
    python benches/bench_attention.py --dump-lengths lengths.json      # here, no GPU needed
    python benches/bench_attention.py --lengths lengths.json --quick   # there
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTBERT_DATA", REPO.parent / "shared" / "data"))


def log(*args: Any) -> None:
    print(*args, flush=True)


# ------------------------------------------------------------------ setup
def load_kernels() -> tuple[Any, str]:
    """``fastbert.kernels`` as installed; else (no compiled ``fastbert._core`` for this Python) from this checkout."""
    try:
        import fastbert.kernels as kernels

        return kernels, f"installed fastbert ({Path(kernels.__file__).parent})"
    except ImportError as e:
        reason = str(e)
    for name in [m for m in sys.modules if m == "fastbert" or m.startswith("fastbert.")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        "_fastbert_build", REPO / "build_backend" / "fastbert_build.py"
    )
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.sync_kernels(REPO, quiet=True)
    # The kernels are pure Python: import them under a bare `fastbert` package (its __init__ needs _core).
    package = types.ModuleType("fastbert")
    package.__path__ = [str(REPO / "python" / "fastbert")]
    sys.modules["fastbert"] = package
    import fastbert.kernels as kernels

    return kernels, f"source checkout {REPO / 'kernels'} (fastbert itself not importable: {reason})"


def environment(kernel_source: str) -> dict[str, str]:
    import torch
    import triton

    props = torch.cuda.get_device_properties(0)
    from _common import nvidia_smi

    driver = nvidia_smi("driver_version") or "unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        sha = ""
    return {
        "device": props.name,
        "multiprocessors": str(props.multi_processor_count),
        "driver": driver or "unknown",
        "cuda": str(torch.version.cuda),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "kernels": kernel_source,
        "fastbert_git": sha or "?",
    }


def dataset_lengths(max_length: int = 512) -> dict[str, list[int]]:
    """Token counts per sentence of SST-2 and CoNLL-2003 train, with fastbert.Tokenizer (MiniLM vocab)."""
    from _common import model_dir

    from fastbert import Tokenizer

    tok = Tokenizer.from_pretrained(model_dir())
    sst2 = []
    with open(DATA / "sst2" / "train.tsv", encoding="utf-8") as f:
        next(f)
        sst2 = [line.rstrip("\n").split("\t")[0] for line in f if line.strip()]
    conll, words = [], []
    for line in (DATA / "conll2003" / "train.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if words:
                conll.append(words)
            words = []
        elif not line.startswith("-DOCSTART-"):
            words.append(line.split()[0])
    if words:
        conll.append(words)
    out = {}
    for name, texts, split in (("sst2", sst2, False), ("conll2003", conll, True)):
        encs = tok.encode_batch(texts, is_split_into_words=split, max_length=max_length, truncation=True)
        out[name] = [len(e.ids) for e in encs]
    return out


# ------------------------------------------------------------------ timing
def bench(fn, grads=None, quick=False) -> float:
    """Median milliseconds of ``fn`` (CUDA events)."""
    import triton

    warmup, rep = (10, 30) if quick else (25, 100)
    return triton.testing.do_bench(fn, warmup=warmup, rep=rep, grad_to_none=grads, return_mode="median")


def bench_graph(fn, grads=None) -> float | None:
    """Median ms of ``fn`` replayed from a CUDA graph (device time, no Python overhead); None if not capturable."""
    import triton

    try:
        return triton.testing.do_bench_cudagraph(fn, rep=20, grad_to_none=grads, return_mode="median")
    except Exception:  # some backends cannot be captured; report the eager time only
        return None


def timings(fwd, fwd_bwd, grads, quick) -> dict[str, float]:
    out = {"fwd": bench(fwd, quick=quick), "fwd_bwd": bench(fwd_bwd, grads, quick)}
    for key, fn, g in (("fwd", fwd, None), ("fwd_bwd", fwd_bwd, grads)):
        t = bench_graph(fn, g)
        if t is not None:
            out[f"{key}_gpu"] = t
    return out


def sdpa_backends():
    from torch.nn.attention import SDPBackend

    names = ["FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"]
    return [(n.lower(), getattr(SDPBackend, n)) for n in names if hasattr(SDPBackend, n)]


def time_sdpa(q4, k4, v4, mask, dout4, quick) -> dict[str, dict[str, float]]:
    """Each SDPA backend that accepts these inputs: {'backend': {'fwd': ms, 'fwd_bwd': ms}}."""
    import warnings

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    out = {}
    for name, backend in sdpa_backends():

        def fwd(backend=backend):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q4, k4, v4, attn_mask=mask)

        def fwd_bwd(fwd=fwd):
            fwd().backward(dout4)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fwd_bwd()
                torch.cuda.synchronize()
                out[name] = timings(fwd, fwd_bwd, [q4, k4, v4], quick)
        except RuntimeError as e:  # this backend does not take these inputs (e.g. flash with a mask)
            out[name] = {"error": str(e).splitlines()[0][:120]}
    return out


def best(times: dict[str, dict[str, float]], key: str) -> tuple[str, float]:
    ok = [(name, t[key]) for name, t in times.items() if key in t]
    return min(ok, key=lambda x: x[1])


# ------------------------------------------------------------------ claims
def fixed_length(kernels, dtype_name: str, quick: bool) -> dict[str, Any]:
    import torch

    dtype = getattr(torch, dtype_name)
    batch, seqlen, heads, head_dim = (16 if quick else 32), 512, 12, 64
    total = batch * seqlen
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(total, heads, head_dim, device="cuda", dtype=dtype, generator=gen).requires_grad_()
        for _ in range(3)
    )
    dout = torch.randn(total, heads, head_dim, device="cuda", dtype=dtype, generator=gen)
    cu = torch.arange(0, total + 1, seqlen, device="cuda", dtype=torch.int32)

    def ours():
        return kernels.varlen_attention(q, k, v, cu, seqlen)

    def ours_fb():
        ours().backward(dout)

    # SDPA gets its own preferred layout, (B, h, L, d) contiguous, with the same values.
    q4, k4, v4 = (
        t.detach().view(batch, seqlen, heads, head_dim).transpose(1, 2).contiguous().requires_grad_()
        for t in (q, k, v)
    )
    dout4 = dout.view(batch, seqlen, heads, head_dim).transpose(1, 2).contiguous()
    with torch.no_grad():
        ref = (
            torch.nn.functional.scaled_dot_product_attention(q4, k4, v4)
            .transpose(1, 2)
            .reshape(total, heads, head_dim)
        )
        diff = (ours() - ref).abs().max().item()
    flops = 4 * batch * heads * head_dim * seqlen * seqlen
    ours_ms = timings(ours, ours_fb, [q, k, v], quick)
    sdpa = time_sdpa(q4, k4, v4, None, dout4, quick)
    row = {
        "dtype": dtype_name,
        "shape": {"batch": batch, "seqlen": seqlen, "heads": heads, "head_dim": head_dim},
        "max_abs_diff_vs_sdpa": diff,
        "ours_ms": ours_ms,
        "sdpa_ms": sdpa,
        "tflops": {},
    }
    for key, mult in (("fwd", 1.0), ("fwd_bwd", 3.5), ("fwd_gpu", 1.0), ("fwd_bwd_gpu", 3.5)):
        if key not in ours_ms or not any(key in t for t in sdpa.values()):
            continue
        name, t_sdpa = best(sdpa, key)
        ours_t = row["ours_ms"][key]
        row["tflops"][key] = {
            "ours": mult * flops / ours_t / 1e9,
            f"sdpa_{name}": mult * flops / t_sdpa / 1e9,
            "speedup_vs_best_sdpa": t_sdpa / ours_t,
        }
        log(
            f"  {dtype_name:8} {key:11} ours {mult * flops / ours_t / 1e9:7.1f} TFLOP/s ({ours_t:.3f} ms)   "
            f"sdpa/{name} {mult * flops / t_sdpa / 1e9:7.1f} TFLOP/s ({t_sdpa:.3f} ms)   "
            f"ours/sdpa speed {t_sdpa / ours_t:.2f}x"
        )
    others = ", ".join(
        f"{n}: " + (f"{t['fwd']:.3f}/{t['fwd_bwd']:.3f} ms" if "fwd" in t else "n/a") for n, t in sdpa.items()
    )
    log(f"  {dtype_name:8} all SDPA backends (call fwd/fwd+bwd): {others}; max |ours − sdpa| = {diff:.2e}")
    return row


def real_lengths(kernels, name: str, lengths: list[int], batch_size: int, quick: bool, head_dim: int) -> dict:
    import torch

    dtype, heads = torch.bfloat16, 12
    rng = random.Random(0)
    order = lengths[:]
    rng.shuffle(order)
    n_batches = min(len(order) // batch_size, 4 if quick else 20)
    gen = torch.Generator(device="cuda").manual_seed(1)
    keys = ("fwd", "fwd_bwd", "fwd_gpu", "fwd_bwd_gpu")
    ours_t = dict.fromkeys(keys, 0.0)
    sdpa_t: dict[str, dict[str, float]] = {}
    useful = padded_flops = 0.0
    for i in range(n_batches):
        lens = order[i * batch_size : (i + 1) * batch_size]
        total, max_len = sum(lens), max(lens)
        padded_len = -(-max_len // 8) * 8
        cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], device="cuda", dtype=torch.int32)
        q, k, v = (
            torch.randn(total, heads, head_dim, device="cuda", dtype=dtype, generator=gen).requires_grad_()
            for _ in range(3)
        )
        dout = torch.randn(total, heads, head_dim, device="cuda", dtype=dtype, generator=gen)
        mask = torch.arange(padded_len, device="cuda")[None, :] < torch.tensor(lens, device="cuda")[:, None]
        index = mask.flatten().nonzero().squeeze(1)
        rows = len(lens)

        def pad(t, rows=rows, padded_len=padded_len, index=index):
            out = t.new_zeros(rows * padded_len, heads, head_dim)
            out[index] = t.detach()
            return out.view(rows, padded_len, heads, head_dim).transpose(1, 2).contiguous()  # (B, h, L, d)

        q4, k4, v4 = (pad(t).requires_grad_() for t in (q, k, v))
        dout4 = pad(dout)

        def ours(q=q, k=k, v=v, cu=cu, max_len=max_len):
            return kernels.varlen_attention(q, k, v, cu, max_len)

        def ours_fb(ours=ours, dout=dout):
            ours().backward(dout)

        for key, t in timings(ours, ours_fb, [q, k, v], quick).items():
            ours_t[key] += t
        for backend, t in time_sdpa(q4, k4, v4, mask[:, None, None, :], dout4, quick).items():
            acc = sdpa_t.setdefault(backend, dict.fromkeys(keys, 0.0))
            if "error" in t or "error" in acc:
                sdpa_t[backend] = {"error": t.get("error", "failed on some batch")}
                continue
            for key in keys:
                if key in t and key in acc:
                    acc[key] += t[key]
                else:
                    acc.pop(key, None)  # not capturable on some batch: no graph time for this backend
        useful += 4 * heads * head_dim * sum(n * n for n in lens)
        padded_flops += 4 * heads * head_dim * len(lens) * padded_len * padded_len
    row = {
        "dataset": name,
        "batch_size": batch_size,
        "batches": n_batches,
        "head_dim": head_dim,
        "heads": heads,
        "dtype": "bfloat16",
        "mean_length": sum(lengths) / len(lengths),
        "padding_waste": 1 - useful / padded_flops,
        "ours_ms_per_batch": {k_: t / n_batches for k_, t in ours_t.items()},
        "sdpa_ms_per_batch": {
            b: ({k_: t / n_batches for k_, t in ts.items()} if "fwd" in ts else ts)
            for b, ts in sdpa_t.items()
        },
        "speedup_vs_best_sdpa": {},
        "useful_tflops": {},
    }
    for key, mult in (("fwd", 1.0), ("fwd_bwd", 3.5), ("fwd_gpu", 1.0), ("fwd_bwd_gpu", 3.5)):
        if not ours_t[key] or not any(key in t for t in sdpa_t.values()):
            continue
        backend, t_sdpa = best(sdpa_t, key)
        row["speedup_vs_best_sdpa"][key] = {"backend": backend, "x": t_sdpa / ours_t[key]}
        row["useful_tflops"][key] = {
            "ours": mult * useful / ours_t[key] / 1e9,
            f"sdpa_{backend}": mult * useful / t_sdpa / 1e9,
        }
        log(
            f"  {name:9} B={batch_size:<4} {key:11} ours {ours_t[key] / n_batches:8.4f} ms/batch   "
            f"sdpa/{backend} {t_sdpa / n_batches:8.4f} ms/batch   ours/sdpa speed {t_sdpa / ours_t[key]:.2f}x   "
            f"(useful {mult * useful / ours_t[key] / 1e9:.1f} vs {mult * useful / t_sdpa / 1e9:.1f} TFLOP/s)"
        )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and repeats (about a minute)")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    parser.add_argument(
        "--lengths", type=Path, help="token lengths from --dump-lengths instead of tokenizing"
    )
    parser.add_argument("--dump-lengths", type=Path, help="tokenize the data sets, write their lengths, exit")
    parser.add_argument(
        "--head-dim", type=int, default=64, help="head size for the real-length runs (default 64)"
    )
    parser.add_argument(
        "--batch-sizes", default="32,256", help="sequences per batch for the real-length runs"
    )
    args = parser.parse_args(argv)

    if args.dump_lengths:
        lengths = dataset_lengths()
        args.dump_lengths.write_text(json.dumps(lengths))
        log(
            f"wrote {', '.join(f'{k}: {len(v)} sentences' for k, v in lengths.items())} to {args.dump_lengths}"
        )
        return 0

    import torch

    if not torch.cuda.is_available():
        log("bench_attention: needs a CUDA GPU (nothing to compare on the CPU); skipped")
        return 0
    kernels, source = load_kernels()
    env = environment(source)
    log("# fastbert varlen attention vs torch SDPA")
    for k_, v_ in env.items():
        log(f"- {k_}: {v_}")
    start = time.perf_counter()
    results: dict[str, Any] = {
        "environment": env,
        "quick": args.quick,
        "fixed_length": [],
        "real_lengths": [],
    }

    log("\n## 1. fixed length: 12 heads × d 64, seq 512")
    for dtype_name in ("bfloat16", "float16"):
        results["fixed_length"].append(fixed_length(kernels, dtype_name, args.quick))

    log(
        f"\n## 2. real length distributions (bf16, 12 heads × d {args.head_dim}; SDPA padded + key-padding mask)"
    )
    if args.lengths:
        lengths = json.loads(args.lengths.read_text())
    else:
        lengths = dataset_lengths()
    for name, lens in lengths.items():
        log(f"  {name}: {len(lens)} sentences, mean {sum(lens) / len(lens):.1f} tokens, max {max(lens)}")
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            results["real_lengths"].append(
                real_lengths(kernels, name, lens, batch_size, args.quick, args.head_dim)
            )
    results["seconds"] = time.perf_counter() - start
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
        log(f"\nwrote {args.out}")
    log(f"done in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
