"""The model: our encoders (one module per family), task heads, LoRA, dropout, kernel dispatch.

- one module per encoder family, loading Hugging Face checkpoints: `fastbert.model.bert`
  (`BertConfig`, `BertModel`), `roberta` (RoBERTa, XLM-R), `distilbert`, `electra`, `deberta`
  (DeBERTa-v2/v3, its config in `deberta_config`), `modernbert`;
- `fastbert.model.family`: what a family module provides (`EncoderFamily`, `Encoder`);
  `fastbert.model.encoder`: the registry by ``model_type``; `fastbert.model.packed`: the packed
  forward pass every encoder shares; `fastbert.model.attention`, `fastbert.model.activations`:
  attention and activation functions they share;
- `fastbert.model.heads`: sequence, token and masked-LM task models named as in ``transformers``;
  `fastbert.model.task_layers`: the task layers several families share;
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
