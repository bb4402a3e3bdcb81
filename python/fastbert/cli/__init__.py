"""The ``fastbert`` command line: one module per command, the driver in `fastbert.cli.main`."""

from fastbert.cli.common import CliError, Command, UsageError
from fastbert.cli.finetune import SAMPLE_DEFAULTS
from fastbert.cli.main import COMMANDS, build_parser, main
from fastbert.cli.settings import parse_set

__all__ = [
    "COMMANDS",
    "SAMPLE_DEFAULTS",
    "CliError",
    "Command",
    "UsageError",
    "build_parser",
    "main",
    "parse_set",
]
