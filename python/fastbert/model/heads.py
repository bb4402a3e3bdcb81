"""Task heads over an encoder (`fastbert.model.encoder`), named as in ``transformers``.

Every head keeps the parameter names of the matching ``transformers`` class (the encoder under
its family's prefix, ``bert.*``; ``classifier.*``; ``cls.predictions.*``) so that a saved state
dict loads into ``AutoModelFor…`` unchanged. ``head.encoder`` is the encoder, whatever the
family's prefix.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastbert.config import Pooling
from fastbert.model.dropout import Dropout
from fastbert.model.encoder import BERT, Encoder, EncoderFamily

__all__ = ["AttentionPooling", "Head", "MaskedLM", "SequenceClassifier", "TokenClassifier", "mean_pool"]


class Head(nn.Module):
    """A task head: an encoder registered under its family's prefix, plus the task's layers."""

    def __init__(self, family: EncoderFamily, config: Any, add_pooling_layer: bool) -> None:
        super().__init__()
        self.family = family
        self.add_module(family.prefix, family.build(config, add_pooling_layer))

    @property
    def encoder(self) -> Encoder:
        return cast(Encoder, getattr(self, self.family.prefix))


class AttentionPooling(nn.Module):
    """A learned query scores every token; the sentence vector is their softmax-weighted mean."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden, 1)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        # hidden: (B, L, H), mask: (B, L) -> (B, H)
        scores = self.score(hidden).squeeze(-1).masked_fill(mask == 0, torch.finfo(hidden.dtype).min)
        return torch.einsum("bl,blh->bh", scores.softmax(-1), hidden)


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean over real tokens: (B, L, H), (B, L) -> (B, H)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class SequenceClassifier(Head):
    """``BertForSequenceClassification``: one vector per text (or text pair) → ``num_labels`` scores.

    ``pooling="cls"`` uses BERT's pooler (tanh over the first token), exactly as
    ``transformers`` does, so saved models predict the same there. ``mean`` and
    ``attention`` pool the last hidden layer instead.
    """

    def __init__(
        self,
        config: Any,
        num_labels: int,
        pooling: Pooling = "cls",
        dropout: float | None = None,
        family: EncoderFamily = BERT,
    ) -> None:
        super().__init__(family, config, add_pooling_layer=True)
        self.pooling = pooling
        pooler = self.encoder.pooler
        if pooling != "cls" and pooler is not None:
            # The pooler is kept (its checkpoint weights are saved unchanged) but takes no part in
            # the loss: frozen, so DDP does not wait for gradients it never gets (tests/test_ddp.py).
            pooler.requires_grad_(False)
        self.attention_pool = AttentionPooling(config.hidden_size) if pooling == "attention" else None
        self.dropout, self.classifier = _classifier(config, num_labels, dropout)
        self.num_labels = num_labels

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        vec = self.sentence_vectors(input_ids, attention_mask, token_type_ids)  # (B, H)
        return self.classifier(self.dropout(vec))  # (B, num_labels)

    def sentence_vectors(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """The vector the classifier reads, (B, H): pooler output, mean or attention pooling.

        Apart from ``forward`` so that long-text pooling (`fastbert.window_pool`) can average the
        vectors of a text's windows before classifying."""
        if self.pooling == "cls":
            # The pooler reads the first token only: its last layer skips the other tokens.
            return self.encoder.pooled_output(input_ids, attention_mask, token_type_ids)  # (B, H)
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, L, H)
        if self.pooling == "mean":
            return mean_pool(hidden, attention_mask)
        assert self.attention_pool is not None
        return self.attention_pool(hidden, attention_mask)


class TokenClassifier(Head):
    """``BertForTokenClassification``: one score vector per token."""

    def __init__(
        self, config: Any, num_labels: int, dropout: float | None = None, family: EncoderFamily = BERT
    ) -> None:
        super().__init__(family, config, add_pooling_layer=False)
        self.dropout, self.classifier = _classifier(config, num_labels, dropout)
        self.num_labels = num_labels

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)
        return self.classifier(self.dropout(hidden))  # (B, L, num_labels)


class MaskedLM(Head):
    """``BertForMaskedLM``: predicts the original token at masked positions; decoder tied to the embeddings."""

    def __init__(self, config: Any, family: EncoderFamily = BERT) -> None:
        super().__init__(family, config, add_pooling_layer=False)
        self.cls = _MLMHead(config)
        word_embeddings = self.encoder.embeddings.word_embeddings
        assert isinstance(word_embeddings, nn.Embedding)
        self.cls.predictions.decoder.weight = word_embeddings.weight

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)
        return self.cls.predictions(hidden)  # (B, L, vocab)


class _Transform(nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class _Predictions(nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        self.transform = _Transform(c)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.transform(x)) + self.bias


class _MLMHead(nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        self.predictions = _Predictions(c)


def _classifier(config: Any, num_labels: int, dropout: float | None) -> tuple[Dropout, nn.Linear]:
    """The dropout and the linear layer a classification head puts over the encoder's vectors
    (dropout: the encoder's hidden dropout unless given)."""
    layer = nn.Linear(config.hidden_size, num_labels)
    _init_linear(layer)
    return Dropout(config.hidden_dropout_prob if dropout is None else dropout), layer


def _init_linear(layer: nn.Linear, std: float = 0.02) -> None:
    """BERT's initialisation for new heads: N(0, 0.02) weights, zero bias."""
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
