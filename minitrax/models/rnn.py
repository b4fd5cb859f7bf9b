"""Recurrent language models: RNNLM (stacked LSTM cells) and GRULM.

Both map token ids `(batch, time)` to next-token log-probabilities
`(batch, time, vocab_size)`; position `t` sees tokens `0 .. t - 1` only,
because the input is first shifted right by one (a 0 enters at position 0).

Predict mode (fast decoding). Build the model with `mode='predict'` and
initialise it with `ShapeDtype((batch, 1), np.int32)`: each call then takes
one token per sequence, `(batch, 1) -> (batch, 1, vocab_size)`. The shift is
the identity, and each recurrent layer starts from the carry left in its
state by the previous call (zeros after `init`) and stores its final carry
back. Feeding `0, x_0, ..., x_{T-2}` one call at a time gives the same
log-probabilities as one eval-mode call on `x_0 .. x_{T-1}`. To start new
sequences, set `model.state` back to the state `init` returned.

The weights trees are identical in 'train', 'eval' and 'predict' mode for the
same hyperparameters (only the state differs), so trained weights load into
the predict-mode model.
"""

# Model and layer functions are CamelCase, as in Trax.
# pylint: disable=invalid-name

import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_int, check_mode
from minitrax.errors import ArgumentError, ArgumentTypeError, LayerError
from minitrax.layers.attention import ShiftRight
from minitrax.layers.base import EMPTY, Layer, split_rng
from minitrax.layers.combinators import Scan, Serial
from minitrax.layers.core import Dense, Dropout, Embedding, LogSoftmax
from minitrax.layers.rnn import GRUCell, LSTMCell
from minitrax.models.registry import register
from minitrax.shapes import ShapeDtype


class MultiRNNCell(Layer):
  """Cells stacked for one time step, their states concatenated.

  n_in = n_out = 2: `(x, state) -> (y, new_state)` with `x: (batch, d_in)`,
  `state, new_state: (batch, sum of the cells' state sizes)` split into equal
  parts, one per cell, and `y` the last cell's output. Cell `i + 1` takes
  cell `i`'s output as its input.

  Args:
    cells: one or more cell layers, each `(x, state) -> (y, new_state)`.
  """

  def __init__(self, cells):
    cells = list(cells)
    if not cells or not all(isinstance(c, Layer) and (c.n_in, c.n_out) == (2, 2) for c in cells):
      raise ArgumentError(f'MultiRNNCell: cells must be one or more layers with n_in = n_out '
                          f'= 2, got {cells!r}')
    super().__init__(n_in=2, n_out=2, name='MultiRNNCell')
    self._sublayers = tuple(cells)

  def _split(self, size):
    n = len(self._sublayers)
    if size % n:
      raise ArgumentError(f'MultiRNNCell: state size {size} does not split into {n} equal '
                          f'parts, one per cell')
    return size // n

  def init_weights_and_state(self, input_signature, rng):
    x_sig, state_sig = input_signature
    part = state_sig.replace(shape=state_sig.shape[:-1] + (self._split(state_sig.shape[-1]),))
    weights, states = [], []
    for cell, r in zip(self._sublayers, split_rng(rng, len(self._sublayers))):
      w, s = cell.make_weights_and_state((x_sig, part), r)
      x_sig, _ = cell.output_signature_with((x_sig, part), w, s, r)
      weights.append(w)
      states.append(s)
    return tuple(weights), tuple(states)

  def forward_with_state(self, x, weights, state, rng):
    x, carry = x
    self._split(carry.shape[-1])
    parts = jnp.split(carry, len(self._sublayers), axis=-1)
    new_parts, new_states = [], []
    rngs = split_rng(rng, len(self._sublayers))
    for cell, w, s, part, r in zip(self._sublayers, weights, state, parts, rngs):
      (x, part), s = cell.pure_fn((x, part), w, s, r)
      new_parts.append(part)
      new_states.append(s)
    return (x, jnp.concatenate(new_parts, axis=-1)), tuple(new_states)


class Recurrent(Layer):
  """Runs a cell along the time axis; in predict mode the carry persists in the state.

  n_in = n_out = 1: `(batch, time, d_in) -> (batch, time, d_out)`. The cell
  maps `(x_t, carry) -> (y_t, new_carry)` with a float32 carry of shape
  `(batch, state_size)`. In 'train' and 'eval' each call starts from a zero
  carry; in 'predict' it starts from the carry stored in the state (zeros
  after `init`, whose signature fixes the batch size) and stores the final
  carry back, so a sequence can be fed one step per call.

  Weights: `((cell_weights,),)` in every mode (this layer wraps
  `Scan(cell, axis=1)`).
  State: `(scan_state, carry)` with `carry = ()` outside predict mode.

  Args:
    cell: a layer with n_in = n_out = 2, e.g. `LSTMCell(n)`.
    state_size: last axis of the carry, e.g. `2 * n` for `LSTMCell(n)`.
    mode: 'train', 'eval' or 'predict'.
    name: layer name; default 'Recurrent'.
  """

  def __init__(self, cell, state_size, mode='train', name=None):
    check_int('Recurrent', 'state_size', state_size)
    check_mode('Recurrent', 'mode', mode)
    super().__init__(name=name or 'Recurrent')
    self._sublayers = (Scan(cell, axis=1),)
    self._state_size = state_size
    self._mode = mode

  def pack_tree(self, kind, sub_trees, own):
    return tuple(sub_trees) if kind == 'weights' else (sub_trees[0], own)

  def unpack_tree(self, kind, tree):
    if kind == 'weights':
      return super().unpack_tree(kind, tree)
    if not isinstance(tree, (tuple, list)) or len(tree) != 2:
      raise LayerError(
          self.name, f'setting {kind}', self._created_at, None,
          ValueError(f'state of {self.name} must be a pair (scan_state, carry), got {tree!r}'))
    return (tree[0],), tree[1]

  def _carry_signature(self, x_sig):
    if x_sig.ndim != 3:
      raise ArgumentError(f'{self.name}: expected input (batch, time, features), got shape '
                          f'{x_sig.shape}')
    return ShapeDtype((x_sig.shape[0], self._state_size), np.float32)

  def init_weights_and_state(self, input_signature, rng):
    carry_sig = self._carry_signature(input_signature)
    w, s = self._sublayers[0].make_weights_and_state((input_signature, carry_sig), rng)
    carry = jnp.zeros(carry_sig.shape, carry_sig.dtype) if self._mode == 'predict' else EMPTY
    return (w,), (s, carry)

  def forward_with_state(self, x, weights, state, rng):
    scan_state, carry = state
    carry_sig = self._carry_signature(x)
    if self._mode != 'predict':
      carry = jnp.zeros(carry_sig.shape, carry_sig.dtype)
    elif carry.shape != carry_sig.shape:
      raise ArgumentError(f'{self.name}: predict mode was initialised for batch '
                          f'{carry.shape[0]}, got input of shape {tuple(x.shape)}; init the '
                          f'model with the batch size used for decoding')
    scan = self._sublayers[0]
    (y, carry), scan_state = scan.pure_fn((x, carry), weights[0], scan_state, rng)
    return y, (scan_state, carry if self._mode == 'predict' else EMPTY)


@register
def RNNLM(vocab_size, d_model=512, n_layers=2, rnn_cell=LSTMCell, rnn_cell_d_state_multiplier=2,
          dropout=0.1, mode='train'):
  """A recurrent language model: `n_layers` cells scanned over time together.

  n_in = n_out = 1; token ids `(batch, time) -> (batch, time, vocab_size)`
  log-probabilities::

      Serial(ShiftRight, Embedding(vocab_size, d_model), Dropout,
             Recurrent(MultiRNNCell([rnn_cell(d_model)] * n_layers)),
             Dense(vocab_size), LogSoftmax)

  Weights, in Trax's order: the embedding, each cell's, the Dense's (Trax
  1.2's model; Trax 1.4's, `minitrax.models.trax14.RNNLM`, ends in logits).
  See the module docstring for predict mode.

  Args:
    vocab_size: number of token ids.
    d_model: embedding size and `n_units` of every cell.
    n_layers: number of stacked cells.
    rnn_cell: `rnn_cell(n_units=d_model)` makes a cell, e.g. `LSTMCell` or
      `GRUCell`.
    rnn_cell_d_state_multiplier: a cell's state size over `d_model`: 2 for
      `LSTMCell` (c and h), 1 for `GRUCell`.
    dropout: drop rate after the embedding (in 'train' only).
    mode: 'train', 'eval' or 'predict'.
  """
  return StackedRNNLM('RNNLM', vocab_size, d_model, n_layers, rnn_cell, rnn_cell_d_state_multiplier,
                      dropout, mode, [LogSoftmax()])


def StackedRNNLM(who, vocab_size, d_model, n_layers, rnn_cell, rnn_cell_d_state_multiplier, dropout,
                 mode, head):
  """`RNNLM`'s layers with `head` (e.g. `[LogSoftmax()]`, or `[]` for logits) after the Dense."""
  check_int(who, 'vocab_size', vocab_size)
  check_int(who, 'd_model', d_model)
  check_int(who, 'n_layers', n_layers)
  check_int(who, 'rnn_cell_d_state_multiplier', rnn_cell_d_state_multiplier)
  check_mode(who, 'mode', mode)
  if not callable(rnn_cell):
    raise ArgumentTypeError(f'{who}: rnn_cell must be a function returning a cell (e.g. LSTMCell), '
                            f'got {rnn_cell!r}')
  cells = MultiRNNCell([rnn_cell(n_units=d_model) for _ in range(n_layers)])
  state_size = n_layers * rnn_cell_d_state_multiplier * d_model
  return Serial(ShiftRight(mode=mode), Embedding(vocab_size, d_model),
                Dropout(rate=dropout, mode=mode), Recurrent(cells, state_size, mode=mode),
                Dense(vocab_size), head, name='RNNLM')


@register
def GRULM(vocab_size=256, d_model=512, n_layers=1, mode='train'):
  """A GRU language model: `n_layers` GRU layers, one after another.

  n_in = n_out = 1; token ids `(batch, time) -> (batch, time, vocab_size)`
  log-probabilities::

      Serial(ShiftRight, Embedding(vocab_size, d_model),
             [Recurrent(GRUCell(d_model))] * n_layers, Dense(vocab_size), LogSoftmax)

  Each recurrent layer is named `GRU_{d_model}`. See the module docstring for
  predict mode. (Trax 1.4's form, `minitrax.models.trax14.GRULM`, ends in
  logits.)

  Args:
    vocab_size: number of token ids.
    d_model: embedding size and GRU width.
    n_layers: number of GRU layers.
    mode: 'train', 'eval' or 'predict'.
  """
  return StackedGRULM('GRULM', vocab_size, d_model, n_layers, mode, [LogSoftmax()])


def StackedGRULM(who, vocab_size, d_model, n_layers, mode, head):
  """`GRULM`'s layers with `head` after the Dense."""
  check_int(who, 'vocab_size', vocab_size)
  check_int(who, 'd_model', d_model)
  check_int(who, 'n_layers', n_layers)
  check_mode(who, 'mode', mode)
  return Serial(ShiftRight(mode=mode), Embedding(vocab_size, d_model), [
      Recurrent(GRUCell(d_model), d_model, mode=mode, name=f'GRU_{d_model}')
      for _ in range(n_layers)
  ], Dense(vocab_size), head, name='GRULM')


__all__ = ['RNNLM', 'GRULM', 'Recurrent', 'MultiRNNCell', 'StackedRNNLM', 'StackedGRULM']
