"""RoBERTa and XLM-RoBERTa: BERT's layers with fairseq's positions and no token types.

Shapes: ``B`` batch, ``L`` padded length, ``T`` total real tokens in a packed batch, ``H``
hidden size.

The transformer layers are BERT's (`fastbert.model.bert.BertLayer`, same parameter names under
``encoder.layer.N``); what differs, and lives here:

- positions start at ``pad_token_id + 1`` (fairseq counts them past the padding index), so a
  sequence of ``n`` tokens uses rows ``pad+1 … pad+n`` of the position embeddings and the model
  takes ``max_position_embeddings - pad_token_id - 1`` tokens (roberta-base: 514 → 512);
- there is one token type (``type_vocab_size`` 1): the encoder adds row 0 to every token and
  ignores the ``token_type_ids`` fastbert passes (1 for a pair's second text would be out of
  range), as transformers does when the RoBERTa tokenizer gives it none;
- the task models have no pooler: the sequence head is ``dense → tanh → out_proj`` over the first
  token (``RobertaClassificationHead``), the MLM head ``dense → GELU → layer_norm → decoder``
  with the decoder tied to the word embeddings.

XLM-RoBERTa is the same model (transformers' ``modeling_xlm_roberta`` is a renamed copy, prefix
``roberta`` too); only ``model_type`` and the class names differ, and the config keeps the
``model_type`` it was read with so that a saved model names the right classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastbert.model.attention import packed_positions
from fastbert.model.bert import BertConfig, BertEmbeddings, BertEncoder
from fastbert.model.family import EncoderFamily
from fastbert.model.packed import PackedEncoder
from fastbert.model.task_layers import dense_classifier, dropout_classifier, new_linear, task_dropout

__all__ = [
    "ROBERTA",
    "RobertaConfig",
    "RobertaMaskedLMHead",
    "RobertaModel",
]

#: ``model_type`` of config.json → transformers' class-name stem.
MODEL_TYPES = {"roberta": "Roberta", "xlm-roberta": "XLMRoberta"}


@dataclass
class RobertaConfig(BertConfig):
    """The fields of a RoBERTa or XLM-RoBERTa ``config.json`` that the model uses.

    BERT's fields (RoBERTa's config *is* BERT's, plus the ones below); a field missing from a
    config.json takes transformers' ``RobertaConfig`` default, so both read a file the same way.
    ``unpad`` is inherited but has no effect: RoBERTa always runs the packed path.
    """

    vocab_size: int = 50265
    pad_token_id: int = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    #: std of the normal init of new task layers (transformers' ``_init_weights``).
    initializer_range: float = 0.02
    #: Dropout of the task layers; ``None`` falls back to ``hidden_dropout_prob``.
    classifier_dropout: float | None = None
    #: "roberta" or "xlm-roberta": written back by `to_hf_dict`.
    model_type: str = "roberta"

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> RobertaConfig:
        """A config.json dict; raises ``ValueError`` naming ``source`` and the field that is wrong."""
        config = super().from_dict(d, source)
        assert isinstance(config, cls)  # BertConfig.from_dict builds ``cls``
        if config.model_type not in MODEL_TYPES:
            raise ValueError(
                f"{source}: model_type={config.model_type!r} is not one of {sorted(MODEL_TYPES)}"
            )
        pad = config.pad_token_id
        if not isinstance(pad, int) or not 0 <= pad < config.vocab_size:
            raise ValueError(
                f"{source}: pad_token_id={pad!r} must be a token id below vocab_size {config.vocab_size} "
                "(RoBERTa's positions start after it)"
            )
        if config.max_tokens < 1:
            raise ValueError(
                f"{source}: max_position_embeddings {config.max_position_embeddings} leaves no position "
                f"for tokens: RoBERTa's positions start at pad_token_id + 1 = {pad + 1}"
            )
        return config

    @property
    def max_tokens(self) -> int:
        """The longest input: positions ``pad+1 … max_position_embeddings-1`` (roberta-base: 512)."""
        return self.max_position_embeddings - self.pad_token_id - 1

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json that transformers reads back as the same model (``model_type`` included)."""
        d = asdict(self)
        d.pop("unpad")
        d.pop("position_embedding_type")  # not a RobertaConfig field; always "absolute" here
        return d


class RobertaEmbeddings(BertEmbeddings):
    """BERT's embeddings with positions offset past the padding index and one token type."""

    def __init__(self, c: RobertaConfig) -> None:
        super().__init__(c)
        # As transformers builds it: the padding row of the position table is zero and never
        # trained (no position ever points at it, positions start past it).
        self.position_embeddings = nn.Embedding(
            c.max_position_embeddings, c.hidden_size, padding_idx=c.pad_token_id
        )
        self.position_offset = c.pad_token_id + 1

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None, position_ids: Tensor) -> Tensor:
        # any shape (...,) -> (..., H); position_ids count from 0, token_type_ids are ignored:
        # every token is type 0, what transformers uses when the RoBERTa tokenizer passes none.
        x = self.word_embeddings(input_ids)  # (..., H)
        x = x + self.token_type_embeddings.weight[0]  # (..., H) row 0 broadcast, no lookup
        x = x + self.position_embeddings(position_ids + self.position_offset)  # (..., H)
        return self.dropout(self.LayerNorm(x))  # (..., H)


class RobertaModel(PackedEncoder):
    """The encoder, with the module names of ``transformers.RobertaModel`` (less its pooler, which
    the task models do not have)."""

    hf_prefix = "roberta."

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = RobertaEmbeddings(config)
        self.encoder = BertEncoder(config)

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers, bottom first (what ``freeze_lower`` counts)."""
        return self.encoder.layer

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
        """input_ids: (T,) packed; cu_seqlens: (B+1,) int32; token_type_ids ignored. Returns hidden
        states (T, H), or with ``first_token_only`` those of each sequence's first token, (B, H)."""
        if position_ids is None:
            position_ids = packed_positions(cu_seqlens, input_ids.numel())  # (T,) from 0
        x = self.embeddings(input_ids, None, position_ids)  # (T, H)
        attend = self.attention_for(cu_seqlens, max_seqlen)
        return self.run_layers(self.encoder.layer, x, attend, cu_seqlens, max_seqlen, first_token_only)


# ---------------------------------------------------------------------------- task layers
def roberta_sequence_head(c: RobertaConfig, num_labels: int, dropout: float | None = None) -> nn.Sequential:
    """``RobertaForSequenceClassification``'s ``classifier``: dense → tanh → out_proj over the first
    token (no pooler)."""
    p = task_dropout(dropout, c.classifier_dropout, c.hidden_dropout_prob)
    return dense_classifier(c.hidden_size, num_labels, p, torch.tanh, c.initializer_range)


def roberta_token_head(c: RobertaConfig, num_labels: int, dropout: float | None = None) -> nn.Sequential:
    """``RobertaForTokenClassification``: dropout → classifier on every token."""
    p = task_dropout(dropout, c.classifier_dropout, c.hidden_dropout_prob)
    return dropout_classifier(c.hidden_size, num_labels, p, c.initializer_range)


class RobertaLMHead(nn.Module):
    """transformers' ``RobertaLMHead``: dense → GELU → layer_norm → decoder (+ ``bias``)."""

    def __init__(self, c: RobertaConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.dense = new_linear(c.hidden_size, c.hidden_size, c.initializer_range)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        # Both parameters are replaced just below, so none are allocated (XLM-R's vocabulary of
        # 250,002 would take 768 MB for a weight that is thrown away).
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, device="meta")
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        # Tied as transformers ties them (``_tied_weights_keys``): the weight is the word
        # embeddings, the bias is ``lm_head.bias``.
        self.decoder.weight = word_embeddings.weight
        self.decoder.bias = self.bias

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.dense(x))  # (B, L, H) exact erf GELU, as transformers' ``gelu``
        return self.decoder(self.layer_norm(x))  # (B, L, vocab)


class RobertaMaskedLMHead(nn.Module):
    """``RobertaForMaskedLM``'s ``lm_head``, its decoder tied to the word embeddings."""

    def __init__(self, c: RobertaConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.lm_head = RobertaLMHead(c, word_embeddings)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.lm_head(hidden)  # (B, L, H) -> (B, L, vocab)


ROBERTA = EncoderFamily(
    name="RoBERTa",
    model_types=MODEL_TYPES,
    prefix="roberta",
    read_config=RobertaConfig.from_dict,
    # RoBERTa's task models have no pooler; AutoModel's pooler weights are left unused.
    build=lambda config, pooler: RobertaModel(config),
    sequence_head=roberta_sequence_head,
    token_head=roberta_token_head,
    masked_lm_head=RobertaMaskedLMHead,
)
