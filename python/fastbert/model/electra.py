"""Our ELECTRA encoder (the discriminator's body, or the generator's), loading Hugging Face checkpoints.

Shapes: ``B`` batch, ``L`` padded length, ``T`` total real tokens in a packed batch, ``E``
embedding size, ``H`` hidden size, ``h`` heads, ``d = H / h`` head size.

ELECTRA (Clark et al. 2020, https://arxiv.org/abs/2003.10555) is BERT with two changes that
reach the encoder:

- the embeddings have their own width, ``embedding_size`` (``E``): the small models embed in
  128 dimensions and compute in 256. When ``E != H`` a linear ``embeddings_project`` (E → H)
  sits between the embeddings and the first layer; when they are equal there is none;
- there is no pooler: sequence classification reads the first token's last hidden state.

The embeddings and the layers are BERT's (`fastbert.model.bert`, imported, not copied):
transformers' ``ElectraEmbeddings`` and ``ElectraLayer`` are ``Copied from`` BERT's, with the
same parameter names (``electra.encoder.layer.N.attention.self.query.weight``), so
`BertEmbeddings` at width ``E`` and `BertLayer` at width ``H`` load ELECTRA checkpoints as they are.

The task layers differ from BERT's: ``ElectraClassificationHead`` (dense → GELU → out_proj over
the first token, where BERT has a tanh pooler and one linear layer) and, for masked LM, the
generator's head (dense H → E, GELU, LayerNorm, then a decoder E → vocab tied to the word
embeddings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastbert.model.attention import packed_positions, padded_attention
from fastbert.model.bert import BertConfig, BertEmbeddings, BertEncoder
from fastbert.model.family import EncoderFamily
from fastbert.model.packed import PackedEncoder
from fastbert.model.task_layers import dense_classifier, dropout_classifier, new_linear, task_dropout

__all__ = [
    "ELECTRA",
    "ElectraConfig",
    "ElectraMaskedLMHead",
    "ElectraModel",
]


@dataclass
class ElectraConfig:
    """The fields of a Hugging Face ELECTRA ``config.json`` that the encoder and its task layers use.

    Defaults are transformers' ``ElectraConfig`` defaults (electra-small's shape), so that a
    ``config.json`` missing a field reads as transformers reads it."""

    #: Size of the vocabulary (rows of ``word_embeddings``).
    vocab_size: int = 30522
    #: Width of the embeddings, ``E``; ``embeddings_project`` maps it to ``hidden_size`` when they differ.
    embedding_size: int = 128
    #: Width of the transformer layers, ``H``.
    hidden_size: int = 256
    num_hidden_layers: int = 12
    num_attention_heads: int = 4
    #: Width of the feed-forward layer.
    intermediate_size: int = 1024
    #: The feed-forward activation (the task layers use GELU whatever this says, as transformers does).
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    #: Dropout of the task layers; ``None``: ``hidden_dropout_prob`` (as transformers falls back).
    classifier_dropout: float | None = None
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    #: Standard deviation of new task layers' weights (transformers' ``_init_weights``).
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    #: Whether the masked-LM decoder shares the word embeddings (transformers' default, and every
    #: released ELECTRA generator); when false it has weights of its own.
    tie_word_embeddings: bool = True
    #: Skip padding in every position-wise layer (as `fastbert.model.bert.BertConfig.unpad`).
    unpad: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> ElectraConfig:
        """A ``config.json`` as a dict; raises naming ``source`` and the field when it is one we cannot run."""
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in d.items() if k in known})
        # transformers 5 dropped the field, older ELECTRA configs still carry it: only the
        # absolute embeddings exist here, so a relative kind must not load silently.
        position_embedding_type = d.get("position_embedding_type", "absolute")
        if position_embedding_type != "absolute":
            raise ValueError(
                f"{source}: position_embedding_type={position_embedding_type!r} is not supported (only 'absolute')"
            )
        if config.embedding_size <= 0:
            raise ValueError(f"{source}: embedding_size must be positive, not {config.embedding_size}")
        # hidden_act and num_attention_heads are checked as BERT checks them, with the same messages.
        BertConfig.from_dict(asdict(config.layer_config()), source)
        return config

    @property
    def max_tokens(self) -> int:
        """The longest input the position embeddings allow."""
        return self.max_position_embeddings

    def layer_config(self) -> BertConfig:
        """The config of BERT's layers at this model's width ``H`` (ELECTRA's layers are BERT's)."""
        shared = {f.name for f in fields(BertConfig)} & {f.name for f in fields(self)}
        return BertConfig(**{name: getattr(self, name) for name in shared})

    def embedding_config(self) -> BertConfig:
        """The config of BERT's embeddings at this model's embedding width ``E``."""
        return replace(self.layer_config(), hidden_size=self.embedding_size)

    def to_hf_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("unpad")
        return {"model_type": "electra", **d}


class ElectraModel(PackedEncoder):
    """ELECTRA encoder with the module names of ``transformers.ElectraModel`` (state dicts load as they are)."""

    hf_prefix = "electra."

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config.embedding_config())
        # Present only when the widths differ, as in transformers (its key is absent otherwise).
        self.embeddings_project: nn.Linear | None = (
            nn.Linear(config.embedding_size, config.hidden_size)
            if config.embedding_size != config.hidden_size
            else None
        )
        self.encoder = BertEncoder(config.layer_config())

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers, bottom first (what ``freeze_lower`` counts)."""
        return self.encoder.layer

    def embed(self, input_ids: Tensor, token_type_ids: Tensor, position_ids: Tensor) -> Tensor:
        """(...,) ids → (..., H): BERT's embeddings at width E, then the projection to H if any."""
        x = self.embeddings(input_ids, token_type_ids, position_ids)  # (..., E)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)  # (..., H)
        return x

    # ------------------------------------------------------------------ forward
    def forward_padded(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        """(B, L) → (B, L, H), every layer on the padded batch, padding included (``config.unpad``
        false). Slower; kept as the plain reference the packed path is tested against."""
        bsz, length = input_ids.shape
        position_ids = torch.arange(length, device=input_ids.device).expand(bsz, length)
        x = self.embed(input_ids, token_type_ids, position_ids)  # (B, L, H)
        attend = padded_attention(attention_mask)
        for layer in self.encoder.layer:
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
        """input_ids: (T,) packed; cu_seqlens: (B+1,) int32. Returns hidden states (T, H), or with
        ``first_token_only`` those of each sequence's first token, (B, H)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = packed_positions(cu_seqlens, input_ids.numel())
        x = self.embed(input_ids, token_type_ids, position_ids)  # (T, H)
        attend = self.attention_for(cu_seqlens, max_seqlen)
        return self.run_layers(self.encoder.layer, x, attend, cu_seqlens, max_seqlen, first_token_only)

    # ------------------------------------------------------------------ loading
    def missing_weights_hint(self, missing: list[str]) -> str:
        if not any(k.startswith("embeddings_project.") for k in missing):
            return ""
        return (
            f" (embedding_size {self.config.embedding_size} != hidden_size "
            f"{self.config.hidden_size} needs embeddings_project: is config.json this checkpoint's?)"
        )


# ---------------------------------------------------------------------------- task layers
def electra_sequence_head(c: ElectraConfig, num_labels: int, dropout: float | None = None) -> nn.Sequential:
    """``ElectraForSequenceClassification``'s ``classifier`` on the first token: dense → GELU →
    out_proj. GELU, not BERT's tanh: "although BERT uses tanh here, it seems Electra authors used
    gelu" (transformers' comment); it is GELU whatever ``hidden_act`` says."""
    p = task_dropout(dropout, c.classifier_dropout, c.hidden_dropout_prob)
    return dense_classifier(c.hidden_size, num_labels, p, F.gelu, c.initializer_range)


def electra_token_head(c: ElectraConfig, num_labels: int, dropout: float | None = None) -> nn.Sequential:
    """``ElectraForTokenClassification``: dropout → classifier on every token."""
    p = task_dropout(dropout, c.classifier_dropout, c.hidden_dropout_prob)
    return dropout_classifier(c.hidden_size, num_labels, p, c.initializer_range)


class ElectraGeneratorPredictions(nn.Module):
    """dense (H → E) → GELU → LayerNorm: back to the embeddings' width, where the decoder reads."""

    def __init__(self, c: ElectraConfig) -> None:
        super().__init__()
        self.dense = new_linear(c.hidden_size, c.embedding_size, c.initializer_range)
        self.LayerNorm = nn.LayerNorm(c.embedding_size, eps=c.layer_norm_eps)

    def forward(self, hidden: Tensor) -> Tensor:
        # GELU whatever hidden_act says, as transformers' ElectraGeneratorPredictions.
        return self.LayerNorm(F.gelu(self.dense(hidden)))  # (..., H) -> (..., E)


class ElectraMaskedLMHead(nn.Module):
    """``ElectraForMaskedLM``'s ``generator_predictions`` and ``generator_lm_head`` (E → vocab, with bias).

    The decoder's weight is the word embeddings (transformers' ``_tied_weights_keys``); its bias is
    its own, not tied to anything, unlike BERT's."""

    def __init__(self, c: ElectraConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.generator_predictions = ElectraGeneratorPredictions(c)
        self.generator_lm_head = new_linear(c.embedding_size, c.vocab_size, c.initializer_range)
        if c.tie_word_embeddings:
            self.generator_lm_head.weight = word_embeddings.weight

    def forward(self, hidden: Tensor) -> Tensor:
        return self.generator_lm_head(self.generator_predictions(hidden))  # (B, L, H) -> (B, L, vocab)


ELECTRA = EncoderFamily(
    name="ELECTRA",
    model_types={"electra": "Electra"},
    prefix="electra",
    read_config=ElectraConfig.from_dict,
    build=lambda config, pooler: ElectraModel(config),  # no pooler to add: ELECTRA has none
    sequence_head=electra_sequence_head,
    token_head=electra_token_head,
    masked_lm_head=ElectraMaskedLMHead,
)
