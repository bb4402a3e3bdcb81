"""fastbert's PEP 517 build backend: maturin's, plus one step that ships ``kernels/``.

Why this exists: the Triton kernels live in a top-level ``kernels/`` folder (next
to ``rust/`` and ``python/``, see STYLE.md), but must install as
``fastbert.kernels``. maturin (1.16) cannot do that by itself:
``python-packages`` ignores a folder outside ``python-source``, ``include``
places it at a top-level import path in the wheel (``kernels/…``), and it does
not follow symlinks.

So every hook that builds something first *syncs*: it copies ``kernels/*.py``
into ``python/fastbert/kernels/`` (a generated, git-ignored, read-only copy;
``kernels/_init.py`` becomes its ``__init__.py``, see ``INIT_SOURCE``) and
then calls maturin's hook of the same name. maturin skips git-ignored files when
it packs ``python/``; the repository's ``.ignore`` re-includes this one folder for
it (maturin walks with the ``ignore`` crate, where ``.ignore`` outranks
``.gitignore``; git does not read ``.ignore``). ``build_wheel`` does not rely on
that: it then checks the wheel and adds or replaces any ``fastbert/kernels/``
file that is missing or differs, rewriting ``RECORD``. ``build_sdist`` adds
``kernels/`` and ``build_backend/`` to the source archive, so a wheel built from
the sdist goes through this same step.

Developer paths that bypass PEP 517 (``maturin develop``, ``maturin build``) run
the same copy with ``python -m build_backend.sync`` first (``make build-dev``
does). ``python -m build_backend.sync --check`` fails when the copy is stale.

Only the standard library is imported at module level, so the sync command
works without maturin installed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import sys
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path("kernels")  # relative to the project root
TARGET = Path("python") / "fastbert" / "kernels"
# Files of kernels/ that become modules of fastbert.kernels (README.md stays in the repository).
PATTERN = "*.py"
# kernels/_init.py becomes fastbert/kernels/__init__.py. The source folder must not be a regular
# package: `kernels` is also a PyPI package that transformers imports when it finds one on sys.path.
INIT_SOURCE = "_init.py"


def _target_name(source_name: str) -> str:
    return "__init__.py" if source_name == INIT_SOURCE else source_name


# What the sdist must carry besides maturin's own selection, so that building from it works.
SDIST_EXTRA = ("kernels", "build_backend")


def _plan(root: Path) -> tuple[dict[Path, bytes], list[Path]]:
    """(files to write → content, stale files to remove) for the copy under ``root``."""
    src, dst = root / SOURCE, root / TARGET
    wanted = {dst / _target_name(p.name): p.read_bytes() for p in sorted(src.glob(PATTERN)) if p.is_file()}
    if not wanted:
        raise FileNotFoundError(f"{src}: no {PATTERN} files to ship as fastbert.kernels")
    write = {p: data for p, data in wanted.items() if not p.is_file() or p.read_bytes() != data}
    stale = sorted(p for p in dst.glob(PATTERN) if p not in wanted) if dst.is_dir() else []
    return write, stale


def sync_kernels(root: Path | str = ROOT, *, quiet: bool = False) -> list[str]:
    """Copy ``kernels/*.py`` to ``python/fastbert/kernels/``; returns the changed paths.

    Idempotent and cheap (files are compared first). Copies are made read-only so
    that an edit to the wrong file fails at once instead of being overwritten later.
    A missing ``kernels/`` (an sdist of an older layout) is not an error.
    """
    root = Path(root)
    if not (root / SOURCE).is_dir():
        return []
    write, stale = _plan(root)
    (root / TARGET).mkdir(parents=True, exist_ok=True)
    for path, data in write.items():
        if path.exists():
            path.chmod(stat.S_IWUSR | stat.S_IRUSR)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    for path in stale:
        path.unlink()
    changed = [str(p.relative_to(root)) for p in [*write, *stale]]
    if changed and not quiet:
        print(f"fastbert_build: synced {SOURCE}/ -> {TARGET}/ ({len(changed)} changed)", file=sys.stderr)
    return changed


def check_kernels(root: Path | str = ROOT) -> list[str]:
    """Paths under ``python/fastbert/kernels/`` that differ from ``kernels/`` (empty when in sync)."""
    root = Path(root)
    if not (root / SOURCE).is_dir():
        return []
    write, stale = _plan(root)
    return [str(p.relative_to(root)) for p in [*write, *stale]]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _ensure_in_wheel(wheel: Path, root: Path) -> list[str]:
    """Make ``wheel`` hold ``fastbert/kernels/*.py`` equal to ``kernels/*.py``; returns the names fixed."""
    src = root / SOURCE
    if not src.is_dir():
        return []
    wanted = {f"fastbert/kernels/{_target_name(p.name)}": p.read_bytes() for p in sorted(src.glob(PATTERN))}
    with zipfile.ZipFile(wheel) as z:
        infos = z.infolist()
        contents = {i.filename: z.read(i) for i in infos}
    fix = [n for n, data in wanted.items() if contents.get(n) != data]
    if not fix:
        return []
    record = next(n for n in contents if n.endswith(".dist-info/RECORD"))
    lines = [ln for ln in contents[record].decode().splitlines() if ln and ln.split(",", 1)[0] not in fix]
    lines = [ln for ln in lines if ln.split(",", 1)[0] != record]
    lines += [_record_line(n, wanted[n]) for n in fix] + [f"{record},,"]
    date = infos[0].date_time
    tmp = wheel.with_name(wheel.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in infos:
            if info.filename in (record, *fix):
                continue
            out.writestr(info, contents[info.filename])
        for name in fix:
            info = zipfile.ZipInfo(name, date_time=date)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(info, wanted[name])
        info = zipfile.ZipInfo(record, date_time=date)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        out.writestr(info, "\n".join(lines) + "\n")
    os.replace(tmp, wheel)
    print(f"fastbert_build: added {len(fix)} kernel file(s) to {wheel.name}", file=sys.stderr)
    return fix


def _add_to_sdist(sdist: Path, root: Path) -> None:
    """Append ``SDIST_EXTRA`` folders to maturin's ``.tar.gz`` (rewritten: gzip cannot be appended to)."""
    with tarfile.open(sdist, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    prefix = members[0][0].name.split("/", 1)[0]
    present = {m.name for m, _ in members}
    extra = []
    for folder in SDIST_EXTRA:
        for path in sorted((root / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            if name not in present:
                extra.append((name, path.read_bytes()))
    if not extra:
        return
    mtime = max((m.mtime for m, _ in members), default=0)
    tmp = sdist.with_name(sdist.name + ".tmp")
    with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as out:
        for member, data in members:
            out.addfile(member, io.BytesIO(data) if data is not None else None)
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            out.addfile(info, io.BytesIO(data))
    os.replace(tmp, sdist)


# ------------------------------------------------------------------ PEP 517 hooks
# maturin is imported inside each hook: the module must load without it for the sync command.
def _maturin() -> Any:
    import maturin

    return maturin


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    sync_kernels()
    name = _maturin().build_wheel(wheel_directory, config_settings, metadata_directory)
    _ensure_in_wheel(Path(wheel_directory) / name, ROOT)
    return name


def build_editable(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    # maturin's editable install points at python/, so the synced copy is what gets imported;
    # re-run `python -m build_backend.sync` after editing kernels/ (the kernel tests do it for you).
    sync_kernels()
    return _maturin().build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Mapping[str, Any] | None = None) -> str:
    name = _maturin().build_sdist(sdist_directory, config_settings)
    _add_to_sdist(Path(sdist_directory) / name, ROOT)
    return name


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    return _maturin().prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    return _maturin().prepare_metadata_for_build_editable(metadata_directory, config_settings)


def get_requires_for_build_wheel(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    return _maturin().get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    return _maturin().get_requires_for_build_editable(config_settings)


def get_requires_for_build_sdist(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    return _maturin().get_requires_for_build_sdist(config_settings)


def main(argv: list[str] | None = None) -> int:
    """``python -m build_backend.sync [--check]``: make (or verify) the ``fastbert.kernels`` copy."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m build_backend.sync", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="only report a stale copy (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        stale = check_kernels()
        for path in stale:
            print(f"out of date: {path} (run python -m build_backend.sync)", file=sys.stderr)
        return 1 if stale else 0
    sync_kernels()
    return 0
