"""`fastbert.heap`: large allocations come from glibc's heap while training, and from fresh
mappings again afterwards; the environment switch turns it off.

Where an allocation went is read from glibc's own books (``mallinfo2().hblkhd``: bytes held in
mmapped blocks), so these tests only run on glibc 2.33 or later.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import fastbert
from fastbert import heap
from fastbert import train as train_mod

LIBC = heap.glibc()
pytestmark = pytest.mark.skipif(
    LIBC is None or not hasattr(LIBC, "mallinfo2"), reason="needs glibc 2.33+ (mallopt, mallinfo2)"
)

BIG = 64 * 1024 * 1024  # above glibc's largest adaptive mmap threshold (32 MiB)


FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]  # glibc's struct mallinfo2, in order


def mmapped_bytes() -> int:
    assert LIBC is not None
    LIBC.mallinfo2.restype = MallInfo2
    return int(LIBC.mallinfo2().hblkhd)


def mapped_by_a_big_tensor() -> int:
    """Bytes of fresh mappings that allocating (and touching) a 64 MiB tensor added."""
    before = mmapped_bytes()
    t = torch.ones(BIG, dtype=torch.uint8)
    grown = mmapped_bytes() - before
    del t
    return grown


def test_big_allocations_come_from_the_heap_inside_and_from_mappings_after() -> None:
    assert mapped_by_a_big_tensor() >= BIG  # glibc maps it: what the block avoids
    with heap.heap_allocations() as active:
        assert active
        assert mapped_by_a_big_tensor() < 1024 * 1024
        assert mapped_by_a_big_tensor() < 1024 * 1024  # and again: the freed block is reused
    assert mapped_by_a_big_tensor() >= BIG  # mallopt is process-wide: restored on exit


def test_the_environment_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTBERT_MALLOC_TUNING", "0")
    with heap.heap_allocations() as active:
        assert not active
        assert mapped_by_a_big_tensor() >= BIG


def test_cpu_training_runs_inside_it(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    @contextlib.contextmanager
    def recording() -> Iterator[bool]:
        with heap.heap_allocations() as active:
            seen.append(active)
            yield active

    monkeypatch.setattr(train_mod, "heap_allocations", recording)
    rows = [("a fine film", "pos"), ("a dull film", "neg")] * 4
    fastbert.finetune(rows, rows, model=tiny_model, epochs=1, batch_size=4, progress=False, device="cpu")
    assert seen and all(seen)
    assert mapped_by_a_big_tensor() >= BIG
