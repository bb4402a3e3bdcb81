"""What the README's examples write into the working folder is ignored by git: a newcomer who
follows the README in a clone is not left with a list of untracked files."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: How the README's commands and snippets name what they write.
WRITES = [
    r"--out[ =](?!DIR)([\w./-]+)",
    r"(?:-o|--output) ([\w./-]+)",
    r"\.save\(\"([\w./-]+)\"\)",
    r"\bout=\"([\w./-]+)\"",
    r"fastbert predict ([\w./-]+)",  # a model folder a command reads was written by an example
]


def readme_outputs() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = {m for pattern in WRITES for m in re.findall(pattern, text)}
    found.add("fastbert-model")  # `fastbert finetune` with no --out
    return {f for f in found if not f.startswith(("..", "/", "$"))}


@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs git and a git checkout"
)
def test_every_output_the_readme_writes_is_ignored() -> None:
    outputs = readme_outputs()
    assert {"sst2-model", "predictions.tsv", "metrics.json", "banking-run", "my-model"} <= outputs
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-v", "-n"],
        cwd=REPO, input="\n".join(sorted(outputs)) + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    not_ignored = [line.split("\t")[-1] for line in proc.stdout.splitlines() if line.startswith("::")]
    assert not not_ignored, f"README outputs that git would list as untracked: {not_ignored}"
