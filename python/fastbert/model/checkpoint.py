"""A Hugging Face checkpoint folder: its ``config.json`` and its weights.

Weights are read from ``model.safetensors``, or from ``pytorch_model.bin`` through
``torch.load(weights_only=True)`` only: nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fastbert.conversions import read_json_object

__all__ = ["check_model_folder", "load_state_dict", "read_config", "read_config_file"]

#: What `check_model_folder` says a model folder holds.
MODEL_FOLDER = (
    "a model folder holds config.json, the weights (model.safetensors or pytorch_model.bin) and the "
    "tokenizer (tokenizer.json or vocab.txt), as transformers' save_pretrained writes them"
)


def check_model_folder(path: Path) -> None:
    """Raise, naming ``path`` and what a model folder holds, unless it is a folder with a config.json
    (a data file passed as the model said only that "[PAD]" was not in its vocabulary)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model folder")
    if not path.is_dir():
        raise ValueError(f"{path} is a file, not a model folder: {MODEL_FOLDER}")
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} has no config.json, so it is not a model folder: {MODEL_FOLDER}")


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` as a dict; a missing or unreadable file raises naming it."""
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json in the model folder")
    return read_config_file(path)


def read_config_file(path: Path) -> dict[str, Any]:
    """A ``config.json`` as a dict; raises naming the file when it is missing or not a JSON object."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    return read_json_object(path)


def load_state_dict(folder: Path) -> dict[str, Tensor]:
    """Weights from a model folder: safetensors first; a ``.bin`` only through ``weights_only=True``."""
    st = folder / "model.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(st))
        except Exception as e:  # safetensors raises its own error types
            raise ValueError(f"{st}: cannot read safetensors weights ({e})") from e
    binary = folder / "pytorch_model.bin"
    if binary.is_file():
        try:
            return torch.load(binary, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{binary}: cannot read weights with weights_only=True ({e})") from e
    raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin")
