"""Positions: the trained positional-encoding table and the predict-mode position checks.

`PositionalEncoding` adds a table of position vectors to its input. As in
Trax, the table is a *trained weight*, initialised to sine/cosine signals
(Vaswani et al., 2017); its shape follows the Trax generation, so that a Trax
checkpoint loads one to one:

* Trax 1.2 (the default, `table_rank=3`): weights `(1, max_len, d)`.
* Trax 1.4 (`PositionalEncoding14`, `table_rank=2`): weights `(max_len, d)`,
  or with `d_feature` a pair `(table (max_len, d_feature), ff (d_feature, d))`
  whose product is the table.

`check_positions` is shared with the attention caches (`attention.py`).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_flag, check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.predict_length import PredictLength
from minitrax.layers.base import Layer
from minitrax.layers.core import poison
from minitrax.layers.initializers import GlorotUniformInitializer
from minitrax.layers.masks import keep_mask

# ------------------------------------------------------------------ position checks


def overflow_message(who, start, n, max_len):
  """The error text for `n` new positions at `start` past a cache of `max_len`.

  Args:
    who: The layer named first in the text.
    start: The first new position (an int).
    n: How many new positions.
    max_len: The cache's length.
  """
  return (f'{who}: predict mode ran past max_len={max_len}: {n} new position(s) at position '
          f'{start} need {start + n} cache slots; build the model with a larger max_len, or '
          f're-initialise its state to start a new sequence')


def check_positions(start, n, max_len, who):
  """Checks that positions `[start, start + n)` fit a cache of `max_len`.

  The same pattern as `core.check_ids`: for a concrete `start`, raises
  `ArgumentError` (a `ValueError`) or returns None; for a traced one, returns
  only a traced boolean `bad` (no host callback in the compiled program), and
  the caller poisons its outputs with `core.poison(y, bad)`.

  Args:
    start: The first new position: an int, a concrete scalar or a tracer.
    n: How many new positions (a Python int).
    max_len: The cache's length.
    who: The layer named in the error.
  """
  if not isinstance(start, jax.core.Tracer):
    start = int(start)
    if start + n > max_len:
      raise ArgumentError(overflow_message(who, start, n, max_len))
    return None
  return start + n > max_len


# ------------------------------------------------------------------ sinusoids


def sinusoidal_encoding(positions, d_feature):
  """Sine/cosine position signals: (n,) int -> (n, d_feature) float32.

  Column 2i is `sin(p / 10000^(2i / d))`, column 2i + 1 is
  `cos(p / 10000^(2i / d))` (Vaswani et al., 2017).

  Args:
    positions: (n,) integer positions (a JAX or NumPy array; traced is fine).
    d_feature: Width of the signals (an odd width drops the last cosine).
  """
  freqs = jnp.exp(
      jnp.arange(0, d_feature, 2, dtype=jnp.float32) * jnp.float32(-math.log(10000.0) / d_feature))
  angles = positions.astype(jnp.float32)[:, None] * freqs[None, :]
  pe = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)
  return pe.reshape((positions.shape[0], -1))[:, :d_feature]


def sinusoid_table(max_len, d_feature):
  """The initial table, (max_len, d_feature) float32, computed in float64 as Trax does.

  Row p holds the signals of `sinusoidal_encoding` for position p (a NumPy array).

  Args:
    max_len: Number of rows (positions 0 .. max_len - 1).
    d_feature: Number of columns.
  """
  position = np.arange(max_len, dtype=np.float64)[:, None]
  div_term = np.exp(np.arange(0, d_feature, 2) * -(np.log(10000.0) / d_feature))
  table = np.zeros((max_len, d_feature), np.float32)
  table[:, 0::2] = np.sin(position * div_term)
  table[:, 1::2] = np.cos(position * div_term)[:, :d_feature // 2]
  return table


# ------------------------------------------------------------------ the layer


class PositionalEncoding(PredictLength, Layer):
  """Adds a trained table of position vectors: (batch, n, d) -> (batch, n, d).

  n_in = n_out = 1. Position p gets row p of the table (see the module
  docstring for its shape; initialised to `sinusoid_table`). In training,
  dropout (rate `dropout`) applies to the added rows, one mask entry shared
  along `dropout_broadcast_dims`; with `start_from_zero_prob < 1` the rows
  start, with probability `1 - start_from_zero_prob`, at a random offset below
  `max_offset_to_add` (Trax 1.4). In predict mode the state is an int32
  counter: a call with n positions adds rows `counter .. counter + n - 1` and
  advances it; past `max_len` is an error (see `attention`'s docstring). In
  other modes, n must be <= max_len.

  Args:
    max_len: rows of the table: the longest sequence, the predict capacity.
    dropout: dropout rate on the added rows (training only).
    dropout_broadcast_dims: axes of (1, n, d) sharing one dropout entry.
    mode: 'train', 'eval' or 'predict'.
    use_bfloat16: (Trax 1.4) keep the table in bfloat16.
    start_from_zero_prob: (Trax 1.4) how often training starts at row 0.
    max_offset_to_add: (Trax 1.4) random offsets are drawn from [0, this).
    d_feature: (Trax 1.4) table width; a learned (d_feature, d) matrix maps
      it to the input width. None: the table has the input's width.
    table_rank: 3 for Trax 1.2's (1, max_len, d) table, 2 for Trax 1.4's.
  """

  def __init__(self, max_len=2048, dropout=0.0, dropout_broadcast_dims=(-2,), mode='train', *,
               use_bfloat16=False, start_from_zero_prob=1.0, max_offset_to_add=0, d_feature=None,
               table_rank=3):
    who = 'PositionalEncoding'
    check_int(who, 'max_len', max_len, 1)
    check_rate(who, 'dropout', dropout)
    check_mode(who, 'mode', mode)
    check_flag(who, 'use_bfloat16', use_bfloat16)
    check_int(who, 'max_offset_to_add', max_offset_to_add, 0)
    if not 0.0 <= start_from_zero_prob <= 1.0:
      raise ArgumentError(f'{who}: start_from_zero_prob must be a number in [0, 1], got '
                          f'{start_from_zero_prob!r}')
    if start_from_zero_prob < 1.0 and max_offset_to_add < 1:
      raise ArgumentError(f'{who}: start_from_zero_prob={start_from_zero_prob} < 1 needs '
                          f'max_offset_to_add >= 1, got {max_offset_to_add}')
    if d_feature is not None:
      check_int(who, 'd_feature', d_feature, 1)
    if table_rank not in (2, 3) or (table_rank == 3 and (d_feature or use_bfloat16)):
      raise ArgumentError(f'{who}: table_rank must be 3 (Trax 1.2: no d_feature, float32) or 2 '
                          f'(Trax 1.4), got {table_rank!r}')
    super().__init__(name=who)
    self._max_len, self._mode, self._rank = max_len, mode, table_rank
    self._dropout = float(dropout) if mode == 'train' else 0.0
    self._broadcast_dims = tuple(dropout_broadcast_dims)
    self._bfloat16, self._d_feature = bool(use_bfloat16), d_feature
    self._start_prob, self._max_offset = float(start_from_zero_prob), max_offset_to_add

  def init_weights_and_state(self, input_signature, rng):
    if input_signature.ndim != 3:
      raise ArgumentError(f'PositionalEncoding: input must be (batch, length, d_feature), got '
                          f'shape {input_signature.shape}')
    d = input_signature.shape[-1]
    table = sinusoid_table(self._max_len, self._d_feature or d)
    table = jnp.asarray(table[None] if self._rank == 3 else table,
                        jnp.bfloat16 if self._bfloat16 else jnp.float32)
    weights = table
    if self._d_feature is not None:
      weights = (table, GlorotUniformInitializer()((self._d_feature, d), rng))
    return weights, (jnp.zeros((), jnp.int32) if self._mode == 'predict' else ())

  def rows(self, weights, start, n):
    """Rows `start .. start + n - 1` of the table, as (1, n, d)."""
    table = weights[0] if self._d_feature is not None else weights
    if self._rank == 3:
      table = table[0]
    rows = jax.lax.dynamic_slice_in_dim(table, start, n, axis=0)
    if self._d_feature is not None:
      rows = jnp.dot(rows, weights[1])
    return rows[None]

  def forward_with_state(self, x, weights, state, rng):
    if x.ndim != 3:
      raise ArgumentError(f'PositionalEncoding: input must be (batch, length, d_feature), got '
                          f'shape {x.shape}')
    n = x.shape[1]
    if self._mode == 'predict':
      bad = check_positions(state, n, self._max_len, self.name)
      return poison(x + self.rows(weights, state, n).astype(x.dtype), bad), state + n
    if n > self._max_len:
      raise ArgumentError(f'PositionalEncoding: sequence length {n} exceeds max_len='
                          f'{self._max_len}')
    if (self._dropout > 0.0 or self._start_prob < 1.0) and self._mode == 'train' and rng is None:
      raise ArgumentError(f"PositionalEncoding: mode='train' with dropout={self._dropout} or "
                          f"start_from_zero_prob={self._start_prob} needs an rng, got rng=None")
    offset_rng, drop_rng = jax.random.split(rng) if rng is not None else (None, None)
    pe = self.rows(weights, self._start(offset_rng, n), n).astype(x.dtype)
    if self._dropout > 0.0:
      shape = list(pe.shape)
      for axis in self._broadcast_dims:
        shape[axis] = 1
      keep = keep_mask(drop_rng, 1.0 - self._dropout, tuple(shape))
      pe = jnp.where(keep, pe / (1.0 - self._dropout), 0.0).astype(x.dtype)
    return x + pe, state

  def _start(self, rng, n):
    """Row 0, or in training (start_from_zero_prob < 1) sometimes a random offset."""
    if self._mode != 'train' or self._start_prob >= 1.0:
      return 0
    offset_rng, coin_rng = jax.random.split(rng)
    offset = jax.random.randint(offset_rng, (), 0, self._max_offset)
    offset = jnp.minimum(offset, self._max_len - n)
    from_zero = jax.random.uniform(coin_rng, ()) < self._start_prob
    return jnp.where(from_zero, 0, offset)


class PositionalEncodingView(Layer):
  """Adds the table of another `PositionalEncoding`, shared: (batch, n, d) -> (batch, n, d).

  n_in = n_out = 1. Trax 1.2's `Transformer` uses one positional-encoding
  layer on both sides; in minitrax the decoder side needs its own mode and
  predict-mode counter, so it is this view of the encoder's layer: the
  weights are `(source's weights,)`, `()` inside at the shared use (one table
  in the tree, as in Trax); the state is `(source's state, counter)` with the
  int32 counter in predict mode (else `()`). No dropout, always from row 0
  outside predict mode.

  Args:
    source: the `PositionalEncoding` whose table is added.
    mode: 'train', 'eval' or 'predict'.
  """

  def __init__(self, source, mode='train'):
    if not isinstance(source, PositionalEncoding):
      raise ArgumentError(f'PositionalEncodingView: source must be a PositionalEncoding, got '
                          f'{source!r}')
    check_mode('PositionalEncodingView', 'mode', mode)
    super().__init__(name='PositionalEncoding')
    self._sublayers = (source,)
    self._mode = mode

  def predict_capacity(self):
    """The source's `max_len` in predict mode; else None."""
    return self._sublayers[0].max_len if self._mode == 'predict' else None

  def pack_tree(self, kind, sub_trees, own):
    return tuple(sub_trees) if kind == 'weights' else (sub_trees[0], own)

  def unpack_tree(self, kind, tree):
    if kind == 'weights':
      return super().unpack_tree(kind, tree)
    if not isinstance(tree, (tuple, list)) or len(tree) != 2:
      raise ArgumentError(f'{self.name}: state must be a pair (source state, counter), got '
                          f'{tree!r}')
    return (tree[0],), tree[1]

  def init_weights_and_state(self, input_signature, rng):
    weights, state = self._sublayers[0].make_weights_and_state(input_signature, rng)
    return (weights,), (state, jnp.zeros((), jnp.int32) if self._mode == 'predict' else ())

  def forward_with_state(self, x, weights, state, rng):
    del rng
    source, (source_state, counter) = self._sublayers[0], state
    if x.ndim != 3:
      raise ArgumentError(f'{self.name}: input must be (batch, length, d_feature), got shape '
                          f'{x.shape}')
    n = x.shape[1]
    if self._mode == 'predict':
      bad = check_positions(counter, n, source.max_len, self.name)
      y = poison(x + source.rows(weights[0], counter, n).astype(x.dtype), bad)
      return y, (source_state, counter + n)
    if n > source.max_len:
      raise ArgumentError(f'{self.name}: sequence length {n} exceeds max_len={source.max_len}')
    return x + source.rows(weights[0], 0, n).astype(x.dtype), state


def PositionalEncoding14(  # pylint: disable=invalid-name
    max_len=2048, dropout=0.0, dropout_broadcast_dims=(-2,), use_bfloat16=False,
    start_from_zero_prob=1.0, max_offset_to_add=0, d_feature=None, mode='train'):
  """Trax 1.4's `PositionalEncoding` (its signature): the table is (max_len, d).

  n_in = n_out = 1; (batch, n, d) -> (batch, n, d). See `PositionalEncoding`.

  Args:
    max_len, dropout, dropout_broadcast_dims, use_bfloat16: As for `PositionalEncoding`.
    start_from_zero_prob, max_offset_to_add, d_feature, mode: As for `PositionalEncoding`.
  """
  return PositionalEncoding(max_len, dropout, dropout_broadcast_dims, mode,
                            use_bfloat16=use_bfloat16, start_from_zero_prob=start_from_zero_prob,
                            max_offset_to_add=max_offset_to_add, d_feature=d_feature, table_rank=2)


__all__ = [
    'PositionalEncoding', 'PositionalEncoding14', 'PositionalEncodingView', 'sinusoidal_encoding',
    'sinusoid_table', 'check_positions', 'overflow_message'
]
