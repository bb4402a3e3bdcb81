"""The rest of the recipe: gradient checkpointing, layer-wise learning-rate decay, label smoothing,
``max_steps``, evaluation every N steps and every epoch, the precision that runs (bf16 on CPUs
with and without native bf16, fp16 with its gradient scaler), and the MLM head of a checkpoint
that has none. Each is a `FinetuneConfig` field with a command-line flag.

Runs use the tiny random BERT of ``conftest.py``: they check mechanics, not quality.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbert
from fastbert.cli.finetune import _finetune_options
from fastbert.cli.main import build_parser
from fastbert.config import FinetuneConfig
from fastbert.data import Examples
from fastbert.features.batches import make_batch
from fastbert.features.featurize import featurize
from fastbert.model import device as device_mod
from fastbert.model.build import apply_strategy, build_model
from fastbert.model.device import RunPrecision, cpu_bf16_feature, resolve_precision
from fastbert.text.tokenizer import Tokenizer
from fastbert.training import loop as loop_mod
from fastbert.training.loss import task_loss
from fastbert.training.optim import build_optimizer

CPU = torch.device("cpu")


def rows(n: int) -> list[dict[str, str]]:
    return [
        {
            "text": f"item {i} " + "very " * (i % 4) + ("good" if i % 2 == 0 else "bad"),
            "label": "pos" if i % 2 == 0 else "neg",
        }
        for i in range(n)
    ]


def options(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "epochs": 1, "batch_size": 8, "progress": False, "max_length": 24, "seed": 0,
        "leakage": "off", "calibrate": False, "tune_thresholds": False,
    }  # fmt: skip
    base.update(kw)
    return base


def parsed(*argv: str) -> dict[str, Any]:
    """The FinetuneConfig options ``fastbert finetune ARGV`` sets."""
    return _finetune_options(build_parser().parse_args(["finetune", *argv]))


# ----------------------------------------------------------------------------- gradient checkpointing
def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_gradients(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastbert.model import bert

    calls: list[int] = []
    forward = bert.BertLayer.forward

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(bert.BertLayer, "forward", counted)
    cfg = FinetuneConfig(max_length=24, dropout=0.1)
    tok = Tokenizer.from_pretrained(tiny_model)
    ex = Examples(
        texts=[r["text"] for r in rows(12)],
        pairs=None,
        labels=np.array([i % 2 for i in range(12)]),
        label_names=["a", "b"],
        source="<test>",
        rows=np.arange(1, 13),
    )
    feats = featurize(tok, ex, cfg)
    batch = make_batch(feats, np.arange(12), CPU)

    def gradients(checkpointing: bool) -> tuple[dict[str, torch.Tensor], int]:
        torch.manual_seed(0)
        model = build_model(cfg, tiny_model, 2)
        apply_strategy(model, FinetuneConfig(gradient_checkpointing=checkpointing))
        model.train()
        calls.clear()
        torch.manual_seed(1)  # the dropout masks (fastbert's dropout draws its seeds from here)
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        task_loss("classification", logits, batch["labels"], None).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return grads, len(calls)

    plain, plain_calls = gradients(False)
    recomputed, recomputed_calls = gradients(True)
    layers = 2
    assert plain_calls == layers and recomputed_calls == 2 * layers  # each layer ran again in backward
    assert plain.keys() == recomputed.keys()
    for name, grad in plain.items():
        # The recomputation replays the same dropout masks: the very same gradients.
        assert torch.equal(grad, recomputed[name]), name
    assert parsed("--gradient-checkpointing")["gradient_checkpointing"] is True
    assert "gradient_checkpointing" not in parsed()


# ----------------------------------------------------------------------------- lr_decay
@given(decay=st.floats(0.5, 1.0))
@settings(max_examples=8, deadline=None)
def test_layer_wise_lr_decay_gives_each_layer_its_rate(tiny_model: Path, decay: float) -> None:
    cfg = FinetuneConfig(lr=1e-3, lr_decay=decay)
    model = build_model(cfg, tiny_model, 3)
    opt = build_optimizer(model, cfg)
    lr_of = {id(p): group["lr"] for group in opt.param_groups for p in group["params"]}
    assert len(lr_of) == sum(1 for p in model.parameters() if p.requires_grad)
    n = len(model.encoder.layers)
    for name, p in model.named_parameters():
        if name.startswith("bert.embeddings."):
            want = 1e-3 * decay**n
        elif name.startswith("bert.encoder.layer."):
            want = 1e-3 * decay ** (n - 1 - int(name.split(".")[3]))
        else:  # the pooler and the classifier
            want = 1e-3
        assert math.isclose(lr_of[id(p)], want, rel_tol=1e-12), name
    # Weight decay is still off for biases and LayerNorm, whatever the rate.
    for group in opt.param_groups:
        names = [n for n, p in model.named_parameters() if any(p is q for q in group["params"])]
        if group["weight_decay"] == 0:
            assert all(n.endswith("bias") or "LayerNorm" in n for n in names)


def test_lr_decay_off_keeps_the_two_groups_bert_uses(tiny_model: Path) -> None:
    cfg = FinetuneConfig(lr=2e-5)
    opt = build_optimizer(build_model(cfg, tiny_model, 2), cfg)
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [(2e-5, 0.01), (2e-5, 0.0)]
    assert parsed("--lr-decay", "0.9")["lr_decay"] == 0.9
    with pytest.raises(ValueError, match=r"lr_decay must be in \(0, 1\], not 1.5"):
        FinetuneConfig(lr_decay=1.5).validate()


# ----------------------------------------------------------------------------- label smoothing
@given(
    logits=st.lists(st.lists(st.floats(-8, 8), min_size=4, max_size=4), min_size=1, max_size=6),
    eps=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=30, deadline=None)
def test_label_smoothing_is_the_smoothed_cross_entropy(
    logits: list[list[float]], eps: float, seed: int
) -> None:
    x = torch.tensor(logits, dtype=torch.float64)
    y = torch.from_numpy(np.random.default_rng(seed).integers(0, 4, len(logits)))
    # By hand: the target puts 1 - eps on the true class and eps / C on every class.
    logp = x.log_softmax(-1).numpy()
    target = np.full(logp.shape, eps / 4)
    target[np.arange(len(y)), y.numpy()] += 1 - eps
    want = -(target * logp).sum(-1).mean()
    got = task_loss("classification", x, y, None, label_smoothing=eps)
    assert math.isclose(float(got), want, rel_tol=1e-5, abs_tol=1e-6)
    # Token tasks smooth too, and skip the ignored positions.
    token_labels = torch.cat([y, torch.tensor([-100])])
    token_logits = torch.cat([x, torch.zeros(1, 4, dtype=x.dtype)])[None]
    got_token = task_loss("token", token_logits, token_labels[None], None, label_smoothing=eps)
    assert math.isclose(float(got_token), want, rel_tol=1e-5, abs_tol=1e-6)


def test_label_smoothing_trains_and_is_refused_where_it_means_nothing(tiny_model: Path) -> None:
    plain = fastbert.finetune(rows(32), rows(8), model=tiny_model, **options())
    smooth = fastbert.finetune(rows(32), rows(8), model=tiny_model, **options(label_smoothing=0.2))
    assert smooth.config.label_smoothing == 0.2
    assert smooth.history.train_loss[0] != plain.history.train_loss[0]  # the loss it optimises differs
    with pytest.raises(ValueError, match="label_smoothing applies to the classification, pair and token"):
        FinetuneConfig(task="regression", label_smoothing=0.1).validate()
    assert parsed("--label-smoothing", "0.1")["label_smoothing"] == 0.1


# ----------------------------------------------------------------------------- max_steps, eval_epochs
def test_max_steps_overrides_epochs_and_ends_the_schedule_there(tiny_model: Path) -> None:
    # 32 rows / batch 8 = 4 steps an epoch: 10 steps run into a third epoch.
    lrs: list[float] = []

    class Rates:
        def on_step_end(self, state: Any) -> None:
            lrs.append(state.learning_rate)

    ft = fastbert.finetune(
        rows(32),
        rows(8),
        model=tiny_model,
        callbacks=[Rates()],
        **options(epochs=1, max_steps=10, warmup_ratio=0.0),
    )
    assert ft.history.steps == list(range(1, 11))
    # Linear decay from the peak to 0 at step 10: the rate of step k (1-based) is lr · (10 - k + 1) / 10.
    assert lrs == pytest.approx([5e-5 * (10 - k) / 10 for k in range(10)])
    assert [e["step"] for e in ft.history.evals] == [4, 8, 10]  # two epoch ends, then the last step
    assert parsed("--max-steps", "10")["max_steps"] == 10


def test_evaluation_every_n_steps_and_also_at_each_epoch_end(tiny_model: Path) -> None:
    steps_only = fastbert.finetune(rows(32), rows(8), model=tiny_model, **options(epochs=2, eval_steps=3))
    both = fastbert.finetune(
        rows(32), rows(8), model=tiny_model, **options(epochs=2, eval_steps=3, eval_epochs=True)
    )
    assert [e["step"] for e in steps_only.history.evals] == [3, 6, 8]
    assert [e["step"] for e in both.history.evals] == [3, 4, 6, 8]
    assert parsed("--eval-steps", "3", "--eval-epochs") == {"eval_steps": 3, "eval_epochs": True}


# ----------------------------------------------------------------------------- precision
def test_cpu_bf16_is_read_from_the_cpu_flags() -> None:
    assert cpu_bf16_feature("processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx2\n") == "avx512_bf16"
    assert cpu_bf16_feature("flags : fpu amx_bf16 avx512_bf16 amx_tile\n") == "amx_bf16"
    assert cpu_bf16_feature("flags : fpu sse avx2 avx512f\n") is None


def test_the_precision_that_runs_is_said_for_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def cpu_with(flag: str | None) -> None:
        monkeypatch.setattr(device_mod, "_detected_cpu_bf16", lambda: flag)

    cpu_with("avx512_bf16")
    assert resolve_precision(CPU, "bf16") == RunPrecision(
        "bf16", "bf16 autocast: the CPU has native bf16 (avx512_bf16)"
    )
    cpu_with(None)
    none = resolve_precision(CPU, "bf16")
    assert none.dtype == "fp32" and "this CPU has no native bf16" in none.reason
    cpu_with("amx_bf16")
    assert resolve_precision(CPU, "auto").dtype == "fp32"
    assert resolve_precision(CPU, "fp16").dtype == "fp32"
    assert resolve_precision(CPU, "fp32").dtype == "fp32"


@pytest.mark.parametrize("native", ["avx512_bf16", None])
def test_bf16_on_the_cpu_runs_in_bf16_only_where_the_cpu_has_it(
    native: str | None, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both paths on any machine: the detection is replaced, and autocast's bf16 runs on any CPU.
    monkeypatch.setattr(device_mod, "_detected_cpu_bf16", lambda: native)
    dtypes: set[torch.dtype] = set()
    original = torch.nn.Linear.forward

    def spy(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        out = original(self, x)
        if self.training:
            dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    ft = fastbert.finetune(
        rows(16), rows(8), model=tiny_model, out=tmp_path / "run", **options(precision="bf16")
    )
    want = "bf16" if native else "fp32"
    assert ft.history.precision == want
    assert dtypes == {torch.bfloat16 if native else torch.float32}
    saved = json.loads((tmp_path / "run" / "fastbert.json").read_text())
    assert saved["history"]["precision"] == want
    if native is None:
        # Where bf16 is not there, the run is the fp32 run, weight for weight.
        monkeypatch.setattr(torch.nn.Linear, "forward", original)
        fp32 = fastbert.finetune(rows(16), rows(8), model=tiny_model, **options(precision="fp32"))
        for k, v in fp32.model.state_dict().items():
            assert torch.equal(v, ft.model.state_dict()[k]), k


def test_fp16_scales_the_loss_and_checkpoints_the_scaler(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fp16 runs on CUDA; its scaler path is the same code on the CPU, with fp16 autocast there.
    monkeypatch.setattr(loop_mod, "resolve_precision", lambda device, requested: RunPrecision("fp16", "test"))
    scaled: list[float] = []
    original = torch.amp.GradScaler.scale

    def spy(self: torch.amp.GradScaler, outputs: Any) -> Any:
        scaled.append(float(self.get_scale()) if self.is_enabled() else 0.0)
        return original(self, outputs)

    monkeypatch.setattr(torch.amp.GradScaler, "scale", spy)
    out = tmp_path / "run"
    ft = fastbert.finetune(
        rows(16), rows(8), model=tiny_model, out=out, **options(precision="fp16", epochs=2)
    )
    assert ft.history.precision == "fp16"
    assert len(scaled) == 4 and all(s > 1 for s in scaled)  # each step's loss was scaled up
    state = json.loads(next((out / "checkpoints").glob("step-*/state.json")).read_text())
    assert state["scaler"]["scale"] == pytest.approx(scaled[-1], rel=0.5)
    # Resumed, the scaler goes on from its saved state.
    loaded: list[dict[str, Any]] = []
    monkeypatch.setattr(torch.amp.GradScaler, "load_state_dict", lambda self, sd: loaded.append(sd))
    fastbert.finetune(rows(16), rows(8), resume=out, epochs=3)
    assert loaded and loaded[0]["scale"] == state["scaler"]["scale"]


# ----------------------------------------------------------------------------- MLM head
def test_mlm_from_a_checkpoint_without_an_mlm_head_says_so_and_ties_the_decoder(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fastbert"):
        head = build_model(FinetuneConfig(task="mlm"), tiny_model, 0)
    warned = [r.getMessage() for r in caplog.records if "masked-language-model head" in r.getMessage()]
    assert (
        len(warned) == 1
        and str(tiny_model) in warned[0]
        and "cls.predictions.transform.dense.weight" in warned[0]
    )
    decoder = head.cls.predictions.decoder.weight
    assert decoder is head.encoder.embeddings.word_embeddings.weight


def test_mlm_from_a_checkpoint_with_its_head_loads_it_quietly(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "with-head"
    folder.mkdir()
    for f in tiny_model.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    donor = build_model(FinetuneConfig(task="mlm"), tiny_model, 0)
    with torch.no_grad():
        donor.cls.predictions.transform.dense.weight.fill_(0.25)
    state = load_file(str(folder / "model.safetensors"))
    state.update(
        {
            k: v.contiguous()
            for k, v in donor.state_dict().items()
            if k.startswith("cls.predictions.transform")
        }
    )
    state["cls.predictions.bias"] = donor.state_dict()["cls.predictions.bias"].contiguous()
    save_file(state, str(folder / "model.safetensors"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fastbert"):
        head = build_model(FinetuneConfig(task="mlm"), folder, 0)
    assert not [r for r in caplog.records if "masked-language-model head" in r.getMessage()]
    assert torch.all(head.cls.predictions.transform.dense.weight == 0.25)
