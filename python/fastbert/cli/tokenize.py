"""``fastbert tokenize``: text, one input per line, into ids, tokens, offsets and word ids."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from fastbert.cli.common import (
    CliError,
    Command,
    UsageError,
    atomic_output,
    default_model,
    non_negative,
    positive,
    read_lines,
)

__all__ = ["COMMAND"]

FORMATS = ("jsonl", "tokens", "ids")
# Lines encoded per call: large enough for the Rust threads to pay off, small
# enough that the Python objects of one batch stay a few tens of MB.
BATCH_LINES = 4096


def _add_arguments(p: argparse.ArgumentParser) -> None:
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
        type=positive,
        metavar="N",
        help="truncate to N tokens (special tokens included); the rest become overflowing windows",
    )
    p.add_argument(
        "--stride",
        type=non_negative,
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
        type=positive,
        metavar="N",
        help="Rust threads (default: FASTBERT_NUM_THREADS, else all cores)",
    )


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


def _run(args: argparse.Namespace) -> int:
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
    model = args.model if args.model is not None else default_model()

    from fastbert.text.tokenizer import Tokenizer

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


COMMAND = Command(
    name="tokenize",
    help="tokenize text, one input per line, into ids, tokens, offsets and word ids",
    add_arguments=_add_arguments,
    run=_run,
)
