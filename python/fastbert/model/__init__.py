"""The model: our encoders (one module per family), task heads, LoRA, dropout, kernel dispatch.

- `fastbert.model.bert`: the BERT encoder (`BertConfig`, `BertModel`), loading Hugging Face
  checkpoints; `fastbert.model.attention`: the attention functions every family shares;
- `fastbert.model.encoder`: what a head needs of an encoder, and the family registry;
- `fastbert.model.heads`: sequence, token and masked-LM heads named as in ``transformers``;
- `fastbert.model.lora`: LoRA adapters (the merged and Triton paths are in `fastbert.kernels`);
- `fastbert.model.dropout`: dropout whose CPU masks come from the Rust core;
- `fastbert.model.kernel_dispatch`: where the Triton kernels take over on CUDA;
- `fastbert.model.checkpoint` and `fastbert.model.build`: a task model from a checkpoint folder;
- `fastbert.model.device`: the device and autocast rules.
"""

from fastbert.model.bert import BertConfig, BertModel
from fastbert.model.build import apply_strategy, build_model
from fastbert.model.heads import Head, MaskedLM, SequenceClassifier, TokenClassifier

__all__ = [
    "BertConfig",
    "BertModel",
    "Head",
    "MaskedLM",
    "SequenceClassifier",
    "TokenClassifier",
    "apply_strategy",
    "build_model",
]
