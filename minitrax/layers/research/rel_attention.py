"""Relative attention (Transformer-XL, Dai et al., 2019), as Trax 1.4's Funnel/Hourglass use it.

After `trax/layers/research/rel_attention.py`. Per head, the score of query
i and key j is

    ((q_i + u) . k_j + shift((q_i + v) . r)_ij) / sqrt(d_feature)

with learned global biases u (context) and v (location), shape (1, n_heads,
1, d_head) and shared by all layers (`get_rel_att_inputs`), and r the
projected sinusoidal embeddings of the relative distances (`[sin, cos]`
halves). `shift` (`_fast_matrix_shift`) turns scores against distances into
scores against key positions; with `total_kv_pooling` (or queries and keys
of different lengths: funnel pooling or upsampling) the distances are
scaled accordingly. Masked scores get -1e9.

The layers keep no cache: in 'predict' mode a call attends only within
itself, as in Trax.
"""

import jax
import jax.numpy as jnp

from minitrax.checks import check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Branch, Parallel, Select, Serial
from minitrax.layers.core import Dense
from minitrax.layers.core_more import Weights
from minitrax.layers.initializers import RandomNormalInitializer
from minitrax.layers.masks import keep_mask


def calc_funnel_ratio(keys_len, queries_len):
  """`(funnel_factor, is_upsampling)`: the ratio of the longer length to the shorter.

  Args:
    keys_len, queries_len: The key and query lengths (positive ints); the
      longer must be a multiple of the shorter (`ArgumentError` otherwise).
      `is_upsampling` is whether the queries are the longer.
  """
  longer, shorter = max(keys_len, queries_len), min(keys_len, queries_len)
  if longer % shorter:
    raise ArgumentError(f'relative attention: {queries_len} queries and {keys_len} keys; the '
                        f'longer length must be a multiple of the shorter')
  return longer // shorter, queries_len > keys_len


def _fast_matrix_shift(x, funnel_factor=1, is_upsampling=False):
  """Scores (b, h, q, distances) -> (b, h, q, keys) by Transformer-XL's pad-reshape shift."""
  b, h = x.shape[0], x.shape[1]
  if funnel_factor == 1 and not is_upsampling:
    q_len, k_len = x.shape[2], x.shape[3]
    x = jnp.concatenate([jnp.zeros((b, h, q_len, 1), x.dtype), x], axis=3)
    return x.reshape((b, h, k_len + 1, q_len))[:, :, 1:, :]
  k, shift = (funnel_factor, 1) if is_upsampling else (1, funnel_factor)
  q_len, k_len = x.shape[2], (x.shape[3] + 1) // 2
  x = jnp.concatenate([jnp.zeros((b, h, q_len, shift), x.dtype), x], axis=3)
  x = x.reshape((b, h, 2 * k_len - 1 + shift, q_len))[:, :, shift:, :]
  x = x.reshape((b, h, q_len, k_len * 2 - 1))
  return x[:, :, :, shift - 1:shift - 1 + k_len:k]


def relative_dot_product_attention(queries, keys, values, pos_emb, context_bias, location_bias,
                                   mask, separate_cls, dropout, rng):
  """The scores of the module docstring, softmax, dropout, weighted values.

  queries (b, h, q, d), keys and values (b, h, k, d), pos_emb (distances, h,
  d), biases (1, h, 1, d), mask None or bool broadcastable to (b, h, q, k).
  Returns `(out (b, h, q, d_v), weights (b, h, q, k))`.
  """
  funnel_factor, is_upsampling = calc_funnel_ratio(keys.shape[-2], queries.shape[-2])
  ac = jnp.einsum('bnid,bnjd->bnij', queries + jnp.broadcast_to(context_bias, queries.shape), keys)
  bd = jnp.einsum('bnid,jnd->bnij', queries + jnp.broadcast_to(location_bias, queries.shape),
                  pos_emb)
  bd = _fast_matrix_shift(bd, funnel_factor, is_upsampling)
  if separate_cls:
    bd = bd.at[:, :, :, 0].set(0).at[:, :, 0, :].set(0)
  dots = (ac + bd) / jnp.sqrt(jnp.float32(queries.shape[-1]))
  if mask is not None:
    dots = jnp.where(mask, dots, -1e9)
  weights = jax.nn.softmax(dots, axis=-1)
  if dropout > 0.0:
    weights = jnp.where(keep_mask(rng, 1.0 - dropout, weights.shape), weights / (1.0 - dropout),
                        0.0)
  return jnp.matmul(weights, values).astype(jnp.float32), weights.astype(jnp.float32)


def _heads(x, n_heads):
  b, n, d = x.shape
  return x.reshape((b, n, n_heads, d // n_heads)).transpose((0, 2, 1, 3))


class RelativeAttention(Layer):
  """(location_bias, context_bias, pos_emb, q, k, v, mask) -> (activations, mask).

  n_in = 7, n_out = 2; q (b, q_len, d), k and v (b, k_len, d), pos_emb
  (distances, d), d a multiple of `n_heads`; the activations are (b, q_len, d)
  and the mask passes through. No weights.

  Args:
    separate_cls: zero the position scores of the first query and key.
    n_heads: number of heads.
    dropout: dropout rate on the attention weights (training only).
    mode: 'train', 'eval' or 'predict'.
  """

  def __init__(self, separate_cls, n_heads=1, dropout=0.0, mode='train'):
    check_int('RelativeAttention', 'n_heads', n_heads)
    check_rate('RelativeAttention', 'dropout', dropout)
    check_mode('RelativeAttention', 'mode', mode)
    super().__init__(n_in=7, n_out=2, name='RelativeAttention')
    self._separate_cls, self._n_heads = bool(separate_cls), n_heads
    self._dropout = float(dropout) if mode == 'train' else 0.0

  def forward_with_state(self, x, weights, state, rng):
    location_bias, context_bias, pos_emb, q, k, v, mask = x
    h, d = self._n_heads, q.shape[-1]
    if d % h:
      raise ArgumentError(f'{self.name}: d_feature={d} is not a multiple of n_heads={h}')
    if self._dropout > 0.0 and rng is None:
      raise ArgumentError(f"{self.name}: mode='train' with dropout needs an rng, got rng=None")
    out, _ = relative_dot_product_attention(_heads(q, h), _heads(k, h), _heads(v, h),
                                            pos_emb.reshape(
                                                (-1, h, d // h)), context_bias, location_bias, mask,
                                            self._separate_cls, self._dropout, rng)
    b, _, n, d_head = out.shape
    return (out.transpose((0, 2, 1, 3)).reshape((b, n, h * d_head)), mask), state


def PositionalEmbeddings(d_feature, separate_cls, total_kv_pooling):  # pylint: disable=invalid-name
  """(q, k) -> sinusoidal embeddings (distances, d_feature) of the relative distances.

  Distances: `(j - (k_len - 1)) * total_kv_pooling` for j < k_len when the
  lengths agree; else `-k_len + 1 .. k_len - 1` scaled by `total_kv_pooling`
  (pooling) or `-q_len + 1 .. q_len - 1` (upsampling). Embedding: `[sin(p
  w), cos(p w)]`, w_i = 10000^(-2i / d).

  Args:
    d_feature: Width of the embeddings (even).
    separate_cls: Must be false (`ArgumentError`), as Trax does not support it either.
    total_kv_pooling: How much the keys were pooled: the distance scale.
  """
  if separate_cls:
    raise ArgumentError('PositionalEmbeddings: separate_cls=True is not supported (nor by Trax)')

  def positions(queries, keys):
    k_len, q_len = keys.shape[-2], queries.shape[-2]
    funnel_factor, is_upsampling = calc_funnel_ratio(k_len, q_len)
    if funnel_factor == 1:
      return (jnp.arange(k_len) - (k_len - 1)) * total_kv_pooling
    if is_upsampling:
      return jnp.arange(-q_len + 1, q_len, 1.0)
    return jnp.arange(-k_len + 1, k_len, 1.0) * total_kv_pooling

  def sinusoids(p):
    inv_freq = 1 / (10000**(jnp.arange(0.0, d_feature, 2.0) / d_feature))
    angles = p.astype(jnp.float32)[:, None] * inv_freq[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=1)

  return Serial(Fn('Generate positions vectors', positions),
                Fn('Transform to sinusoidal encodings', sinusoids))


def get_rel_att_inputs(d_model, n_heads):
  """The shared (context_bias_layer, location_bias_layer): `Weights` of (1, n_heads, 1, d_head).

  Each is initialised from a normal with std 1e-6; pass the same pair to
  every relative-attention layer that should share them.

  Args:
    d_model: Model width; even and a multiple of `n_heads`; `d_head = d_model // n_heads`.
    n_heads: Number of heads.
  """
  if d_model % n_heads or d_model % 2:
    raise ArgumentError(f'get_rel_att_inputs: d_model={d_model} must be even and a multiple of '
                        f'n_heads={n_heads}')
  shape = (1, n_heads, 1, d_model // n_heads)
  return (Weights(RandomNormalInitializer(1e-6),
                  shape=shape), Weights(RandomNormalInitializer(1e-6), shape=shape))


def RelativeAttentionLayer(
    d_feature,
    context_bias_layer,
    location_bias_layer,  # pylint: disable=invalid-name
    total_kv_pooling,
    separate_cls,
    n_heads=1,
    dropout=0.0,
    mode='train'):
  """(q, k, v, mask) -> (activations (b, q_len, d_feature), mask); n_in = 4, n_out = 2.

  Weights: four `Dense(d_feature)` (position embeddings, q, k, v), the two
  shared biases, and the output `Dense(d_feature)`.

  Args:
    d_feature: Width of q, k, v, the projections and the output; a multiple of `n_heads`.
    context_bias_layer, location_bias_layer: The shared bias layers u and v
      (from `get_rel_att_inputs`).
    total_kv_pooling: The distance scale of the position embeddings.
    separate_cls: Must be false (see `PositionalEmbeddings`).
    n_heads: Number of heads.
    dropout: Dropout rate on the attention weights (training only).
    mode: 'train', 'eval' or 'predict' (no cache: see the module docstring).
  """
  return Serial(
      Branch(PositionalEmbeddings(d_feature, separate_cls, total_kv_pooling), Select([0]),
             Select([1])),
      Parallel(Dense(d_feature), Dense(d_feature), Dense(d_feature), Dense(d_feature)),
      context_bias_layer, location_bias_layer,
      RelativeAttention(separate_cls=separate_cls, n_heads=n_heads, dropout=dropout, mode=mode),
      Dense(d_feature), name='RelativeAttentionLayer')


def CreateAttentionMaskLayer():  # pylint: disable=invalid-name
  """(q, k, v) -> (q, k, v, causal mask (b, 1, q_len, k_len)), rows/columns repeated for funnels."""

  def mask(queries, keys):
    k_len, q_len = keys.shape[-2], queries.shape[-2]
    funnel_factor, is_upsampling = calc_funnel_ratio(k_len, q_len)
    if funnel_factor != 1 and not is_upsampling:
      m = jnp.repeat(jnp.tril(jnp.ones((q_len, q_len), bool)), funnel_factor, axis=-1)
    elif funnel_factor != 1:
      m = jnp.repeat(jnp.tril(jnp.ones((k_len, k_len), bool)), funnel_factor, axis=-2)
    else:
      m = jnp.tril(jnp.ones((q_len, q_len), bool))
    return jnp.broadcast_to(m[None, None], (queries.shape[0], 1) + m.shape)

  return Branch(Select([0]), Select([1]), Select([2]), Fn('create attention mask layer', mask))


def RelativeAttentionLMLayer(
    d_feature,
    context_bias_layer,
    location_bias_layer,  # pylint: disable=invalid-name
    total_kv_pooling,
    separate_cls=False,
    n_heads=1,
    dropout=0.0,
    mode='train'):
  """Causal relative attention: (q, k, v) -> activations (b, q_len, d_feature); n_in = 3.

  A causal mask (`CreateAttentionMaskLayer`), then `RelativeAttentionLayer`.

  Args:
    d_feature, context_bias_layer, location_bias_layer: As for `RelativeAttentionLayer`.
    total_kv_pooling, separate_cls, n_heads, dropout, mode: As there.
  """
  attention = RelativeAttentionLayer(d_feature, context_bias_layer, location_bias_layer,
                                     total_kv_pooling, separate_cls, n_heads=n_heads,
                                     dropout=dropout, mode=mode)
  return Serial(CreateAttentionMaskLayer(), attention, Select([0], n_in=2),
                name='RelativeAttentionLMLayer')


def RelativeAttentionWrapper(
    d_feature,
    n_heads=1,
    dropout=0.0,
    max_inference_length=2048,  # pylint: disable=invalid-name
    mode='train',
    context_bias_layer=None,
    location_bias_layer=None,
    total_pooling=None):
  """Causal relative self-attention: (batch, n, d_feature) -> (batch, n, d_feature); n_in = 1.

  `RelativeAttentionLMLayer` on (x, x, x), for `ApplyAttentionLayer`-style
  callers. `max_inference_length` is unused (as in Trax). Trax needs the
  bias layers and `total_pooling`; here missing biases are made for this
  layer alone (`get_rel_att_inputs`) and `total_pooling` defaults to 1.

  Args:
    d_feature, n_heads, dropout, mode: As for `RelativeAttentionLayer`.
    max_inference_length: Accepted and ignored, as in Trax.
    context_bias_layer, location_bias_layer: The shared bias layers, or None
      (both are then made here).
    total_pooling: The distance scale (`total_kv_pooling`); None means 1.
  """
  del max_inference_length
  if context_bias_layer is None or location_bias_layer is None:
    context_bias_layer, location_bias_layer = get_rel_att_inputs(d_feature, n_heads)
  attention = RelativeAttentionLMLayer(d_feature, context_bias_layer, location_bias_layer,
                                       1 if total_pooling is None else total_pooling,
                                       n_heads=n_heads, dropout=dropout, mode=mode)
  return Serial(Select([0, 0, 0]), attention, name='RelativeAttentionWrapper')


def ShiftRightCls(cls_id):  # pylint: disable=invalid-name
  """Shifts (batch, n, ...) right by one along axis 1, inserting `cls_id` in front.

  Args:
    cls_id: The value put at position 0 (cast to the input's dtype).
  """

  def shift_right(x):
    pad = [(0, 0)] * x.ndim
    pad[1] = (1, 0)
    return jnp.pad(x, pad, constant_values=jnp.asarray(cls_id, x.dtype))[:, :-1]

  return Fn('ShiftRightCls()', shift_right)


__all__ = [
    'RelativeAttention', 'RelativeAttentionLayer', 'RelativeAttentionLMLayer',
    'RelativeAttentionWrapper', 'PositionalEmbeddings', 'CreateAttentionMaskLayer', 'ShiftRightCls',
    'get_rel_att_inputs', 'calc_funnel_ratio', 'relative_dot_product_attention'
]
