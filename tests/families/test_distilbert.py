"""Our DistilBERT against transformers' (fp32, CPU, eval): encoder and task layers within 1e-5.

transformers' ``from_config`` initialises LayerNorms to (1, 0) and biases to 0; every parameter is
nudged with noise before it is copied, so that the comparison exercises them too.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from fastbert.model.distilbert import DISTILBERT, DistilBertConfig, DistilBertModel, sinusoidal_positions
from fastbert.model.heads import MaskedLM, SequenceClassifier, TokenClassifier

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
#: distilbert-base-uncased's config.json, with the vocabulary reduced to keep memory low.
BASE = {"model_type": "distilbert", "vocab_size": 2000}
#: Odd sizes: 5 heads of 16, an FFN of 160.
SMALL = {
    "model_type": "distilbert",
    "vocab_size": 1000,
    "dim": 80,
    "n_layers": 3,
    "n_heads": 5,
    "hidden_dim": 160,
    "max_position_embeddings": 64,
}


def hf_config(d: dict[str, Any], **extra: Any) -> Any:
    return transformers.AutoConfig.for_model(**{**d, **extra})


def nudge(model: torch.nn.Module, seed: int) -> None:
    """Random noise on every parameter: LayerNorm weights ≠ 1, biases ≠ 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def pair(d: dict[str, Any], attn: str = "sdpa", seed: int = 0, **extra: Any) -> tuple[DistilBertModel, Any]:
    """(ours, transformers' AutoModel) with the same random weights, both in eval mode."""
    torch.manual_seed(seed)
    cfg = hf_config(d, **extra)
    hf = transformers.AutoModel.from_config(cfg, attn_implementation=attn).eval()
    nudge(hf, seed)
    ours = DistilBertModel(DistilBertConfig.from_dict(cfg.to_dict(), "test")).eval()
    assert ours.load_hf_state_dict(hf.state_dict()) == []
    return ours, hf


def batch(vocab: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, L) ids (0 at padding) and attention mask."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return torch.randint(1, vocab, (len(lengths), width), generator=g) * mask, mask


def check_encoder(
    ours: DistilBertModel,
    hf: Any,
    ids: torch.Tensor,
    mask: torch.Tensor,
    unpads: tuple[bool, ...] = (True, False),
    first_token: bool = True,
) -> None:
    """Last hidden state on the real tokens, packed and padded, and the first-token path."""
    real = mask.bool()
    types = torch.randint(0, 2, ids.shape)  # DistilBERT has no token types: ignored
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        for unpad in unpads:
            ours.config.unpad = unpad
            hidden, pooled = ours(ids, mask, types)
            assert pooled is None
            diff = (hidden - want)[real].abs().max().item()
            assert diff < ATOL, f"unpad={unpad}: max difference {diff:.2e}"
            if not first_token:
                continue
            first = ours.pooled_output(ids, mask, types)
            assert (first - want[:, 0]).abs().max().item() < ATOL, f"unpad={unpad}"
    ours.config.unpad = True


def test_base_size_matches_transformers() -> None:
    ours, hf = pair(BASE)
    c = ours.config
    assert (c.n_layers, c.dim, c.n_heads, c.hidden_dim, c.max_tokens) == (6, 768, 12, 3072, 512)
    # One forward pass (the packed one): the padded and first-token paths are checked on the
    # small configs, as this size is slow on a CPU.
    check_encoder(ours, hf, *batch(2000, [ours.config.max_tokens, 1, 7]), unpads=(True,), first_token=False)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_small_odd_config_matches_transformers(attn: str) -> None:
    ours, hf = pair(SMALL, attn, seed=1)
    check_encoder(ours, hf, *batch(1000, [5, ours.config.max_tokens, 1, 17, 2], seed=1))


@pytest.mark.parametrize("activation", ["relu", "gelu_new"])
def test_other_activations_match_transformers(activation: str) -> None:
    ours, hf = pair(SMALL, seed=2, activation=activation)
    check_encoder(ours, hf, *batch(1000, [9, 3], seed=2))


def test_sinusoidal_positions_match_transformers() -> None:
    torch.manual_seed(0)
    cfg = hf_config(SMALL, sinusoidal_pos_embds=True)
    hf = transformers.AutoModel.from_config(cfg).eval()
    ours = DistilBertModel(DistilBertConfig.from_dict(cfg.to_dict()))
    table = ours.embeddings.position_embeddings.weight
    assert (table - hf.embeddings.position_embeddings.weight).abs().max().item() < 1e-6
    # Position 2, columns 0 and 1 share the wavelength 10000⁰: sin(2), cos(2).
    torch.testing.assert_close(sinusoidal_positions(3, 4)[2, :2], torch.tensor([math.sin(2), math.cos(2)]))
    ours, hf = pair(SMALL, seed=3, sinusoidal_pos_embds=True)
    check_encoder(ours, hf, *batch(1000, [12, 4], seed=3))


def task_state(model: torch.nn.Module, tied: set[str]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k not in tied}


@pytest.mark.parametrize("tie", [True, False])
def test_task_layers_load_into_transformers_and_match(tie: bool) -> None:
    torch.manual_seed(4)
    config = DistilBertConfig.from_dict({**SMALL, "tie_word_embeddings": tie})
    ids, mask = batch(1000, [11, 1, 6, 3], seed=4)
    for ours_model, auto, extra in (
        (
            SequenceClassifier(config, 3, family=DISTILBERT),
            transformers.AutoModelForSequenceClassification,
            3,
        ),
        (TokenClassifier(config, 4, family=DISTILBERT), transformers.AutoModelForTokenClassification, 4),
        (MaskedLM(config, family=DISTILBERT), transformers.AutoModelForMaskedLM, None),
    ):
        nudge(ours_model, 4)
        ours_model.eval()
        cfg = transformers.AutoConfig.for_model(**config.to_hf_dict())
        if extra is not None:
            cfg.num_labels = extra
        hf = auto.from_config(cfg).eval()
        tied = ours_model.tied_keys()
        assert tied == ({"vocab_projector.weight"} if tie and extra is None else set())
        result = hf.load_state_dict(task_state(ours_model, tied), strict=False)
        assert result.unexpected_keys == []
        assert set(result.missing_keys) == tied, type(hf).__name__
        if tied:
            assert hf.vocab_projector.weight is hf.distilbert.embeddings.word_embeddings.weight
        with torch.no_grad():
            got = ours_model(ids, mask)
            want = hf(input_ids=ids, attention_mask=mask).logits
        real = mask.bool() if got.dim() == 3 else slice(None)
        diff = (got - want)[real].abs().max().item()
        assert diff < ATOL, f"{type(hf).__name__}: max difference {diff:.2e}"


def test_task_layer_names_and_dropouts_are_transformers() -> None:
    config = DistilBertConfig.from_dict(SMALL)
    head = SequenceClassifier(config, 2, family=DISTILBERT)
    assert head.task_module_names == ["pre_classifier", "dropout", "classifier"]
    assert head.dropout.p == 0.2  # seq_classif_dropout, not dropout
    assert TokenClassifier(config, 2, family=DISTILBERT).dropout.p == 0.1
    assert SequenceClassifier(config, 2, dropout=0.0, family=DISTILBERT).dropout.p == 0.0


def grads(model: torch.nn.Module, out: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    (out * weights).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_first_token_path_and_checkpointing_give_the_same_outputs_and_gradients() -> None:
    # Training mode with dropout off, so every path computes the same function.
    seed = torch.seed() % 10_000
    torch.manual_seed(seed)
    model = DistilBertModel(DistilBertConfig.from_dict({**SMALL, "dropout": 0.0, "attention_dropout": 0.0}))
    nudge(model, seed)
    model.train()
    ids, mask = batch(1000, [7, 19, 1, 4], seed)
    w = torch.randn(4, 19, 80, generator=torch.Generator().manual_seed(seed))
    full = model(ids, mask)[0]
    want = grads(model, full, w)
    first = model.pooled_output(ids, mask)
    got_first = grads(model, first, w[:, 0])
    want_first = grads(model, model(ids, mask)[0][:, 0], w[:, 0])
    torch.testing.assert_close(first, full[:, 0], rtol=0, atol=ATOL, msg=f"seed {seed}")
    assert got_first.keys() == want_first.keys()
    for name in want_first:
        # The two paths sum in different orders: fp32 rounding of a gradient scales with its
        # largest entries (seed 9166: 1.9e-6 on entries up to 5.2), so atol does too.
        scale = max(1.0, float(want_first[name].abs().max()))
        torch.testing.assert_close(
            got_first[name], want_first[name], rtol=1e-4, atol=1e-6 * scale, msg=f"{name}, seed {seed}"
        )
    model.gradient_checkpointing = True
    again = model(ids, mask)[0]
    got = grads(model, again, w)
    torch.testing.assert_close(again, full, rtol=0, atol=0)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7, msg=name)


def test_checkpointing_replays_dropout() -> None:
    torch.manual_seed(5)
    model = DistilBertModel(DistilBertConfig.from_dict(SMALL)).train()
    ids, mask = batch(1000, [6, 3], seed=5)
    runs = []
    for checkpointing in (False, True):
        model.gradient_checkpointing = checkpointing
        torch.manual_seed(6)
        runs.append(grads(model, model(ids, mask)[0], torch.ones(1)))
    for name in runs[0]:
        torch.testing.assert_close(runs[1][name], runs[0][name], rtol=1e-5, atol=1e-7, msg=name)


def test_generic_names_map_onto_distilbert_fields() -> None:
    c = DistilBertConfig.from_dict(
        {**SMALL, "hidden_dropout_prob": 0.3, "attention_probs_dropout_prob": 0.05}
    )
    assert (c.dropout, c.attention_dropout) == (0.3, 0.05)
    assert (c.hidden_dropout_prob, c.attention_probs_dropout_prob) == (0.3, 0.05)
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads) == (80, 3, 5)
    assert c.max_tokens == c.max_position_embeddings == 64
    model = DistilBertModel(c)
    assert model.embeddings.dropout.p == 0.3
    assert model.layers[0].attention.dropout_p == 0.05
    assert len(model.layers) == 3 and model.pooler is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n_heads": 7}, "n_heads"),
        ({"activation": "swishy"}, "activation"),
        ({"dim": "80"}, "dim"),
        ({"dropout": 1.5}, "dropout"),
        ({"seq_classif_dropout": -0.1}, "seq_classif_dropout"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"pad_token_id": 5000}, "pad_token_id"),
    ],
)
def test_bad_config_names_the_source_and_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^my/config.json: .*{field}"):
        DistilBertConfig.from_dict({**SMALL, **change}, "my/config.json")


def test_to_hf_dict_round_trips_through_transformers() -> None:
    c = DistilBertConfig.from_dict(
        {**SMALL, "sinusoidal_pos_embds": True, "activation": "relu", "dropout": 0.2}
    )
    d = c.to_hf_dict()
    assert "unpad" not in d and d["model_type"] == "distilbert"
    hf = transformers.AutoConfig.for_model(**d)
    assert type(hf).__name__ == "DistilBertConfig"
    assert DistilBertConfig.from_dict(hf.to_dict()) == c
    for key, value in d.items():
        assert getattr(hf, key) == value, key


def test_loading_accepts_bare_keys_and_names_missing_or_misshapen_weights() -> None:
    ours, hf = pair(SMALL, seed=7)
    state = {f"distilbert.{k}": v for k, v in hf.state_dict().items()}
    state["vocab_projector.bias"] = torch.zeros(3)
    assert ours.load_hf_state_dict(state) == ["vocab_projector.bias"]
    bare = hf.state_dict()
    del bare["transformer.layer.2.ffn.lin2.weight"]
    with pytest.raises(ValueError, match=r"^ckpt: .*transformer\.layer\.2\.ffn\.lin2\.weight"):
        ours.load_hf_state_dict(bare, "ckpt")
    bad = dict(hf.state_dict(), **{"embeddings.position_embeddings.weight": torch.zeros(32, 80)})
    with pytest.raises(
        ValueError, match=r"^ckpt: embeddings\.position_embeddings\.weight has shape \(32, 80\)"
    ):
        ours.load_hf_state_dict(bad, "ckpt")


def test_our_state_dict_loads_into_transformers_base_model_as_is() -> None:
    ours = DistilBertModel(DistilBertConfig.from_dict(SMALL))
    hf = transformers.AutoModel.from_config(hf_config(SMALL))
    hf.load_state_dict(ours.state_dict(), strict=True)
