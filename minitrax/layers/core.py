"""Core layers: Dense, Embedding, Dropout and small array functions as layers.

Names, arguments and defaults follow Trax (`trax/layers/core.py`). Every layer
here takes one input and gives one output (n_in = n_out = 1).

Token ids are checked, never clamped: `check_ids` raises a `ValueError` for
concrete ids outside `[0, upper)`. Under `jax.jit` it only returns a flag and
`poison` turns the output into NaN (a compiled program holds no host
callback: one would slow down every call of it). The friendly entry points
diagnose the NaN: `layer(x)` re-runs the layer eagerly and raises the
`LayerError` with the same message, and so does the `Trainer` for the step
whose loss became NaN.
"""

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.checks import (check_axis, check_callable, check_int, check_mode, check_rate,
                             check_real)
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import Fn, Layer
from minitrax.layers.initializers import GlorotUniformInitializer, RandomNormalInitializer
from minitrax.layers.masks import keep_mask

# ------------------------------------------------------------------ argument checks

_INIT_FN = 'a function init(shape, rng)'  # what an initializer argument must be


def _need_rng(rng, who):
  if rng is None:
    raise ArgumentError(f'{who}: initialising weights needs a JAX key, got rng=None')


# ------------------------------------------------------------------ id checks


def _ids_message(what, upper, lo, hi):
  return f'{what}: ids must lie in [0, {upper}), got values from {lo} to {hi}'


def check_ids(ids, upper, what):
  """Checks that integer `ids` lie in `[0, upper)`; never clamps them.

  Eager (concrete ids): raises `ValueError('<what>: ids must lie in [0, upper),
  got values from <min> to <max>')` and otherwise returns None. Traced ids
  (under `jax.jit`, `vmap`, `eval_shape`): returns a scalar boolean `bad`
  only (no host callback, which would slow down every call of the compiled
  program); the caller must poison its output with `poison(y, bad)`, so a
  bad id gives NaN, never a silently clamped lookup. `Layer.__call__` and
  the `Trainer` re-run eagerly on NaN to raise the message above.

  Args:
    ids: integer array of any shape.
    upper: int, the exclusive upper bound (a vocabulary size).
    what: name used in the message, e.g. the layer name `Embedding_32_8`.

  Returns:
    None for concrete ids, else a traced boolean scalar.
  """
  if not hasattr(ids, 'dtype'):
    ids = np.asarray(ids)
  if not jnp.issubdtype(ids.dtype, jnp.integer):
    raise ArgumentTypeError(f'{what}: ids must be integers, got dtype {ids.dtype}')
  traced = isinstance(ids, jax.core.Tracer)
  if ids.size == 0:
    return jnp.zeros((), bool) if traced else None
  if not traced:
    values = np.asarray(ids)
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi >= upper:
      raise ArgumentError(_ids_message(what, upper, lo, hi))
    return None
  return (jnp.min(ids) < 0) | (jnp.max(ids) >= upper)


def poison(y, bad):
  """`y`, or `y` filled with NaN where the flag `bad` (from `check_ids`) is true.

  Args:
    y: a floating-point array.
    bad: a boolean scalar (from `check_ids`), or None when the ids were
      checked eagerly (returns `y` unchanged).
  """
  if bad is None:
    return y
  if not jnp.issubdtype(y.dtype, jnp.inexact):
    raise ArgumentTypeError(f'poison: can only fill floating-point outputs with NaN, got {y.dtype}')
  return jnp.where(bad, jnp.nan, y).astype(y.dtype)


# ------------------------------------------------------------------ layers with weights


class Dense(Layer):
  """Fully connected layer `y = x w + b`: (..., d_in) -> (..., n_units).

  Weights are `(w, b)` with `w` of shape (d_in, n_units) and `b` of shape
  (n_units,); with `use_bias=False` they are `w` alone (a bare array, as in
  Trax 1.2 and later). A `Dense` object used twice in one model shares its
  weights.

  Args:
    n_units: output width.
    kernel_initializer: `init(shape, rng)` for `w`; Glorot uniform.
    bias_initializer: `init(shape, rng)` for `b`; normal with stddev 1e-6.
    use_bias: add `b` (affine map) or not (linear map).
  """

  def __init__(self, n_units, kernel_initializer=GlorotUniformInitializer(),
               bias_initializer=RandomNormalInitializer(1e-6), use_bias=True):
    check_int('Dense', 'n_units', n_units, 1)
    check_callable('Dense', 'kernel_initializer', kernel_initializer, _INIT_FN)
    check_callable('Dense', 'bias_initializer', bias_initializer, _INIT_FN)
    super().__init__(name=f'Dense_{n_units}')
    self._n_units = n_units
    self._kernel_initializer = kernel_initializer
    self._bias_initializer = bias_initializer
    self._use_bias = bool(use_bias)

  def init_weights_and_state(self, input_signature, rng):
    if input_signature.ndim == 0:
      raise ArgumentError(f'{self.name}: input must have at least one axis (..., d_in), '
                          f'got a scalar of shape {input_signature.shape}')
    _need_rng(rng, self.name)
    rng_w, rng_b = jax.random.split(rng)
    w = self._kernel_initializer((input_signature.shape[-1], self._n_units), rng_w)
    if not self._use_bias:
      return w, ()
    return (w, self._bias_initializer((self._n_units,), rng_b)), ()

  def forward(self, x, weights):
    w, b = weights if self._use_bias else (weights, None)
    if jnp.ndim(x) == 0 or x.shape[-1] != w.shape[0]:
      raise ArgumentError(f'{self.name}: input shape {jnp.shape(x)} does not end in '
                          f'd_in={w.shape[0]} of the weights {w.shape}')
    y = jnp.dot(x, w)
    return y if b is None else y + jnp.broadcast_to(b, y.shape)


class Embedding(Layer):
  """Looks up a learned vector per integer id: (...) -> (..., d_feature).

  Weights are one table of shape (vocab_size, d_feature). Ids outside
  `[0, vocab_size)` are an error (see `check_ids`): eagerly a `ValueError`;
  under `jax.jit` the output is NaN, and `layer(x)` then raises the same
  message. (Trax clamped such ids silently.)

  Args:
    vocab_size: number of ids.
    d_feature: length of each vector.
    kernel_initializer: `init(shape, rng)` for the table; N(0, 1).
  """

  def __init__(self, vocab_size, d_feature, kernel_initializer=RandomNormalInitializer(1.0)):
    check_int('Embedding', 'vocab_size', vocab_size, 1)
    check_int('Embedding', 'd_feature', d_feature, 1)
    check_callable('Embedding', 'kernel_initializer', kernel_initializer, _INIT_FN)
    super().__init__(name=f'Embedding_{vocab_size}_{d_feature}')
    self._vocab_size = vocab_size
    self._d_feature = d_feature
    self._kernel_initializer = kernel_initializer

  def init_weights_and_state(self, input_signature, rng):
    del input_signature
    _need_rng(rng, self.name)
    return self._kernel_initializer((self._vocab_size, self._d_feature), rng), ()

  def forward(self, x, weights):
    bad = check_ids(x, self._vocab_size, self.name)
    return poison(jnp.take(weights, x, axis=0), bad)


# ------------------------------------------------------------------ Dropout


class Dropout(Layer):
  """Zeroes each input value with probability `rate` in training: (...) -> (...).

  Inverted dropout: kept values are scaled by `1 / (1 - rate)`, so the
  expected output equals the input. The identity unless `mode == 'train'`
  and `rate > 0`. Axes in `shared_axes` get one mask entry broadcast along
  them (e.g. `shared_axes=[1]` drops whole time steps' features alike).
  Needs an rng when active; no weights, no state.

  Args:
    rate: drop probability, 0 <= rate < 1.
    shared_axes: axes along which the mask is shared; default none.
    mode: 'train', 'eval' or 'predict'.
  """

  def __init__(self, rate=0.0, shared_axes=None, mode='train'):
    check_rate('Dropout', 'rate', rate)
    check_mode('Dropout', 'mode', mode)
    shared_axes = () if shared_axes is None else tuple(shared_axes)
    for axis in shared_axes:
      check_axis('Dropout', 'axis', axis)
    super().__init__(name='Dropout')
    self._rate = float(rate)
    self._shared_axes = shared_axes
    self._mode = mode

  def forward_with_state(self, x, weights, state, rng):
    del weights
    if self._mode != 'train' or self._rate == 0.0:
      return x, state
    if rng is None:
      raise ArgumentError(f"Dropout: mode='train' with rate={self._rate} needs an rng to draw "
                          f"its mask, got rng=None; pass a JAX key (pure_fn(x, weights, state, "
                          f"jax.random.key(0))) or use mode='eval'")
    mask_shape = list(x.shape)
    for axis in self._shared_axes:
      if not -x.ndim <= axis < x.ndim:
        raise ArgumentError(f'Dropout: shared axis {axis} is out of range for input shape '
                            f'{x.shape}')
      mask_shape[axis] = 1
    keep_prob = 1.0 - self._rate
    keep = keep_mask(rng, keep_prob, tuple(mask_shape))
    return jnp.where(keep, x / keep_prob, jnp.zeros((), x.dtype)).astype(x.dtype), state


# ------------------------------------------------------------------ functions as layers


def Flatten(n_axes_to_keep=1):  # pylint: disable=invalid-name
  """Merges all axes after the first `n_axes_to_keep` into one.

  `(d_1, ..., d_k, r_1, ..., r_m) -> (d_1, ..., d_k, r_1 * ... * r_m)`, e.g.
  `Flatten(2)` maps (2, 3, 5, 7) to (2, 3, 35).

  Args:
    n_axes_to_keep: int >= 0, the leading axes kept; the input rank must
      exceed it.
  """
  check_int('Flatten', 'n_axes_to_keep', n_axes_to_keep, 0)

  def f(x):
    if x.ndim <= n_axes_to_keep:
      raise ArgumentError(f'Flatten: input rank {x.ndim} (shape {x.shape}) must exceed '
                          f'n_axes_to_keep={n_axes_to_keep}')
    return jnp.reshape(x, x.shape[:n_axes_to_keep] + (-1,))

  return Fn(f'Flatten_keep{n_axes_to_keep}', f)


def Mean(axis=-1, keepdims=False):  # pylint: disable=invalid-name
  """Mean over `axis`: (..., n, ...) -> (..., ...) (or (..., 1, ...) with keepdims).

  Args:
    axis: the axis to reduce (may be negative); None for all axes.
    keepdims: keep the reduced axis, with size 1.
  """
  check_axis('Mean', 'axis', axis, allow_none=True)
  return Fn('Mean', lambda x: jnp.mean(x, axis=axis, keepdims=keepdims))


def Sum(axis=-1, keepdims=False):  # pylint: disable=invalid-name
  """Sum over `axis` (all axes for None): (..., n, ...) -> (..., ...).

  Args:
    axis: the axis to reduce (may be negative); None for all axes.
    keepdims: keep the reduced axis, with size 1.
  """
  check_axis('Sum', 'axis', axis, allow_none=True)
  return Fn('Sum', lambda x: jnp.sum(x, axis=axis, keepdims=keepdims))


def log_softmax(x, axis=-1):
  """`x - logsumexp(x)` along `axis`: log-probabilities from logits.

  Args:
    x: the logits, an array of any shape.
    axis: the axis normalised over.
  """
  return x - jax.nn.logsumexp(x, axis=axis, keepdims=True)


def LogSoftmax(axis=-1):  # pylint: disable=invalid-name
  """Log-probabilities along `axis`: `x - logsumexp(x)`; shape unchanged.

  Args:
    axis: the axis normalised over (may be negative).
  """
  check_axis('LogSoftmax', 'axis', axis)
  return Fn('LogSoftmax', lambda x: log_softmax(x, axis))


def Softmax(axis=-1):  # pylint: disable=invalid-name
  """Probabilities along `axis`: `exp(x - logsumexp(x))`; shape unchanged.

  Args:
    axis: the axis normalised over (may be negative).
  """
  check_axis('Softmax', 'axis', axis)
  return Fn('Softmax', lambda x: jnp.exp(log_softmax(x, axis)))


def ToFloat():  # pylint: disable=invalid-name
  """Casts to float32; shape unchanged."""
  return Fn('ToFloat', lambda x: jnp.asarray(x).astype(jnp.float32))


def Negate():  # pylint: disable=invalid-name
  """`-x`; shape unchanged."""
  return Fn('Negate', lambda x: -x)


def StopGradient():  # pylint: disable=invalid-name
  """The identity in the forward pass; no gradient flows back through it."""
  return Fn('StopGradient', lambda x: jax.lax.stop_gradient(x))  # pylint: disable=unnecessary-lambda


def ArgMax(axis=-1):  # pylint: disable=invalid-name
  """Index of the largest value along `axis` (int32): (..., n) -> (...).

  Args:
    axis: the axis searched (may be negative).
  """
  check_axis('ArgMax', 'axis', axis)
  return Fn('ArgMax', lambda x: jnp.argmax(x, axis=axis))


def BinaryClassifier(threshold=0.5):  # pylint: disable=invalid-name
  """Category 1 where the input exceeds `threshold`, else 0 (int32); shape unchanged.

  For models giving one probability per item; e.g. `Accuracy(BinaryClassifier())`
  in Trax 1.4's form (from Trax 1.3's metrics).

  Args:
    threshold: a real number; values above it are category 1.
  """
  check_real('BinaryClassifier', 'threshold', threshold)
  return Fn('BinaryClassifier', lambda x: (x > threshold).astype(jnp.int32))


def MulticlassClassifier(axis=-1):  # pylint: disable=invalid-name
  """The category with the largest value along `axis` (int32): (..., n) -> (...).

  Trax 1.3's name for `ArgMax`.

  Args:
    axis: the axis searched (may be negative).
  """
  check_axis('MulticlassClassifier', 'axis', axis)
  return Fn('MulticlassClassifier', lambda x: jnp.argmax(x, axis=axis))


def one_hot(x, n_categories, dtype=jnp.float32):
  """One-hot vectors of integer ids: (...) -> (..., n_categories).

  Row `i` is 1 at position `x[i]` and 0 elsewhere; ids outside
  `[0, n_categories)` give all-zero rows (as in Trax).

  Args:
    x: integer ids, an array of any shape.
    n_categories: int >= 1, the length of each one-hot vector.
    dtype: the dtype of the result.
  """
  check_int('one_hot', 'n_categories', n_categories, 1)
  x = jnp.asarray(x)
  ids = jnp.arange(n_categories, dtype=x.dtype).reshape((1,) * x.ndim + (n_categories,))
  return (x[..., None] == ids).astype(dtype)


__all__ = [
    'Dense', 'Embedding', 'Dropout', 'Flatten', 'Mean', 'Sum', 'LogSoftmax', 'Softmax', 'ToFloat',
    'Negate', 'StopGradient', 'ArgMax', 'BinaryClassifier', 'MulticlassClassifier', 'one_hot',
    'log_softmax', 'check_ids', 'poison'
]
