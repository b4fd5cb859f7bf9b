"""`trax.models` of Trax 1.4: `minitrax.models` with 1.4's models where they changed.

1.4's `TransformerLM`, `Transformer`, `TransformerEncoder`,
`TransformerDecoder`, `RNNLM`, `GRULM` and `NeuralGPU` end in logits (and
hold 1.4's weights: attention biases, a (max_len, d) position table); `MLP`
is 1.4's building block. The module-style paths Trax code uses
(`models.transformer.TransformerLM`, `models.rnn.RNNLM`, ...) give the same
functions.

>>> import minitrax.trax14 as trax
>>> trax.models.transformer.TransformerLM is trax.models.TransformerLM
True
"""

import types

from minitrax.models import *
from minitrax.models import __all__ as _ALL_12
from minitrax.models import atari_cnn, reformer, resnet
from minitrax.models import trax14 as _trax14
from minitrax.models.neural_gpu import NeuralGPU14 as NeuralGPU
from minitrax.models.trax14 import GRULM, MLP, RNNLM, Transformer, TransformerDecoder
from minitrax.models.trax14 import TransformerEncoder, TransformerLM

CHANGED = sorted(set(_trax14.__all__) | {'NeuralGPU'})


def _module(name, **members):
  """A module object `minitrax.trax14.models.<name>` holding `members`."""
  module = types.ModuleType(f'{__name__}.{name}', f'Trax 1.4 models of `{name}`.')
  module.__dict__.update(members)
  return module


transformer = _module('transformer', TransformerLM=TransformerLM, Transformer=Transformer,
                      TransformerEncoder=TransformerEncoder, TransformerDecoder=TransformerDecoder)
rnn = _module('rnn', RNNLM=RNNLM, GRULM=GRULM)
mlp = _module('mlp', MLP=MLP)
neural_gpu = _module('neural_gpu', NeuralGPU=NeuralGPU)

__all__ = sorted(
    set(_ALL_12) | set(CHANGED) |
    {'CHANGED', 'transformer', 'rnn', 'mlp', 'neural_gpu', 'atari_cnn', 'reformer', 'resnet'})
