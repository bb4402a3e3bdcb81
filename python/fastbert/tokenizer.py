"""`fastbert.Tokenizer`: BERT WordPiece with Hugging Face parity.

Two backends sit behind one API:

- ``"fastbert"`` (the Rust core) for every BERT WordPiece tokenizer: a
  ``tokenizer.json`` whose model is WordPiece with ``BertNormalizer`` and
  ``BertPreTokenizer``, or a bare ``vocab.txt``.
- ``"tokenizers"`` (Hugging Face) for anything else, e.g. RoBERTa's byte-level
  BPE. Ids and offsets then come from ``tokenizers``; label alignment and
  chunking (which only read word ids and offsets) work the same on top.

``Tokenizer.backend`` says which one a model took, and ``fallback_reason`` why.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from fastbert import _core

TruncationArg = bool | Literal["longest_first", "only_first", "only_second", "do_not_truncate"]
PaddingArg = bool | Literal["longest", "max_length", "do_not_pad"]
TextInput = str | Sequence[str]


class Encoding(Protocol):
    """What both backends return per input (``fastbert._core.Encoding`` or ``tokenizers.Encoding``)."""

    @property
    def ids(self) -> list[int]: ...
    @property
    def type_ids(self) -> list[int]: ...
    @property
    def tokens(self) -> list[str]: ...
    @property
    def offsets(self) -> list[tuple[int, int]]: ...
    @property
    def word_ids(self) -> list[int | None]: ...
    @property
    def sequence_ids(self) -> list[int | None]: ...
    @property
    def special_tokens_mask(self) -> list[int]: ...
    @property
    def attention_mask(self) -> list[int]: ...
    @property
    def overflowing(self) -> list[Any]: ...


def _truncation_name(truncation: TruncationArg, has_pairs: bool) -> str | None:
    if truncation is False or truncation == "do_not_truncate":
        return None
    if truncation is True:
        return "longest_first"
    if truncation in ("longest_first", "only_first", "only_second"):
        return str(truncation)
    raise ValueError(
        f"truncation must be True, False, 'longest_first', 'only_first' or 'only_second', not {truncation!r}"
    )


def _padding_name(padding: PaddingArg) -> str:
    if padding is False or padding == "do_not_pad":
        return "do_not_pad"
    if padding is True or padding == "longest":
        return "longest"
    if padding == "max_length":
        return "max_length"
    raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', not {padding!r}")


def _fallback_pad_id(folder: Path, hf: Any) -> int:
    """The pad id transformers would use: ``pad_token`` of tokenizer_config / special_tokens_map."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            pad = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        if isinstance(pad, dict):
            pad = pad.get("content")
        if isinstance(pad, str) and hf.token_to_id(pad) is not None:
            return int(hf.token_to_id(pad))
    padding = hf.padding
    return int(padding["pad_id"]) if padding else 0


def _model_max_length(folder: Path) -> int | None:
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return None
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("model_max_length")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config}: not valid JSON ({e})") from e
    # transformers writes a huge sentinel (1e30) when the length is unknown.
    return int(value) if isinstance(value, int | float) and value < 1e9 else None


class Tokenizer:
    """A BERT WordPiece tokenizer loaded from a Hugging Face model folder.

    >>> tok = Tokenizer.from_pretrained(model_dir)            # doctest: +SKIP
    >>> tok.encode("Hello, world!").tokens                    # doctest: +SKIP
    ['[CLS]', 'hello', ',', 'world', '!', '[SEP]']
    >>> batch = tok(["a text", "another"], padding=True)      # doctest: +SKIP
    """

    def __init__(
        self,
        core: _core.WordPieceTokenizer | None,
        hf: Any = None,
        *,
        model_max_length: int | None = None,
        fallback_reason: str | None = None,
    ) -> None:
        if (core is None) == (hf is None):
            raise ValueError("give exactly one backend")
        self._core = core
        self._hf = hf
        self.model_max_length = model_max_length
        self.fallback_reason = fallback_reason
        self._fallback_pad_id = 0
        # The fallback switches truncation on the shared `tokenizers` object per call.
        self._hf_lock = threading.Lock()

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, path: str | Path) -> Tokenizer:
        """Load ``tokenizer.json`` (preferred) or ``vocab.txt`` from a model folder or file.

        Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is
        missing or corrupt.
        """
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        max_len = _model_max_length(folder)
        try:
            return cls(_core.WordPieceTokenizer.from_file(path), model_max_length=max_len)
        except _core.UnsupportedTokenizerError as e:
            json_path = path / "tokenizer.json" if path.is_dir() else path
            from tokenizers import Tokenizer as HFTokenizer

            try:
                hf = HFTokenizer.from_file(str(json_path))
            except Exception as load_error:  # tokenizers raises a bare Exception
                raise ValueError(f"{json_path}: cannot be loaded by tokenizers either ({load_error})") from e
            hf.no_truncation()
            hf.no_padding()
            tok = cls(None, hf, model_max_length=max_len, fallback_reason=str(e))
            tok._fallback_pad_id = _fallback_pad_id(folder, hf)
            return tok

    @property
    def backend(self) -> str:
        """``"fastbert"`` (Rust WordPiece) or ``"tokenizers"`` (Hugging Face fallback)."""
        return "fastbert" if self._core is not None else "tokenizers"

    # ------------------------------------------------------------- vocabulary
    @property
    def vocab_size(self) -> int:
        if self._core is not None:
            return self._core.vocab_size
        return int(self._hf.get_vocab_size(with_added_tokens=True))

    def token_to_id(self, token: str) -> int | None:
        return self._core.token_to_id(token) if self._core is not None else self._hf.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self._core.id_to_token(index) if self._core is not None else self._hf.id_to_token(index)

    @property
    def pad_token_id(self) -> int:
        if self._core is not None:
            return self._core.pad_token_id
        return self._fallback_pad_id

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        if self._core is not None:
            return self._core.num_special_tokens_to_add(pair)
        return int(self._hf.num_special_tokens_to_add(pair))

    # --------------------------------------------------------------- encoding
    def _max_length(self, max_length: int | None, truncation: str | None) -> int | None:
        if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
            raise ValueError(f"max_length must be a non-negative int, not {max_length!r}")
        if truncation is not None and max_length is None:
            if self.model_max_length is None:
                raise ValueError("truncation needs max_length (this model declares no model_max_length)")
            return self.model_max_length
        return max_length

    def encode(
        self,
        text: TextInput,
        pair: TextInput | None = None,
        *,
        is_split_into_words: bool = False,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: TruncationArg = False,
        stride: int = 0,
        truncation_side: Literal["right", "left"] = "right",
    ) -> Encoding:
        """Encode one text (or pair). With ``is_split_into_words``, ``text`` is a list of words."""
        pairs = None if pair is None else [pair]
        return self.encode_batch(
            [text],
            pairs,
            is_split_into_words=is_split_into_words,
            add_special_tokens=add_special_tokens,
            max_length=max_length,
            truncation=truncation,
            stride=stride,
            truncation_side=truncation_side,
            num_threads=1,
        )[0]

    def encode_batch(
        self,
        texts: Sequence[TextInput],
        pairs: Sequence[TextInput] | None = None,
        *,
        is_split_into_words: bool = False,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: TruncationArg = False,
        stride: int = 0,
        truncation_side: Literal["right", "left"] = "right",
        num_threads: int | None = None,
    ) -> list[Encoding]:
        """Encode many inputs in parallel (Rust threads, GIL released). Order is kept."""
        strategy = _truncation_name(truncation, pairs is not None)
        max_length = self._max_length(max_length, strategy)
        _check_stride(stride)
        texts = _as_list(texts, "texts")
        if self._core is not None:
            return self._core.encode_batch(
                texts,
                pairs,
                is_split_into_words=is_split_into_words,
                add_special_tokens=add_special_tokens,
                max_length=max_length,
                truncation=strategy,
                stride=stride,
                truncation_side=truncation_side,
                num_threads=num_threads,
            )
        return self._hf_encode_batch(
            texts,
            pairs,
            is_split_into_words,
            add_special_tokens,
            max_length,
            strategy,
            stride,
            truncation_side,
        )

    def _hf_encode_batch(
        self,
        texts: Sequence[TextInput],
        pairs: Sequence[TextInput] | None,
        is_split_into_words: bool,
        add_special_tokens: bool,
        max_length: int | None,
        strategy: str | None,
        stride: int,
        truncation_side: str,
    ) -> list[Encoding]:
        hf = self._hf
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} inputs but {len(pairs)} pairs; they must match one to one")
        inputs: list[Any] = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        with self._hf_lock:
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

    def __call__(
        self,
        texts: TextInput | Sequence[TextInput],
        text_pairs: TextInput | Sequence[TextInput] | None = None,
        *,
        max_length: int | None = None,
        padding: PaddingArg = False,
        truncation: TruncationArg = False,
        stride: int = 0,
        is_split_into_words: bool = False,
        add_special_tokens: bool = True,
        pad_to_multiple_of: int | None = None,
        padding_side: Literal["right", "left"] = "right",
        truncation_side: Literal["right", "left"] = "right",
        return_tensors: Literal["np", "pt"] = "np",
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        return_word_ids: bool = False,
        return_overflowing_tokens: bool = False,
        num_threads: int | None = None,
    ) -> dict[str, Any]:
        """Tokenize and pad a batch into int64 arrays under ``transformers``' key names.

        Built in Rust, in parallel, with the GIL released: no Python object is made
        per token. ``return_tensors="pt"`` wraps the same memory as torch tensors.
        ``word_ids`` (-1 for none) is an extra that ``transformers`` has only as a method.
        """
        single = isinstance(texts, str) or (is_split_into_words and _is_word_list(texts))
        batch = [texts] if single else _as_list(texts, "texts")
        pairs = None
        if text_pairs is not None:
            pairs = [text_pairs] if single else _as_list(text_pairs, "text_pairs")
        strategy = _truncation_name(truncation, pairs is not None)
        _check_stride(stride)
        pad = _padding_name(padding)
        max_length = self._max_length(max_length, strategy if pad != "max_length" else "max_length")
        if self._core is not None:
            arrays = self._core.batch_arrays(
                batch,
                pairs,
                is_split_into_words=is_split_into_words,
                add_special_tokens=add_special_tokens,
                max_length=max_length,
                truncation=strategy,
                stride=stride,
                truncation_side=truncation_side,
                padding=pad,
                pad_to_multiple_of=pad_to_multiple_of,
                padding_side=padding_side,
                return_offsets_mapping=return_offsets_mapping,
                return_special_tokens_mask=return_special_tokens_mask,
                return_word_ids=return_word_ids,
                return_overflowing_tokens=return_overflowing_tokens,
                num_threads=num_threads,
            )
        else:
            encodings = self._hf_encode_batch(
                batch,
                pairs,
                is_split_into_words,
                add_special_tokens,
                max_length,
                strategy,
                stride,
                truncation_side,
            )
            arrays = _pad_in_python(
                encodings,
                pad,
                max_length,
                pad_to_multiple_of,
                self.pad_token_id,
                padding_side,
                return_offsets_mapping,
                return_special_tokens_mask,
                return_word_ids,
                return_overflowing_tokens,
            )
        if return_tensors == "pt":
            import torch

            return {k: torch.from_numpy(v) for k, v in arrays.items()}
        if return_tensors != "np":
            raise ValueError(f"return_tensors must be 'np' or 'pt', not {return_tensors!r}")
        return dict(arrays)

    def __repr__(self) -> str:
        return f"Tokenizer(backend={self.backend!r}, vocab_size={self.vocab_size})"


def _as_list(x: Any, what: str) -> list[Any]:
    if isinstance(x, str | bytes) or not hasattr(x, "__iter__"):
        raise TypeError(f"{what} must be a list of inputs, not {type(x).__name__}")
    return list(x)


def _check_stride(stride: Any) -> None:
    if not isinstance(stride, int) or stride < 0:
        raise ValueError(f"stride must be a non-negative int, not {stride!r}")


def _is_word_list(x: Any) -> bool:
    return isinstance(x, list | tuple) and all(isinstance(w, str) for w in x)


def _pad_in_python(
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
    """The fallback backend's padding: the same arrays as the Rust path, built in Python."""
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
