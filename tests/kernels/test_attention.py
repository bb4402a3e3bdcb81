"""fastbert.kernels.varlen_attention / padded_attention against the fp64 PyTorch reference.

Without a GPU every kernel runs in Triton's interpreter (see conftest.py) on tiny
packed batches (< 64 tokens, 16-wide blocks), so sequence lengths of 1, lengths
that are not multiples of the blocks, and mixes of both in one batch all occur.
Inputs are drawn fresh for every run (the seed is printed); outputs start as NaN,
so an unwritten element fails ``isfinite``. The sliding window (``window_size``) is
tested the same way, plus a NaN planted outside the windows of the first and last
blocks, which only a kernel that skips the blocks outside the window keeps out.

Tolerances, on ‖kernel − fp64‖ / ‖fp64‖ (the inputs are the same rounded values):
- fp32: 1e-5. The kernel's products are exact-precision fp32 (``ieee``); the
  reordered sums cost ~1e-7 here.
- fp16: 2e-3, bf16: 1.6e-2: four times the unit roundoff (2⁻¹¹, 2⁻⁸). The kernel
  rounds P and dS to the input dtype before their products, as FlashAttention does
  (measured ~3e-4 and ~6e-3).
On a GPU, the fp16/bf16 tests instead hold the kernel to FlashAttention's rule: its
error at most twice PyTorch's own error at the same dtype (the same formula run by
PyTorch in fp16/bf16), on batches of real size.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("triton")

from fastbert.kernels import (
    attention_dropout_mask,
    attention_dropout_mask_reference,
    pad_input,
    padded_attention,
    padded_attention_reference,
    unpad_input,
    varlen_attention,
    varlen_attention_reference,
)

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """‖x − ref‖ / ‖ref‖, with ‖ref‖ floored at an RMS of 1 (the inputs' scale): dq of a
    one-token sequence is exactly zero, and there the error is judged per element instead."""
    return ((x.double() - ref).norm() / max(ref.norm().item(), math.sqrt(ref.numel()))).item()


def make_cu(lengths: list[int], device: str) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)


def make_qkv(gen, total, heads, head_dim, dtype, device):
    return [
        torch.randn(total, heads, head_dim, generator=gen).to(device=device, dtype=dtype).requires_grad_()
        for _ in range(3)
    ]


def run_both(q, k, v, lengths, dropout_p=0.0, seed=None, gen=None, softmax_scale=None, window_size=(-1, -1)):
    """Kernel and fp64 reference forward + backward with the same upstream gradient."""
    cu = make_cu(lengths, q.device.type)
    max_seqlen = max(lengths)
    out = varlen_attention(
        q, k, v, cu, max_seqlen, dropout_p, softmax_scale, window_size=window_size, seed=seed
    )
    dout = torch.randn(out.shape, generator=gen).to(out)
    out.backward(dout)
    mask = attention_dropout_mask(cu, q.shape[1], max_seqlen, dropout_p, seed) if dropout_p else None
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = varlen_attention_reference(
        q64, k64, v64, cu, max_seqlen, dropout_p, softmax_scale, dropout_mask=mask, window_size=window_size
    )
    ref.backward(dout.double())
    return (out, q.grad, k.grad, v.grad), (ref, q64.grad, k64.grad, v64.grad)


def assert_close(got, want, tol, what=("out", "dq", "dk", "dv")):
    for name, g, w in zip(what, got, want, strict=True):
        assert g.shape == w.shape, name
        assert torch.isfinite(g).all(), f"{name}: non-finite (unwritten) elements"
        err = rel_err(g, w)
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


LENGTHS = {
    "mixed": [1, 17, 5, 33],  # 1, one over a block, one under, two blocks + 1 (blocks are 16/32)
    "single-token": [1],
    "one-full-block": [16],
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("head_dim", [32, 64])
@pytest.mark.parametrize("case", [*LENGTHS, "random"])
def test_varlen_matches_fp64_reference(case, head_dim, dtype, device, gen):
    if case == "random":
        lengths = torch.randint(1, 30, (3,), generator=gen).tolist()
    else:
        lengths = LENGTHS[case]
    q, k, v = make_qkv(gen, sum(lengths), 2, head_dim, dtype, device)
    got, want = run_both(q, k, v, lengths, gen=gen)
    assert_close(got, want, TOL[dtype])


@pytest.mark.parametrize("head_dim", [128, 40, 8])
def test_other_head_dims(head_dim, device, gen):
    """128 (the largest), and sizes that are not powers of two or are under 16 (masked head lanes)."""
    lengths = [7, 19]
    q, k, v = make_qkv(gen, sum(lengths), 1, head_dim, torch.float32, device)
    got, want = run_both(q, k, v, lengths, gen=gen, softmax_scale=0.3)
    assert_close(got, want, TOL[torch.float32])


def test_empty_sequences_and_empty_batch(device, gen):
    lengths = [0, 9, 0, 3, 0]
    q, k, v = make_qkv(gen, sum(lengths), 2, 32, torch.float32, device)
    got, want = run_both(q, k, v, lengths, gen=gen)
    assert_close(got, want, TOL[torch.float32])
    q0 = torch.zeros(0, 2, 32, device=device, requires_grad=True)
    out = varlen_attention(q0, q0, q0, torch.zeros(1, dtype=torch.int32, device=device), 0)
    out.sum().backward()
    assert out.shape == (0, 2, 32) and q0.grad.shape == (0, 2, 32)


def test_strided_inputs_from_a_fused_qkv_projection(device, gen):
    """q, k, v as views of one (T, 3, h, d) tensor: token stride 3·h·d, not h·d."""
    lengths = [5, 21]
    qkv = torch.randn(sum(lengths), 3, 2, 32, generator=gen).to(device).requires_grad_()
    q, k, v = qkv.unbind(1)
    assert q.stride(0) == 3 * 2 * 32
    cu = make_cu(lengths, device)
    out = varlen_attention(q, k, v, cu, max(lengths))
    dout = torch.randn(out.shape, generator=gen).to(out)
    out.backward(dout)
    qkv64 = qkv.detach().double().requires_grad_()
    ref = varlen_attention_reference(*qkv64.unbind(1), cu)
    ref.backward(dout.double())
    assert_close((out, qkv.grad), (ref, qkv64.grad), TOL[torch.float32], what=("out", "dqkv"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_dropout_matches_reference_with_the_same_mask(dtype, device, gen):
    """The backward pass regenerates the forward's Philox mask: gradients match the masked reference."""
    lengths = [1, 17, 6]
    q, k, v = make_qkv(gen, sum(lengths), 2, 32, dtype, device)
    seed = torch.randint(2**32, 2**62, (1,), generator=gen).to(device)
    got, want = run_both(q, k, v, lengths, dropout_p=0.3, seed=seed, gen=gen)
    assert_close(got, want, TOL[dtype])


def test_dropout_mask_rate_and_seeds(device, gen):
    lengths = [40, 23]
    cu = make_cu(lengths, device)
    seeds = [torch.randint(2**32, 2**62, (1,), generator=gen).to(device) for _ in range(2)]
    p = 0.25
    mask = attention_dropout_mask(cu, 2, 40, p, seeds[0])
    valid = sum(n * n for n in lengths) * 2
    kept = mask.sum().item() / valid
    # 3838 Bernoulli(0.75) draws: standard deviation 0.007; 5 sigma.
    assert abs(kept - (1 - p)) < 0.035, kept
    assert not mask[1, :, 23:, :].any() and not mask[1, :, :, 23:].any(), "mask outside the sequence"
    again = attention_dropout_mask(cu, 2, 40, p, seeds[0])
    other = attention_dropout_mask(cu, 2, 40, p, seeds[1])
    assert torch.equal(mask, again)
    assert not torch.equal(mask, other)
    assert not torch.equal(mask[:, 0], mask[:, 1]), "heads share a mask"


def test_dropout_mask_is_the_documented_philox_stream(device, gen):
    """The kernels' mask equals the NumPy Philox4x32-10 reference bit for bit: 8 keys per
    Philox call, 16 bits each, in the documented order (a swapped half-word fails)."""
    lengths = [*torch.randint(1, 40, (2,), generator=gen).tolist(), 1, 24]
    max_seqlen = max(lengths) + int(torch.randint(0, 5, (1,), generator=gen))  # a loose bound is allowed
    cu = make_cu(lengths, device)
    seed = torch.randint(2**32, 2**62, (1,), generator=gen).to(device)
    for p in (0.1, float(torch.rand((), generator=gen)) * 0.9 + 0.05):
        got = attention_dropout_mask(cu, 3, max_seqlen, p, seed)
        want = attention_dropout_mask_reference(cu, 3, max_seqlen, p, seed)
        assert got.shape == want.shape == (len(lengths), 3, max_seqlen, max_seqlen)
        assert torch.equal(got.cpu(), want.cpu()), f"p={p}: {(got.cpu() != want.cpu()).sum()} entries differ"


def test_dropout_rate_is_even_across_the_eight_keys_of_a_philox_call(device, gen):
    """Each of the 8 half-words a Philox call gives keeps at 1 − p, and neighbours are independent."""
    n, p = 256, 0.3
    seed = torch.randint(2**32, 2**62, (1,), generator=gen).to(device)
    mask = attention_dropout_mask(make_cu([n], device), 2, n, p, seed).cpu().view(2 * n, n // 8, 8).double()
    rates = mask.mean((0, 1))  # 16384 draws each: standard deviation 0.0036
    assert (rates - (1 - p)).abs().max() < 5 * 0.0036, rates
    both = (mask[..., :-1] * mask[..., 1:]).mean((0, 1))  # adjacent half-words of one call
    assert (both - (1 - p) ** 2).abs().max() < 5 * 0.0039, both


def test_dropout_follows_torch_manual_seed(device, gen):
    lengths = [9, 14]
    q, k, v = (t.detach() for t in make_qkv(gen, sum(lengths), 2, 32, torch.float32, device))
    cu = make_cu(lengths, device)
    outs = []
    for s in (1, 1, 2):
        torch.manual_seed(s)
        outs.append(varlen_attention(q, k, v, cu, 14, 0.5))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])
    assert torch.isfinite(outs[2]).all()


def test_padded_attention_matches_reference(device, gen):
    """Right padding, a mask with holes (any pattern works), a full row and an empty row."""
    batch, seqlen, heads, head_dim = 4, 19, 2, 32
    mask = torch.zeros(batch, seqlen, dtype=torch.bool)
    mask[0, :7] = True
    mask[1] = torch.rand(seqlen, generator=gen) < 0.6
    mask[1, 3] = True
    mask[2] = True
    mask = mask.to(device)
    q, k, v = (
        torch.randn(batch, seqlen, heads, head_dim, generator=gen).to(device).requires_grad_()
        for _ in range(3)
    )
    out = padded_attention(q, k, v, mask)
    dout = torch.randn(out.shape, generator=gen).to(out)
    out.backward(dout)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = padded_attention_reference(q64, k64, v64, mask)
    ref.backward(dout.double())
    assert_close((out, q.grad, k.grad, v.grad), (ref, q64.grad, k64.grad, v64.grad), TOL[torch.float32])
    assert (out[~mask] == 0).all(), "padded query rows must be zero"
    assert (q.grad[~mask] == 0).all() and (k.grad[~mask] == 0).all()


def test_unpad_pad_round_trip(device, gen):
    mask = torch.rand(3, 11, generator=gen).to(device) < 0.5
    x = torch.randn(3, 11, 4, generator=gen).to(device)
    packed, indices, cu, max_seqlen = unpad_input(x, mask)
    assert packed.shape == (int(mask.sum()), 4)
    assert cu.dtype == torch.int32 and cu[-1].item() == mask.sum().item()
    assert max_seqlen == int(mask.sum(1).max())
    back = pad_input(packed, indices, 3, 11)
    assert torch.equal(back[mask], x[mask]) and (back[~mask] == 0).all()


def test_fits_the_bert_attention_fn_hook(device, gen):
    """``BertModel.attention_fn = varlen_attention`` gives what the default re-padding path gives."""
    from fastbert.model.bert import BertConfig, BertModel

    config = BertConfig(
        vocab_size=50, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = BertModel(config).to(device).eval()
    lengths = [3, 12, 1]
    cu = make_cu(lengths, device)
    ids = torch.randint(1, 50, (sum(lengths),), generator=gen).to(device)
    with torch.no_grad():
        want = model.forward_packed(ids, cu, max(lengths))
        model.attention_fn = varlen_attention
        got = model.forward_packed(ids, cu, max(lengths))
    assert rel_err(got, want.double()) < 1e-5


def test_bad_inputs_raise_clear_errors(device):
    q = torch.randn(5, 2, 32, device=device)
    cu = torch.tensor([0, 5], dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match="int32"):
        varlen_attention(q, q, q, cu.long(), 5)
    with pytest.raises(ValueError, match=r"\(total_tokens, heads, head_dim\)"):
        varlen_attention(q, q[:4], q, cu, 5)
    with pytest.raises(ValueError, match="share one of"):
        varlen_attention(q, q.double(), q, cu, 5)
    with pytest.raises(ValueError, match="head_dim 160"):
        big = torch.randn(5, 1, 160, device=device)
        varlen_attention(big, big, big, cu, 5)
    with pytest.raises(ValueError, match="dropout_p"):
        varlen_attention(q, q, q, cu, 5, 1.0)


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q = torch.randn(5, 2, 32)
    with pytest.raises(ValueError, match="CUDA tensors"):
        varlen_attention(q, q, q, torch.tensor([0, 5], dtype=torch.int32), 5)


# torch 2.11's dynamo instantiates autograd.Function classes itself and warns about it (not our code).
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
@pytest.mark.parametrize("window_size", [(-1, -1), (2, 5)], ids=str)
def test_custom_ops_trace_under_torch_compile(window_size, device, gen):
    """The kernels are torch.library custom ops: a full graph traces around them, forward and backward."""
    lengths = [3, 17, 1]
    cu = make_cu(lengths, device)
    q, k, v = make_qkv(gen, sum(lengths), 2, 32, torch.float32, device)

    def loss(q, k, v):
        return (varlen_attention(q, k, v, cu, 17, window_size=window_size) ** 2).sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    compiled(q, k, v).backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    loss(q, k, v).backward()
    for g, t in zip(grads, (q, k, v), strict=True):
        torch.testing.assert_close(g, t.grad)


def test_custom_op_registrations(device, gen):
    from torch.library import opcheck

    lengths = [3, 17]
    cu = make_cu(lengths, device)
    q, k, v = (t.detach() for t in make_qkv(gen, 20, 2, 32, torch.float32, device))
    seed = torch.tensor([2**40 + 7], dtype=torch.int64, device=device)
    args = (q, k, v, cu, 17, 0.1, 0.2, seed, 4, -1)  # ..., window_left, window_right
    opcheck(
        torch.ops.fastbert.varlen_attention_fwd.default, args, test_utils=("test_schema", "test_faketensor")
    )
    out, lse = torch.ops.fastbert.varlen_attention_fwd(*args)
    bwd_args = (torch.randn_like(out), q, k, v, out, lse, cu, 17, 0.1, 0.2, seed, 4, -1)
    opcheck(
        torch.ops.fastbert.varlen_attention_bwd.default,
        bwd_args,
        test_utils=("test_schema", "test_faketensor"),
    )


# ------------------------------------------------------------------ sliding window
WINDOWS = [(0, 0), (1, 2), (2, 1), (3, -1), (-1, 3), (2, 20), (100, 100), (-1, -1)]


@pytest.mark.parametrize("window_size", WINDOWS, ids=str)
def test_window_matches_fp64_reference(window_size, device, gen):
    """FlashAttention-2's ``window_size=(left, right)``: query i sees keys i − left … i + right.
    (2, 20) is wider than the short sequences on one side; (100, 100) covers every sequence
    (the launcher then runs the full-attention kernel); 40 tokens span three 16-key blocks."""
    lengths = [1, 17, 5, 40]
    q, k, v = make_qkv(gen, sum(lengths), 2, 32, torch.float32, device)
    got, want = run_both(q, k, v, lengths, gen=gen, window_size=window_size)
    assert_close(got, want, TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_window_low_precision(dtype, device, gen):
    lengths = [1, 33, 9]
    q, k, v = make_qkv(gen, sum(lengths), 2, 32, dtype, device)
    got, want = run_both(q, k, v, lengths, gen=gen, window_size=(3, 5))
    assert_close(got, want, TOL[dtype])


def test_window_64_on_a_long_sequence(device, gen):
    """ModernBERT's local layers, ``(64, 64)``, where the sequence is longer than the window plus
    a block on both sides of the middle queries, so key and query blocks are skipped."""
    lengths = [150, 1, 70]
    q, k, v = make_qkv(gen, sum(lengths), 1, 16, torch.float32, device)
    got, want = run_both(q, k, v, lengths, gen=gen, window_size=(64, 64))
    assert_close(got, want, TOL[torch.float32])


def test_window_skips_the_blocks_outside_it(device, gen):
    """O(L · window), not O(L²): NaN in the middle of a long sequence, outside the window of the
    first and last blocks of every loop, must not reach their out, dq, dk, dv. A kernel that
    visited those blocks would multiply the NaN by its zero probabilities and get NaN."""
    from fastbert.kernels.attention_blocks import backward_config, forward_config

    left, right = 2, 3
    fwd, bwd = forward_config(16, torch.float32, 512), backward_config(16, torch.float32, 512)
    # How far the first blocks' results reach: dk, dv of keys [0, BLOCK_N1) read the queries up to
    # BLOCK_N1 + left (rounded to BLOCK_M1), whose LSE the forward took from keys up to that + right
    # (rounded to its blocks); every other read lies inside that.
    reach = bwd["BLOCK_N1"] + bwd["BLOCK_M1"] + fwd["BLOCK_M"] + fwd["BLOCK_N"] + left + right
    n = 128 * math.ceil((2 * reach + 64) / 128)  # a multiple of every block size: symmetric ends
    assert forward_config(16, torch.float32, n) == fwd and backward_config(16, torch.float32, n) == bwd
    q, k, v = (t.detach() for t in make_qkv(gen, n, 1, 16, torch.float32, device))
    far = slice(reach, n - reach)
    for t in (q, k, v):
        t[far] = float("nan")
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    cu = make_cu([n], device)
    out = varlen_attention(q, k, v, cu, n, window_size=(left, right))
    dout = torch.randn(out.shape, generator=gen).to(out)
    out.backward(dout)
    q64, k64, v64 = (t.detach().double().nan_to_num(0.0).requires_grad_() for t in (q, k, v))
    ref = varlen_attention_reference(q64, k64, v64, cu, n, window_size=(left, right))
    ref.backward(dout.double())
    for end in (lambda size: slice(0, size), lambda size: slice(n - size, n)):  # the first and last blocks
        rows_out, rows_dq, rows_dkv = end(fwd["BLOCK_M"]), end(bwd["BLOCK_M2"]), end(bwd["BLOCK_N1"])
        assert_close(
            (out[rows_out], q.grad[rows_dq], k.grad[rows_dkv], v.grad[rows_dkv]),
            (ref[rows_out], q64.grad[rows_dq], k64.grad[rows_dkv], v64.grad[rows_dkv]),
            TOL[torch.float32],
        )
    assert torch.isnan(out[far]).any(), "the NaN did not even reach its own rows: the test is void"


def test_window_that_covers_the_sequence_is_full_attention(device, gen):
    """(-1, -1) is the default; a window with both sides ≥ L − 1 runs the same kernel, bit for bit."""
    lengths = [1, 17, 5]
    q, k, v = (t.detach() for t in make_qkv(gen, sum(lengths), 2, 32, torch.float32, device))
    cu = make_cu(lengths, device)
    full = varlen_attention(q, k, v, cu, 17)
    for window_size in [(-1, -1), (16, 16), (-1, 1000), (2**40, 16)]:
        assert torch.equal(varlen_attention(q, k, v, cu, 17, window_size=window_size), full), window_size
    assert not torch.equal(varlen_attention(q, k, v, cu, 17, window_size=(15, 16)), full)


def test_kernel_window_arguments():
    from fastbert.kernels.attention_kernels import kernel_window

    assert kernel_window(-1, -1, 100) == (100, 100, False)
    assert kernel_window(64, 64, 100) == (64, 64, True)
    assert kernel_window(99, 99, 100) == (99, 99, False)
    assert kernel_window(2**40, 0, 100) == (100, 0, True)
    assert kernel_window(-1, 3, 100) == (100, 3, True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_window_with_dropout_matches_reference_with_the_same_mask(dtype, device, gen):
    """Masked-out scores get probability 0; the kept ones use the same Philox counter in both
    passes, including for the key blocks that the window lets the query blocks skip."""
    lengths = [1, 17, 40]
    q, k, v = make_qkv(gen, sum(lengths), 2, 32, dtype, device)
    seed = torch.randint(2**32, 2**62, (1,), generator=gen).to(device)
    got, want = run_both(q, k, v, lengths, dropout_p=0.3, seed=seed, gen=gen, window_size=(4, 2))
    assert_close(got, want, TOL[dtype])


def test_padded_attention_with_window(device, gen):
    """Positions count a row's real tokens: a mask with holes windows over the packed order."""
    batch, seqlen, heads, head_dim = 3, 19, 2, 32
    mask = torch.zeros(batch, seqlen, dtype=torch.bool)
    mask[0, :11] = True
    mask[1] = torch.rand(seqlen, generator=gen) < 0.6
    mask[1, 3] = True
    mask[2] = True
    mask = mask.to(device)
    q, k, v = (
        torch.randn(batch, seqlen, heads, head_dim, generator=gen).to(device).requires_grad_()
        for _ in range(3)
    )
    out = padded_attention(q, k, v, mask, window_size=(2, 3))
    dout = torch.randn(out.shape, generator=gen).to(out)
    out.backward(dout)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = padded_attention_reference(q64, k64, v64, mask, window_size=(2, 3))
    ref.backward(dout.double())
    assert_close((out, q.grad, k.grad, v.grad), (ref, q64.grad, k64.grad, v64.grad), TOL[torch.float32])
    assert (out[~mask] == 0).all(), "padded query rows must be zero"
    full = padded_attention_reference(q64, k64, v64, mask)
    assert rel_err(out, full) > 1e-2, "the window changed nothing: the test is void"
    no_mask = padded_attention_reference(q64, k64, v64, None, window_size=(2, 3))
    assert_close((padded_attention(q, k, v, window_size=(2, 3)),), (no_mask,), TOL[torch.float32], ("out",))


@pytest.mark.parametrize(
    "window_size", [(-2, 0), (0, -5), (1,), (1, 2, 3), 5, (1.5, 2), (True, 1), "ab", None]
)
def test_bad_window_size_raises_a_clear_error(window_size, device):
    q = torch.randn(5, 2, 32, device=device)
    cu = torch.tensor([0, 5], dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match="window_size must be a pair of ints"):
        varlen_attention(q, q, q, cu, 5, window_size=window_size)
    with pytest.raises(ValueError, match="window_size"):
        padded_attention(q[None], q[None], q[None], window_size=window_size)
    with pytest.raises(ValueError, match="window_size"):
        varlen_attention_reference(q, q, q, cu, window_size=window_size)
    with pytest.raises(ValueError, match="window_size"):
        padded_attention_reference(q[None], q[None], q[None], window_size=window_size)


# ------------------------------------------------------------------ GPU only
def _low_precision_case(gen, lengths, heads, head_dim, dtype, dropout_p=0.0, window_size=(-1, -1)):
    """Kernel error vs PyTorch's own error (same formula in ``dtype``), both against fp64."""
    device = "cuda"
    cu = make_cu(lengths, device)
    max_seqlen = max(lengths)
    q, k, v = make_qkv(gen, sum(lengths), heads, head_dim, dtype, device)
    seed = torch.randint(2**32, 2**62, (1,), generator=gen).to(device) if dropout_p else None
    out = varlen_attention(q, k, v, cu, max_seqlen, dropout_p, window_size=window_size, seed=seed)
    dout = torch.randn(out.shape, generator=gen).to(out)
    got = (out, *torch.autograd.grad(out, (q, k, v), dout))
    mask = attention_dropout_mask(cu, heads, max_seqlen, dropout_p, seed) if dropout_p else None
    results = []
    for ref_dtype in (torch.float64, dtype):
        qr, kr, vr = (t.detach().to(ref_dtype).requires_grad_() for t in (q, k, v))
        o = varlen_attention_reference(
            qr, kr, vr, cu, max_seqlen, dropout_p, dropout_mask=mask, window_size=window_size
        )
        results.append((o, *torch.autograd.grad(o, (qr, kr, vr), dout.to(ref_dtype))))
    ref, pt = results
    for name, g, r, p in zip(("out", "dq", "dk", "dv"), got, ref, pt, strict=True):
        assert torch.isfinite(g).all(), name
        err = (g.double() - r).abs().max().item()
        pt_err = (p.double() - r).abs().max().item()
        assert err <= 2 * pt_err + 1e-5, f"{name}: max error {err:.2e} > 2 × PyTorch's {pt_err:.2e}"


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("head_dim", [32, 64, 128])
def test_gpu_error_within_twice_pytorch(dtype, head_dim, gen):
    lengths = [*torch.randint(1, 300, (8,), generator=gen).tolist(), 1, 128, 129, 512]
    _low_precision_case(gen, lengths, 4, head_dim, dtype)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_gpu_dropout_error_within_twice_pytorch(dtype, gen):
    lengths = torch.randint(1, 200, (6,), generator=gen).tolist()
    _low_precision_case(gen, lengths, 4, 64, dtype, dropout_p=0.1)


@requires_cuda
def test_gpu_fp32_is_exact_precision(gen):
    lengths = torch.randint(1, 300, (6,), generator=gen).tolist()
    q, k, v = make_qkv(gen, sum(lengths), 4, 64, torch.float32, "cuda")
    got, want = run_both(q, k, v, lengths, gen=gen)
    assert_close(got, want, TOL[torch.float32])


@requires_cuda
def test_gpu_bench_size_batch(gen):
    """BERT-base attention at the benchmark's size: 32 × 512 tokens, 12 heads of 64, bf16."""
    _low_precision_case(gen, [512] * 32, 12, 64, torch.bfloat16)


@requires_cuda
def test_gpu_padded_attention_matches_sdpa(gen):
    """Against PyTorch's SDPA with a boolean key-padding mask, at the real rows, in fp16."""
    batch, seqlen, heads, head_dim = 16, 128, 12, 64
    lengths = torch.randint(1, seqlen + 1, (batch,), generator=gen)
    mask = (torch.arange(seqlen)[None, :] < lengths[:, None]).cuda()
    q, k, v = (torch.randn(batch, seqlen, heads, head_dim, generator=gen).cuda().half() for _ in range(3))
    out = padded_attention(q, k, v, mask)
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        *(t.transpose(1, 2) for t in (q, k, v)), attn_mask=mask[:, None, None, :]
    ).transpose(1, 2)
    ref = padded_attention_reference(q.double(), k.double(), v.double(), mask)
    err = (out.double() - ref)[mask].abs().max().item()
    sdpa_err = (sdpa.double() - ref)[mask].abs().max().item()
    assert err <= 2 * sdpa_err + 1e-5, (err, sdpa_err)
    assert math.isfinite(err)


@requires_cuda
@pytest.mark.parametrize("window_size", [(64, 64), (0, -1)], ids=str)
def test_gpu_window_error_within_twice_pytorch(window_size, gen):
    """bf16 with ModernBERT's local window (64, 64) and a one-sided one, on lengths from 1 to
    well past the blocks (so that blocks are skipped)."""
    lengths = [*torch.randint(1, 700, (6,), generator=gen).tolist(), 1, 64, 129, 512, 1500]
    _low_precision_case(gen, lengths, 4, 64, torch.bfloat16, window_size=window_size)
