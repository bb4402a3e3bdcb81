"""What an encoder family is: one module, one `EncoderFamily` record, and the interface heads use.

A family module (`fastbert.model.bert`, `fastbert.model.roberta`, ...) holds, in this order:

- a config dataclass with the field names of the family's ``config.json``, ``from_dict``,
  ``to_hf_dict`` and the `EncoderConfig` fields (as properties where the family names them
  differently);
- the encoder ``nn.Module`` (`Encoder`), with the module names of the transformers model so that
  checkpoints load as they are, a padded and a packed (``cu_seqlens``) forward pass;
- the task layers transformers puts over the encoder, one ``nn.Module`` per task
  (`EncoderFamily.sequence_head`, ``token_head``, ``masked_lm_head``). Their *children* carry
  transformers' names for the top-level modules of ``<Family>For<Task>`` (``classifier``,
  ``pre_classifier``, ``lm_head``, ...): `fastbert.model.heads` registers those children
  directly on the task model, so a saved state dict loads into ``AutoModelFor<Task>`` unchanged;
- the family's `EncoderFamily` record, which `fastbert.model.encoder.FAMILIES` lists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn

from fastbert.model.attention import VarlenAttention

__all__ = ["Encoder", "EncoderConfig", "EncoderFamily"]


class EncoderConfig(Protocol):
    """The config fields heads and training read, whatever the family calls the rest."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float
    max_position_embeddings: int

    @property
    def max_tokens(self) -> int:
        """The longest input, special tokens included (RoBERTa: two positions fewer than it has)."""
        ...

    def to_hf_dict(self) -> dict[str, Any]: ...


class Encoder(Protocol):
    """An encoder ``nn.Module`` as the heads use it (`fastbert.model.bert.BertModel` is one)."""

    @property
    def config(self) -> EncoderConfig: ...

    #: A variable-length attention kernel for the packed path, or ``None`` (`fastbert.model.kernel_dispatch`).
    attention_fn: VarlenAttention | None
    #: Recompute layers in the backward pass instead of keeping activations (`FinetuneConfig.gradient_checkpointing`).
    gradient_checkpointing: bool
    #: Holds ``word_embeddings`` (an ``nn.Embedding``), which masked-LM decoders are tied to.
    embeddings: nn.Module
    #: BERT's pooler (tanh over the first token); ``None`` in families without one.
    pooler: nn.Module | None

    @property
    def layers(self) -> nn.ModuleList: ...

    def __call__(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """(B, L) inputs → (last hidden state (B, L, H), pooler output (B, H) or ``None``)."""
        ...

    def pooled_output(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """(B, H): what a sequence head reads under ``cls`` pooling (BERT: the pooler's output;
        families without a pooler: the first token's last hidden state)."""
        ...

    def load_hf_state_dict(self, state: dict[str, Tensor], source: str = "checkpoint") -> list[str]:
        """Load the encoder's weights from a transformers state dict (prefixed or not); returns unused keys."""
        ...

    def parameters(self, recurse: bool = True) -> Any: ...


@dataclass(frozen=True)
class EncoderFamily:
    """One encoder family: its config, encoder and task layers, and its transformers names."""

    #: The family's name in messages and tables ("RoBERTa").
    name: str
    #: ``model_type`` values of ``config.json`` → the transformers class-name stem of each
    #: (``{"roberta": "Roberta", "xlm-roberta": "XLMRoberta"}``): ``<stem>ForSequenceClassification``.
    model_types: Mapping[str, str]
    #: The encoder's attribute name in transformers' task models, and so its state-dict prefix.
    prefix: str
    #: (config.json as a dict, its path for messages) -> the family's config dataclass.
    read_config: Callable[[dict[str, Any], str], Any]
    #: (config, add_pooling_layer) -> the encoder module (only BERT has a pooler to add).
    build: Callable[[Any, bool], nn.Module]
    #: (config, num_labels, dropout or None for the config's) -> layers mapping the
    #: `Encoder.pooled_output` vector (B, H) to (B, num_labels).
    sequence_head: Callable[[Any, int, float | None], nn.Module]
    #: (config, num_labels, dropout or None) -> layers mapping (B, L, H) to (B, L, num_labels).
    token_head: Callable[[Any, int, float | None], nn.Module]
    #: (config, the encoder's word embeddings) -> layers mapping (B, L, H) to (B, L, vocab),
    #: the decoder tied to the embeddings.
    masked_lm_head: Callable[[Any, nn.Embedding], nn.Module]
    #: The Linear layers (by module name) that get LoRA adapters by default: the attention's
    #: query and value projections, as in the LoRA paper (`FinetuneConfig.lora_targets`).
    lora_targets: tuple[str, ...] = ("query", "value")
    #: Whether the attention is plain scaled dot-product attention, which the variable-length
    #: kernel (`fastbert.kernels.varlen_attention`) computes on CUDA (DeBERTa's is not).
    kernel_attention: bool = True

    def class_name(self, model_type: str, task: str) -> str:
        """The transformers class of a task model (``architectures`` in a saved config.json)."""
        stem = self.model_types[model_type]
        suffix = {"token": "ForTokenClassification", "mlm": "ForMaskedLM"}.get(
            task, "ForSequenceClassification"
        )
        return stem + suffix
