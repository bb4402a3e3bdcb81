"""What a task head needs of an encoder, and the encoder families fastbert implements.

A family is one module (`fastbert.model.bert` for BERT) with a config dataclass and an encoder
``nn.Module``, registered in `FAMILIES` under the ``model_type`` of its ``config.json``.
`fastbert.model.build` reads ``model_type`` and builds the family's encoder; the heads
(`fastbert.model.heads`), LoRA, the kernels and saving only use what `Encoder` names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn

from fastbert.model.attention import VarlenAttention
from fastbert.model.bert import BertConfig, BertModel

__all__ = ["FAMILIES", "Encoder", "EncoderConfig", "EncoderFamily", "family_of"]


class EncoderConfig(Protocol):
    """The config fields heads and training read, whatever the family calls the rest."""

    vocab_size: int
    hidden_size: int
    num_attention_heads: int
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float
    layer_norm_eps: float
    max_position_embeddings: int

    def to_hf_dict(self) -> dict[str, Any]: ...


class Encoder(Protocol):
    """An encoder ``nn.Module`` as the heads use it (see `fastbert.model.bert.BertModel`)."""

    @property
    def config(self) -> EncoderConfig: ...

    #: A variable-length attention kernel for the packed path, or ``None`` (`fastbert.model.kernel_dispatch`).
    attention_fn: VarlenAttention | None
    #: Recompute layers in the backward pass instead of keeping activations (`FinetuneConfig.gradient_checkpointing`).
    gradient_checkpointing: bool
    embeddings: nn.Module
    pooler: nn.Module | None

    @property
    def layers(self) -> nn.ModuleList: ...

    def __call__(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]: ...

    def pooled_output(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor: ...

    def load_hf_state_dict(self, state: dict[str, Tensor], source: str = "checkpoint") -> list[str]: ...

    def parameters(self, recurse: bool = True) -> Any: ...


@dataclass(frozen=True)
class EncoderFamily:
    """One encoder family: how to read its config and build its encoder, and its transformers names."""

    #: ``model_type`` in ``config.json``.
    model_type: str
    #: The encoder's attribute name in transformers' task models, and so its state-dict prefix.
    prefix: str
    #: (config.json as a dict, its path for messages) -> the family's config dataclass.
    read_config: Callable[[dict[str, Any], str], Any]
    #: (config, add_pooling_layer) -> the encoder module.
    build: Callable[[Any, bool], nn.Module]
    #: The transformers class (``architectures`` in a saved config.json) of each head.
    sequence_class: str
    token_class: str
    masked_lm_class: str


BERT = EncoderFamily(
    model_type="bert",
    prefix="bert",
    read_config=BertConfig.from_dict,
    build=lambda config, pooler: BertModel(config, add_pooling_layer=pooler),
    sequence_class="BertForSequenceClassification",
    token_class="BertForTokenClassification",
    masked_lm_class="BertForMaskedLM",
)

#: The families fastbert implements, by ``model_type``.
FAMILIES: dict[str, EncoderFamily] = {family.model_type: family for family in (BERT,)}


def family_of(config: dict[str, Any], source: str) -> EncoderFamily:
    """The family of a ``config.json`` (a missing ``model_type`` is BERT's, as in old checkpoints)."""
    model_type = config.get("model_type", "bert")
    family = FAMILIES.get(model_type)
    if family is None:
        raise ValueError(
            f"{source}: model_type {model_type!r} is not an encoder family fastbert implements "
            f"(supported: {', '.join(FAMILIES)})"
        )
    return family
