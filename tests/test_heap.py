"""`fastbert.heap`: large allocations come from glibc's heap while training, and from fresh
mappings again afterwards; the environment switch turns it off.

Where an allocation went is read from glibc's own books (``mallinfo2().hblkhd``: bytes held in
mmapped blocks), so these tests only run on glibc 2.33 or later. Each check runs in a fresh
interpreter: whether glibc maps a block depends on what the process freed before (a free
64 MiB hole left in the heap by an earlier test is reused, rightly, instead of a new mapping),
so inside the test session the answer would depend on test order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastbert.training import heap

LIBC = heap.glibc()
pytestmark = pytest.mark.skipif(
    LIBC is None or not hasattr(LIBC, "mallinfo2"), reason="needs glibc 2.33+ (mallopt, mallinfo2)"
)

BIG = 64 * 1024 * 1024  # above glibc's largest adaptive mmap threshold (32 MiB)

PRELUDE = textwrap.dedent(
    """
    import ctypes, json, sys
    import torch
    from fastbert.training import heap

    BIG = 64 * 1024 * 1024
    FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]  # glibc's struct, in order

    LIBC = heap.glibc()
    LIBC.mallinfo2.restype = MallInfo2

    def mapped_by_a_big_tensor(size=BIG):
        '''Bytes of fresh mappings that allocating (and touching) a tensor of `size` bytes added.'''
        before = LIBC.mallinfo2().hblkhd
        t = torch.ones(size, dtype=torch.uint8)
        grown = LIBC.mallinfo2().hblkhd - before
        del t
        return int(grown)
    """
)


def run_fresh(body: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run PRELUDE + body in a new interpreter; body prints one JSON object as its last line."""
    import os

    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_big_allocations_come_from_the_heap_inside_and_from_mappings_after() -> None:
    seen = run_fresh(
        """
        out = {"before": mapped_by_a_big_tensor()}
        with heap.heap_allocations() as active:
            out["active"] = active
            out["inside"] = mapped_by_a_big_tensor()
            out["again"] = mapped_by_a_big_tensor()  # from the heap again
        # mallopt is process-wide: restored on exit. The blocks freed inside may still sit in the
        # heap below a later small allocation (another thread's, say), where malloc_trim cannot
        # return them and glibc rightly reuses them: what shows that mmap is back is a request
        # larger than all the free memory of the heap, which no freed block can serve.
        out["after_size"] = LIBC.mallinfo2().fordblks + BIG
        out["after"] = mapped_by_a_big_tensor(out["after_size"])
        print(json.dumps(out))
        """
    )
    assert seen["before"] >= BIG  # glibc maps it: what the block avoids
    assert seen["active"] is True
    assert seen["inside"] < 1024 * 1024
    assert seen["again"] < 1024 * 1024
    assert seen["after"] >= seen["after_size"]


def test_the_environment_switch_turns_it_off() -> None:
    seen = run_fresh(
        """
        with heap.heap_allocations() as active:
            print(json.dumps({"active": active, "inside": mapped_by_a_big_tensor()}))
        """,
        env={"FASTBERT_MALLOC_TUNING": "0"},
    )
    assert seen["active"] is False
    assert seen["inside"] >= BIG


def test_cpu_training_runs_inside_it_and_restores_glibc_after(tiny_model: Path) -> None:
    seen = run_fresh(
        f"""
        import contextlib
        import fastbert
        from fastbert.training import loop as train_mod

        seen = []

        @contextlib.contextmanager
        def recording():
            with heap.heap_allocations() as active:
                seen.append(active)
                yield active

        train_mod.heap_allocations = recording
        rows = [("a fine film", "pos"), ("a dull film", "neg")] * 4
        fastbert.finetune(rows, rows, model={str(tiny_model)!r}, epochs=1, batch_size=4,
                          progress=False, device="cpu")
        # More than the heap's free memory, as in the test above: only mmap can serve it.
        after_size = LIBC.mallinfo2().fordblks + BIG
        print(json.dumps({{"seen": seen, "after_size": after_size, "after": mapped_by_a_big_tensor(after_size)}}))
        """
    )
    assert seen["seen"] and all(seen["seen"])  # type: ignore[union-attr]
    assert seen["after"] >= seen["after_size"]
