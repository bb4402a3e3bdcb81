"""Masked-language-model inputs: BERT's 80/10/10 masking, token by token or whole words."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fastbert.config import FinetuneConfig
from fastbert.text.tokenizer import Tokenizer
from fastbert.training.loss import IGNORE

__all__ = ["mask_tokens", "mlm_spec"]


def mask_tokens(
    batch: dict[str, Tensor],
    *,
    vocab_size: int,
    mask_id: int,
    special_ids: Tensor,
    probability: float,
    whole_word: bool,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """BERT's masking: select ``probability`` of the real tokens (whole words when asked);
    of those, 80% become the mask token (``mask_id``), 10% a random token, 10% stay. Returns (inputs, labels)."""
    ids = batch["input_ids"]
    real = batch["attention_mask"].bool() & ~torch.isin(ids, special_ids)
    if whole_word:
        words = batch["word_ids"]
        # One draw per (row, word); every sub-token of a drawn word is selected.
        draw = torch.rand(
            ids.shape[0], int(words.max().item()) + 1 if words.numel() else 1, generator=generator
        )
        selected = torch.gather(draw, 1, words.clamp_min(0)) < probability
        selected &= real & (words >= 0)
    else:
        selected = (torch.rand(ids.shape, generator=generator) < probability) & real
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[selected & (roll < 0.8)] = mask_id
    random_tokens = torch.randint(vocab_size, ids.shape, generator=generator)
    swap = selected & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = random_tokens[swap]
    return inputs, labels


def mlm_spec(tok: Tokenizer, cfg: FinetuneConfig) -> dict[str, Any]:
    """`mask_tokens`' keyword arguments for a tokenizer's vocabulary and the config's MLM settings.

    The mask token and the special tokens are the tokenizer's own (`Tokenizer.mask_token_id`,
    `Tokenizer.all_special_ids`): ``[MASK]`` and ``[CLS] [SEP] [PAD] [UNK]`` for BERT, ``<mask>``
    and ``<s> </s> <pad> <unk>`` for RoBERTa and XLM-R, ``[MASK]`` at the end of ModernBERT's
    vocabulary, and so on. Special tokens are never selected for masking."""
    mask_id = tok.mask_token_id
    if mask_id is None:
        where = f"the tokenizer at {tok.source}" if tok.source is not None else "this tokenizer"
        raise ValueError(
            f"MLM needs a mask token, and {where} has none: no mask_token in tokenizer_config.json or "
            "special_tokens_map.json that is in its vocabulary, and neither [MASK] nor <mask> in it"
        )
    return {
        "vocab_size": tok.vocab_size,
        "mask_id": mask_id,
        "special_ids": torch.tensor(tok.all_special_ids, dtype=torch.int64),
        "probability": cfg.mlm_probability,
        "whole_word": cfg.whole_word_masking,
    }
