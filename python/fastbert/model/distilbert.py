"""Our DistilBERT encoder (Sanh et al., 2019), loading Hugging Face ``distilbert`` checkpoints.

Shapes: ``B`` batch, ``L`` padded length, ``T`` total real tokens in a packed batch, ``H``
hidden size (``dim``), ``h`` heads, ``d = H / h`` head size.

DistilBERT is BERT with half the layers and less around them, and other names:

- no token types (``token_type_ids`` are accepted and ignored) and no pooler;
- the embeddings are word + position (a learned table, or with ``sinusoidal_pos_embds`` one
  filled with fixed sinusoids at initialisation, as transformers does), LayerNorm (eps 1e-12)
  and dropout;
- each layer (``transformer.layer.N``) is post-norm like BERT's, but the attention output
  (``out_lin``) has no dropout before its residual; only the feed-forward (``lin1`` → activation
  → ``lin2`` → dropout) has;
- the config names its fields ``dim``, ``n_layers``, ``n_heads``, ``hidden_dim``, ``dropout``,
  ``attention_dropout`` and ``activation``; `DistilBertConfig` serves the `EncoderConfig` names
  as read-only properties over them.

The task layers are transformers': sequence classification runs ``pre_classifier`` → ReLU →
dropout (``seq_classif_dropout``) → ``classifier`` on the first token's last hidden state; token
classification dropout (``dropout``) → ``classifier``; masked LM ``vocab_transform`` → activation
→ ``vocab_layer_norm`` → ``vocab_projector`` (weight tied to the word embeddings, own bias).

As in `fastbert.model.bert`, ``forward`` packs the real tokens (`PackedEncoder`) unless
``config.unpad`` is false; outputs match ``transformers.DistilBertModel`` within 1e-5 in fp32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastbert.model.activations import ACTIVATIONS
from fastbert.model.attention import Attend, packed_positions, padded_attention
from fastbert.model.checkpoint import read_config_file
from fastbert.model.dropout import Dropout
from fastbert.model.family import EncoderFamily
from fastbert.model.packed import PackedEncoder
from fastbert.model.task_layers import dropout_classifier, new_linear

__all__ = [
    "DISTILBERT",
    "DistilBertConfig",
    "DistilBertMaskedLMHead",
    "DistilBertModel",
    "DistilBertSequenceHead",
    "sinusoidal_positions",
]

#: The generic names `fastbert.model.build.build_model` and other families' configs use → the
#: DistilBERT field. transformers' ``attribute_map`` has the first three; the dropout pair is how
#: ``build_model`` overrides dropout in any family.
_ALIASES = {
    "hidden_size": "dim",
    "num_hidden_layers": "n_layers",
    "num_attention_heads": "n_heads",
    "hidden_dropout_prob": "dropout",
    "attention_probs_dropout_prob": "attention_dropout",
}


#: Fields that must be positive integers (``n_layers`` may be 0: an encoder of embeddings only).
_POSITIVE = ("vocab_size", "max_position_embeddings", "n_heads", "dim", "hidden_dim")
_PROBABILITIES = ("dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout")


@dataclass
class DistilBertConfig:
    """The fields of a Hugging Face DistilBERT ``config.json`` (transformers' ``DistilBertConfig``)."""

    vocab_size: int = 30522
    #: Positions the model has, and so the longest input.
    max_position_embeddings: int = 512
    #: Fill the position table with fixed sinusoids at initialisation (transformers then trains
    #: it like a learned one; a checkpoint's table is loaded as it is).
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    #: The hidden size.
    dim: int = 768
    #: The feed-forward's inner size.
    hidden_dim: int = 3072
    #: After the embeddings and the feed-forward, and in the token classifier.
    dropout: float = 0.1
    #: On the attention probabilities.
    attention_dropout: float = 0.1
    #: The feed-forward's and the masked-LM transform's activation.
    activation: str = "gelu"
    #: Standard deviation of new task layers' weights.
    initializer_range: float = 0.02
    #: The question-answering head's dropout (kept for the round trip; fastbert has no QA head).
    qa_dropout: float = 0.1
    #: Between ``pre_classifier`` and ``classifier`` in sequence classification.
    seq_classif_dropout: float = 0.2
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    #: Whether the masked-LM decoder (``vocab_projector``) shares the word embedding matrix.
    tie_word_embeddings: bool = True
    #: Skip padding in every position-wise layer (see `fastbert.model.packed`).
    unpad: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> DistilBertConfig:
        """A config dict (``config.json``); raises ``ValueError`` naming ``source`` and the field.

        The generic names (``hidden_size``, ``hidden_dropout_prob``, ...) are read onto their
        DistilBERT fields and win over them: `fastbert.model.build.build_model` writes the two
        dropout names to override the checkpoint's values."""
        raw = dict(d)
        for generic, own in _ALIASES.items():
            if generic in raw:
                raw[own] = raw.pop(generic)
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in raw.items() if k in known})
        config._check(source)
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> DistilBertConfig:
        """A ``config.json`` file; raises naming the file when it is missing, not JSON, or wrong."""
        path = Path(path)
        return cls.from_dict(read_config_file(path), str(path))

    def _check(self, source: str) -> None:
        for name in (*_POSITIVE, "n_layers"):
            value = getattr(self, name)
            low = 0 if name == "n_layers" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{source}: {name}={value!r} must be an integer ≥ {low}")
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ValueError(f"{source}: {name}={value!r} must be a probability in [0, 1)")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"{source}: activation={self.activation!r} is not one of {', '.join(sorted(ACTIVATIONS))}"
            )
        if self.dim % self.n_heads:
            raise ValueError(f"{source}: dim {self.dim} is not a multiple of n_heads {self.n_heads}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"{source}: pad_token_id={self.pad_token_id} is outside the vocabulary of {self.vocab_size}"
            )

    # The `EncoderConfig` names, over DistilBERT's own.
    @property
    def hidden_size(self) -> int:
        return self.dim

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    @property
    def hidden_dropout_prob(self) -> float:
        return self.dropout

    @property
    def attention_probs_dropout_prob(self) -> float:
        return self.attention_dropout

    @property
    def max_tokens(self) -> int:
        """The longest input the position embeddings allow."""
        return self.max_position_embeddings

    def to_hf_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("unpad")
        return {"model_type": "distilbert", **d}


def sinusoidal_positions(n_pos: int, dim: int) -> Tensor:
    """(n_pos, dim) fixed position table: sin at even columns, cos at odd, wavelengths 2π·10000^(2i/dim).

    Computed in float64 then rounded, as transformers' ``create_sinusoidal_embeddings`` (numpy,
    float64) does, so the two tables agree to the last float32 bit or within one ulp."""
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]  # (n_pos, 1)
    j = torch.arange(dim, dtype=torch.float64)  # (dim,)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)  # (n_pos, dim)
    table = torch.empty(n_pos, dim, dtype=torch.float64)
    table[:, 0::2] = angle[:, 0::2].sin()
    table[:, 1::2] = angle[:, 1::2].cos()
    return table.float()


class Embeddings(nn.Module):
    """word + position → LayerNorm → dropout (transformers' ``Embeddings``: no token types)."""

    def __init__(self, c: DistilBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.dim, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.dim)
        if c.sinusoidal_pos_embds:
            with torch.no_grad():
                self.position_embeddings.weight.copy_(sinusoidal_positions(c.max_position_embeddings, c.dim))
        self.LayerNorm = nn.LayerNorm(c.dim, eps=1e-12)
        self.dropout = Dropout(c.dropout)

    def forward(self, input_ids: Tensor, position_ids: Tensor) -> Tensor:
        # any shape (...,) -> (..., H)
        x = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class DistilBertSelfAttention(nn.Module):
    """q, k, v projections → scaled dot-product attention → ``out_lin`` (no dropout after it)."""

    def __init__(self, c: DistilBertConfig) -> None:
        super().__init__()
        self.n_heads = c.n_heads
        self.head_size = c.dim // c.n_heads
        self.q_lin = nn.Linear(c.dim, c.dim)
        self.k_lin = nn.Linear(c.dim, c.dim)
        self.v_lin = nn.Linear(c.dim, c.dim)
        self.out_lin = nn.Linear(c.dim, c.dim)
        self.dropout_p = c.attention_dropout

    def forward(self, x: Tensor, x_out: Tensor, attend: Attend) -> Tensor:
        # x: (..., H) every token (keys, values); x_out: (..., H) or (R, H) the tokens whose
        # output is wanted (queries).
        heads = (self.n_heads, self.head_size)
        q = self.q_lin(x_out).view(*x_out.shape[:-1], *heads)  # (..., h, d) or (R, h, d)
        k = self.k_lin(x).view(*x.shape[:-1], *heads)  # (..., h, d)
        v = self.v_lin(x).view(*x.shape[:-1], *heads)  # (..., h, d)
        p = self.dropout_p if self.training else 0.0
        ctx = attend(q, k, v, p).reshape(x_out.shape)  # (..., H) or (R, H)
        return self.out_lin(ctx)


class FFN(nn.Module):
    """lin1 → activation → lin2 → dropout."""

    def __init__(self, c: DistilBertConfig) -> None:
        super().__init__()
        self.dropout = Dropout(c.dropout)
        self.lin1 = nn.Linear(c.dim, c.hidden_dim)
        self.lin2 = nn.Linear(c.hidden_dim, c.dim)
        self.activation = ACTIVATIONS[c.activation]

    def forward(self, x: Tensor) -> Tensor:
        # (..., H) -> (..., hidden_dim) -> (..., H)
        return self.dropout(self.lin2(self.activation(self.lin1(x))))


class TransformerBlock(nn.Module):
    """Post-norm layer: attention + residual → ``sa_layer_norm``; FFN + residual → ``output_layer_norm``."""

    def __init__(self, c: DistilBertConfig) -> None:
        super().__init__()
        self.attention = DistilBertSelfAttention(c)
        self.sa_layer_norm = nn.LayerNorm(c.dim, eps=1e-12)
        self.ffn = FFN(c)
        self.output_layer_norm = nn.LayerNorm(c.dim, eps=1e-12)

    def forward(self, x: Tensor, attend: Attend, rows: Tensor | None = None) -> Tensor:
        # x: (T, H) packed real tokens, or (B, L, H) padded.
        # rows: (R,) packed indices of the only tokens whose output is wanted (each sequence's
        # first token, for the last layer under cls pooling): keys and values still come from
        # every token; queries, the attention output and the FFN run on R rows only.
        x_out = x if rows is None else x[rows]  # (..., H) or (R, H)
        x = self.sa_layer_norm(self.attention(x, x_out, attend) + x_out)  # (..., H) or (R, H)
        return self.output_layer_norm(self.ffn(x) + x)  # (..., H) or (R, H)


class Transformer(nn.Module):
    def __init__(self, c: DistilBertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(TransformerBlock(c) for _ in range(c.n_layers))


class DistilBertModel(PackedEncoder):
    """DistilBERT encoder with the module names of ``transformers.DistilBertModel``."""

    hf_prefix = "distilbert."

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.transformer = Transformer(config)

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers, bottom first (what ``freeze_lower`` counts)."""
        return self.transformer.layer

    # ------------------------------------------------------------------ forward
    def forward_padded(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        """(B, L) → (B, L, H), every layer on the padded batch (``config.unpad`` false); token types
        are ignored (DistilBERT has none)."""
        bsz, length = input_ids.shape
        position_ids = torch.arange(length, device=input_ids.device).expand(bsz, length)  # (B, L)
        x = self.embeddings(input_ids, position_ids)  # (B, L, H)
        attend = padded_attention(attention_mask)
        for layer in self.transformer.layer:
            x = self.run_layer(layer, x, attend, None)  # (B, L, H)
        return x

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
        """input_ids: (T,) packed; cu_seqlens: (B+1,) int32; token_type_ids ignored. Returns
        hidden states (T, H), or with ``first_token_only`` each sequence's first token's, (B, H)."""
        if position_ids is None:
            position_ids = packed_positions(cu_seqlens, input_ids.numel())
        x = self.embeddings(input_ids, position_ids)  # (T, H)
        attend = self.attention_for(cu_seqlens, max_seqlen)
        return self.run_layers(self.transformer.layer, x, attend, cu_seqlens, max_seqlen, first_token_only)


# ---------------------------------------------------------------------------- task layers
class DistilBertSequenceHead(nn.Module):
    """``DistilBertForSequenceClassification``: pre_classifier → ReLU → dropout → classifier."""

    def __init__(self, c: DistilBertConfig, num_labels: int, dropout: float | None = None) -> None:
        super().__init__()
        self.pre_classifier = new_linear(c.dim, c.dim, c.initializer_range)
        self.dropout = Dropout(c.seq_classif_dropout if dropout is None else dropout)
        self.classifier = new_linear(c.dim, num_labels, c.initializer_range)

    def forward(self, pooled: Tensor) -> Tensor:
        x = F.relu(self.pre_classifier(pooled))  # (B, H)
        return self.classifier(self.dropout(x))  # (B, num_labels)


def distilbert_token_head(
    c: DistilBertConfig, num_labels: int, dropout: float | None = None
) -> nn.Sequential:
    """``DistilBertForTokenClassification``: dropout → classifier, (B, L, H) -> (B, L, n)."""
    return dropout_classifier(
        c.dim, num_labels, c.dropout if dropout is None else dropout, c.initializer_range
    )


class DistilBertMaskedLMHead(nn.Module):
    """``DistilBertForMaskedLM``: vocab_transform → activation → vocab_layer_norm → vocab_projector.

    The projector's weight is the word embedding matrix (``tie_word_embeddings``, the default);
    its bias is its own, not tied (transformers ties ``vocab_projector.weight`` only)."""

    def __init__(self, c: DistilBertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.activation = ACTIVATIONS[c.activation]
        self.vocab_transform = new_linear(c.dim, c.dim, c.initializer_range)
        self.vocab_layer_norm = nn.LayerNorm(c.dim, eps=1e-12)
        self.vocab_projector = new_linear(c.dim, c.vocab_size, c.initializer_range)
        if c.tie_word_embeddings:
            self.vocab_projector.weight = word_embeddings.weight

    def forward(self, hidden: Tensor) -> Tensor:
        x = self.activation(self.vocab_transform(hidden))  # (B, L, H)
        return self.vocab_projector(self.vocab_layer_norm(x))  # (B, L, vocab)


DISTILBERT = EncoderFamily(
    name="DistilBERT",
    model_types={"distilbert": "DistilBert"},
    prefix="distilbert",
    read_config=DistilBertConfig.from_dict,
    build=lambda config, pooler: DistilBertModel(config),  # no pooler to add
    sequence_head=DistilBertSequenceHead,
    token_head=distilbert_token_head,
    masked_lm_head=DistilBertMaskedLMHead,
    lora_targets=("q_lin", "v_lin"),  # BERT's query and value, by DistilBERT's names
)
