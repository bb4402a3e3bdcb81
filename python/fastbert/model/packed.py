"""What every encoder family shares: padded batches in, packed real tokens inside.

Shapes: ``B`` batch, ``L`` padded length, ``T`` total real tokens of a packed batch, ``H``
hidden size; ``cu_seqlens`` ``(B+1,)`` int32 holds cumulative lengths (FlashAttention's
convention).

`PackedEncoder` turns a right-padded ``(B, L)`` batch into one packed ``(T,)`` row
(`pack_batch`), runs the family's ``forward_packed`` on it (embeddings, projections,
feed-forward and norms spend nothing on padding; attention alone needs the sequence bounds:
`PackedEncoder.attention_for`), and scatters the result back to ``(B, L, H)``. It also runs
layers under gradient checkpointing (`PackedEncoder.run_layer`) and serves the first-token
vector of ``cls`` pooling without computing the last layer for the other tokens.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from fastbert.model.attention import Attend, VarlenAttention, Window, first_query_attention, repad_attention

__all__ = ["PackedBatch", "PackedEncoder", "pack_batch"]


class PackedBatch(NamedTuple):
    """The real tokens of a right-padded batch, one after the other."""

    input_ids: Tensor  # (T,)
    cu_seqlens: Tensor  # (B+1,) int32
    max_seqlen: int
    token_type_ids: Tensor  # (T,)
    position_ids: Tensor  # (T,) 0, 1, ... within each sequence
    slots: Tensor  # (T,) where the real tokens sit in the flattened (B·L,) batch


def pack_batch(input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> PackedBatch:
    """(B, L) right-padded inputs → `PackedBatch`; raises when a row is not right-padded."""
    bsz, length = input_ids.shape
    mask = attention_mask.bool()
    lengths = mask.sum(1)
    if not torch.equal(mask, torch.arange(length, device=mask.device)[None, :] < lengths[:, None]):
        raise ValueError("the unpadded path needs right-padded batches (attention_mask = 1…1 0…0 per row)")
    index = mask.flatten().nonzero().squeeze(1)
    cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    position_ids = torch.arange(length, device=input_ids.device).expand(bsz, length).flatten()[index]
    return PackedBatch(
        input_ids.flatten()[index],
        cu_seqlens,
        int(lengths.max()) if bsz else 0,
        token_type_ids.flatten()[index],
        position_ids,
        index,
    )


class PackedEncoder(nn.Module):
    """Base class of the encoders: a padded forward pass over the family's packed one.

    A family implements ``forward_packed(input_ids, cu_seqlens, max_seqlen, token_type_ids,
    position_ids, *, first_token_only)`` returning ``(T, H)``, or with ``first_token_only`` the
    ``(B, H)`` rows of each sequence's first token (the last layer may then compute its queries,
    attention output and feed-forward for those rows only). Position ids count from 0 in each
    sequence; a family that offsets them (RoBERTa) does so in its embeddings.
    """

    config: Any
    pooler: nn.Module | None
    #: The encoder's prefix in transformers' task models' state dicts ("bert.", "roberta.", ...).
    hf_prefix: str = ""
    #: Weights a checkpoint may lack (BERT's pooler, which token and MLM checkpoints do not have).
    optional_weights: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        #: BERT's pooler (set by `fastbert.model.bert.BertModel`); ``None`` in the other families.
        self.pooler = None
        #: Optional variable-length attention kernel for the packed path (e.g. Triton on CUDA).
        self.attention_fn: VarlenAttention | None = None
        #: Recompute each layer in the backward pass instead of keeping its activations
        #: (`FinetuneConfig.gradient_checkpointing`).
        self.gradient_checkpointing = False

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
        raise NotImplementedError

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """input_ids, attention_mask, token_type_ids: (B, L), right-padded.
        Returns (last hidden state (B, L, H), pooler output (B, H) or ``None``)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if getattr(self.config, "unpad", True):
            hidden = self.forward_unpadded(input_ids, attention_mask, token_type_ids)
        else:
            hidden = self.forward_padded(input_ids, attention_mask, token_type_ids)
        pooled = self.pooler(hidden[:, 0]) if self.pooler is not None else None
        return hidden, pooled

    def forward_unpadded(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        """(B, L) → (B, L, H) through `forward_packed`: only the real tokens are computed."""
        bsz, length = input_ids.shape
        packed = pack_batch(input_ids, attention_mask, token_type_ids)
        x = self.forward_packed(*packed[:5])  # (T, H)
        hidden = x.new_zeros(bsz * length, x.shape[-1])
        hidden[packed.slots] = x
        return hidden.view(bsz, length, -1)  # (B, L, H)

    def forward_padded(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        """(B, L) → (B, L, H) with every layer on the padded batch (``config.unpad`` false): the
        plain reference path some families keep (BERT, DistilBERT, ELECTRA); the others run the
        packed one."""
        return self.forward_unpadded(input_ids, attention_mask, token_type_ids)

    def pooled_output(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """(B, H): the pooler's output (BERT), else the first token's last hidden state.

        Equal to ``forward(...)`` at the first token, but the last layer computes queries,
        attention output and feed-forward for the first token of each sequence only: about one
        layer less work for sentence classification."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if not getattr(self.config, "unpad", True):
            hidden, pooled = self.forward(input_ids, attention_mask, token_type_ids)
            return hidden[:, 0] if pooled is None else pooled
        packed = pack_batch(input_ids, attention_mask, token_type_ids)
        first = self.forward_packed(*packed[:5], first_token_only=True)  # (B, H)
        return self.pooler(first) if self.pooler is not None else first

    def run_layers(
        self,
        layers: nn.ModuleList,
        x: Tensor,
        attend: Attend,
        cu_seqlens: Tensor,
        max_seqlen: int,
        first_token_only: bool = False,
    ) -> Tensor:
        """Layers called as ``layer(x, attend, rows)`` (BERT's, and those of the families built like
        it) over packed ``x`` (T, H): returns (T, H), or with ``first_token_only`` the (B, H) rows of
        each sequence's first token. The last layer then computes queries, attention output and
        feed-forward for those rows only; keys and values still come from every token."""
        stack = list(layers)
        last = stack.pop() if first_token_only and stack else None
        for layer in stack:
            x = self.run_layer(layer, x, attend, None)  # (T, H)
        if not first_token_only:
            return x
        first = cu_seqlens[:-1].long()  # (B,) packed row of each sequence's first token
        if last is None:  # a model without layers
            return x[first]  # (B, H)
        return self.run_layer(last, x, first_query_attention(cu_seqlens, max_seqlen), first)  # (B, H)

    def attention_for(self, cu_seqlens: Tensor, max_seqlen: int, window: Window | None = None) -> Attend:
        """Attention over packed ``(T, h, d)`` q, k, v: the kernel when one is set, else re-padding.

        ``window``: a sliding window ``(left, right)`` over the positions within each sequence
        (ModernBERT's local layers), passed to the kernel as ``window_size``."""
        if self.attention_fn is None:
            return repad_attention(cu_seqlens, max_seqlen, window=window)
        kernel = self.attention_fn

        if window is None:

            def attend(q: Tensor, k: Tensor, v: Tensor, p: float) -> Tensor:
                return kernel(q, k, v, cu_seqlens, max_seqlen, p)

            return attend
        band = window

        def attend_window(q: Tensor, k: Tensor, v: Tensor, p: float) -> Tensor:
            return kernel(q, k, v, cu_seqlens, max_seqlen, p, window_size=band)

        return attend_window

    def run_layer(self, layer: nn.Module, *args: Any) -> Tensor:
        """``layer(*args)``, recomputed in the backward pass under gradient checkpointing."""
        if not (self.gradient_checkpointing and self.training and torch.is_grad_enabled()):
            result: Tensor = layer(*args)
            return result
        # The recomputation replays the same dropout: PyTorch's RNG state (which seeds fastbert's
        # own dropout masks too, `fastbert.model.dropout`) is saved and restored around it.
        out: Tensor = torch.utils.checkpoint.checkpoint(
            layer, *args, use_reentrant=False, preserve_rng_state=True
        )
        return out

    # ------------------------------------------------------------------ loading
    def load_hf_state_dict(self, state: dict[str, Tensor], source: str = "checkpoint") -> list[str]:
        """Load the encoder's weights from a transformers state dict, of the base model (bare keys)
        or of a task model (keys under `hf_prefix`); returns the keys it did not use (pooler,
        task layers). A missing weight or a shape the config does not give raises, naming them."""
        own = self.state_dict()
        mapped: dict[str, Tensor] = {}
        unused = []
        for key, value in state.items():
            k = key.removeprefix(self.hf_prefix)
            # Old TF-converted checkpoints call LayerNorm parameters gamma/beta.
            k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
            if k in own:
                mapped[k] = value
            else:
                unused.append(key)
        missing = [k for k in own if k not in mapped and not k.startswith(self.optional_weights)]
        if missing:
            raise ValueError(
                f"{source}: checkpoint lacks encoder weights {', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}"
                f"{self.missing_weights_hint(missing)}"
            )
        for k, v in mapped.items():
            if own[k].shape != v.shape:
                raise ValueError(
                    f"{source}: {k} has shape {tuple(v.shape)}, the config expects {tuple(own[k].shape)}"
                )
        self.load_state_dict(mapped, strict=False)
        return unused

    def missing_weights_hint(self, missing: list[str]) -> str:
        """What to add to the error for missing weights (a family may know why they are missing)."""
        return ""
