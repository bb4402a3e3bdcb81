"""The encoder families fastbert implements, by the ``model_type`` of a ``config.json``.

A family is one module (`fastbert.model.bert` for BERT) ending in an `EncoderFamily` record
(`fastbert.model.family`); adding a family is adding its module and its line in `FAMILIES`.
`fastbert.model.build` reads ``model_type`` and builds the family's encoder and task layers; the
heads (`fastbert.model.heads`), LoRA, the kernels and saving only use what `Encoder` names.
"""

from __future__ import annotations

from typing import Any

from fastbert.model.bert import BERT
from fastbert.model.deberta import DEBERTA
from fastbert.model.distilbert import DISTILBERT
from fastbert.model.electra import ELECTRA
from fastbert.model.family import Encoder, EncoderConfig, EncoderFamily
from fastbert.model.modernbert import MODERNBERT
from fastbert.model.roberta import ROBERTA

__all__ = ["BERT", "FAMILIES", "Encoder", "EncoderConfig", "EncoderFamily", "family_of", "model_type_of"]

#: The families fastbert implements, by ``model_type``.
FAMILIES: dict[str, EncoderFamily] = {
    model_type: family
    for family in (BERT, ROBERTA, DISTILBERT, ELECTRA, DEBERTA, MODERNBERT)
    for model_type in family.model_types
}


def model_type_of(config: dict[str, Any]) -> str:
    """The ``model_type`` of a ``config.json`` (a missing one is BERT's, as in old checkpoints)."""
    return str(config.get("model_type", "bert"))


def family_of(config: dict[str, Any], source: str) -> EncoderFamily:
    """The family of a ``config.json``; an unknown ``model_type`` raises, listing the supported ones."""
    model_type = model_type_of(config)
    family = FAMILIES.get(model_type)
    if family is None:
        raise ValueError(
            f"{source}: model_type {model_type!r} is not an encoder family fastbert implements "
            f"(supported: {', '.join(FAMILIES)})"
        )
    return family
