"""Experimental position encodings of Trax's `trax/layers/research/position_encodings.py`.

All map `(batch, n, d) -> (batch, n, d)` (n_in = n_out = 1).

* `FixedBasePositionalEncoding`: positions written in fixed bases. Trax 1.2
  (`base=16, n_digits=2`): a learned table per digit, `d / n_digits` wide,
  the digits' vectors concatenated; in training all positions are shifted by
  one random offset per call. Trax 1.4 (`bases=[11, 13, 14, 15],
  n_digits=8`): for each base, digit i (a number) times a learned vector,
  concatenated over digits and summed over bases, plus a learned vector at
  the first position; training shifts each example by a random offset (half
  of them, with `start_from_zero_one_in=2`) and drops a base's encoding for
  one example in `base_dropout_one_in`. `FixedBasePositionalEncoding(...)`
  builds the 1.2 form unless given `bases` (or a list first), or 1.4-only
  arguments.
* `SinCosPositionalEncoding` (1.4): `[sin(p w), cos(p w)]` (halves, not
  interleaved), training starts at a random offset below `add_offset`.
* `InfinitePositionalEncoding` (1.4): `cos(2 pi cycles)` with geometric
  frequencies and a fixed pseudo-random walk, a random phase per call
  (`affine`), then a learned transform.
* `TimeBinPositionalEncoding` (1.4): replaces the last 3 features with
  `(1 / (1 + bin), offset in bin / bin_length, bin parity)`.
"""

import jax
import jax.numpy as jnp

from minitrax.checks import check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.base import Layer
from minitrax.layers.initializers import (RandomNormalInitializer, RandomUniformInitializer)
from minitrax.layers.masks import keep_mask


def _need_rng(who, rng):
  if rng is None:
    raise ArgumentError(f"{who}: this mode draws random numbers and needs an rng, got rng=None")


def _digits(positions, base, n_digits):
  """[positions mod base, (positions // base) mod base, ...]: n_digits int arrays."""
  out = []
  for _ in range(n_digits):
    out.append(jnp.mod(positions, base))
    positions = positions // base
  return out


class FixedBasePositionalEncoding12(Layer):
  """Trax 1.2's fixed-base encoding: learned per-digit tables (see the module docstring).

  Weights: `n_digits` tables (base, d / n_digits). Training adds one random
  offset in `[0, base**n_digits - n)` to all positions (needs an rng).

  Args:
    base: The base the positions are written in, an int >= 2.
    n_digits: Digits per position; must divide d, and `base**n_digits` must
      exceed the sequence length.
    mode: 'train' (random offset), 'eval' or 'predict' (positions from 0).
    initializer: `init(shape, rng)` for each digit's table.
  """

  def __init__(self, base=16, n_digits=2, mode='train', initializer=RandomNormalInitializer(1e-6)):
    self._base = check_int('FixedBasePositionalEncoding', 'base', base, 2)
    self._n_digits = check_int('FixedBasePositionalEncoding', 'n_digits', n_digits)
    check_mode('FixedBasePositionalEncoding', 'mode', mode)
    super().__init__(name='FixedBasePositionalEncoding')
    self._mode, self._initializer = mode, initializer

  def init_weights_and_state(self, input_signature, rng):
    d = input_signature.shape[-1]
    if d % self._n_digits:
      raise ArgumentError(f'{self.name}: d_feature={d} must be a multiple of n_digits='
                          f'{self._n_digits}')
    rngs = jax.random.split(rng, self._n_digits)
    return tuple(self._initializer((self._base, d // self._n_digits), r) for r in rngs), ()

  def forward_with_state(self, x, weights, state, rng):
    n, max_pos = x.shape[1], self._base**self._n_digits
    if n >= max_pos:
      raise ArgumentError(f'{self.name}: length {n} must be below base**n_digits = {max_pos}')
    positions = jnp.arange(n)
    if self._mode == 'train':
      _need_rng(self.name, rng)
      positions = positions + jax.random.randint(rng, (), 0, max_pos - n)
    digits = _digits(positions, self._base, self._n_digits)
    emb = jnp.concatenate([w[i] for w, i in zip(weights, digits)], axis=-1)
    return x + jnp.broadcast_to(emb[None].astype(x.dtype), x.shape), state


class FixedBasePositionalEncoding14(Layer):
  """Trax 1.4's fixed-base encoding (see the module docstring).

  Weights: `(base_weights, start_vec)`: for each base a tuple of `n_digits`
  vectors (1, d / n_digits), and start_vec (1, 1, d). Predict mode: state is
  the position counter.

  Args:
    bases: A non-empty list of ints >= 2; the encodings of all bases are summed.
    n_digits: Digits per position; must divide d, and `min(bases)**n_digits`
      must exceed the sequence length.
    start_from_zero_one_in: In training, an example starts at position 0 with
      probability 1 / this, else at a random offset.
    base_dropout_one_in: In training, each base's encoding is dropped for an
      example with probability 1 / this.
    mode: 'train' (needs an rng), 'eval' or 'predict'.
    initializer: `init(shape, rng)` for the digit vectors and start_vec.
  """

  def __init__(
      self,
      bases=[11, 13, 14, 15],
      n_digits=8,
      start_from_zero_one_in=2,  # pylint: disable=dangerous-default-value
      base_dropout_one_in=100,
      mode='train',
      initializer=RandomUniformInitializer(1e-4)):
    who = 'FixedBasePositionalEncoding'
    if not isinstance(bases, (list, tuple)) or not bases:
      raise ArgumentError(f'{who}: bases must be a non-empty list of ints >= 2, got {bases!r}')
    self._bases = tuple(check_int(who, 'every base', b, 2) for b in bases)
    self._n_digits = check_int(who, 'n_digits', n_digits)
    self._start_one_in = check_int(who, 'start_from_zero_one_in', start_from_zero_one_in)
    self._dropout_one_in = check_int(who, 'base_dropout_one_in', base_dropout_one_in)
    check_mode(who, 'mode', mode)
    super().__init__(name=who)
    self._mode, self._initializer = mode, initializer

  def init_weights_and_state(self, input_signature, rng):
    d = input_signature.shape[-1]
    if d % self._n_digits:
      raise ArgumentError(f'{self.name}: d_feature={d} must be a multiple of n_digits='
                          f'{self._n_digits}')
    r_bases, r_start = jax.random.split(rng)
    digit_rngs = jax.random.split(r_bases, self._n_digits)  # Trax reuses them for every base
    base_weights = tuple(
        tuple(self._initializer((1, d // self._n_digits), r)
              for r in digit_rngs)
        for _ in self._bases)
    start_vec = self._initializer((1, 1, d), r_start)
    state = jnp.zeros((), jnp.int32) if self._mode == 'predict' else ()
    return (base_weights, start_vec), state

  def forward_with_state(self, x, weights, state, rng):
    base_weights, start_vec = weights
    b, n = x.shape[0], x.shape[1]
    max_pos = min(self._bases)**self._n_digits
    if n >= max_pos:
      raise ArgumentError(f'{self.name}: length {n} must be below min(bases)**n_digits = '
                          f'{max_pos}')
    positions = jnp.broadcast_to(jnp.arange(n)[None, :], (b, n))
    if self._mode == 'train':
      _need_rng(self.name, rng)
      r1, r2, r3 = jax.random.split(rng, 3)
      nonzero = jnp.minimum(1, jax.random.randint(r1, (b,), 0, self._start_one_in))
      start = jax.random.randint(r2, (b,), 0, max_pos - n) * nonzero
      positions = positions + jnp.broadcast_to(start[:, None], (b, n))
      keep_base = jnp.minimum(1, jax.random.randint(r3, (b,), 0, self._dropout_one_in))
    if self._mode == 'predict':
      positions = positions + state
    res = 0.0
    for base, vectors in zip(self._bases, base_weights):
      digits = _digits(positions, base, self._n_digits)
      emb = jnp.concatenate([
          d.astype(jnp.float32)[:, :, None] * jnp.broadcast_to(s[None], (b, n, s.shape[-1]))
          for d, s in zip(digits, vectors)
      ], axis=-1)
      if self._mode == 'train':
        emb = emb * jnp.broadcast_to(keep_base.astype(jnp.float32)[:, None, None], emb.shape)
      res = res + emb
    first = res[:, :1] + jnp.broadcast_to(start_vec, (b, 1, start_vec.shape[-1]))
    if self._mode == 'predict':
      first = jnp.where(state == 0, first, res[:, :1])
      state = state + n
    res = jnp.concatenate([first, res[:, 1:]], axis=1)
    return x + res.astype(x.dtype), state


_ONLY_14 = ('bases', 'start_from_zero_one_in', 'base_dropout_one_in')


def FixedBasePositionalEncoding(*args, **kwargs):  # pylint: disable=invalid-name
  """Trax 1.2's form (`base`, `n_digits`, `mode`, `initializer`) or Trax 1.4's (`bases`, ...).

  The 1.4 form is chosen when a list/tuple comes first or `bases`,
  `start_from_zero_one_in` or `base_dropout_one_in` is given; see
  `FixedBasePositionalEncoding12` and `FixedBasePositionalEncoding14`.

  Args:
    *args, **kwargs: The arguments of the chosen form, passed on unchanged
      (giving both `base` and a 1.4-only argument raises `ArgumentError`).
  """
  if (args and isinstance(args[0], (list, tuple))) or any(k in kwargs for k in _ONLY_14):
    if 'base' in kwargs:
      raise ArgumentError('FixedBasePositionalEncoding: pass base (Trax 1.2) or bases (Trax 1.4),'
                          ' not both')
    return FixedBasePositionalEncoding14(*args, **kwargs)
  return FixedBasePositionalEncoding12(*args, **kwargs)


def _dropped(who, pe, rate, broadcast_dims, rng):
  _need_rng(who, rng)
  shape = list(pe.shape)
  for axis in broadcast_dims:
    shape[axis] = 1
  keep = keep_mask(rng, 1.0 - rate, tuple(shape))
  return jnp.where(keep, pe / (1.0 - rate), 0.0)


class SinCosPositionalEncoding(Layer):
  """Sine/cosine positions `[sin(p w_i), cos(p w_i)]`, w_i = 10000^(-2i/d); d even.

  Training starts at a random position in `[0, add_offset)` except in one call
  of `start_from_zero_one_in` (which starts at 0) and applies `dropout` to the
  signal (shared along `dropout_broadcast_dims`). Predict: a position counter.

  Args:
    add_offset: Positive int; training offsets are drawn from [0, add_offset).
    dropout: Dropout rate on the added signal (training only; needs an rng).
    dropout_broadcast_dims: Axes of the (1, n, d) signal sharing one dropout entry.
    start_from_zero_one_in: A training call starts at 0 with probability 1 / this.
    mode: 'train', 'eval' (positions from 0) or 'predict'.
  """

  def __init__(self, add_offset=2048, dropout=0.0, dropout_broadcast_dims=(-2,),
               start_from_zero_one_in=2, mode='train'):
    who = 'SinCosPositionalEncoding'
    self._add_offset = check_int(who, 'add_offset', add_offset)
    check_rate(who, 'dropout', dropout)
    self._start_one_in = check_int(who, 'start_from_zero_one_in', start_from_zero_one_in)
    check_mode(who, 'mode', mode)
    super().__init__(name=who)
    self._dropout = float(dropout) if mode == 'train' else 0.0
    self._broadcast_dims, self._mode = tuple(dropout_broadcast_dims), mode

  def init_weights_and_state(self, input_signature, rng):
    if input_signature.shape[-1] % 2:
      raise ArgumentError(f'{self.name}: d_feature must be even, got {input_signature.shape}')
    return (), (jnp.zeros((), jnp.int32) if self._mode == 'predict' else ())

  def _sincos(self, start, n, d):
    pos = (jnp.arange(n) + start).astype(jnp.float32)[:, None]
    w = jnp.exp(jnp.arange(0, d, 2, dtype=jnp.float32) * -(jnp.log(10000.0) / d))[None, :]
    return jnp.concatenate([jnp.sin(pos * w), jnp.cos(pos * w)], axis=1)[None]

  def forward_with_state(self, x, weights, state, rng):
    n, d = x.shape[1], x.shape[2]
    if self._mode == 'predict':
      return x + self._sincos(state, n, d).astype(x.dtype), state + n
    start = 0
    if self._mode == 'train':
      _need_rng(self.name, rng)
      r1, r2, r3 = jax.random.split(rng, 3)
      start = jax.random.randint(r1, (), 0, self._add_offset) * jnp.minimum(
          1, jax.random.randint(r2, (), 0, self._start_one_in))
    pe = self._sincos(start, n, d)
    if self._dropout > 0.0:
      pe = _dropped(self.name, pe, self._dropout, self._broadcast_dims, r3)
    return x + jnp.broadcast_to(pe, x.shape).astype(x.dtype), state


__all__ = [
    'FixedBasePositionalEncoding', 'FixedBasePositionalEncoding12', 'FixedBasePositionalEncoding14',
    'SinCosPositionalEncoding'
]
