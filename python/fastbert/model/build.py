"""A task model from a checkpoint folder: the family's encoder, the task's head, the strategy.

`build_model` reads ``config.json``, picks the encoder family by its ``model_type``
(`fastbert.model.encoder.FAMILIES`), builds the head the task needs and loads the checkpoint's
weights into the encoder (and, for MLM, its prediction head when it has one). `apply_strategy`
freezes what the fine-tuning strategy says and adds LoRA adapters.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from fastbert.config import FinetuneConfig
from fastbert.model.checkpoint import load_state_dict, read_config
from fastbert.model.encoder import family_of
from fastbert.model.heads import Head, MaskedLM, SequenceClassifier, TokenClassifier
from fastbert.model.lora import add_lora

__all__ = ["apply_strategy", "build_model", "check_max_length", "lora_targets"]

log = logging.getLogger("fastbert")


def build_model(cfg: FinetuneConfig, model_dir: Path, num_labels: int, load_weights: bool = True) -> Head:
    """The head for ``cfg.task`` over the encoder of ``model_dir``, with its weights (``load_weights``)."""
    raw = read_config(model_dir)
    source = str(model_dir / "config.json")
    family = family_of(raw, source)
    if cfg.dropout is not None:
        raw["hidden_dropout_prob"] = raw["attention_probs_dropout_prob"] = cfg.dropout
    config = family.read_config(raw, source)
    head: Head
    if cfg.task == "token":
        head = TokenClassifier(config, num_labels, family=family)
    elif cfg.task == "mlm":
        head = MaskedLM(config, family=family)
    else:
        head = SequenceClassifier(config, num_labels, pooling=cfg.pooling, family=family)
    if load_weights:
        state = load_state_dict(model_dir)
        unused = head.encoder.load_hf_state_dict(state, source=str(model_dir))
        if cfg.task == "mlm":
            _load_mlm_head(head, state, str(model_dir))
        else:
            _load_pretrained_task_layers(head, state)
            if unused:
                log.debug("unused checkpoint weights: %s", unused[:10])
    return head


def _load_pretrained_task_layers(head: Head, state: dict[str, torch.Tensor]) -> None:
    """Task layers the checkpoint holds under the same name and shape, as transformers loads them
    (ModernBERT's ``head``, pre-trained with its MLM decoder; DeBERTa's ``pooler`` in a
    fine-tuned checkpoint), except the ``classifier``: its classes are the new task's."""
    own = head.state_dict()
    found = {
        k: v
        for k, v in state.items()
        if k.split(".", 1)[0] in head.task_module_names
        and not k.startswith("classifier.")
        and k in own
        and own[k].shape == v.shape
    }
    head.load_state_dict(found, strict=False)


def check_max_length(cfg: FinetuneConfig, model_dir: Path) -> None:
    """Refuse a ``max_length`` longer than the model's position embeddings (training took it, and
    prediction on a long text then failed with an IndexError), naming both numbers."""
    config = read_config(model_dir)
    family = family_of(config, str(model_dir / "config.json"))
    encoder_config = family.read_config(config, str(model_dir / "config.json"))
    limit, positions = encoder_config.max_tokens, encoder_config.max_position_embeddings
    if cfg.max_length > limit:
        # RoBERTa's positions start after the padding index: it takes fewer tokens than it has positions.
        reserved = f", of which {family.name} keeps {positions - limit} apart" if positions != limit else ""
        raise ValueError(
            f"max_length {cfg.max_length} is more than the {limit} tokens the model takes "
            f"(max_position_embeddings {positions} in {model_dir / 'config.json'}{reserved}); "
            f"use at most {limit}"
        )


def _load_mlm_head(head: Head, state: dict[str, torch.Tensor], source: str) -> None:
    """Reuse a checkpoint's MLM layers when it has them (``cls.predictions.*``, ``lm_head.*``, ...),
    and say so when it has none: a random head starts far off (MiniLM: loss 9.1, perplexity 9,009
    after an epoch)."""
    tied = head.tied_keys()
    wanted = [k for k in head.state_dict() if k.split(".", 1)[0] in head.task_module_names and k not in tied]
    found = {k: v for k, v in state.items() if k in wanted}
    head.load_state_dict(found, strict=False)
    missing = sorted(set(wanted) - set(found))
    if missing:
        hint = ""
        if (
            any(k.startswith("lm_predictions.") for k in state)
            and "lm_predictions" not in head.task_module_names
        ):
            # DeBERTa-v3's released checkpoints keep their MLM head in the new layout, which
            # transformers reads only under "legacy": false (its default is the old layout).
            hint = '; it has one as lm_predictions.*: set "legacy": false in its config.json to use it'
        log.warning(
            "%s has no masked-language-model head (%s): it starts from random weights, so the first "
            "steps of MLM training mostly fit the head (the decoder is tied to the word embeddings)%s",
            source,
            ", ".join(missing),
            hint,
        )


def lora_targets(model: Head, cfg: FinetuneConfig) -> tuple[str, ...]:
    """The Linear layers that get LoRA adapters: ``cfg.lora_targets``, else the family's default."""
    return cfg.lora_targets or model.family.lora_targets


def apply_strategy(model: Head, cfg: FinetuneConfig) -> None:
    """Freeze what the strategy says; LoRA adds adapters. The head always trains."""
    encoder = model.encoder
    encoder.gradient_checkpointing = cfg.gradient_checkpointing
    if cfg.strategy == "frozen":
        for p in encoder.parameters():
            p.requires_grad_(False)
    elif cfg.strategy == "freeze_lower":
        n_layers = len(encoder.layers)
        if not 0 <= cfg.freeze_layers <= n_layers:
            raise ValueError(f"freeze_layers must be between 0 and {n_layers}, not {cfg.freeze_layers}")
        for p in encoder.embeddings.parameters():
            p.requires_grad_(False)
        for layer in encoder.layers[: cfg.freeze_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)
    elif cfg.strategy == "lora":
        add_lora(model, lora_targets(model, cfg), cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
    if cfg.task == "mlm" and cfg.strategy != "full":
        # The tied decoder is the word embedding matrix (frozen with the encoder); the MLM
        # layers' own parameters train.
        embedding = encoder.embeddings.word_embeddings
        assert isinstance(embedding, torch.nn.Embedding)
        word_embeddings = embedding.weight
        for name in model.task_module_names:
            for p in getattr(model, name).parameters():
                if p is not word_embeddings:
                    p.requires_grad_(True)
