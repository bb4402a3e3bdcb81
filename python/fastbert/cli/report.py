"""``fastbert report``: rebuild a saved model's evaluation report and figures from its folder."""

from __future__ import annotations

import argparse
import sys

from fastbert.cli.common import PROG, CliError, Command, model_folder

__all__ = ["COMMAND"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Rebuild a saved model folder's evaluation report (report.json, report.md and the PNG "
        "figures) from its fastbert.json and eval_predictions.npz alone; files are replaced only "
        "once all of them are written."
    )
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by fastbert finetune")


def _run(args: argparse.Namespace) -> int:
    folder = model_folder(args.model_dir, "model folder")
    from fastbert.evaluation.predictions import FILENAME as PREDICTIONS_FILE
    from fastbert.evaluation.report import REPORT_JSON, REPORT_MD
    from fastbert.io import rebuild_report

    try:
        report = rebuild_report(folder)
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    except (ValueError, KeyError) as e:
        raise CliError(f"{args.model_dir}: cannot rebuild the report ({e})") from None
    for name in (REPORT_JSON, REPORT_MD, *report["plots"]):
        print(folder / name)
    if "examples" not in report:  # built without eval_predictions.npz
        print(
            f"{PROG} report: {folder} has no {PREDICTIONS_FILE}, so the report holds the saved metrics and "
            "the training curves only: no intervals, calibration, thresholds, selective prediction, "
            "slices or confusion matrix figure",
            file=sys.stderr,
        )
    return 0


COMMAND = Command(
    name="report",
    help="rebuild a saved model's evaluation report and figures from its folder",
    add_arguments=_add_arguments,
    run=_run,
)
