"""Progress on stderr, for the training loop and the command line alike: a tqdm bar on a terminal,
plain lines where stderr is a pipe or a log file."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["LineProgress", "progress_bar"]


def progress_bar(
    total: int | None, unit: str, *, leave: bool = True, desc: str | None = None, initial: int = 0
) -> Any:
    """A bar of ``total`` steps of ``unit`` on stderr, named ``desc``, starting at ``initial``.

    On a terminal a tqdm bar (``None`` when tqdm is not installed). Elsewhere a `LineProgress`:
    tqdm writes every refresh as new text there, so a pipe got the final bar twice."""
    if not sys.stderr.isatty():
        return LineProgress(total, unit, desc=desc, initial=initial)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total, unit=unit, leave=leave, desc=desc, initial=initial, dynamic_ncols=True, file=sys.stderr
    )


class LineProgress:
    """Progress as lines of text: one every ``every`` seconds while work goes on, and one at the
    end, never the same line twice. It answers the calls the code makes of a tqdm bar
    (``update``, ``set_postfix``, ``close``)."""

    def __init__(
        self, total: int | None, unit: str, *, desc: str | None = None, initial: int = 0, every: float = 30.0
    ) -> None:
        self.total, self.unit, self.desc, self.n, self.every = total, unit, desc, initial, every
        self.postfix = ""
        self.start = self.last = time.perf_counter()
        self.printed: tuple[int, str] | None = None

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.perf_counter() - self.last >= self.every:
            self._print()

    def set_postfix(
        self, ordered: dict[str, Any] | None = None, refresh: bool = False, **values: Any
    ) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in {**(ordered or {}), **values}.items())

    def close(self) -> None:
        if self.n or self.total:
            self._print()

    def line(self) -> str:
        seconds = time.perf_counter() - self.start
        head = f"{self.desc}: " if self.desc else ""
        tail = f", {self.postfix}" if self.postfix else ""
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        return f"{head}{count} {self.unit}s in {seconds:.1f} s{tail}"

    def _print(self) -> None:
        self.last = time.perf_counter()
        said = (self.n, self.postfix)
        if said != self.printed:  # the same count and postfix: nothing new to say
            print(self.line(), file=sys.stderr, flush=True)
            self.printed = said
