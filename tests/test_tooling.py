"""The developer commands (`make help` lists them) do what they say, checked with ``make -n``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or not (REPO / "Makefile").is_file(), reason="needs make and the Makefile"
)


def dry_run(target: str) -> list[str]:
    """The commands ``make <target>`` would run, one per line."""
    proc = subprocess.run(
        ["make", "-n", target, "VENV=.venv"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    return proc.stdout.splitlines()


def test_build_dev_copies_the_kernels_before_building() -> None:
    # maturin develop bypasses the PEP 517 backend that copies kernels/ into the package, so an
    # editable build without the copy tested stale kernels (build_backend/fastbert_build.py).
    lines = dry_run("build-dev")
    sync = [i for i, line in enumerate(lines) if "build_backend.sync" in line]
    develop = [i for i, line in enumerate(lines) if "maturin develop" in line]
    assert sync and develop and sync[0] < develop[0], lines


def test_bench_runs_every_benchmark_script_and_no_driver() -> None:
    # `make bench` ran every benches/*.py, gpu_session.py among them, which needs a subcommand
    # and stopped the run with status 2.
    commands = "\n".join(dry_run("bench"))
    listed = set(re.findall(r"benches/[\w.]+\.py", commands))
    assert listed == {f"benches/{p.name}" for p in (REPO / "benches").glob("bench_*.py")}, listed
    for driver in ("gpu_session.py", "sweep_attention.py", "run_all.py"):
        assert f"benches/{driver}" not in listed
