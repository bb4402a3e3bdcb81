"""Examples → model inputs, and model outputs → one prediction per text: the long-text policies.

- `fastbert.features.arrays`: `Features` and `WindowFeatures`, the arrays a data set becomes;
- `fastbert.features.featurize`: `featurize`, tokenizing every example once;
- `fastbert.features.long_text`: ``head_tail`` and the ``chunk_*`` windows;
- `fastbert.features.batches`: batches as tensors, and `predict_logits` over them;
- `fastbert.features.inference`: `predict_documents`, merging windows back into texts;
- `fastbert.features.window_pool`: ``chunk_mean_pool``, classifying a text's mean window vector.
"""

from fastbert.features.arrays import Features, WindowFeatures
from fastbert.features.featurize import featurize
from fastbert.features.inference import DocumentOutputs, predict_documents

__all__ = ["DocumentOutputs", "Features", "WindowFeatures", "featurize", "predict_documents"]
