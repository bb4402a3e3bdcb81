"""The config of our DeBERTa-v2 / v3 encoder (`fastbert.model.deberta`): the fields of its
``config.json``, their defaults (transformers') and their checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fastbert.model.activations import ACTIVATIONS
from fastbert.model.checkpoint import read_config_file

__all__ = ["DebertaV2Config"]

_POSITION_TERMS = ("c2p", "p2c")


@dataclass
class DebertaV2Config:
    """The fields of a DeBERTa-v2 / v3 ``config.json`` the model reads; defaults are transformers'.

    ``DebertaV2Config`` declares the first block; the modeling code reads the second with
    ``getattr`` defaults, which are these."""

    vocab_size: int = 128100
    hidden_size: int = 1536
    num_hidden_layers: int = 24
    num_attention_heads: int = 24
    intermediate_size: int = 6144
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    #: 0: no token-type embeddings (DeBERTa-v3), and ``token_type_ids`` are ignored.
    type_vocab_size: int = 0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-7
    #: Disentangled attention with relative positions (true in every released v2 / v3 checkpoint).
    relative_attention: bool = False
    #: Relative distances are clipped to ±this (< 1: ``max_position_embeddings``).
    max_relative_positions: int = -1
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    #: Add absolute position embeddings to the input (false in DeBERTa-v3).
    position_biased_input: bool = True
    #: The relative terms of the attention score: a subset of ["c2p", "p2c"] (or "p2c|c2p").
    pos_att_type: list[str] | None = None
    pooler_dropout: float = 0.0
    pooler_hidden_act: str = "gelu"
    #: Masked-LM head layout: true ``cls.predictions`` (BERT's), false ``lm_predictions.lm_head``.
    legacy: bool = True
    tie_word_embeddings: bool = True

    #: Log-spaced buckets for relative distances (≤ 0: none; 256 in DeBERTa-v3).
    position_buckets: int = -1
    #: "layer_norm": LayerNorm over the relative embeddings; "none": used as they are.
    norm_rel_ebd: str = "none"
    #: Relative embeddings projected by the layer's query_proj / key_proj (else pos_*_proj).
    share_att_key: bool = False
    #: > 0: a convolution (this kernel width) over the embeddings, added after the first layer.
    conv_kernel_size: int = 0
    conv_groups: int = 1
    conv_act: str = "tanh"
    #: Word-embedding width when it differs from hidden_size (projected by ``embed_proj``).
    embedding_size: int | None = None
    pooler_hidden_size: int | None = None
    #: The sequence classifier's dropout (None: hidden_dropout_prob).
    cls_dropout: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> DebertaV2Config:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        terms = values.get("pos_att_type")
        if isinstance(terms, str):  # as DeBERTa-v3's config.json writes it: "p2c|c2p"
            values["pos_att_type"] = [x.strip() for x in terms.lower().split("|")]
        config = cls(**values)
        if config.pooler_hidden_size is None:  # as transformers' DebertaV2Config fills it in
            config.pooler_hidden_size = config.hidden_size
        head_size = d.get("attention_head_size")
        checks = [
            (
                config.hidden_size % config.num_attention_heads == 0,
                "hidden_size",
                f"{config.hidden_size} is not a multiple of num_attention_heads {config.num_attention_heads}",
            ),
            (
                head_size is None or head_size * config.num_attention_heads == config.hidden_size,
                "attention_head_size",
                f"{head_size} times {config.num_attention_heads} heads is not hidden_size "
                f"{config.hidden_size} (transformers' output projection needs it)",
            ),
            (
                all(t in _POSITION_TERMS for t in config.pos_att_type or []),
                "pos_att_type",
                f"{config.pos_att_type!r} may only hold {' and '.join(_POSITION_TERMS)}",
            ),
            (
                all(t in ("none", "layer_norm") for t in config.rel_norms),
                "norm_rel_ebd",
                f"{config.norm_rel_ebd!r} is not 'none' or 'layer_norm'",
            ),
            (
                config.pad_token_id is None or 0 <= config.pad_token_id < config.vocab_size,
                "pad_token_id",
                f"{config.pad_token_id} is not an id of the {config.vocab_size}-token vocabulary",
            ),
            (
                config.conv_kernel_size <= 0 or config.conv_kernel_size % 2 == 1,
                "conv_kernel_size",
                f"{config.conv_kernel_size} is even: its padding would shorten the sequence",
            ),
            (
                config.hidden_size % max(config.conv_groups, 1) == 0 and config.conv_groups >= 1,
                "conv_groups",
                f"{config.conv_groups} does not divide hidden_size {config.hidden_size}",
            ),
        ]
        for name in ("hidden_act", "pooler_hidden_act", "conv_act"):
            value = getattr(config, name)
            checks.append(
                (value in ACTIVATIONS, name, f"{value!r} is not one of {', '.join(sorted(ACTIVATIONS))}")
            )
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"{source}: {name}={why}")
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> DebertaV2Config:
        """A ``config.json`` file; raises naming the file when it is missing, not JSON, or wrong."""
        path = Path(path)
        return cls.from_dict(read_config_file(path), str(path))

    # ------------------------------------------------------------------ derived
    @property
    def max_tokens(self) -> int:
        """The longest input: ``max_position_embeddings`` (the relative span of v3 is sized on it)."""
        return self.max_position_embeddings

    @property
    def attention_terms(self) -> tuple[str, ...]:
        """The relative terms in use, in transformers' order: ("c2p", "p2c") or a part of it."""
        return tuple(t for t in _POSITION_TERMS if t in (self.pos_att_type or []))

    @property
    def rel_norms(self) -> list[str]:
        return [x.strip() for x in self.norm_rel_ebd.lower().split("|")]

    @property
    def relative_span(self) -> int:
        """The largest relative distance told apart (``max_relative_positions``, or the positions)."""
        return (
            self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings
        )

    @property
    def position_span(self) -> int:
        """``S``: half the number of relative embeddings."""
        return self.position_buckets if self.position_buckets > 0 else self.relative_span

    @property
    def word_embedding_size(self) -> int:
        return self.embedding_size or self.hidden_size

    def to_hf_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None or k.endswith("_token_id")}
        return {"model_type": "deberta-v2", **d}
