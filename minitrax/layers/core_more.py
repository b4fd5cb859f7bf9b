"""More core layers from Trax 1.4: learned weights as a layer, uniform noise, reductions.

`Weights` and `RandomUniform` take no input (n_in = 0) and put one array on
the stack; `Min`, `Max` and `LogSumExp` reduce one axis like `Mean` and `Sum`;
`ThresholdToBinary`, `FlattenList` and `PrintShape` are Trax's small helpers.
"""

import logging

import jax
import jax.numpy as jnp

from minitrax.checks import check_axis, check_callable, check_flag, check_real, check_shape
from minitrax.errors import ArgumentError
from minitrax.layers.base import EMPTY, Fn, Layer
from minitrax.layers.fn import PureLayer

BATCH_AXIS = 'batch'  # the device axis of minitrax's data-parallel steps and of Accelerate


class Weights(Layer):
  """A learned array of a fixed shape: n_in = 0, n_out = 1, `() -> shape`.

  Weights: the array itself, `initializer(shape, rng)` at init (cast to
  bfloat16 when `use_bfloat16`). Named `Weights_{shape}`.

  Args:
    initializer: `init(shape, rng) -> array`, e.g. `RandomNormalInitializer()`.
    shape: shape of the array; default `()` (a scalar).
    use_bfloat16: keep the weights in bfloat16 instead of the initializer's dtype.
  """

  def __init__(self, initializer, shape=tuple(), use_bfloat16=False):
    check_callable('Weights', 'initializer', initializer, 'a function init(shape, rng)')
    self._shape = check_shape('Weights', 'shape', shape)
    self._use_bfloat16 = check_flag('Weights', 'use_bfloat16', use_bfloat16)
    super().__init__(n_in=0, n_out=1, name=f'Weights_{shape}')
    self._initializer = initializer

  def init_weights_and_state(self, input_signature, rng):
    del input_signature
    w = jnp.asarray(self._initializer(self._shape, rng))
    if w.shape != self._shape:
      raise ArgumentError(f'{self.name}: the initializer returned shape {w.shape}, expected '
                          f'{self._shape}')
    return (w.astype(jnp.bfloat16) if self._use_bfloat16 else w), EMPTY

  def forward(self, x, weights):
    del x
    return weights


def _synced_key(rng):
  """`rng` made equal on all devices of the 'batch' axis (sum of their keys), if it is bound."""
  typed = jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
  data = jax.random.key_data(rng) if typed else rng
  try:
    data = jax.lax.psum(data, BATCH_AXIS)
  except NameError:  # not inside a mapping over devices: nothing to sync
    return rng
  return jax.random.wrap_key_data(data, impl=jax.random.key_impl(rng)) if typed else data


class RandomUniform(Layer):
  """Uniform random values in `[min_val, max_val)`: n_in = 0, n_out = 1, `() -> shape`.

  Draws from the rng given to the call (a new draw per key); no weights.

  Args:
    min_val: lower end of the range.
    max_val: upper end of the range.
    shape: shape of the output; default `()`.
    dtype: a floating-point dtype.
    sync: draw the same values on every device when run data-parallel
      (inside minitrax's steps or `Accelerate`, over the 'batch' axis).
  """

  def __init__(self, min_val=0.0, max_val=1.0, shape=(), dtype=jnp.float32, sync=False):
    check_real('RandomUniform', 'min_val', min_val, finite=True)
    check_real('RandomUniform', 'max_val', max_val, finite=True)
    if not min_val <= max_val:
      raise ArgumentError(f'RandomUniform: min_val must not exceed max_val, got {min_val} and '
                          f'{max_val}')
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ArgumentError(f'RandomUniform: dtype must be a floating-point type, got {dtype!r}')
    self._shape = check_shape('RandomUniform', 'shape', shape)
    self._sync = check_flag('RandomUniform', 'sync', sync)
    super().__init__(n_in=0, n_out=1, name='RandomUniform')
    self._min_val, self._max_val, self._dtype = min_val, max_val, dtype

  def forward_with_state(self, x, weights, state, rng):
    del x, weights
    if rng is None:
      raise ArgumentError('RandomUniform: needs a JAX key to draw from, got rng=None')
    rng = _synced_key(rng) if self._sync else rng
    return jax.random.uniform(rng, self._shape, self._dtype, self._min_val, self._max_val), state


def Min(axis=-1, keepdims=False):  # pylint: disable=invalid-name
  """Minimum over `axis`: (..., n, ...) -> (..., ...) (or (..., 1, ...) with keepdims).

  Args:
    axis: the axis to reduce (may be negative); None for all axes.
    keepdims: keep the reduced axis, with size 1.
  """
  check_axis('Min', 'axis', axis, allow_none=True)
  return Fn('Min', lambda x: jnp.min(x, axis=axis, keepdims=keepdims))


def Max(axis=-1, keepdims=False):  # pylint: disable=invalid-name
  """Maximum over `axis`: (..., n, ...) -> (..., ...) (or (..., 1, ...) with keepdims).

  Args:
    axis: the axis to reduce (may be negative); None for all axes.
    keepdims: keep the reduced axis, with size 1.
  """
  check_axis('Max', 'axis', axis, allow_none=True)
  return Fn('Max', lambda x: jnp.max(x, axis=axis, keepdims=keepdims))


def LogSumExp(axis=-1):  # pylint: disable=invalid-name
  """`log(sum(exp(x)))` over `axis`, kept as an axis of size 1: (..., n, ...) -> (..., 1, ...).

  Args:
    axis: the axis to reduce (may be negative).
  """
  check_axis('LogSumExp', 'axis', axis)
  return Fn('LogSumExp', lambda x: jax.nn.logsumexp(x, axis=axis, keepdims=True))


def ThresholdToBinary(threshold=.5):  # pylint: disable=invalid-name
  """`x > threshold` as int32 0/1, same shape (e.g. probabilities to labels).

  Args:
    threshold: a real number; values above it give 1.
  """
  check_real('ThresholdToBinary', 'threshold', threshold)
  return Fn('ThresholdToBinary', lambda x: (x > threshold).astype(jnp.int32))


def _leaves(x):
  if isinstance(x, (list, tuple)):
    for item in x:
      yield from _leaves(item)
  else:
    yield x


def FlattenList():  # pylint: disable=invalid-name
  """One nested list/tuple of arrays -> the tuple of its leaves, in order (n_in = n_out = 1)."""
  return Fn('FlattenList', lambda x: tuple(_leaves(x)))


def print_shapes(msg, arrays):
  """Prints and logs `PrintShape: <msg>: [<shape>[<dtype>], ...]` for `arrays`."""
  info = f'PrintShape: {msg}: [' + ', '.join(f'{x.shape}[{x.dtype}]' for x in arrays) + ']'
  print(info)
  logging.info(info)


def PrintShape(n_in=1, msg=''):  # pylint: disable=invalid-name
  """Identity on `n_in` inputs that prints (and logs) their shapes and dtypes at each trace.

  Args:
    n_in: number of stack items shown and passed on.
    msg: text printed before the shapes.
  """

  def show(xs):
    print_shapes(msg, xs if n_in > 1 else (xs,))
    return xs

  return PureLayer(show, n_in=n_in, n_out=n_in, name=f'PrintShape_{n_in}')


__all__ = [
    'Weights', 'RandomUniform', 'Min', 'Max', 'LogSumExp', 'ThresholdToBinary', 'FlattenList',
    'PrintShape'
]
