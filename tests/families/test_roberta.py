"""RoBERTa and XLM-RoBERTa against transformers (fp32, CPU, eval): outputs within 1e-5.

Covers the encoder at roberta-base size and at odd small sizes for both model types, padded
batches with lengths 1 and ``max_tokens``, a pair's token type ids of 1 (ignored, as the model has
one type), the task layers loaded into transformers' ``AutoModelFor*``, the first-token path,
gradient checkpointing, config errors and the config.json round trip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fastbert.model.heads import Head, MaskedLM, SequenceClassifier, TokenClassifier
from fastbert.model.roberta import ROBERTA, RobertaConfig, RobertaModel

transformers = pytest.importorskip("transformers")

ATOL = 1e-5

# roberta-base's config.json, the vocabulary cut from 50,265 to keep memory and time low.
BASE = dict(
    vocab_size=1000,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=514,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
)
# Odd sizes: 5 heads of 16, a position table that is not a power of two.
SMALL = dict(
    BASE,
    num_hidden_layers=3,
    num_attention_heads=5,
    hidden_size=80,
    intermediate_size=160,
    max_position_embeddings=37,
)

MODEL_TYPES = ["roberta", "xlm-roberta"]


def hf_config(model_type: str, sizes: dict[str, Any], **extra: Any) -> Any:
    return transformers.AutoConfig.for_model(model_type, **sizes, **extra)


def batch(
    config: RobertaConfig, lengths: list[int], seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, L) with no pad id among the real tokens (transformers derives its
    positions from ``ids != pad``), the mask, and pair-style type ids: 1 on each row's second half."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(config.pad_token_id + 1, config.vocab_size, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = ids.masked_fill(mask == 0, config.pad_token_id)
    types = ((torch.arange(width)[None, :] >= (torch.tensor(lengths)[:, None] + 1) // 2) & (mask == 1)).long()
    return ids, mask, types


def encoders(model_type: str, sizes: dict[str, Any], attn: str) -> tuple[RobertaModel, Any]:
    """transformers' AutoModel with random weights, and ours with those weights."""
    torch.manual_seed(0)
    hf = transformers.AutoModel.from_config(hf_config(model_type, sizes), attn_implementation=attn).eval()
    ours = RobertaModel(RobertaConfig.from_dict(hf.config.to_dict(), "test")).eval()
    unused = ours.load_hf_state_dict(hf.state_dict())
    assert sorted(unused) == ["pooler.dense.bias", "pooler.dense.weight"]  # AutoModel's pooler
    return ours, hf


def check_encoder(ours: RobertaModel, hf: Any, lengths: list[int], seed: int, base: bool = False) -> None:
    ids, mask, types = batch(ours.config, lengths, seed)
    real = mask.bool()
    with torch.no_grad():
        if base:
            # transformers on the longest row alone and on the others padded: its output at real
            # positions does not depend on the batch, and a 3 x 512 padded batch at base size is
            # the slowest step of this file on two shared cores. Ours takes the mixed batch.
            want = torch.zeros(*ids.shape, ours.config.hidden_size)
            want[:1] = hf(input_ids=ids[:1], attention_mask=mask[:1]).last_hidden_state
            rest = hf(input_ids=ids[1:, : max(lengths[1:])], attention_mask=mask[1:, : max(lengths[1:])])
            want[1:, : max(lengths[1:])] = rest.last_hidden_state
        else:
            want = hf(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
        hidden, pooled = ours(ids, mask, types)  # type ids of 1 must be ignored, not indexed
        assert pooled is None
        assert (hidden - want)[real].abs().max() < ATOL
        if base:
            return  # the checks below run on the small configs: each is one more forward pass
        first = ours.pooled_output(ids, mask, types)  # the last layer for first tokens only
        assert (first - want[:, 0]).abs().max() < ATOL
        assert torch.equal(ours(ids, mask, torch.zeros_like(types))[0], hidden)


def test_base_size_matches_transformers() -> None:
    ours, hf = encoders("roberta", BASE, "sdpa")
    assert ours.config.max_tokens == 512  # 514 positions less the padding index and the one below it
    check_encoder(ours, hf, [ours.config.max_tokens, 1, 7], seed=0, base=True)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_odd_small_sizes_match_transformers(model_type: str, attn: str) -> None:
    ours, hf = encoders(model_type, SMALL, attn)
    assert ours.config.max_tokens == 35
    check_encoder(ours, hf, [ours.config.max_tokens, 1, 12, 2, 35, 20], seed=1)


def test_other_padding_index_shifts_the_positions() -> None:
    # XLM-R and RoBERTa use 1; a model with pad 4 starts at position 5 and takes 5 tokens fewer.
    ours, hf = encoders("roberta", dict(SMALL, pad_token_id=4), "eager")
    assert ours.config.max_tokens == 37 - 5
    check_encoder(ours, hf, [ours.config.max_tokens, 1, 9], seed=2)


TASKS = {
    "sequence": (transformers.AutoModelForSequenceClassification, "ForSequenceClassification"),
    "token": (transformers.AutoModelForTokenClassification, "ForTokenClassification"),
    "mlm": (transformers.AutoModelForMaskedLM, "ForMaskedLM"),
}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("task", list(TASKS))
def test_task_layers_load_into_transformers(model_type: str, task: str) -> None:
    torch.manual_seed(3)
    auto, suffix = TASKS[task]
    labels = {"sequence": 3, "token": 4}.get(task, 2)
    hf = auto.from_config(hf_config(model_type, SMALL, num_labels=labels), attn_implementation="eager").eval()
    config = RobertaConfig.from_dict(hf.config.to_dict(), "test")
    ours: Head
    if task == "sequence":
        ours = SequenceClassifier(config, labels, family=ROBERTA)
    elif task == "token":
        ours = TokenClassifier(config, labels, family=ROBERTA)
    else:
        ours = MaskedLM(config, family=ROBERTA)
    ours.eval()
    # The encoder starts from transformers' initialisation (word embeddings N(0, 0.02), the scale
    # of a real checkpoint; PyTorch's N(0, 1) would blow the tied MLM logits up to ~15, where fp32
    # rounding alone exceeds 1e-5), loaded as `build_model` loads a checkpoint; the task layers are
    # ours. Then ours is loaded into transformers: every weight it uses comes from our state dict.
    ours.encoder.load_hf_state_dict(hf.state_dict())
    assert type(hf).__name__ == ROBERTA.class_name(model_type, task)
    assert type(hf).__name__.endswith(suffix)

    tied = ours.tied_keys()
    assert tied == ({"lm_head.decoder.weight", "lm_head.decoder.bias"} if task == "mlm" else set())
    state = {k: v for k, v in ours.state_dict().items() if k not in tied}
    # strict=False only because torch counts the tied keys as missing; nothing else may differ.
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert unexpected == []
    assert set(missing) == tied
    assert hf.state_dict().keys() == ours.state_dict().keys()
    if task == "mlm":  # transformers ties what we tie
        assert hf.lm_head.decoder.weight is hf.roberta.embeddings.word_embeddings.weight

    ids, mask, types = batch(config, [config.max_tokens, 1, 6, 17], seed=4)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, mask, types)
    if task != "sequence":
        want, got = want[mask.bool()], got[mask.bool()]  # real tokens
    assert got.shape == want.shape
    assert (got - want).abs().max() < ATOL


def small_model(seed: int, dropout: float) -> RobertaModel:
    torch.manual_seed(seed)
    config = RobertaConfig.from_dict(
        dict(
            SMALL, model_type="xlm-roberta", hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout
        )
    )
    return RobertaModel(config).train()


def gradients(model: RobertaModel, out: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    (out * weights).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_first_token_path_matches_the_full_forward_with_gradients() -> None:
    # Dropout off, so both paths compute the same function in training mode.
    model = small_model(5, dropout=0.0)
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


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    # With dropout on: the recomputation must replay the same masks.
    model = small_model(6, dropout=0.1)
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
        ({"hidden_size": 84}, "num_attention_heads"),
        ({"max_position_embeddings": 2}, "max_position_embeddings"),
        ({"pad_token_id": None}, "pad_token_id"),
        ({"pad_token_id": 1000}, "pad_token_id"),
        ({"model_type": "bert"}, "model_type"),
        ({"hidden_act": "swish-ish"}, "hidden_act"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SMALL, "model_type": "roberta", **change}))
    with pytest.raises(ValueError, match=field) as err:
        RobertaConfig.from_file(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_config_round_trips_through_transformers(tmp_path: Path, model_type: str) -> None:
    config = RobertaConfig.from_dict(
        {**SMALL, "model_type": model_type, "classifier_dropout": 0.3, "hidden_act": "gelu_new"}
    )
    d = config.to_hf_dict()
    assert "unpad" not in d and d["model_type"] == model_type
    back = transformers.AutoConfig.for_model(**d)
    assert back.model_type == model_type
    assert type(back).__name__ == ROBERTA.model_types[model_type] + "Config"
    assert RobertaConfig.from_dict(back.to_dict()) == config
    (tmp_path / "config.json").write_text(json.dumps(d))
    saved = transformers.AutoConfig.from_pretrained(tmp_path)
    assert RobertaConfig.from_dict(saved.to_dict()) == config


def test_missing_or_misshapen_weights_are_named() -> None:
    ours = small_model(8, dropout=0.0)
    bare = {k: v.clone() for k, v in ours.state_dict().items()}
    assert ours.load_hf_state_dict(bare, source="ckpt") == []  # keys without the "roberta." prefix
    del bare["encoder.layer.2.output.dense.bias"]
    with pytest.raises(ValueError, match=r"ckpt: .*encoder\.layer\.2\.output\.dense\.bias"):
        ours.load_hf_state_dict(bare, source="ckpt")
    bare["encoder.layer.2.output.dense.bias"] = torch.zeros(81)
    with pytest.raises(ValueError, match=r"ckpt: encoder\.layer\.2\.output\.dense\.bias has shape \(81,\)"):
        ours.load_hf_state_dict(bare, source="ckpt")
