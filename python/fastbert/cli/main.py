"""The ``fastbert`` command line (also ``python -m fastbert``): the parser and the driver.

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
import os
import sys
from collections.abc import Sequence

from fastbert.cli import dedup, evaluate, finetune, predict, report, tokenize
from fastbert.cli.common import PROG, CliError, Command, Stopped, UsageError

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommands, in the order ``fastbert --help`` lists them: one module each.
COMMANDS: list[Command] = [
    tokenize.COMMAND,
    finetune.COMMAND,
    predict.COMMAND,
    evaluate.COMMAND,
    report.COMMAND,
    dedup.COMMAND,
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
    except Stopped as e:
        print(f"{PROG} {command.name}: {e}", file=sys.stderr)
        return e.status
    except BrokenPipeError:
        # The reader went away (`fastbert tokenize f | head`): that is how a pipe
        # ends, not an error. Point stdout at /dev/null so the interpreter's final
        # flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{PROG} {command.name}: interrupted (Ctrl-C); nothing was written", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("FASTBERT_TRACEBACK"):
            raise
        message = str(e) if isinstance(e, CliError) else f"{type(e).__name__}: {e}"
        print(f"{PROG} {command.name}: error: {_one_line(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
