"""Saves that never lose a model (`fastbert.atomic_folder`, `FineTunedModel.save`, ``fastbert finetune --out``).

A crash is simulated at every step of a save by making the next operation raise, the way a
SIGKILL would stop the process there; then `recover` (which every save, load and training run
calls first) must leave the target holding a whole folder, the old one or the new one.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import fastbert
from fastbert import atomic_folder
from fastbert.atomic_folder import MARKER, check_writable, recover, write_folder


class Killed(BaseException):
    """Stands for the process dying at this point (not an Exception: nothing may catch it)."""


def folder_with(name: str) -> Any:
    def write(folder: Path) -> None:
        (folder / "which").write_text(name, encoding="utf-8")
        (folder / "sub").mkdir()
        (folder / "sub" / "weights.bin").write_bytes(os.urandom(1000))

    return write


def which(target: Path) -> str:
    return (target / "which").read_text(encoding="utf-8")


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def test_a_folder_appears_whole_with_the_umask_s_permissions(tmp_path: Path) -> None:
    # mkdtemp makes folders 0700, and the safetensors writer made model.safetensors 0600: a
    # serving account could not read a saved model.
    old = os.umask(0o027)
    try:
        target = write_folder(tmp_path / "model", folder_with("new"))
    finally:
        os.umask(old)
    assert which(target) == "new" and (target / MARKER).is_file()
    assert leftovers(target) == []
    assert (target.stat().st_mode & 0o777, (target / "sub").stat().st_mode & 0o777) == (0o750, 0o750)
    assert (target / "which").stat().st_mode & 0o777 == 0o640
    assert (target / "sub" / "weights.bin").stat().st_mode & 0o777 == 0o640
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_folder(target, folder_with("newer"))


def test_a_failed_write_leaves_the_old_folder_and_nothing_else(tmp_path: Path) -> None:
    target = write_folder(tmp_path / "model", folder_with("old"))

    def broken(folder: Path) -> None:
        folder_with("new")(folder)
        raise ValueError("the model cannot be written")

    with pytest.raises(ValueError, match="cannot be written"):
        write_folder(target, broken, overwrite=True)
    assert which(target) == "old" and leftovers(target) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
@pytest.mark.parametrize("step", range(5))
def test_a_save_killed_at_any_step_leaves_a_whole_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool, step: int
) -> None:
    # The steps of an overwriting save after the write itself: rename partial -> ready, then
    # (renameat2) exchange and remove the replaced folder, or (two renames) target -> old,
    # ready -> target, remove old. Step k is killed: the k-th of those operations raises.
    target = write_folder(tmp_path / "model", folder_with("old"))
    if not exchange:
        monkeypatch.setattr(atomic_folder, "_exchange", lambda a, b: False)
    elif not atomic_folder._exchange(tmp_path / "model", tmp_path / "model"):
        pytest.skip("this file system has no renameat2(RENAME_EXCHANGE)")
    calls = {"n": 0}
    real_rename, real_rmtree, real_exchange = os.rename, atomic_folder.shutil.rmtree, atomic_folder._exchange

    def maybe_die() -> None:
        calls["n"] += 1
        if calls["n"] == step + 1:
            raise Killed

    def rename(a: Any, b: Any) -> None:
        maybe_die()
        real_rename(a, b)

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        maybe_die()
        real_rmtree(path, *args, **kwargs)

    def exchange(a: Path, b: Path) -> bool:
        maybe_die()
        return bool(real_exchange(a, b))

    monkeypatch.setattr(atomic_folder.os, "rename", rename)
    monkeypatch.setattr(atomic_folder.shutil, "rmtree", rmtree)
    if exchange:
        monkeypatch.setattr(atomic_folder, "_exchange", exchange)
    killed = False
    try:
        write_folder(target, folder_with("new"), overwrite=True)
    except Killed:
        killed = True
    monkeypatch.undo()  # the next process starts with working renames
    # Whatever the step, the folder is whole at once for a reader that never recovers...
    if target.exists():
        assert which(target) in ("old", "new")
    # ...and after the next start it is there, whole, with nothing left beside it.
    notes = recover(target)
    assert which(target) in ("old", "new") and (target / "sub" / "weights.bin").is_file()
    assert leftovers(target) == [], leftovers(target)
    assert killed == (calls["n"] > step), (calls, step)
    if killed and step >= 1:  # the new folder was complete: the save is finished, not lost
        assert which(target) == "new" and notes


def test_stale_partial_folders_are_removed_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = write_folder(tmp_path / "model", folder_with("old"))
    stale = tmp_path / ".model.abcd1234.partial"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 2_000_000)
    with caplog.at_level("WARNING", logger="fastbert"):
        write_folder(target, folder_with("new"), overwrite=True)
    assert not stale.exists() and which(target) == "new"
    assert any(".model.abcd1234.partial (2.0 MB)" in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError('Error while serializing: IoError(Os { code: 28, message: "No space left on device" })'),
    ],
    ids=["OSError", "safetensors"],
)
def test_a_full_disk_names_the_folder_and_the_space_left(tmp_path: Path, error: BaseException) -> None:
    def fills_the_disk(folder: Path) -> None:
        (folder / "half").write_bytes(b"x" * 1000)
        raise error

    with pytest.raises(
        OSError, match=r"no space left on the device to write .*model \([0-9.]+ MB free in "
    ) as e:
        write_folder(tmp_path / "model", fills_the_disk)
    assert e.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_check_writable_fails_at_once_naming_the_flag(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "deeper", "--out")  # created later: fine
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc, a folder nobody can write in")
    with pytest.raises(PermissionError, match=r"--out /proc/fastbert-out: cannot write in /proc"):
        check_writable(Path("/proc/fastbert-out"), "--out")


# ------------------------------------------------------------- through the public API
def test_a_saved_model_is_readable_by_others_and_replaced_whole(tiny_model: Path, tmp_path: Path) -> None:
    rows = [{"text": f"text number {i}", "label": "ab"[i % 2]} for i in range(24)]
    opts = {"epochs": 0.05, "batch_size": 8, "progress": False, "max_length": 16, "seed": 0}
    ft = fastbert.finetune(rows, task="classification", model=tiny_model, **opts)
    old = os.umask(0o022)
    try:
        out = ft.save(tmp_path / "model")
        assert out.stat().st_mode & 0o777 == 0o755
        assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o644
        assert (out / "fastbert.json").stat().st_mode & 0o777 == 0o644
        ft.save(out, overwrite=True)
    finally:
        os.umask(old)
    assert leftovers(out) == []
    assert fastbert.load(out).predict(["text number 3"]) == ft.predict(["text number 3"])


def test_finetune_refuses_an_unwritable_out_before_training(tmp_path: Path) -> None:
    # A read-only --out failed only after training (41 s on MiniLM); now before anything starts.
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc, a folder nobody can write in")
    train = tmp_path / "train.tsv"
    train.write_text(
        "text\tlabel\n" + "".join(f"t {i}\t{'ab'[i % 2]}\n" for i in range(20)), encoding="utf-8"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fastbert", "finetune", "--train", str(train), "--out", "/proc/fastbert-out"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert "--out /proc/fastbert-out: cannot write in /proc" in proc.stderr
    assert "eval" not in proc.stderr and "dev metrics" not in proc.stdout
    assert time.perf_counter() - start < 60
