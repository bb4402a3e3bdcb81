"""Our ELECTRA encoder and task layers against transformers' (fp32, CPU, eval): within 1e-5.

Three shapes: electra-base-discriminator's (embedding_size = hidden_size, so no projection),
electra-small's (embeddings 128 wide projected to 256: ELECTRA's own path) and an odd one (3
layers, 5 heads, hidden 80, embeddings 40). Batches are right-padded with mixed lengths, the
longest the model takes (``max_tokens``) and 1 among them; only real positions are compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fastbert.model.electra import ELECTRA, ElectraConfig, ElectraModel
from fastbert.model.heads import MaskedLM, SequenceClassifier, TokenClassifier

transformers = pytest.importorskip("transformers")

# The vocabulary is cut to 1,000 rows everywhere: it changes no computation, only memory.
BASE = dict(  # google/electra-base-discriminator's config.json
    vocab_size=1000,
    embedding_size=768,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
)
SMALL = dict(  # google/electra-small-discriminator's: embeddings 128 wide, layers 256
    vocab_size=1000,
    embedding_size=128,
    hidden_size=256,
    num_hidden_layers=12,
    num_attention_heads=4,
    intermediate_size=1024,
)
ODD = dict(
    vocab_size=1000,
    embedding_size=40,
    hidden_size=80,
    num_hidden_layers=3,
    num_attention_heads=5,
    intermediate_size=160,
)


def hf_config(shape: dict[str, Any], **extra: Any) -> Any:
    return transformers.ElectraConfig(**shape, **extra)


def batch(vocab: int, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (B, max(lengths)) ids, mask and token types (types 0/1 on real tokens only)."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = torch.randint(5, vocab, (len(lengths), width), generator=g) * mask
    types = (torch.rand(len(lengths), width, generator=g) < 0.4).long() * mask
    return ids, mask, types


def pair(shape: dict[str, Any], attn: str = "eager") -> tuple[ElectraModel, Any]:
    """transformers' randomly initialised ElectraModel and ours with its weights, both in eval mode."""
    torch.manual_seed(0)
    hc = hf_config(shape)
    hf = transformers.AutoModel.from_config(hc, attn_implementation=attn).eval()
    ours = ElectraModel(ElectraConfig.from_dict(hc.to_dict())).eval()
    assert ours.load_hf_state_dict(hf.state_dict(), "hf") == []
    return ours, hf


def max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    d = (a - b).abs()
    return float((d[mask.bool()] if mask is not None else d).max())


# ---------------------------------------------------------------------------- the encoder
@pytest.mark.parametrize(
    ("shape", "lengths", "attn", "padded_too"),
    [
        # The 12-layer shapes are the slow ones on 2 cores: three rows, the packed path only.
        pytest.param(BASE, [-1, 1, 7], "sdpa", False, id="base"),
        pytest.param(SMALL, [-1, 1, 7], "eager", False, id="small-projected"),
        pytest.param(ODD, [-1, 1, 2, 33, 7], "eager", True, id="odd-eager"),
        pytest.param(ODD, [5, -1, 1], "sdpa", True, id="odd-sdpa"),
    ],
)
def test_encoder_matches_transformers(
    shape: dict[str, Any], lengths: list[int], attn: str, padded_too: bool
) -> None:
    ours, hf = pair(shape, attn)
    lengths = [ours.config.max_tokens if n == -1 else n for n in lengths]
    ids, mask, types = batch(ours.config.vocab_size, lengths, seed=len(lengths))
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        for unpad in (True, False) if padded_too else (True,):
            ours.config.unpad = unpad
            hidden, pooled = ours(ids, mask, types)
            assert pooled is None
            assert max_diff(hidden, ref, mask) < 1e-5, f"unpad={unpad}"
            # The first-token path (last layer for the first tokens only) equals forward's first token.
            first = ours.pooled_output(ids, mask, types)
            assert max_diff(first, hidden[:, 0]) < 1e-5, f"unpad={unpad}"


def test_projection_exists_only_when_the_widths_differ() -> None:
    assert ElectraModel(ElectraConfig(**ODD)).embeddings_project is not None
    same = ElectraModel(ElectraConfig(**{**ODD, "embedding_size": 80}))
    assert same.embeddings_project is None
    assert not any(k.startswith("embeddings_project") for k in same.state_dict())
    hf = transformers.ElectraModel(hf_config({**ODD, "embedding_size": 80}))
    assert sorted(same.state_dict()) == sorted(hf.state_dict())


def test_first_token_path_matches_the_full_forward_with_gradients() -> None:
    # In training (dropout off, so both paths compute the same function) the first-token path's
    # output and every gradient must equal the full forward's.
    cfg = ElectraConfig(**ODD, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(1)
    model = ElectraModel(cfg).train()
    ids, mask, types = batch(cfg.vocab_size, [19, 1, 7, 12], seed=1)
    weights = torch.randn(4, cfg.hidden_size, generator=torch.Generator().manual_seed(1))

    def grads(out: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        (out * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full = model(ids, mask, types)[0][:, 0]
    want = grads(full)
    first = model.pooled_output(ids, mask, types)
    got = grads(first)
    torch.testing.assert_close(first, full, rtol=0, atol=1e-5)
    assert got.keys() == want.keys()
    assert "embeddings_project.weight" in got
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    # Dropout on: the recomputation must replay the same masks (`PackedEncoder.run_layer`).
    cfg = ElectraConfig(**ODD)
    torch.manual_seed(2)
    model = ElectraModel(cfg).train()
    ids, mask, types = batch(cfg.vocab_size, [17, 3, 9], seed=2)

    def run(checkpointing: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.gradient_checkpointing = checkpointing
        model.zero_grad(set_to_none=True)
        torch.manual_seed(3)
        hidden = model(ids, mask, types)[0]
        (hidden * mask[..., None]).square().sum().backward()
        return hidden.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    out_plain, plain = run(False)
    out_ckpt, ckpt = run(True)
    torch.testing.assert_close(out_ckpt, out_plain, rtol=0, atol=0)
    assert ckpt.keys() == plain.keys() == {n for n, _ in model.named_parameters()}
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


# ---------------------------------------------------------------------------- task layers
def check_loads_into(ours: Any, hf: Any) -> None:
    """Our task model's state dict loads into transformers' as it is (tied keys aside)."""
    state = ours.state_dict()
    tied = ours.tied_keys()
    for key in tied:
        state.pop(key)
    missing, unexpected = hf.load_state_dict(state, strict=not tied)
    assert unexpected == []
    assert set(missing) == tied  # transformers has them tied too: same tensor, loaded once


def take_weights(ours: Any, hf: Any) -> None:
    """transformers' weights into our task model, every key used (tied keys aside).

    For masked LM, whose logits scale with the word embeddings: PyTorch's N(0, 1) embedding
    init gives logits up to 35 and an fp32 rounding difference of 1.3e-5 (4e-7 relative);
    transformers' N(0, 0.02), the scale of real checkpoints' embeddings, keeps them near 1."""
    tied = ours.tied_keys()
    state = {k: v for k, v in hf.state_dict().items() if k not in tied}
    missing, unexpected = ours.load_state_dict(state, strict=not tied)
    assert unexpected == [] and set(missing) == tied


@pytest.mark.parametrize("shape", [ODD, {**ODD, "embedding_size": 80}], ids=["projected", "same-width"])
def test_sequence_classifier_matches_transformers(shape: dict[str, Any]) -> None:
    torch.manual_seed(4)
    ours = SequenceClassifier(ElectraConfig(**shape), 3, family=ELECTRA).eval()
    hf = transformers.AutoModelForSequenceClassification.from_config(
        hf_config(shape, num_labels=3), attn_implementation="eager"
    ).eval()
    assert ours.task_module_names == ["classifier"]
    check_loads_into(ours, hf)
    ids, mask, types = batch(1000, [512, 1, 9, 30], seed=4)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        assert max_diff(ours(ids, mask, types), ref) < 1e-5


def test_token_classifier_matches_transformers() -> None:
    torch.manual_seed(5)
    ours = TokenClassifier(ElectraConfig(**ODD), 4, family=ELECTRA).eval()
    hf = transformers.AutoModelForTokenClassification.from_config(
        hf_config(ODD, num_labels=4), attn_implementation="eager"
    ).eval()
    assert ours.task_module_names == ["dropout", "classifier"]
    check_loads_into(ours, hf)
    ids, mask, types = batch(1000, [512, 1, 9, 30], seed=5)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        assert max_diff(ours(ids, mask, types), ref, mask) < 1e-5


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_masked_lm_matches_transformers(tie: bool) -> None:
    torch.manual_seed(6)
    ours = MaskedLM(ElectraConfig(**ODD, tie_word_embeddings=tie), family=ELECTRA).eval()
    hf = transformers.AutoModelForMaskedLM.from_config(
        hf_config(ODD, tie_word_embeddings=tie), attn_implementation="eager"
    ).eval()
    assert ours.task_module_names == ["generator_predictions", "generator_lm_head"]
    word_embeddings = ours.encoder.embeddings.word_embeddings.weight
    assert (ours.generator_lm_head.weight is word_embeddings) is tie
    assert ours.tied_keys() == ({"generator_lm_head.weight"} if tie else set())
    take_weights(ours, hf)
    check_loads_into(ours, hf)
    assert (hf.generator_lm_head.weight is hf.electra.embeddings.word_embeddings.weight) is tie
    ids, mask, types = batch(1000, [512, 1, 9], seed=6)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        assert max_diff(ours(ids, mask, types), ref, mask) < 1e-5


def test_saved_masked_lm_loads_with_from_pretrained(tmp_path: Path) -> None:
    # What fastbert.io writes: config.json from to_hf_dict, the weights without tied copies.
    from safetensors.torch import save_file

    torch.manual_seed(7)
    cfg = ElectraConfig(**ODD)
    ours = MaskedLM(cfg, family=ELECTRA).eval()
    take_weights(ours, transformers.AutoModelForMaskedLM.from_config(hf_config(ODD)))
    hf_dict = {**cfg.to_hf_dict(), "architectures": [ELECTRA.class_name("electra", "mlm")]}
    (tmp_path / "config.json").write_text(json.dumps(hf_dict))
    state = {k: v.contiguous() for k, v in ours.state_dict().items() if k not in ours.tied_keys()}
    save_file(state, str(tmp_path / "model.safetensors"))
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert type(hf).__name__ == "ElectraForMaskedLM"
    ids, mask, types = batch(1000, [40, 1, 9], seed=7)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        assert max_diff(ours(ids, mask, types), ref, mask) < 1e-5


def test_task_dropout_falls_back_as_transformers_does() -> None:
    cfg = ElectraConfig(**ODD, hidden_dropout_prob=0.2)
    assert SequenceClassifier(cfg, 2, family=ELECTRA).classifier.dropout.p == 0.2
    cfg.classifier_dropout = 0.3
    assert SequenceClassifier(cfg, 2, family=ELECTRA).classifier.dropout.p == 0.3
    assert TokenClassifier(cfg, 2, family=ELECTRA).dropout.p == 0.3
    assert TokenClassifier(cfg, 2, dropout=0.05, family=ELECTRA).dropout.p == 0.05


# ---------------------------------------------------------------------------- config and loading
def test_hf_checkpoint_keys_load_with_or_without_prefix() -> None:
    torch.manual_seed(8)
    hf = transformers.ElectraForPreTraining(hf_config(ODD))  # what google/electra-*-discriminator saves
    ours = ElectraModel(ElectraConfig(**ODD))
    unused = ours.load_hf_state_dict(hf.state_dict())
    assert unused and all(k.startswith("discriminator_predictions.") for k in unused)
    bare = {k.removeprefix("electra."): v for k, v in hf.electra.state_dict().items()}
    assert ElectraModel(ElectraConfig(**ODD)).load_hf_state_dict(bare) == []
    torch.testing.assert_close(ours.state_dict(), hf.electra.state_dict())


def test_loading_errors_name_the_source_and_the_weights() -> None:
    same_width = transformers.ElectraModel(hf_config({**ODD, "embedding_size": 80})).state_dict()
    with pytest.raises(ValueError, match=r"ckpt: checkpoint lacks encoder weights embeddings_project"):
        ElectraModel(ElectraConfig(**ODD)).load_hf_state_dict(same_width, "ckpt")
    wider = transformers.ElectraModel(hf_config({**ODD, "embedding_size": 48})).state_dict()
    with pytest.raises(ValueError, match=r"ckpt: embeddings\.word_embeddings\.weight has shape \(1000, 48\)"):
        ElectraModel(ElectraConfig(**ODD)).load_hf_state_dict(wider, "ckpt")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_act": "swish-ish"}, "hidden_act"),
        ({"num_attention_heads": 3}, "num_attention_heads"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"embedding_size": 0}, "embedding_size"),
    ],
)
def test_bad_config_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^my/config\.json: .*{field}"):
        ElectraConfig.from_dict({**ODD, **change}, "my/config.json")


def test_config_reads_transformers_and_round_trips() -> None:
    hc = hf_config(SMALL, classifier_dropout=0.25, hidden_act="gelu_new", max_position_embeddings=128)
    cfg = ELECTRA.read_config(hc.to_dict(), "hf")
    assert (cfg.embedding_size, cfg.hidden_size, cfg.classifier_dropout) == (128, 256, 0.25)
    assert cfg.max_tokens == 128
    d = cfg.to_hf_dict()
    assert "unpad" not in d
    back = transformers.AutoConfig.for_model(**d)
    assert type(back).__name__ == "ElectraConfig"
    for key, value in d.items():
        assert getattr(back, key) == value, key
    assert ElectraConfig.from_dict(back.to_dict()) == cfg
    # build_model's dropout override writes BERT's two keys, which are ELECTRA's names too.
    cfg = ELECTRA.read_config({**d, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}, "hf")
    assert cfg.hidden_dropout_prob == cfg.attention_probs_dropout_prob == 0.0


def test_family_record_names_transformers_classes() -> None:
    for task in ("sequence", "token", "mlm"):
        assert hasattr(transformers, ELECTRA.class_name("electra", task))
    model = SequenceClassifier(ElectraConfig(**ODD), 2, family=ELECTRA)
    assert model.encoder.pooler is None
    # LoRA's default targets are Linear layers of every ELECTRA layer (BERT's names).
    for target in ELECTRA.lora_targets:
        found = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] == target]
        assert len(found) == ODD["num_hidden_layers"] and all(isinstance(m, torch.nn.Linear) for m in found)
    assert all(k.startswith(("electra.", "classifier.")) for k in model.state_dict())
