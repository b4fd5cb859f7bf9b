"""Weight initializers: factories that return `init(shape, rng) -> array`.

Every factory validates its arguments once and returns a function

    init(shape, rng, dtype=jnp.float32) -> array of `shape`

drawing from the JAX key `rng` (same key, same values). Names, arguments and
defaults follow Trax (`trax/layers/initializers.py`).

Variance scaling (`ScaledInitializer` and the Glorot/LeCun/Kaiming family)
reads a kernel's fans from its shape: `in_dim` and `out_dim` name the input
and output axes (default -2 and -1, Dense's `(d_in, d_out)` layout) and every
other axis is a receptive-field axis that multiplies both fans, so a
convolution kernel `(h, w, c_in, c_out)` has `fan_in = h * w * c_in` and
`fan_out = h * w * c_out`. A vector of shape `(n,)` has both fans `n`; a
scalar has both fans 1.
"""

import math
import numbers
import os

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_non_negative, check_shape
from minitrax.errors import ArgumentError

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it makes
# the truncated draw have the requested variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978

_MODES = ('fan_in', 'fan_out', 'fan_avg')
_DISTRIBUTIONS = ('normal', 'uniform', 'truncated_normal')


def _is_number(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def get_fans(shape, out_dim=-1, in_dim=-2, nonreceptive_dims=()):
  """`(fan_in, fan_out)` of a kernel shape (see the module docstring).

  Args:
    shape: tuple of ints.
    out_dim: output axis (rank >= 2 only).
    in_dim: input axis (rank >= 2 only).
    nonreceptive_dims: axes that count in neither fan (e.g. per-position
      weights of a locally connected layer).

  Returns:
    Two Python ints.
  """
  rank = len(shape)
  if rank == 0:
    return 1, 1
  if rank == 1:
    return shape[0], shape[0]
  out_dim, in_dim = out_dim % rank, in_dim % rank
  if out_dim == in_dim:
    raise ArgumentError(f'get_fans: in_dim and out_dim must differ, both are axis {in_dim} '
                        f'of shape {tuple(shape)}')
  skip = {in_dim, out_dim} | {d % rank for d in nonreceptive_dims}
  receptive = math.prod(d for i, d in enumerate(shape) if i not in skip)
  return shape[in_dim] * receptive, shape[out_dim] * receptive


def RandomNormalInitializer(stddev=1e-2):  # pylint: disable=invalid-name
  """Draws from N(0, stddev^2).

  Args:
    stddev: float >= 0, the standard deviation.

  >>> w = RandomNormalInitializer(0.1)((3, 4), jax.random.key(0))
  """
  check_non_negative('RandomNormalInitializer', 'stddev', stddev)

  def init(shape, rng, dtype=jnp.float32):
    shape = check_shape('RandomNormalInitializer', 'shape', shape)
    return (stddev * jax.random.normal(rng, shape, jnp.float32)).astype(dtype)

  return init


def RandomUniformInitializer(lim=1.0):  # pylint: disable=invalid-name
  """Draws uniformly from [-lim, lim).

  Args:
    lim: float >= 0, the bound.
  """
  check_non_negative('RandomUniformInitializer', 'lim', lim)

  def init(shape, rng, dtype=jnp.float32):
    shape = check_shape('RandomUniformInitializer', 'shape', shape)
    return jax.random.uniform(rng, shape, jnp.float32, -lim, lim).astype(dtype)

  return init


def AtariConvInit(kernel_shape, rng, dtype=jnp.float32):  # pylint: disable=invalid-name
  """Trax's initializer of the Atari CNN's kernels: U(-s, s) with `s = 1 / sqrt(h * w * c_in)`.

  An initializer itself, not a factory.

  Args:
    kernel_shape: `(h, w, c_in, c_out)`.
    rng: JAX key.
    dtype: the dtype of the result.
  """
  shape = check_shape('AtariConvInit', 'kernel_shape', kernel_shape)
  if len(shape) != 4:
    raise ArgumentError(f'AtariConvInit: kernel_shape must be (height, width, in, out), got '
                        f'{shape}')
  std = 1.0 / math.sqrt(shape[0] * shape[1] * shape[2])
  return jax.random.uniform(rng, shape, jnp.float32, -std, std).astype(dtype)


def ScaledInitializer(out_dim, in_dim, scale, mode, distribution):  # pylint: disable=invalid-name
  """Variance scaling: draws with variance `scale / n`, `n` given by `mode`.

  `n` is `fan_in`, `fan_out` or `(fan_in + fan_out) / 2` for `mode` 'fan_in',
  'fan_out', 'fan_avg'. With `v = scale / n`, 'normal' draws N(0, v);
  'uniform' draws U(-sqrt(3 v), sqrt(3 v)); 'truncated_normal' draws a unit
  normal truncated to [-2, 2] scaled to variance v.

  Args:
    out_dim: output axis of the kernel.
    in_dim: input axis of the kernel.
    scale: positive float.
    mode: 'fan_in', 'fan_out' or 'fan_avg'.
    distribution: 'normal', 'uniform' or 'truncated_normal'.

  Returns:
    `init(shape, rng, dtype=jnp.float32, *, nonreceptive_dims=())`.
  """
  if not _is_number(scale) or scale <= 0:
    raise ArgumentError(f'ScaledInitializer: scale must be a positive float, got {scale!r}')
  if mode not in _MODES:
    raise ArgumentError(f'ScaledInitializer: mode must be one of {_MODES}, got {mode!r}')
  if distribution not in _DISTRIBUTIONS:
    raise ArgumentError(f'ScaledInitializer: distribution must be one of {_DISTRIBUTIONS}, '
                        f'got {distribution!r}')

  def init(shape, rng, dtype=jnp.float32, *, nonreceptive_dims=()):
    shape = check_shape('ScaledInitializer', 'shape', shape)
    fan_in, fan_out = get_fans(shape, out_dim, in_dim, nonreceptive_dims)
    n = {'fan_in': fan_in, 'fan_out': fan_out, 'fan_avg': (fan_in + fan_out) / 2}[mode]
    variance = scale / max(n, 1)
    if distribution == 'normal':
      w = math.sqrt(variance) * jax.random.normal(rng, shape, jnp.float32)
    elif distribution == 'uniform':
      lim = math.sqrt(3.0 * variance)
      w = jax.random.uniform(rng, shape, jnp.float32, -lim, lim)
    else:
      std = math.sqrt(variance) / _TRUNCATED_NORMAL_STD
      w = std * jax.random.truncated_normal(rng, -2.0, 2.0, shape, jnp.float32)
    return w.astype(dtype)

  return init


def GlorotNormalInitializer(out_dim=-1, in_dim=-2, scale=1.):  # pylint: disable=invalid-name
  """Glorot (Xavier) normal: N(0, 2 scale / (fan_in + fan_out)).

  Args:
    out_dim: the kernel axis of the outputs (fan_out).
    in_dim: the kernel axis of the inputs (fan_in).
    scale: positive float, multiplies the variance.
  """
  return ScaledInitializer(out_dim, in_dim, scale, 'fan_avg', 'normal')


def GlorotUniformInitializer(out_dim=-1, in_dim=-2, scale=1.):  # pylint: disable=invalid-name
  """Glorot (Xavier) uniform: U(-l, l) with l = sqrt(6 scale / (fan_in + fan_out)).

  Args:
    out_dim: the kernel axis of the outputs (fan_out).
    in_dim: the kernel axis of the inputs (fan_in).
    scale: positive float, multiplies the variance.
  """
  return ScaledInitializer(out_dim, in_dim, scale, 'fan_avg', 'uniform')


def LeCunNormalInitializer(out_dim=-1, in_dim=-2, scale=1.):  # pylint: disable=invalid-name
  """LeCun normal: N(0, scale / fan_in).

  Args:
    out_dim: the kernel axis of the outputs (fan_out).
    in_dim: the kernel axis of the inputs (fan_in).
    scale: positive float, multiplies the variance.
  """
  return ScaledInitializer(out_dim, in_dim, scale, 'fan_in', 'normal')


def LeCunUniformInitializer(out_dim=-1, in_dim=-2, scale=1.):  # pylint: disable=invalid-name
  """LeCun uniform: U(-l, l) with l = sqrt(3 scale / fan_in).

  Args:
    out_dim: the kernel axis of the outputs (fan_out).
    in_dim: the kernel axis of the inputs (fan_in).
    scale: positive float, multiplies the variance.
  """
  return ScaledInitializer(out_dim, in_dim, scale, 'fan_in', 'uniform')


def _kaiming_scale(param, who):
  if not _is_number(param):
    raise ArgumentError(f'{who}: param (negative slope) must be a number, got {param!r}')
  return 2.0 / (1.0 + param**2)


def KaimingNormalInitializer(out_dim=-1, in_dim=-2, param=0.):  # pylint: disable=invalid-name
  """Kaiming (He) normal: N(0, 2 / ((1 + param^2) fan_in)).

  Args:
    out_dim: the kernel axis of the outputs (fan_out).
    in_dim: the kernel axis of the inputs (fan_in).
    param: the negative slope of the (leaky) ReLU that follows; 0 for ReLU.
  """
  scale = _kaiming_scale(param, 'KaimingNormalInitializer')
  return ScaledInitializer(out_dim, in_dim, scale, 'fan_in', 'normal')


def KaimingUniformInitializer(out_dim=-1, in_dim=-2, param=0.):  # pylint: disable=invalid-name
  """Kaiming (He) uniform: U(-l, l) with l = sqrt(6 / ((1 + param^2) fan_in)).

  Args:
    out_dim: the kernel axis of the outputs (fan_out).
    in_dim: the kernel axis of the inputs (fan_in).
    param: the negative slope of the (leaky) ReLU that follows; 0 for ReLU.
  """
  scale = _kaiming_scale(param, 'KaimingUniformInitializer')
  return ScaledInitializer(out_dim, in_dim, scale, 'fan_in', 'uniform')


def OrthogonalInitializer(stddev=1.0):  # pylint: disable=invalid-name
  """`stddev` times a random orthogonal matrix, reshaped to `shape`.

  The shape is viewed as a matrix (prod(shape[:-1]), shape[-1]); its columns
  are orthonormal when it is tall, its rows when it is wide. Drawn as the Q
  of the QR decomposition of a normal matrix, signs fixed by diag(R), so
  that Q is uniformly (Haar) distributed.

  Args:
    stddev: float >= 0, the scale of the matrix.
  """
  check_non_negative('OrthogonalInitializer', 'stddev', stddev)

  def init(shape, rng, dtype=jnp.float32):
    shape = check_shape('OrthogonalInitializer', 'shape', shape)
    n_rows = math.prod(shape[:-1]) if shape else 1
    n_cols = shape[-1] if shape else 1
    tall = (max(n_rows, n_cols), min(n_rows, n_cols))
    q, r = jnp.linalg.qr(jax.random.normal(rng, tall, jnp.float32))
    q = q * jnp.sign(jnp.diag(r))[None, :]
    if n_rows < n_cols:
      q = q.T
    return (stddev * q.reshape(shape)).astype(dtype)

  return init


def InitializerFromFile(path):  # pylint: disable=invalid-name
  """Weights read from a NumPy `.npy` file (e.g. pretrained embeddings); `rng` is unused.

  The file is read at each call with `np.load(path, allow_pickle=False)`, so
  it holds plain array data and never code; its shape must equal the
  requested one. The file's dtype is kept unless a `dtype` is passed.

  Args:
    path: the `.npy` file (str or path-like).
  """
  path = os.fspath(path)

  def init(shape, rng=None, dtype=None):
    del rng
    shape = check_shape('InitializerFromFile', 'shape', shape)
    try:
      values = np.load(path, allow_pickle=False)
    except ValueError as e:  # an object array (pickled data) or not a .npy file
      raise ArgumentError(f'InitializerFromFile: {path} does not hold a plain .npy array: '
                          f'{e}') from e
    if not isinstance(values, np.ndarray):  # an .npz archive
      raise ArgumentError(f'InitializerFromFile: {path} is not a .npy file with one array')
    if values.shape != shape:
      raise ArgumentError(f'InitializerFromFile: {path} holds an array of shape {values.shape}, '
                          f'expected {shape}')
    return jnp.asarray(values, dtype)

  return init


__all__ = [
    'RandomNormalInitializer', 'RandomUniformInitializer', 'ScaledInitializer',
    'GlorotNormalInitializer', 'GlorotUniformInitializer', 'LeCunNormalInitializer',
    'LeCunUniformInitializer', 'KaimingNormalInitializer', 'KaimingUniformInitializer',
    'OrthogonalInitializer', 'InitializerFromFile', 'AtariConvInit', 'get_fans'
]
