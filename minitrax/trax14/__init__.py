"""Trax 1.4's API: `import minitrax.trax14 as trax` runs Trax 1.4 code.

Trax 1.2 and 1.4 gave some names different meanings; `minitrax` keeps 1.2's
(the codelab's) and this package 1.4's. Everything else is shared with
`minitrax` itself (the same objects, not copies):

* `layers`: 1.4's losses and metrics (`CrossEntropyLoss`, `Accuracy`,
  `L2Loss`, ... take logits and a weights input), `SRU`, `LSHSelfAttention`,
  `PositionalEncoding` ((max_len, d) table), `CausalAttention` (biases),
  `FixedBasePositionalEncoding`; see `minitrax/trax14/layers.py`.
* `models`: 1.4's `TransformerLM`, `Transformer`, `TransformerEncoder`,
  `TransformerDecoder`, `RNNLM`, `GRULM`, `NeuralGPU` (logits out) and
  `MLP(layer_widths=...)`; see `minitrax.models.trax14`.
* `supervised`: as `minitrax.supervised`, plus `lr_schedules` (1.4's home of
  `lr`); its `training.Loop` is 1.4's training API.
* `data`, `fastmath`, `lr`, `optimizers`, `shapes`: as in `minitrax`.

A Trax 1.4 checkpoint (`model.pkl.gz`) loads into these models with
`model.init_from_file(path)`.
"""

from minitrax import data, errors, fastmath, lr, math, optimizers, shapes
from minitrax.trax14 import layers, models, supervised

__all__ = [
    'data', 'errors', 'fastmath', 'layers', 'lr', 'math', 'models', 'optimizers', 'shapes',
    'supervised'
]
