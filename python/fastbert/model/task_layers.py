"""Task layers that several families share, with transformers' module names.

- `dropout_classifier`: ``dropout → classifier``, the token classifier of every family but
  ModernBERT, and BERT's sequence classifier (over its pooler);
- `dense_classifier`: ``classifier`` = ``dropout → dense → activation → dropout → out_proj`` over
  the first token, RoBERTa's (tanh) and ELECTRA's (GELU) sequence classifier.

Each returns an ``nn.Sequential`` whose children carry transformers' names, so
`fastbert.model.heads` registers them as they are and calling it runs them in order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import Tensor, nn

from fastbert.model.dropout import Dropout

__all__ = ["ClassificationHead", "dense_classifier", "dropout_classifier", "new_linear", "task_dropout"]


def new_linear(in_features: int, out_features: int, std: float = 0.02) -> nn.Linear:
    """A new head layer, initialised as transformers does: N(0, ``initializer_range``) weights, zero bias."""
    layer = nn.Linear(in_features, out_features)
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


def task_dropout(dropout: float | None, classifier_dropout: float | None, hidden_dropout: float) -> float:
    """A task layer's dropout: the caller's, else the config's ``classifier_dropout``, else its
    hidden dropout (transformers' fallback)."""
    if dropout is not None:
        return dropout
    return hidden_dropout if classifier_dropout is None else classifier_dropout


def dropout_classifier(hidden_size: int, num_labels: int, dropout: float, std: float = 0.02) -> nn.Sequential:
    """``dropout → classifier``: (..., H) -> (..., num_labels)."""
    return nn.Sequential(
        OrderedDict([("dropout", Dropout(dropout)), ("classifier", new_linear(hidden_size, num_labels, std))])
    )


class ClassificationHead(nn.Module):
    """transformers' ``RobertaClassificationHead`` / ``ElectraClassificationHead`` on the first
    token's vector: dropout → dense → activation → dropout → out_proj."""

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        dropout: float,
        activation: Callable[[Tensor], Tensor],
        std: float,
    ) -> None:
        super().__init__()
        self.dense = new_linear(hidden_size, hidden_size, std)
        self.dropout = Dropout(dropout)
        self.out_proj = new_linear(hidden_size, num_labels, std)
        self.activation = activation

    def forward(self, first: Tensor) -> Tensor:
        x = self.activation(self.dense(self.dropout(first)))  # (B, H)
        return self.out_proj(self.dropout(x))  # (B, num_labels)


def dense_classifier(
    hidden_size: int, num_labels: int, dropout: float, activation: Callable[[Tensor], Tensor], std: float
) -> nn.Sequential:
    """``classifier`` = `ClassificationHead`: (B, H) -> (B, num_labels)."""
    head = ClassificationHead(hidden_size, num_labels, dropout, activation, std)
    return nn.Sequential(OrderedDict([("classifier", head)]))
