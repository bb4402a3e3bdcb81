"""Our BERT encoder, readable in one sitting, loading Hugging Face checkpoints.

Shapes: ``B`` batch, ``L`` padded length, ``T`` total real tokens in a packed
batch, ``H`` hidden size, ``h`` heads, ``d = H / h`` head size.

Two ways through the same weights:

- **padded** (``forward``): ``(B, L)`` ids and an attention mask, like
  ``transformers.BertModel``; its outputs match it within 1e-5 in fp32.
- **unpadded** (``forward_packed``): the real tokens of all sequences packed into
  one ``(T,)`` row with ``cu_seqlens`` (cumulative lengths, FlashAttention's
  convention), so embeddings, projections, feed-forward and LayerNorm spend no
  compute on padding. Attention is the only step that needs sequence
  boundaries: on the CPU it re-pads per batch and calls PyTorch's
  ``scaled_dot_product_attention`` with a key-padding mask; a variable-length
  kernel (``attention_fn``) can take its place without re-padding.

The padded ``forward`` unpads internally when ``config.unpad`` is true (the default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from fastbert.model.activations import ACTIVATIONS
from fastbert.model.attention import Attend, packed_positions, padded_attention
from fastbert.model.checkpoint import load_state_dict, read_config, read_config_file
from fastbert.model.dropout import Dropout
from fastbert.model.family import EncoderFamily
from fastbert.model.packed import PackedEncoder
from fastbert.model.task_layers import dropout_classifier

__all__ = ["BERT", "BertConfig", "BertMaskedLMHead", "BertModel", "bert_classifier"]


@dataclass
class BertConfig:
    """The fields of a Hugging Face BERT ``config.json`` that the encoder uses."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    #: Skip padding in every position-wise layer (see module docstring).
    unpad: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> BertConfig:
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in d.items() if k in known})
        if config.position_embedding_type != "absolute":
            raise ValueError(
                f"{source}: position_embedding_type={config.position_embedding_type!r} is not supported "
                "(only 'absolute')"
            )
        if config.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"{source}: hidden_act={config.hidden_act!r} is not one of {', '.join(sorted(ACTIVATIONS))}"
            )
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(
                f"{source}: hidden_size {config.hidden_size} is not a multiple of "
                f"num_attention_heads {config.num_attention_heads}"
            )
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> BertConfig:
        """A ``config.json`` file; raises naming the file when it is missing, not JSON, or wrong."""
        path = Path(path)
        return cls.from_dict(read_config_file(path), str(path))

    @property
    def max_tokens(self) -> int:
        """The longest input the position embeddings allow."""
        return self.max_position_embeddings

    def to_hf_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("unpad")
        return {"model_type": "bert", **d}


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, position_ids: Tensor) -> Tensor:
        # any shape (...,) -> (..., H)
        x = self.word_embeddings(input_ids)
        x = x + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout_p = c.attention_probs_dropout_prob


class FeedForwardConfig(Protocol):
    """What `BertSelfOutput` and `BertIntermediate` read: DeBERTa's config has it too, and its
    layers are BERT's there."""

    hidden_size: int
    intermediate_size: int
    hidden_act: str
    hidden_dropout_prob: float
    layer_norm_eps: float


class BertSelfOutput(nn.Module):
    """dense → dropout → add residual → LayerNorm (``BertSelfOutput`` and ``BertOutput`` alike)."""

    def __init__(self, c: FeedForwardConfig, in_features: int | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features or c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = Dropout(c.hidden_dropout_prob)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)


class BertIntermediate(nn.Module):
    def __init__(self, c: FeedForwardConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertSelfOutput(c, in_features=c.intermediate_size)

    def forward(
        self,
        x: Tensor,
        attend: Attend,
        rows: Tensor | None = None,
    ) -> Tensor:
        # x: (T, H) packed real tokens, or (B, L, H) padded.
        # rows: (R,) packed indices of the only tokens whose output is wanted (the first token of
        # each sequence, for the last layer under [CLS] pooling): keys and values still come from
        # every token, but queries, the attention output and the feed-forward run on R rows only.
        sa = self.attention.self
        shape = (*x.shape[:-1], sa.num_heads, sa.head_size)
        x_out = x if rows is None else x[rows]  # (..., H) or (R, H)
        q = sa.query(x_out).view(*x_out.shape[:-1], sa.num_heads, sa.head_size)  # (..., h, d)
        k = sa.key(x).view(shape)
        v = sa.value(x).view(shape)
        p = sa.dropout_p if self.training else 0.0
        ctx = attend(q, k, v, p).reshape(x_out.shape)  # (..., H)
        x = self.attention.output(ctx, x_out)
        return self.output(self.intermediate(x), x)


class BertPooler(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, first_token: Tensor) -> Tensor:
        return torch.tanh(self.dense(first_token))


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))


class BertModel(PackedEncoder):
    """BERT encoder with the module names of ``transformers.BertModel`` (so state dicts load as they are)."""

    hf_prefix = "bert."
    optional_weights = ("pooler.",)

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers, bottom first (what ``freeze_lower`` counts)."""
        return self.encoder.layer

    # ------------------------------------------------------------------ forward
    def forward_padded(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        """(B, L) → (B, L, H), every layer on the padded batch (``config.unpad`` false): the readable
        reference the packed path is tested against."""
        bsz, length = input_ids.shape
        position_ids = torch.arange(length, device=input_ids.device).expand(bsz, length)
        x = self.embeddings(input_ids, token_type_ids, position_ids)  # (B, L, H)
        attend = padded_attention(attention_mask)
        for layer in self.encoder.layer:
            x = self.run_layer(layer, x, attend, None)  # (B, L, H)
        return x

    def pooled_output(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """The pooler's output alone, (B, H): what [CLS] pooling classifies (`PackedEncoder.pooled_output`)."""
        if self.pooler is None:
            raise ValueError("this BertModel has no pooling layer")
        return super().pooled_output(input_ids, attention_mask, token_type_ids)

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
        """input_ids: (T,) packed; cu_seqlens: (B+1,) int32. Returns hidden states (T, H), or with
        ``first_token_only`` those of each sequence's first token, (B, H) (see `pooled_output`)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = packed_positions(cu_seqlens, input_ids.numel())
        x = self.embeddings(input_ids, token_type_ids, position_ids)  # (T, H)
        attend = self.attention_for(cu_seqlens, max_seqlen)
        return self.run_layers(self.encoder.layer, x, attend, cu_seqlens, max_seqlen, first_token_only)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, add_pooling_layer: bool = True, **overrides: Any
    ) -> BertModel:
        """Load ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``, read with ``weights_only``)."""
        folder = Path(folder)
        raw = read_config(folder)
        raw.update(overrides)
        config = BertConfig.from_dict(raw, str(folder / "config.json"))
        model = cls(config, add_pooling_layer=add_pooling_layer)
        state = load_state_dict(folder)
        model.load_hf_state_dict(state, source=str(folder))
        return model


# ---------------------------------------------------------------------------- task layers
def bert_classifier(c: BertConfig, num_labels: int, dropout: float | None = None) -> nn.Sequential:
    """``BertFor{Sequence,Token}Classification``: dropout → classifier, over the pooler's output
    (B, H) or every token (B, L, H)."""
    return dropout_classifier(
        c.hidden_size, num_labels, c.hidden_dropout_prob if dropout is None else dropout
    )


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c: BertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size)
        # Tied as in transformers: the weight is the word embeddings, the bias is ``bias``.
        self.decoder.weight = word_embeddings.weight
        self.decoder.bias = self.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.transform(x))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, c: BertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(c, word_embeddings)


class BertMaskedLMHead(nn.Module):
    """``BertForMaskedLM``'s ``cls.predictions``: dense → activation → LayerNorm → tied decoder + bias."""

    def __init__(self, c: BertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.cls = BertOnlyMLMHead(c, word_embeddings)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.cls.predictions(hidden)  # (B, L, H) -> (B, L, vocab)


BERT = EncoderFamily(
    name="BERT",
    model_types={"bert": "Bert"},
    prefix="bert",
    read_config=BertConfig.from_dict,
    build=lambda config, pooler: BertModel(config, add_pooling_layer=pooler),
    sequence_head=bert_classifier,
    token_head=bert_classifier,
    masked_lm_head=BertMaskedLMHead,
)
