"""Training: the loop and BERT's recipe, over `fastbert.features.Features`.

- `fastbert.training.loop`: `train` and its `History`;
- `fastbert.training.batching`: the (optionally length-bucketed) batch plan of an epoch;
- `fastbert.training.loss`, `fastbert.training.optim`, `fastbert.training.masking`: the task
  losses and class weights, AdamW and its schedule, MLM masking;
- `fastbert.training.distributed`: DDP set-up;
- `fastbert.training.seeds`: seeding, and one run per seed with the spread of the metrics;
- `fastbert.training.sampling`: over- and under-sampling of the training rows;
- `fastbert.training.heap`: keeping large CPU allocations on the heap while training.
"""

from fastbert.training.loop import History, train
from fastbert.training.seeds import run_seeds, seed_everything

__all__ = ["History", "run_seeds", "seed_everything", "train"]
