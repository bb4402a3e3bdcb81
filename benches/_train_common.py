"""Shared pieces of the fine-tuning benchmarks (`bench_finetune_speed_cpu.py`,
`bench_finetune_quality.py`): data, the two contestants, and the run protocol.

The contestants, each a function that trains one model and reports what it measured:

* `hf_sequence` / `hf_token`: ``transformers.Trainer`` with the model classes and
  collators of the Hugging Face examples (``run_glue.py``, ``run_ner.py``).
* `fastbert_sequence` / `fastbert_token`: one ``fastbert.finetune`` call.

Both get the same examples, already read into memory by the harness (the time to read
a TSV is not part of either side), the same hyperparameters and the same number of
torch threads. Every run happens in a fresh child process (`run_child`): the two
libraries never share a process, allocator or thread pool, and a run's memory is
returned before the next starts.

The machine report reuses `benches/_common.py` (the tokenizer benchmarks' header) and
adds what a training comparison needs: accelerate, seqeval, the device, torch threads.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _common import cores, machine, model_dir  # noqa: E402  (the tokenizer benches' helpers)

__all__ = [
    "REPO",
    "conll_label_names",
    "cores",
    "fastbert_sequence",
    "fastbert_token",
    "find_data_dir",
    "hf_sequence",
    "hf_token",
    "log",
    "model_dir",
    "read_conll",
    "read_sst2",
    "report",
    "run_child",
    "training_arguments",
]


def log(*args: Any) -> None:
    """Print and flush at once, so that a log file shows where a long run is."""
    print(*args, flush=True)


# ----------------------------------------------------------------------------- data
def find_data_dir(given: str | Path | None) -> Path:
    """``--data-dir``, else ``$FASTBERT_DATA``, else ``<repo>/shared/data`` (a copy that travels
    with the repository, e.g. to a GPU machine), else ``<repo>/../shared/data``."""
    candidates = [Path(given)] if given else []
    if os.environ.get("FASTBERT_DATA"):
        candidates.append(Path(os.environ["FASTBERT_DATA"]))
    candidates += [REPO / "shared" / "data", REPO.parent / "shared" / "data"]
    for c in candidates:
        if (c / "sst2").is_dir() or (c / "conll2003").is_dir():
            return c.resolve()
    raise SystemExit(f"no data folder with sst2/ or conll2003/ among: {', '.join(map(str, candidates))}")


def read_sst2(data: Path, split: str) -> list[dict[str, Any]]:
    """``sst2/{split}.tsv`` as ``[{"sentence": str, "label": int}]``. The TSVs of shared/data are
    unquoted (a ``"`` is a literal character), so the line is split on its last tab."""
    rows = []
    lines = (data / "sst2" / f"{split}.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[0].split("\t") == ["sentence", "label"], lines[0]
    for line in lines[1:]:
        if line:
            text, label = line.rsplit("\t", 1)
            rows.append({"sentence": text, "label": int(label)})
    return rows


def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    """CoNLL-2003 as ``[(words, ner_tags)]``: first column the word, last the tag; ``-DOCSTART-``
    lines dropped; a blank line ends a sentence (fastbert's own CoNLL reader does the same)."""
    out: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                out.append((words, tags))
                words, tags = [], []
            continue
        parts = line.split()
        words.append(parts[0])
        tags.append(parts[-1])
    if words:
        out.append((words, tags))
    return out


def conll_label_names(*sets: list[tuple[list[str], list[str]]]) -> list[str]:
    """``O, B-t, I-t, ...`` by sorted type: the order fastbert uses, given to both sides."""
    types = sorted({t[2:] for s in sets for _, tags in s for t in tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def entity_f1(true_tags: list[list[str]], pred_tags: list[list[str]]) -> tuple[float, str]:
    """Entity F1 (seqeval's default, conlleval-style chunking), and which scorer computed it."""
    try:
        from seqeval.metrics import f1_score
    except ImportError:  # fastbert.metrics is tested equal to seqeval (tests/test_metrics.py)
        from fastbert.evaluation.metrics import entity_metrics

        return float(entity_metrics(true_tags, pred_tags)["f1"]), "fastbert.metrics (seqeval missing)"
    return float(f1_score(true_tags, pred_tags)), "seqeval"


# ----------------------------------------------------------------------------- versions
def report(device: str, threads: int) -> dict[str, str]:
    """The machine and every version that decides the result."""
    import torch

    info = machine()
    full = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if full.returncode == 0:
        info["fastbert git sha (full)"] = full.stdout.strip()
    from importlib.metadata import PackageNotFoundError, version

    for name in ("accelerate", "seqeval", "datasets"):
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = "not installed"
    info["device"] = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    info["torch threads (both sides)"] = str(threads)
    info["model"] = str(model_dir())
    return info


# ----------------------------------------------------------------------------- HF side
def training_arguments(
    out_dir: str,
    *,
    batch_size: int,
    lr: float,
    epochs: float,
    warmup_steps: int,
    seed: int,
    device: str,
) -> tuple[Any, dict[str, Any]]:
    """``TrainingArguments`` for the installed transformers, and the exact keywords passed.

    transformers 5 dropped ``warmup_ratio`` (a float ``warmup_steps`` < 1 is now a ratio, rounded
    *up*); fastbert rounds 6% of the steps *down*, so both sides get the same integer here.
    Keywords this version does not know are dropped (and so missing from the record).
    """
    import torch
    from transformers import TrainingArguments

    known = set(inspect.signature(TrainingArguments).parameters)
    cuda = device.startswith("cuda")
    kw: dict[str, Any] = {
        "output_dir": out_dir,
        "per_device_train_batch_size": batch_size,
        "per_device_eval_batch_size": 128,
        "learning_rate": lr,
        "num_train_epochs": epochs,
        "weight_decay": 0.01,
        "warmup_steps": warmup_steps,
        "lr_scheduler_type": "linear",
        "max_grad_norm": 1.0,
        "seed": seed,
        "eval_strategy": "no",
        "save_strategy": "no",
        "logging_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "use_cpu": not cuda,
    }
    if "eval_strategy" not in known and "evaluation_strategy" in known:  # transformers < 4.46
        kw["evaluation_strategy"] = kw.pop("eval_strategy")
    kw = {k: v for k, v in kw.items() if k in known}
    return TrainingArguments(**kw), kw


def _epoch_logger(tag: str) -> Any:
    from transformers import TrainerCallback

    class EpochLog(TrainerCallback):  # type: ignore[misc]
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            log(f"    [{tag}] epoch {state.epoch:.2f} done, step {state.global_step}/{state.max_steps}")

    return EpochLog()


def hf_sequence(
    train: list[dict[str, Any]],
    dev: list[dict[str, Any]],
    hp: dict[str, Any],
    device: str,
    model: str | Path | None = None,
) -> dict[str, Any]:
    """``Trainer`` + ``AutoModelForSequenceClassification`` + ``DataCollatorWithPadding``
    (``run_glue.py``'s recipe); dev accuracy of the final weights. ``model``: the checkpoint
    folder (default `model_dir()`, the packaged MiniLM).

    Tokenization is one batched call of the fast tokenizer over the whole list (faster
    than ``datasets.map``, so the end-to-end time favours HF, not us)."""
    import numpy as np
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    source = model if model is not None else model_dir()
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(source)
    t_tok = time.perf_counter()
    train_ds = _SeqDataset(tok, train, hp["max_length"])
    tokenize_s = time.perf_counter() - t_tok
    transformers.set_seed(hp["seed"])  # run_glue.py seeds before the head is initialised
    net = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2, dtype=torch.float32)
    steps = math.ceil(len(train) / hp["batch_size"]) * hp["epochs"]
    with tempfile.TemporaryDirectory() as out:
        args, kw = training_arguments(
            out,
            batch_size=hp["batch_size"],
            lr=hp["lr"],
            epochs=hp["epochs"],
            warmup_steps=int(hp["warmup_ratio"] * math.ceil(steps)),
            seed=hp["seed"],
            device=device,
        )
        trainer = Trainer(
            model=net,
            args=args,
            train_dataset=train_ds,
            data_collator=DataCollatorWithPadding(tok),
            callbacks=[_epoch_logger("hf")],
        )
        t_train, c_train = time.perf_counter(), time.process_time()
        result = trainer.train()
        t1, cpu = time.perf_counter(), time.process_time() - c_train
        pred = trainer.predict(_SeqDataset(tok, dev, hp["max_length"]))
        eval_s = time.perf_counter() - t1
    acc = float((pred.predictions.argmax(-1) == np.asarray(pred.label_ids)).mean())
    samples = len(train) * hp["epochs"]
    return {
        "score": acc,
        "metric": "dev accuracy",
        "samples": samples,
        "hf_train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "train_wall_s": t1 - t_train,
        "train_cores_used": cpu / max(t1 - t_train, 1e-9),
        "end_to_end_s": t1 - t0,
        "tokenize_s": tokenize_s,
        "eval_s": eval_s,
        "training_arguments": {k: v for k, v in kw.items() if k != "output_dir"},
        "optimizer": str(args.optim),
        "warmup_steps": int(kw["warmup_steps"]),
        "total_steps": int(result.global_step),
    }


class _SeqDataset:
    def __init__(self, tok: Any, rows: list[dict[str, Any]], max_length: int) -> None:
        self.enc = tok([r["sentence"] for r in rows], truncation=True, max_length=max_length)
        self.labels = [r["label"] for r in rows]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.enc.items()}, "labels": self.labels[i]}


def hf_token(
    train: list[tuple[list[str], list[str]]],
    dev: list[tuple[list[str], list[str]]],
    names: list[str],
    hp: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """``run_ner.py``'s recipe: ``AutoModelForTokenClassification``, the first sub-token of each
    word labelled (the rest -100), ``DataCollatorForTokenClassification``; seqeval entity F1
    on dev. A word with no token (cut by truncation) is predicted ``O``, as in fastbert."""
    import torch
    import transformers
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
    )

    label_id = {n: i for i, n in enumerate(names)}

    def encode(data: list[tuple[list[str], list[str]]]) -> tuple[list[dict[str, Any]], list[list[int]]]:
        enc = tok(
            [w for w, _ in data], is_split_into_words=True, truncation=True, max_length=hp["max_length"]
        )
        rows, word_ids = [], []
        for i, (_, tags) in enumerate(data):
            ids = enc.word_ids(i)
            prev, labels = None, []
            for w in ids:  # the first sub-token of each word carries its tag (label_all_tokens=False)
                labels.append(-100 if w is None or w == prev else label_id[tags[w]])
                prev = w
            rows.append({k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")})
            rows[-1]["labels"] = labels
            word_ids.append(ids)
        return rows, word_ids

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir())
    t_tok = time.perf_counter()
    train_rows, _ = encode(train)
    tokenize_s = time.perf_counter() - t_tok
    transformers.set_seed(hp["seed"])
    model = AutoModelForTokenClassification.from_pretrained(
        model_dir(), num_labels=len(names), dtype=torch.float32
    )
    steps = math.ceil(len(train) / hp["batch_size"]) * hp["epochs"]
    with tempfile.TemporaryDirectory() as out:
        args, kw = training_arguments(
            out,
            batch_size=hp["batch_size"],
            lr=hp["lr"],
            epochs=hp["epochs"],
            warmup_steps=int(hp["warmup_ratio"] * math.ceil(steps)),
            seed=hp["seed"],
            device=device,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_rows,
            data_collator=DataCollatorForTokenClassification(tok),
            callbacks=[_epoch_logger("hf")],
        )
        t_train, c_train = time.perf_counter(), time.process_time()
        result = trainer.train()
        t1, cpu = time.perf_counter(), time.process_time() - c_train
        dev_rows, dev_word_ids = encode(dev)
        pred = trainer.predict(dev_rows)
        eval_s = time.perf_counter() - t1
    true_tags, pred_tags = [], []
    for i, (words, tags) in enumerate(dev):
        best = pred.predictions[i].argmax(-1)
        got = ["O"] * len(words)
        prev = None
        for pos, w in enumerate(dev_word_ids[i]):
            if w is not None and w != prev:
                got[w] = names[int(best[pos])]
            prev = w
        true_tags.append(tags)
        pred_tags.append(got)
    f1, scorer = entity_f1(true_tags, pred_tags)
    samples = len(train) * hp["epochs"]
    return {
        "score": f1,
        "metric": "dev entity F1",
        "scorer": scorer,
        "samples": samples,
        "hf_train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "train_wall_s": t1 - t_train,
        "train_cores_used": cpu / max(t1 - t_train, 1e-9),
        "end_to_end_s": t1 - t0,
        "tokenize_s": tokenize_s,
        "eval_s": eval_s,
        "training_arguments": {k: v for k, v in kw.items() if k != "output_dir"},
        "optimizer": str(args.optim),
        "warmup_steps": int(kw["warmup_steps"]),
        "total_steps": int(result.global_step),
    }


# ----------------------------------------------------------------------------- fastbert side
@contextlib.contextmanager
def _timed(module: Any, name: str, into: list[tuple[float, float]]) -> Iterator[None]:
    """Record (wall s, process CPU s) of every call of ``module.name`` (a benchmark's instrument:
    the function itself is called unchanged)."""
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*a: Any, **k: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        try:
            return original(*a, **k)
        finally:
            into.append((time.perf_counter() - t, time.process_time() - c))

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def _fastbert_run(
    train: Any, dev: Any, task: str, options: dict[str, Any], model: str | Path | None = None
) -> tuple[Any, dict[str, Any]]:
    """One ``fastbert.finetune`` call, with the time of its tokenization, its training call and
    its evaluations measured by wrapping ``fastbert.finetuning.featurize``, ``fastbert.finetuning.train``
    and ``fastbert.finetuning.evaluate_on_dev``. ``model``: the checkpoint folder (default
    `model_dir()`, the packaged MiniLM)."""
    import fastbert
    import fastbert.finetuning as api

    featurize_t: list[tuple[float, float]] = []
    train_t: list[tuple[float, float]] = []
    eval_t: list[tuple[float, float]] = []
    with (
        _timed(api, "featurize", featurize_t),
        _timed(api, "train", train_t),
        _timed(api, "evaluate_on_dev", eval_t),
    ):
        t0 = time.perf_counter()
        ft = fastbert.finetune(
            train, dev, task=task, model=model if model is not None else model_dir(), **options
        )
        wall = time.perf_counter() - t0
    h = ft.history
    eval_wall = sum(w for w, _ in eval_t)
    # Evaluations inside train()'s timed loop: one per epoch when eval_steps is None and the
    # epochs are whole (the last falls on the last step, so no extra one follows the loop).
    per_epoch = options.get("eval_steps") is None and float(options["epochs"]).is_integer()
    in_loop = sum(w for w, _ in eval_t[: len(h.evals)]) if per_epoch else 0.0
    # train(): optimizer set-up + loop + its evaluations; CPU seconds over wall seconds of the
    # call, evaluations taken out, say how many cores the training really had.
    call_wall = sum(w for w, _ in train_t) - eval_wall
    call_cpu = sum(c for _, c in train_t) - sum(c for _, c in eval_t)
    timing = {
        "samples": len(train) * options["epochs"],
        "fastbert_train_samples_per_second": h.train_samples_per_second,
        "train_loop_s": h.train_seconds,
        "train_loop_excl_eval_s": h.train_seconds - in_loop,
        "train_call_s": call_wall,
        "train_cores_used": call_cpu / max(call_wall, 1e-9),
        "end_to_end_s": wall - eval_wall,
        "tokenize_s": featurize_t[0][0] if featurize_t else None,  # train set; dev is the 2nd call
        "tokenize_dev_s": featurize_t[1][0] if len(featurize_t) > 1 else None,
        "eval_s": eval_wall,
        "evals": len(eval_t),
        "total_steps": h.steps[-1] if h.steps else 0,
        "finetune_options": options,
    }
    return ft, timing


def _best_checkpoint(history: Any, key: str, select: str) -> float | None:
    """``key`` at the evaluation fastbert's defaults keep: the first with the best ``select``
    (``restore_best=True``; patience 3 never stops a 3-epoch run with one evaluation per epoch)."""
    best, value = None, None
    for e in history.evals:
        s = e.get(select)
        if s is not None and (best is None or s > best):
            best, value = s, e.get(key)
    return value


def fastbert_sequence(
    train: list[dict[str, Any]],
    dev: list[dict[str, Any]],
    options: dict[str, Any],
    model: str | Path | None = None,
) -> dict[str, Any]:
    ft, timing = _fastbert_run(train, dev, "classification", options, model)
    sel, _ = ft.config.resolved_metric()
    return {
        "score": float(ft.metrics["accuracy"]),
        "metric": "dev accuracy",
        "best_checkpoint_score": _best_checkpoint(ft.history, "accuracy", sel),
        "best_checkpoint_selected_on": sel,
        "evals_per_epoch": [{k: e.get(k) for k in ("step", "accuracy", sel)} for e in ft.history.evals],
        **timing,
    }


def fastbert_token(
    train: list[tuple[list[str], list[str]]],
    dev: list[tuple[list[str], list[str]]],
    options: dict[str, Any],
) -> dict[str, Any]:
    ft, timing = _fastbert_run(train, dev, "token", options)
    sel, _ = ft.config.resolved_metric()
    # Score the final model's word-level predictions with the same scorer as the HF side.
    pred = ft.predict([w for w, _ in dev])
    # predict() returns fewer tags than words for a sentence that max_length cut short (seen
    # with fastbert 20d5829): the words cut off count as "O", as on the HF side.
    short = sum(len(p) < len(w) for p, (w, _) in zip(pred, dev, strict=True))
    pred = [list(p) + ["O"] * (len(w) - len(p)) for p, (w, _) in zip(pred, dev, strict=True)]
    f1, scorer = entity_f1([t for _, t in dev], pred)
    return {
        "score": f1,
        "metric": "dev entity F1",
        "scorer": scorer,
        "fastbert_own_f1": float(ft.metrics["f1"]),
        "predict_short_sentences": short,
        "best_checkpoint_score": _best_checkpoint(ft.history, "f1", sel),
        "best_checkpoint_selected_on": sel,
        "evals_per_epoch": [{k: e.get(k) for k in ("step", "f1")} for e in ft.history.evals],
        **timing,
    }


# ----------------------------------------------------------------------------- processes
def run_child(script: Path, argv: list[str], threads: int) -> dict[str, Any]:
    """Run ``script --child-out FILE argv`` in a fresh process (its output goes straight to ours,
    so a log shows its progress) and return the JSON it wrote to FILE."""
    env = dict(
        os.environ,
        RAYON_NUM_THREADS=str(threads),
        FASTBERT_NUM_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="true",
        PYTHONUNBUFFERED="1",
    )
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    try:
        code = subprocess.run(
            [sys.executable, str(script), "--child-out", str(out), *argv], env=env
        ).returncode
        if code != 0 or out.stat().st_size == 0:
            raise RuntimeError(f"{script.name} {' '.join(argv)} failed (exit {code})")
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def child_setup(threads: int, device: str) -> None:
    """Same torch threads on both sides; quiet the libraries' per-step chatter."""
    import logging

    import torch

    torch.set_num_threads(threads)
    logging.getLogger("fastbert").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="    [fastbert] %(message)s", stream=sys.stdout)
    with contextlib.suppress(ImportError):
        import transformers

        transformers.logging.set_verbosity_error()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU")
