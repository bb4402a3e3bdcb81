"""Fine-tuning speed on the CPU per encoder family: fastbert.finetune against transformers.Trainer
on the same random-initialised checkpoint (bar: ≥1.5× on every family, as for BERT).

"Bring your own encoder": the BERT claim of `bench_finetune_speed_cpu.py` must hold for every
family fastbert reads. For each ``model_type`` (bert, roberta, xlm-roberta, distilbert, electra,
deberta-v2, modernbert) the parent builds, once, a small random checkpoint the way a user's would
look: transformers' own ``AutoModelForMaskedLM.from_config(...).save_pretrained(folder)`` (seed 0)
beside a tokenizer of the family's kind (`tests/family_tokenizers.py`, the same styles as
`tests/family_checkpoints.py`, whose ``hf_config`` this reuses), trained on all of
``../shared/data/raw_text``. Nothing is downloaded.

The size is all-MiniLM-L6-v2's, the model of the BERT bench: 6 layers, hidden 384, 12 heads,
feed-forward 1536, 512 positions (RoBERTa / XLM-R: 514, their positions start after the padding
index), a vocabulary of 30,522 (MiniLM's; the BERT row is MiniLM's architecture with random
weights). Per family:

- DistilBERT: ``dim`` 384, ``n_layers`` 6, ``n_heads`` 12, ``hidden_dim`` 1536.
- ELECTRA: ``embedding_size`` 384 = hidden, as in ELECTRA-base (no embedding projection; ELECTRA-small
  has 128 under hidden 256).
- DeBERTa-v2: deberta-v3's relative attention (``relative_attention``, ``position_buckets`` 256,
  ``pos_att_type`` p2c + c2p, ``norm_rel_ebd`` layer_norm, ``share_att_key``,
  ``position_biased_input`` False, ``type_vocab_size`` 0).
- ModernBERT: GeGLU ``intermediate_size`` 576 = 1.5 × hidden, ModernBERT-base's proportion (1152 at
  768): its MLP has 3·384·576 = 0.66 M weights a layer against BERT's 2·384·1536 = 1.18 M.
  ``local_attention`` 128, ``global_attn_every_n_layers`` 3 (ModernBERT-base's).

Why 30,522 and all of raw_text: SST-2 should tokenize to the lengths a real checkpoint gives.
MiniLM's WordPiece gives 25.2 tokens a sentence (specials included, cut at 128); these tokenizers
gave 26.5 (WordPiece, byte-level BPE) and 27.5 (XLM-R's Unigram) in a trial, against 31.7 at a
vocabulary of 8,000 (WordPiece). The script prints each family's mean beside MiniLM's.

Then, in one job, for each family registered in ``fastbert.model.encoder.FAMILIES`` (the others
are named and skipped), runs alternate HF, fastbert, fastbert, HF, ... (``--rounds`` pairs), every
run a fresh child process with the same torch threads, exactly as `bench_finetune_speed_cpu.py`
(whose hyperparameters and ``finetune`` options this imports): SST-2 train, batch 32, lr 5e-5,
one epoch, max length 128, fp32, AdamW with weight decay 0.01, 6% linear warm-up, clipping 1.0.

- HF: ``AutoTokenizer`` and ``AutoModelForSequenceClassification`` from the folder,
  ``DataCollatorWithPadding``, ``Trainer`` (`_train_common.hf_sequence`).
- fastbert: ``fastbert.finetune(train, dev, model=folder, ...)`` (`_train_common.fastbert_sequence`).

The ratio is of the medians of each library's own clock around its training loop (HF
``train_samples_per_second``, fastbert ``history.train_samples_per_second``); end to end
(tokenizer and model load, tokenization, training) and dev accuracy after the epoch are printed
beside it. Dev accuracy is a check that both sides trained, not a quality claim (random weights).

    python benches/bench_families_cpu.py [--families bert,roberta] [--rounds 1] [--cache DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _train_common import (  # noqa: E402
    REPO,
    child_setup,
    cores,
    fastbert_sequence,
    find_data_dir,
    hf_sequence,
    log,
    model_dir,
    read_sst2,
    report,
    run_child,
)
from bench_finetune_speed_cpu import fastbert_options, hyper, rates  # noqa: E402  (the same recipe)

BAR = 1.5
SEED = 0
FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2", "modernbert")
VOCAB_SIZE = 30522  # MiniLM's (bert-base-uncased's)
MAX_LENGTH = 128
#: The shape shared by the families (all-MiniLM-L6-v2's), in BERT's config names.
SIZE = {
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
}


def overrides(model_type: str) -> dict[str, Any]:
    """Fields over `family_checkpoints.hf_config`'s tiny ones (see the module docstring)."""
    if model_type == "distilbert":
        return {"dim": 384, "n_layers": 6, "n_heads": 12, "hidden_dim": 1536, "max_position_embeddings": 512}
    if model_type in ("roberta", "xlm-roberta"):
        return {**SIZE, "max_position_embeddings": 514}
    if model_type == "electra":
        return {**SIZE, "embedding_size": 384}
    if model_type == "deberta-v2":
        return {**SIZE, "position_buckets": 256}
    if model_type == "modernbert":
        return {**SIZE, "intermediate_size": 576, "local_attention": 128, "global_attn_every_n_layers": 3}
    return dict(SIZE)


# ----------------------------------------------------------------------------- checkpoints
def build(folder: Path, model_type: str, vocab_size: int) -> dict[str, Any]:
    """A random ``<Family>ForMaskedLM`` and its tokenizer in ``folder``, unless a finished build with
    the same recipe is there (``bench_families.json``, written last). Returns that record."""
    recipe = {
        "model_type": model_type,
        "config_overrides": overrides(model_type),
        "vocab_size": vocab_size,
        "seed": SEED,
        "raw_text": "all lines",
    }
    marker = folder / "bench_families.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("recipe") == recipe:
            return {**done, "built_s": 0.0, "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    sys.path.insert(0, str(REPO / "tests"))
    import family_checkpoints as fc
    import family_tokenizers as ftok
    import torch
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's shard bar, in the parent's log
    t0 = time.perf_counter()
    # write_tokenizer trains on `training_lines()`, 300 lines a file (a test fixture's budget): with
    # so little text and 8,000 ids SST-2 came out 27% longer than with MiniLM's vocabulary (32.0
    # tokens a sentence against 25.2). Feed it every line (Unigram then trains for a minute or two).
    lines = ftok.training_lines(per_file=sys.maxsize)
    original = ftok.training_lines
    ftok.training_lines = lambda *a, **k: lines
    try:
        ftok.write_tokenizer(folder, fc.TOKENIZER_STYLE[model_type], vocab_size)
    finally:
        ftok.training_lines = original
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    names = {"pad": ("[PAD]", "<pad>"), "cls": ("[CLS]", "<s>"), "sep": ("[SEP]", "</s>")}
    specials = {role: fc.added_token_id(tokenizer, n) for role, n in names.items()}
    vocab = fc.vocab_size_of(tokenizer)
    torch.manual_seed(SEED)
    model = AutoModelForMaskedLM.from_config(
        fc.hf_config(model_type, vocab, specials, **overrides(model_type))
    )
    model.save_pretrained(folder)
    record = {
        "recipe": recipe,
        "tokenizer_style": fc.TOKENIZER_STYLE[model_type],
        "tokenizer_vocab": vocab,
        "mlm_class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    marker.write_text(json.dumps(record, indent=2))
    return {**record, "built_s": time.perf_counter() - t0, "cached": False}


def mean_tokens(folder: Path, sentences: list[str]) -> float:
    """Mean tokens a sentence, specials included, cut at `MAX_LENGTH`, by ``folder/tokenizer.json``."""
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(MAX_LENGTH)
    return sum(len(e.ids) for e in tk.encode_batch(sentences)) / len(sentences)


def registered() -> set[str]:
    """The model_types fastbert implements now (families are being added while this is written)."""
    from fastbert.model.encoder import FAMILIES as IMPLEMENTED

    return set(IMPLEMENTED)


# ----------------------------------------------------------------------------- one run
def child(a: argparse.Namespace) -> None:
    child_setup(a.threads, "cpu")
    data = find_data_dir(a.data_dir)
    train = read_sst2(data, "train")[: a.limit]
    dev = read_sst2(data, "dev")
    if a.side == "hf":
        r = hf_sequence(train, dev, hyper(a), "cpu", model=a.folder)
    else:
        r = fastbert_sequence(train, dev, fastbert_options(a), model=a.folder)
    Path(a.child_out).write_text(json.dumps(r, default=str))


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def bench_family(a: argparse.Namespace, model_type: str, folder: Path, argv: list[str]) -> dict[str, Any]:
    """``--rounds`` alternating HF/fastbert pairs on one family's checkpoint; every run and the medians."""
    order: list[str] = []
    for r in range(a.rounds):
        order += ["hf", "fastbert"] if r % 2 == 0 else ["fastbert", "hf"]
    load_before = load()
    runs: list[dict[str, Any]] = []
    for i, side in enumerate(order, 1):
        log(f"[{time.strftime('%H:%M:%S')}] {model_type} run {i}/{len(order)}: {side} (load {load()})")
        r = run_child(Path(__file__), [*argv, "--folder", str(folder), "--side", side], a.threads)
        r.update(side=side, run=i, rates=rates(side, r))
        runs.append(r)
        rt = r["rates"]
        log(
            f"    {model_type} {side}: loop {rt['loop_own']:.1f} samples/s (own clock), {rt['loop_wall']:.1f} "
            f"(wall), end to end {rt['end_to_end']:.1f}; cores used {r['train_cores_used']:.2f}; "
            f"{r['total_steps']} steps; dev accuracy {r['score']:.4f}"
        )
    summary: dict[str, Any] = {"load_before": load_before, "load_after": load()}
    for side in ("hf", "fastbert"):
        rs = [r for r in runs if r["side"] == side]
        summary[side] = {
            k: statistics.median(r["rates"][k] for r in rs) for k in ("loop_own", "loop_wall", "end_to_end")
        }
        summary[side]["dev_accuracy"] = statistics.mean(r["score"] for r in rs)
    for k in ("loop_own", "loop_wall", "end_to_end"):
        summary[f"ratio_{k}"] = summary["fastbert"][k] / summary["hf"][k]
    h, f = summary["hf"], summary["fastbert"]
    log(
        f"  {model_type}: training loop (own clocks) HF {h['loop_own']:.1f}, fastbert {f['loop_own']:.1f} "
        f"samples/s → {summary['ratio_loop_own']:.2f}×; end to end HF {h['end_to_end']:.1f}, fastbert "
        f"{f['end_to_end']:.1f} → {summary['ratio_end_to_end']:.2f}×; load (1/5/15 min) before "
        f"{load_before}, after {summary['load_after']}\n"
    )
    return {"runs": runs, "summary": summary}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=",".join(FAMILIES), help="comma list of model_types (default: all)")
    p.add_argument("--limit", type=int, default=None, help="first N training sentences (a quick check)")
    p.add_argument(
        "--rounds", type=int, default=1, help="HF/fastbert pairs per family, alternating (ABBA...)"
    )
    p.add_argument(
        "--threads", type=int, default=cores(), help="torch threads, both sides (default: all cores)"
    )
    p.add_argument(
        "--cache", metavar="DIR", help="keep the built checkpoints here (default: a temporary folder)"
    )
    p.add_argument("--json", metavar="PATH", help="write every run's record and the summaries here")
    p.add_argument(
        "--vocab-size", type=int, default=VOCAB_SIZE, help=f"tokenizer vocabulary (default {VOCAB_SIZE})"
    )
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--data-dir", default=None, help="folder with sst2/ (default: <repo>/../shared/data)")
    p.add_argument("--side", choices=["hf", "fastbert"], help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child_out:
        child(a)
        return

    families = [f.strip() for f in a.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise SystemExit(f"unknown --families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    data = find_data_dir(a.data_dir)
    train = read_sst2(data, "train")[: a.limit]
    info = report("cpu", a.threads)
    info["model"] = (
        f"random {', '.join(families)} checkpoints, 6 layers, hidden 384, 12 heads, vocabulary {a.vocab_size}"
    )
    implemented = registered()
    log("## Fine-tuning speed per encoder family on the CPU: fastbert.finetune vs transformers.Trainer\n")
    for k, v in info.items():
        log(f"- {k}: {v}")
    log(f"- data: {data / 'sst2'} (train {len(train)} sentences{' (--limit)' if a.limit else ''}, dev)")
    log(f"- hyperparameters (both sides): {json.dumps(hyper(a))}")
    log(f"- fastbert.finetune options: {json.dumps(fastbert_options(a))}")
    log(f"- families fastbert implements now: {', '.join(sorted(implemented))}")
    log()

    cache = Path(a.cache) if a.cache else Path(tempfile.mkdtemp(prefix="fastbert-families-"))
    cache.mkdir(parents=True, exist_ok=True)
    argv = [
        "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--lr", str(a.lr),
        "--threads", str(a.threads), *(["--limit", str(a.limit)] if a.limit else []),
        "--data-dir", str(data),
    ]  # fmt: skip
    # Mean lengths over all of SST-2 train, whatever --limit says.
    sentences = [r["sentence"] for r in read_sst2(data, "train")]
    minilm_len = mean_tokens(model_dir(), sentences)
    results: dict[str, Any] = {}
    try:
        for model_type in families:
            if model_type not in implemented:
                log(f"{model_type}: SKIPPED, not in fastbert.model.encoder.FAMILIES yet\n")
                results[model_type] = {"skipped": "not in fastbert.model.encoder.FAMILIES"}
                continue
            folder = cache / f"{model_type}-L6-H384-A12-v{a.vocab_size}"
            log(f"[{time.strftime('%H:%M:%S')}] {model_type}: checkpoint {folder}")
            built = build(folder, model_type, a.vocab_size)
            length = mean_tokens(folder, sentences)
            how = "cached" if built["cached"] else f"built in {built['built_s']:.0f} s"
            log(
                f"    {built['mlm_class']}, {built['parameters'] / 1e6:.1f} M parameters, "
                f"{built['tokenizer_style']} tokenizer of {built['tokenizer_vocab']} ids "
                f"({how}); "
                f"SST-2 train {length:.1f} tokens a sentence (MiniLM's WordPiece: {minilm_len:.1f})"
            )
            try:
                res = bench_family(a, model_type, folder, argv)
            except RuntimeError as e:  # one family's failure must not lose the others' results
                log(f"{model_type}: FAILED: {e}\n")
                results[model_type] = {"failed": str(e), "checkpoint": built}
                continue
            results[model_type] = {**res, "checkpoint": built, "sst2_mean_tokens": length}
    finally:
        if not a.cache:
            shutil.rmtree(cache, ignore_errors=True)

    log("| family | HF samples/s | fastbert samples/s | ratio | dev accuracy HF / fastbert |")
    log("|---|---|---|---|---|")
    for model_type, r in results.items():
        if "summary" not in r:
            why = "skipped: not in FAMILIES" if "skipped" in r else "FAILED (see above)"
            log(f"| {model_type} | {why} | | | |")
            continue
        s = r["summary"]
        log(
            f"| {model_type} | {s['hf']['loop_own']:.1f} | {s['fastbert']['loop_own']:.1f} "
            f"| {s['ratio_loop_own']:.2f}× | {s['hf']['dev_accuracy']:.4f} / {s['fastbert']['dev_accuracy']:.4f} |"
        )
    log(
        "\n| family | parameters (MLM) | SST-2 tokens a sentence | end to end HF / fastbert (samples/s) | ratio end to end | load before → after |"
    )
    log("|---|---|---|---|---|---|")
    for model_type, r in results.items():
        if "summary" in r:
            s = r["summary"]
            log(
                f"| {model_type} | {r['checkpoint']['parameters'] / 1e6:.1f} M | {r['sst2_mean_tokens']:.1f} "
                f"| {s['hf']['end_to_end']:.1f} / {s['fastbert']['end_to_end']:.1f} | {s['ratio_end_to_end']:.2f}× "
                f"| {s['load_before']} → {s['load_after']} |"
            )
    log(f"\n(MiniLM's WordPiece: {minilm_len:.1f} SST-2 tokens a sentence)")
    timed = {m: r["summary"]["ratio_loop_own"] for m, r in results.items() if "summary" in r}
    below = [m for m, x in timed.items() if x < BAR]
    if timed:
        log(
            f"speed ratio (training loop, own clocks): {min(timed.values()):.2f}× at worst ({min(timed, key=timed.__getitem__)}) → "
            + (
                f"meets ≥{BAR:g}× on every family timed"
                if not below
                else f"BELOW the {BAR:g}× bar: {', '.join(below)}"
            )
        )
    if a.limit:
        log(f"(--limit {a.limit}: a quick check, not a result)")
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {"info": info, "minilm_sst2_mean_tokens": minilm_len, "families": results},
                indent=2,
                default=str,
            )
        )
    if any("failed" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
