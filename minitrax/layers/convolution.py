"""Convolution layers: Conv (any number of spatial dims), Conv1d, CausalConv.

All are `jax.lax.conv_general_dilated` plus an optional bias. The layout of
input, kernel and output is given by `dimension_numbers`, three strings such
as `('NHWC', 'HWIO', 'NHWC')`: `N` batch, `C` channels (input), `I`/`O` the
kernel's input/output channels; every other letter is a spatial dimension,
and the spatial letters of the kernel string fix the order of `kernel_size`
and `strides`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.errors import ArgumentError
from minitrax.layers.base import EMPTY, Layer
from minitrax.layers.initializers import GlorotNormalInitializer, RandomNormalInitializer

_SPATIAL_LETTERS = 'DHWABEFGJKLMPQRSTUVXYZ'


def _channels_last(n_spatial):
  """`('N...C', '...IO', 'N...C')` for `n_spatial` spatial dims, e.g. NHWC for 2."""
  spatial = 'DHW'[3 - n_spatial:] if n_spatial <= 3 else _SPATIAL_LETTERS[:n_spatial]
  return ('N' + spatial + 'C', spatial + 'IO', 'N' + spatial + 'C')


def _check_dimension_numbers(dimension_numbers, n_spatial):
  """Checks three layout strings against each other and against `n_spatial`."""
  fix = (f'for {n_spatial} spatial dim{"s" if n_spatial > 1 else ""} use e.g. '
         f'dimension_numbers={_channels_last(n_spatial)}')
  if (not isinstance(dimension_numbers, (tuple, list)) or len(dimension_numbers) != 3 or
      not all(isinstance(s, str) for s in dimension_numbers)):
    raise ArgumentError(f'Conv: dimension_numbers must be three strings (input, kernel, output), '
                        f'got {dimension_numbers!r}; {fix}')
  lhs, rhs, out = dimension_numbers
  for spec, what, special in ((lhs, 'input', 'NC'), (rhs, 'kernel', 'IO'), (out, 'output', 'NC')):
    if len(set(spec)) != len(spec) or any(c not in spec for c in special):
      raise ArgumentError(f'Conv: {what} layout {spec!r} must hold {special[0]!r} and '
                          f'{special[1]!r} once each and no repeated letter; {fix}')
  spatial = [set(lhs) - set('NC'), set(rhs) - set('IO'), set(out) - set('NC')]
  if not spatial[0] == spatial[1] == spatial[2]:
    raise ArgumentError(f'Conv: dimension_numbers {tuple(dimension_numbers)} must name the same '
                        f'spatial dims in all three layouts; {fix}')
  if len(spatial[1]) != n_spatial:
    raise ArgumentError(f'Conv: dimension_numbers {tuple(dimension_numbers)} have '
                        f'{len(spatial[1])} spatial dims but kernel_size has {n_spatial}; {fix}')
  return tuple(dimension_numbers)


def _int_tuple(layer, name, value, n):
  """`value` as a tuple of `n` positive ints, else a ValueError naming `layer` and `name`."""
  message = f'{layer}: {name} must be a tuple of {n} positive ints, got {value!r}'
  try:
    out = tuple(int(v) for v in value)
  except (TypeError, ValueError):
    raise ArgumentError(message) from None
  if len(out) != n or any(v < 1 for v in out) or any(o != v for o, v in zip(out, value)):
    raise ArgumentError(message)
  return out


def _check_padding(padding, n):
  if isinstance(padding, str):
    if padding not in ('VALID', 'SAME'):
      raise ArgumentError(f"Conv: padding must be 'VALID', 'SAME' or {n} (low, high) pairs, "
                          f'got {padding!r}')
    return padding
  try:
    pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
  except (TypeError, ValueError):
    pairs = None
  if pairs is None or len(pairs) != n:
    raise ArgumentError(f"Conv: padding must be 'VALID', 'SAME' or {n} (low, high) pairs, "
                        f'got {padding!r}')
  return pairs


class Conv(Layer):
  """General convolution: n_in = n_out = 1.

  With the default layout, `(batch, height, width, c_in) -> (batch, height',
  width', filters)`; `height' = height - kh + 1` for VALID padding and stride
  1, `ceil(height / stride)` for SAME. Extra leading axes before the batch axis
  are allowed when input and output layouts start with 'N' (they are folded
  into the batch). The kernel has shape `kernel_size + (c_in, filters)` placed
  as the kernel layout says (`(kh, kw, c_in, filters)` for 'HWIO'); the bias
  has shape `(filters,)` broadcast to the output layout.

  Weights: `(kernel, bias)`, or `kernel` alone when `use_bias=False`.

  Args:
    filters: number of output channels.
    kernel_size: tuple of positive ints, one per spatial dim; its length must
      match the number of spatial letters in `dimension_numbers`.
    strides: tuple of positive ints like `kernel_size`; default all ones.
    padding: 'VALID', 'SAME', or one `(low, high)` pair per spatial dim.
    dimension_numbers: (input, kernel, output) layouts; for 1 or 3 spatial
      dims pass e.g. ('NWC', 'WIO', 'NWC') or ('NDHWC', 'DHWIO', 'NDHWC').
    kernel_initializer: `init(shape, rng)`; default Glorot-normal with fans
      taken from the kernel layout's 'I' and 'O' axes (as in Trax).
    bias_initializer: `init(shape, rng)`; default normal with std 1e-6.
    use_bias: add a learned bias.
  """

  def __init__(self, filters, kernel_size, strides=None, padding='VALID',
               dimension_numbers=('NHWC', 'HWIO', 'NHWC'), kernel_initializer=None,
               bias_initializer=RandomNormalInitializer(1e-6), use_bias=True):
    super().__init__(name=type(self).__name__)
    name = self._name
    if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
      raise ArgumentError(f'{name}: filters must be a positive int, got {filters!r}')
    if not isinstance(kernel_size, (tuple, list)) or not kernel_size:
      raise ArgumentError(f'{name}: kernel_size must be a non-empty tuple (one size per spatial '
                          f'dim), got {kernel_size!r}; e.g. (3, 3) for images')
    n = len(kernel_size)
    self._filters = int(filters)
    self._kernel_size = _int_tuple(name, 'kernel_size', kernel_size, n)
    self._strides = (1,) * n if strides is None else _int_tuple(name, 'strides', strides, n)
    self._padding = _check_padding(padding, n)
    self._dimension_numbers = _check_dimension_numbers(dimension_numbers, n)
    self._rhs_dilation = (1,) * n
    rhs = self._dimension_numbers[1]
    if kernel_initializer is None:
      kernel_initializer = GlorotNormalInitializer(rhs.index('O'), rhs.index('I'))
    for arg, value in (('kernel_initializer', kernel_initializer), ('bias_initializer',
                                                                    bias_initializer)):
      if not callable(value):
        raise ArgumentError(f'{name}: {arg} must be a function init(shape, rng), got {value!r}')
    self._kernel_initializer = kernel_initializer
    self._bias_initializer = bias_initializer
    self._use_bias = bool(use_bias)

  def _kernel_shape(self, in_channels):
    sizes = iter(self._kernel_size)
    return tuple(self._filters if c == 'O' else in_channels if c == 'I' else next(sizes)
                 for c in self._dimension_numbers[1])

  def _bias_shape(self):
    """(filters,) followed by 1s for axes after 'C' in the output layout."""
    out = self._dimension_numbers[2]
    return (self._filters,) + (1,) * (len(out) - 1 - out.index('C'))

  def _check_rank(self, shape):
    lhs, _, out = self._dimension_numbers
    if len(shape) == len(lhs) or (len(shape) > len(lhs) and lhs[0] == out[0] == 'N'):
      return
    extra = ' or more (extra leading axes are folded into the batch)' \
        if lhs[0] == out[0] == 'N' else ''
    raise ArgumentError(f'{self._name}: input layout {lhs!r} needs rank {len(lhs)}{extra}, '
                        f'got shape {tuple(shape)}')

  def init_weights_and_state(self, input_signature, rng):
    shape = input_signature.shape
    self._check_rank(shape)
    lhs = self._dimension_numbers[0]
    in_channels = shape[len(shape) - len(lhs) + lhs.index('C')]
    rng_w, rng_b = jax.random.split(rng)
    kernel = self._kernel_initializer(self._kernel_shape(in_channels), rng_w)
    if not self._use_bias:
      return kernel, EMPTY
    return (kernel, self._bias_initializer(self._bias_shape(), rng_b)), EMPTY

  def forward(self, x, weights):
    self._check_rank(x.shape)
    kernel, bias = weights if self._use_bias else (weights, None)
    lead = x.shape[:x.ndim - len(self._dimension_numbers[0]) + 1]
    if len(lead) > 1:  # fold extra leading axes into the batch axis
      x = x.reshape((-1,) + x.shape[len(lead):])
    # Compute in the input's float dtype (e.g. bfloat16), else in the kernel's.
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else kernel.dtype
    y = jax.lax.conv_general_dilated(x.astype(dtype), kernel.astype(dtype), self._strides,
                                     self._padding, rhs_dilation=self._rhs_dilation,
                                     dimension_numbers=self._dimension_numbers)
    if self._use_bias:
      y = y + jnp.broadcast_to(bias.astype(dtype), y.shape)
    return y.reshape(lead + y.shape[1:]) if len(lead) > 1 else y


def Conv1d(
    filters,
    kernel_size,
    stride=1,
    padding='VALID',
    kernel_initializer=None,  # pylint: disable=invalid-name
    bias_initializer=RandomNormalInitializer(1e-6),
    use_bias=True):
  """1-D convolution over `(batch, length, c_in) -> (batch, length', filters)`.

  A `Conv` with layout ('NWC', 'WIO', 'NWC'); `kernel_size` and `stride` are
  ints. n_in = n_out = 1.

  Args:
    filters: Number of output channels.
    kernel_size: The window length, an int (a tuple raises `ArgumentError`).
    stride: The step along the length, an int.
    padding: 'VALID', 'SAME', or one `(low, high)` pair.
    kernel_initializer, bias_initializer, use_bias: As in `Conv`.
  """
  if isinstance(kernel_size, (tuple, list)) or isinstance(stride, (tuple, list)):
    raise ArgumentError(f'Conv1d: kernel_size and stride must be ints, got {kernel_size!r} '
                        f'and {stride!r}')
  return Conv(filters, (kernel_size,), strides=(stride,), padding=padding,
              dimension_numbers=('NWC', 'WIO', 'NWC'), kernel_initializer=kernel_initializer,
              bias_initializer=bias_initializer, use_bias=use_bias)


class CausalConv(Conv):
  """Causal 1-D convolution over time: `(batch, time, c_in) -> (batch, time, filters)`.

  n_in = n_out = 1. The output at time t depends only on inputs at times
  `t, t - dilation, ..., t - (kernel_width - 1) * dilation`: the input is
  left-padded with `(kernel_width - 1) * dilation` zeros and convolved with
  VALID padding, so the length is unchanged. Weights as in `Conv`, kernel shape
  `(kernel_width, c_in, filters)`.

  Args:
    filters: number of output channels.
    kernel_width: number of taps.
    kernel_initializer, bias_initializer, use_bias: as in `Conv`.
    dilation: spacing between taps, a positive int.
  """

  def __init__(self, filters, kernel_width=3, kernel_initializer=None,
               bias_initializer=RandomNormalInitializer(1e-6), use_bias=True, dilation=1):
    super().__init__(filters, (kernel_width,), padding='VALID',
                     dimension_numbers=('NWC', 'WIO', 'NWC'), kernel_initializer=kernel_initializer,
                     bias_initializer=bias_initializer, use_bias=use_bias)
    if isinstance(dilation, bool) or not isinstance(dilation, (int, np.integer)) or dilation < 1:
      raise ArgumentError(f'CausalConv: dilation must be a positive int, got {dilation!r}')
    self._rhs_dilation = (int(dilation),)

  def forward(self, x, weights):
    self._check_rank(x.shape)
    pad = (self._kernel_size[0] - 1) * self._rhs_dilation[0]
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(pad, 0), (0, 0)])
    return super().forward(x, weights)


__all__ = ['Conv', 'Conv1d', 'CausalConv']
