"""End to end on the GPU: BERT-base bf16 fine-tuning, fastbert.finetune against transformers.Trainer (bar: ≥2×).

Issue 4's end-to-end row: a randomly initialised BERT-base, fine-tuned in bf16 on the
length distributions of SST-2 (sequence classification) and CoNLL-2003 (token
classification), must train at least twice as many samples per second with fastbert as
with HF ``Trainer`` (bf16, SDPA attention, dynamic padding) on the same GPU. MFU is
reported for every side.

- **Model.** BERT-base (hidden 768, 12 layers, 12 heads, intermediate 3072, vocab 30522),
  randomly initialised with seed 0 by ``transformers.BertModel`` and written once, by the
  parent process, into a temporary folder (``config.json``, ``model.safetensors``) with the
  tokenizer files of the packaged MiniLM (the same 30522-token uncased vocabulary). Every
  side loads its encoder from that folder, so all start from the same weights; each adds its
  own freshly initialised head. ``--tiny``: a 2-layer, hidden-128 BERT (head size 64, so
  fastbert's attention kernel still applies), for smoke runs.
- **Data.** The first ``--limit`` (8192) training examples of SST-2 (all 6,920 sentences) and
  of CoNLL-2003 (``-DOCSTART-`` lines dropped), read into memory before any clock starts.
- **Hyperparameters (all sides).** Batch 32, 1 epoch, AdamW (lr 5e-5, weight decay 0.01, not
  on biases and LayerNorm), linear schedule with 6% warm-up (the same integer number of steps
  on every side), gradient clipping 1.0, max length 128, seed 0, no evaluation and no saving
  during training.
- **Sides**, each in its own fresh process (``run_child``), in the order hf, fastbert,
  fastbert-pytorch in even rounds and reversed in odd ones (``--rounds``):

  1. ``hf``: ``AutoModelFor{Sequence,Token}Classification.from_pretrained(...,
     attn_implementation="sdpa")`` in fp32, ``Trainer`` with ``bf16=True`` (autocast),
     ``DataCollatorWithPadding`` / ``DataCollatorForTokenClassification`` (dynamic padding:
     each batch padded to its longest), ``dataloader_num_workers=0``, no saving, no logging;
     the recipe of ``run_glue.py`` / ``run_ner.py``, the tokenization one batched call of
     the fast tokenizer before any clock starts.
  2. ``fastbert``: ``fastbert.finetune(..., precision="bf16", device="cuda",
     use_kernels=True, eval_steps=10**9, early_stopping_patience=None, progress=False)``.
     Its ``eval_data`` is the first 64 training examples (without one, fastbert would split
     10% of the training set off as dev); the one evaluation it runs after the loop is
     outside every clock.
  3. ``fastbert-pytorch``: the same with ``use_kernels=False`` (PyTorch attention), to
     attribute the difference between 1 and 2 to the kernels or to the rest.

- **Warm-up.** Each process first runs the same side on the first ``--untimed-steps`` (20)
  batches of the same data with a freshly loaded model, untimed: Triton's JIT compilation,
  cuBLAS/cuDNN handles and the caching allocator's first blocks are then paid before the
  timed run, on every side alike. ``--untimed-steps 0`` times a cold first run instead.
- **Clocks.** *own clock*: each library's clock around its training loop, HF's
  ``train_runtime`` (the ``train_samples_per_second`` it reports is kept in the record too)
  and fastbert's ``history.train_seconds`` (``train_samples_per_second``); both end after
  a host sync with the last loss. *wall*: our clock around ``trainer.train()`` (with
  ``torch.cuda.synchronize()`` either side) and around ``fastbert.finetuning.train`` less its
  evaluation, which adds each library's set-up (optimizer, accelerate, data loader). The
  ratio and the bar use the own clocks.
- **MFU.** Model FLOPs of the real (unpadded) tokens each side processed (see
  ``train_flops``), over the own-clock seconds, over the GPU's peak dense bf16 rate
  (``PEAK_BF16_TFLOPS``, or ``--peak-tflops``). Both sides process the same tokens, so their
  MFU ratio is their speed ratio; padding is work HF does that MFU does not credit, and
  the padding fraction of HF's batches is printed beside it. Likewise, for sequence
  classification fastbert's last layer runs only the [CLS] rows past the key/value
  projections (``BertModel.pooled_output``), work that the model FLOPs still count: MFU
  here is a throughput in model FLOPs, not the FLOPs each side executed.

Usage::

    python benches/bench_e2e_gpu.py [--json results.json]             # the GPU run: 3 processes, 2 tasks each
    python benches/bench_e2e_gpu.py --device cpu --tiny --limit 64    # smoke run without a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import nvidia_smi
from _train_common import (
    child_setup,
    conll_label_names,
    cores,
    find_data_dir,
    log,
    model_dir,
    read_conll,
    read_sst2,
    report,
    run_child,
    training_arguments,
)

BAR = 2.0
SEED = 0
SIDES = ("hf", "fastbert", "fastbert-pytorch")
TASKS = ("sst2", "conll")
EVAL_ROWS = 64  # fastbert's eval_data: the first rows of the training set (evaluated after the loop, untimed)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
BERT_TINY = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}

#: Peak dense (no structured sparsity) bf16 tensor-core TFLOP/s from NVIDIA's data sheets, by
#: a substring of ``torch.cuda.get_device_name()``; the first match wins, so the PCIe and NVL
#: variants come before the SXM parts ("NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA GH200 480GB").
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
)


def hyper(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "epochs": 1,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "warmup_ratio": 0.06,
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        "max_length": 128,
        "seed": SEED,
    }


def fastbert_options(a: argparse.Namespace, use_kernels: bool) -> dict[str, Any]:
    cuda = a.device.startswith("cuda")
    return {
        **hyper(a),
        "device": a.device,
        "precision": "bf16" if cuda else "fp32",
        "use_kernels": use_kernels,
        "early_stopping_patience": None,
        "eval_steps": 10**9,  # no evaluation inside the loop; train() evaluates once after it
        "progress": False,
        # Work after the loop that the benchmark does not need (dropped where the installed
        # fastbert predates them): no copy of the best weights, no calibration, no thresholds.
        "restore_best": False,
        "calibrate": False,
        "tune_thresholds": False,
    }


# ----------------------------------------------------------------------------- model and FLOPs
def write_model(folder: Path, tiny: bool) -> dict[str, Any]:
    """A randomly initialised BERT (seed 0) in Hugging Face layout, with the MiniLM tokenizer
    files; returns its config."""
    import torch
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=30522, max_position_embeddings=512, **(BERT_TINY if tiny else BERT_BASE))
    torch.manual_seed(SEED)
    BertModel(cfg).save_pretrained(folder)  # embeddings, encoder and pooler; config.json + model.safetensors
    for name in TOKENIZER_FILES:
        shutil.copy(model_dir() / name, folder / name)
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def encoder_parameters(arch: dict[str, Any]) -> int:
    """Non-embedding parameters of a BERT encoder: per layer Q, K, V and the output projection
    (4·(h² + h)), the feed-forward pair (2·h·I + I + h) and two LayerNorms (4·h)."""
    h, i = arch["hidden_size"], arch["intermediate_size"]
    return arch["num_hidden_layers"] * (4 * (h * h + h) + 2 * h * i + i + h + 4 * h)


def train_flops(arch: dict[str, Any], task: str, num_labels: int, seqs: int, tokens: int, sq: int) -> float:
    """Model FLOPs of a forward and backward pass over ``seqs`` sequences of real lengths ``len``:
    ``tokens`` = Σ len, ``sq`` = Σ len². Padding never counts.

    * Weights: 2 FLOPs per parameter per token forward (a multiply and an add) and 4 backward
      (the gradients of the input and of the weight): 6 · N · tokens, N the encoder's
      non-embedding parameters (Kaplan et al. 2020; an embedding lookup is not a product).
    * Attention: per layer and sequence, Q·Kᵀ and P·V take 2 · len² · hidden FLOPs each forward
      (all heads together), the backward twice the forward: 3 · 4 · len² · hidden =
      12 · layers · hidden · Σ len² (the attention term of PaLM's MFU, Chowdhery et al. 2022,
      appendix B).
    * The head: the pooler and classifier once per sequence (classification), the classifier
      per token (token classification); under 1% of the total for BERT-base.

    Model FLOPs, not hardware FLOPs: recomputation (fastbert's attention backward recomputes
    the scores) and elementwise work (softmax, LayerNorm, GELU, dropout) are not counted.
    """
    h, layers = arch["hidden_size"], arch["num_hidden_layers"]
    weights = 6 * encoder_parameters(arch) * tokens
    attention = 12 * layers * h * sq
    classifier = h * num_labels + num_labels
    head = 6 * (h * h + h + classifier) * seqs if task == "sst2" else 6 * classifier * tokens
    return float(weights + attention + head)


def peak_tflops(device_name: str, given: float | None) -> tuple[float | None, str]:
    if given is not None:
        return given, "--peak-tflops"
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in device_name:
            return tflops, f"table entry {key!r}"
    return None, "unknown device: pass --peak-tflops for MFU"


# ----------------------------------------------------------------------------- data
def load_task(task: str, data: Path, limit: int) -> list[Any]:
    if task == "sst2":
        return read_sst2(data, "train")[:limit]
    return read_conll(data / "conll2003" / "train.txt")[:limit]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak_memory(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


# ----------------------------------------------------------------------------- HF side
class CountingCollator:
    """The HF collator, unchanged, counting what it hands the model: token slots (batch × longest,
    padding included), real tokens, Σ len² and sequences. A few CPU tensor sums per batch, inside
    HF's timed loop (microseconds against a step of milliseconds)."""

    def __init__(self, inner: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.inner = inner
        self.slots = self.tokens = self.sq = self.seqs = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(features)
        lengths = batch["attention_mask"].sum(1)
        self.slots += batch["input_ids"].numel()
        self.tokens += int(lengths.sum())
        self.sq += int((lengths * lengths).sum())
        self.seqs += len(lengths)
        return batch


def hf_rows(tok: Any, task: str, train: list[Any], max_length: int) -> tuple[list[dict[str, Any]], int]:
    """Training rows (input_ids, token_type_ids, attention_mask, labels) and the number of labels.
    Token classification: ``run_ner.py``'s alignment, the first sub-token of each word carries its
    tag, the others -100."""
    keys = ("input_ids", "token_type_ids", "attention_mask")
    if task == "sst2":
        enc = tok([r["sentence"] for r in train], truncation=True, max_length=max_length)
        rows = [{**{k: enc[k][i] for k in keys}, "labels": r["label"]} for i, r in enumerate(train)]
        return rows, 2
    names = conll_label_names(train)
    label_id = {n: i for i, n in enumerate(names)}
    enc = tok([w for w, _ in train], is_split_into_words=True, truncation=True, max_length=max_length)
    rows = []
    for i, (_, tags) in enumerate(train):
        prev, labels = None, []
        for w in enc.word_ids(i):
            labels.append(-100 if w is None or w == prev else label_id[tags[w]])
            prev = w
        rows.append({**{k: enc[k][i] for k in keys}, "labels": labels})
    return rows, len(names)


def hf_run(a: argparse.Namespace, task: str, train: list[Any], hp: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
    )

    tok = AutoTokenizer.from_pretrained(a.model_dir)
    rows, num_labels = hf_rows(tok, task, train, hp["max_length"])
    pad = a.hf_pad_to_multiple_of or None
    if task == "sst2":
        auto, collator = (
            AutoModelForSequenceClassification,
            DataCollatorWithPadding(tok, pad_to_multiple_of=pad),
        )
    else:
        auto = AutoModelForTokenClassification
        collator = DataCollatorForTokenClassification(tok, pad_to_multiple_of=pad)
    transformers.set_seed(SEED)  # the examples seed before the head is initialised
    model = auto.from_pretrained(
        a.model_dir, num_labels=num_labels, attn_implementation="sdpa", dtype=torch.float32
    )
    counting = CountingCollator(collator)
    steps = math.ceil(len(rows) / hp["batch_size"]) * hp["epochs"]
    with tempfile.TemporaryDirectory() as out:
        args, kw = training_arguments(
            out,
            batch_size=hp["batch_size"],
            lr=hp["lr"],
            epochs=hp["epochs"],
            warmup_steps=int(hp["warmup_ratio"] * steps),
            seed=SEED,
            device=a.device,
        )
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=counting)
        _reset_peak_memory(a.device)
        _sync(a.device)
        t0 = time.perf_counter()
        result = trainer.train()
        _sync(a.device)
        wall = time.perf_counter() - t0
    m = result.metrics
    return {
        "samples": len(rows) * hp["epochs"],
        "steps": int(result.global_step),
        "loop_s": float(m["train_runtime"]),
        "wall_s": wall,
        "hf_train_samples_per_second": m.get("train_samples_per_second"),
        "mean_train_loss": m.get("train_loss"),
        "num_labels": num_labels,
        "seqs": counting.seqs,
        "tokens": counting.tokens,
        "sq_tokens": counting.sq,
        "slots": counting.slots,
        "padding_fraction": 1 - counting.tokens / max(counting.slots, 1),
        "peak_memory_gib": _peak_memory_gib(a.device),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "optimizer": str(args.optim),
        "warmup_steps": int(kw["warmup_steps"]),
        "training_arguments": {k: v for k, v in kw.items() if k != "output_dir"},
    }


# ----------------------------------------------------------------------------- fastbert side
@contextlib.contextmanager
def _recorded(module: Any, name: str, into: list[dict[str, Any]]) -> Iterator[None]:
    """Record start, end and result of every call of ``module.name`` (called unchanged)."""
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        result = original(*args, **kw)
        into.append({"start": start, "end": time.perf_counter(), "result": result})
        return result

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def fastbert_run(
    a: argparse.Namespace, task: str, train: list[Any], use_kernels: bool, hp: dict[str, Any]
) -> dict[str, Any]:
    """One ``fastbert.finetune`` call; its training set's token lengths are read from what
    ``fastbert.finetuning.featurize`` returned, its training call timed by wrapping
    ``fastbert.finetuning.train`` and ``fastbert.finetuning.evaluate_on_dev`` (the evaluation inside
    ``train`` is taken out)."""
    import numpy as np

    import fastbert
    import fastbert.finetuning as api

    known = {f.name for f in dataclasses.fields(fastbert.FinetuneConfig)}
    options = {k: v for k, v in fastbert_options(a, use_kernels).items() if k in known}
    calls: dict[str, list[dict[str, Any]]] = {"featurize": [], "train": [], "evaluate_on_dev": []}
    with contextlib.ExitStack() as stack:
        for name, into in calls.items():
            stack.enter_context(_recorded(api, name, into))
        _reset_peak_memory(a.device)
        kind = "classification" if task == "sst2" else "token"
        ft = fastbert.finetune(train, train[:EVAL_ROWS], task=kind, model=a.model_dir, **options)
    h = ft.history
    lengths = np.asarray(calls["featurize"][0]["result"].lengths, dtype=np.int64)  # the training set's
    call = calls["train"][0]
    evals = sum(
        e["end"] - e["start"] for e in calls["evaluate_on_dev"] if call["start"] <= e["start"] <= call["end"]
    )
    return {
        "samples": len(lengths) * hp["epochs"],
        "steps": h.steps[-1] if h.steps else 0,
        "loop_s": h.train_seconds,
        "wall_s": call["end"] - call["start"] - evals,
        "fastbert_train_samples_per_second": h.train_samples_per_second,
        "mean_train_loss": statistics.fmean(h.train_loss) if h.train_loss else None,
        "num_labels": len(ft.label_names or []),
        "seqs": len(lengths),
        "tokens": int(lengths.sum()),
        "sq_tokens": int((lengths * lengths).sum()),
        "peak_memory_gib": _peak_memory_gib(a.device),
        "attention_kernel": getattr(ft.model.encoder, "attention_fn", None) is not None,  # kernel_dispatch
        "finetune_options": options,
    }


def child(a: argparse.Namespace) -> None:
    import torch

    child_setup(a.threads, a.device)
    data = find_data_dir(a.data_dir)
    hp = hyper(a)
    out: dict[str, Any] = {}
    for task in a.tasks.split(","):
        train = load_task(task, data, a.limit)

        def run(rows: list[Any], task: str = task) -> dict[str, Any]:
            if a.side == "hf":
                return hf_run(a, task, rows, hp)
            return fastbert_run(a, task, rows, a.side == "fastbert", hp)

        record: dict[str, Any] = {}
        warm = train[: a.untimed_steps * a.batch_size]
        if warm:
            log(f"    [{a.side}] {task}: untimed warm-up, {len(warm)} examples")
            w = run(warm)
            record["untimed"] = {k: w[k] for k in ("samples", "steps", "loop_s", "wall_s")}
            gc.collect()
        log(f"    [{a.side}] {task}: timed run, {len(train)} examples")
        record.update(run(train))
        out[task] = record
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    Path(a.child_out).write_text(json.dumps(out, default=str))


# ----------------------------------------------------------------------------- parent
def environment(device: str, threads: int, arch: dict[str, Any], tiny: bool) -> dict[str, str]:
    """`_train_common.report` plus the GPU's driver, CUDA, Triton and where fastbert is imported from."""
    import torch

    import fastbert

    info = report(device, threads)
    info["fastbert imported from"] = str(Path(fastbert.__file__).parent)
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = "not installed"
    info["cuda (torch build)"] = str(torch.version.cuda)
    if device.startswith("cuda"):
        smi = nvidia_smi("driver_version")
        info["driver"] = smi.splitlines()[0] if smi else "unknown"
    kind = "tiny BERT (--tiny)" if tiny else "BERT-base"
    info["model"] = (
        f"{kind}, random init (seed {SEED}): hidden {arch['hidden_size']}, {arch['num_hidden_layers']} layers, "
        f"{arch['num_attention_heads']} heads, intermediate {arch['intermediate_size']}, vocab {arch['vocab_size']}; "
        f"{encoder_parameters(arch) / 1e6:.1f} M non-embedding parameters; tokenizer of {model_dir()}"
    )
    return info


def rates(r: dict[str, Any], arch: dict[str, Any], task: str, peak: float | None) -> dict[str, Any]:
    n = r["samples"]
    flops = train_flops(arch, task, r["num_labels"], r["seqs"], r["tokens"], r["sq_tokens"])
    return {
        "own": n / r["loop_s"],
        "wall": n / r["wall_s"],
        "model_tflop": flops / 1e12,
        "tflops": flops / r["loop_s"] / 1e12,
        "mfu": flops / r["loop_s"] / (peak * 1e12) if peak else None,
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke run: fp32)")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: sst2, conll")
    p.add_argument("--limit", type=int, default=8192, help="first N training examples of each task")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--rounds", type=int, default=1, help="passes over the sides, order reversed every other")
    p.add_argument(
        "--untimed-steps",
        type=int,
        default=20,
        help="batches of an untimed warm-up run in each process before the timed one; 0: time a cold run",
    )
    p.add_argument("--tiny", action="store_true", help="a 2-layer hidden-128 BERT instead of BERT-base")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's peak dense bf16 TFLOP/s")
    p.add_argument(
        "--hf-pad-to-multiple-of",
        type=int,
        default=0,
        help="HF collators' pad_to_multiple_of (0: pad to the longest, the collators' default)",
    )
    p.add_argument("--threads", type=int, default=cores(), help="torch threads, every side")
    p.add_argument("--data-dir", default=None, help="folder with sst2/ and conll2003/")
    p.add_argument("--json", metavar="PATH", help="write every run's record and the summary here")
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child_out:
        child(a)
        return

    import torch

    cuda = a.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("torch sees no GPU; for a smoke run use --device cpu --tiny --limit 64")
    tasks = a.tasks.split(",")
    if unknown := sorted(set(tasks) - set(TASKS)):
        raise SystemExit(f"unknown tasks {unknown}; choose from {', '.join(TASKS)}")
    data = find_data_dir(a.data_dir)
    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    peak, peak_source = peak_tflops(device_name, a.peak_tflops) if cuda or a.peak_tflops else (None, "CPU")
    with tempfile.TemporaryDirectory(prefix="fastbert-e2e-") as folder:
        arch = write_model(Path(folder), a.tiny)
        info = environment(a.device, a.threads, arch, a.tiny)
        info["peak dense bf16"] = f"{peak:g} TFLOP/s ({peak_source})" if peak else f"n/a ({peak_source})"
        log("## End to end: fastbert.finetune vs transformers.Trainer, bf16 fine-tuning\n")
        for k, v in info.items():
            log(f"- {k}: {v}")
        log(f"- data: {data} (first {a.limit} training examples of each of {', '.join(tasks)})")
        log(f"- hyperparameters (every side): {json.dumps(hyper(a))}")
        log(
            f"- fastbert.finetune options: {json.dumps(fastbert_options(a, True))} (use_kernels=False for fastbert-pytorch)"
        )
        log(
            f"- warm-up: {a.untimed_steps} untimed batches per task and process before the timed run"
            if a.untimed_steps
            else "- warm-up: none (--untimed-steps 0): cold runs, compilation included"
        )
        log()

        argv = [
            "--device", a.device, "--tasks", a.tasks, "--limit", str(a.limit),
            "--batch-size", str(a.batch_size), "--lr", str(a.lr), "--threads", str(a.threads),
            "--untimed-steps", str(a.untimed_steps), "--hf-pad-to-multiple-of", str(a.hf_pad_to_multiple_of),
            "--data-dir", str(data), "--model-dir", folder,
        ]  # fmt: skip
        order = [s for r in range(a.rounds) for s in (SIDES if r % 2 == 0 else SIDES[::-1])]
        runs: list[dict[str, Any]] = []
        for i, side in enumerate(order, 1):
            log(f"[{time.strftime('%H:%M:%S')}] run {i}/{len(order)}: {side}")
            got = run_child(Path(__file__), [*argv, "--side", side], a.threads)
            for task in tasks:
                r = got[task]
                r.update(side=side, task=task, run=i, rates=rates(r, arch, task, peak))
                runs.append(r)
                rt = r["rates"]
                pad = f", padding {_pct(r['padding_fraction'])}" if "padding_fraction" in r else ""
                log(
                    f"    {side} {task}: {rt['own']:.1f} samples/s (own clock), {rt['wall']:.1f} (wall); "
                    f"{rt['tflops']:.1f} TFLOP/s, MFU {_pct(rt['mfu'])}{pad}"
                )

    summary = summarise(runs, tasks, cuda, a)
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {"info": info, "hyperparameters": hyper(a), "runs": runs, "summary": summary},
                indent=2,
                default=str,
            )
        )


def summarise(
    runs: list[dict[str, Any]], tasks: list[str], cuda: bool, a: argparse.Namespace
) -> dict[str, Any]:
    """Print every run, then per task the medians of each side and the ratios; return them."""
    log(
        "\n| run | side | task | steps | samples | own clock (s) | samples/s, own clock | samples/s, wall "
        "| TFLOP/s | MFU | HF padding | peak GPU memory (GiB) | mean train loss |"
    )
    log("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        rt, mem = r["rates"], r.get("peak_memory_gib")
        log(
            f"| {r['run']} | {r['side']} | {r['task']} | {r['steps']} | {r['samples']} | {r['loop_s']:.2f} "
            f"| {rt['own']:.1f} | {rt['wall']:.1f} | {rt['tflops']:.2f} | {_pct(rt['mfu'])} "
            f"| {_pct(r.get('padding_fraction'))} | {'n/a' if mem is None else f'{mem:.2f}'} "
            f"| {r['mean_train_loss']:.4f} |"
        )
    summary: dict[str, Any] = {}
    verdicts = []
    log("\n| task | side | samples/s, own clock | samples/s, wall | MFU | ratio to HF (own clocks) |")
    log("|---|---|---|---|---|---|")
    for task in tasks:
        med: dict[str, dict[str, Any]] = {}
        for side in SIDES:
            rs = [r for r in runs if r["task"] == task and r["side"] == side]
            mfus = [r["rates"]["mfu"] for r in rs if r["rates"]["mfu"] is not None]
            med[side] = {
                "own": statistics.median(r["rates"]["own"] for r in rs),
                "wall": statistics.median(r["rates"]["wall"] for r in rs),
                "mfu": statistics.median(mfus) if mfus else None,
                "tokens": sorted({r["tokens"] for r in rs}),
            }
        hf = med["hf"]["own"]
        for side in SIDES:
            m = med[side]
            m["ratio"] = m["own"] / hf
            ratio = "1 (competitor)" if side == "hf" else f"{m['ratio']:.2f}×"
            log(f"| {task} | {side} | {m['own']:.1f} | {m['wall']:.1f} | {_pct(m['mfu'])} | {ratio} |")
        hf_runs = [r for r in runs if r["task"] == task and r["side"] == "hf"]
        med["hf"]["padding_fraction"] = statistics.median(r["padding_fraction"] for r in hf_runs)
        summary[task] = med
        verdicts.append((task, med["fastbert"]["ratio"]))
    log()
    for task in tasks:
        m = summary[task]
        counts = {side: m[side]["tokens"] for side in SIDES}
        same = len({tuple(c) for c in counts.values()}) == 1
        log(
            f"{task}: HF pads {_pct(m['hf']['padding_fraction'])} of its token slots; real tokens per epoch "
            + (f"{counts['hf'][0]} on every side" if same else f"DIFFER between sides: {counts}")
        )
    for task, ratio in verdicts:
        verdict = f"meets ≥{BAR:g}×" if ratio >= BAR else f"BELOW the {BAR:g}× bar"
        log(
            f"{task}: fastbert / HF Trainer = {ratio:.2f}× (own clocks) → {verdict if cuda else 'no verdict'}"
        )
    if not cuda:
        log("(--device cpu: a smoke run of the script, fp32, use_kernels without effect: not a result)")
    elif a.tiny or a.limit < 1024:
        log("(--tiny or a small --limit: a quick check, not a result)")
    return summary


if __name__ == "__main__":
    main()
