"""DeBERTa-v2 / v3 against transformers (fp32, CPU, eval): outputs within 1e-5.

Covers the encoder at deberta-v3-base size and at odd small sizes in every attention variant
transformers has (log buckets or clipped distances, shared or separate position projections,
c2p / p2c / neither / no relative attention, absolute positions, token types, the convolution,
a narrower word embedding), padded batches with lengths 1 and ``max_tokens``, the relative
positions themselves, the task layers loaded into transformers' ``AutoModelFor*`` (both masked-LM
layouts), the first-token path, the hand-written dropout path, gradient checkpointing, config
errors and the config.json round trip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fastbert.model.deberta import DEBERTA, DebertaV2Config, DebertaV2Model, relative_positions
from fastbert.model.heads import Head, MaskedLM, SequenceClassifier, TokenClassifier

transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("transformers.models.deberta_v2.modeling_deberta_v2")

ATOL = 1e-5

# microsoft/deberta-v3-base's config.json (pos_att_type as it writes it), the vocabulary cut from
# 128,100 to keep memory and time low.
BASE = dict(
    vocab_size=1000,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    max_position_embeddings=512,
    relative_attention=True,
    position_buckets=256,
    norm_rel_ebd="layer_norm",
    share_att_key=True,
    pos_att_type="p2c|c2p",
    layer_norm_eps=1e-7,
    max_relative_positions=-1,
    position_biased_input=False,
    type_vocab_size=0,
    pad_token_id=0,
)
# Odd sizes: 5 heads of 16; 16 buckets, so distances past 8 of the 53 positions are log-bucketed.
SMALL = dict(
    BASE,
    num_hidden_layers=3,
    num_attention_heads=5,
    hidden_size=80,
    intermediate_size=160,
    max_position_embeddings=53,
    position_buckets=16,
)
VARIANTS = {
    "v3": {},
    # DeBERTa-v2 style: absolute positions, token types, separate position projections, distances
    # clipped to ±8 without buckets.
    "clipped": dict(
        position_biased_input=True,
        type_vocab_size=2,
        share_att_key=False,
        position_buckets=-1,
        max_relative_positions=8,
        norm_rel_ebd="none",
    ),
    # c2p alone, a convolution beside the first layer, a narrower word embedding (embed_proj).
    "c2p-conv": dict(pos_att_type=["c2p"], conv_kernel_size=3, conv_act="gelu", embedding_size=48),
    "p2c-separate": dict(pos_att_type=["p2c"], share_att_key=False, type_vocab_size=3),
    "no-terms": dict(pos_att_type=None),
    "no-relative": dict(relative_attention=False, position_biased_input=True),
}


def hf_config(sizes: dict[str, Any], **extra: Any) -> Any:
    return transformers.AutoConfig.for_model("deberta-v2", **{**sizes, **extra})


def batch(
    config: DebertaV2Config, lengths: list[int], seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, L), the mask, and pair-style type ids: 1 on each row's second half."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(4, config.vocab_size, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = ids * mask
    types = ((torch.arange(width)[None, :] >= (torch.tensor(lengths)[:, None] + 1) // 2) & (mask == 1)).long()
    return ids, mask, types


def encoders(sizes: dict[str, Any], seed: int = 0) -> tuple[DebertaV2Model, Any]:
    """transformers' AutoModel with random weights, and ours with those weights."""
    torch.manual_seed(seed)
    hf = transformers.AutoModel.from_config(hf_config(sizes), attn_implementation="eager").eval()
    ours = DebertaV2Model(DebertaV2Config.from_dict(hf.config.to_dict(), "test")).eval()
    assert ours.load_hf_state_dict(hf.state_dict()) == []
    return ours, hf


def check_encoder(
    ours: DebertaV2Model, hf: Any, lengths: list[int], seed: int, first_token: bool = True
) -> None:
    ids, mask, types = batch(ours.config, lengths, seed)
    real = mask.bool()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state  # (B, L, H)
        hidden, pooled = ours(ids, mask, types)
        assert pooled is None
        assert (hidden - want)[real].abs().max() < ATOL
        if not first_token:
            return
        first = ours.pooled_output(ids, mask, types)  # the last layer for first tokens only
        assert (first - want[:, 0]).abs().max() < ATOL


def test_base_size_matches_transformers() -> None:
    ours, hf = encoders(BASE)
    assert ours.config.max_tokens == 512
    assert ours.config.attention_terms == ("c2p", "p2c")
    # The first-token path is checked at the small sizes: here it would cost a third of the time.
    check_encoder(ours, hf, [ours.config.max_tokens, 1, 7], seed=0, first_token=False)
    # A short batch reaches only the middle 13 of the 512 relative embeddings (AttentionPlan.table).
    check_encoder(ours, hf, [7, 1, 3], seed=1)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_odd_small_sizes_match_transformers(variant: str) -> None:
    ours, hf = encoders({**SMALL, **VARIANTS[variant]}, seed=1)
    check_encoder(ours, hf, [ours.config.max_tokens, 1, 12, 2, 30], seed=1)
    check_encoder(ours, hf, [5, 1, 3], seed=2)  # shorter than the buckets' exact middle


def test_relative_positions_match_transformers() -> None:
    # Lengths past max_position: the log buckets saturate; 520 positions cover every case of v3-base.
    for buckets, max_position in [(256, 512), (16, 53), (-1, -1), (7, 40)]:
        q = torch.zeros(520, 1)
        want = modeling.build_relative_position(q, q, buckets, max_position)[0]
        pos = torch.arange(520)
        assert torch.equal(relative_positions(pos, pos, buckets, max_position), want)
    ours = relative_positions(pos, pos, 256, 512)
    assert torch.equal(ours, -ours.t())  # odd in the distance: c2p and p2c share one index table


TASKS = {
    "sequence": (transformers.AutoModelForSequenceClassification, "ForSequenceClassification"),
    "token": (transformers.AutoModelForTokenClassification, "ForTokenClassification"),
    "mlm": (transformers.AutoModelForMaskedLM, "ForMaskedLM"),
    "mlm-new": (transformers.AutoModelForMaskedLM, "ForMaskedLM"),
}
TIED = {
    "mlm": {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"},
}


@pytest.mark.parametrize("task", list(TASKS))
def test_task_layers_load_into_transformers(task: str) -> None:
    torch.manual_seed(3)
    auto, suffix = TASKS[task]
    labels = {"sequence": 3, "token": 4}.get(task, 2)
    extra = {"legacy": False} if task == "mlm-new" else {"pooler_dropout": 0.2, "cls_dropout": 0.3}
    hf = auto.from_config(hf_config(SMALL, num_labels=labels, **extra), attn_implementation="eager").eval()
    config = DebertaV2Config.from_dict(hf.config.to_dict(), "test")
    ours: Head
    if task == "sequence":
        ours = SequenceClassifier(config, labels, family=DEBERTA)
    elif task == "token":
        ours = TokenClassifier(config, labels, family=DEBERTA)
    else:
        ours = MaskedLM(config, family=DEBERTA)
    ours.eval()
    # The encoder starts from transformers' initialisation (word embeddings N(0, 0.02), a real
    # checkpoint's scale, which keeps the tied MLM logits small), loaded as `build_model` loads a
    # checkpoint; the task layers are ours. Then ours is loaded into transformers.
    ours.encoder.load_hf_state_dict(hf.state_dict())
    assert type(hf).__name__ == DEBERTA.class_name("deberta-v2", task.split("-")[0])
    assert type(hf).__name__.endswith(suffix)

    tied = ours.tied_keys()
    assert tied == TIED.get(task, set())
    state = {k: v for k, v in ours.state_dict().items() if k not in tied}
    # strict=False only because torch counts the tied keys as missing; nothing else may differ.
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert unexpected == []
    assert set(missing) == tied
    assert hf.state_dict().keys() == ours.state_dict().keys()
    if task == "mlm":  # transformers ties what we tie
        assert hf.cls.predictions.decoder.weight is hf.deberta.embeddings.word_embeddings.weight
    if task == "sequence":  # ContextPooler's dropout, then the classifier's
        assert ours.pooler.dropout.p == 0.2 and ours.dropout.p == 0.3

    ids, mask, types = batch(config, [config.max_tokens, 1, 6, 17], seed=4)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        got = ours(ids, mask, types)
    if task != "sequence":
        want, got = want[mask.bool()], got[mask.bool()]  # real tokens
    assert got.shape == want.shape
    assert (got - want).abs().max() < ATOL


def small_model(seed: int, dropout: float, **change: Any) -> DebertaV2Model:
    torch.manual_seed(seed)
    config = DebertaV2Config.from_dict(
        dict(SMALL, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, **change)
    )
    return DebertaV2Model(config).train()


def gradients(model: DebertaV2Model, out: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    (out * weights).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "change", [{}, {"relative_attention": False}, {"num_hidden_layers": 1, "conv_kernel_size": 5}]
)
def test_first_token_path_matches_the_full_forward_with_gradients(change: dict[str, Any]) -> None:
    # Dropout off, so both paths compute the same function in training mode.
    model = small_model(5, dropout=0.0, **change)
    ids, mask, types = batch(model.config, [35, 1, 8, 20], seed=5)
    weights = torch.randn(4, 80, generator=torch.Generator().manual_seed(5))
    full = model(ids, mask, types)[0][:, 0]
    want = gradients(model, full, weights)
    first = model.pooled_output(ids, mask, types)
    got = gradients(model, first, weights)
    torch.testing.assert_close(first, full, rtol=0, atol=ATOL)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_hand_written_dropout_path_matches_transformers() -> None:
    # Training with CPU dropout takes the hand-written softmax (fastbert's masks) instead of SDPA; at
    # p = 1e-9 it drops nothing, so it must give transformers' eval output, gradients included.
    ours, hf = encoders(dict(SMALL, hidden_dropout_prob=0.0), seed=2)
    ours.train()
    for layer in ours.layers:
        layer.attention.self.dropout_p = 1e-9
    ids, mask, types = batch(ours.config, [53, 1, 20], seed=2)
    weights = torch.randn(3, 53, 80, generator=torch.Generator().manual_seed(2)) * mask[..., None]
    hidden = ours(ids, mask, types)[0]
    want = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert (hidden - want)[mask.bool()].abs().max() < ATOL
    (hidden * weights).sum().backward()
    (want * weights).sum().backward()
    theirs = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None
        torch.testing.assert_close(p.grad, theirs[name].grad, rtol=1e-4, atol=1e-5, msg=name)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    # With dropout on (the relative embeddings' too): the recomputation must replay the same masks.
    model = small_model(6, dropout=0.1, conv_kernel_size=3)
    ids, mask, types = batch(model.config, [35, 3, 11], seed=6)
    weights = torch.randn(3, 35, 80, generator=torch.Generator().manual_seed(6))
    results = []
    for checkpointing in (False, True):
        model.gradient_checkpointing = checkpointing
        torch.manual_seed(7)
        hidden = model(ids, mask, types)[0]
        results.append((hidden, gradients(model, hidden, weights)))
    (h0, g0), (h1, g1) = results
    torch.testing.assert_close(h1, h0, rtol=0, atol=0)
    assert g1.keys() == g0.keys() and len(g0) == len(list(model.parameters()))
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_size": 84}, "hidden_size"),
        ({"pos_att_type": "c2p|p2p"}, "pos_att_type"),
        ({"norm_rel_ebd": "rms_norm"}, "norm_rel_ebd"),
        ({"conv_kernel_size": 4}, "conv_kernel_size"),
        ({"conv_groups": 3}, "conv_groups"),
        ({"pad_token_id": 1000}, "pad_token_id"),
        ({"attention_head_size": 32}, "attention_head_size"),
        ({"hidden_act": "mish"}, "hidden_act"),
        ({"pooler_hidden_act": "mish"}, "pooler_hidden_act"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SMALL, "model_type": "deberta-v2", **change}))
    with pytest.raises(ValueError, match=field) as err:
        DebertaV2Config.from_file(path)
    assert str(path) in str(err.value)


def test_task_layers_refuse_what_transformers_cannot_run() -> None:
    config = DebertaV2Config.from_dict(dict(SMALL, pooler_hidden_size=64))
    with pytest.raises(ValueError, match="pooler_hidden_size"):
        SequenceClassifier(config, 2, family=DEBERTA)
    with pytest.raises(ValueError, match="embedding_size"):
        MaskedLM(DebertaV2Config.from_dict(dict(SMALL, legacy=False, embedding_size=48)), family=DEBERTA)


@pytest.mark.parametrize("variant", ["v3", "clipped", "c2p-conv"])
def test_config_round_trips_through_transformers(tmp_path: Path, variant: str) -> None:
    config = DebertaV2Config.from_dict({**SMALL, **VARIANTS[variant], "cls_dropout": 0.3, "legacy": False})
    assert config.pos_att_type is not None  # "p2c|c2p" read as a list
    d = config.to_hf_dict()
    assert "unpad" not in d and d["model_type"] == "deberta-v2"
    back = transformers.AutoConfig.for_model(**d)
    assert type(back).__name__ == DEBERTA.model_types["deberta-v2"] + "Config"
    assert DebertaV2Config.from_dict(back.to_dict()) == config
    (tmp_path / "config.json").write_text(json.dumps(d))
    saved = transformers.AutoConfig.from_pretrained(tmp_path)
    assert DebertaV2Config.from_dict(saved.to_dict()) == config
    for name in ("position_buckets", "norm_rel_ebd", "share_att_key", "conv_kernel_size", "cls_dropout"):
        assert getattr(saved, name, None) == getattr(config, name)  # what transformers' model reads


def test_missing_or_misshapen_weights_are_named() -> None:
    ours = small_model(8, dropout=0.0)
    bare = {k: v.clone() for k, v in ours.state_dict().items()}
    assert ours.load_hf_state_dict(bare, source="ckpt") == []  # keys without the "deberta." prefix
    del bare["encoder.rel_embeddings.weight"]
    with pytest.raises(ValueError, match=r"ckpt: .*encoder\.rel_embeddings\.weight"):
        ours.load_hf_state_dict(bare, source="ckpt")
    bare["encoder.rel_embeddings.weight"] = torch.zeros(31, 80)
    with pytest.raises(ValueError, match=r"ckpt: encoder\.rel_embeddings\.weight has shape \(31, 80\)"):
        ours.load_hf_state_dict(bare, source="ckpt")
