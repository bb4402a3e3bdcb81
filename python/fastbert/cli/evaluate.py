"""``fastbert evaluate``: score a saved model on labelled data, optionally slice by slice."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fastbert.cli.common import (
    PROG,
    CliError,
    Command,
    atomic_output,
    check_output_path,
    existing_file,
    load_model,
    model_folder,
    positive,
    progress,
)
from fastbert.cli.formatting import format_metrics, format_slices
from fastbert.conversions import json_ready
from fastbert.errors import DataError

__all__ = ["COMMAND"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--batch-size", type=positive, default=64, metavar="N", help="default 64")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda, ... (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _with_progress(ft: Any, texts: int, shown: bool, batch_size: int, ex: Any) -> Any:
    """``ft.evaluate_examples(ex)`` with a bar on stderr (3,080 texts took half a minute in
    silence), advanced by each batch the model runs: texts, or windows of long texts."""
    one_row_a_text = ft.config.long_text == "truncate"
    # Windows per text are known only once the texts are tokenized: a count without an end.
    bar = progress(texts if one_row_a_text else None, "text" if one_row_a_text else "window", shown)
    hook = None
    if bar is not None:
        hook = ft.model.register_forward_hook(
            lambda module, inputs, output: bar.update(int(inputs[0].shape[0]))
        )
    try:
        return ft.evaluate_examples(ex, batch_size=batch_size)
    finally:
        if hook is not None:
            hook.remove()
        if bar is not None:
            bar.close()


def _run(args: argparse.Namespace) -> int:
    existing_file(args.data, "--data")
    model_folder(args.model_dir, "model folder")
    check_output_path(args.output)  # before the model runs, not after it
    ft = load_model(args.model_dir, args.device)
    from fastbert.data.examples import load_examples
    from fastbert.evaluation.slices import evaluation_slices

    cfg = ft.config
    try:
        ex = load_examples(
            args.data,
            ft.task,
            text_column=args.text_column or cfg.text_column,
            text_pair_column=args.text_pair_column or cfg.text_pair_column,
            label_column=args.label_column or cfg.label_column,
            label_names=ft.label_names if ft.task not in ("regression", "mlm") else None,
            split="eval",
            numbered_labels=False,
            names_from=ft.names_description(),
        )
    except (DataError, FileNotFoundError) as e:
        raise CliError.of(e) from None
    print(f"{PROG} evaluate: {len(ex)} examples from {args.data}", file=sys.stderr)
    evaluation = _with_progress(ft, len(ex), not args.no_progress, args.batch_size, ex)
    metrics = evaluation.metrics
    if args.slice_by is not None:
        if evaluation.predictions is None:
            raise CliError(f"--slice-by {args.slice_by}: an MLM model's loss has no slices")
        try:
            metrics["slices"] = evaluation_slices(
                evaluation.predictions, args.data, args.slice_by, ft.temperature, ft.thresholds
            )
        except DataError as e:
            raise CliError.of(e) from None
        except ValueError as e:
            raise CliError(f"--slice-by {args.slice_by}: {e}") from None
    print(f"{ft.task} metrics on {args.data} ({len(ex)} examples):")
    full_table = (
        f"the full table is in {args.output}" if args.output else "--output FILE.json writes the full table"
    )
    print(format_metrics(metrics, full_table))
    if "slices" in metrics:
        print(format_slices(metrics["slices"]))
    if args.output is not None:
        from fastbert.evaluation.metrics import with_stored_confusion
        from fastbert.evaluation.report import json_text

        report = {
            "model": str(Path(args.model_dir).resolve()),
            "data": args.data,
            "task": ft.task,
            "examples": len(ex),
            # The confusion matrix as report.json holds it: sparse for many classes.
            "metrics": with_stored_confusion(metrics),
        }
        with atomic_output(args.output) as out:
            out.write(json_text(json_ready(report)).encode("utf-8"))
    return 0


COMMAND = Command(
    name="evaluate",
    help="score a saved model on labelled data: accuracy, F1, per-class table, ...",
    add_arguments=_add_arguments,
    run=_run,
)
