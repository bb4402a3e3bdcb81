"""`fastbert.model.kernel_dispatch`: which models the kernels take over, and that they can give them back.

The attention kernel takes any head size up to its ``MAX_HEAD_DIM`` (128), padding the head to
a power of two inside (`tests/kernels/test_attention.py` checks sizes 8 and 40 against fp64);
dispatch must hand it every such model, not only the tuned sizes 32, 64 and 128.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from fastbert.kernels import attention
from fastbert.model import kernel_dispatch
from fastbert.model.bert import BertConfig
from fastbert.model.heads import SequenceClassifier
from fastbert.model.lora import LoRALinear, add_lora


def classifier(hidden: int, heads: int) -> SequenceClassifier:
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return SequenceClassifier(cfg, num_labels=2)


def test_dispatch_allows_every_head_size_the_kernel_takes() -> None:
    assert kernel_dispatch.MAX_HEAD_DIM == attention.MAX_HEAD_DIM
    for hidden, heads in ((80, 2), (48, 1), (128, 1), (96, 3)):  # head sizes 40, 48, 128, 32
        net = classifier(hidden, heads)
        assert "attention" in kernel_dispatch.enable_kernels(net), hidden // heads
        assert net.encoder.attention_fn is not None
    too_wide = classifier(160, 1)
    assert "attention" not in kernel_dispatch.enable_kernels(too_wide)
    assert too_wide.encoder.attention_fn is None


def test_the_kernels_run_a_head_size_of_40_as_the_pytorch_path_does(
    device: str, gen: torch.Generator
) -> None:
    torch.manual_seed(0)
    net = classifier(80, 2).to(device).eval()
    ids = torch.randint(3, 100, (3, 9), generator=gen).to(device)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    mask[2, 1:] = 0
    with torch.no_grad():
        want = net(ids, mask)
        kernel_dispatch.enable_kernels(net)
        got = net(ids, mask)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_disable_kernels_gives_the_model_back_to_pytorch() -> None:
    net = classifier(64, 2)
    add_lora(net, ("query", "value"), rank=4, alpha=8.0, dropout=0.1)
    assert kernel_dispatch.enable_kernels(net) == ["attention", "lora"]
    adapters = [m for m in net.modules() if isinstance(m, LoRALinear)]
    assert adapters and all(m.fused for m in adapters)
    kernel_dispatch.disable_kernels(net)
    assert net.encoder.attention_fn is None
    assert not any(m.fused for m in adapters)


@pytest.mark.parametrize("model_type", ["roberta", "distilbert", "electra", "deberta-v2", "modernbert"])
def test_every_family_runs_on_the_kernels_as_on_the_pytorch_path(
    model_type: str, device: str, gen: torch.Generator
) -> None:
    """The attention kernel takes the attention of every family whose attention is plain
    dot-product (ModernBERT's local layers with its window); DeBERTa's stays in PyTorch. Logits
    and gradients are those of the PyTorch path, with attention-probability dropout off."""
    from family_checkpoints import hf_config

    from fastbert.model.encoder import FAMILIES

    family = FAMILIES[model_type]
    raw = hf_config(
        model_type,
        100,
        {"pad": 0, "cls": 1, "sep": 2},
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=40,
        local_attention=4,  # ModernBERT: a window of ±2 inside 11-token sequences
        dim=32,  # DistilBERT's names
        n_heads=2,
        hidden_dim=48,
        embedding_size=16,  # ELECTRA: the projection too
    ).to_dict()
    raw.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, seq_classif_dropout=0.0)
    config = family.read_config(raw, model_type)
    torch.manual_seed(0)
    net = SequenceClassifier(config, num_labels=3, family=family).to(device).train()
    ids = torch.randint(3, 100, (3, 11), generator=gen).to(device)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 1:] = 0

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        net.zero_grad()
        logits = net(ids, mask)
        logits.square().sum().backward()
        return logits.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]

    want, want_grads = run()
    switched = kernel_dispatch.enable_kernels(net)
    assert ("attention" in switched) == family.kernel_attention
    got, got_grads = run()
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=2e-5, rtol=1e-4)
