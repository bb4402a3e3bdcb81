"""Fine-tuning with the Triton kernels on and off gives the same loss curve.

The same model (same initial weights, same batches, dropout 0 so that no random mask
separates the two runs) is trained by `fastbert.training.loop.train` twice: once on the PyTorch
paths and once with `fastbert.model.kernel_dispatch.enable_kernels` (varlen attention, and
the fused LoRA linear for the LoRA strategy). Per-step losses must agree, and both runs
must actually learn the task: a curve that stays flat would agree trivially.

Without CUDA this runs in Triton's interpreter on a tiny model (2 layers, head size 32)
in fp32, where the curves agree to ~1e-5. On a GPU it also runs at real size: a
randomly initialised BERT-base in bf16 autocast with SST-2-like lengths, where both
paths round differently at every step, so the tolerance is on the curve's average gap.

The task: a sequence is positive when it holds a marker token. Lengths include 1, values
that are not multiples of any block size, and mixes within one batch.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("triton")

from fastbert.config import FinetuneConfig
from fastbert.features.arrays import Features
from fastbert.model.bert import BertConfig
from fastbert.model.heads import SequenceClassifier
from fastbert.model.kernel_dispatch import enable_kernels
from fastbert.model.lora import add_lora
from fastbert.training.loop import train

MARKER = 7


def marker_task(rng: np.random.Generator, n: int, max_len: int, vocab: int) -> Features:
    lengths = rng.integers(1, max_len + 1, size=n)
    lengths[:3] = (1, max_len, max(1, max_len - 3))  # the extremes are always there
    ids = np.zeros((n, max_len), dtype=np.int32)
    labels = rng.integers(0, 2, size=n).astype(np.int64)
    for i, length in enumerate(lengths):
        row = rng.integers(MARKER + 1, vocab, size=length)
        if labels[i]:
            row[rng.integers(0, length)] = MARKER
        ids[i, :length] = row
    return Features(
        input_ids=ids, token_type_ids=np.zeros_like(ids), lengths=lengths.astype(np.int64), labels=labels
    )


def loss_curve(net: torch.nn.Module, feats: Features, cfg: FinetuneConfig, device: str) -> np.ndarray:
    history = train(net, cfg, feats, None, device=torch.device(device), log=lambda _: None)
    return np.asarray(history.train_loss)


def train_both(
    bert_cfg: BertConfig, feats: Features, cfg: FinetuneConfig, device: str, lora: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    torch.manual_seed(0)
    reference = SequenceClassifier(bert_cfg, num_labels=2)
    if lora:
        add_lora(reference, ("query", "value"), rank=8, alpha=16.0, dropout=0.0)
    fast = copy.deepcopy(reference)
    switched = enable_kernels(fast)
    torch.manual_seed(1)
    ref_curve = loss_curve(reference, feats, cfg, device)
    torch.manual_seed(1)
    fast_curve = loss_curve(fast, feats, cfg, device)
    return ref_curve, fast_curve, switched


def learned(curve: np.ndarray) -> bool:
    k = max(1, len(curve) // 5)
    return float(curve[-k:].mean()) < 0.8 * float(curve[:k].mean())


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_tiny_model_same_curve_with_and_without_kernels(strategy: str, device: str) -> None:
    bert_cfg = BertConfig(
        vocab_size=64,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    feats = marker_task(np.random.default_rng(0), n=64, max_len=13, vocab=64)
    cfg = FinetuneConfig(
        epochs=4,
        batch_size=16,
        lr=3e-3 if strategy == "full" else 1e-2,
        warmup_ratio=0.0,
        early_stopping_patience=None,
        precision="fp32",
        progress=False,
        seed=0,
        device=device,
    )
    ref, fast, switched = train_both(bert_cfg, feats, cfg, device, lora=strategy == "lora")
    assert switched == (["attention", "lora"] if strategy == "lora" else ["attention"])
    assert len(ref) == len(fast) == 16
    assert learned(ref) and learned(fast), (ref, fast)
    tol = 2e-3 if device == "cuda" else 1e-4  # TF32 dots on a GPU, exact fp32 in the interpreter
    np.testing.assert_allclose(fast, ref, atol=tol, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_bert_base_bf16_same_curve_with_and_without_kernels(strategy: str) -> None:
    bert_cfg = BertConfig(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # BERT-base shape
    # SST-2-like lengths: 4..66 tokens, a long tail.
    rng = np.random.default_rng(0)
    feats = marker_task(rng, n=1536, max_len=66, vocab=bert_cfg.vocab_size)
    cfg = FinetuneConfig(
        epochs=1,
        batch_size=32,
        lr=1e-4 if strategy == "full" else 1e-3,
        early_stopping_patience=None,
        precision="bf16",
        progress=False,
        seed=0,
        device="cuda",
    )
    ref, fast, _ = train_both(bert_cfg, feats, cfg, "cuda", lora=strategy == "lora")
    assert learned(ref) and learned(fast), (ref, fast)
    gap = float(np.abs(fast - ref).mean())
    assert gap < 0.05 * float(np.abs(ref).mean()), (gap, ref, fast)
