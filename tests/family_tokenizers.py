"""Small tokenizers of every encoder family fastbert supports, trained here on the shared raw text.

``write_tokenizer(folder, style)`` trains a tokenizer with Hugging Face ``tokenizers`` and writes
the folder a model would ship (``tokenizer.json``, ``tokenizer_config.json``,
``special_tokens_map.json``, and ``vocab.txt`` for WordPiece), so that the tests can load it with
both ``fastbert.Tokenizer.from_pretrained`` and ``transformers.AutoTokenizer.from_pretrained``.
Nothing is downloaded: the real checkpoints' tokenizers are mimicked in layout (special tokens,
their ids, normalizer, pre-tokenizer, post-processor, ``tokenizer_class``), not in vocabulary.

Styles (the family's layout, after the checkpoint it copies):

- ``bert-wordpiece``: BERT / DistilBERT / ELECTRA. Lower-casing ``BertNormalizer``, WordPiece,
  ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4``, ``BertProcessing``; ``BertTokenizer``.
- ``roberta-bpe``: roberta-base. Byte-level BPE, ``<s>=0 <pad>=1 </s>=2 <unk>=3``, ``<mask>``
  last (``lstrip``, as in roberta-base), ``RobertaProcessing``, ``add_prefix_space=False``;
  ``RobertaTokenizer``.
- ``xlmr-unigram``: xlm-roberta-base. SentencePiece Unigram behind ``WhitespaceSplit`` +
  ``Metaspace`` (▁), ``<s>=0 <pad>=1 </s>=2 <unk>=3``, ``<mask>`` last,
  ``<s> A </s>`` / ``<s> A </s></s> B </s>``; ``XLMRobertaTokenizer``.
- ``deberta-unigram``: deberta-v3-base. SentencePiece Unigram behind DeBERTa-v2's normalizer
  and ``Metaspace``, ``[PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3``, ``[MASK]`` last,
  ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` with type ids 0 / 1; ``DebertaV2Tokenizer``.
- ``modernbert-bpe``: ModernBERT-base (OLMo's byte-level BPE). The specials come after the
  vocabulary (``[UNK] [CLS] [SEP] [PAD] [MASK]``, ``[MASK]`` with ``lstrip``), a template
  post-processor, ``model_max_length`` 8192; ``PreTrainedTokenizerFast``.

transformers 5 rebuilds the named tokenizer classes from the vocabulary with the pipeline each
class hard-codes (``RobertaTokenizer.__init__`` and so on), keeping only the file's post-processor;
so each ``tokenizer.json`` here uses exactly that pipeline, as a checkpoint converted by
transformers has it. ``PreTrainedTokenizerFast`` uses the file as it is.

Every run writes the same files (a fixed slice of every raw-text file; where a ``tokenizers``
trainer depends on hash-map order, the result is put in a canonical order, see
``_bert_wordpiece`` and ``_unigram``). Training takes about a second of CPU for each Unigram
style and a fraction of one for the others.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

__all__ = ["RAW_TEXT", "STYLES", "training_lines", "write_tokenizer"]

# The shared data sets live beside the project, in ../shared/data (as tests/conftest.py finds them).
RAW_TEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raw_text"

#: Lines taken from the start of each raw-text file: enough text for a 1,000-token vocabulary with
#: social media, Wikipedia and Shakespeare in it, little enough that Unigram trains in about a second.
LINES_PER_FILE = 300

STYLES = ("bert-wordpiece", "roberta-bpe", "xlmr-unigram", "deberta-unigram", "modernbert-bpe")


def training_lines(per_file: int = LINES_PER_FILE) -> list[str]:
    """The first ``per_file`` non-blank lines of every file in ``raw_text``, in file-name order."""
    if not RAW_TEXT.is_dir():
        raise FileNotFoundError(
            f"the shared raw text is not at {RAW_TEXT} (expected ../shared/data/raw_text)"
        )
    lines: list[str] = []
    for path in sorted(RAW_TEXT.glob("*.txt")):
        kept = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
        lines += kept[:per_file]
    return lines


# --------------------------------------------------------------------------------- the styles
# Each builder returns the trained `tokenizers.Tokenizer` and the tokenizer_config.json fields that
# name its class and special tokens.
Built = tuple[Tokenizer, dict[str, Any]]


def _bert_wordpiece(lines: list[str], vocab_size: int) -> Built:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    # tokenizers' WordPieceTrainer is not deterministic: it numbers the "##x" pieces in hash-map
    # order, and those numbers break ties between equally frequent merges. Its BPE trainer without
    # a prefix is deterministic, so the pieces are learnt by BPE, and each gets a word-start and a
    # "##" continuation form, in the order BPE learnt them (every character first).
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizer
    bpe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    bpe.train_from_iterator(
        lines, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    )
    learnt = bpe.get_vocab(with_added_tokens=False)
    vocab = list(specials)
    for piece in sorted(learnt, key=learnt.__getitem__):
        if piece not in specials:
            vocab += [piece, "##" + piece]
    tk = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab[:vocab_size])}, unk_token="[UNK]"))
    tk.normalizer = normalizer
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece(prefix="##")
    tk.add_special_tokens(specials)
    tk.post_processor = processors.BertProcessing(("[SEP]", _id(tk, "[SEP]")), ("[CLS]", _id(tk, "[CLS]")))
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "tokenize_chinese_chars": True,
        "strip_accents": None,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "model_max_length": 512,
    }
    return tk, config


def _byte_level_bpe(lines: list[str], vocab_size: int, specials: list[str]) -> Tokenizer:
    """Byte-level BPE as GPT-2 / RoBERTa / OLMo have it, ``add_prefix_space=False``."""
    tk = Tokenizer(
        models.BPE(dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    )
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(lines, trainer)
    return tk


def _roberta_bpe(lines: list[str], vocab_size: int) -> Built:
    tk = _byte_level_bpe(lines, vocab_size - 1, ["<s>", "<pad>", "</s>", "<unk>"])
    # roberta-base's <mask> is the last id and takes the space before it (lstrip).
    tk.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    tk.post_processor = processors.RobertaProcessing(
        ("</s>", _id(tk, "</s>")), ("<s>", _id(tk, "<s>")), trim_offsets=True, add_prefix_space=False
    )
    config = {
        "tokenizer_class": "RobertaTokenizer",
        "add_prefix_space": False,
        "trim_offsets": True,
        "errors": "replace",
        **_named("<s>", "</s>", "<s>", "</s>", "<pad>", "<unk>", "<mask>"),
        "model_max_length": 512,
    }
    return tk, config


def _unigram(lines: list[str], vocab_size: int, tk: Tokenizer, specials: list[str], unk: str) -> None:
    # One EM sub-iteration and a steeper shrink: the vocabulary is a test fixture, and these halve
    # the training time with no difference that matters here.
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        unk_token=unk,
        shrinking_factor=0.5,
        n_sub_iterations=1,
        show_progress=False,
    )
    tk.train_from_iterator(lines, trainer)
    # The trainer learns the same pieces every run but not the same file: it sums scores in hash-map
    # order (they differ in the last digits), and it appends the characters that no piece covers
    # in hash-map order too, scored lowest + 0.0001 * position. So round the scores, give those
    # characters one score below every piece, and sort the pieces after the special tokens.
    learnt = json.loads(tk.to_str())["model"]["vocab"]
    scores = {piece: round(score, 6) for piece, score in learnt[len(specials) :]}
    lowest = min(scores.values())
    for piece, score in scores.items():
        if len(piece) == 1 and score < lowest + 0.05:
            scores[piece] = math.floor(lowest) - 1.0
    pieces = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    kept = [(piece, score) for piece, score in learnt[: len(specials)]]
    tk.model = models.Unigram([*kept, *pieces], specials.index(unk), byte_fallback=False)


def _xlmr_unigram(lines: list[str], vocab_size: int) -> Built:
    tk = Tokenizer(models.Unigram())
    # XLMRobertaTokenizer's pipeline. The real checkpoint also has SentencePiece's precompiled
    # nmt_nfkc normalizer, which cannot be built here without sentencepiece.
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    _unigram(lines, vocab_size - 1, tk, ["<s>", "<pad>", "</s>", "<unk>"], "<unk>")
    tk.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", _id(tk, "<s>")), ("</s>", _id(tk, "</s>"))],
    )
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "add_prefix_space": True,
        **_named("<s>", "</s>", "<s>", "</s>", "<pad>", "<unk>", "<mask>"),
        "model_max_length": 512,
    }
    return tk, config


def _deberta_unigram(lines: list[str], vocab_size: int) -> Built:
    tk = Tokenizer(models.Unigram())
    # DebertaV2Tokenizer's pipeline (do_lower_case=False, split_by_punct=False, add_prefix_space=True).
    tk.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "),
            normalizers.NFC(),
            normalizers.Strip(left=False, right=True),
        ]
    )
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    _unigram(lines, vocab_size - 1, tk, ["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[UNK]")
    tk.add_special_tokens([AddedToken("[MASK]", normalized=False, special=True)])
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", _id(tk, "[CLS]")), ("[SEP]", _id(tk, "[SEP]"))],
    )
    config = {
        "tokenizer_class": "DebertaV2Tokenizer",
        "do_lower_case": False,
        "split_by_punct": False,
        "add_prefix_space": True,
        "vocab_type": "spm",
        **_named("[CLS]", "[SEP]", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
        "model_max_length": 512,
    }
    return tk, config


def _modernbert_bpe(lines: list[str], vocab_size: int) -> Built:
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tk = _byte_level_bpe(lines, vocab_size - len(specials), [])
    tk.add_special_tokens(
        [AddedToken(t, lstrip=t == "[MASK]", normalized=False, special=True) for t in specials]
    )
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", _id(tk, "[CLS]")), ("[SEP]", _id(tk, "[SEP]"))],
    )
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": True,
        **_named(None, None, "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
        "model_max_length": 8192,
        "model_input_names": ["input_ids", "attention_mask"],
    }
    return tk, config


BUILDERS: dict[str, Callable[[list[str], int], Built]] = {
    "bert-wordpiece": _bert_wordpiece,
    "roberta-bpe": _roberta_bpe,
    "xlmr-unigram": _xlmr_unigram,
    "deberta-unigram": _deberta_unigram,
    "modernbert-bpe": _modernbert_bpe,
}


# ------------------------------------------------------------------------------------ writing
def write_tokenizer(folder: Path, style: str, vocab_size: int = 1000) -> None:
    """Train a ``style`` tokenizer (see the module docstring) on the shared raw text and write its
    Hugging Face folder into ``folder`` (created if needed)."""
    if style not in BUILDERS:
        raise ValueError(f"unknown style {style!r}; the styles are {', '.join(STYLES)}")
    tk, config = BUILDERS[style](training_lines(), vocab_size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tk.save(str(folder / "tokenizer.json"))
    added = tk.get_added_tokens_decoder()
    token_fields = {name: value for name, value in config.items() if name.endswith("_token")}
    # A special token written as a dict keeps its flags (lstrip on <mask>), as save_pretrained does.
    by_content = {token.content: token for token in added.values()}
    special_map = {name: _token_dict(by_content[value]) for name, value in token_fields.items()}
    config["added_tokens_decoder"] = {str(i): _token_dict(token) for i, token in sorted(added.items())}
    _write_json(folder / "tokenizer_config.json", config)
    _write_json(folder / "special_tokens_map.json", special_map)
    if style == "bert-wordpiece":
        vocab = tk.get_vocab()
        (folder / "vocab.txt").write_text("".join(t + "\n" for t in sorted(vocab, key=vocab.__getitem__)))


def _named(
    bos: str | None, eos: str | None, cls: str, sep: str, pad: str, unk: str, mask: str
) -> dict[str, str]:
    names = {"bos_token": bos, "eos_token": eos, "cls_token": cls, "sep_token": sep}
    named = {k: v for k, v in names.items() if v is not None}
    return {**named, "pad_token": pad, "unk_token": unk, "mask_token": mask}


def _id(tk: Tokenizer, token: str) -> int:
    found = tk.token_to_id(token)
    if found is None:
        raise AssertionError(f"{token!r} is not in the trained vocabulary")
    return int(found)


def _token_dict(token: AddedToken) -> dict[str, Any]:
    return {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
        "special": token.special,
    }


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
