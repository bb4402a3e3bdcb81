"""``finetune(..., seeds=[...])`` and ``fastbert finetune --seeds`` (`fastbert.seeds`)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbert
from fastbert import cli
from fastbert.cli.formatting import format_seed_summary
from fastbert.training.seeds import summarize


@pytest.fixture(scope="module")
def sst2(data_dir: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(48 train, 32 dev) SST-2 sentences."""

    def rows(name: str, n: int) -> list[dict[str, str]]:
        with (data_dir / "sst2" / name).open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            return [
                {"text": r["sentence"], "label": r["label"]} for _, r in zip(range(n), reader, strict=False)
            ]

    return rows("train.tsv", 48), rows("dev.tsv", 32)


def quick(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"epochs": 1, "batch_size": 24, "progress": False, "max_length": 32, "lr": 1e-3}
    base.update(kw)
    return base


def test_seed_summary_equals_the_seeds_run_one_by_one(
    tiny_model: Path, sst2: tuple[list, list], tmp_path: Path
) -> None:
    train, dev = sst2
    ft = fastbert.finetune(train, dev, model=tiny_model, seeds=[0, 1], **quick())
    alone = [fastbert.finetune(train, dev, model=tiny_model, seed=s, **quick()).metrics for s in (0, 1)]
    summary = ft.seed_summary
    assert summary is not None and summary["seeds"] == [0, 1] and summary["selected_by"] == "macro_f1"
    for name in ("macro_f1", "accuracy", "weighted_f1"):
        values = [m[name] for m in alone]
        assert summary["metrics"][name]["values"] == values
        assert summary["metrics"][name]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert summary["metrics"][name]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert "per_class" not in summary["metrics"]  # nested tables are left out
    # The model returned is the seed with the best dev macro-F1 (the earliest on ties).
    f1 = [m["macro_f1"] for m in alone]
    best = int(np.argmax(f1))
    assert summary["returned_seed"] == best and ft.config.seed == best
    assert ft.metrics == alone[best]
    # The summary is saved with the model.
    loaded = fastbert.load(ft.save(tmp_path / "model"))
    assert loaded.seed_summary == json.loads(json.dumps(summary))


def test_every_seed_is_scored_on_the_same_dev_split(tiny_model: Path, sst2: tuple[list, list]) -> None:
    rows = sst2[0] + sst2[1]
    opts = quick(epochs=0.05)
    many = fastbert.finetune(rows, model=tiny_model, seeds=[3, 4], seed=7, **opts)
    assert many.config.split_seed == 7
    assert (
        many.data_info["dev_sha256"]
        == fastbert.finetune(rows, model=tiny_model, seed=7, **opts).data_info["dev_sha256"]
    )
    other = fastbert.finetune(rows, model=tiny_model, seed=4, **opts)  # its own split: a different dev set
    assert other.data_info["dev_sha256"] != many.data_info["dev_sha256"]


def test_summarize_and_its_text() -> None:
    runs = [
        {"f1": 0.5, "n": 10, "per_class": {}, "ok": True},
        {"f1": 0.7, "n": 10, "per_class": {}, "ok": True},
    ]
    out = summarize(runs)
    assert set(out) == {"f1", "n"}  # booleans and tables are not metrics to average
    assert out["f1"]["mean"] == pytest.approx(0.6) and out["f1"]["std"] == pytest.approx(math.sqrt(0.02))
    assert out["n"] == {"mean": 10.0, "std": 0.0, "values": [10.0, 10.0]}
    assert math.isnan(summarize(runs[:1])["f1"]["std"])  # one run has no spread
    text = format_seed_summary({"seeds": [0, 1], "selected_by": "f1", "returned_seed": 1, "metrics": out})
    assert "seeds 0, 1" in text and "seed 1's" in text and "  f1  0.6000 ± 0.1414" in text
    with pytest.raises(ValueError, match="distinct"):
        fastbert.finetune([], seeds=[1, 1])
    with pytest.raises(ValueError, match="at least one"):
        fastbert.finetune([], seeds=[])


def test_cli_seeds(
    tiny_model: Path, sst2: tuple[list, list], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    train, dev = sst2
    files = {}
    for name, rows in (("train", train), ("dev", dev)):
        files[name] = tmp_path / f"{name}.tsv"
        files[name].write_text(
            "text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows), encoding="utf-8"
        )
    out = tmp_path / "model"
    common = ["finetune", "--train", str(files["train"]), "--eval", str(files["dev"]), "--out", str(out)]
    common += ["--model", str(tiny_model), "--epochs", "0.1", "--max-length", "32", "--no-progress"]
    assert cli.main([*common, "--seeds", "0", "1"]) == 0
    stdout = capsys.readouterr().out
    assert "dev metrics over seeds 0, 1 (mean ± sample std)" in stdout
    summary = json.loads((out / "fastbert.json").read_text(encoding="utf-8"))["seed_summary"]
    f1 = summary["metrics"]["macro_f1"]
    assert re.search(rf"\n  macro_f1 +{f1['mean']:.4f} ± {f1['std']:.4f}\n", stdout)
    assert summary["seeds"] == [0, 1]
    assert cli.main([*common, "--overwrite", "--seed", "1", "--seeds", "2", "3"]) == 2
    assert "give --seed or --seeds, not both" in capsys.readouterr().err
