"""ModernBERT against transformers (fp32, CPU, eval): outputs within 1e-5.

Covers the encoder at ModernBERT-base size and at odd small sizes (biases on and off, other
global/local patterns), padded batches with lengths 1, ``max_tokens`` and longer than the local
window, the sliding-window attention of `fastbert.model.attention` against the textbook formula,
the task layers loaded into transformers' ``AutoModelFor*``, the first-token path (its last layer
local and global), gradient checkpointing, config errors, the config.json round trip, and the
Triton kernel's ``window_size`` path (in Triton's interpreter when there is no GPU).
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from fastbert.model.attention import (
    band_mask,
    eager_attention,
    first_query_attention,
    padded_attention,
    repad_attention,
)
from fastbert.model.heads import Head, MaskedLM, SequenceClassifier, TokenClassifier
from fastbert.model.modernbert import MODERNBERT, ModernBertConfig, ModernBertModel

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
REPO = Path(__file__).resolve().parents[2]

# answerdotai/ModernBERT-base's config.json as on the Hub (transformers 4.47 wrote it: the rope
# thetas and global_attn_every_n_layers as plain fields), less two things for time: the vocabulary
# is cut from 50,368 to 1,000 (special ids moved under it), and max_position_embeddings from 8192
# to 1024: 8192 tokens through 22 layers of 768 take minutes on this machine's 2 CPU cores (twice:
# transformers and ours), 1024 is still 8 local windows of 128.
BASE: dict[str, Any] = {
    "architectures": ["ModernBertForMaskedLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 997,  # 50281 on the Hub
    "classifier_activation": "gelu",
    "classifier_bias": False,
    "classifier_dropout": 0.0,
    "classifier_pooling": "mean",
    "cls_token_id": 997,  # 50281
    "decoder_bias": True,
    "deterministic_flash_attn": False,
    "embedding_dropout": 0.0,
    "eos_token_id": 998,  # 50282
    "global_attn_every_n_layers": 3,
    "global_rope_theta": 160000.0,
    "gradient_checkpointing": False,
    "hidden_activation": "gelu",
    "hidden_size": 768,
    "initializer_cutoff_factor": 2.0,
    "initializer_range": 0.02,
    "intermediate_size": 1152,
    "layer_norm_eps": 1e-05,
    "local_attention": 128,
    "local_rope_theta": 10000.0,
    "max_position_embeddings": 1024,  # 8192
    "mlp_bias": False,
    "mlp_dropout": 0.0,
    "model_type": "modernbert",
    "norm_bias": False,
    "norm_eps": 1e-05,
    "num_attention_heads": 12,
    "num_hidden_layers": 22,
    "pad_token_id": 999,  # 50283
    "position_embedding_type": "absolute",
    "sep_token_id": 998,  # 50282
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "transformers_version": "4.47.0.dev0",
    "vocab_size": 1000,  # 50368
}
# Odd sizes: 5 heads of 16, a window of 16 (8 either side) that most test sequences exceed; layers
# global, local, local, so the last layer (the first-token path) is a local one.
SMALL: dict[str, Any] = dict(
    vocab_size=1000,
    hidden_size=80,
    num_hidden_layers=3,
    num_attention_heads=5,
    intermediate_size=112,
    local_attention=16,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    cls_token_id=1,
    sep_token_id=2,
)
# Everything the defaults leave off switched on, and another global/local pattern (G L G L).
SMALL_BIASED: dict[str, Any] = dict(
    SMALL,
    num_hidden_layers=4,
    global_attn_every_n_layers=2,
    attention_bias=True,
    mlp_bias=True,
    norm_bias=True,
    hidden_activation="gelu_pytorch_tanh",
    local_attention=11,  # odd: 5 either side, as transformers' local_attention // 2
    global_rope_theta=5000.0,
    local_rope_theta=300.0,
)


def hf_config(sizes: dict[str, Any], **extra: Any) -> Any:
    return transformers.ModernBertConfig(**{k: v for k, v in sizes.items() if k != "model_type"}, **extra)


def batch(config: ModernBertConfig, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, L) and their mask."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(3, config.vocab_size, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, config.pad_token_id or 0), mask


def perturb_norms(model: torch.nn.Module, seed: int) -> None:
    """LayerNorm weights start at 1 and biases at 0: moved off them, a swapped norm or a
    forgotten bias shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def hf_encoder(sizes: dict[str, Any], attn: str, quick_init: bool = False) -> Any:
    """transformers' AutoModel with random weights: its own init, or with ``quick_init`` N(0, 0.02)
    drawn by torch (the scale of its truncated normal; at ModernBERT-base size transformers' own
    init takes about 20 s of this machine's CPU, torch's well under one)."""
    torch.manual_seed(0)
    config = hf_config(sizes)
    if not quick_init:
        return transformers.AutoModel.from_config(config, attn_implementation=attn).eval()
    from transformers.initialization import no_init_weights

    with no_init_weights():  # the parameters are left uninitialised: every one is set below
        hf = transformers.AutoModel.from_config(config, attn_implementation=attn).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
            else:  # LayerNorm weights (and biases, where a config has them)
                p.fill_(0.0 if name.endswith("bias") else 1.0)
    return hf


def encoders(
    sizes: dict[str, Any], attn: str, config_dict: dict[str, Any] | None = None, quick_init: bool = False
) -> tuple[ModernBertModel, Any]:
    """transformers' AutoModel with random weights, and ours with those weights. Our config is read
    from ``config_dict`` (a Hub-style config.json) when given, else from transformers' own dict."""
    hf = hf_encoder(sizes, attn, quick_init)
    perturb_norms(hf, 1)
    config = ModernBertConfig.from_dict(config_dict or hf.config.to_dict(), "test")
    ours = ModernBertModel(config).eval()
    assert ours.load_hf_state_dict(hf.state_dict()) == []
    return ours, hf


def check_encoder(ours: ModernBertModel, hf: Any, lengths: list[int], seed: int, first: bool = True) -> None:
    ids, mask = batch(ours.config, lengths, seed)
    real = mask.bool()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
        hidden, pooled = ours(ids, mask, torch.ones_like(ids))  # token types are ignored
        assert pooled is None
        err = (hidden - want)[real].abs().max().item()
        assert err < ATOL, err
        assert (hidden[~real] == 0).all()
        if first:  # the last layer for first tokens only
            assert (ours.pooled_output(ids, mask) - want[:, 0]).abs().max() < ATOL


def test_base_size_matches_transformers() -> None:
    ours, hf = encoders(BASE, "sdpa", config_dict=BASE, quick_init=True)
    c = ours.config
    assert (c.global_rope_theta, c.local_rope_theta, c.window) == (160000.0, 10000.0, (64, 64))
    assert [i for i, t in enumerate(c.layer_types) if t == "full_attention"] == [0, 3, 6, 9, 12, 15, 18, 21]
    assert c.max_tokens == 1024
    # (The first-token path is checked at the small sizes, with a local and a global last layer.)
    check_encoder(ours, hf, [c.max_tokens, 1, 7], seed=0, first=False)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("sizes", [SMALL, SMALL_BIASED], ids=["default", "biased"])
def test_odd_small_sizes_match_transformers(sizes: dict[str, Any], attn: str) -> None:
    ours, hf = encoders(sizes, attn)
    assert ours.config.max_tokens == 64
    check_encoder(ours, hf, [64, 1, 7, 40, 2, 23, 9], seed=1)


def test_the_window_matters_in_these_tests() -> None:
    # The same weights with a window wider than any sequence: far from transformers, so the
    # parity above does check the band (and the sequences do exceed it).
    ours, hf = encoders(SMALL, "eager")
    wide = ModernBertModel(ModernBertConfig.from_dict(dict(SMALL, local_attention=1000))).eval()
    wide.load_hf_state_dict(hf.state_dict())
    ids, mask = batch(ours.config, [64, 30], seed=2)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        assert (ours(ids, mask)[0] - want)[mask.bool()].abs().max() < ATOL
        assert (wide(ids, mask)[0] - want)[mask.bool()].abs().max() > 1e-2
        # Sequences within the window (|i - j| <= 8 for all pairs) skip the band: still equal.
        ids, mask = batch(ours.config, [9, 3], seed=2)
        want = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        assert (ours(ids, mask)[0] - want)[mask.bool()].abs().max() < ATOL
        assert (ours.pooled_output(ids, mask) - want[:, 0]).abs().max() < ATOL


# ---------------------------------------------------------------------------- sliding-window attention
WINDOWS = [(8, 8), (3, 0), (0, 5), (-1, 4), (2, -1), (0, 0), (-1, -1)]
LENGTHS = [1, 5, 20, 33]


def banded_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: tuple[int, int]
) -> torch.Tensor:
    """One sequence, (n, h, d) each, in fp64, query by query over the keys of its window only: no
    mask at all, so it shares nothing with the masked paths it checks."""
    n = q.shape[0]
    left, right = window
    rows = []
    for i in range(n):
        lo = 0 if left < 0 else max(0, i - left)
        hi = n if right < 0 else min(n, i + right + 1)
        scores = torch.einsum("hd,khd->hk", q[i], k[lo:hi]) / q.shape[-1] ** 0.5  # (h, n_i)
        rows.append(torch.einsum("hk,khd->hd", scores.softmax(-1), v[lo:hi]))
    return torch.stack(rows)  # (n, h, d)


def packed_qkv(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    total = sum(LENGTHS)
    q, k, v = (torch.randn(total, 3, 8, generator=g, dtype=torch.float64) for _ in range(3))
    cu = torch.tensor([0, *torch.tensor(LENGTHS).cumsum(0).tolist()], dtype=torch.int32)
    return q, k, v, cu


@pytest.mark.parametrize("window", WINDOWS)
def test_windowed_cpu_attention_matches_the_formula(window: tuple[int, int]) -> None:
    q, k, v, cu = packed_qkv(seed=3)
    bounds = cu.tolist()
    want = torch.cat(
        [banded_reference(q[s:e], k[s:e], v[s:e], window) for s, e in itertools.pairwise(bounds)]
    )
    # The packed CPU path (re-padding + SDPA with the band in its mask).
    got = repad_attention(cu, max(LENGTHS), window=window)(q.float(), k.float(), v.float(), 0.0)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
    # eager_attention and padded_attention on the padded batch, with padding and the band.
    mask = (torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]).long()  # (B, L)
    padded = [torch.zeros(len(LENGTHS), max(LENGTHS), 3, 8, dtype=torch.float64) for _ in range(3)]
    for t, src in zip(padded, (q, k, v), strict=True):
        t[mask.bool()] = src
    real = mask.bool()
    eager = eager_attention(*padded, mask, window=window)
    torch.testing.assert_close(eager[real], want, rtol=0, atol=1e-10)
    sdpa = padded_attention(mask, window=window)(*(t.float() for t in padded), 0.0)
    torch.testing.assert_close(sdpa[real].double(), want, rtol=0, atol=1e-5)
    # One query per sequence, the first token (position 0): row cu[b] of the full result.
    first = first_query_attention(cu, max(LENGTHS), window=window)(
        q[cu[:-1].long()].float(), k.float(), v.float(), 0.0
    )
    torch.testing.assert_close(first.double(), want[cu[:-1].long()], rtol=0, atol=1e-5)


def test_band_mask_is_the_flash_attention_convention() -> None:
    # Query i sees key j iff i - left <= j <= i + right; -1 leaves that side open.
    assert band_mask(3, 4, (1, 0)).int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0]]
    assert band_mask(2, 3, (-1, 1)).int().tolist() == [[1, 1, 0], [1, 1, 1]]
    assert band_mask(2, 2, (-1, -1)).all()


def test_window_gradients_stay_finite_where_padding_sees_no_real_key() -> None:
    # A short sequence beside a long one: its padding queries far out have only padding keys in
    # their window. Their rows are discarded, but a -inf mask would make them NaN, and NaN would
    # flow into the real keys' gradients; the band and padding are one finite bias instead.
    window = (1, 1)  # sequences of 2 and 30 tokens
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(32, 2, 8, generator=g, requires_grad=True) for _ in range(3))
    cu = torch.tensor([0, 2, 32], dtype=torch.int32)
    out = repad_attention(cu, 30, window=window)(q, k, v, 0.0)
    weights = torch.randn(out.shape, generator=g)
    (out * weights).sum().backward()
    grads = [t.grad for t in (q, k, v)]
    qd, kd, vd = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = torch.cat([banded_reference(qd[s:e], kd[s:e], vd[s:e], window) for s, e in ((0, 2), (2, 32))])
    (ref * weights.double()).sum().backward()
    for got, want in zip(grads, (qd.grad, kd.grad, vd.grad), strict=True):
        assert got is not None and want is not None and torch.isfinite(got).all()
        torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------- task layers
TASKS = {
    "sequence-cls": (transformers.AutoModelForSequenceClassification, "ForSequenceClassification"),
    "sequence-mean": (transformers.AutoModelForSequenceClassification, "ForSequenceClassification"),
    "token": (transformers.AutoModelForTokenClassification, "ForTokenClassification"),
    "mlm": (transformers.AutoModelForMaskedLM, "ForMaskedLM"),
}


@pytest.mark.parametrize("sizes", [SMALL, SMALL_BIASED], ids=["default", "biased"])
@pytest.mark.parametrize("task", list(TASKS))
def test_task_layers_load_into_transformers(task: str, sizes: dict[str, Any]) -> None:
    torch.manual_seed(3)
    auto, suffix = TASKS[task]
    labels = {"token": 4}.get(task, 3)
    pooling = "mean" if task == "sequence-mean" else "cls"
    extra = dict(classifier_bias=True) if sizes is SMALL_BIASED else {}
    hf = auto.from_config(
        hf_config(sizes, num_labels=labels, classifier_pooling=pooling, **extra), attn_implementation="eager"
    ).eval()
    config = ModernBertConfig.from_dict(hf.config.to_dict(), "test")
    ours: Head
    if task.startswith("sequence"):
        ours = SequenceClassifier(config, labels, pooling=pooling, family=MODERNBERT)
    elif task == "token":
        ours = TokenClassifier(config, labels, family=MODERNBERT)
    else:
        ours = MaskedLM(config, family=MODERNBERT)
    ours.eval()
    # The encoder starts from transformers' initialisation (as `build_model` loads a checkpoint),
    # the task layers are ours, norms and biases moved off 1 and 0; then ours is loaded into
    # transformers: every weight it uses comes from our state dict.
    ours.encoder.load_hf_state_dict(hf.state_dict())
    perturb_norms(ours, 5)
    assert type(hf).__name__ == MODERNBERT.class_name("modernbert", task.split("-")[0])
    assert type(hf).__name__.endswith(suffix)

    tied = ours.tied_keys()
    assert tied == ({"decoder.weight"} if task == "mlm" else set())
    state = {k: v for k, v in ours.state_dict().items() if k not in tied}
    # strict=False only because torch counts the tied key as missing; nothing else may differ.
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert unexpected == []
    assert set(missing) == tied
    assert hf.state_dict().keys() == ours.state_dict().keys()
    if task == "mlm":  # transformers ties what we tie
        assert hf.decoder.weight is hf.model.embeddings.tok_embeddings.weight
        assert hf.decoder.bias is not None

    ids, mask = batch(config, [64, 1, 6, 17, 30], seed=4)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, mask)
    if not task.startswith("sequence"):
        want, got = want[mask.bool()], got[mask.bool()]  # real tokens
    assert got.shape == want.shape
    assert (got - want).abs().max() < ATOL


def test_new_task_layers_get_transformers_init() -> None:
    # Truncated normals (at ± initializer_cutoff_factor = 2 std), zero biases, unit norms:
    # the classifier's std is hidden_size ** -0.5, the head's dense 0.02 / sqrt(2 · layers).
    torch.manual_seed(6)
    config = ModernBertConfig.from_dict(
        dict(SMALL, hidden_size=768, num_attention_heads=12, intermediate_size=64)
    )
    head = SequenceClassifier(config, 4, family=MODERNBERT)
    for weight, std in ((head.classifier.weight, 768**-0.5), (head.head.dense.weight, 0.02 / 6**0.5)):
        assert weight.abs().max() <= 2 * std
        assert abs(weight.std().item() / std - 0.88) < 0.05  # a normal cut at ±2σ keeps 88% of its std
    assert (head.classifier.bias == 0).all() and head.head.dense.bias is None  # classifier_bias False
    assert (head.head.norm.weight == 1).all() and head.head.norm.bias is None  # norm_bias False


# ---------------------------------------------------------------------------- training paths
def small_model(seed: int, dropout: float, **change: Any) -> ModernBertModel:
    torch.manual_seed(seed)
    config = ModernBertConfig.from_dict(
        dict(SMALL, **change, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    )
    model = ModernBertModel(config).train()
    perturb_norms(model, seed)
    return model


def gradients(model: ModernBertModel, out: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    (out * weights).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("layers", [3, 4], ids=["last-local", "last-global"])
def test_first_token_path_matches_the_full_forward_with_gradients(layers: int) -> None:
    # Dropout off, so both paths compute the same function in training mode.
    model = small_model(5, dropout=0.0, num_hidden_layers=layers)
    assert model.layers[-1].local == (layers == 3)
    ids, mask = batch(model.config, [64, 1, 8, 20], seed=5)
    weights = torch.randn(4, 80, generator=torch.Generator().manual_seed(5))
    full = model(ids, mask)[0][:, 0]
    want = gradients(model, full, weights)
    first = model.pooled_output(ids, mask)
    got = gradients(model, first, weights)
    torch.testing.assert_close(first, full, rtol=0, atol=ATOL)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    # With dropout on (embeddings, attention probabilities and output, feed-forward): the
    # recomputation must replay the same masks.
    model = small_model(6, dropout=0.1)
    assert model.config.attention_dropout == model.config.mlp_dropout == model.config.embedding_dropout == 0.1
    ids, mask = batch(model.config, [64, 3, 11], seed=6)
    weights = torch.randn(3, 64, 80, generator=torch.Generator().manual_seed(6))
    results = []
    for checkpointing in (False, True):
        model.gradient_checkpointing = checkpointing
        torch.manual_seed(7)
        hidden = model(ids, mask)[0]
        results.append((hidden, gradients(model, hidden, weights)))
    (h0, g0), (h1, g1) = results
    torch.testing.assert_close(h1, h0, rtol=0, atol=0)
    assert g1.keys() == g0.keys() and len(g0) == len(list(model.parameters()))
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-5, atol=1e-7, msg=name)


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_size": 84}, "num_attention_heads"),
        ({"hidden_size": 75, "num_attention_heads": 5}, "must be even"),
        ({"hidden_activation": "quick_gelu"}, "hidden_activation"),
        ({"classifier_activation": "swiglu"}, "classifier_activation"),
        ({"classifier_pooling": "max"}, "classifier_pooling"),
        ({"layer_types": ["full_attention", "sliding_attention"]}, "layer_types"),
        ({"layer_types": ["full_attention", "global", "full_attention"]}, "layer_types"),
        ({"global_attn_every_n_layers": 0}, "global_attn_every_n_layers"),
        ({"local_attention": -2}, "local_attention"),
        ({"pad_token_id": 1000}, "pad_token_id"),
        ({"hidden_size": "80"}, "hidden_size"),
        ({"norm_bias": 1}, "norm_bias"),
        ({"mlp_dropout": 1.0}, "mlp_dropout"),
        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling"),
        ({"rope_parameters": {"full_attention": {"rope_type": "yarn", "rope_theta": 1.0}}}, "rope_type"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SMALL, "model_type": "modernbert", **change}))
    with pytest.raises(ValueError, match=field) as err:
        ModernBertConfig.from_file(path)
    assert str(path) in str(err.value)


def test_generic_dropout_keys_map_onto_modernberts_own() -> None:
    # `build_model` writes hidden_dropout_prob and attention_probs_dropout_prob when the user
    # overrides dropout.
    c = ModernBertConfig.from_dict(dict(SMALL, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.3))
    assert (c.embedding_dropout, c.mlp_dropout, c.classifier_dropout, c.attention_dropout) == (
        0.2,
        0.2,
        0.2,
        0.3,
    )
    assert (c.hidden_dropout_prob, c.attention_probs_dropout_prob) == (0.2, 0.3)


def test_config_round_trips_through_transformers(tmp_path: Path) -> None:
    config = ModernBertConfig.from_dict(
        {**SMALL_BIASED, "classifier_pooling": "mean", "classifier_dropout": 0.3, "decoder_bias": False}
    )
    d = config.to_hf_dict()
    assert "unpad" not in d and d["model_type"] == "modernbert"
    back = transformers.AutoConfig.for_model(**d)
    assert type(back).__name__ == "ModernBertConfig"
    assert back.layer_types == config.layer_types == ["full_attention", "sliding_attention"] * 2
    assert back.sliding_window == 5 and back.classifier_pooling == "mean" and not back.decoder_bias
    assert back.rope_parameters["full_attention"]["rope_theta"] == 5000.0
    assert back.rope_parameters["sliding_attention"]["rope_theta"] == 300.0
    assert ModernBertConfig.from_dict(back.to_dict()) == config  # transformers 5's rope_parameters
    (tmp_path / "config.json").write_text(json.dumps(d))
    saved = transformers.AutoConfig.from_pretrained(tmp_path)
    assert ModernBertConfig.from_dict(saved.to_dict()) == config
    # The Hub's format (transformers 4: thetas and the every-n pattern as plain fields) reads the same.
    hub = ModernBertConfig.from_dict(BASE)
    assert hub.layer_types == transformers.AutoConfig.for_model(**BASE).layer_types


def test_missing_or_misshapen_weights_are_named() -> None:
    ours = small_model(8, dropout=0.0)
    bare = {k: v.clone() for k, v in ours.state_dict().items()}
    assert ours.load_hf_state_dict(bare, source="ckpt") == []  # keys without the "model." prefix
    extra = {"model." + k: v for k, v in bare.items()} | {"head.dense.weight": torch.zeros(80, 80)}
    assert ours.load_hf_state_dict(extra, source="ckpt") == ["head.dense.weight"]
    del bare["layers.2.mlp.Wi.weight"]
    with pytest.raises(ValueError, match=r"ckpt: .*layers\.2\.mlp\.Wi\.weight"):
        ours.load_hf_state_dict(bare, source="ckpt")
    bare["layers.2.mlp.Wi.weight"] = torch.zeros(112, 80)
    with pytest.raises(ValueError, match=r"ckpt: layers\.2\.mlp\.Wi\.weight has shape \(112, 80\)"):
        ours.load_hf_state_dict(bare, source="ckpt")


# ---------------------------------------------------------------------------- the Triton kernel
KERNEL_CHECK = textwrap.dedent(
    """
    import torch
    from fastbert.kernels import varlen_attention
    from fastbert.model.modernbert import ModernBertConfig, ModernBertModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    config = ModernBertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                              intermediate_size=24, local_attention=6, pad_token_id=0)
    model = ModernBertModel(config).to(device)
    lengths = [1, 9, 6]
    cu = torch.tensor([0, 1, 10, 16], dtype=torch.int32, device=device)
    ids = torch.randint(1, 50, (16,), device=device)
    seen = []

    def kernel(*args, **kwargs):
        seen.append(kwargs.get("window_size"))
        return varlen_attention(*args, **kwargs)

    outs = []
    for fn in (None, kernel):
        model.attention_fn = fn
        model.zero_grad(set_to_none=True)
        out = model.forward_packed(ids, cu, max(lengths))
        out.square().sum().backward()
        outs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (want, want_grads), (got, got_grads) = outs
    assert sorted(seen, key=str) == [(3, 3), (3, 3), None], seen
    err = (got - want).abs().max().item()
    grad_err = max((a - b).abs().max().item() for a, b in zip(got_grads, want_grads))
    print(f"kernel vs CPU path: output {err:.2e}, gradients {grad_err:.2e}")
    assert err < 1e-5 and grad_err < 1e-4
    """
)


def test_kernel_window_path_matches_the_cpu_path() -> None:
    if importlib.util.find_spec("triton") is None:
        pytest.skip("Triton is not installed")
    from fastbert.kernels import varlen_attention

    if "window_size" not in inspect.signature(varlen_attention).parameters:
        pytest.skip("fastbert.kernels.varlen_attention has no window_size yet")
    # In a subprocess: without a GPU the kernel runs in Triton's interpreter, which must be
    # switched on before Triton is first imported (transformers imports it in this process).
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", KERNEL_CHECK], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
