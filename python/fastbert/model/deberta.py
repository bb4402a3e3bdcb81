"""Our DeBERTa-v2 / v3 encoder, loading Hugging Face checkpoints (``model_type`` "deberta-v2").

Shapes: ``B`` batch, ``L`` padded length (the longest sequence), ``T`` total real tokens of a packed
batch, ``H`` hidden size, ``h`` heads, ``d = H / h`` head size, ``S`` the relative-position span
(``position_buckets``, else ``max_relative_positions``): ``2S`` relative embeddings.

What sets DeBERTa apart from BERT (He et al. 2021, https://arxiv.org/abs/2006.03654, and
``transformers/models/deberta_v2/modeling_deberta_v2.py``, which this reproduces within 1e-5 in fp32):

- **disentangled attention**: besides content→content ``q kᵀ``, each score gets content→position
  (``c2p``: the query against the embedding of the relative distance to the key) and
  position→content (``p2c``: the key against the embedding of the distance to the query),
  all divided by ``√(d · (1 + number of those terms))``;
- **relative positions** shared by every layer: ``rel_embeddings`` (LayerNorm-ed under
  ``norm_rel_ebd="layer_norm"``), projected by the layer's own query / key projections
  (``share_att_key``) or by separate ``pos_query_proj`` / ``pos_key_proj``; distances beyond
  ``position_buckets / 2`` fall into log-spaced buckets (`relative_positions`);
- no absolute positions in v3 (``position_biased_input`` false), no token types (``type_vocab_size``
  0), an optional convolution beside the first layer (``conv_kernel_size``, DeBERTa-v2 xlarge).

Position-wise layers run on the packed ``(T, H)`` tokens. Attention with a relative-position bias
re-pads q, k, v to ``(B, h, L, d)``, adds the ``(B, h, L, L)`` bias (`disentangled_bias`), masks the
padding keys and softmaxes there (`biased_attention`): the bias depends on both positions, so the
plain variable-length kernel (``attention_fn``) cannot take it; without relative attention it does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastbert.model.activations import ACTIVATIONS
from fastbert.model.attention import Attend, Repadder, first_query_attention, packed_positions
from fastbert.model.bert import BertIntermediate, BertSelfOutput
from fastbert.model.deberta_config import DebertaV2Config
from fastbert.model.dropout import Dropout, dropout, fast_dropout_applies
from fastbert.model.family import EncoderFamily
from fastbert.model.packed import PackedEncoder
from fastbert.model.task_layers import dropout_classifier, new_linear

__all__ = [
    "DEBERTA",
    "DebertaV2Config",
    "DebertaV2MaskedLMHead",
    "DebertaV2Model",
    "DebertaV2SequenceHead",
    "disentangled_bias",
    "relative_positions",
]


# ---------------------------------------------------------------------------- relative positions
def relative_positions(query_pos: Tensor, key_pos: Tensor, buckets: int, max_position: int) -> Tensor:
    """Relative positions ``query - key`` (Lq, Lk) long, log-bucketed beyond ``buckets / 2``.

    transformers' ``build_relative_position`` and ``make_log_bucket_position``, op for op (float32
    logs, so that every bucket boundary falls where theirs does): a distance ``r`` with
    ``|r| < mid = buckets // 2`` stays ``r``; a longer one becomes
    ``sign(r) · (mid + ⌈log(|r| / mid) / log((max_position - 1) / mid) · (mid - 1)⌉)``, so the
    ``buckets`` values span ±``max_position``."""
    rel = query_pos[:, None] - key_pos[None, :]  # (Lq, Lk)
    if buckets <= 0 or max_position <= 0:
        return rel
    sign = torch.sign(rel)
    mid = buckets // 2
    near = (rel < mid) & (rel > -mid)
    abs_pos = torch.where(near, torch.tensor(mid - 1).type_as(rel), rel.abs())  # (Lq, Lk)
    log_ratio = torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    log_pos = torch.ceil(log_ratio * (mid - 1)) + mid  # (Lq, Lk) float
    return torch.where(abs_pos <= mid, rel.type_as(log_pos), log_pos * sign).long()


def disentangled_bias(
    q: Tensor, k: Tensor, pos_query: Tensor | None, pos_key: Tensor | None, index: Tensor
) -> Tensor | None:
    """The relative terms of the attention scores, unscaled: c2p + p2c, (B, h, Lq, L), or None.

    q: (B, h, Lq, d); k: (B, h, L, d); pos_query, pos_key: (h, R, d) projected relative
    embeddings (None: that term is off); index: (Lq, L), the row of that R-row table for query i
    and key j (`AttentionPlan`).

    - c2p[i, j] = q_i · pos_key[index[i, j]]: the query against "the key is this far away";
    - p2c[i, j] = k_j · pos_query[index[i, j]]: the key against the same distance.
    Each is one matmul against the whole table, then a gather of the (Lq, L) entries wanted."""
    bsz, heads, q_len, _ = q.shape
    k_len = k.shape[2]
    bias: Tensor | None = None
    if pos_key is not None:
        c2p = torch.matmul(q, pos_key.transpose(-1, -2))  # (B, h, Lq, R)
        bias = c2p.gather(-1, index.expand(bsz, heads, q_len, k_len))  # (B, h, Lq, L)
    if pos_query is not None:
        p2c = torch.matmul(k, pos_query.transpose(-1, -2))  # (B, h, L, R): one row per key
        p2c = p2c.gather(-1, index.t().expand(bsz, heads, k_len, q_len))  # (B, h, L, Lq)
        p2c = p2c.transpose(-1, -2)  # (B, h, Lq, L)
        bias = p2c if bias is None else bias + p2c
    return bias


def biased_attention(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, key_mask: Tensor, scale: float, dropout_p: float
) -> Tensor:
    """``dropout(softmax((q kᵀ + bias) / scale)) v`` over the real keys.

    q: (B, h, Lq, d); k, v: (B, h, L, d); bias: (B, h, Lq, L) or None; key_mask: (B, 1, 1, L) bool,
    True for real keys. Returns (B, h, Lq, d). Without CPU dropout PyTorch's fused SDPA runs (the
    bias as its float mask: about 5× faster than the matmuls in eval); with it, the same maths by hand
    so that `fastbert.model.dropout` draws the mask."""
    lowest = torch.finfo(q.dtype).min
    if fast_dropout_applies(q, dropout_p):
        scores = torch.matmul(q, k.transpose(-1, -2))  # (B, h, Lq, L)
        if bias is not None:
            scores = scores + bias
        scores = (scores / scale).masked_fill(~key_mask, lowest)
        return torch.matmul(dropout(scores.softmax(-1), dropout_p), v)  # (B, h, Lq, d)
    if bias is None:
        mask = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device)  # (B, 1, 1, L)
    else:
        mask = bias / scale  # (B, h, Lq, L)
    mask = mask.masked_fill(~key_mask, lowest)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=1.0 / scale)


class AttentionPlan:
    """What attention needs about one packed batch, built once and shared by every layer.

    Holds the re-padding (`Repadder`), the key-padding mask and the relative-position index table
    of the disentangled attention, or the plain attention functions of a model without it."""

    def __init__(
        self, c: DebertaV2Config, cu_seqlens: Tensor, max_seqlen: int, attend: Attend | None
    ) -> None:
        self.repad = Repadder(cu_seqlens, max_seqlen)
        self.key_mask = self.repad.mask[:, None, None, :]  # (B, 1, 1, L) bool
        #: Plain attention over packed (T, h, d), and of the first tokens (B, h, d) only.
        self.attend = attend
        self.attend_first = first_query_attention(cu_seqlens, max_seqlen) if attend is not None else None
        #: (L, L): the relative embedding of query i and key j, as a row of ``table``.
        self.index = torch.empty(0, 0, dtype=torch.long, device=cu_seqlens.device)
        #: The rows of the (2S, H) relative embeddings this batch reaches (R of them).
        self.table = slice(0, 0)
        if c.relative_attention and max_seqlen:
            span = c.position_span
            pos = torch.arange(max_seqlen, device=cu_seqlens.device)
            rel = relative_positions(pos, pos, c.position_buckets, c.relative_span)  # (L, L): i - j
            # transformers builds c2p's table from rel and p2c's from -rel of the transposed
            # (key, query) pair; the buckets are odd in the distance, so the two are one table.
            index = (rel + span).clamp(0, 2 * span - 1)  # (L, L) rows of the 2S table
            # Short batches reach only the middle of the table (L = 128 of v3's 512 rows: 255):
            # projecting and scoring only those rows halves the c2p and p2c matmuls there.
            low, high = int(index.min()), int(index.max())
            self.table = slice(low, high + 1)
            self.index = index - low  # (L, L) rows of the R-row table


# ---------------------------------------------------------------------------- layers
class DebertaV2Embeddings(nn.Module):
    def __init__(self, c: DebertaV2Config) -> None:
        super().__init__()
        e = c.word_embedding_size
        self.word_embeddings = nn.Embedding(c.vocab_size, e, padding_idx=c.pad_token_id)
        self.position_embeddings = (
            nn.Embedding(c.max_position_embeddings, e) if c.position_biased_input else None
        )
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, e) if c.type_vocab_size > 0 else None
        self.embed_proj = nn.Linear(e, c.hidden_size, bias=False) if e != c.hidden_size else None
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, position_ids: Tensor) -> Tensor:
        x = self.word_embeddings(input_ids)  # (T, E)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:  # else token_type_ids are ignored, as transformers does
            x = x + self.token_type_embeddings(token_type_ids)
        if self.embed_proj is not None:
            x = self.embed_proj(x)  # (T, H)
        return self.dropout(self.LayerNorm(x))  # (T, H)


class DisentangledSelfAttention(nn.Module):
    def __init__(self, c: DebertaV2Config) -> None:
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        self.query_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.key_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.value_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.terms = c.attention_terms
        self.share_att_key = c.share_att_key
        self.relative = c.relative_attention and bool(self.terms)
        if c.relative_attention:
            self.pos_dropout = Dropout(c.hidden_dropout_prob)
            if not c.share_att_key:
                if "c2p" in self.terms:
                    self.pos_key_proj = nn.Linear(c.hidden_size, c.hidden_size)
                if "p2c" in self.terms:
                    self.pos_query_proj = nn.Linear(c.hidden_size, c.hidden_size)
        # transformers divides every term by √(d · (1 + number of relative terms)), even when
        # relative_attention is off.
        self.scale = math.sqrt(self.head_size * (1 + len(self.terms)))
        self.dropout_p = c.attention_probs_dropout_prob

    def position_projections(self, rel_embeddings: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """(R, H) relative embeddings -> (pos_query, pos_key), each (h, R, d) or None when unused."""
        rel = self.pos_dropout(rel_embeddings)  # (R, H)

        def heads(proj: nn.Module) -> Tensor:
            return proj(rel).view(rel.shape[0], self.num_heads, self.head_size).transpose(0, 1)  # (h, R, d)

        query = self.query_proj if self.share_att_key else getattr(self, "pos_query_proj", None)
        key = self.key_proj if self.share_att_key else getattr(self, "pos_key_proj", None)
        pos_query = heads(query) if "p2c" in self.terms and query is not None else None
        pos_key = heads(key) if "c2p" in self.terms and key is not None else None
        return pos_query, pos_key

    def forward(
        self, x: Tensor, x_out: Tensor, rel_embeddings: Tensor | None, plan: AttentionPlan, first: bool
    ) -> Tensor:
        # x: (T, H) packed, the keys and values; x_out: the query rows, x itself, or with ``first``
        # the first token of each sequence, (B, H). Returns the attention output of x_out's rows.
        h, d = self.num_heads, self.head_size
        q = self.query_proj(x_out).view(-1, h, d)  # (T or B, h, d)
        k = self.key_proj(x).view(-1, h, d)  # (T, h, d)
        v = self.value_proj(x).view(-1, h, d)  # (T, h, d)
        p = self.dropout_p if self.training else 0.0
        if not self.relative or rel_embeddings is None:
            # Plain attention (the Triton kernel's on CUDA): attend divides by √d; the rest of
            # DeBERTa's scale, √(1 + terms), is folded into q.
            attend = plan.attend_first if first else plan.attend
            assert attend is not None  # the plan has plain attention for a model without relative terms
            q = q * (math.sqrt(d) / self.scale)
            return attend(q, k, v, p).reshape(x_out.shape)  # (T or B, H)
        pos_query, pos_key = self.position_projections(rel_embeddings[plan.table])  # (h, R, d), or None
        r = plan.repad
        kp = r.pad(k).transpose(1, 2)  # (B, h, L, d)
        vp = r.pad(v).transpose(1, 2)  # (B, h, L, d)
        qp = q[:, :, None] if first else r.pad(q).transpose(1, 2)  # (B, h, Lq, d), Lq = 1 or L
        index = plan.index[:1] if first else plan.index  # (Lq, L): the first token sits at position 0
        bias = disentangled_bias(qp, kp, pos_query, pos_key, index)  # (B, h, Lq, L) or None
        ctx = biased_attention(qp, kp, vp, bias, plan.key_mask, self.scale, p)  # (B, h, Lq, d)
        if first:
            return ctx[:, :, 0].reshape(x_out.shape)  # (B, H)
        return r.unpad(ctx.transpose(1, 2)).reshape(x_out.shape)  # (T, H)


class DebertaV2Attention(nn.Module):
    def __init__(self, c: DebertaV2Config) -> None:
        super().__init__()
        self.self = DisentangledSelfAttention(c)
        self.output = BertSelfOutput(c)


class DebertaV2Layer(nn.Module):
    def __init__(self, c: DebertaV2Config) -> None:
        super().__init__()
        self.attention = DebertaV2Attention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertSelfOutput(c, in_features=c.intermediate_size)

    def forward(
        self, x: Tensor, rel_embeddings: Tensor | None, plan: AttentionPlan, rows: Tensor | None = None
    ) -> Tensor:
        # x: (T, H) packed; rel_embeddings: (2S, H) or None; rows: (B,) packed indices of the only
        # tokens whose output is wanted (each sequence's first, for the last layer under first-token
        # pooling): keys and values still come from every token.
        x_out = x if rows is None else x[rows]  # (T, H) or (B, H)
        ctx = self.attention.self(x, x_out, rel_embeddings, plan, rows is not None)  # (T or B, H)
        x = self.attention.output(ctx, x_out)
        return self.output(self.intermediate(x), x)  # (T or B, H)


class ConvLayer(nn.Module):
    """DeBERTa-v2's convolution over the embeddings, added to the first layer's output.

    Each sequence is convolved on its own: the packed tokens are re-padded with zeros, which is
    what transformers' masked embeddings hold at the padding."""

    def __init__(self, c: DebertaV2Config) -> None:
        super().__init__()
        size = c.conv_kernel_size
        self.conv = nn.Conv1d(
            c.hidden_size, c.hidden_size, size, padding=(size - 1) // 2, groups=c.conv_groups
        )
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = Dropout(c.hidden_dropout_prob)
        self.act = ACTIVATIONS[c.conv_act]

    def forward(self, embeddings: Tensor, residual: Tensor, repad: Repadder, rows: Tensor | None) -> Tensor:
        # embeddings: (T, H); residual: the first layer's output for the wanted rows, (T or B, H)
        t, hidden = embeddings.shape
        padded = repad.pad(embeddings.view(t, 1, hidden)).view(repad.batch, repad.max_seqlen, hidden)
        out = self.conv(padded.transpose(1, 2)).transpose(1, 2)  # (B, L, H)
        out = repad.unpad(out.reshape(repad.batch, repad.max_seqlen, 1, hidden)).view(t, hidden)  # (T, H)
        if rows is not None:
            out = out[rows]  # (B, H)
        return self.LayerNorm(residual + self.act(self.dropout(out)))


class DebertaV2Encoder(nn.Module):
    def __init__(self, c: DebertaV2Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(DebertaV2Layer(c) for _ in range(c.num_hidden_layers))
        self.relative_attention = c.relative_attention
        if c.relative_attention:
            self.rel_embeddings = nn.Embedding(2 * c.position_span, c.hidden_size)
        self.norm_rel = "layer_norm" in c.rel_norms
        if self.norm_rel:
            self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.conv = ConvLayer(c) if c.conv_kernel_size > 0 else None

    def rel_embedding(self) -> Tensor | None:
        """The relative-position embeddings every layer reads, (2S, H), or None."""
        if not self.relative_attention:
            return None
        rel: Tensor = self.rel_embeddings.weight
        return self.LayerNorm(rel) if self.norm_rel else rel


class DebertaV2Model(PackedEncoder):
    """DeBERTa-v2 / v3 encoder with the module names of ``transformers.DebertaV2Model``."""

    hf_prefix = "deberta."

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.config = config
        self.embeddings = DebertaV2Embeddings(config)
        self.encoder = DebertaV2Encoder(config)

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
        """input_ids: (T,) packed; cu_seqlens: (B+1,) int32. Returns hidden states (T, H), or with
        ``first_token_only`` those of each sequence's first token, (B, H)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = packed_positions(cu_seqlens, input_ids.numel())
        embedded = self.embeddings(input_ids, token_type_ids, position_ids)  # (T, H)
        plain = not (self.config.relative_attention and self.config.attention_terms)
        attend = self.attention_for(cu_seqlens, max_seqlen) if plain else None
        plan = AttentionPlan(self.config, cu_seqlens, max_seqlen, attend)
        rel = self.encoder.rel_embedding()  # (2S, H) or None
        first = cu_seqlens[:-1].long()  # (B,) packed row of each sequence's first token
        conv = self.encoder.conv
        x = embedded
        n = len(self.encoder.layer)
        for i, layer in enumerate(self.encoder.layer):
            rows = first if first_token_only and i == n - 1 else None
            x = self.run_layer(layer, x, rel, plan, rows)  # (T, H), or (B, H) for the last under rows
            if i == 0 and conv is not None:
                x = conv(embedded, x, plan.repad, rows)
        if first_token_only and n == 0:
            return x[first]
        return x


# ---------------------------------------------------------------------------- task layers
class ContextPooler(nn.Module):
    """DeBERTa's pooler over the first token: dropout(pooler_dropout) → dense → pooler_hidden_act."""

    def __init__(self, c: DebertaV2Config) -> None:
        super().__init__()
        size = c.pooler_hidden_size or c.hidden_size
        self.dense = new_linear(size, size, c.initializer_range)
        self.dropout = Dropout(c.pooler_dropout)
        self.act = ACTIVATIONS[c.pooler_hidden_act]

    def forward(self, first_token: Tensor) -> Tensor:
        return self.act(self.dense(self.dropout(first_token)))  # (B, H)


class DebertaV2SequenceHead(nn.Module):
    """``DebertaV2ForSequenceClassification``: pooler (ContextPooler) → dropout → classifier.

    ``dropout`` (or the config's ``cls_dropout``, else ``hidden_dropout_prob``) is the classifier's;
    the pooler keeps ``pooler_dropout``."""

    def __init__(self, c: DebertaV2Config, num_labels: int, dropout: float | None = None) -> None:
        super().__init__()
        if (c.pooler_hidden_size or c.hidden_size) != c.hidden_size:
            raise ValueError(
                f"pooler_hidden_size={c.pooler_hidden_size} differs from hidden_size {c.hidden_size}: "
                "transformers' ContextPooler reads the hidden state with it, so it cannot classify"
            )
        if dropout is None:
            dropout = c.hidden_dropout_prob if c.cls_dropout is None else c.cls_dropout
        self.pooler = ContextPooler(c)
        self.dropout = Dropout(dropout)
        self.classifier = new_linear(c.hidden_size, num_labels, c.initializer_range)

    def forward(self, first_token: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.pooler(first_token)))  # (B, H) -> (B, num_labels)


def deberta_token_head(c: DebertaV2Config, num_labels: int, dropout: float | None = None) -> nn.Sequential:
    """``DebertaV2ForTokenClassification``: dropout → classifier on every token, (B, L, H) -> (B, L, n)."""
    p = c.hidden_dropout_prob if dropout is None else dropout
    return dropout_classifier(c.hidden_size, num_labels, p, c.initializer_range)


class LegacyPredictionHeadTransform(nn.Module):
    def __init__(self, c: DebertaV2Config) -> None:
        super().__init__()
        e = c.word_embedding_size
        self.dense = new_linear(c.hidden_size, e, c.initializer_range)
        self.act = ACTIVATIONS[c.hidden_act]
        self.LayerNorm = nn.LayerNorm(e, eps=c.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.act(self.dense(x)))  # (..., E)


class LegacyLMPredictionHead(nn.Module):
    def __init__(self, c: DebertaV2Config, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.transform = LegacyPredictionHeadTransform(c)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.decoder = nn.Linear(c.word_embedding_size, c.vocab_size)
        # Tied as ``_tied_weights_keys`` says: the weight is the word embeddings, the bias is ``bias``.
        self.decoder.weight = word_embeddings.weight
        self.decoder.bias = self.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.transform(x))  # (..., vocab)


class LegacyOnlyMLMHead(nn.Module):
    def __init__(self, c: DebertaV2Config, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.predictions = LegacyLMPredictionHead(c, word_embeddings)


class LMPredictionHead(nn.Module):
    """``legacy=False``: dense → act → LayerNorm, then ``x · word_embeddingsᵀ + bias`` (no decoder layer)."""

    def __init__(self, c: DebertaV2Config, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.dense = new_linear(c.hidden_size, c.hidden_size, c.initializer_range)
        self.act = ACTIVATIONS[c.hidden_act]
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        self._word_embeddings = [word_embeddings]  # a list: the encoder owns (and saves) it

    def forward(self, x: Tensor) -> Tensor:
        x = self.LayerNorm(self.act(self.dense(x)))  # (..., H)
        return F.linear(x, self._word_embeddings[0].weight, self.bias)  # (..., vocab)


class OnlyMLMHead(nn.Module):
    def __init__(self, c: DebertaV2Config, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.lm_head = LMPredictionHead(c, word_embeddings)


class DebertaV2MaskedLMHead(nn.Module):
    """``DebertaV2ForMaskedLM``'s head: ``cls.predictions`` (legacy, the default) or ``lm_predictions``."""

    def __init__(self, c: DebertaV2Config, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        if not c.tie_word_embeddings:
            raise ValueError("tie_word_embeddings=False: fastbert's masked-LM decoder is always tied")
        self.legacy = c.legacy
        if c.legacy:
            self.cls = LegacyOnlyMLMHead(c, word_embeddings)
        else:
            if c.word_embedding_size != c.hidden_size:
                raise ValueError(
                    f"legacy=False with embedding_size={c.embedding_size} != hidden_size {c.hidden_size}: "
                    "transformers' lm_predictions multiplies the hidden state by the embeddings"
                )
            self.lm_predictions = OnlyMLMHead(c, word_embeddings)

    def forward(self, hidden: Tensor) -> Tensor:
        if self.legacy:
            return self.cls.predictions(hidden)  # (B, L, H) -> (B, L, vocab)
        return self.lm_predictions.lm_head(hidden)


DEBERTA = EncoderFamily(
    name="DeBERTa",
    model_types={"deberta-v2": "DebertaV2"},
    prefix="deberta",
    read_config=DebertaV2Config.from_dict,
    build=lambda config, pooler: DebertaV2Model(config),
    sequence_head=DebertaV2SequenceHead,
    token_head=deberta_token_head,
    masked_lm_head=DebertaV2MaskedLMHead,
    lora_targets=("query_proj", "value_proj"),
    # The relative-position bias depends on both positions: attention re-pads and runs in PyTorch.
    kernel_attention=False,
)
