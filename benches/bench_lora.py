"""Benchmark: fastbert.kernels.lora_linear against the frozen base GEMM alone and PEFT's LoRA Linear.

For BERT-sized projections (768 → 768 as query/value, 768 → 3072 as the
feed-forward) at 4k and 16k tokens, ranks 8 and 16, bf16, forward and
forward+backward (dx, dA, dB; W frozen) of:

- ``base``: ``F.linear(x, W, b)`` alone, W frozen — the floor any LoRA layer sits on;
- ``peft``: ``peft.tuners.lora.Linear`` (``get_peft_model``), the usual way;
- ``fastbert_eager``: ``fastbert.model.lora.LoRALinear`` on PEFT's formula (kernels off, no merging);
- ``fused``: ``fastbert.kernels.lora_linear(..., strategy="fused")``, one Triton kernel forward,
  one + two small GEMMs backward (with dropout: a Bernoulli mask drawn by PyTorch);
- ``merged``: ``strategy="merged"`` (``fastbert.kernels.lora_merged``), the adapter folded into
  the weight and cuBLAS each way — what the trainer runs without dropout (and in
  evaluation). Not timed with ``--dropout`` (it does not apply);
- ``split``: ``strategy="split"`` (``fastbert.kernels.lora_dropout``), the frozen layer on
  cuBLAS and the adapter's rank-r products in Triton through a mask regenerated from a
  counter-based RNG — what the trainer runs with dropout. Timed with ``--dropout`` only.

With ``--dropout 0.1`` the adapters use dropout (PEFT and fastbert_eager through
``nn.Dropout``). Ratios printed, for each of ours: its time
over base (the LoRA overhead we still pay) and PEFT's time over it (our speed-up). TFLOP/s
count the useful products: 2MNK + 2MKr + 2MNr forward, twice that backward
(dx's two products, dA and dB). Times are medians: ``call`` — eager calls back to
back (``triton.testing.do_bench``), Python overhead included; ``gpu`` — replayed
from a CUDA graph (``do_bench_cudagraph``), device time alone.

Usage::

    python benches/bench_lora.py [--quick] [--out results.json] [--dropout 0.1] [--dtype float16]
    python benches/bench_lora.py --device cpu    # no Triton: base, PEFT, fastbert_eager, merged; fp32

On the CPU (``--device cpu``) the Triton kernel does not run (its interpreter is not a
speed); the merged path does, as it does in the trainer's evaluation on the CPU, and
times are medians of wall-clock calls (``bench_cpu``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def log(*args: Any) -> None:
    print(*args, flush=True)


def load_fastbert() -> tuple[Any, Any, str]:
    """(fastbert.kernels, fastbert.lora) as installed; else from this checkout (no compiled _core for this Python)."""
    try:
        import fastbert.kernels as kernels
        import fastbert.model.lora as lora

        return kernels, lora, f"installed fastbert ({Path(kernels.__file__).parent})"
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
    package = types.ModuleType("fastbert")  # a bare package: its __init__ needs the compiled _core
    package.__path__ = [str(REPO / "python" / "fastbert")]
    sys.modules["fastbert"] = package
    import fastbert.kernels as kernels
    import fastbert.model.lora as lora

    return kernels, lora, f"source checkout {REPO / 'kernels'} (fastbert itself not importable: {reason})"


def environment(source: str, device: str) -> dict[str, str]:
    import peft
    import torch

    if device == "cpu":
        from _common import machine

        info = machine()
        return {
            "device": f"CPU: {info['cpu']}, {torch.get_num_threads()} torch threads",
            "load average (1/5/15 min)": info["load average (1/5/15 min)"],
            "torch": torch.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
            "kernels": source,
            "fastbert_git": info["fastbert git"],
        }
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
        "driver": driver or "unknown",
        "cuda": str(torch.version.cuda),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "kernels": source,
        "fastbert_git": sha or "?",
    }


def bench_cpu(fn, grads, quick: bool) -> float:
    """Median wall time in ms of ``fn`` on the CPU (warm-up first; gradients reset as do_bench does)."""
    reps, warmup = (15, 3) if quick else (60, 10)
    times = []
    for i in range(warmup + reps):
        for g in grads:
            g.grad = None
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bench(fn, grads, quick: bool) -> float:
    import triton

    warmup, rep = (10, 40) if quick else (25, 150)
    return triton.testing.do_bench(fn, warmup=warmup, rep=rep, grad_to_none=grads, return_mode="median")


def bench_graph(fn, grads) -> float | None:
    import triton

    try:
        return triton.testing.do_bench_cudagraph(fn, rep=20, grad_to_none=grads, return_mode="median")
    except Exception:  # not capturable: report the eager time only
        return None


def case(
    kernels,
    lora_mod,
    m: int,
    k: int,
    n: int,
    rank: int,
    dtype_name: str,
    dropout: float,
    quick: bool,
    device: str,
):
    import peft
    import torch
    import torch.nn.functional as F
    from torch import nn

    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(k, n)

    model = peft.get_peft_model(
        Tiny(),
        peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["proj"], lora_dropout=dropout),
    )
    layer = model.base_model.model.proj.to(device=device, dtype=dtype).train()
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_(0, rank**-0.5)  # non-zero, as after some training
    weight, bias = layer.base_layer.weight, layer.base_layer.bias
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    scaling = layer.scaling["default"]
    assert not weight.requires_grad and a.requires_grad and b.requires_grad

    eager = (
        lora_mod.LoRALinear(nn.Linear(k, n), rank, 2 * rank, dropout).to(device=device, dtype=dtype).train()
    )
    with torch.no_grad():
        eager.weight.copy_(weight)
        eager.bias.copy_(bias)
        eager.lora_A.weight.copy_(a)
        eager.lora_B.weight.copy_(b)
    eager.merge_without_dropout = False  # PEFT's formula in our module (merged is timed on its own)

    x = torch.randn(m, k, device=device, dtype=dtype, requires_grad=True)
    dy = torch.randn(m, n, device=device, dtype=dtype)

    ours = ["fused"] if device == "cuda" else []  # the Triton kernels need CUDA
    if not dropout:
        ours.append("merged")  # merging needs no dropout
    elif device == "cuda":
        ours.append("split")  # and splitting needs dropout
    # Correctness at this size, dropout off: ours and PEFT against fp64.
    with torch.no_grad():
        ref = (
            F.linear(x.double(), weight.double(), bias.double())
            + (x.double() @ a.double().t()) @ b.double().t() * scaling
        )
        layer.eval()
        errors = {"peft": ((layer(x).double() - ref).norm() / ref.norm()).item()}
        layer.train()
        for name in ("fused", "merged") if device == "cuda" else ("merged",):
            y = kernels.lora_linear(x, weight, bias, a, b, scaling, strategy=name)
            errors[name] = ((y.double() - ref).norm() / ref.norm()).item()

    fns = {
        "base": lambda: F.linear(x, weight, bias),
        "peft": lambda: layer(x),
        "fastbert_eager": lambda: eager(x),
        "fused": lambda: kernels.lora_linear(x, weight, bias, a, b, scaling, dropout, strategy="fused"),
        "merged": lambda: kernels.lora_linear(x, weight, bias, a, b, scaling, strategy="merged"),
        "split": lambda: kernels.lora_linear(x, weight, bias, a, b, scaling, dropout, strategy="split"),
    }
    fns = {name: fn for name, fn in fns.items() if name not in ("fused", "merged", "split") or name in ours}
    grads = {
        "base": [x],
        "peft": [x, a, b],
        "fastbert_eager": [x, eager.lora_A.weight, eager.lora_B.weight],
        "fused": [x, a, b],
        "merged": [x, a, b],
        "split": [x, a, b],
    }
    times: dict[str, dict[str, float]] = {}
    for name, fn in fns.items():

        def fwd_bwd(fn=fn):
            fn().backward(dy)

        timer = bench if device == "cuda" else bench_cpu
        times[name] = {"fwd": timer(fn, grads[name], quick), "fwd_bwd": timer(fwd_bwd, grads[name], quick)}
        for key, f in (("fwd", fn), ("fwd_bwd", fwd_bwd)) if device == "cuda" else ():
            t = bench_graph(f, grads[name])
            if t is not None:
                times[name][f"{key}_gpu"] = t
    fwd_flops = 2 * m * n * k + 2 * m * k * rank + 2 * m * n * rank
    flops = {"fwd": fwd_flops, "fwd_bwd": 3 * fwd_flops, "fwd_gpu": fwd_flops, "fwd_bwd_gpu": 3 * fwd_flops}
    keys = [key for key in flops if all(key in t for t in times.values())]
    row = {
        "shape": {"M": m, "K": k, "N": n, "r": rank},
        "dtype": dtype_name,
        "dropout": dropout,
        "rel_err_vs_fp64": errors,
        "ms": times,
        "tflops": {name: {key: flops[key] / t[key] / 1e9 for key in t} for name, t in times.items()},
    }
    for name in ours:
        row[f"{name}_over_base"] = {key: times[name][key] / times["base"][key] for key in keys}
        row[f"peft_over_{name}"] = {key: times["peft"][key] / times[name][key] for key in keys}
    for key in keys:
        log(
            f"  M={m:<6} {k}->{n:<5} r={rank:<3} {key:11} "
            + "  ".join(f"{name} {times[name][key]:.4f}" for name in fns)
            + (" ms | " if ours else " ms (no fastbert kernel applies here)")
            + ", ".join(
                f"{name}/base {row[f'{name}_over_base'][key]:.2f}x peft/{name} "
                f"{row[f'peft_over_{name}'][key]:.2f}x ({row['tflops'][name][key]:.3g} TFLOP/s)"
                for name in ours
            )
        )
    log("  rel. error vs fp64 (no dropout): " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repeats (under a minute)")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    parser.add_argument("--dropout", type=float, default=0.0, help="adapter dropout for every contestant")
    parser.add_argument(
        "--dtype",
        choices=["bfloat16", "float16", "float32"],
        help="default: bfloat16 on CUDA, float32 on the CPU",
    )
    parser.add_argument(
        "--device",
        choices=["cuda", "cpu"],
        default="cuda",
        help="cpu: base, PEFT, fastbert_eager and merged (no Triton), MiniLM and BERT-base shapes",
    )
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        log("bench_lora: needs a CUDA GPU (or --device cpu, without the Triton kernel); skipped")
        return 0
    dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    kernels, lora_mod, source = load_fastbert()
    env = environment(source, args.device)
    log("# fastbert fused LoRA vs base GEMM and PEFT")
    for key, value in env.items():
        log(f"- {key}: {value}")
    log(f"- dtype: {dtype}, adapter dropout: {args.dropout}")
    log("  times in ms (median); X/base: LoRA overhead over the frozen GEMM; peft/X: speed-up over PEFT")
    if args.device == "cpu":  # a MiniLM batch (32 sentences of ~64 tokens) and BERT-base's projection
        shapes = [(2048, 384, 384, 8), (2048, 384, 1536, 8), (4096, 768, 768, 8)]
    else:
        shapes = [(16384, 768, 768, 8), (16384, 768, 3072, 8)]
        if not args.quick:
            shapes = [
                (4096, 768, 768, 8),
                *shapes[:1],
                (16384, 768, 768, 16),
                shapes[1],
                (16384, 3072, 768, 8),
            ]
    start = time.perf_counter()
    rows = [case(kernels, lora_mod, *shape, dtype, args.dropout, args.quick, args.device) for shape in shapes]
    results = {
        "environment": env,
        "device": args.device,
        "quick": args.quick,
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
        log(f"wrote {args.out}")
    log(f"done in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
