"""Folders written whole: a saved model or a checkpoint is either all there, or not there at all.

`write_folder` writes into a hidden sibling, ``.NAME.XXXX.partial``, and only once every file is
written (and a completion marker last of all) renames it to ``.NAME.XXXX.ready``, then puts it
in place:

- where the target does not exist, with one ``rename``;
- where it does (``overwrite``), with one ``renameat2(RENAME_EXCHANGE)`` on Linux, which swaps
  the two folders atomically: at every instant the target is the old model or the new one, for
  any process reading it. Where the exchange is not available (another OS, a file system
  without it) the old folder is renamed aside (``.NAME.XXXX.old``) and the new one in.

A crash can stop this at any step. `recover` (run by every save, load and training run that
names the folder) puts things right from what it finds: a ``.partial`` folder is an unfinished
write and is removed (and said so, with its size); a ``.ready`` folder is a finished write that
never got in place, put in place now, unless the target is newer (the exchange happened and the
``.ready`` name holds the replaced folder), then removed; an ``.old`` folder is removed once the
target exists, and moved back if the target is missing.

Every file is flushed to the disk (``fsync``) before the rename, and the renames after it, so
that a power cut or a reboot also finds the old folder or the new one, whole.

Files and folders get the permissions the umask gives any new file (``mkdtemp`` would leave them
private, ``0700``), so that a serving account can read a saved model. A full disk raises
``OSError`` naming the folder and the space left, with nothing left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["MARKER", "check_writable", "recover", "write_folder"]

log = logging.getLogger("fastbert")

#: Written last into a folder being written: its completion time. Folders without it were cut short.
MARKER = ".fastbert-complete"
PARTIAL, READY, OLD = ".partial", ".ready", ".old"


def _siblings(target: Path, suffix: str) -> list[Path]:
    prefix = f".{target.name}."
    parent = target.parent
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix))


def _completed_at(folder: Path) -> int:
    """When ``folder`` was completely written (ns), from its marker; 0 for a folder without one
    (a model saved before the marker existed counts as the oldest)."""
    try:
        return int(json.loads((folder / MARKER).read_text(encoding="utf-8"))["completed_ns"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def recover(target: Path) -> list[str]:
    """Finish or roll back a write of ``target`` that a crash interrupted, and remove unfinished
    ones. Returns one line per thing done (also logged as a warning); empty when all was well."""
    target = Path(target)
    done: list[str] = []
    for partial in _siblings(target, PARTIAL):
        size = _megabytes(partial)
        shutil.rmtree(partial, ignore_errors=True)
        done.append(f"removed {partial} ({size:.1f} MB), the unfinished folder of an interrupted save")
    for ready in _siblings(target, READY):
        if not target.exists():
            os.rename(ready, target)
            done.append(f"finished an interrupted save: moved {ready.name} into place as {target}")
        elif _completed_at(ready) > _completed_at(target):
            _swap_in(ready, target)
            done.append(f"finished an interrupted save: {target} now holds the newer folder {ready.name}")
        else:
            shutil.rmtree(ready, ignore_errors=True)
            done.append(f"removed {ready.name}, the folder an interrupted save had replaced in {target}")
    for old in _siblings(target, OLD):
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            done.append(f"removed {old.name}, the folder an interrupted save had replaced in {target}")
        else:
            os.rename(old, target)
            done.append(f"rolled back an interrupted save: moved {old.name} back to {target}")
    for line in done:
        log.warning(line)
    return done


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(ready: Path, target: Path) -> None:
    """Put the complete folder ``ready`` in place of the existing ``target``, then drop the old."""
    if _exchange(ready, target):
        shutil.rmtree(ready)  # the name `ready` now holds the replaced folder
        return
    old = ready.with_name(ready.name[: -len(READY)] + OLD)
    os.rename(target, old)
    os.rename(ready, target)
    shutil.rmtree(old)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _give_usual_permissions(folder: Path) -> None:
    """The modes the umask gives new files and folders (``mkdtemp`` makes the folder ``0700``)."""
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _sync(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to the disk: without it, a power cut or a
    reboot soon after the rename could bring back the new names with empty files in them."""
    for path in [*folder.rglob("*"), folder]:
        _fsync(path)


def _out_of_space(e: BaseException) -> bool:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # safetensors reports a full disk as its own error type, with the OS message in the text.
    return "No space left on device" in str(e) or "Disk quota exceeded" in str(e)


def write_folder(
    target: Path, write: Callable[[Path], None], *, overwrite: bool = False, keep: tuple[str, ...] = ()
) -> Path:
    """Write a folder at ``target`` whole: ``write(folder)`` fills a hidden sibling, which then
    replaces ``target`` in one step (see the module docstring). Returns the resolved target.
    ``keep``: entries of the existing ``target`` (a run's ``checkpoints``) moved into the new
    folder just before the swap, so that they survive it.

    A non-empty ``target`` needs ``overwrite``. Whatever ``write`` raises leaves ``target`` as it
    was and no sibling behind; a full disk is re-raised as ``OSError`` naming the folder and the
    space left."""
    target = Path(target).resolve()
    recover(target)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{target} exists and is not empty; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=PARTIAL, dir=target.parent))
    try:
        write(partial)
        (partial / MARKER).write_text(json.dumps({"completed_ns": time.time_ns()}) + "\n", encoding="utf-8")
        _give_usual_permissions(partial)
        _sync(partial)
    except BaseException as e:
        shutil.rmtree(partial, ignore_errors=True)
        if _out_of_space(e):
            free = shutil.disk_usage(target.parent).free
            raise OSError(
                errno.ENOSPC,
                f"no space left on the device to write {target} ({free / 1e6:.1f} MB free in {target.parent})",
            ) from e
        raise
    ready = partial.with_name(partial.name[: -len(PARTIAL)] + READY)
    os.rename(partial, ready)
    for name in keep:  # a crash from here on: recover() swaps the complete `ready` in
        if (target / name).exists() and not (ready / name).exists():
            os.rename(target / name, ready / name)
    if target.exists():
        _swap_in(ready, target)
    else:
        os.rename(ready, target)
    _fsync(target.parent)  # the renames themselves
    return target


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(folder: Path, what: str) -> None:
    """Fail at once, naming ``what`` (a flag or argument), when files cannot be created in
    ``folder`` (or in the nearest existing folder above it, where it would be created)."""
    folder = Path(folder).resolve()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{what} {folder}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise PermissionError(f"{what} {folder}: cannot write in {existing} ({e.strerror or e})") from None
    with contextlib.suppress(OSError):
        recover(folder)
