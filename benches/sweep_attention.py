"""Block-size sweep of the attention kernels on a GPU: which tile configuration is fastest, measured.

The launchers pick fixed block sizes (``_fwd_config`` and ``_bwd_config`` in
``kernels/attention.py``). They came from one sweep on an H100 on 2026-11-22, before
the forward lost its per-block bounds checks and before attention dropout drew 8 keys
per Philox call; both change register pressure, so the best tiles may have moved.
This script times each candidate configuration of each kernel, on its own, replayed
from a CUDA graph (device time), on the two problems the goals name:

- ``L512``: 16 sequences of 512 tokens, 12 heads × d 64, bf16 (issue 4's TFLOP/s bar);
- ``sst2``: 256 SST-2 train sentences (their token lengths, shuffled with seed 0).

once without dropout and, for the default and the three fastest, with attention
dropout 0.1 (what training runs). Every configuration's outputs are checked against
the default's on the same inputs (same dropout seed, so the same mask): a
configuration that computes something else is reported as wrong, never as fast.
It prints a ranked table per (problem, kernel) with the default marked, and writes
every number as JSON. It changes nothing: a person reads the table and edits the
launchers, citing the run.

Usage (GPU only; about two minutes, most of it compiling)::

    python benches/sweep_attention.py [--out sweep.json] [--lengths lengths.json]
    python benches/sweep_attention.py --smoke   # no GPU: the same code path in Triton's
                                                # interpreter on tiny problems (times meaningless)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench_attention import dataset_lengths, environment, load_kernels, log

HEADS, HEAD_DIM = 12, 64


def _fwd(block_m: int, block_n: int, warps: int, stages: int) -> dict[str, int]:
    return {"BLOCK_M": block_m, "BLOCK_N": block_n, "num_warps": warps, "num_stages": stages}


def _bwd(block_m1: int, block_n1: int, warps: int, stages: int) -> dict[str, int]:
    # BLOCK_M2 must equal BLOCK_N1 (one program owns a key block and the query block of the
    # same index); BLOCK_N2 = BLOCK_M1 keeps the two halves' tiles alike, as the tutorial does.
    return {"BLOCK_M1": block_m1, "BLOCK_N1": block_n1, "BLOCK_M2": block_n1, "BLOCK_N2": block_m1,
            "num_warps": warps, "num_stages": stages}  # fmt: skip


#: Candidates per (problem, kernel). A warpgroup MMA covers 64 rows, so 8 warps need ≥ 128-row tiles.
CANDIDATES = {
    ("L512", "fwd"): [_fwd(64, n, 4, 3) for n in (64, 128)]
    + [_fwd(128, n, w, s) for n in (64, 128) for w in (4, 8) for s in (2, 3)],
    ("sst2", "fwd"): [_fwd(64, n, 4, s) for n in (16, 32, 64) for s in (1, 2)] + [_fwd(128, 32, 8, 2)],
    ("L512", "bwd"): [_bwd(m1, n1, w, 3) for m1 in (16, 32, 64) for n1 in (64, 128) for w in (4, 8)],
    ("sst2", "bwd"): [_bwd(m1, n1, 4, s) for m1 in (16, 32) for n1 in (32, 64) for s in (1, 2)],
}


def problem(name: str, lengths: dict[str, list[int]], smoke: bool) -> list[int]:
    if name == "L512":
        return [40, 40] if smoke else [512] * 16
    order = lengths["sst2"][:]
    random.Random(0).shuffle(order)
    return order[: 4 if smoke else 256]


def time_ms(fn) -> float:
    """Median device milliseconds of ``fn`` replayed from a CUDA graph (eager timing if capture fails)."""
    import torch
    import triton

    if not torch.cuda.is_available():  # --smoke: one wall-clock call in the interpreter
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3

    try:
        return triton.testing.do_bench_cudagraph(fn, rep=20, return_mode="median")
    except Exception:
        return triton.testing.do_bench(fn, warmup=5, rep=20, return_mode="median")


def sweep_one(
    attention, name: str, kernel: str, lens: list[int], dropout_p: float, configs: list[dict], device: str
) -> dict:
    """Time ``kernel`` ('fwd' or 'bwd') under each config on ``lens``; the first config is the default."""
    import torch

    gen = torch.Generator(device=device).manual_seed(0)
    total, max_len = sum(lens), max(lens)
    q, k, v, dout = (
        torch.randn(total, HEADS, HEAD_DIM, device=device, dtype=torch.bfloat16, generator=gen)
        for _ in range(4)
    )
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], device=device, dtype=torch.int32)
    seed = torch.full((1,), 2**33 + 7, device=device, dtype=torch.int64)
    scale = 1.0 / math.sqrt(HEAD_DIM)
    default_fwd, default_bwd = attention.forward_config, attention.backward_config
    out, lse = attention.varlen_forward(q, k, v, cu, max_len, dropout_p, scale, seed)
    want = (out,) if kernel == "fwd" else attention.varlen_backward(
        dout, q, k, v, out, lse, cu, max_len, dropout_p, scale, seed
    )  # fmt: skip
    rows = []
    for cfg in configs:
        row: dict[str, Any] = {"config": cfg}
        if kernel == "fwd":
            attention.forward_config = lambda *_, cfg=cfg: dict(cfg)

            def run():
                return (attention.varlen_forward(q, k, v, cu, max_len, dropout_p, scale, seed)[0],)
        else:
            attention.backward_config = lambda *_, cfg=cfg: dict(cfg)

            def run():
                return attention.varlen_backward(dout, q, k, v, out, lse, cu, max_len, dropout_p, scale, seed)

        try:
            got = run()
            if device == "cuda":
                torch.cuda.synchronize()
            err = max(
                ((g.float() - w.float()).abs().max() / w.float().abs().max()).item()
                for g, w in zip(got, want, strict=True)
            )
            row["max_rel_diff_vs_default"] = err
            if not err <= 2e-2:
                row["error"] = f"wrong result: {err:.2e} off the default's"
            else:
                row["ms"] = time_ms(run)
        except Exception as e:  # e.g. out of shared memory on this GPU
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
        finally:
            attention.forward_config, attention.backward_config = default_fwd, default_bwd
        rows.append(row)
    flops = 4 * HEADS * HEAD_DIM * sum(n * n for n in lens) * (1.0 if kernel == "fwd" else 2.5)
    for row in rows:
        if "ms" in row:
            row["tflops"] = flops / row["ms"] / 1e9
    return {"problem": name, "kernel": kernel, "dropout_p": dropout_p, "lengths": len(lens), "rows": rows}


def report(result: dict) -> None:
    rows = result["rows"]
    default = rows[0]
    log(
        f"\n## {result['problem']} {result['kernel']} dropout {result['dropout_p']} ({result['lengths']} seqs)"
    )
    ranked = sorted(rows, key=lambda r: r.get("ms", math.inf))
    for r in ranked:
        mark = " (default)" if r is default else ""
        if "ms" in r:
            vs = default["ms"] / r["ms"] if "ms" in default else float("nan")
            log(f"  {r['ms']:.4f} ms  {r['tflops']:6.1f} TFLOP/s  {vs:5.2f}x default  {r['config']}{mark}")
        else:
            log(f"  {r['error']}  {r['config']}{mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write every number as JSON here")
    parser.add_argument("--lengths", type=Path, help="token lengths from bench_attention.py --dump-lengths")
    parser.add_argument("--smoke", action="store_true", help="no GPU: tiny problems in Triton's interpreter")
    args = parser.parse_args(argv)
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported

    import torch

    if not torch.cuda.is_available() and not args.smoke:
        log("sweep_attention: needs a CUDA GPU; skipped")
        return 0
    device = "cuda" if not args.smoke else "cpu"
    _, source = load_kernels()  # fastbert.kernels, installed or from this checkout
    import fastbert.kernels.attention_kernels as attention

    env = environment(source) if device == "cuda" else {"kernels": source, "mode": "smoke (interpreter)"}
    log("# attention block-size sweep (bf16, 12 heads × d 64; device time from CUDA graphs)")
    for key, value in env.items():
        log(f"- {key}: {value}")
    lengths = json.loads(args.lengths.read_text()) if args.lengths else dataset_lengths()
    start = time.perf_counter()
    results = []
    for (name, kernel), candidates in CANDIDATES.items():
        lens = problem(name, lengths, args.smoke)
        default = (attention.forward_config if kernel == "fwd" else attention.backward_config)(
            HEAD_DIM, torch.bfloat16, max(lens)
        )
        others = [c for c in candidates if c != default]
        configs = [default, *others[: 2 if args.smoke else None]]
        plain = sweep_one(attention, name, kernel, lens, 0.0, configs, device)
        report(plain)
        fastest = sorted((r for r in plain["rows"][1:] if "ms" in r), key=lambda r: r["ms"])[:3]
        with_dropout = sweep_one(
            attention, name, kernel, lens, 0.1, [default] + [r["config"] for r in fastest], device
        )
        report(with_dropout)
        results += [plain, with_dropout]
    seconds = time.perf_counter() - start
    log(f"\ndone in {seconds:.0f} s")
    if args.out:
        args.out.write_text(
            json.dumps({"environment": env, "seconds": seconds, "results": results}, indent=2)
        )
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
