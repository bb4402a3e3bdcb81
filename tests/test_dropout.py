"""`fastbert.dropout`: the Rust scale tensors against their numpy reference, their statistics,
and the layers and attention path that use them against plain PyTorch."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbert import _core
from fastbert.model import dropout as fd
from fastbert.model.attention import eager_attention, math_attention

SETTINGS = settings(max_examples=200, deadline=None)
probabilities = st.one_of(
    st.sampled_from([0.0, 0.1, 0.5, 0.9, 2.0**-33, 0.5 - 2.0**-34, 1.0 - 2.0**-30]),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False),
)
seeds = st.integers(min_value=0, max_value=2**64 - 1)


@SETTINGS
@given(n=st.integers(min_value=0, max_value=3000), p=probabilities, seed=seeds)
def test_rust_scales_equal_the_numpy_reference_bit_for_bit(n: int, p: float, seed: int) -> None:
    got = _core.dropout_scale(n, p, seed)
    assert got.dtype == np.float32 and got.shape == (n,)
    np.testing.assert_array_equal(got, fd.dropout_scale_reference(n, p, seed))


@settings(max_examples=10, deadline=None)
@given(seed=seeds, extra=st.integers(min_value=0, max_value=70_001))
def test_chunks_and_threads_do_not_change_the_tensor(seed: int, extra: int) -> None:
    n = 3 * 2**15 + extra  # several parallel chunks, odd and even lengths
    one = _core.dropout_scale(n, 0.3, seed, num_threads=1)
    np.testing.assert_array_equal(one, _core.dropout_scale(n, 0.3, seed, num_threads=3))
    np.testing.assert_array_equal(one, fd.dropout_scale_reference(n, 0.3, seed))
    # A shorter tensor is a prefix of a longer one: element i depends on (seed, i) only.
    np.testing.assert_array_equal(one[:1001], _core.dropout_scale(1001, 0.3, seed))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_and_neighbour_independence(p: float) -> None:
    n = 2_000_000
    dropped = _core.dropout_scale(n, p, 12345) == 0
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(int(dropped.sum()) - n * p) < 6 * sigma
    # Neighbours share one 64-bit hash (low and high halves): both dropped as often as chance says.
    both = int((dropped[0::2] & dropped[1::2]).sum())
    m, q = n // 2, p * p
    assert abs(both - m * q) < 6 * math.sqrt(m * q * (1 - q))
    # Kept values are exactly 1 / (1 - p), in float32 as PyTorch scales them.
    kept = _core.dropout_scale(1000, p, 7)
    assert set(np.unique(kept).tolist()) <= {0.0, float(np.float32(1.0 / (1.0 - p)))}


def test_different_seeds_give_different_masks() -> None:
    a, b = (_core.dropout_scale(10_000, 0.5, s) for s in (1, 2))
    assert 0.4 < float((a != b).mean()) < 0.6  # independent masks disagree half the time


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_probability_is_a_value_error(p: float) -> None:
    with pytest.raises(ValueError, match="dropout probability must be in"):
        _core.dropout_scale(10, p, 0)
    with pytest.raises(ValueError, match="dropout probability must be in"):
        fd.dropout_scale_reference(10, p, 0)


def expected_scale(shape: tuple[int, ...], p: float, torch_seed: int) -> torch.Tensor:
    """The scale `fd.dropout` draws after ``torch.manual_seed(torch_seed)``, from the reference."""
    torch.manual_seed(torch_seed)
    n = math.prod(shape)
    return torch.from_numpy(fd.dropout_scale_reference(n, p, fd.draw_seed())).view(shape)


@SETTINGS
@given(
    shape=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4).map(tuple),
    p=st.floats(min_value=0.01, max_value=0.99),
    torch_seed=st.integers(min_value=0, max_value=2**31),
)
def test_forward_and_gradient_use_the_reference_scale(
    shape: tuple[int, ...], p: float, torch_seed: int
) -> None:
    x = torch.randn(shape, requires_grad=True)
    torch.manual_seed(torch_seed)
    y = fd.dropout(x, p)
    scale = expected_scale(shape, p, torch_seed)
    torch.testing.assert_close(y, x.detach() * scale, rtol=0, atol=0)
    g = torch.randn(shape)
    y.backward(g)
    assert x.grad is not None
    torch.testing.assert_close(x.grad, g * scale, rtol=0, atol=0)


def test_torch_manual_seed_makes_it_repeatable_and_advances_the_generator() -> None:
    x = torch.randn(64, 64)
    torch.manual_seed(3)
    first, second = fd.dropout(x, 0.2), fd.dropout(x, 0.2)
    torch.manual_seed(3)
    assert torch.equal(first, fd.dropout(x, 0.2))
    assert not torch.equal(first, second)  # each call draws a new seed


def test_the_layer_is_identity_in_eval_and_keeps_nn_dropouts_state() -> None:
    layer = fd.Dropout(0.4)
    assert isinstance(layer, torch.nn.Dropout) and layer.state_dict() == {}
    x = torch.randn(10, 10)
    layer.eval()
    assert layer(x) is x
    layer.train()
    assert (layer(x) == 0).any()


def test_other_cases_fall_back_to_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(200, 200)
    for tensor, p in ((x.double(), 0.3), (x.bfloat16(), 0.3), (x, 1.0)):
        assert not fd.fast_dropout_applies(tensor, p)
        torch.manual_seed(5)
        got = fd.dropout(tensor, p)
        torch.manual_seed(5)
        assert torch.equal(got, F.dropout(tensor, p, training=True))
    assert fd.dropout(x, 0.0) is x
    with pytest.raises(ValueError):
        fd.dropout(x, 1.5)  # PyTorch's own error
    monkeypatch.setattr(fd, "ENABLED", False)
    assert not fd.fast_dropout_applies(x, 0.3)
    torch.manual_seed(5)
    got = fd.dropout(x, 0.3)
    torch.manual_seed(5)
    assert torch.equal(got, F.dropout(x, 0.3, training=True))


def test_the_environment_switch_is_read_at_import() -> None:
    code = "import fastbert.model.dropout as d; print(d.ENABLED)"
    for value, expected in (("0", "False"), ("1", "True")):
        env = {**os.environ, "FASTBERT_FAST_DROPOUT": value}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected


def attention_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b, h, length, d = 3, 4, 11, 8
    q, k, v = (torch.randn(b, h, length, d, generator=g) for _ in range(3))
    lengths = torch.tensor([11, 7, 2])
    real = torch.arange(length)[None, :] < lengths[:, None]  # (B, L)
    bias = torch.zeros(b, 1, 1, length).masked_fill(~real[:, None, None, :], torch.finfo(torch.float32).min)
    return q, k, v, bias


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_math_attention_without_dropout_equals_sdpa_and_the_textbook(seed: int) -> None:
    q, k, v, bias = attention_inputs(seed)
    got = math_attention(q, k, v, bias, 0.0)
    torch.testing.assert_close(
        got, F.scaled_dot_product_attention(q, k, v, attn_mask=bias), atol=1e-5, rtol=1e-5
    )
    mask = (bias[:, 0, 0, :] == 0).long()  # eager_attention takes (B, L, h, d) and a 0/1 mask
    ref = eager_attention(*(t.transpose(1, 2) for t in (q, k, v)), mask).transpose(1, 2)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_math_attention_drops_probabilities_with_the_reference_mask(seed: int) -> None:
    q, k, v, bias = attention_inputs(seed)
    for t in (q, k, v):
        t.requires_grad_(True)
    torch.manual_seed(100 + seed)
    got = math_attention(q, k, v, bias, 0.25)
    probs = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias).softmax(-1)
    ref = (probs * expected_scale(tuple(probs.shape), 0.25, 100 + seed)) @ v
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(got.sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
