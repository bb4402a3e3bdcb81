"""fastbert.kernels.lora_merged (the adapter folded into the weight) and LoRALinear's use of it, against PEFT's formula.

Pure PyTorch, so these run as real CPU (or GPU) arithmetic, not in Triton's
interpreter, and at realistic sizes. Inputs are fresh every run (seed printed;
``FASTBERT_TEST_SEED`` replays one).
Tolerances on ‖out − fp64‖ / ‖fp64‖: fp32 1e-5 and fp64 1e-12 (exact products
in a higher precision than needed); fp16/bf16 are held to FlashAttention's rule,
at most twice PyTorch's own error at the same dtype (PEFT's formula run in that
dtype), the rule the GPU tests of the fused kernel apply.
"""

from __future__ import annotations

import math
import os
import secrets

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbert.kernels.lora_merged import merged_lora_linear
from fastbert.model.lora import LoRALinear


@pytest.fixture
def gen(request: pytest.FixtureRequest) -> torch.Generator:
    seed = int(os.environ.get("FASTBERT_TEST_SEED", secrets.randbits(48)))
    print(f"{request.node.nodeid}: FASTBERT_TEST_SEED={seed}")
    return torch.Generator().manual_seed(seed)


def reference(x, weight, bias, a, b, scaling):
    """PEFT's formula (``lora_linear_reference`` without dropout), in the inputs' dtype."""
    return torch.nn.functional.linear(x, weight, bias) + (x @ a.t()) @ b.t() * scaling


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return ((x.double() - ref).norm() / max(ref.norm().item(), 1e-3 * math.sqrt(ref.numel()))).item()


def inputs(gen, m, k, n, rank, dtype, bias=True):
    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)

    x = rnd(m, k).requires_grad_()
    weight = rnd(n, k, scale=k**-0.5)
    b = rnd(n) if bias else None
    lora_a = rnd(rank, k, scale=k**-0.5).requires_grad_()
    lora_b = rnd(n, rank, scale=rank**-0.5).requires_grad_()  # non-zero B, as after some training
    return x, weight, b, lora_a, lora_b


def outputs_and_grads(fn, x, weight, bias, a, b, scaling, dy, dtype):
    """y, dx, dA, dB of ``fn`` run on copies of the inputs cast to ``dtype``."""
    xs, as_, bs = (t.detach().to(dtype).requires_grad_() for t in (x, a, b))
    y = fn(xs, weight.to(dtype), bias.to(dtype) if bias is not None else None, as_, bs, scaling)
    y.backward(dy.to(dtype))
    return y, xs.grad, as_.grad, bs.grad


@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("shape", [(37, 48, 40, 8), (1, 24, 17, 4), (19, 40, 33, 1), (64, 96, 80, 200)])
def test_matches_fp64_reference(shape, dtype, tol, gen):
    """Rank 200 too: the merged path has no rank limit (the Triton kernel stops at 128)."""
    m, k, n, rank = shape
    x, weight, bias, a, b = inputs(gen, m, k, n, rank, torch.float64)
    dy = torch.randn(m, n, generator=gen, dtype=torch.float64)
    got = outputs_and_grads(merged_lora_linear, x, weight, bias, a, b, 1.5, dy, dtype)
    want = outputs_and_grads(reference, x, weight, bias, a, b, 1.5, dy, torch.float64)
    for name, g, w in zip(("y", "dx", "dA", "dB"), got, want, strict=True):
        assert g.dtype == dtype and g.shape == w.shape, name
        err = rel_err(g, w)
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_precision_error_within_twice_pytorch(dtype, gen):
    """BERT-base query projection, 2048 tokens, r = 8: max error ≤ 2× PEFT's formula in the same dtype."""
    if dtype == torch.float16 and not torch.cuda.is_available():
        x = torch.ones(2, 2, dtype=dtype)
        try:
            x @ x
        except RuntimeError:
            pytest.skip("no fp16 matmul on this CPU build")
    m, k, n, rank = 2048, 768, 768, 8
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, weight, bias, a, b = (
        t.to(device) if t is not None else t for t in inputs(gen, m, k, n, rank, torch.float64)
    )
    # Round the inputs to the dtype first: both sides then start from the same values.
    x, weight, bias, a, b = (t.detach().to(dtype).to(torch.float64) for t in (x, weight, bias, a, b))
    dy = torch.randn(m, n, generator=gen, dtype=torch.float64).to(device).to(dtype).to(torch.float64)
    got = outputs_and_grads(merged_lora_linear, x, weight, bias, a, b, 2.0, dy, dtype)
    own = outputs_and_grads(reference, x, weight, bias, a, b, 2.0, dy, dtype)
    want = outputs_and_grads(reference, x, weight, bias, a, b, 2.0, dy, torch.float64)
    for name, g, p, w in zip(("y", "dx", "dA", "dB"), got, own, want, strict=True):
        assert torch.isfinite(g).all(), name
        err = (g.double() - w).abs().max().item()
        pt_err = (p.double() - w).abs().max().item()
        assert err <= 2 * pt_err, f"{name}: max error {err:.2e} > 2 × PyTorch's {pt_err:.2e}"


def test_autocast_computes_in_the_autocast_dtype_and_returns_fp32_grads(gen):
    """fp32 weights and adapters under bf16 autocast (the trainer's mixed precision)."""
    x, weight, bias, a, b = inputs(gen, 33, 64, 48, 8, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = merged_lora_linear(x, weight, bias, a, b, 2.0)
    assert y.dtype == torch.bfloat16
    dy = torch.randn(y.shape, generator=gen)
    y.float().backward(dy)
    assert x.grad.dtype == a.grad.dtype == b.grad.dtype == torch.float32
    want = outputs_and_grads(reference, x, weight, bias, a, b, 2.0, dy.double(), torch.float64)
    for name, g, w in zip(("y", "dx", "dA", "dB"), (y, x.grad, a.grad, b.grad), want, strict=True):
        assert rel_err(g, w) < 1.6e-2, name  # four bf16 unit roundoffs, as tests/kernels/test_lora.py


def test_inference_takes_the_same_product_without_autograd(gen):
    x, weight, bias, a, b = inputs(gen, 17, 32, 24, 4, torch.float32)
    with torch.no_grad():
        y = merged_lora_linear(x, weight, bias, a, b, 2.0)
    assert y.grad_fn is None
    assert torch.equal(y, merged_lora_linear(x, weight, bias, a, b, 2.0).detach())
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        assert merged_lora_linear(x, weight, bias, a, b, 2.0).dtype == torch.bfloat16


def test_weight_and_bias_gradients_when_they_require_grad(gen):
    x, weight, bias, a, b = inputs(gen, 21, 32, 18, 4, torch.float64)
    weight.requires_grad_()
    bias.requires_grad_()
    dy = torch.randn(21, 18, generator=gen, dtype=torch.float64)
    merged_lora_linear(x, weight, bias, a, b, 0.7).backward(dy)
    w64, b64 = weight.detach().clone().requires_grad_(), bias.detach().clone().requires_grad_()
    reference(x.detach(), w64, b64, a.detach(), b.detach(), 0.7).backward(dy)
    assert rel_err(weight.grad, w64.grad) < 1e-12 and rel_err(bias.grad, b64.grad) < 1e-12


def test_only_what_requires_grad_gets_a_gradient(gen):
    x, weight, bias, a, b = inputs(gen, 9, 16, 12, 2, torch.float32)
    x = x.detach()
    a.requires_grad_(False)
    merged_lora_linear(x, weight, bias, a, b, 1.0).sum().backward()
    assert b.grad is not None and a.grad is None and x.grad is None and weight.grad is None
    ref_b = b.detach().double().requires_grad_()
    reference(x.double(), weight.double(), bias.double(), a.double(), ref_b, 1.0).sum().backward()
    assert rel_err(b.grad, ref_b.grad) < 1e-5


def test_leading_dims_no_bias_and_zero_rows(gen):
    x, weight, _, a, b = inputs(gen, 5, 16, 12, 4, torch.float32, bias=False)
    x3 = x.detach().reshape(1, 5, 16).expand(3, 5, 16).requires_grad_()
    y = merged_lora_linear(x3, weight, None, a, b, 2.0)
    assert y.shape == (3, 5, 12)
    assert rel_err(y, reference(x3.double(), weight.double(), None, a.double(), b.double(), 2.0)) < 1e-5
    empty = merged_lora_linear(torch.zeros(0, 16), weight, None, a, b, 2.0)
    assert empty.shape == (0, 12)


def test_bad_shapes_raise_clear_errors():
    x, w = torch.randn(4, 32), torch.randn(16, 32)
    a, b = torch.randn(8, 32), torch.randn(16, 8)
    with pytest.raises(ValueError, match="weight must be"):
        merged_lora_linear(x, w[:, :30], None, a, b, 1.0)
    with pytest.raises(ValueError, match="lora_a must be"):
        merged_lora_linear(x, w, None, a, b[:, :4], 1.0)
    with pytest.raises(ValueError, match="bias must be"):
        merged_lora_linear(x, w, torch.zeros(15), a, b, 1.0)
    with pytest.raises(ValueError, match="floating-point"):
        merged_lora_linear(x.long(), w, None, a, b, 1.0)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 40),
    k=st.integers(1, 40),
    n=st.integers(1, 40),
    rank=st.integers(1, 20),
    scaling=st.floats(-4.0, 4.0, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_any_shape_matches_reference(m, k, n, rank, scaling, seed):
    gen = torch.Generator().manual_seed(seed)
    x, weight, bias, a, b = inputs(gen, m, k, n, rank, torch.float64)
    dy = torch.randn(m, n, generator=gen, dtype=torch.float64)
    got = outputs_and_grads(merged_lora_linear, x, weight, bias, a, b, scaling, dy, torch.float64)
    want = outputs_and_grads(reference, x, weight, bias, a, b, scaling, dy, torch.float64)
    for name, g, w in zip(("y", "dx", "dA", "dB"), got, want, strict=True):
        assert g.shape == w.shape, name
        assert torch.allclose(g, w, rtol=1e-10, atol=1e-10), name


def _lora_layer(gen, dropout: float) -> LoRALinear:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    layer = LoRALinear(torch.nn.Linear(48, 40), rank=8, alpha=16.0, dropout=dropout)
    torch.nn.init.normal_(layer.lora_B.weight)  # non-zero B, as after some training
    return layer


def _run(layer: LoRALinear, x: torch.Tensor, merge: bool) -> tuple[torch.Tensor, ...]:
    layer.merge_without_dropout = merge
    layer.zero_grad()
    xs = x.detach().clone().requires_grad_()
    y = layer(xs)
    y.pow(2).sum().backward()
    return y.detach(), xs.grad, layer.lora_A.weight.grad.clone(), layer.lora_B.weight.grad.clone()


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_lora_layer_merges_whenever_dropout_is_inactive(dropout, gen):
    """Training without dropout, and evaluation with or without it: merged path = PEFT's formula."""
    layer = _lora_layer(gen, dropout)
    x = torch.randn(2, 9, 48, generator=gen)
    layer.train(dropout == 0.0)
    merged, formula = _run(layer, x, merge=True), _run(layer, x, merge=False)
    for name, got, want in zip(("y", "dx", "dA", "dB"), merged, formula, strict=True):
        assert rel_err(got, want.double()) < 1e-5, name
    assert not torch.equal(merged[0], formula[0]), "both runs took the same path"
    assert layer.weight.grad is None


def test_lora_layer_keeps_the_formula_while_dropout_is_active(gen):
    layer = _lora_layer(gen, 0.5).train()
    x = torch.randn(64, 48, generator=gen)
    torch.manual_seed(1)
    a = _run(layer, x, merge=True)[0]
    torch.manual_seed(1)
    b = _run(layer, x, merge=False)[0]
    assert torch.equal(a, b)  # the same masks, the same (unmerged) arithmetic
    layer.eval()
    full = x @ layer.merged_weight().t() + layer.bias
    assert not torch.allclose(a, full, atol=1e-3), "dropout did nothing"


def test_merged_weight_for_saving_predicts_what_the_layer_did(gen):
    """merged_state_dict (what `save` writes) uses the forward's own merge: equal bits, not merely close."""
    layer = _lora_layer(gen, 0.1).eval()
    x = torch.randn(5, 48, generator=gen)
    saved = torch.nn.functional.linear(x, layer.merged_weight().detach(), layer.bias)
    assert torch.equal(saved, layer(x))
