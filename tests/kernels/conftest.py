"""Kernel tests run everywhere: compiled on a CUDA GPU when there is one, else in Triton's interpreter.

``TRITON_INTERPRET=1`` must be set before Triton is first imported: Triton decorates
its own library functions (``tl.max``, ``tl.rand``…) at import, and the interpreter
cannot call ones decorated without it. pytest imports this file before any test
module (so before ``transformers``, which imports Triton), and only when CUDA is
absent is the variable set. It stays set for the session: the interpreter reads it
when kernels run too.

In a source checkout this file also refreshes ``python/fastbert/kernels/`` from
``kernels/`` (``python -m build_backend.sync``), so that an editable install tests
the kernels as they are now, and a ``maturin build`` later in the session packs them.

``FASTBERT_KERNELS_FROM_SOURCE=1`` is for a machine where fastbert's compiled
extension cannot be imported (a lent GPU box with another Python): the pure-Python
modules of ``python/fastbert`` are then imported under a bare ``fastbert`` package,
without its ``__init__``.

Fixtures: ``device`` ("cuda" or "cpu"), ``gen`` (a ``torch.Generator`` freshly
seeded for every test; the seed is printed, and ``FASTBERT_TEST_SEED`` replays one),
and, for every test, ``FASTBERT_KERNELS_POISON=1`` so that outputs start as NaN and
an element the kernels never wrote fails the finite checks.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
HAS_CUDA = torch.cuda.is_available()

if not HAS_CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    if "triton" in sys.modules:
        raise RuntimeError(
            "triton was imported before tests/kernels/conftest.py could set TRITON_INTERPRET=1 "
            "(needed to run the kernels without a GPU); run `TRITON_INTERPRET=1 python -m pytest …`"
        )
    os.environ["TRITON_INTERPRET"] = "1"


def _sync_source_copy() -> None:
    backend = REPO / "build_backend" / "fastbert_build.py"
    if not (backend.is_file() and (REPO / "kernels").is_dir() and (REPO / "python" / "fastbert").is_dir()):
        return  # not a source checkout
    spec = importlib.util.spec_from_file_location("_fastbert_build_for_tests", backend)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.sync_kernels(REPO, quiet=True)
    except OSError:  # a read-only checkout: the installed package is what gets tested anyway
        pass


_sync_source_copy()

if os.environ.get("FASTBERT_KERNELS_FROM_SOURCE") == "1" and "fastbert" not in sys.modules:
    import types

    _package = types.ModuleType("fastbert")
    _package.__path__ = [str(REPO / "python" / "fastbert")]
    sys.modules["fastbert"] = _package


@pytest.fixture(scope="session")
def device() -> str:
    return "cuda" if HAS_CUDA else "cpu"


@pytest.fixture
def gen(request: pytest.FixtureRequest) -> torch.Generator:
    """A CPU generator with a fresh seed per test (inputs are drawn on the CPU, then moved)."""
    seed = int(os.environ.get("FASTBERT_TEST_SEED", secrets.randbits(48)))
    print(f"{request.node.nodeid}: FASTBERT_TEST_SEED={seed}")
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def _poison_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTBERT_KERNELS_POISON", "1")
