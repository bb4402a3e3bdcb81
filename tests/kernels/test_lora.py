"""fastbert.kernels.lora_linear against the fp64 PyTorch reference (and fastbert.model.lora.LoRALinear).

Without a GPU the kernels run in Triton's interpreter (see conftest.py) on tiny
shapes with 16-wide tiles, so rows, in/out features and ranks that are not
multiples of the tiles all occur. Fresh inputs every run (seed printed); outputs
start as NaN, so an unwritten element fails ``isfinite``.

Tolerances, on ‖kernel − fp64‖ / ‖fp64‖ (same rounded inputs): fp32 1e-5 (exact
fp32 products); fp16 2e-3 and bf16 1.6e-2, four times the unit roundoff: y, dx
and the rank-r bottleneck (x Aᵀ, dy B) are each rounded to the input dtype once,
as PyTorch/PEFT round them (measured ~3e-4 and ~6e-3). On a GPU, fp16/bf16 are
held to at most twice PyTorch's own error at the same dtype.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("triton")

from fastbert.kernels import lora_linear, lora_linear_reference, merged_lora_linear
from fastbert.kernels.dropout_rng import keep_mask_reference
from fastbert.kernels.lora import LoRALinearFunction
from fastbert.kernels.lora_dropout import lora_dropout_mask

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """‖x − ref‖ / ‖ref‖, with ‖ref‖ floored at an RMS of 1e-3 (no reference here is near zero)."""
    return ((x.double() - ref).norm() / max(ref.norm().item(), 1e-3 * math.sqrt(ref.numel()))).item()


def make(gen, m, k, n, rank, dtype, device, bias=True, lead=()):
    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(device=device, dtype=dtype)

    x = rnd(*lead, m, k).requires_grad_()
    weight = rnd(n, k, scale=k**-0.5)
    b = rnd(n) if bias else None
    a = rnd(rank, k, scale=k**-0.5).requires_grad_()
    bb = rnd(n, rank, scale=rank**-0.5).requires_grad_()  # non-zero B, unlike at initialisation
    return x, weight, b, a, bb


def split_mask(seed: torch.Tensor, m: int, k: int, dropout_p: float) -> torch.Tensor:
    """The mask the ``split`` strategy applies, from the NumPy Philox reference: (M, K) uint8."""
    keep = keep_mask_reference(int(seed.item()), [0], m, k, dropout_p)[0]
    return torch.from_numpy(keep).to(device=seed.device, dtype=torch.uint8)


def draw(gen, device) -> torch.Tensor:
    return torch.randint(2**32, 2**62, (1,), generator=gen).to(device)


def check(gen, x, weight, bias, a, b, scaling, dtype, keep=None, dropout_p=0.0, strategy="auto", seed=None):
    """Output and gradients against the fp64 reference: the ``fused`` kernel with a given ``keep``
    mask, ``split`` with ``seed`` (its mask from the NumPy reference), else without dropout."""
    if seed is not None:
        y = lora_linear(x, weight, bias, a, b, scaling, dropout_p, strategy, seed=seed)
        keep = split_mask(seed, y.reshape(-1, y.shape[-1]).shape[0], x.shape[-1], dropout_p).view(x.shape)
    elif keep is None:
        y = lora_linear(x, weight, bias, a, b, scaling, strategy=strategy)
    else:
        y = LoRALinearFunction.apply(x, weight, bias, a, b, scaling, keep, 1.0 / (1.0 - dropout_p))
    dy = torch.randn(y.shape, generator=gen).to(y)
    y.backward(dy)
    x64, a64, b64 = (t.detach().double().requires_grad_() for t in (x, a, b))
    bias64 = bias.double() if bias is not None else None
    ref = lora_linear_reference(x64, weight.double(), bias64, a64, b64, scaling, keep, dropout_p)
    ref.backward(dy.double())
    for name, got, want in (
        ("y", y, ref),
        ("dx", x.grad, x64.grad),
        ("dA", a.grad, a64.grad),
        ("dB", b.grad, b64.grad),
    ):
        assert got.shape == want.shape and got.dtype == dtype, name
        assert torch.isfinite(got).all(), f"{name}: non-finite (unwritten) elements"
        err = rel_err(got, want)
        assert err <= TOL[dtype], f"{name}: relative error {err:.2e} > {TOL[dtype]:.0e}"


SHAPES = {  # (M, K, N, r)
    "ragged": (37, 48, 40, 8),  # nothing a multiple of 16 except K; r < 16 (padded rank lanes)
    "one-row": (1, 24, 17, 4),
    "tiles": (32, 64, 32, 16),
    "rank-1": (19, 40, 33, 1),
}


@pytest.mark.parametrize("strategy", ["fused", "merged"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_fp64_reference(shape, dtype, strategy, device, gen):
    m, k, n, rank = SHAPES[shape]
    x, weight, bias, a, b = make(gen, m, k, n, rank, dtype, device)
    check(gen, x, weight, bias, a, b, 2.0, dtype, strategy=strategy)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", SHAPES)
def test_split_dropout_matches_fp64_reference(shape, dtype, device, gen):
    """The ``split`` strategy (vendor GEMMs + Triton through a regenerated mask) with the mask
    recomputed in NumPy; with M > 16 rows the backward sums dA over several row shares."""
    m, k, n, rank = SHAPES[shape]
    x, weight, bias, a, b = make(gen, m, k, n, rank, dtype, device)
    p = float(torch.rand((), generator=gen)) * 0.55 + 0.05
    check(gen, x, weight, bias, a, b, 2.0, dtype, dropout_p=p, strategy="split", seed=draw(gen, device))


def test_split_mask_is_the_documented_philox_stream(device, gen):
    m, k = int(torch.randint(1, 50, (1,), generator=gen)), int(torch.randint(1, 70, (1,), generator=gen))
    seed, p = draw(gen, device), 0.1
    got = lora_dropout_mask(m, k, p, seed)
    assert torch.equal(got.cpu(), split_mask(seed, m, k, p).bool().cpu())
    big = lora_dropout_mask(128, 512, 0.3, seed).double()  # 65536 draws: standard deviation 0.0018
    assert abs(big.mean().item() - 0.7) < 5 * 0.0018


def test_split_input_without_grad(device, gen):
    """x frozen (no dx to update): the kernel still computes dA through the same mask."""
    x, weight, bias, a, b = make(gen, 33, 40, 18, 4, torch.float32, device)
    x, seed = x.detach(), draw(gen, device)
    lora_linear(x, weight, bias, a, b, 1.5, 0.2, seed=seed).sum().backward()
    keep = split_mask(seed, 33, 40, 0.2)
    ref_a = a.detach().double().requires_grad_()
    lora_linear_reference(
        x.double(), weight.double(), bias.double(), ref_a, b.detach().double(), 1.5, keep, 0.2
    ).sum().backward()
    assert rel_err(a.grad, ref_a.grad) < 1e-5


def test_auto_strategy_merges_without_dropout_and_splits_with_it(device, gen):
    """``auto`` is the merged path without dropout (same bits), the split path with it."""
    x, weight, bias, a, b = (t.detach() for t in make(gen, 23, 40, 24, 8, torch.float32, device))
    auto = lora_linear(x, weight, bias, a, b, 2.0)
    assert torch.equal(auto, merged_lora_linear(x, weight, bias, a, b, 2.0))
    fused = lora_linear(x, weight, bias, a, b, 2.0, strategy="fused")
    assert not torch.equal(auto, fused), "the two strategies round differently; equal bits mean one ran twice"
    torch.manual_seed(5)
    with_dropout = lora_linear(x, weight, bias, a, b, 2.0, dropout_p=0.25)
    torch.manual_seed(5)
    assert torch.equal(with_dropout, lora_linear(x, weight, bias, a, b, 2.0, 0.25, strategy="split"))
    torch.manual_seed(5)
    assert not torch.equal(with_dropout, lora_linear(x, weight, bias, a, b, 2.0, 0.25, strategy="fused"))
    with pytest.raises(ValueError, match="needs dropout_p == 0"):
        lora_linear(x, weight, bias, a, b, 2.0, dropout_p=0.1, strategy="merged")
    with pytest.raises(ValueError, match="needs dropout_p > 0"):
        lora_linear(x, weight, bias, a, b, 2.0, strategy="split")
    with pytest.raises(ValueError, match="strategy must be"):
        lora_linear(x, weight, bias, a, b, 2.0, strategy="triton")


def test_no_bias_and_leading_dims(device, gen):
    x, weight, _, a, b = make(gen, 7, 32, 20, 8, torch.float32, device, bias=False, lead=(3,))
    assert x.shape == (3, 7, 32)
    check(gen, x, weight, None, a, b, 0.5, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_dropout_matches_reference_with_the_same_mask(dtype, device, gen):
    p = 0.3
    x, weight, bias, a, b = make(gen, 29, 40, 24, 8, dtype, device)
    keep = (torch.rand(29, 40, generator=gen) >= p).to(device=device, dtype=torch.uint8)
    check(gen, x, weight, bias, a, b, 2.0, dtype, keep=keep, dropout_p=p)


def test_dropout_draws_from_torch_generator(device, gen):
    x, weight, bias, a, b = (
        t.detach() if t is not None else t for t in make(gen, 64, 32, 16, 4, torch.float32, device)
    )
    outs = []
    for s in (3, 3, 4):
        torch.manual_seed(s)
        outs.append(lora_linear(x, weight, bias, a, b, 1.0, dropout_p=0.5))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    base = torch.nn.functional.linear(x, weight, bias)
    lora = outs[0] - base
    full = (x @ a.t()) @ b.t()
    assert not torch.allclose(lora, full, atol=1e-3), "dropout did nothing"
    # E[dropout(x)] = x, so the mean over many draws approaches the dropout-free branch.
    mean = torch.stack(
        [lora_linear(x, weight, bias, a, b, 1.0, dropout_p=0.5) - base for _ in range(60)]
    ).mean(0)
    assert rel_err(mean, full.double()) < 0.35


def test_weight_and_bias_gradients_when_they_require_grad(device, gen):
    """Not LoRA's case (W frozen), but a caller that trains W still gets correct gradients."""
    x, weight, bias, a, b = make(gen, 21, 32, 18, 4, torch.float32, device)
    weight.requires_grad_()
    bias.requires_grad_()
    y = lora_linear(x, weight, bias, a, b, 1.5)
    dy = torch.randn(y.shape, generator=gen).to(y)
    y.backward(dy)
    w64, b64 = weight.detach().double().requires_grad_(), bias.detach().double().requires_grad_()
    ref = lora_linear_reference(x.detach().double(), w64, b64, a.detach().double(), b.detach().double(), 1.5)
    ref.backward(dy.double())
    assert rel_err(weight.grad, w64.grad) < 1e-5 and rel_err(bias.grad, b64.grad) < 1e-5


def test_input_without_grad(device, gen):
    x, weight, bias, a, b = make(gen, 21, 32, 18, 4, torch.float32, device)
    x = x.detach()
    y = lora_linear(x, weight, bias, a, b, 1.5)
    y.sum().backward()
    ref_a = a.detach().double().requires_grad_()
    lora_linear_reference(
        x.double(), weight.double(), bias.double(), ref_a, b.detach().double(), 1.5
    ).sum().backward()
    assert rel_err(a.grad, ref_a.grad) < 1e-5


def test_same_as_fastbert_lora_module(device, gen):
    """Drop-in for ``fastbert.model.lora.LoRALinear.forward`` (dropout off): outputs and adapter gradients."""
    from fastbert.model.lora import LoRALinear

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    module = LoRALinear(torch.nn.Linear(48, 40), rank=8, alpha=16.0, dropout=0.0).to(device)
    torch.nn.init.normal_(module.lora_B.weight)
    x = torch.randn(2, 9, 48, generator=gen).to(device)
    want = module(x)
    want.sum().backward()
    grads = (module.lora_A.weight.grad.clone(), module.lora_B.weight.grad.clone())
    module.zero_grad()
    got = lora_linear(
        x, module.weight, module.bias, module.lora_A.weight, module.lora_B.weight, module.scaling
    )
    got.sum().backward()
    assert rel_err(got, want.double()) < 1e-5
    assert rel_err(module.lora_A.weight.grad, grads[0].double()) < 1e-5
    assert rel_err(module.lora_B.weight.grad, grads[1].double()) < 1e-5
    assert module.weight.grad is None


def test_lora_module_with_dropout_runs_the_split_path(device, gen):
    """``LoRALinear`` with kernels on, training, dropout active: the split path, its mask drawn
    from PyTorch's generator (so ``torch.manual_seed`` replays it), equal to the reference."""
    from fastbert.kernels.dropout_rng import draw_seed
    from fastbert.kernels.lora_dropout import dropout_lora_linear_reference
    from fastbert.model.lora import LoRALinear

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    module = LoRALinear(torch.nn.Linear(40, 24), rank=4, alpha=8.0, dropout=0.3).to(device).train()
    torch.nn.init.normal_(module.lora_B.weight)
    module.fused = True
    x = torch.randn(2, 11, 40, generator=gen).to(device)
    torch.manual_seed(7)
    got = module(x)
    torch.manual_seed(7)
    seed = draw_seed(torch.device(device))
    with torch.no_grad():
        want = dropout_lora_linear_reference(
            x.reshape(-1, 40).double(), module.weight.double(), module.bias.double(),
            module.lora_A.weight.double(), module.lora_B.weight.double(), module.scaling, 0.3, seed,
        )  # fmt: skip
    assert rel_err(got.reshape(-1, 24), want) < 1e-5


def test_fp32_adapters_with_half_inputs(device, gen):
    """Adapters kept in fp32 with fp16 activations (mixed precision): computed in fp16, grads in fp32."""
    x, weight, bias, a, b = make(gen, 16, 32, 24, 8, torch.float16, device)
    a32, b32 = (t.detach().float().requires_grad_() for t in (a, b))
    y = lora_linear(x, weight, bias, a32, b32, 2.0)
    y.float().sum().backward()
    assert y.dtype == torch.float16 and a32.grad.dtype == torch.float32 and b32.grad.dtype == torch.float32
    assert torch.isfinite(a32.grad).all() and torch.isfinite(b32.grad).all()


def test_bad_inputs_raise_clear_errors(device):
    x = torch.randn(4, 32, device=device)
    w = torch.randn(16, 32, device=device)
    a, b = torch.randn(8, 32, device=device), torch.randn(16, 8, device=device)
    with pytest.raises(ValueError, match="weight must be"):
        lora_linear(x, w[:, :30], None, a, b, 1.0)
    with pytest.raises(ValueError, match="lora_a must be"):
        lora_linear(x, w, None, a[:, :30], b, 1.0)
    with pytest.raises(ValueError, match="lora_a must be"):
        lora_linear(x, w, None, a, b[:, :4], 1.0)
    with pytest.raises(ValueError, match="bias must be"):
        lora_linear(x, w, torch.zeros(15, device=device), a, b, 1.0)
    with pytest.raises(ValueError, match="rank 200"):
        lora_linear(x, w, None, torch.randn(200, 32, device=device), torch.randn(16, 200, device=device), 1.0)
    with pytest.raises(ValueError, match="dropout_p"):
        lora_linear(x, w, None, a, b, 1.0, dropout_p=1.0)
    with pytest.raises(ValueError, match="fp16, bf16 or fp32"):
        lora_linear(x.double(), w.double(), None, a.double(), b.double(), 1.0)


def test_cpu_tensors_need_the_interpreter_for_the_triton_kernel_only(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, w, a, b = torch.randn(4, 32), torch.randn(16, 32), torch.randn(8, 32), torch.randn(16, 8)
    with pytest.raises(ValueError, match="CUDA tensors"):
        lora_linear(x, w, None, a, b, 1.0, strategy="fused")
    with pytest.raises(ValueError, match="CUDA tensors"):
        lora_linear(x, w, None, a, b, 1.0, dropout_p=0.1)  # auto: dropout takes the Triton kernel
    merged = lora_linear(x, w, None, a, b, 1.0)  # auto without dropout: vendor GEMMs, no Triton
    assert (
        rel_err(merged, lora_linear_reference(x.double(), w.double(), None, a.double(), b.double(), 1.0))
        < 1e-5
    )


# torch 2.11's dynamo instantiates autograd.Function classes itself and warns about it (not our code).
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
@pytest.mark.parametrize("strategy", ["fused", "merged", "split"])
def test_custom_ops_trace_under_torch_compile(strategy, device, gen):
    x, weight, bias, a, b = make(gen, 12, 32, 24, 8, torch.float32, device)
    dropout_p, seed = (0.2, draw(gen, device)) if strategy == "split" else (0.0, None)

    def loss(x, a, b):
        return (lora_linear(x, weight, bias, a, b, 2.0, dropout_p, strategy, seed=seed) ** 2).sum()

    torch.compile(loss, backend="aot_eager", fullgraph=True)(x, a, b).backward()
    grads = [t.grad.clone() for t in (x, a, b)]
    for t in (x, a, b):
        t.grad = None
    loss(x, a, b).backward()
    for g, t in zip(grads, (x, a, b), strict=True):
        torch.testing.assert_close(g, t.grad)


def test_custom_op_registrations(device, gen):
    from torch.library import opcheck

    x, weight, bias, a, b = (t.detach() for t in make(gen, 12, 32, 24, 8, torch.float32, device))
    keep = (torch.rand(12, 32, generator=gen) > 0.2).to(device=device, dtype=torch.uint8)
    opcheck(torch.ops.fastbert.lora_linear_fwd.default, (x, weight, bias, a, b, 2.0, keep, 1.25))
    dy = torch.randn(12, 24, generator=gen).to(device)
    opcheck(torch.ops.fastbert.lora_linear_bwd_dx.default, (dy, weight, a, b, 2.0, None, 1.0))
    seed = draw(gen, device)
    opcheck(torch.ops.fastbert.lora_dropout_down.default, (x, a, seed, 0.2))
    g = torch.randn(12, 8, generator=gen).to(device)
    dx = torch.randn(12, 32, generator=gen).to(device)
    opcheck(torch.ops.fastbert.lora_dropout_up.default, (g, a, x, dx, seed, 2.0, 0.2))
    opcheck(torch.ops.fastbert.lora_dropout_up.default, (g, a, x, None, seed, 2.0, 0.2))


# ------------------------------------------------------------------ GPU only
def _within_twice_pytorch(gen, m, k, n, rank, dtype, dropout_p=0.0, strategy="auto"):
    x, weight, bias, a, b = make(gen, m, k, n, rank, dtype, "cuda")
    keep = None
    if dropout_p and strategy == "split":
        seed = draw(gen, "cuda")
        keep = lora_dropout_mask(m, k, dropout_p, seed).to(torch.uint8)
        y = lora_linear(x, weight, bias, a, b, 2.0, dropout_p, "split", seed=seed)
    elif dropout_p:
        keep = (torch.rand(m, k, generator=gen) >= dropout_p).to(device="cuda", dtype=torch.uint8)
        y = LoRALinearFunction.apply(x, weight, bias, a, b, 2.0, keep, 1 / (1 - dropout_p))
    else:
        y = lora_linear(x, weight, bias, a, b, 2.0, strategy=strategy)
    dy = torch.randn(y.shape, generator=gen).to(y)
    got = (y, *torch.autograd.grad(y, (x, a, b), dy))
    results = []
    for ref_dtype in (torch.float64, dtype):
        xr, ar, br = (t.detach().to(ref_dtype).requires_grad_() for t in (x, a, b))
        o = lora_linear_reference(xr, weight.to(ref_dtype), bias.to(ref_dtype), ar, br, 2.0, keep, dropout_p)
        results.append((o, *torch.autograd.grad(o, (xr, ar, br), dy.to(ref_dtype))))
    ref, pt = results
    for name, g, r, p in zip(("y", "dx", "dA", "dB"), got, ref, pt, strict=True):
        assert torch.isfinite(g).all(), name
        err = (g.double() - r).abs().max().item()
        pt_err = (p.double() - r).abs().max().item()
        assert err <= 2 * pt_err + 1e-5, f"{name}: max error {err:.2e} > 2 × PyTorch's {pt_err:.2e}"


@requires_cuda
@pytest.mark.parametrize("strategy", ["fused", "merged"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(4096, 768, 768, 8), (1000, 768, 3072, 16), (777, 1024, 1000, 64)])
def test_gpu_error_within_twice_pytorch(shape, dtype, strategy, gen):
    _within_twice_pytorch(gen, *shape, dtype, strategy=strategy)


@requires_cuda
@pytest.mark.parametrize("strategy", ["fused", "split"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_gpu_dropout_error_within_twice_pytorch(dtype, strategy, gen):
    _within_twice_pytorch(gen, 2048, 768, 768, 8, dtype, dropout_p=0.1, strategy=strategy)


@requires_cuda
@pytest.mark.parametrize("strategy", ["fused", "merged", "split"])
def test_gpu_bench_size(strategy, gen):
    """BERT-base query projection at the benchmark's size: 32 × 512 tokens, 768 → 768, r = 8, bf16."""
    dropout_p = 0.1 if strategy == "split" else 0.0
    _within_twice_pytorch(gen, 16384, 768, 768, 8, torch.bfloat16, dropout_p, strategy=strategy)


@requires_cuda
@pytest.mark.parametrize("strategy", ["fused", "merged", "split"])
def test_gpu_fp32_is_exact_precision(strategy, gen):
    x, weight, bias, a, b = make(gen, 3000, 768, 768, 16, torch.float32, "cuda")
    if strategy == "split":
        check(
            gen,
            x,
            weight,
            bias,
            a,
            b,
            2.0,
            torch.float32,
            dropout_p=0.1,
            strategy="split",
            seed=draw(gen, "cuda"),
        )
    else:
        check(gen, x, weight, bias, a, b, 2.0, torch.float32, strategy=strategy)
