"""Pooling layers: MaxPool, AvgPool, SumPool over the spatial axes.

Each reduces windows of shape `pool_size` over the axes between the first
(batch) and the last (channels) of its input, e.g. `(batch, height, width,
channels)` for NHWC images, with `jax.lax.reduce_window`. As in Trax, `strides`
default to 1 along every window axis (overlapping windows), not to
`pool_size`; pass `strides=pool_size` for the usual non-overlapping pooling.
"""

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.errors import ArgumentError
from minitrax.layers.base import Fn


def _check_args(name, pool_size, strides, padding):
  """Validated `(pool_size, strides, padding)`; strides default to all ones."""

  def int_tuple(arg, value, n=None):
    message = f'{name}: {arg} must be a non-empty tuple of positive ints'
    message += f' of length {n}' if n else ''
    if (not isinstance(value, (tuple, list)) or not value or (n and len(value) != n) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in value)):
      raise ArgumentError(f'{message}, got {value!r}')
    return tuple(int(v) for v in value)

  pool_size = int_tuple('pool_size', pool_size)
  strides = (1,) * len(pool_size) if strides is None else \
      int_tuple('strides', strides, len(pool_size))
  if padding not in ('VALID', 'SAME'):
    raise ArgumentError(f"{name}: padding must be 'VALID' or 'SAME', got {padding!r}")
  return pool_size, strides, padding


def _reduce(name, x, init, reducer, pool_size, strides, padding):
  """`lax.reduce_window` over the spatial axes of `(batch, spatial..., channels)`."""
  if x.ndim != len(pool_size) + 2:
    raise ArgumentError(f'{name}: pool_size {pool_size} needs inputs of rank '
                        f'{len(pool_size) + 2} (batch, {len(pool_size)} spatial, channels), '
                        f'got shape {x.shape}')
  dims, steps = (1,) + pool_size + (1,), (1,) + strides + (1,)
  return jax.lax.reduce_window(x, np.asarray(init, x.dtype), reducer, dims, steps, padding)


def _lowest(dtype):
  """The identity of max for `dtype`: -inf for floats, the minimum for ints."""
  if jnp.issubdtype(dtype, jnp.floating):
    return -np.inf
  return jnp.iinfo(dtype).min


def MaxPool(pool_size=(2, 2), strides=None, padding='VALID'):  # pylint: disable=invalid-name
  """Maximum over each window: n_in = n_out = 1.

  `(batch, *spatial, channels) -> (batch, *spatial', channels)` with
  `spatial'[i] = (spatial[i] - pool_size[i]) // strides[i] + 1` for VALID and
  `ceil(spatial[i] / strides[i])` for SAME (padding never wins the max).

  Args:
    pool_size: window shape, a tuple with one int per spatial axis.
    strides: step between windows, like `pool_size`; default all ones.
    padding: 'VALID' (full windows only) or 'SAME' (pad the edges).
  """
  pool_size, strides, padding = _check_args('MaxPool', pool_size, strides, padding)

  def f(x):
    return _reduce('MaxPool', x, _lowest(x.dtype), jax.lax.max, pool_size, strides, padding)

  return Fn(_name('MaxPool', pool_size), f)


def SumPool(pool_size=(2, 2), strides=None, padding='VALID'):  # pylint: disable=invalid-name
  """Sum over each window: n_in = n_out = 1; shapes as in `MaxPool`.

  With SAME padding the padded positions add zero.

  Args:
    pool_size: window shape, a tuple with one int per spatial axis.
    strides: step between windows, like `pool_size`; default all ones.
    padding: 'VALID' (full windows only) or 'SAME' (pad the edges).
  """
  pool_size, strides, padding = _check_args('SumPool', pool_size, strides, padding)

  def f(x):
    return _reduce('SumPool', x, 0, jax.lax.add, pool_size, strides, padding)

  return Fn(_name('SumPool', pool_size), f)


def AvgPool(pool_size=(2, 2), strides=None, padding='VALID'):  # pylint: disable=invalid-name
  """Mean over each window: n_in = n_out = 1; shapes as in `MaxPool`.

  With SAME padding, as in Trax, padded positions are not counted: an edge
  window's sum is divided by the number of real input elements it covers.
  Integer inputs give float32 outputs.

  Args:
    pool_size: window shape, a tuple with one int per spatial axis.
    strides: step between windows, like `pool_size`; default all ones.
    padding: 'VALID' (full windows only) or 'SAME' (pad the edges).
  """
  pool_size, strides, padding = _check_args('AvgPool', pool_size, strides, padding)

  def f(x):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(jnp.float32)
    sums = _reduce('AvgPool', x, 0, jax.lax.add, pool_size, strides, padding)
    ones = jnp.ones((1,) + x.shape[1:-1] + (1,), x.dtype)
    counts = _reduce('AvgPool', ones, 0, jax.lax.add, pool_size, strides, padding)
    return sums / counts

  return Fn(_name('AvgPool', pool_size), f)


def _name(kind, pool_size):
  """Trax-style layer name, e.g. 'MaxPool(2,2)'."""
  return kind + str(tuple(pool_size)).replace(' ', '')


__all__ = ['MaxPool', 'AvgPool', 'SumPool']
