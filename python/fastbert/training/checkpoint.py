"""Checkpoints of a training run: everything needed to continue it exactly, in safetensors and JSON.

A checkpoint is a folder ``RUN/checkpoints/step-N/``, written whole or not at all
(`fastbert.atomic_folder`), holding:

- ``model.safetensors``: the trained module's weights (LoRA adapters and frozen layers included;
  tied weights once); ``best.safetensors``: the best evaluation's weights so far, if any;
- ``optimizer.safetensors``: AdamW's moments and step counts, one tensor each;
- ``rng.safetensors``: the PyTorch CPU (and CUDA) generator states, the generator of the MLM
  masks, and NumPy's Mersenne Twister key;
- ``state.json``: the step, the epoch and the position in the epoch's batch plan, the samples
  and seconds so far, the history (early stopping counts from it), the fp16 gradient scaler, the scheduler's state, the
  optimizer's parameter groups, Python's and NumPy's generator positions, the full config and
  the data's fingerprints and files (`Checkpoint.data`).

Nothing is pickled. `load_checkpoint` reads one back; `latest_checkpoint` finds the newest
complete one (an interrupted write never counts: it is never in place); `prune` keeps the last
``keep`` and the one of the best evaluation.
"""

from __future__ import annotations

import dataclasses
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

from fastbert._version import __version__
from fastbert.atomic_folder import MARKER, recover, write_folder
from fastbert.config import RESUMABLE_CHANGES, FinetuneConfig
from fastbert.conversions import json_ready, read_json_object

__all__ = [
    "CHECKPOINTS",
    "Checkpoint",
    "ConfigChanged",
    "Position",
    "check_same_data",
    "latest_checkpoint",
    "load_checkpoint",
    "load_state",
    "prune",
    "restore_model",
    "restore_optimizer",
    "restore_rng",
    "resumed_config",
    "save_checkpoint",
]

#: The folder of a run that holds its checkpoints.
CHECKPOINTS = "checkpoints"
FORMAT = 1
_STEP = re.compile(r"step-(\d+)")


@dataclass
class Position:
    """Where a run stands between two optimizer steps: what moves besides the tensors."""

    step: int = 0
    epoch: int = 0
    #: Batches of this epoch's plan already trained on.
    position: int = 0
    samples: int = 0
    #: Training seconds before the current process (a resumed run adds its own).
    seconds: float = 0.0


_POSITION_FIELDS = {f.name for f in dataclasses.fields(Position)}


@dataclass
class Checkpoint:
    """A checkpoint as read back: tensors and plain data, nothing yet applied."""

    folder: Path
    position: Position
    history: dict[str, Any]
    config: dict[str, Any]
    #: ``train_sha256``/``dev_sha256`` (`fastbert.data.data_fingerprint`), and the data files
    #: ``train_data``/``eval_data`` (``None`` for data given in memory).
    data: dict[str, Any]
    scheduler: dict[str, Any]
    param_groups: list[dict[str, Any]]
    optimizer_tensors: dict[str, Tensor]
    rng_tensors: dict[str, Tensor]
    rng_state: dict[str, Any]
    best: dict[str, Tensor] | None = field(default=None, repr=False)
    #: The fp16 gradient scaler's state (``torch.amp.GradScaler.state_dict``), or ``None``.
    scaler: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- writing
def save_checkpoint(
    run_dir: Path,
    *,
    model: nn.Module,
    best: dict[str, Tensor] | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: dict[str, Any] | None,
    generator: torch.Generator,
    position: Position,
    history: dict[str, Any],
    config: dict[str, Any],
    data: dict[str, Any],
) -> Path:
    """Write ``run_dir/checkpoints/step-N`` (N = ``position.step``) whole; returns its path."""
    opt_state = optimizer.state_dict()
    optimizer_tensors: dict[str, Tensor] = {}
    for index, values in opt_state["state"].items():
        for name, value in values.items():
            tensor = value if isinstance(value, Tensor) else torch.tensor(value)
            optimizer_tensors[f"state.{index}.{name}"] = tensor.detach().cpu().contiguous()
    rng_tensors = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            rng_tensors[f"cuda.{i}"] = cuda_state
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)  # legacy=True: (kind, key, pos, has_gauss, cached_gaussian)
    np_kind, np_key, np_pos, np_has_gauss, np_gauss = np_state
    rng_tensors["numpy_key"] = torch.from_numpy(np.asarray(np_key, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "format": FORMAT,
        "fastbert": __version__,
        "position": dataclasses.asdict(position),
        "history": history,
        "config": config,
        "data": data,
        "scheduler": scheduler.state_dict(),
        "scaler": scaler,
        "param_groups": opt_state["param_groups"],
        "rng": {
            "python": [py_version, list(py_state), py_gauss],
            "numpy": [np_kind, int(np_pos), int(np_has_gauss), float(np_gauss)],
        },
    }

    def write(folder: Path) -> None:
        save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
        if best is not None:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in best.items()}, str(folder / "best.safetensors")
            )
        save_file(optimizer_tensors, str(folder / "optimizer.safetensors"))
        save_file({k: v.contiguous() for k, v in rng_tensors.items()}, str(folder / "rng.safetensors"))
        (folder / "state.json").write_text(_dumps(state), encoding="utf-8")

    return write_folder(run_dir / CHECKPOINTS / f"step-{position.step}", write, overwrite=True)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(json_ready(value), indent=1, allow_nan=False) + "\n"


# ----------------------------------------------------------------------------- reading
def checkpoints_of(run_dir: Path) -> list[Path]:
    """The complete checkpoints of a run, oldest step first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        match = _STEP.fullmatch(folder.name)
        if match and folder.is_dir():
            recover(folder)  # finish or roll back an interrupted write first
            if (folder / MARKER).is_file() and (folder / "state.json").is_file():
                found.append((int(match.group(1)), folder))
    return [folder for _, folder in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of ``run_dir``, or ``None``."""
    found = checkpoints_of(run_dir)
    return found[-1] if found else None


def load_state(folder: Path) -> dict[str, Any]:
    """A checkpoint's ``state.json`` (no tensors): position, config, data files and fingerprints."""
    state = read_json_object(folder / "state.json")
    if state.get("format") != FORMAT:
        raise ValueError(
            f"{folder / 'state.json'}: checkpoint format {state.get('format')!r} is not {FORMAT}"
        )
    return state


def load_checkpoint(folder: Path) -> Checkpoint:
    """Read a checkpoint folder (nothing is unpickled); raises naming the file that is wrong."""
    state = load_state(folder)
    best = folder / "best.safetensors"
    return Checkpoint(
        folder=folder,
        position=Position(**{k: v for k, v in state["position"].items() if k in _POSITION_FIELDS}),
        history=state["history"],
        config=state["config"],
        data=state["data"],
        scheduler=state["scheduler"],
        param_groups=state["param_groups"],
        optimizer_tensors=load_file(str(folder / "optimizer.safetensors")),
        rng_tensors=load_file(str(folder / "rng.safetensors")),
        rng_state=state["rng"],
        best=load_file(str(best)) if best.is_file() else None,
        scaler=state.get("scaler"),
    )


def restore_model(checkpoint: Checkpoint, model: nn.Module) -> None:
    """Put the checkpoint's weights into ``model`` (the module training runs: the same layout)."""
    missing, unexpected = load_model(model, str(checkpoint.folder / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint.folder / 'model.safetensors'} does not fit the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )


def restore_optimizer(checkpoint: Checkpoint, optimizer: torch.optim.Optimizer) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, tensor in checkpoint.optimizer_tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in checkpoint.param_groups]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def restore_rng(checkpoint: Checkpoint, generator: torch.Generator) -> None:
    """Every random stream as it was at the checkpoint: Python's, NumPy's, PyTorch's (which
    seeds fastbert's dropout), CUDA's, and the generator of the MLM masks."""
    tensors = checkpoint.rng_tensors
    torch.set_rng_state(tensors["torch"])
    generator.set_state(tensors["generator"])
    cuda = sorted((int(k.split(".")[1]), v) for k, v in tensors.items() if k.startswith("cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([v for _, v in cuda])
    version, py_state, gauss = checkpoint.rng_state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, pos, has_gauss, cached = checkpoint.rng_state["numpy"]
    key = tensors["numpy_key"].numpy().astype(np.uint32)
    np.random.set_state((kind, key, pos, has_gauss, cached))


def resumed_config(checkpoint: Checkpoint, given: dict[str, Any]) -> FinetuneConfig:
    """The config of the run ``checkpoint`` belongs to, with the fields ``given`` now set; refuses
    (naming each field, then and now) any change outside `fastbert.config.RESUMABLE_CHANGES`."""
    saved = FinetuneConfig.from_dict(checkpoint.config)
    changed = [
        (name, getattr(saved, name), value)
        for name, value in given.items()
        if name not in RESUMABLE_CHANGES and _normal(getattr(saved, name)) != _normal(value)
    ]
    if changed:
        raise ConfigChanged(checkpoint.folder, changed)
    return dataclasses.replace(saved, **given)


class ConfigChanged(ValueError):
    """A resumed run asked for a setting its checkpoint was not trained with.

    ``changed``: ``(field, the run's value, the value asked for)`` for each such field."""

    def __init__(
        self, folder: Path, changed: list[tuple[str, Any, Any]], names: dict[str, str] | None = None
    ):
        self.folder, self.changed = folder, changed
        names = names or {}
        what = "; ".join(f"{names.get(n, n)} {then!r} → {now!r}" for n, then, now in changed)
        allowed = ", ".join(names.get(n, n) for n in sorted(RESUMABLE_CHANGES))
        super().__init__(
            f"{folder}: the run cannot be resumed with a different {what}; a resumed run may change only {allowed}"
        )

    def named(self, names: dict[str, str]) -> ConfigChanged:
        """The same error, naming each field as ``names`` says (the command line's flags)."""
        return ConfigChanged(self.folder, self.changed, names)


def _normal(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_same_data(checkpoint: Checkpoint, fingerprints: dict[str, Any], sources: dict[str, str]) -> None:
    """Refuse to resume on other data than the run's, naming which set differs and where it came from."""
    for name in ("train_sha256", "dev_sha256"):
        if checkpoint.data.get(name) != fingerprints.get(name):
            which = name.split("_")[0]
            raise ValueError(
                f"{checkpoint.folder}: the {which} data differs from the run's ({sources.get(which)}: "
                f"SHA-256 {str(fingerprints.get(name))[:12]}…, the run had {str(checkpoint.data.get(name))[:12]}…); "
                "resume with the same data"
            )


def prune(run_dir: Path, keep: int, best_step: int | None) -> list[Path]:
    """Remove all but the last ``keep`` checkpoints and the best evaluation's; returns the removed."""
    found = checkpoints_of(run_dir)
    kept = set(found[-keep:]) if keep > 0 else set()
    removed = []
    for folder in found:
        if folder in kept or folder.name == f"step-{best_step}":
            continue
        shutil.rmtree(folder)
        removed.append(folder)
    return removed
