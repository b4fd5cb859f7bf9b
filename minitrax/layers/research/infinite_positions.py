"""`InfinitePositionalEncoding` and `TimeBinPositionalEncoding` (Trax 1.4 research layers).

Infinite encoding of position t, feature c (d features, h = ceil(d / 2)):

    cycles[t, c] = (c mod 2) / 4 + f[c // 2] t + sqrt(drift) W[t, c // 2] / 4 (+ phase[c])
    y = x + T(cos(2 pi cycles))

with frequencies `f = geomspace(1/2, drift'^2 / 2, h)` (`drift' = drift^(h /
(d // 2))` for d > 2), a fixed walk `W[t] = sum_{s <= t} u[s]` whose steps
`u[s, j]` are Trax's threefry draws (its fixed key, counter `s h + j`, first
word, divided by 2^31 - 1, times sqrt 3), a random phase per call drawn from
the call's rng when `affine`, and a learned transform T: 'any' (a d x d
matrix, orthogonal at init), 'diag' (`softplus(w) *`, w = 1e-4 at init) or
'none'. With `time_bin_length`, the last 3 features are the time-bin features
of `TimeBinPositionalEncoding`.

Predict mode takes one position per call; the state is `(positions (batch,),
rng, walk (batch, h))` (Trax keeps the first two and recomputes the walk).
"""

import math

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_int, check_mode
from minitrax.errors import ArgumentError
from minitrax.layers.base import Layer
from minitrax.layers.initializers import OrthogonalInitializer

# Trax's fixed key `split(PRNGKey(234234535))[0]`, as jax computed it in Trax's time (before
# threefry became 'partitionable' by default): raw threefry words.
_NOISE_KEY = (4174489716, 303878026)


def _noise_key():
  return jnp.asarray(_NOISE_KEY, jnp.uint32)


def walk_steps(t, depth):
  """The walk's steps u[t] for int positions `t` (...,): (..., depth) float32 in [0, 2 sqrt 3)."""
  shape = t.shape + (depth,)
  counters = (jnp.broadcast_to(t[..., None].astype(jnp.uint32), shape) * jnp.uint32(depth) +
              jnp.broadcast_to(jnp.arange(depth, dtype=jnp.uint32), shape))
  flat = counters.reshape(-1)
  words = jex.random.threefry_2x32(_noise_key(), jnp.concatenate([flat, jnp.zeros_like(flat)]))
  first = words[:flat.shape[0]].reshape(counters.shape)
  return first.astype(jnp.float32) / np.float32(2**31 - 1) * np.float32(3**.5)


def time_bin_features(t, bin_length):
  """(1 / (1 + bin), offset in bin / bin_length, bin parity) of int positions: (..., 3)."""
  inter, intra = jnp.divmod(t, bin_length)
  return jnp.stack([1 / (1 + inter), intra / bin_length, (inter % 2).astype(jnp.float32)],
                   axis=-1).astype(jnp.float32)


class InfinitePositionalEncoding(Layer):
  """Infinite positional encoding: (batch, n, d) -> (batch, n, d); see the module docstring.

  Weights: (d, d) for transform='any', (d,) for 'diag', none for 'none'.

  Args:
    drift: variance of the walk per unit of position difference.
    affine: add a random phase per call (needs an rng, also in eval mode).
    transform: 'any', 'diag' or 'none'.
    time_bin_length: None, or `TimeBinCausalAttention.bin_length`: the last
      3 features become time-bin features.
    mode: 'train', 'eval' or 'predict' (one position per call).
  """

  def __init__(self, drift=.03, affine=True, transform='any', time_bin_length=None, mode='train'):
    who = 'InfinitePositionalEncoding'
    if transform not in ('any', 'diag', 'none'):
      raise ArgumentError(f"{who}: transform must be 'any', 'diag' or 'none', got {transform!r}")
    if time_bin_length is not None:
      check_int(who, 'time_bin_length', time_bin_length)
    check_mode(who, 'mode', mode)
    super().__init__(name=who)
    self._drift, self._affine, self._transform = float(drift), bool(affine), transform
    self._bin_length, self._mode = time_bin_length, mode

  def init_weights_and_state(self, input_signature, rng):
    d = input_signature.shape[-1]
    r_w, r_state = jax.random.split(rng)
    if self._transform == 'diag':
      weights = jnp.zeros((d,), jnp.float32) + 1e-4
    elif self._transform == 'any':
      weights = OrthogonalInitializer()((d, d), r_w)
    else:
      weights = ()
    if self._mode != 'predict':
      return weights, ()
    b = input_signature.shape[0]
    return weights, (jnp.zeros((b,), jnp.int32), r_state, jnp.zeros((b, (d + 1) // 2), jnp.float32))

  def _embeddings(self, t, walk, d, rng):
    """cos(2 pi cycles) at int positions t (...,), walk (..., h): (..., d)."""
    h = (d + 1) // 2
    drift = self._drift**((h) / (d // 2)) if d > 2 else self._drift
    freq = jnp.asarray(np.geomspace(.5, .5 * drift**2, num=h), jnp.float32)
    c = np.arange(d)
    shape = t.shape + (d,)

    def wide(a):
      return jnp.broadcast_to(a, shape)

    cycles = (wide(jnp.asarray(
        (c % 2) / 4, jnp.float32)) + wide(freq[c // 2]) * wide(t[..., None].astype(jnp.float32)) +
              walk[..., c // 2] * np.float32(self._drift**.5) / 4)
    if self._affine:
      if rng is None:
        raise ArgumentError(f'{self.name}: affine=True draws a random phase and needs an rng')
      cycles = cycles + wide(jax.random.uniform(rng, (d,), minval=0, maxval=1))
    emb = jnp.cos(np.float32(2 * math.pi) * cycles)
    if self._bin_length is not None:
      emb = jnp.concatenate([emb[..., :-3], time_bin_features(t, self._bin_length)], axis=-1)
    return emb

  def _transformed(self, emb, weights):
    if self._transform == 'diag':
      return emb * jax.nn.softplus(jnp.broadcast_to(weights, emb.shape))
    if self._transform == 'any':
      return emb @ weights
    return emb

  def forward_with_state(self, x, weights, state, rng):
    d = x.shape[-1]
    if self._mode == 'predict':
      if x.shape[1] != 1:
        raise ArgumentError(f'{self.name}: predict mode takes one position per call, got shape '
                            f'{x.shape}')
      t, phase_rng, walk = state
      walk = walk + walk_steps(t, (d + 1) // 2)
      emb = self._embeddings(t, walk, d, phase_rng)[:, None, :]
      state = (t + 1, phase_rng, walk)
    else:
      t = jnp.arange(x.shape[1])
      walk = jnp.cumsum(walk_steps(t, (d + 1) // 2), axis=0)
      emb = self._embeddings(t, walk, d, rng)[None]
    return x + jnp.broadcast_to(self._transformed(emb, weights), x.shape).astype(x.dtype), state


class TimeBinPositionalEncoding(Layer):
  """Replaces the last 3 features by time-bin features: (batch, n, d) -> (batch, n, d), d >= 3.

  Features of position t: `1 / (1 + t // bin_length)`, `(t mod bin_length) /
  bin_length`, `(t // bin_length) mod 2`. No weights. Predict mode: one
  position per call; state: the positions (batch,).

  Args:
    time_bin_length: Positive int, the positions per bin.
    mode: 'train', 'eval' or 'predict'.
  """

  num_features = 3

  def __init__(self, time_bin_length, mode='train'):
    self._bin_length = check_int('TimeBinPositionalEncoding', 'time_bin_length', time_bin_length)
    check_mode('TimeBinPositionalEncoding', 'mode', mode)
    super().__init__(name='TimeBinPositionalEncoding')
    self._mode = mode

  def init_weights_and_state(self, input_signature, rng):
    del rng
    if input_signature.shape[-1] < 3:
      raise ArgumentError(f'{self.name}: inputs need at least 3 features, got shape '
                          f'{input_signature.shape}')
    if self._mode != 'predict':
      return (), ()
    return (), jnp.zeros((input_signature.shape[0],), jnp.int32)

  def forward_with_state(self, x, weights, state, rng):
    if self._mode == 'predict':
      if x.shape[1] != 1:
        raise ArgumentError(f'{self.name}: predict mode takes one position per call, got shape '
                            f'{x.shape}')
      emb, state = time_bin_features(state, self._bin_length)[:, None, :], state + 1
    else:
      emb = time_bin_features(jnp.arange(x.shape[1]), self._bin_length)[None]
      emb = jnp.broadcast_to(emb, x.shape[:-1] + (3,))
    return jnp.concatenate([x[..., :-3], emb.astype(x.dtype)], axis=-1), state


__all__ = ['InfinitePositionalEncoding', 'TimeBinPositionalEncoding', 'walk_steps']
