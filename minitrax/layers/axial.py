"""Axial positional encoding (Reformer): learned position vectors from a few small tables.

A sequence of up to `prod(shape)` positions is laid out row-major on a grid
of `shape` (e.g. 65,536 = 128 x 512); position p has grid coordinates
`(i_1, ..., i_k) = unravel_index(p, shape)` and its vector is the
concatenation of one learned vector per axis, `W_1[i_1] ++ ... ++ W_k[i_k]`.
The tables hold `sum(shape_j * d_j)` numbers instead of `prod(shape) *
d_model` (Kitaev et al., 2020; Trax's `AxialPositionalEncoding`).
"""

import math

import jax
import jax.numpy as jnp

from minitrax.checks import check_int_tuple, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.attention import check_positions
from minitrax.layers.base import Layer
from minitrax.layers.core import poison
from minitrax.layers.initializers import RandomNormalInitializer
from minitrax.layers.masks import keep_mask


class AxialPositionalEncoding(Layer):
  """Adds axial position vectors: (batch, n, d_model) -> (batch, n, d_model).

  n_in = n_out = 1; `d_model` must equal `sum(d_embs)` and `n <=
  prod(shape)` (Trax needs `n == prod(shape)` outside predict mode). Weights:
  one table per axis, as in Trax: `W_j` of shape (1, 1, .., shape[j], .., 1,
  d_embs[j]) (rank `len(shape) + 2`, the axis j + 1 holding `shape[j]`). In
  training, dropout (rate `dropout`) applies to the position vectors laid out
  as a (batch, *shape, d_model) grid, one mask entry shared along
  `dropout_broadcast_dims` (axes of that grid; 0 shares one mask over the
  batch). In predict mode the state is an int32 counter (as
  `PositionalEncoding`): a call with n positions uses positions `counter ..
  counter + n - 1`; past `prod(shape)` is an error.

  Args:
    shape: the grid, e.g. (64, 64, 3) (Trax's default).
    d_embs: the width of each axis's vectors, e.g. (384, 384, 256).
    kernel_initializer: `init(shape, rng)` for the tables; N(0, 1).
    dropout: dropout rate (training only).
    dropout_broadcast_dims: axes of the (batch, *shape, d_model) grid along
      which one dropout entry is shared.
    mode: 'train', 'eval' or 'predict'.
  """

  def __init__(self, shape=(64, 64, 3), d_embs=(384, 384, 256),
               kernel_initializer=RandomNormalInitializer(1.0), dropout=0.0,
               dropout_broadcast_dims=(), mode='train'):
    shape = check_int_tuple('AxialPositionalEncoding', 'shape', shape)
    d_embs = check_int_tuple('AxialPositionalEncoding', 'd_embs', d_embs)
    if len(shape) != len(d_embs):
      raise ArgumentError(f'AxialPositionalEncoding: shape {shape} and d_embs {d_embs} must '
                          f'have the same length')
    check_rate('AxialPositionalEncoding', 'dropout', dropout)
    check_mode('AxialPositionalEncoding', 'mode', mode)
    for axis in dropout_broadcast_dims:
      if not -len(shape) - 2 <= axis <= len(shape) + 1:
        raise ArgumentError(f'AxialPositionalEncoding: dropout_broadcast_dims '
                            f'{tuple(dropout_broadcast_dims)} must be axes of the (batch, '
                            f'*shape, d_model) grid')
    super().__init__(name='AxialPositionalEncoding')
    self._shape, self._d_embs = shape, d_embs
    self._kernel_initializer = kernel_initializer
    self._dropout = float(dropout) if mode == 'train' else 0.0
    self._broadcast_dims = tuple(dropout_broadcast_dims)
    self._mode = mode

  @property
  def max_len(self):
    """The most positions: prod(shape)."""
    return math.prod(self._shape)

  @property
  def mode(self):
    return self._mode

  def predict_capacity(self):
    """`max_len` (prod(shape)) in predict mode; else None."""
    return self.max_len if self._mode == 'predict' else None

  def init_weights_and_state(self, input_signature, rng):
    if input_signature.ndim != 3 or input_signature.shape[-1] != sum(self._d_embs):
      raise ArgumentError(f'AxialPositionalEncoding: input must be (batch, length, '
                          f'{sum(self._d_embs)}) (d_model = sum of d_embs {self._d_embs}), got '
                          f'shape {input_signature.shape}')
    rngs = jax.random.split(rng, len(self._shape))
    weights = tuple(self._kernel_initializer(self._table_shape(j), r) for j, r in enumerate(rngs))
    return weights, (jnp.zeros((), jnp.int32) if self._mode == 'predict' else ())

  def forward_with_state(self, x, weights, state, rng):
    if x.ndim != 3 or x.shape[-1] != sum(self._d_embs):
      raise ArgumentError(f'AxialPositionalEncoding: input must be (batch, length, '
                          f'{sum(self._d_embs)}), got shape {x.shape}')
    n = x.shape[1]
    if self._mode == 'predict':
      bad = check_positions(state, n, self.max_len, self.name)
      emb = self._vectors(weights, state + jnp.arange(n, dtype=jnp.int32))
      emb = jnp.broadcast_to(emb[None], x.shape).astype(x.dtype)
      return poison(x + emb, bad), state + n
    if n > self.max_len:
      raise ArgumentError(f'AxialPositionalEncoding: sequence length {n} exceeds prod(shape) = '
                          f'{self.max_len} for shape {self._shape}')
    emb = jnp.broadcast_to(self._vectors(weights, jnp.arange(n, dtype=jnp.int32))[None], x.shape)
    if self._dropout > 0.0:
      emb = self._drop(emb, rng)
    return x + emb.astype(x.dtype), state

  def _table_shape(self, j):
    """Trax's shape of table j: (1, 1, .., shape[j], .., 1, d_embs[j])."""
    grid = [1] * len(self._shape)
    grid[j] = self._shape[j]
    return (1,) + tuple(grid) + (self._d_embs[j],)

  def _vectors(self, weights, positions):
    """(n,) positions -> (n, d_model): the concatenated per-axis vectors."""
    coords = jnp.unravel_index(positions, self._shape)
    tables = [w.reshape((s, d)) for w, s, d in zip(weights, self._shape, self._d_embs)]
    return jnp.concatenate([t[c] for t, c in zip(tables, coords)], axis=-1)

  def _drop(self, emb, rng):
    if rng is None:
      raise ArgumentError(f"AxialPositionalEncoding: mode='train' with dropout={self._dropout} "
                          f"needs an rng, got rng=None")
    b, n, d = emb.shape
    grid = [b] + list(self._shape) + [d]
    mask_shape = list(grid)
    for axis in self._broadcast_dims:
      mask_shape[axis] = 1
    keep = keep_mask(rng, 1.0 - self._dropout, tuple(mask_shape))
    keep = jnp.broadcast_to(keep, grid).reshape((b, -1, d))[:, :n]
    return jnp.where(keep, emb / (1.0 - self._dropout), 0.0)


__all__ = ['AxialPositionalEncoding']
