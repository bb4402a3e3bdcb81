"""The ``tokenizers`` backend of `fastbert.text.Tokenizer`, for vocabularies that are not BERT WordPiece.

RoBERTa's byte-level BPE, SentencePiece/Unigram models and anything else the Rust core does not
encode go through Hugging Face ``tokenizers`` here; ids and offsets come from it, and
:func:`pad_encodings` builds the same padded arrays as the Rust path, so label alignment and
chunking (which read only word ids and offsets) work the same on top.

Pre-split words (``is_split_into_words``) are encoded as each word would be in the middle of a
sentence, after a space: see :func:`words_spec`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastbert.conversions import read_json_object

__all__ = [
    "NAMED_SPECIAL_TOKENS",
    "TokenizersBackend",
    "pad_encodings",
    "special_tokens_in_files",
    "words_spec",
]


class TokenizersBackend:
    """A ``tokenizers.Tokenizer`` with truncation and padding off, and the pad id transformers uses."""

    def __init__(self, hf: Any, pad_id: int) -> None:
        self.hf = hf
        self.pad_id = pad_id
        # Truncation is switched on the shared `tokenizers` objects per call.
        self._lock = threading.Lock()
        # The tokenizer for pre-split words (`words_spec`), built on first use; `hf` itself when
        # its pipeline already encodes a word alone as it does after a space.
        self._words_hf: Any | None = None

    @classmethod
    def from_file(cls, json_path: Path, folder: Path) -> TokenizersBackend:
        """Load ``tokenizer.json``; the pad id comes from the tokenizer files in ``folder``."""
        from tokenizers import Tokenizer as HFTokenizer

        try:
            hf = HFTokenizer.from_file(str(json_path))
        except Exception as e:  # tokenizers raises a bare Exception
            raise ValueError(f"{json_path}: cannot be loaded by tokenizers either ({e})") from e
        hf.no_truncation()
        hf.no_padding()
        return cls(hf, _pad_id(folder, hf))

    @property
    def vocab_size(self) -> int:
        return int(self.hf.get_vocab_size(with_added_tokens=True))

    def token_to_id(self, token: str) -> int | None:
        found = self.hf.token_to_id(token)
        return None if found is None else int(found)

    def id_to_token(self, index: int) -> str | None:
        found = self.hf.id_to_token(index)
        return None if found is None else str(found)

    def num_special_tokens_to_add(self, pair: bool) -> int:
        return int(self.hf.num_special_tokens_to_add(pair))

    @property
    def special_tokens(self) -> dict[str, int]:
        """Every added token marked ``special`` in ``tokenizer.json`` (``<s>``, ``[CLS]``, …), by content."""
        added = self.hf.get_added_tokens_decoder()
        return {str(token.content): int(i) for i, token in sorted(added.items()) if token.special}

    def _for_words(self) -> Any:
        """The ``tokenizers.Tokenizer`` that encodes pre-split words (call under ``self._lock``)."""
        if self._words_hf is None:
            from tokenizers import Tokenizer as HFTokenizer

            spec = json.loads(self.hf.to_str())
            self._words_hf = HFTokenizer.from_str(json.dumps(spec)) if words_spec(spec) else self.hf
        return self._words_hf

    def encode_batch(
        self,
        texts: Sequence[Any],
        pairs: Sequence[Any] | None,
        is_split_into_words: bool,
        add_special_tokens: bool,
        max_length: int | None,
        strategy: str | None,
        stride: int,
        truncation_side: str,
    ) -> list[Any]:
        """Encode with ``tokenizers``, truncation set for this call only (under a lock: the
        setting lives on the shared ``tokenizers`` object). Bad arguments raise ``ValueError``."""
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} inputs but {len(pairs)} pairs; they must match one to one")
        inputs: list[Any] = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        with self._lock:
            hf = self._for_words() if is_split_into_words else self.hf
            try:
                if strategy is None:
                    hf.no_truncation()
                else:
                    hf.enable_truncation(
                        max_length, stride=stride, strategy=strategy, direction=truncation_side
                    )
                return list(
                    hf.encode_batch(
                        inputs, is_pretokenized=is_split_into_words, add_special_tokens=add_special_tokens
                    )
                )
            except BaseException as e:
                # tokenizers reports bad arguments as a bare Exception, or as a Rust panic
                # (PanicException derives from BaseException); give callers a ValueError.
                if isinstance(e, KeyboardInterrupt | SystemExit | MemoryError):
                    raise
                raise ValueError(f"tokenizers could not encode the batch: {e}") from None
            finally:
                hf.no_truncation()


def words_spec(spec: dict[str, Any]) -> bool:
    """Turn a parsed ``tokenizer.json``, in place, into the one that encodes pre-split words; True if
    anything changed.

    Byte-level BPE (RoBERTa, GPT-2, ModernBERT) and SentencePiece (``Metaspace``) vocabularies
    spell a word differently at the start of a text and after a space: ``"Ġword"`` and
    ``"▁word"`` are the mid-sentence forms, the ones pre-training saw for almost every word.
    ``tokenizers`` encodes each pre-split word on its own, as if it started a text, so with
    ``add_prefix_space=False`` (roberta-base, ModernBERT) or ``prepend_scheme="never"`` every word
    of a NER sentence would get its rare start-of-text spelling. ``transformers`` therefore
    requires ``add_prefix_space=True`` with ``is_split_into_words=True`` for RoBERTa (its docs,
    and the error v4 raised); this does the same: ``ByteLevel`` pre-tokenizers and
    post-processors and ``RobertaProcessing`` get ``add_prefix_space=True``, ``Metaspace`` gets
    ``prepend_scheme="always"``, so every word, the first included, is encoded as it is after a
    space. Running text keeps the file's own settings. A ``PreTrainedTokenizerFast`` loaded by
    ``transformers`` 5 does not apply ``add_prefix_space`` to its ``tokenizer.json``; set its
    ``backend_tokenizer.pre_tokenizer`` to match.
    """
    changed = False

    def visit(node: Any, children: str) -> None:
        nonlocal changed
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        wanted: dict[str, Any] = {}
        if kind in ("ByteLevel", "RobertaProcessing"):
            wanted = {"add_prefix_space": True}
        elif kind == "Metaspace":
            # `add_prefix_space` is the field of the format before `prepend_scheme` (`tokenizers`
            # < 0.19); both must agree.
            wanted = {"prepend_scheme": "always", "add_prefix_space": True}
        for key, value in wanted.items():
            if key in node and node[key] != value:
                node[key] = value
                changed = True
        for child in node.get(children) or []:
            visit(child, children)

    visit(spec.get("pre_tokenizer"), "pretokenizers")
    visit(spec.get("post_processor"), "processors")
    return changed


#: The special tokens ``transformers`` names in a tokenizer's files, as their keys there.
NAMED_SPECIAL_TOKENS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)


def special_tokens_in_files(folder: Path) -> tuple[dict[str, str], list[str]]:
    """The special tokens a model folder's ``tokenizer_config.json`` and ``special_tokens_map.json``
    name, as ``transformers`` reads them: ``({"cls_token": "[CLS]", ...}, [additional tokens])``.

    ``tokenizer_config.json`` wins over ``special_tokens_map.json``; a token is a string or an
    ``AddedToken`` dict (``{"content": ...}``); ``None`` means none. The additional ones are
    ``additional_special_tokens`` (transformers 4) and ``extra_special_tokens`` (5: a list, or a
    dict of names)."""
    named: dict[str, str] = {}
    extra: list[str] = []
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / name
        if not path.is_file():
            continue
        values = read_json_object(path)
        for key in NAMED_SPECIAL_TOKENS:
            token = _content(values.get(key))
            if token is not None:
                named.setdefault(key, token)
        for key in ("additional_special_tokens", "extra_special_tokens"):
            listed = values.get(key)
            items = (
                listed.values() if isinstance(listed, dict) else listed if isinstance(listed, list) else []
            )
            extra += [t for t in map(_content, items) if t is not None and t not in extra]
    return named, extra


def _content(token: Any) -> str | None:
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


def _pad_id(folder: Path, hf: Any) -> int:
    """The pad id transformers would use: ``pad_token`` of tokenizer_config / special_tokens_map."""
    pad = special_tokens_in_files(folder)[0].get("pad_token")
    if pad is not None and hf.token_to_id(pad) is not None:
        return int(hf.token_to_id(pad))
    padding = hf.padding
    return int(padding["pad_id"]) if padding else 0


def pad_encodings(
    encodings: list[Any],
    padding: str,
    max_length: int | None,
    pad_to_multiple_of: int | None,
    pad_id: int,
    side: str,
    offsets: bool,
    special: bool,
    word_ids: bool,
    overflowing: bool,
) -> dict[str, np.ndarray]:
    """Pad ``tokenizers`` encodings into the arrays the Rust path returns (same keys, dtypes, layout)."""
    rows: list[tuple[Any, int]] = []
    for i, e in enumerate(encodings):
        rows.append((e, i))
        if overflowing:
            rows.extend((o, i) for o in e.overflowing)
    longest = max((len(e.ids) for e, _ in rows), default=0)
    if padding == "do_not_pad":
        if any(len(e.ids) != longest for e, _ in rows):
            raise ValueError("rows differ in length; pass padding=True or padding='max_length' to stack them")
        cols = longest
    elif padding == "max_length":
        cols = max(longest, max_length or 0)
    else:
        cols = longest
    if pad_to_multiple_of:
        cols = -(-cols // pad_to_multiple_of) * pad_to_multiple_of
    n = len(rows)
    out = {
        "input_ids": np.full((n, cols), pad_id, dtype=np.int64),
        "token_type_ids": np.zeros((n, cols), dtype=np.int64),
        "attention_mask": np.zeros((n, cols), dtype=np.int64),
    }
    if special:
        out["special_tokens_mask"] = np.ones((n, cols), dtype=np.int64)
    if offsets:
        out["offset_mapping"] = np.zeros((n, cols, 2), dtype=np.int64)
    if word_ids:
        out["word_ids"] = np.full((n, cols), -1, dtype=np.int64)
    for r, (e, _) in enumerate(rows):
        k = len(e.ids)
        sl = slice(0, k) if side == "right" else slice(cols - k, cols)
        out["input_ids"][r, sl] = e.ids
        out["token_type_ids"][r, sl] = e.type_ids
        out["attention_mask"][r, sl] = e.attention_mask
        if special:
            out["special_tokens_mask"][r, sl] = e.special_tokens_mask
        if offsets and k:
            out["offset_mapping"][r, sl] = e.offsets
        if word_ids:
            out["word_ids"][r, sl] = [-1 if w is None else w for w in e.word_ids]
    if overflowing:
        out["overflow_to_sample_mapping"] = np.array([i for _, i in rows], dtype=np.int64)
    return out
