"""Trax 1.2's causal-attention cores: `MemoryEfficientCausalAttention`, `TimeBinCausalAttention`.

After Trax 1.2.3's `trax/layers/research/efficient_attention.py`. Like
`DotProductCausalAttention` they work on per-head arrays, `(q, k, v) -> y`
with q, k: (batch * n_heads, n, d) and v: (batch * n_heads, n, d_v) (n_in =
3, n_out = 1, no weights), and plug into Trax 1.2's
`CausalAttention(..., attention_type=...)`, which calls `attention_type(mode=
mode)` (bind the other arguments with gin or `functools.partial`).
`LSHCausalAttention` is in `minitrax.layers.lsh_causal_attention`.

With `share_qk`, the keys are the queries normalised to unit RMS (`k` is
ignored) and a position attends to itself only when nothing else is visible
(1e5 is subtracted from its score; 1e9 from hidden ones), as in Trax.
Attention dropout (training only) draws one mask per query block, shared by
all examples and heads (Trax's broadcast).
"""

import math

import jax
import jax.numpy as jnp

from minitrax.checks import check_flag, check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.attention_kernels import length_normalized, look_adjacent
from minitrax.layers.base import Layer
from minitrax.layers.masks import keep_mask


class BaseCausalAttention(Layer):
  """Base class of Trax 1.2's causal-attention cores: n_in = 3 (q, k, v), n_out = 1.

  q, k and v are per-head arrays `(batch * n_heads, length, d)` agreeing on
  their first two axes; a subclass attends from each position to itself and
  the positions before it.

  Args:
    mode: 'train', 'eval' or 'predict'; read back as the `mode` property.
  """

  def __init__(self, mode='train'):
    check_mode(type(self).__name__, 'mode', mode)
    super().__init__(n_in=3, n_out=1, name=type(self).__name__)
    self._mode = mode

  @property
  def mode(self):
    return self._mode

  def _check_inputs(self, q, k, v):
    if q.ndim != 3 or q.shape[:2] != k.shape[:2] or q.shape[:2] != v.shape[:2]:
      raise ArgumentError(f'{self.name}: q, k, v must be (batch * n_heads, length, d) with the '
                          f'same first two axes, got shapes {q.shape}, {k.shape}, {v.shape}')


def _dropout(probs, rate, rng, shape, who):
  """Inverted dropout of attention probabilities with a mask of `shape` (broadcast)."""
  if rate == 0.0:
    return probs
  if rng is None:
    raise ArgumentError(f"{who}: mode='train' with dropout needs an rng, got rng=None")
  keep = keep_mask(rng, 1.0 - rate, shape)
  return probs * jnp.broadcast_to(keep, probs.shape).astype(probs.dtype) / (1.0 - rate)


def _masked_scores(q, k, q_pos, k_pos, share_qk):
  """Scaled scores with Trax's subtractive penalties (1e9 later keys, 1e5 self when shared)."""
  dots = jnp.matmul(q, jnp.swapaxes(k, -1, -2)) / math.sqrt(q.shape[-1])
  q_pos, k_pos = q_pos[..., :, None], k_pos[..., None, :]
  dots = jnp.where(jnp.broadcast_to(q_pos < k_pos, dots.shape), dots - 1e9, dots)
  if share_qk:
    dots = jnp.where(jnp.broadcast_to(q_pos == k_pos, dots.shape), dots - 1e5, dots)
  return dots


class MemoryEfficientCausalAttention(BaseCausalAttention):
  """Causal attention computed `loop_stride` queries at a time: (q, k, v) -> y.

  The same numbers as full causal attention, with scores of (loop_stride, n)
  per head in memory (the loop is rematerialised in the backward pass); n
  must be a multiple of `loop_stride`. With `hard_k > 0` each query keeps
  only its `hard_k` largest attention weights: the hard_k-th largest is
  subtracted, negatives become 0, and the rest is renormalised. Trax gives
  this layer no predict-mode cache, so `mode='predict'` is refused (decode
  with `DotProductCausalAttention`).

  Args:
    loop_stride: queries per step of the loop.
    dropout: attention dropout rate (training only).
    mode: 'train' or 'eval'.
    share_qk: keys are the RMS-normalised `k` input (Trax passes the shared
      query/keys as both q and k); no attention to self.
    hard_k: 0, or the number of attention weights each query keeps.
  """

  def __init__(self, loop_stride, dropout, mode, share_qk=False, hard_k=0):
    who = 'MemoryEfficientCausalAttention'
    check_int(who, 'loop_stride', loop_stride)
    check_rate(who, 'dropout', dropout)
    check_flag(who, 'share_qk', share_qk)
    check_int(who, 'hard_k', hard_k, 0)
    if mode == 'predict':
      raise ArgumentError(f"{who}: Trax has no predict mode (no cache) for this layer; use "
                          f"DotProductCausalAttention for decoding")
    super().__init__(mode=mode)
    self._stride, self._share_qk, self._hard_k = loop_stride, bool(share_qk), hard_k
    self._dropout = float(dropout) if mode == 'train' else 0.0

  def forward_with_state(self, x, weights, state, rng):
    q, k, v = x
    self._check_inputs(q, k, v)
    n, stride = q.shape[1], self._stride if q.shape[1] > 1 else 1
    if n % stride:
      raise ArgumentError(f'{self.name}: loop_stride={stride} must divide the length {n}')
    if self._share_qk:
      k = length_normalized(k).astype(q.dtype)
    k_pos = jnp.arange(n)

    def block(i):
      start = i * stride
      q_block = jax.lax.dynamic_slice_in_dim(q, start, stride, axis=1)
      dots = _masked_scores(q_block, k, start + jnp.arange(stride), k_pos, self._share_qk)
      probs = jax.nn.softmax(dots, axis=-1)
      r = None if rng is None else jax.random.fold_in(rng, start)
      probs = _dropout(probs, self._dropout, r, (1,) + probs.shape[1:], self.name)
      if self._hard_k > 0:
        kth = jax.lax.stop_gradient(jnp.sort(probs, axis=-1)[..., -self._hard_k])
        probs = jnp.maximum(probs - kth[..., None], 0)
        probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
      return jnp.matmul(probs, v)

    out = jax.lax.map(jax.checkpoint(block), jnp.arange(n // stride))
    return jnp.moveaxis(out, 0, 1).reshape(v.shape), state


class TimeBinCausalAttention(BaseCausalAttention):
  """Causal attention within time bins and the bin before: (q, k, v) -> y.

  The sequence is cut into bins (of `bin_length`, or `n_bins` of them; the
  end is zero-padded); each position attends causally to its own bin and the
  previous one. Predict mode (needs `bin_length`) keeps a buffer of `2 *
  bin_length` keys and values per head: it holds the previous bin and the
  current one, so decoding one position at a time equals eval mode. State:
  `(keys, values, filled (batch * heads, 1, 2 bin_length), index (batch *
  heads,))`, as in Trax.

  Args:
    mode: 'train', 'eval' or 'predict'.
    dropout: attention dropout rate (training only).
    bin_length: positions per bin; or
    n_bins: the number of bins (exactly one of the two).
    share_qk: keys are the RMS-normalised queries; no attention to self.
  """

  def __init__(self, mode, dropout=0.0, bin_length=None, n_bins=None, share_qk=False):
    who = 'TimeBinCausalAttention'
    if (bin_length is None) == (n_bins is None):
      raise ArgumentError(f'{who}: give exactly one of bin_length and n_bins, got bin_length='
                          f'{bin_length!r} and n_bins={n_bins!r}')
    if bin_length is not None:
      check_int(who, 'bin_length', bin_length)
    if n_bins is not None:
      check_int(who, 'n_bins', n_bins)
    if mode == 'predict' and bin_length is None:
      raise ArgumentError(f"{who}: mode='predict' needs bin_length, got n_bins={n_bins}")
    check_rate(who, 'dropout', dropout)
    super().__init__(mode=mode)
    self._bin_length, self._n_bins = bin_length, n_bins
    self._share_qk = check_flag(who, 'share_qk', share_qk)
    self._dropout = float(dropout) if mode == 'train' else 0.0

  def init_weights_and_state(self, input_signature, rng):
    del rng
    if self._mode != 'predict':
      return (), ()
    _, k, v = input_signature
    size = 2 * self._bin_length
    return (), (jnp.zeros((k.shape[0], size, k.shape[-1]),
                          k.dtype), jnp.zeros((v.shape[0], size, v.shape[-1]), v.dtype),
                jnp.zeros((k.shape[0], 1, size), jnp.float32), jnp.zeros((k.shape[0],), jnp.int32))

  def forward_with_state(self, x, weights, state, rng):
    q, k, v = x
    self._check_inputs(q, k, v)
    if self._mode == 'predict':
      return self._predict(q, k, v, state)
    return self._binned(q, k, v, rng), state

  def _binned(self, q, k, v, rng):
    n = q.shape[1]
    if self._n_bins is None:
      n_bins, length = -(-n // self._bin_length), self._bin_length
    else:
      n_bins, length = self._n_bins, -(-n // self._n_bins)
    pad = [(0, 0), (0, n_bins * length - n), (0, 0)]
    q, k, v = (jnp.pad(a, pad) for a in (q, k, v))

    def bins(a):
      return a.reshape((a.shape[0], n_bins, length, a.shape[-1]))

    t = jnp.arange(n_bins * length).reshape(n_bins, length)
    bq = bins(q)
    bk = length_normalized(bq).astype(q.dtype) if self._share_qk else bins(k)
    dots = _masked_scores(bq, look_adjacent(bk, 1, 0, axis=1), t, look_adjacent(t, 1, 0),
                          self._share_qk)
    probs = jax.nn.softmax(dots, axis=-1)
    probs = _dropout(probs, self._dropout, rng, (1,) + probs.shape[1:], self.name)
    out = jnp.matmul(probs, look_adjacent(bins(v), 1, 0, axis=1))
    return out.reshape((out.shape[0], -1, out.shape[-1]))[:, :n]

  def _predict(self, q, k, v, state):
    if self._share_qk:
      k = length_normalized(q).astype(q.dtype)

    def step(state, qkv):
      return self._predict_one(state, *qkv)

    qkv = tuple(jnp.moveaxis(a, 1, 0)[:, :, None, :] for a in (q, k, v))
    state, out = jax.lax.scan(step, state, qkv)
    return jnp.moveaxis(out[:, :, 0, :], 0, 1), state

  def _predict_one(self, state, q, k, v):
    """One position: q, k, v (bh, 1, d) -> (new state, y (bh, 1, d_v))."""
    keys, values, filled, index = state
    rows = jnp.arange(keys.shape[0])
    keys = keys.at[rows, index].set(k[:, 0].astype(keys.dtype))
    values = values.at[rows, index].set(v[:, 0].astype(values.dtype))
    before = filled
    filled = filled.at[rows, 0, index].set(1.0)
    visible = filled
    if self._share_qk:  # only the first position of a sequence may see itself
      visible = jnp.where((index + 1 > 1)[:, None, None], before, filled)
    dots = jnp.matmul(q, jnp.swapaxes(keys, -1, -2)) / math.sqrt(q.shape[-1])
    dots = jnp.where(visible > 0, dots, -1e9)
    y = jnp.matmul(jax.nn.softmax(dots, axis=-1).astype(values.dtype), values)
    index = index + 1
    full = (index == 2 * self._bin_length)[:, None, None]
    half = self._bin_length

    def rolled(buf):
      return jnp.concatenate([buf[:, half:], buf[:, half:]], axis=1)

    keys = jnp.where(full, rolled(keys), keys)
    values = jnp.where(full, rolled(values), values)
    filled = jnp.where(full, filled.at[:, :, half:].set(0.0), filled)
    return (keys, values, filled, jnp.where(full[:, 0, 0], index - half, index)), y


__all__ = ['BaseCausalAttention', 'MemoryEfficientCausalAttention', 'TimeBinCausalAttention']
