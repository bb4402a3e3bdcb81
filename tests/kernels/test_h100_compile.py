"""The kernels compile for an H100 with the block sizes their launchers pick, fit its shared memory and use wgmma.

CI has no GPU, and Triton's interpreter ignores block sizes, warps and stages, so
without this a launcher change that asks for more shared memory than an H100 has
(227 KB per block) would first fail on a lent GPU ("out of resource: shared memory").
``_compile_for_h100.py`` runs the real launchers on CPU tensors of benchmark shapes
and compiles each kernel ahead of time for sm_90 (see its docstring); here we check
what it reports. The bf16/fp16 matrix products must lower to Hopper's ``wgmma``
(FlashAttention-3's tensor-core path), not the older ``mma``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

#: cudaDevAttrMaxSharedMemoryPerBlockOptin on an H100 (and an H200): 227 KB.
H100_SHARED_BYTES = 232448
SCRIPT = Path(__file__).with_name("_compile_for_h100.py")


@pytest.mark.slow
@pytest.mark.skipif(
    torch.cuda.is_available(), reason="with a GPU the other tests compile and launch the kernels"
)
def test_kernels_compile_for_h100_within_its_shared_memory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")  # compile now, not from an earlier run's cache
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"compiling for sm_90 failed:\n{done.stderr[-4000:]}"
    kernels = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    cases = {k["case"] for k in kernels}
    assert len(cases) == 9 and len(kernels) == 4 * 3 + 5 * 2, [k["case"] for k in kernels]
    for k in kernels:
        where = f"{k['kernel']} ({k['case']}, {k['config']})"
        assert 0 < k["shared"] <= H100_SHARED_BYTES, f"{where}: {k['shared']} B of shared memory"
        if k["kernel"] != "_attn_bwd_preprocess_kernel":  # the one kernel without a matrix product
            assert k["wgmma"], f"{where}: no wgmma in the PTX"
    # The Hopper-only LoRA tile (256 rows) must be the one compiled for the benchmark shape.
    big = [k for k in kernels if k["kernel"] == "_lora_fwd_kernel" and "16384x768->768" in k["case"]]
    assert big and big[0]["config"]["BLOCK_M"] == 256
