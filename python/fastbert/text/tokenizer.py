"""`fastbert.Tokenizer`: BERT WordPiece with Hugging Face parity.

Two backends sit behind one API:

- ``"fastbert"`` (the Rust core) for every BERT WordPiece tokenizer: a
  ``tokenizer.json`` whose model is WordPiece with ``BertNormalizer`` and
  ``BertPreTokenizer``, or a bare ``vocab.txt``.
- ``"tokenizers"`` (Hugging Face) for anything else, e.g. RoBERTa's byte-level
  BPE. Ids and offsets then come from ``tokenizers``; label alignment and
  chunking (which only read word ids and offsets) work the same on top.

``Tokenizer.backend`` says which one a model took, and ``fallback_reason`` why. Either way the
special tokens (``mask_token_id``, ``all_special_ids``) are the model's own, read from its files
as ``transformers`` reads them, and pre-split words are encoded as ``transformers`` does with
``add_prefix_space=True`` (`fastbert.text.fallback.words_spec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import fastbert._core as _core
from fastbert.conversions import read_json_object
from fastbert.text.fallback import TokenizersBackend, pad_encodings, special_tokens_in_files

__all__ = ["Encoding", "Tokenizer"]

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


def _model_max_length(folder: Path) -> int | None:
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return None
    value = read_json_object(config).get("model_max_length")
    # transformers writes a huge sentinel (1e30) when the length is unknown.
    return int(value) if isinstance(value, int | float) and value < 1e9 else None


class Tokenizer:
    """A tokenizer loaded from a Hugging Face model folder: BERT WordPiece in Rust, any other
    vocabulary (RoBERTa, XLM-R, DeBERTa-v3, ModernBERT, ...) through ``tokenizers``.

    >>> tok = Tokenizer.from_pretrained(model_dir)            # doctest: +SKIP
    >>> tok.encode("Hello, world!").tokens                    # doctest: +SKIP
    ['[CLS]', 'hello', ',', 'world', '!', '[SEP]']
    >>> batch = tok(["a text", "another"], padding=True)      # doctest: +SKIP
    """

    def __init__(
        self,
        wordpiece: _core.WordPieceTokenizer | None,
        fallback: TokenizersBackend | None = None,
        *,
        model_max_length: int | None = None,
        fallback_reason: str | None = None,
        special_tokens_map: dict[str, str] | None = None,
        extra_special_tokens: Sequence[str] = (),
        source: Path | None = None,
    ) -> None:
        if (wordpiece is None) == (fallback is None):
            raise ValueError("give exactly one backend")
        #: The Rust WordPiece encoder, or ``None`` on the ``tokenizers`` fallback.
        self.wordpiece = wordpiece
        #: The ``tokenizers`` backend, or ``None`` when the Rust core encodes.
        self.fallback = fallback
        self.model_max_length = model_max_length
        self.fallback_reason = fallback_reason
        #: The special tokens the tokenizer files name (``{"mask_token": "<mask>", ...}``, the
        #: keys of `fastbert.text.fallback.NAMED_SPECIAL_TOKENS`), as ``transformers`` reads them.
        self.special_tokens_map: dict[str, str] = dict(special_tokens_map or {})
        #: Their ``additional_special_tokens`` / ``extra_special_tokens``.
        self.extra_special_tokens: list[str] = list(extra_special_tokens)
        #: The folder or file the tokenizer was loaded from, for messages (the Rust encoder's file
        #: when built directly from one; else None).
        self.source = source if source is not None or wordpiece is None else wordpiece.source

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
        named, extra = special_tokens_in_files(folder)
        files: dict[str, Any] = {"special_tokens_map": named, "extra_special_tokens": extra, "source": path}
        try:
            return cls(_core.WordPieceTokenizer.from_file(path), model_max_length=max_len, **files)
        except _core.UnsupportedTokenizerError as e:
            json_path = path / "tokenizer.json" if path.is_dir() else path
            backend = TokenizersBackend.from_file(json_path, folder)
            return cls(None, backend, model_max_length=max_len, fallback_reason=str(e), **files)

    @property
    def backend(self) -> str:
        """``"fastbert"`` (Rust WordPiece) or ``"tokenizers"`` (Hugging Face fallback)."""
        return "fastbert" if self.wordpiece is not None else "tokenizers"

    # ------------------------------------------------------------- vocabulary
    @property
    def _backend(self) -> _core.WordPieceTokenizer | TokenizersBackend:
        backend = self.wordpiece if self.wordpiece is not None else self.fallback
        assert backend is not None  # __init__ checks that there is one
        return backend

    def _fallback(self) -> TokenizersBackend:
        if self.fallback is None:
            raise AssertionError("the tokenizers backend is used only when the Rust core is not")
        return self.fallback

    @property
    def vocab_size(self) -> int:
        return self._backend.vocab_size

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self._backend.id_to_token(index)

    @property
    def pad_token_id(self) -> int:
        return (
            self._backend.pad_id
            if isinstance(self._backend, TokenizersBackend)
            else self._backend.pad_token_id
        )

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._backend.num_special_tokens_to_add(pair)

    @property
    def mask_token(self) -> str | None:
        """The masked-language-model token: the files' ``mask_token`` when the vocabulary has it,
        else ``[MASK]`` (BERT, DeBERTa, ModernBERT) or ``<mask>`` (RoBERTa, XLM-R), whichever the
        vocabulary has; ``None`` when it has none."""
        for token in (self.special_tokens_map.get("mask_token"), "[MASK]", "<mask>"):
            if token is not None and self.token_to_id(token) is not None:
                return token
        return None

    @property
    def mask_token_id(self) -> int | None:
        """The id of `mask_token`, or ``None``."""
        token = self.mask_token
        return None if token is None else self.token_to_id(token)

    @property
    def all_special_ids(self) -> list[int]:
        """Sorted ids of every special token: ``[CLS] [SEP] [PAD] [MASK] [UNK]``, ``<s> </s> <pad>
        <mask> <unk>`` and whatever else the model declares.

        That is the tokens the files name (`special_tokens_map`, `extra_special_tokens`) and the
        backend's own: on the ``tokenizers`` fallback every ``added_tokens`` entry of
        ``tokenizer.json`` with ``special: true``; on the Rust path its special added tokens
        (from ``tokenizer.json``, or the ``[...]`` tokens of a bare ``vocab.txt``) and its unknown
        token. A named token missing from the vocabulary is left out.
        """
        found: set[int] = set()
        if self.wordpiece is not None:
            found.update(i for _, i, special in self.wordpiece.added_tokens if special)
            found.add(self.wordpiece.unk_token_id)
        else:
            found.update(self._fallback().special_tokens.values())
        for token in [*self.special_tokens_map.values(), *self.extra_special_tokens]:
            index = self.token_to_id(token)
            if index is not None:
                found.add(index)
        if (mask := self.mask_token_id) is not None:
            found.add(mask)
        return sorted(found)

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
        return self._encodings(
            texts,
            pairs,
            is_split_into_words,
            add_special_tokens,
            max_length,
            strategy,
            stride,
            truncation_side,
            num_threads,
        )

    def _encodings(
        self,
        texts: Sequence[TextInput],
        pairs: Sequence[TextInput] | None,
        is_split_into_words: bool,
        add_special_tokens: bool,
        max_length: int | None,
        strategy: str | None,
        stride: int,
        truncation_side: Literal["right", "left"],
        num_threads: int | None,
    ) -> list[Encoding]:
        """One `Encoding` per input from whichever backend this tokenizer has (checked arguments)."""
        if self.wordpiece is None:
            return self._fallback().encode_batch(
                texts,
                pairs,
                is_split_into_words,
                add_special_tokens,
                max_length,
                strategy,
                stride,
                truncation_side,
            )
        encodings: list[Encoding] = [
            *self.wordpiece.encode_batch(
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
        ]
        return encodings

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
        batch: list[Any] = [texts] if single else _as_list(texts, "texts")
        pairs: list[Any] | None = None
        if text_pairs is not None:
            pairs = [text_pairs] if single else _as_list(text_pairs, "text_pairs")
        strategy = _truncation_name(truncation, pairs is not None)
        _check_stride(stride)
        pad = _padding_name(padding)
        max_length = self._max_length(max_length, strategy if pad != "max_length" else "max_length")
        if self.wordpiece is not None:
            arrays = self.wordpiece.batch_arrays(
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
            encodings = self._encodings(
                batch,
                pairs,
                is_split_into_words,
                add_special_tokens,
                max_length,
                strategy,
                stride,
                truncation_side,
                num_threads,
            )
            arrays = pad_encodings(
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
