"""``fastbert finetune``: fine-tune an encoder and save it; with no data, the bundled BANKING77 sample.

The bundled sample ships in ``fastbert/sample_data`` (CC BY 4.0, with its license and
attribution beside it). PyTorch is imported only once the arguments have been checked, so that a
usage error answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args

from fastbert.atomic_folder import check_writable
from fastbert.cli.common import (
    PROG,
    CliError,
    Command,
    Stopped,
    UsageError,
    check_device,
    existing_file,
    flag_names,
    model_folder,
    non_negative,
    positive,
    positive_float,
)
from fastbert.cli.formatting import format_metrics, format_seed_summary, number
from fastbert.cli.settings import parse_set
from fastbert.config import REPORT_TO, TASKS, FinetuneConfig, Pooling, Strategy

__all__ = ["COMMAND", "DEFAULT_OUT", "SAMPLE_DEFAULTS", "sample_dir"]

#: Where ``fastbert finetune`` without ``--out`` saves the model (relative to the working folder).
DEFAULT_OUT = "fastbert-model"
#: The bundled data, inside the installed package: ``fastbert/sample_data/banking77_sample``.
SAMPLE_PARTS = ("sample_data", "banking77_sample")
#: Options of the no-argument run, where the command line does not set them. Measured on a
#: 2-core CPU: see README.md ("Fine-tuning") for the time and the dev accuracy they give.
SAMPLE_DEFAULTS: dict[str, Any] = {"epochs": 4.0, "lr": 2e-4, "batch_size": 16, "max_length": 64}


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


class _ProgressLog(logging.Handler):
    """The trainer's log lines (one per evaluation) on stderr, without breaking a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            # Warnings (train/dev leakage, `fastbert.data.leakage`) are not evaluation lines.
            warning = record.levelno >= logging.WARNING
            tqdm.write(f"warning: {record.getMessage()}" if warning else self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _show_training_log() -> Iterator[None]:
    logger = logging.getLogger("fastbert")
    handler = _ProgressLog()
    handler.setFormatter(logging.Formatter("  %(message)s"))
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def _default(field: str) -> str:
    """`` (default X; bundled sample: Y)`` for a flag's help, from `FinetuneConfig` itself."""
    value = next(f.default for f in fields(FinetuneConfig) if f.name == field)
    text = f" (default {value:g}" if isinstance(value, (int, float)) else f" (default {value}"
    if field in SAMPLE_DEFAULTS:
        text += f"; {SAMPLE_DEFAULTS[field]:g} for the bundled sample"
    return text + ")"


def _add_arguments(p: argparse.ArgumentParser) -> None:
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
        help=(
            "Hugging Face checkpoint folder to start from: BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA, "
            "DeBERTa-v2/v3 or ModernBERT (default: the packaged all-MiniLM-L6-v2)"
        ),
    )
    data.add_argument(
        "--out", metavar="DIR", help=f"where to save the model (default: ./{DEFAULT_OUT}); written atomically"
    )
    data.add_argument("--overwrite", action="store_true", help="replace --out if it is a non-empty folder")
    data.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run saved in DIR (its --out) from its newest checkpoint, on the same data "
        "(default: the run's --train and --eval files) with the same settings; only --epochs, --max-steps, "
        "--device, --checkpoint-every, --keep-checkpoints, --log-every, --report-to and --no-progress may change",
    )
    data.add_argument("--text-column", metavar="NAME", help="the text column (default: detected by name)")
    data.add_argument("--text-pair-column", metavar="NAME", help="the second text column (pair tasks)")
    data.add_argument("--label-column", metavar="NAME", help="the label column (default: detected by name)")

    train = p.add_argument_group("training (FinetuneConfig fields; see fastbert.FinetuneConfig)")
    train.add_argument(
        "--epochs", type=positive_float, metavar="N", help="passes over the data" + _default("epochs")
    )
    train.add_argument(
        "--batch-size", type=positive, metavar="N", help="examples per step" + _default("batch_size")
    )
    train.add_argument("--lr", type=positive_float, metavar="LR", help="peak learning rate" + _default("lr"))
    train.add_argument(
        "--max-length",
        type=positive,
        metavar="N",
        help="tokens per example, longer are cut" + _default("max_length"),
    )
    train.add_argument("--seed", type=non_negative, metavar="N", help="random seed" + _default("seed"))
    train.add_argument(
        "--seeds",
        type=non_negative,
        nargs="+",
        metavar="N",
        help="train once per seed (instead of --seed) and print each dev metric's mean ± std; the model "
        "saved is the seed with the best dev metric",
    )
    train.add_argument(
        "--strategy",
        choices=get_args(Strategy),
        help="what trains: everything, the head only, all but the lower layers (--set freeze_layers=N), "
        "or LoRA adapters" + _default("strategy"),
    )
    train.add_argument("--pooling", choices=get_args(Pooling), help="sentence vector" + _default("pooling"))
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

    recipe = p.add_argument_group("the rest of the recipe, and the run's log (OUT/log.jsonl)")
    recipe.add_argument(
        "--max-steps", type=positive, metavar="N", help="train for N optimizer steps (instead of --epochs)"
    )
    recipe.add_argument(
        "--eval-steps", type=positive, metavar="N", help="evaluate every N steps (default: at each epoch end)"
    )
    recipe.add_argument(
        "--eval-epochs",
        action="store_true",
        default=None,
        help="with --eval-steps, also evaluate at each epoch end",
    )
    recipe.add_argument(
        "--early-stopping-patience",
        type=positive,
        metavar="N",
        help="stop after N evaluations in a row without improvement"
        + _default("early_stopping_patience")
        + "; --set early_stopping_patience=null never stops early",
    )
    recipe.add_argument(
        "--lr-decay",
        type=positive_float,
        metavar="F",
        help="layer-wise learning-rate decay: each layer trains at F times the rate of the one above "
        "(e.g. 0.9; default 1, off)",
    )
    recipe.add_argument(
        "--label-smoothing",
        type=float,
        metavar="F",
        help="cross-entropy label smoothing for classification, pair and token tasks (e.g. 0.1; default 0)",
    )
    recipe.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        default=None,
        help="recompute activations in the backward pass: less memory, more time per step "
        "(1.5x on MiniLM on a CPU)",
    )
    recipe.add_argument(
        "--log-every",
        type=positive,
        metavar="N",
        help="write a line to OUT/log.jsonl every N steps" + _default("log_every"),
    )
    recipe.add_argument(
        "--report-to",
        choices=REPORT_TO,
        action="append",
        metavar="|".join(REPORT_TO),
        help='also log to TensorBoard event files in OUT/tensorboard (pip install "fastbert[tensorboard]")',
    )

    ckpt = p.add_argument_group("checkpoints (in --out/checkpoints; Ctrl-C or SIGTERM writes one and stops)")
    ckpt.add_argument(
        "--checkpoint-every",
        type=positive,
        metavar="N",
        help="also write a checkpoint every N optimizer steps (default: at each epoch end only)",
    )
    ckpt.add_argument(
        "--keep-checkpoints",
        type=positive,
        metavar="K",
        help="keep the last K checkpoints, and the best evaluation's" + _default("keep_checkpoints"),
    )


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
    "checkpoint_every": "checkpoint_every",
    "keep_checkpoints": "keep_checkpoints",
    "max_steps": "max_steps",
    "eval_steps": "eval_steps",
    "eval_epochs": "eval_epochs",
    "early_stopping_patience": "early_stopping_patience",
    "lr_decay": "lr_decay",
    "label_smoothing": "label_smoothing",
    "gradient_checkpointing": "gradient_checkpointing",
    "log_every": "log_every",
    "report_to": "report_to",
}


def _flag(field: str) -> str:
    """How the command line sets the `FinetuneConfig` field ``field``."""
    if field == "progress":
        return "--no-progress"
    if field in CONFIG_FLAGS.values():
        return "--" + next(f for f, k in CONFIG_FLAGS.items() if k == field).replace("_", "-")
    return f"--set {field}"


def _in_flags(message: str) -> str:
    """A `FinetuneConfig.validate` message in the command line's words: a field that has a flag
    of its own is named by it (``lr_decay must be ...`` → ``--lr-decay must be ...``). Fields set
    with ``--set`` keep their names, which are what the user typed. A plain word such as
    ``model`` is replaced only where it opens the message, where it can only be the field."""
    for field in CONFIG_FLAGS.values():
        if "_" not in field and message.startswith(f"{field} "):
            message = _flag(field) + message[len(field) :]
    return flag_names(message, {field: _flag(field) for field in CONFIG_FLAGS.values() if "_" in field})


def _finetune_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {field: getattr(args, flag) for flag, field in CONFIG_FLAGS.items()}
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if v is not None}
    for key, value in parse_set(args.set).items():
        if key in options:
            raise UsageError(f"--set {key} and {_flag(key)} both set {key}; give one")
        options[key] = value
    if args.no_progress:
        options["progress"] = False
    return options


def _check_out(out: Path, overwrite: bool) -> None:
    """Everything about ``--out`` that can fail, before any training: a save that fails after
    an hour of training loses the hour. Also finishes or rolls back an interrupted save there."""
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: exists and is not a folder")
    try:
        check_writable(out, "--out")
    except OSError as e:
        raise CliError.of(e) from None
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CliError(f"--out {out}: folder exists and is not empty; pass --overwrite to replace it")


def _run(args: argparse.Namespace) -> int:
    if args.seeds is not None and args.seed is not None:
        raise UsageError("give --seed or --seeds, not both")
    options = _finetune_options(args)
    if args.resume is not None:
        return _resume(args, options)
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
        existing_file(train, "--train")
        if dev is not None:
            existing_file(dev, "--eval")
    if options.get("model") is not None:
        model_folder(options["model"], "--model")
    out = Path(args.out if args.out is not None else DEFAULT_OUT)
    _check_out(out, args.overwrite)

    try:
        config = FinetuneConfig(**options)
        config.validate()
    except (TypeError, ValueError) as e:
        raise UsageError(_in_flags(str(e))) from None
    check_device(config.device)

    from fastbert.finetuning import finetune

    # One seed: the run lives in --out (its checkpoints as it trains, the model at the end).
    # Several seeds: each trains in memory and the best is saved.
    run_out = out if args.seeds is None else None
    ft = _training(
        out,
        lambda: finetune(train, dev, config=config, seeds=args.seeds, out=run_out, overwrite=args.overwrite),
    )
    if args.seeds is None:
        saved = out.resolve()
    else:
        try:
            saved = ft.save(out, overwrite=args.overwrite)
        except OSError as e:  # FileExistsError included: --out filled up while training ran
            raise CliError(f"--out {out}: cannot save the model ({e})") from None
    _summary(ft, config, train, dev, saved)
    return 0


def _resume(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``--resume DIR``: the run's data files and settings come from its newest checkpoint."""
    run = Path(args.resume)
    for flag, given in (("--seeds", args.seeds is not None), ("--overwrite", args.overwrite)):
        if given:
            raise UsageError(f"{flag} cannot be used with --resume")
    if args.out is not None and Path(args.out).resolve() != run.resolve():
        raise UsageError(
            f"a resumed run goes on in its own folder: --out {args.out} differs from --resume {run}"
        )
    if not run.is_dir():
        raise CliError(f"--resume {run}: no such folder")

    from fastbert.training.checkpoint import ConfigChanged, latest_checkpoint, load_state

    latest = latest_checkpoint(run)
    if latest is None:
        raise CliError(f"--resume {run}: no complete checkpoint in {run / 'checkpoints'} to continue from")
    state = load_state(latest)
    recorded = state["data"]
    train = args.train if args.train is not None else recorded.get("train_data")
    dev = args.eval if args.eval is not None else recorded.get("eval_data")
    if train is None:
        raise UsageError(
            f"the run in {run} was given its data in Python, not as a file: pass --train (and --eval)"
        )
    for path, flag in ((train, "--train"), (dev, "--eval")):
        if path is not None and not Path(path).is_file():
            raise CliError(f"{flag} {path}: the run's data file is gone; pass {flag} FILE with the same data")
    config = FinetuneConfig.from_dict(state["config"])
    check_device(options.get("device", config.device))
    print(
        f"{PROG} finetune: resuming {run} from {latest.name} (step {state['position']['step']}), "
        f"training on {train}",
        file=sys.stderr,
    )

    from fastbert.finetuning import finetune

    def resumed() -> Any:
        try:
            return finetune(train, dev, resume=run, **options)
        except ConfigChanged as e:
            raise CliError(str(e.named({f.name: _flag(f.name) for f in fields(FinetuneConfig)}))) from None

    ft = _training(run, resumed)
    _summary(ft, ft.config, train, dev, run.resolve())
    return 0


def _training(out: Path, run: Callable[[], Any]) -> Any:
    """``run()`` with the evaluation lines shown, its errors as messages for the user, and an
    interruption (Ctrl-C, SIGTERM) told with the checkpoint it left and how to go on."""
    from fastbert.training.loop import TrainingInterrupted

    try:
        with _show_training_log():
            return run()
    except TrainingInterrupted as e:
        where = f"; its checkpoint is {e.checkpoint}" if e.checkpoint is not None else ""
        raise Stopped(
            f"stopped by {signal.Signals(e.signum).name} after step {e.step}{where}\n"
            f"continue with: {PROG} finetune --resume {out}",
            128 + e.signum,
        ) from None
    except (ValueError, OSError, ModuleNotFoundError) as e:
        # DataError, the checks of the model folder and of max_length, a full disk: messages for the user.
        raise CliError.of(e) from None


def _summary(ft: Any, config: FinetuneConfig, train: str, dev: str | None, saved: Path) -> None:
    history = ft.history
    info = ft.data_info
    where = dev if dev is not None else f"a {config.dev_fraction:.0%} stratified split of {train}"
    # Tuned thresholds change the decisions, so the table's scores differ from the training
    # log's (argmax) for the same weights: each is named for what it is.
    tuned = getattr(ft, "thresholds", None) is not None
    cut = ", decisions at the thresholds tuned on these same examples" if tuned else ""
    print(f"dev metrics ({info.get('dev_examples')} examples from {where}{cut}):")
    print(format_metrics(ft.metrics, f"the full table is in {saved / 'report.json'}"))
    if ft.seed_summary is not None:
        print(format_seed_summary(ft.seed_summary))
    if history is not None:
        metric = config.resolved_metric()[0]
        steps = history.steps[-1] if history.steps else 0
        if history.best_score is None:
            best = f"no dev evaluation gave a number for {metric}, so the last weights were kept"
        else:
            during = " during training (argmax decisions, before tuning thresholds)" if tuned else ""
            best = (
                f"the best dev {metric}{during}, {number(history.best_score)}, came at step "
                f"{history.best_step} of {steps}"
            )
        included = "evaluations"
        if history.checkpoint_seconds:
            included += f" and {history.checkpoint_seconds:.1f} s of checkpoint writing"
        print(
            f"trained on {info.get('train_examples')} examples in {history.train_seconds:.0f} s "
            f"({history.train_samples_per_second:.1f} samples/s, {included} included); {best}"
        )
    print(f"saved the model to {saved}")
    kept = _last_checkpoint(saved)
    if kept is not None:
        print(kept)
    sys.stdout.flush()


def _last_checkpoint(saved: Path) -> str | None:
    """A line on the checkpoint a finished run keeps in its folder: where, how large, what for."""
    from fastbert.training.checkpoint import checkpoints_of

    found = checkpoints_of(saved)
    if not found:
        return None
    size = sum(f.stat().st_size for folder in found for f in folder.rglob("*") if f.is_file())
    return (
        f"its last checkpoint ({size / 1e6:.0f} MB) stays in {found[-1]}, to train on with --resume "
        f"{saved} --epochs N; delete {found[-1].parent} to keep only the model"
    )


COMMAND = Command(
    name="finetune",
    help="fine-tune an encoder on labelled data (no arguments: MiniLM on a BANKING77 sample)",
    add_arguments=_add_arguments,
    run=_run,
)
