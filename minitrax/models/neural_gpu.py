"""The improved Neural GPU (Freivalds and Liepins, 2017; Trax's `trax/models/neural_gpu.py`).

The input `(batch, height, width)` of token ids (Trax: height 1, width the
sequence) is embedded to `d_feature` channels and updated `steps` times by
one shared convolutional GRU cell, `ConvDiagonalGRU`: a `GeneralGRUCell`
with 3x3 'SAME' convolutions, hard-sigmoid gates, a hard-tanh candidate and
`DiagonalGate` on the memory, which shifts the first third of the channels
one position to the right along the width, keeps the middle third, and
shifts the last third one position to the left (zeros come in). The cell's
candidate dropout (0.1) runs in every mode, as in Trax (its `Dropout` is
built in 'train' mode), so calls need an rng.

`NeuralGPU` ends with `Dense(vocab_size)` and, in Trax 1.2, `LogSoftmax`
(the default here); Trax 1.4 dropped it (`NeuralGPU14`).
"""

# Model and layer functions are CamelCase, as in Trax.
# pylint: disable=invalid-name

import jax.numpy as jnp

from minitrax.checks import check_int, check_mode
from minitrax.errors import ArgumentError
from minitrax.layers.activation_fns import HardSigmoid, HardTanh
from minitrax.layers.base import Fn
from minitrax.layers.combinators import Serial
from minitrax.layers.convolution import Conv
from minitrax.layers.core import Dense, Embedding, LogSoftmax
from minitrax.layers.rnn import GeneralGRUCell
from minitrax.models.registry import register


def SaturationCost(x, limit=0.9):
  """`min(0, |x| - limit)`, elementwise."""
  return jnp.minimum(0, jnp.abs(x) - limit)


def DiagonalGate():
  """(batch, 1, length, 3 d) -> same: thirds of the channels shifted +1, 0, -1 along axis 2."""

  def f(x):
    if x.ndim != 4 or x.shape[-1] % 3:
      raise ArgumentError(f'DiagonalGate: input must be (batch, height, width, depth) with depth a '
                          f'multiple of 3, got shape {x.shape}')
    x = jnp.pad(x, [(0, 0), (0, 0), (1, 1), (0, 0)])
    d = x.shape[-1] // 3
    return jnp.concatenate([x[:, :, :-2, :d], x[:, :, 1:-1, d:2 * d], x[:, :, 2:, 2 * d:]], axis=3)

  return Fn('DiagonalGate', f)


def ConvDiagonalGRU(units, kernel_size=(3, 3)):
  """The Neural GPU's cell: (batch, h, w, units) -> same; n_in = n_out = 1 (module docstring)."""
  check_int('ConvDiagonalGRU', 'units', units)
  return GeneralGRUCell(candidate_transform=lambda: Conv(units, kernel_size, padding='SAME'),
                        memory_transform_fn=DiagonalGate, gate_nonlinearity=HardSigmoid,
                        candidate_nonlinearity=HardTanh)


def _neural_gpu(d_feature, steps, vocab_size, mode, log_softmax):
  check_int('NeuralGPU', 'd_feature', d_feature)
  check_int('NeuralGPU', 'steps', steps)
  check_int('NeuralGPU', 'vocab_size', vocab_size)
  check_mode('NeuralGPU', 'mode', mode)
  core = ConvDiagonalGRU(units=d_feature)  # one cell, its weights shared by all steps
  return Serial(Embedding(vocab_size=vocab_size, d_feature=d_feature), [core] * steps,
                Dense(vocab_size), [LogSoftmax()] if log_softmax else [], name='NeuralGPU')


@register
def NeuralGPU(d_feature=96, steps=16, vocab_size=2, mode='train'):
  """Neural GPU, Trax 1.2: (batch, h, w) ids -> (batch, h, w, vocab_size) log-probabilities.

  Weights: the embedding, one `ConvDiagonalGRU` (three (kernel, bias) pairs)
  used `steps` times, the output `Dense`.

  Args:
    d_feature: channels of the embedded grid and of the GRU state.
    steps: number of applications of the shared convolutional GRU.
    vocab_size: number of token ids, in and out.
    mode: checked, then ignored, as in Trax (dropout runs in every mode).
  """
  return _neural_gpu(d_feature, steps, vocab_size, mode, log_softmax=True)


def NeuralGPU14(d_feature=96, steps=16, vocab_size=2, mode='train'):
  """Neural GPU, Trax 1.4: as `NeuralGPU` without the final `LogSoftmax` (logits out).

  Not registered: `get_model('NeuralGPU')` keeps Trax 1.2's meaning.

  Args:
    d_feature: channels of the embedded grid and of the GRU state.
    steps: number of applications of the shared convolutional GRU.
    vocab_size: number of token ids, in and out.
    mode: checked, then ignored, as in Trax (dropout runs in every mode).
  """
  return _neural_gpu(d_feature, steps, vocab_size, mode, log_softmax=False)


__all__ = ['NeuralGPU', 'NeuralGPU14', 'ConvDiagonalGRU', 'DiagonalGate', 'SaturationCost']
