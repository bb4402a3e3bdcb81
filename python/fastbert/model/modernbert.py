"""ModernBERT (Warner et al. 2024, arXiv:2412.13663): rotary positions, GeGLU, local attention.

Shapes: ``B`` batch, ``L`` padded length, ``T`` total real tokens in a packed batch, ``H``
hidden size, ``h`` heads, ``d = H / h`` head size, ``R`` rows whose output is wanted.

What differs from BERT (`fastbert.model.bert`), read from transformers'
``models/modernbert/modeling_modernbert.py`` (5.23):

- no position or token-type embeddings: ``tok_embeddings → norm → drop``; positions enter as
  rotary embeddings (RoPE) on q and k, ``base`` ``global_rope_theta`` (160,000) in global layers
  and ``local_rope_theta`` (10,000) in local ones, over the positions within each sequence;
- pre-norm layers: ``x + Wo(attn(attn_norm(x)))`` then ``x + mlp(mlp_norm(x))``, with
  ``attn_norm`` the identity in layer 0 (the embeddings end in a norm), and ``final_norm`` after
  the last layer; LayerNorms and Linears have no biases by default (``norm_bias``,
  ``attention_bias``, ``mlp_bias``); q, k, v come from one fused ``Wqkv``;
- the feed-forward is a GeGLU: ``Wi`` gives ``2 × intermediate_size``, split into ``input`` and
  ``gate``, ``Wo(act(input) · gate)``;
- every ``global_attn_every_n_layers``-th layer (0, 3, 6, …) attends globally; the others attend
  within a sliding window: query ``i`` sees key ``j`` iff ``|i − j| ≤ local_attention // 2``
  (transformers' ``create_bidirectional_sliding_window_mask`` with
  ``sliding_window = local_attention // 2``; its flash-attention path passes ``(64, 64)`` for
  ``local_attention`` 128 too). Here that is ``window=(w, w)``: `fastbert.model.attention`'s
  banded mask on the CPU, ``window_size=(w, w)`` of the Triton kernel on CUDA;
- the task models put ``head`` (``dense → act → norm``) and ``drop`` under the ``classifier``;
  sequence classification reads the first token (``classifier_pooling`` "cls") or the masked
  mean of the last hidden states ("mean", fastbert's ``pooling="mean"``); the MLM decoder is tied
  to ``tok_embeddings`` and has its own bias.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, cast, get_args, get_origin, get_type_hints

import torch
from torch import Tensor, nn

from fastbert.model.activations import ACTIVATIONS
from fastbert.model.attention import Attend, Window, first_query_attention, packed_positions
from fastbert.model.checkpoint import read_config_file
from fastbert.model.dropout import Dropout
from fastbert.model.family import EncoderFamily
from fastbert.model.packed import PackedEncoder

__all__ = [
    "MODERNBERT",
    "ModernBertConfig",
    "ModernBertMaskedLMHead",
    "ModernBertModel",
    "ModernBertSequenceHead",
    "ModernBertTokenHead",
    "apply_rope",
    "rope_cos_sin",
]


GLOBAL, LOCAL = "full_attention", "sliding_attention"


@dataclass
class ModernBertConfig:
    """The fields of a ModernBERT ``config.json`` (transformers' ``ModernBertConfig`` names and
    defaults, answerdotai/ModernBERT-base's sizes) that the model uses."""

    vocab_size: int = 50368
    hidden_size: int = 768
    intermediate_size: int = 1152
    num_hidden_layers: int = 22
    num_attention_heads: int = 12
    #: The GeGLU's activation.
    hidden_activation: str = "gelu"
    max_position_embeddings: int = 8192
    #: std of the truncated-normal init of new task layers (transformers' ``_init_weights``).
    initializer_range: float = 0.02
    #: That init truncates at ± this many std.
    initializer_cutoff_factor: float = 2.0
    norm_eps: float = 1e-5
    norm_bias: bool = False
    pad_token_id: int | None = 50283
    eos_token_id: int | list[int] | None = 50282
    bos_token_id: int | None = 50281
    cls_token_id: int | None = 50281
    sep_token_id: int | None = 50282
    attention_bias: bool = False
    #: Dropout of the attention probabilities and of the attention output (after ``Wo``).
    attention_dropout: float = 0.0
    #: Layers 0, n, 2n, … attend globally (transformers < 5 read only this; 5 writes ``layer_types``).
    global_attn_every_n_layers: int = 3
    #: "full_attention" or "sliding_attention" per layer; empty: from ``global_attn_every_n_layers``.
    layer_types: list[str] = field(default_factory=list)
    #: The local layers' whole window: query ``i`` sees keys ``|i − j| ≤ local_attention // 2``.
    local_attention: int = 128
    global_rope_theta: float = 160000.0
    local_rope_theta: float = 10000.0
    embedding_dropout: float = 0.0
    mlp_bias: bool = False
    mlp_dropout: float = 0.0
    #: Whether the MLM decoder has a bias.
    decoder_bias: bool = True
    #: What transformers' sequence classifier reads: the first token ("cls") or the masked mean.
    classifier_pooling: str = "cls"
    classifier_dropout: float = 0.0
    classifier_bias: bool = False
    classifier_activation: str = "gelu"
    #: transformers' MLM computes logits at labelled positions only (same logits there).
    sparse_prediction: bool = False
    sparse_pred_ignore_index: int = -100
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        if not self.layer_types and self.global_attn_every_n_layers >= 1:
            # As transformers' ModernBertConfig.__post_init__ builds it.
            n = self.global_attn_every_n_layers
            self.layer_types = [LOCAL if i % n else GLOBAL for i in range(self.num_hidden_layers)]

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> ModernBertConfig:
        """A config.json dict (as transformers 4.x or 5.x writes it); raises ``ValueError`` naming
        ``source`` and the field that is wrong."""
        d = dict(d)
        # fastbert's generic dropout override (`fastbert.model.build.build_model`), onto
        # ModernBERT's own fields: "hidden" dropout is the embeddings', the feed-forward's and the
        # task layers' (as BERT's hidden_dropout_prob covers its classifier too).
        if "hidden_dropout_prob" in d:
            for name in ("embedding_dropout", "mlp_dropout", "classifier_dropout"):
                d[name] = d["hidden_dropout_prob"]
        if "attention_probs_dropout_prob" in d:
            d["attention_dropout"] = d["attention_probs_dropout_prob"]
        _read_rope(d, source)
        if d.get("layer_types") is None:  # absent or null: from global_attn_every_n_layers
            d.pop("layer_types", None)
        known = {f.name for f in fields(cls)}
        for name, value in d.items():
            if name in known:
                d[name] = _checked(name, value, source)
        config = cls(**{k: v for k, v in d.items() if k in known})
        _validate(config, source)
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> ModernBertConfig:
        """A ``config.json`` file; raises naming the file when it is missing, not JSON, or wrong."""
        path = Path(path)
        return cls.from_dict(read_config_file(path), str(path))

    # The names heads and training read (`fastbert.model.family.EncoderConfig`).
    @property
    def hidden_dropout_prob(self) -> float:
        """The feed-forward's dropout (``mlp_dropout``)."""
        return self.mlp_dropout

    @property
    def attention_probs_dropout_prob(self) -> float:
        return self.attention_dropout

    @property
    def max_tokens(self) -> int:
        """The longest input the model was trained for (RoPE itself has no table to run out of)."""
        return self.max_position_embeddings

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def window(self) -> Window:
        """The local layers' window ``(left, right)``: ``local_attention // 2`` either side."""
        half = self.local_attention // 2
        return (half, half)

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json that transformers reads back as the same model: the rope thetas as
        ``global_rope_theta``/``local_rope_theta`` (what the Hub's files hold; transformers 5 turns
        them into ``rope_parameters``), ``layer_types`` and ``global_attn_every_n_layers`` both."""
        return {"model_type": "modernbert", **asdict(self)}


#: Each field's type, for `_checked`.
_FIELD_TYPES: dict[str, Any] = get_type_hints(ModernBertConfig)


def _read_rope(d: dict[str, Any], source: str) -> None:
    """transformers 5 writes the thetas as ``rope_parameters``; only plain RoPE is implemented."""
    if d.get("rope_scaling") is not None:
        raise ValueError(f"{source}: rope_scaling={d['rope_scaling']!r} is not supported (only plain RoPE)")
    params = d.get("rope_parameters")
    if params is None:
        return
    if not isinstance(params, dict):
        raise ValueError(f"{source}: rope_parameters must be a dict, not {params!r}")
    for layer_type, name in ((GLOBAL, "global_rope_theta"), (LOCAL, "local_rope_theta")):
        p = params.get(layer_type)
        if p is None:
            continue
        rope_type = p.get("rope_type", p.get("type", "default"))
        if rope_type != "default":
            raise ValueError(
                f"{source}: rope_parameters[{layer_type!r}].rope_type={rope_type!r} is not supported "
                "(only 'default')"
            )
        if "rope_theta" in p:
            d[name] = p["rope_theta"]


def _checked(name: str, value: Any, source: str) -> Any:
    """``value`` if it has the field's type (an int where a float is wanted is taken), else raise."""
    hint = _FIELD_TYPES[name]
    options = get_args(hint) if get_origin(hint) is UnionType else (hint,)
    for t in options:
        if _fits(value, t):
            return float(value) if t is float else value
    wanted = " or ".join(getattr(t, "__name__", str(t)) if get_origin(t) is None else str(t) for t in options)
    raise ValueError(f"{source}: {name}={value!r} must be {wanted.replace('NoneType', 'null')}")


def _fits(value: Any, t: Any) -> bool:
    if get_origin(t) is list:
        (item,) = get_args(t)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if t is type(None):
        return value is None
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)


def _validate(c: ModernBertConfig, source: str) -> None:
    def fail(message: str) -> None:
        raise ValueError(f"{source}: {message}")

    for name in (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "max_position_embeddings",
    ):
        if getattr(c, name) < 1:
            fail(f"{name}={getattr(c, name)} must be at least 1")
    if c.num_hidden_layers < 0:
        fail(f"num_hidden_layers={c.num_hidden_layers} must not be negative")
    if c.hidden_size % c.num_attention_heads:
        fail(f"hidden_size {c.hidden_size} is not a multiple of num_attention_heads {c.num_attention_heads}")
    if c.head_size % 2:
        fail(f"hidden_size / num_attention_heads = {c.head_size} must be even (RoPE rotates pairs)")
    for name in ("hidden_activation", "classifier_activation"):
        if getattr(c, name) not in ACTIVATIONS:
            fail(f"{name}={getattr(c, name)!r} is not one of {', '.join(sorted(ACTIVATIONS))}")
    if c.classifier_pooling not in ("cls", "mean"):
        fail(f"classifier_pooling={c.classifier_pooling!r} is not 'cls' or 'mean'")
    if c.global_attn_every_n_layers < 1:
        fail(f"global_attn_every_n_layers={c.global_attn_every_n_layers} must be at least 1")
    if c.local_attention < 0:
        fail(f"local_attention={c.local_attention} must not be negative")
    if len(c.layer_types) != c.num_hidden_layers or not set(c.layer_types) <= {GLOBAL, LOCAL}:
        fail(
            f"layer_types={c.layer_types!r} must name {c.num_hidden_layers} layers (num_hidden_layers), "
            f"each {GLOBAL!r} or {LOCAL!r}"
        )
    for name in ("embedding_dropout", "mlp_dropout", "attention_dropout", "classifier_dropout"):
        if not 0.0 <= getattr(c, name) < 1.0:
            fail(f"{name}={getattr(c, name)} must be in [0, 1)")
    if c.pad_token_id is not None and not 0 <= c.pad_token_id < c.vocab_size:
        fail(f"pad_token_id={c.pad_token_id} must be a token id below vocab_size {c.vocab_size}")


def _layer_norm(c: ModernBertConfig) -> nn.LayerNorm:
    return nn.LayerNorm(c.hidden_size, eps=c.norm_eps, bias=c.norm_bias)


# ---------------------------------------------------------------------------- rotary positions
def rope_cos_sin(positions: Tensor, theta: float, head_size: int) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotation angles, each (T, d) fp32, for positions (T,).

    As transformers' ``ModernBertRotaryEmbedding`` (default rope type): frequencies
    ``θ^(−2i/d)``, the angle table repeated for both halves. Computed here per batch, in fp32,
    rather than kept in a buffer: ``model.half()`` would round a buffer's frequencies."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_size, 2, dtype=torch.float) / head_size))  # (d/2,)
    freqs = positions[:, None].float() * inv_freq.to(positions.device)  # (T, d/2)
    angles = torch.cat((freqs, freqs), dim=-1)  # (T, d)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` (N, ..., d) by the angles of its row: cos, sin (N, d). In fp32 (as transformers),
    returned in x's dtype: ``x·cos + rotate_half(x)·sin`` with ``rotate_half(x) = (−x₂, x₁)``."""
    shape = (cos.shape[0],) + (1,) * (x.dim() - 2) + (cos.shape[1],)
    cos, sin = cos.view(shape), sin.view(shape)  # (N, 1…, d)
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)  # (N, ..., d/2) each
    rotated = torch.cat((-x2, x1), dim=-1)  # (N, ..., d)
    return (xf * cos + rotated * sin).to(x.dtype)


# ---------------------------------------------------------------------------- encoder
class ModernBertEmbeddings(nn.Module):
    def __init__(self, c: ModernBertConfig) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.norm = _layer_norm(c)
        self.drop = Dropout(c.embedding_dropout)

    @property
    def word_embeddings(self) -> nn.Embedding:
        """``tok_embeddings`` under the name heads use (`fastbert.model.family.Encoder`); a property,
        so that the state dict holds it once, under transformers' name."""
        return self.tok_embeddings

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.drop(self.norm(self.tok_embeddings(input_ids)))  # (...,) -> (..., H)


class ModernBertAttention(nn.Module):
    def __init__(self, c: ModernBertConfig) -> None:
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.head_size = c.head_size
        self.Wqkv = nn.Linear(c.hidden_size, 3 * c.hidden_size, bias=c.attention_bias)
        self.Wo = nn.Linear(c.hidden_size, c.hidden_size, bias=c.attention_bias)
        self.out_drop = Dropout(c.attention_dropout)
        self.dropout_p = c.attention_dropout


class ModernBertMLP(nn.Module):
    """GeGLU: ``Wo(drop(act(input) · gate))`` with ``input, gate = Wi(x).chunk(2)``."""

    def __init__(self, c: ModernBertConfig) -> None:
        super().__init__()
        self.Wi = nn.Linear(c.hidden_size, 2 * c.intermediate_size, bias=c.mlp_bias)
        self.act = ACTIVATIONS[c.hidden_activation]
        self.drop = Dropout(c.mlp_dropout)
        self.Wo = nn.Linear(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)

    def forward(self, x: Tensor) -> Tensor:
        inp, gate = self.Wi(x).chunk(2, dim=-1)  # (..., I) each
        return self.Wo(self.drop(self.act(inp) * gate))  # (..., H)


class ModernBertEncoderLayer(nn.Module):
    def __init__(self, c: ModernBertConfig, index: int) -> None:
        super().__init__()
        # Layer 0 reads the embeddings, which end in a LayerNorm already.
        self.attn_norm: nn.Module = nn.Identity() if index == 0 else _layer_norm(c)
        self.attn = ModernBertAttention(c)
        self.mlp_norm = _layer_norm(c)
        self.mlp = ModernBertMLP(c)
        #: A sliding-window layer (else global).
        self.local = c.layer_types[index] == LOCAL

    def forward(
        self, x: Tensor, attend: Attend, cos: Tensor, sin: Tensor, rows: Tensor | None = None
    ) -> Tensor:
        # x: (T, H) packed; cos, sin: (T, d) rotary angles of each token's position.
        # rows: (R,) packed indices of the only tokens whose output is wanted (each sequence's
        # first token, for a last layer under cls pooling): keys and values still come from every
        # token, queries, attention output and feed-forward from R rows only.
        a = self.attn
        qkv = a.Wqkv(self.attn_norm(x)).view(x.shape[0], 3, a.num_heads, a.head_size)  # (T, 3, h, d)
        if rows is None:
            q, k = apply_rope(qkv[:, :2], cos, sin).unbind(1)  # (T, h, d) each, one rotation for both
            x_out = x  # (T, H)
        else:
            q = apply_rope(qkv[rows, 0], cos[rows], sin[rows])  # (R, h, d)
            k = apply_rope(qkv[:, 1], cos, sin)  # (T, h, d)
            x_out = x[rows]  # (R, H)
        v = qkv[:, 2]  # (T, h, d)
        p = a.dropout_p if self.training else 0.0
        ctx = attend(q, k, v, p).reshape(x_out.shape)  # (R or T, H)
        x = x_out + a.out_drop(a.Wo(ctx))  # (R or T, H)
        return x + self.mlp(self.mlp_norm(x))  # (R or T, H)


class ModernBertModel(PackedEncoder):
    """The encoder, with the module names of ``transformers.ModernBertModel`` (state dicts load as
    they are; its rotary embedding holds only non-persistent buffers, recomputed here)."""

    hf_prefix = "model."

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = ModernBertEmbeddings(config)
        self.layers = nn.ModuleList(
            ModernBertEncoderLayer(config, i) for i in range(config.num_hidden_layers)
        )
        self.final_norm = _layer_norm(config)

    def forward_packed(
        self,
        input_ids: Tensor,
        cu_seqlens: Tensor,
        max_seqlen: int,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        *,
        first_token_only: bool = False,
    ) -> Tensor:
        """input_ids: (T,) packed; cu_seqlens: (B+1,) int32; token_type_ids are ignored (ModernBERT
        has none). Returns hidden states (T, H), or with ``first_token_only`` those of each
        sequence's first token, (B, H) (see `PackedEncoder.pooled_output`)."""
        c = self.config
        if position_ids is None:
            position_ids = packed_positions(cu_seqlens, input_ids.numel())  # (T,)
        x = self.embeddings(input_ids)  # (T, H)
        rope = {
            False: rope_cos_sin(position_ids, c.global_rope_theta, c.head_size),  # (T, d) twice
            True: rope_cos_sin(position_ids, c.local_rope_theta, c.head_size),
        }
        # A window as wide as the longest sequence masks nothing: the local layers then share the
        # global layers' attention (no band to build on the CPU, no window for the kernel).
        window = c.window if max_seqlen - 1 > min(c.window) else None
        attend_global = self.attention_for(cu_seqlens, max_seqlen)
        attend = {
            False: attend_global,
            True: attend_global
            if window is None
            else self.attention_for(cu_seqlens, max_seqlen, window=window),
        }
        layers = [cast(ModernBertEncoderLayer, layer) for layer in self.layers]
        last = layers.pop() if first_token_only and layers else None
        for layer in layers:
            x = self.run_layer(layer, x, attend[layer.local], *rope[layer.local], None)  # (T, H)
        if first_token_only:
            first = cu_seqlens[:-1].long()  # (B,) packed row of each sequence's first token
            if last is None:  # a model without layers
                x = x[first]  # (B, H)
            else:
                band = window if last.local else None
                attend_first = first_query_attention(cu_seqlens, max_seqlen, window=band)
                x = self.run_layer(last, x, attend_first, *rope[last.local], first)  # (B, H)
        return self.final_norm(x)  # (T or B, H)


# ---------------------------------------------------------------------------- task layers
def new_linear(
    c: ModernBertConfig, in_features: int, out_features: int, std: float, bias: bool = True
) -> nn.Linear:
    """A new task layer as transformers' ``ModernBertPreTrainedModel._init_weights`` makes it:
    weights from a normal truncated at ± ``initializer_cutoff_factor`` std, zero bias."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    cutoff = c.initializer_cutoff_factor * std
    nn.init.trunc_normal_(layer.weight, mean=0.0, std=std, a=-cutoff, b=cutoff)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class ModernBertPredictionHead(nn.Module):
    """``dense → act → norm``, the first task layer of every ModernBERT task model."""

    def __init__(self, c: ModernBertConfig) -> None:
        super().__init__()
        out_std = c.initializer_range / math.sqrt(2.0 * c.num_hidden_layers) if c.num_hidden_layers else 0.02
        self.dense = new_linear(c, c.hidden_size, c.hidden_size, out_std, bias=c.classifier_bias)
        self.act = ACTIVATIONS[c.classifier_activation]
        self.norm = _layer_norm(c)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.act(self.dense(x)))  # (..., H)


class ModernBertSequenceHead(nn.Module):
    """``ModernBertForSequenceClassification`` over the pooled vector: head → drop → classifier.

    The vector is the first token's last hidden state under fastbert's ``pooling="cls"``
    (transformers' ``classifier_pooling`` "cls"), or the masked mean under ``pooling="mean"``
    (its "mean"); both are after ``final_norm``, as in transformers."""

    def __init__(self, c: ModernBertConfig, num_labels: int, dropout: float | None = None) -> None:
        super().__init__()
        self.head = ModernBertPredictionHead(c)
        self.drop = Dropout(c.classifier_dropout if dropout is None else dropout)
        self.classifier = new_linear(c, c.hidden_size, num_labels, c.hidden_size**-0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.drop(self.head(x)))  # (B, H) -> (B, n) or (B, L, H) -> (B, L, n)


class ModernBertTokenHead(ModernBertSequenceHead):
    """``ModernBertForTokenClassification``: head → drop → classifier on every token."""


class ModernBertMaskedLMHead(nn.Module):
    """``ModernBertForMaskedLM``: head → decoder, the decoder's weight tied to ``tok_embeddings``
    (transformers' ``_tied_weights_keys``), its bias its own (``decoder_bias``)."""

    def __init__(self, c: ModernBertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.head = ModernBertPredictionHead(c)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=c.decoder_bias)
        self.decoder.weight = word_embeddings.weight
        if self.decoder.bias is not None:
            nn.init.zeros_(self.decoder.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.head(hidden))  # (B, L, H) -> (B, L, vocab)


MODERNBERT = EncoderFamily(
    name="ModernBERT",
    model_types={"modernbert": "ModernBert"},
    prefix="model",
    read_config=ModernBertConfig.from_dict,
    build=lambda config, pooler: ModernBertModel(config),
    sequence_head=ModernBertSequenceHead,
    token_head=ModernBertTokenHead,
    masked_lm_head=ModernBertMaskedLMHead,
    # The fused q, k, v projection ("Wo" would also match the feed-forward's output layer).
    lora_targets=("Wqkv",),
)
