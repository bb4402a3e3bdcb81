"""Tiny random checkpoints of every encoder family, written by transformers itself, with a tokenizer
of the family's kind trained here (`family_tokenizers.write_tokenizer`). Nothing is downloaded.

``write_checkpoint(folder, model_type)`` builds the family's transformers config at a tiny size
(2-3 layers, hidden 64), saves ``<Family>ForMaskedLM`` with random weights as
``save_pretrained`` does (so the folder has an MLM head, as released checkpoints do), and the
tokenizer beside it. They check mechanics, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from family_tokenizers import write_tokenizer

__all__ = [
    "MODEL_TYPES",
    "TOKENIZER_STYLE",
    "added_token_id",
    "hf_config",
    "vocab_size_of",
    "write_checkpoint",
]

#: The tokenizer kind each family ships with.
TOKENIZER_STYLE = {
    "bert": "bert-wordpiece",
    "roberta": "roberta-bpe",
    "xlm-roberta": "xlmr-unigram",
    "distilbert": "bert-wordpiece",
    "electra": "bert-wordpiece",
    "deberta-v2": "deberta-unigram",
    "modernbert": "modernbert-bpe",
}
#: The families beside BERT (whose own tests use the packaged MiniLM).
MODEL_TYPES = ("roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2", "modernbert")

_TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}


def hf_config(model_type: str, vocab_size: int, specials: dict[str, int], **overrides: Any) -> Any:
    """The transformers config of a tiny ``model_type`` model (``specials``: the tokenizer's ids)."""
    from transformers import AutoConfig

    pad = specials["pad"]
    fields: dict[str, Any]
    if model_type in ("roberta", "xlm-roberta"):
        # Positions start after the padding index: 2 + 128 of them for 128 tokens.
        fields = {**_TINY, "max_position_embeddings": 130, "type_vocab_size": 1}
        fields.update(bos_token_id=specials["cls"], eos_token_id=specials["sep"])
    elif model_type == "distilbert":
        fields = {"dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128, "max_position_embeddings": 128}
    elif model_type == "electra":
        fields = {**_TINY, "embedding_size": 32, "max_position_embeddings": 128}
    elif model_type == "deberta-v2":
        fields = {
            **_TINY,
            "max_position_embeddings": 128,
            "relative_attention": True,
            "position_buckets": 16,
            "pos_att_type": ["p2c", "c2p"],
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "position_biased_input": False,
            "type_vocab_size": 0,
        }
    elif model_type == "modernbert":
        fields = {
            **_TINY,
            "num_hidden_layers": 3,
            "intermediate_size": 96,
            "max_position_embeddings": 128,
            "local_attention": 16,
            "global_attn_every_n_layers": 2,
            "cls_token_id": specials["cls"],
            "sep_token_id": specials["sep"],
            "bos_token_id": specials["cls"],
            "eos_token_id": specials["sep"],
        }
    else:
        fields = {**_TINY, "max_position_embeddings": 128}
    fields.update(overrides)
    return AutoConfig.for_model(model_type, vocab_size=vocab_size, pad_token_id=pad, **fields)


def write_checkpoint(folder: Path, model_type: str, seed: int = 0) -> Path:
    """A tiny random ``<Family>ForMaskedLM`` checkpoint and its tokenizer in ``folder``."""
    import torch
    from transformers import AutoModelForMaskedLM

    folder.mkdir(parents=True, exist_ok=True)
    write_tokenizer(folder, TOKENIZER_STYLE[model_type])
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab_size = vocab_size_of(tokenizer)
    specials = {
        role: added_token_id(tokenizer, names)
        for role, names in {
            "pad": ("[PAD]", "<pad>"),
            "cls": ("[CLS]", "<s>"),
            "sep": ("[SEP]", "</s>"),
        }.items()
    }
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(hf_config(model_type, vocab_size, specials))
    model.save_pretrained(folder)
    return folder


def vocab_size_of(tokenizer: dict[str, Any]) -> int:
    """The embedding rows a ``tokenizer.json`` (as a dict) needs: its largest id + 1, added tokens included."""
    vocab = tokenizer["model"]["vocab"]  # {token: id} (WordPiece, BPE) or [[piece, score], ...] (Unigram)
    ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
    ids += [t["id"] for t in tokenizer.get("added_tokens", [])]
    return max(ids) + 1


def added_token_id(tokenizer: dict[str, Any], names: tuple[str, ...]) -> int:
    """The id of the first of ``names`` among a ``tokenizer.json``'s added tokens (``[PAD]`` or ``<pad>``)."""
    for token in tokenizer.get("added_tokens", []):
        if token["content"] in names:
            return int(token["id"])
    raise KeyError(f"none of {names} in the tokenizer's added tokens")
