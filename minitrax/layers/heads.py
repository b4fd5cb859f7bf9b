"""Trax 1.4's head plumbing: `SplitIntoHeads`, `MergeHeads`, `DotProductAttention`, ...

Multi-head attention works on `n_heads` slices of the feature axis. With
`merged_batch_and_head=True` (Trax's default) the heads are folded into the
batch axis: `(batch, n, n_heads * d_head) <-> (batch * n_heads, n, d_head)`,
head h of example b at index `b * n_heads + h`; otherwise they get an axis of
their own: `(batch, n_heads, n, d_head)`.
"""

import jax.numpy as jnp

from minitrax.checks import check_flag, check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.attention import dot_product_attention
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Branch, Serial


def SplitIntoHeads(n_heads, merged_batch_and_head=True):  # pylint: disable=invalid-name
  """(batch, n, d) -> (batch * n_heads, n, d / n_heads) (or (batch, n_heads, n, d / n_heads)).

  Args:
    n_heads: Number of heads; must divide `d`.
    merged_batch_and_head: If true, fold the heads into the batch axis (head h
      of example b at `b * n_heads + h`); else give them axis 1.
  """
  check_int('SplitIntoHeads', 'n_heads', n_heads)
  merged = check_flag('SplitIntoHeads', 'merged_batch_and_head', merged_batch_and_head)

  def f(x):
    if x.ndim != 3 or x.shape[-1] % n_heads:
      raise ArgumentError(f'SplitIntoHeads: input must be (batch, length, d) with d a multiple '
                          f'of n_heads={n_heads}, got shape {x.shape}')
    b, n, d = x.shape
    x = x.reshape((b, n, n_heads, d // n_heads)).transpose((0, 2, 1, 3))
    return x.reshape((b * n_heads, n, d // n_heads)) if merged else x

  return Fn('SplitIntoHeads', f)


def MergeHeads(n_heads, merged_batch_and_head=True):  # pylint: disable=invalid-name
  """(batch * n_heads, n, d_head), or (batch, n_heads, n, d_head) -> (batch, n, n_heads d_head).

  The inverse of `SplitIntoHeads`.

  Args:
    n_heads: Number of heads.
    merged_batch_and_head: Whether the heads are folded into the batch axis
      (the first input form) or have axis 1 (the second).
  """
  check_int('MergeHeads', 'n_heads', n_heads)
  merged = check_flag('MergeHeads', 'merged_batch_and_head', merged_batch_and_head)

  def f(x):
    if merged and (x.ndim != 3 or x.shape[0] % n_heads):
      raise ArgumentError(f'MergeHeads: input must be (batch * n_heads, length, d_head) with a '
                          f'leading axis that is a multiple of n_heads={n_heads}, got shape '
                          f'{x.shape}')
    if not merged and (x.ndim != 4 or x.shape[1] != n_heads):
      raise ArgumentError(f'MergeHeads: input must be (batch, n_heads={n_heads}, length, d_head),'
                          f' got shape {x.shape}')
    if merged:
      x = x.reshape((x.shape[0] // n_heads, n_heads) + x.shape[1:])
    b, h, n, d = x.shape
    return x.transpose((0, 2, 1, 3)).reshape((b, n, h * d))

  return Fn('MergeHeads', f)


class DotProductAttention(Layer):
  """Attention of per-head arrays: (q, k, v, mask) -> activations (Trax 1.4's layer).

  n_in = 4, n_out = 1, no weights. `q` is (..., n_q, d_head), `k` (..., n_k,
  d_head), `v` (..., n_k, d_v), heads already split (e.g. by `SplitIntoHeads`);
  `mask` is boolean (False hides a key), of the scores' rank
  (..., n_q, n_k) with axes of size 1 where it broadcasts. Returns
  (..., n_q, d_v): `softmax(q k^T / sqrt(d_head)) v`.

  Args:
    dropout: rate of dropout on the attention weights, in 'train' mode only.
    mode: 'train', 'eval' or 'predict'.
  """

  def __init__(self, dropout=0.0, mode='train'):
    check_rate('DotProductAttention', 'dropout', dropout)
    check_mode('DotProductAttention', 'mode', mode)
    super().__init__(n_in=4, n_out=1, name='DotProductAttention')
    self._dropout, self._mode = float(dropout), mode

  def forward_with_state(self, x, weights, state, rng):
    q, k, v, mask = x
    n_scores = q.shape[:-1] + k.shape[-2:-1]
    if mask.ndim != len(n_scores) or any(m not in (1, n) for m, n in zip(mask.shape, n_scores)):
      raise ArgumentError(f'DotProductAttention: mask of shape {mask.shape} does not broadcast to '
                          f'the scores\' shape {n_scores} (same rank, axes of size 1 or equal)')
    rate = self._dropout if self._mode == 'train' else 0.0
    if rate and rng is None:
      raise ArgumentError(f"DotProductAttention: mode='train' with dropout={rate} needs an rng, "
                          f"got rng=None; pass a JAX key or use mode='eval'")
    return dot_product_attention(q, k, v, jnp.asarray(mask, bool), rate, rng), state


def ConfigurableAttention(
    q_layer,
    k_layer,
    v_layer,
    final_layer,
    qkv_attention_layer,  # pylint: disable=invalid-name
    n_heads=1):
  """Multi-head self-attention from given pieces: (batch, n, d) -> final_layer's output.

  n_in = n_out = 1 (when `qkv_attention_layer` maps (q, k, v) to one array).
  Three copies of the input go through `q_layer`, `k_layer` and `v_layer`,
  each split into `n_heads` heads; `qkv_attention_layer` (e.g.
  `DotProductCausalAttention`) attends per head; the heads are merged and
  `final_layer` is applied. Weights: those of the pieces, in that order.

  Args:
    q_layer, k_layer, v_layer: Layers `(batch, n, d) -> (batch, n, d')` making
      queries, keys and values (e.g. `Dense(d')`); `d'` must divide by `n_heads`.
    final_layer: Layer applied to the merged heads `(batch, n, d')`.
    qkv_attention_layer: Layer `(q, k, v) -> activations` on per-head arrays
      `(batch * n_heads, n, d' / n_heads)`.
    n_heads: Number of heads.
  """
  check_int('ConfigurableAttention', 'n_heads', n_heads)
  return Serial(
      Branch([q_layer, SplitIntoHeads(n_heads)], [k_layer, SplitIntoHeads(n_heads)],
             [v_layer, SplitIntoHeads(n_heads)]), qkv_attention_layer, MergeHeads(n_heads),
      final_layer, name='ConfigurableAttention')


__all__ = ['SplitIntoHeads', 'MergeHeads', 'DotProductAttention', 'ConfigurableAttention']
