"""Attention layers: multi-head attention, causal attention with a predict-mode cache.

Names and arities follow Trax (`trax/layers/attention.py`):

* `Attention(d_feature, n_heads)`: `(x, mask) -> (y, mask)`, self-attention
  where `mask` (from `PaddingMask`) hides padding positions.
* `AttentionQKV`: `(q, k, v, mask) -> (y, mask)`, e.g. encoder-decoder
  attention; `PureAttention` is its core without the dense projections.
* `CausalAttention(d_feature, n_heads)`: `x -> y`, each position sees only
  itself and earlier positions; `DotProductCausalAttention` is its core on
  per-head arrays. Trax 1.2's form (the default: projections without biases)
  and Trax 1.4's (`CausalAttention14`: with biases) hold the weights of their
  generation one to one.
* `ShiftRight`, `PaddingMask`, `EncoderDecoderMask`; `PositionalEncoding`
  (a trained table) lives in `positions.py` and is re-exported here.

Predict mode (fast autoregressive decoding): `DotProductCausalAttention` and
`PositionalEncoding` keep an int32 position counter in their state, and the
attention also keeps its keys and values in a cache of `max_len` positions.
A call with `n` new positions writes them at the counter (one token, or a
prompt chunk at once) and advances it. Going past `max_len` is an error:
a `ValueError` when the counter is concrete; under `jax.jit` the outputs
become NaN (never a silent wrap-around), and `layer(x)` then raises the same
message; the decoders in `minitrax.supervised.decoding` refuse on the host
to decode more positions than the cache holds. Weights are the same in every
mode; only the state differs.

Masked positions get the score -1e9 and the softmax runs in float32.
"""

import math

import jax
import jax.numpy as jnp

from minitrax.checks import check_flag, check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.predict_length import PredictLength
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Branch, Parallel, Select, Serial
from minitrax.layers.core import Dense, poison
from minitrax.layers.masks import keep_mask
from minitrax.layers.positions import (PositionalEncoding, PositionalEncoding14, check_positions,
                                       overflow_message, sinusoidal_encoding)

_MASKED = -1e9

# ------------------------------------------------------------------ argument checks


def _check_heads(who, d_feature, n_heads):
  if d_feature % n_heads:
    raise ArgumentError(f'{who}: d_feature={d_feature} is not a multiple of n_heads={n_heads}')


# ------------------------------------------------------------------ the attention function


def dot_product_attention(queries, keys, values, mask, dropout=0.0, rng=None):
  """`softmax(q k^T / sqrt(d) + masking) v` (Trax's `DotProductAttention`).

  Args:
    queries: (..., n_q, d) array.
    keys: (..., n_k, d) array.
    values: (..., n_k, d_v) array.
    mask: None, or a boolean array broadcastable to (..., n_q, n_k); False
      hides a key from a query (its score becomes -1e9).
    dropout: rate of dropout on the attention weights; needs `rng` if > 0.
    rng: JAX key for the dropout, or None.

  Returns:
    (..., n_q, d_v) array of the values' dtype. Scores and softmax are float32.
  """
  scale = 1.0 / math.sqrt(queries.shape[-1])
  dots = jnp.matmul(queries, jnp.swapaxes(keys, -1, -2), preferred_element_type=jnp.float32) * scale
  if mask is not None:
    dots = jnp.where(mask, dots, jnp.float32(_MASKED))
  weights = jax.nn.softmax(dots, axis=-1)
  if dropout > 0.0:
    keep = keep_mask(rng, 1.0 - dropout, weights.shape)
    weights = jnp.where(keep, weights / (1.0 - dropout), 0.0)
  return jnp.matmul(weights.astype(values.dtype), values)


def _active_rate(who, rate, mode, rng):
  """The dropout rate to use (0 outside training); checks that an rng is given."""
  if mode != 'train' or rate == 0.0:
    return 0.0
  if rng is None:
    raise ArgumentError(f"{who}: mode='train' with dropout={rate} needs an rng, got rng=None; "
                        f"pass a JAX key or use mode='eval'")
  return rate


# ------------------------------------------------------------------ multi-head attention


def _split_heads(x, n_heads):
  """(batch, n, d) -> (batch, n_heads, n, d // n_heads)."""
  b, n, d = x.shape
  return x.reshape((b, n, n_heads, d // n_heads)).transpose((0, 2, 1, 3))


def _merge_heads(x):
  """(batch, n_heads, n, d_head) -> (batch, n, n_heads * d_head)."""
  b, h, n, d = x.shape
  return x.transpose((0, 2, 1, 3)).reshape((b, n, h * d))


class PureAttention(Layer):
  """Multi-head attention without projections: (q, k, v, mask) -> (y, mask).

  n_in = 4, n_out = 2. `q` is (batch, n_q, d), `k` (batch, n_k, d), `v`
  (batch, n_k, d_v), with `d` and `d_v` multiples of `n_heads`; `mask` is
  boolean, broadcastable to (batch, n_heads, n_q, n_k) (e.g. (batch, 1, 1, n_k)
  from `PaddingMask`). `y` is (batch, n_q, d_v); the mask passes through.

  Args:
    n_heads: number of heads; each works on `d // n_heads` features.
    dropout: dropout rate on the attention weights (training only).
    mode: 'train', 'eval' or 'predict'.
  """

  def __init__(self, n_heads=1, dropout=0.0, mode='train'):
    check_int('PureAttention', 'n_heads', n_heads, 1)
    check_rate('PureAttention', 'dropout', dropout)
    check_mode('PureAttention', 'mode', mode)
    super().__init__(n_in=4, n_out=2, name='PureAttention')
    self._n_heads, self._dropout, self._mode = n_heads, float(dropout), mode

  def forward_with_state(self, x, weights, state, rng):
    q, k, v, mask = x
    for name, a in (('queries', q), ('keys', k), ('values', v)):
      if a.ndim != 3 or a.shape[-1] % self._n_heads:
        raise ArgumentError(f'PureAttention: {name} must be (batch, length, d) with d a multiple '
                            f'of n_heads={self._n_heads}, got shape {a.shape}')
    rate = _active_rate(self.name, self._dropout, self._mode, rng)
    heads = [_split_heads(a, self._n_heads) for a in (q, k, v)]
    y = dot_product_attention(*heads, mask, dropout=rate, rng=rng)
    return (_merge_heads(y), mask), state


def AttentionQKV(d_feature, n_heads=1, dropout=0.0, mode='train', *, use_bias=True):  # pylint: disable=invalid-name
  """Multi-head attention of given queries, keys, values: (q, k, v, mask) -> (y, mask).

  n_in = 4, n_out = 2. Dense projections of q, k and v to `d_feature`, then
  `PureAttention`, then a Dense output projection: `y` is (batch, n_q,
  d_feature). Weights: four `Dense(d_feature)`.

  Args:
    d_feature: Width of the projections and of `y`; a multiple of `n_heads`.
    n_heads, dropout, mode: As for `PureAttention`.
    use_bias: Whether the projections have biases (they do in Trax 1.2 and 1.4).
  """
  check_int('AttentionQKV', 'd_feature', d_feature, 1)
  check_int('AttentionQKV', 'n_heads', n_heads, 1)
  _check_heads('AttentionQKV', d_feature, n_heads)
  check_flag('AttentionQKV', 'use_bias', use_bias)
  dense = lambda: Dense(d_feature, use_bias=use_bias)
  return Serial(Parallel(dense(), dense(), dense()),
                PureAttention(n_heads=n_heads, dropout=dropout, mode=mode), dense(),
                name='AttentionQKV')


def Attention(d_feature, n_heads=1, dropout=0.0, mode='train', *, use_bias=True):  # pylint: disable=invalid-name
  """Multi-head self-attention with a mask: (x, mask) -> (y, mask).

  n_in = 2, n_out = 2; (batch, n, d) -> (batch, n, d_feature). `mask` is a
  boolean array broadcastable to (batch, n_heads, n, n), e.g. from
  `PaddingMask`. The same in every mode (no cache). Weights: those of
  `AttentionQKV`, whose arguments these are.

  Args:
    d_feature, n_heads, dropout, mode, use_bias: As for `AttentionQKV`.
  """
  return Serial(Select([0, 0, 0]), AttentionQKV(d_feature, n_heads, dropout, mode,
                                                use_bias=use_bias), name='Attention')


# ------------------------------------------------------------------ causal attention


class DotProductCausalAttention(PredictLength, Layer):
  """Causal attention on per-head arrays: (q, k, v) -> y.

  n_in = 3, n_out = 1; (..., n, d), (..., n, d), (..., n, d_v) -> (..., n, d_v).
  Position i attends to positions 0..i.

  In predict mode the state is `(keys, values, position)`: caches of shape
  (..., max_len, d) and (..., max_len, d_v) (leading axes from the input
  signature) and an int32 counter. Each call writes its `n` new keys and
  values at the counter, attends over the cache up to each query's own
  position, and advances the counter by `n`. Past `max_len`: see the module
  docstring.

  Args:
    dropout: dropout rate on the attention weights (training only).
    max_len: cache length in predict mode.
    mode: 'train', 'eval' or 'predict'.
    max_inference_length: Trax 1.4's name for `max_len` (give one of the two).
  """

  def __init__(self, dropout=0.0, max_len=2048, mode='train', max_inference_length=None):
    check_rate('DotProductCausalAttention', 'dropout', dropout)
    if max_inference_length is not None:
      if max_len not in (2048, max_inference_length):
        raise ArgumentError(f'DotProductCausalAttention: give max_len or max_inference_length, '
                            f'not both (got {max_len} and {max_inference_length})')
      max_len = max_inference_length
    check_int('DotProductCausalAttention', 'max_len', max_len, 1)
    check_mode('DotProductCausalAttention', 'mode', mode)
    super().__init__(n_in=3, n_out=1, name='DotProductCausalAttention')
    self._dropout, self._max_len, self._mode = float(dropout), max_len, mode

  def check_predict_mode(self, who):
    """Raises `ArgumentError` naming `who` unless this layer was built with mode='predict'."""
    if self._mode != 'predict':
      raise ArgumentError(f"{who}: the model must be built with mode='predict', but its "
                          f"{self.name} has mode={self._mode!r}")

  def init_weights_and_state(self, input_signature, rng):
    del rng
    if self._mode != 'predict':
      return (), ()
    _, k, v = input_signature

    def cache(sig):
      return jnp.zeros(sig.shape[:-2] + (self._max_len, sig.shape[-1]), sig.dtype)

    return (), (cache(k), cache(v), jnp.zeros((), jnp.int32))

  def forward_with_state(self, x, weights, state, rng):
    q, k, v = x
    if q.ndim < 2 or q.shape[-2] != k.shape[-2] or k.shape[-2] != v.shape[-2]:
      raise ArgumentError(f'{self.name}: q, k, v must be (..., n, d) with the same n, got shapes '
                          f'{q.shape}, {k.shape}, {v.shape}')
    rate = _active_rate(self.name, self._dropout, self._mode, rng)
    n = q.shape[-2]
    if self._mode != 'predict':
      mask = jnp.tril(jnp.ones((n, n), bool))
      return dot_product_attention(q, k, v, mask, rate, rng), state
    return self._predict(q, k, v, state)

  def _predict(self, q, k, v, state):
    keys, values, pos = state
    n = q.shape[-2]
    if n > self._max_len:
      raise ArgumentError(overflow_message(self.name, 0, n, self._max_len))
    if keys.shape[:-2] != k.shape[:-2]:
      raise ArgumentError(f'{self.name}: the predict cache was made for leading axes '
                          f'{keys.shape[:-2]} (batch x heads), got inputs of shape {k.shape}; '
                          f're-initialise the model with this batch size')
    bad = check_positions(pos, n, self._max_len, self.name)
    start = (0,) * (k.ndim - 2) + (pos, 0)
    k, v = k.astype(keys.dtype), v.astype(values.dtype)
    if bad is not None:  # an overflow writes back what is there: a donated cache stays intact
      k = jnp.where(bad, jax.lax.dynamic_slice(keys, start, k.shape), k)
      v = jnp.where(bad, jax.lax.dynamic_slice(values, start, v.shape), v)
    keys = jax.lax.dynamic_update_slice(keys, k, start)
    values = jax.lax.dynamic_update_slice(values, v, start)
    query_pos = pos + jnp.arange(n)[:, None]
    mask = jnp.arange(self._max_len)[None, :] <= query_pos
    y = dot_product_attention(q, keys, values, mask)
    return poison(y, bad), (keys, values, pos + n)


def _heads_fns(n_heads):
  """(split, merge): (batch, n, h * d) <-> (batch * n_heads, n, d)."""

  def split(x):
    heads = _split_heads(x, n_heads)
    return heads.reshape((-1,) + heads.shape[2:])

  def merge(x):
    return _merge_heads(x.reshape((-1, n_heads) + x.shape[1:]))

  return split, merge


def _causal_attention(d_feature, n_heads, d_key, d_value, core, share_qk, use_bias):
  """Projections to heads, the causal core, heads merged, the output projection."""
  split, merge = _heads_fns(n_heads)

  def projection(width):
    return Serial(Dense(width, use_bias=use_bias), Fn('SplitIntoHeads', split))

  if share_qk:
    heads = [Branch(projection(n_heads * d_key), projection(n_heads * d_value)), Select([0, 0, 1])]
  else:
    heads = Branch(projection(n_heads * d_key), projection(n_heads * d_key),
                   projection(n_heads * d_value))
  return Serial(heads, core, Fn('MergeHeads', merge), Dense(d_feature, use_bias=use_bias),
                name='CausalAttention')


def CausalAttention(  # pylint: disable=invalid-name
    d_feature, n_heads=1, d_attention_key=None, d_attention_value=None,
    attention_type=DotProductCausalAttention, share_qk=False, mode='train', *, dropout=0.0,
    max_len=2048, use_bias=False):
  """Multi-head causal self-attention (Trax 1.2's form): (batch, n, d) -> (batch, n, d_feature).

  n_in = n_out = 1. Projections of the input to per-head queries, keys and
  values, the causal core per head, heads merged, an output projection to
  `d_feature`. Weights: the projections' kernels, q, k (unless shared), v,
  output; no biases by default, as in Trax 1.2 (Trax 1.4's form: `CausalAttention14`).

  Args:
    d_feature: Output width; a multiple of `n_heads` unless both head sizes are given.
    n_heads: Number of heads.
    d_attention_key, d_attention_value: Features per head of queries and keys,
      and of values; None means `d_feature // n_heads`.
    attention_type: The core's class, called with `mode=mode` (and with
      `dropout` and `max_len` too if it is a `DotProductCausalAttention`).
    share_qk: If true, the queries are the keys (one projection fewer).
    mode: 'train', 'eval' or 'predict' (the core keeps a cache in 'predict').
    dropout: Attention-weight dropout of the core (Trax 1.2 has none: 0).
    max_len: The core's predict-mode cache length (Trax 1.2 hard-coded 2048).
    use_bias: Whether the four projections have biases.
  """
  who = 'CausalAttention'
  check_int(who, 'd_feature', d_feature, 1)
  check_int(who, 'n_heads', n_heads, 1)
  check_flag(who, 'share_qk', share_qk)
  check_flag(who, 'use_bias', use_bias)
  if d_attention_key is None or d_attention_value is None:
    _check_heads(who, d_feature, n_heads)
  d_key = check_int(who, 'd_attention_key', d_attention_key or d_feature // n_heads, 1)
  d_value = check_int(who, 'd_attention_value', d_attention_value or d_feature // n_heads, 1)
  if not callable(attention_type):
    raise ArgumentError(f'{who}: attention_type must be a layer class such as '
                        f'DotProductCausalAttention, got {attention_type!r}')
  if isinstance(attention_type, type) and issubclass(attention_type, DotProductCausalAttention):
    core = attention_type(dropout=dropout, max_len=max_len, mode=mode)
  else:
    core = attention_type(mode=mode)
  return _causal_attention(d_feature, n_heads, d_key, d_value, core, share_qk, use_bias)


def CausalAttention14(  # pylint: disable=invalid-name
    d_feature, n_heads=1, dropout=0.0, max_inference_length=2048, use_dconv=False, mode='train'):
  """Trax 1.4's `CausalAttention` (its signature): (batch, n, d) -> (batch, n, d_feature).

  n_in = n_out = 1. As `CausalAttention`, with biases on the four projections
  (Trax 1.4's weights: `(w, b)` each), heads of `d_feature // n_heads`.

  Args:
    d_feature, n_heads, mode: As for `CausalAttention`.
    dropout: Dropout rate on the attention weights (training only).
    max_inference_length: The predict-mode cache length.
    use_dconv: Must be false: Trax's depthwise convolution after each
      projection is not supported (`ArgumentError`).
  """
  check_int('CausalAttention', 'd_feature', d_feature, 1)
  check_int('CausalAttention', 'n_heads', n_heads, 1)
  _check_heads('CausalAttention', d_feature, n_heads)
  if use_dconv:
    raise ArgumentError('CausalAttention: use_dconv=True is not supported by minitrax; pass '
                        'use_dconv=False')
  check_int('CausalAttention', 'max_inference_length', max_inference_length, 1)
  core = DotProductCausalAttention(dropout=dropout, max_len=max_inference_length, mode=mode)
  d_head = d_feature // n_heads
  return _causal_attention(d_feature, n_heads, d_head, d_head, core, False, True)


# ------------------------------------------------------------------ positions and masks


def ShiftRight(n_positions=1, mode='train'):  # pylint: disable=invalid-name
  """Shifts sequences right by `n_positions` along axis 1, padding with zeros.

  `(batch, n, ...) -> (batch, n, ...)`: `y[:, i] = x[:, i - n_positions]`, 0
  for `i < n_positions`. The identity in predict mode (the decoder then feeds
  the start symbol itself).

  Args:
    n_positions: Positive int, the shift.
    mode: 'train', 'eval' or 'predict'.
  """
  check_int('ShiftRight', 'n_positions', n_positions, 1)
  check_mode('ShiftRight', 'mode', mode)

  def f(x):
    if mode == 'predict':
      return x
    if x.ndim < 2:
      raise ArgumentError(f'ShiftRight: input must be (batch, length, ...), got shape {x.shape}')
    pad = [(0, 0)] * x.ndim
    pad[1] = (n_positions, 0)
    return jnp.pad(x, pad)[:, :x.shape[1]]

  return Fn('ShiftRight', f)


def PaddingMask(pad=0):  # pylint: disable=invalid-name
  """Marks non-padding ids: (batch, n) int -> (batch, 1, 1, n) bool (True = content).

  Args:
    pad: The padding id.
  """

  def f(x):
    if x.ndim != 2:
      raise ArgumentError(f'PaddingMask: input must be (batch, length), got shape {x.shape}')
    return (x != pad).reshape((x.shape[0], 1, 1, x.shape[1]))

  return Fn('PaddingMask', f)


def EncoderDecoderMask():  # pylint: disable=invalid-name
  """Encoder padding mask per decoder position: (dec (b, n_d, d), mask) -> (b, 1, n_d, n_e)."""

  def f(decoder_input, mask):
    if decoder_input.ndim != 3:
      raise ArgumentError(f'EncoderDecoderMask: decoder input must be (batch, length, d), got '
                          f'shape {decoder_input.shape}')
    b, n_e = mask.shape[0], mask.shape[-1]
    return jnp.broadcast_to(mask.reshape((b, 1, 1, n_e)), (b, 1, decoder_input.shape[1], n_e))

  return Fn('EncoderDecoderMask', f)


__all__ = [
    'Attention', 'AttentionQKV', 'PureAttention', 'CausalAttention', 'DotProductCausalAttention',
    'CausalAttention14', 'PositionalEncoding', 'PositionalEncoding14', 'ShiftRight', 'PaddingMask',
    'EncoderDecoderMask', 'dot_product_attention', 'sinusoidal_encoding', 'check_positions'
]
