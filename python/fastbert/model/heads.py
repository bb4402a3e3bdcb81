"""Task models: an encoder (`fastbert.model.family.Encoder`) and its family's task layers.

Every task model keeps the parameter names of the matching ``transformers`` class: the encoder
under its family's prefix (``bert.*``, ``roberta.*``, ...) and the task layers under theirs
(``classifier.*``, ``lm_head.*``, ...), so a saved state dict loads into ``AutoModelFor…``
unchanged. The family module builds the task layers (`EncoderFamily.sequence_head` and the
others); this module registers their children on the task model, so that their names sit at the
top level as in transformers, and calls them. ``head.encoder`` is the encoder, whatever the
family's prefix.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from fastbert.config import Pooling
from fastbert.model.encoder import BERT, Encoder, EncoderFamily

__all__ = ["AttentionPooling", "Head", "MaskedLM", "SequenceClassifier", "TokenClassifier", "mean_pool"]


class Head(nn.Module):
    """A task model: the encoder under its family's prefix, plus the family's task layers."""

    def __init__(self, family: EncoderFamily, config: Any, add_pooling_layer: bool) -> None:
        super().__init__()
        self.family = family
        self.add_module(family.prefix, family.build(config, add_pooling_layer))
        #: The names of the task layers' modules (``classifier``, ``lm_head``, ...).
        self.task_module_names: list[str] = []
        self._task_layers: list[nn.Module] = []  # a list, so that it is not registered twice

    @property
    def encoder(self) -> Encoder:
        return cast(Encoder, getattr(self, self.family.prefix))

    def _attach(self, task_layers: nn.Module) -> None:
        """Register the children of the family's task layers on this model, under their own names."""
        for name, child in task_layers.named_children():
            self.add_module(name, child)
            self.task_module_names.append(name)
        own = [name for name, _ in task_layers.named_parameters(recurse=False)]
        if own:  # they would not be registered, so not trained, moved or saved
            raise TypeError(f"task layers must keep their parameters in child modules, not {own}")
        self._task_layers = [task_layers]

    def tied_keys(self) -> set[str]:
        """State-dict keys of parameters that are another key's too (a decoder tied to the word
        embeddings, its bias to the head's ``bias``): saved once, under the first name."""
        seen: set[int] = set()
        tied = set()
        for name, param in self.named_parameters(remove_duplicate=False):
            if id(param) in seen:
                tied.add(name)
            seen.add(id(param))
        return tied

    def task_layers(self, x: Tensor) -> Tensor:
        """The family's task layers on ``x`` (their modules are this model's children)."""
        return cast(Tensor, self._task_layers[0](x))


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
    """``<Family>ForSequenceClassification``: one vector per text (or text pair) → ``num_labels`` scores.

    ``pooling="cls"`` reads what transformers reads (BERT: its pooler, tanh over the first token;
    the other families: the first token's last hidden state), so saved models predict the same
    there. ``mean`` and ``attention`` pool the last hidden layer instead; the family's
    classification layers then take that vector.
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
        self._attach(family.sequence_head(config, num_labels, dropout))
        self.num_labels = num_labels

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        vec = self.sentence_vectors(input_ids, attention_mask, token_type_ids)  # (B, H)
        return self.classify(vec)  # (B, num_labels)

    def classify(self, vectors: Tensor) -> Tensor:
        """The family's classification layers on sentence vectors: (B, H) -> (B, num_labels)."""
        return self.task_layers(vectors)

    def sentence_vectors(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """The vector the classifier reads, (B, H): pooled first token, mean or attention pooling.

        Apart from ``forward`` so that long-text pooling (`fastbert.window_pool`) can average the
        vectors of a text's windows before classifying."""
        if self.pooling == "cls":
            # Only the first token is read: the encoder's last layer skips the other tokens.
            return self.encoder.pooled_output(input_ids, attention_mask, token_type_ids)  # (B, H)
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, L, H)
        if self.pooling == "mean":
            return mean_pool(hidden, attention_mask)
        assert self.attention_pool is not None
        return self.attention_pool(hidden, attention_mask)


class TokenClassifier(Head):
    """``<Family>ForTokenClassification``: one score vector per token."""

    def __init__(
        self, config: Any, num_labels: int, dropout: float | None = None, family: EncoderFamily = BERT
    ) -> None:
        super().__init__(family, config, add_pooling_layer=False)
        self._attach(family.token_head(config, num_labels, dropout))
        self.num_labels = num_labels

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)
        return self.task_layers(hidden)  # (B, L, num_labels)


class MaskedLM(Head):
    """``<Family>ForMaskedLM``: predicts the original token at masked positions; decoder tied to the embeddings."""

    def __init__(self, config: Any, family: EncoderFamily = BERT) -> None:
        super().__init__(family, config, add_pooling_layer=False)
        word_embeddings = self.encoder.embeddings.word_embeddings
        assert isinstance(word_embeddings, nn.Embedding)
        self._attach(family.masked_lm_head(config, word_embeddings))

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)
        return self.task_layers(hidden)  # (B, L, vocab)
