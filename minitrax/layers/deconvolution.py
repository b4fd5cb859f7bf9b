"""ConvTranspose (Trax 1.4): transposed convolution, `jax.lax.conv_transpose` plus a bias.

With stride s, kernel k and 'VALID' padding a spatial size n grows to
`(n - 1) * s + k`; with 'SAME' to `n * s`. Layouts are given by
`dimension_numbers` as in `Conv` (default `('NHWC', 'HWIO', 'NHWC')`).
"""

import jax
import jax.numpy as jnp

from minitrax.checks import check_positive_int
from minitrax.errors import ArgumentError
from minitrax.layers.base import EMPTY, Layer
from minitrax.layers.convolution import _check_dimension_numbers, _check_padding, _int_tuple
from minitrax.layers.initializers import GlorotNormalInitializer, RandomNormalInitializer


def _as_conv_transpose_error(check, *args):
  """Runs a `Conv` argument check, naming ConvTranspose in its message."""
  try:
    return check(*args)
  except ArgumentError as e:
    raise ArgumentError(str(e).replace('Conv:', 'ConvTranspose:', 1)) from None


class ConvTranspose(Layer):
  """Transposed convolution: `(batch, h, w, c_in) -> (batch, h', w', filters)`, n_in = n_out = 1.

  Weights: `(kernel, bias)`; the kernel has shape `kernel_size + (c_in,
  filters)` placed as the kernel layout says (`(kh, kw, c_in, filters)` for
  'HWIO'), the bias `(filters,)` followed by ones for the output axes after
  'C'. Extra leading axes before the batch axis are folded into it. The
  argument name `kernel_initialzer` is Trax's spelling; `kernel_initializer`
  (keyword only) is accepted too.

  Args:
    filters: number of output channels.
    kernel_size: tuple of positive ints, one per spatial dim.
    strides: tuple like `kernel_size`; default all ones.
    padding: 'VALID', 'SAME', or one `(low, high)` pair per spatial dim.
    rhs_dilation: kernel dilation, a tuple like `kernel_size`; default none.
    dimension_numbers: (input, kernel, output) layouts.
    kernel_initialzer: `init(shape, rng)`; default Glorot-normal with fans from
      the kernel layout's 'I' and 'O' axes.
    bias_initializer: `init(shape, rng)`; default normal with std 1e-6.
    kernel_initializer: The same as `kernel_initialzer` (pass at most one).
  """

  def __init__(self, filters, kernel_size, strides=None, padding='VALID', rhs_dilation=None,
               dimension_numbers=('NHWC', 'HWIO', 'NHWC'), kernel_initialzer=None,
               bias_initializer=RandomNormalInitializer(1e-6), *, kernel_initializer=None):
    super().__init__(name='ConvTranspose')
    filters = check_positive_int('ConvTranspose', 'filters', filters)
    if not isinstance(kernel_size, (tuple, list)) or not kernel_size:
      raise ArgumentError(f'ConvTranspose: kernel_size must be a non-empty tuple (one size per '
                          f'spatial dim), got {kernel_size!r}')
    n = len(kernel_size)
    check = _as_conv_transpose_error
    self._filters = filters
    self._kernel_size = check(_int_tuple, 'ConvTranspose', 'kernel_size', kernel_size, n)
    self._strides = (1,) * n if strides is None else check(_int_tuple, 'ConvTranspose', 'strides',
                                                           strides, n)
    self._rhs_dilation = None if rhs_dilation is None else check(_int_tuple, 'ConvTranspose',
                                                                 'rhs_dilation', rhs_dilation, n)
    self._padding = check(_check_padding, padding, n)
    self._dimension_numbers = check(_check_dimension_numbers, dimension_numbers, n)
    if kernel_initialzer is not None and kernel_initializer is not None:
      raise ArgumentError('ConvTranspose: pass kernel_initialzer (Trax spelling) or '
                          'kernel_initializer, not both')
    init = kernel_initialzer if kernel_initializer is None else kernel_initializer
    rhs = self._dimension_numbers[1]
    self._kernel_initializer = init or GlorotNormalInitializer(rhs.index('O'), rhs.index('I'))
    self._bias_initializer = bias_initializer

  def _lead(self, shape):
    """The axes folded into the batch (the batch axis and any before it)."""
    lhs, _, out = self._dimension_numbers
    if len(shape) == len(lhs) or (len(shape) > len(lhs) and lhs[0] == out[0] == 'N'):
      return tuple(shape[:len(shape) - len(lhs) + 1])
    raise ArgumentError(f'ConvTranspose: input layout {lhs!r} needs rank {len(lhs)}, got shape '
                        f'{tuple(shape)}')

  def init_weights_and_state(self, input_signature, rng):
    shape = input_signature.shape
    lead = self._lead(shape)
    lhs, rhs, out = self._dimension_numbers
    c_in = shape[len(lead) - 1 + lhs.index('C')]
    sizes = iter(self._kernel_size)
    kernel_shape = tuple(
        self._filters if c == 'O' else c_in if c == 'I' else next(sizes) for c in rhs)
    bias_shape = (self._filters,) + (1,) * (len(out) - 1 - out.index('C'))
    rng_w, rng_b = jax.random.split(rng)
    return (self._kernel_initializer(kernel_shape,
                                     rng_w), self._bias_initializer(bias_shape, rng_b)), EMPTY

  def forward(self, x, weights):
    kernel, bias = weights
    lead = self._lead(x.shape)
    if len(lead) > 1:
      x = x.reshape((-1,) + x.shape[len(lead):])
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else kernel.dtype
    y = jax.lax.conv_transpose(x.astype(dtype), kernel.astype(dtype), self._strides, self._padding,
                               rhs_dilation=self._rhs_dilation,
                               dimension_numbers=self._dimension_numbers)
    y = y + jnp.broadcast_to(bias.astype(dtype), y.shape)
    return y.reshape(lead + y.shape[1:]) if len(lead) > 1 else y


__all__ = ['ConvTranspose']
