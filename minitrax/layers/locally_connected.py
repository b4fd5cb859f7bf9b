"""LocallyConnected1d (Trax 1.4): a 1-D convolution whose weights differ at every position.

Write `R[..., j, i, :] = x[..., j, :] @ w[j, i]` for input position j and
kernel tap i (`k` taps, `h = (k - 1) // 2`). Output position m sums one
product per tap, taken from the input position that Trax's layer uses:

* 'VALID': `out[m] = sum_i R[m + k - 1 - i, i]`, `m < L - k + 1`;
* 'SAME':  `out[m] = sum_i R[m - h + i, i]`, terms outside `[0, L)` are 0;
* 'WRAP':  as 'SAME' with positions taken modulo L (a ring).

The weights of a position belong to the input position, so L is fixed at init.
"""

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_callable, check_flag, check_positive_int
from minitrax.errors import ArgumentError
from minitrax.layers.base import EMPTY, Layer
from minitrax.layers.initializers import GlorotUniformInitializer, RandomNormalInitializer

_PADDINGS = ('VALID', 'SAME', 'WRAP')


class LocallyConnected1d(Layer):
  """Unshared 1-D convolution: `(..., L, d) -> (..., L', filters)`, n_in = n_out = 1.

  `L' = L - kernel_size + 1` for 'VALID', `L` for 'SAME' and 'WRAP'; stride 1.
  Weights: `(w, b)` with `w: (L, kernel_size, d, filters)` and `b: (L',
  filters)`, or `w` alone when `use_bias=False`. The kernel initializer is
  called with `nonreceptive_dims=[0]` (the position axis counts in no fan).
  Named `LocallyConnected1d_{filters}_{kernel_size}`.

  Args:
    filters: number of output channels.
    kernel_size: taps per output position; an odd positive int.
    kernel_initializer: `init(shape, rng, nonreceptive_dims=...)` for `w`.
    bias_initializer: `init(shape, rng)` for `b`.
    use_bias: add a learned bias per output position and channel.
    padding: 'VALID', 'SAME' or 'WRAP' (see the module docstring).
  """

  def __init__(self, filters, kernel_size, kernel_initializer=GlorotUniformInitializer(),
               bias_initializer=RandomNormalInitializer(1e-6), use_bias=True, padding='VALID'):
    who = 'LocallyConnected1d'
    self._filters = check_positive_int(who, 'filters', filters)
    self._kernel_size = check_positive_int(who, 'kernel_size', kernel_size)
    if kernel_size % 2 != 1:
      raise ArgumentError(f'{who}: kernel_size must be odd, got {kernel_size}')
    if padding not in _PADDINGS:
      raise ArgumentError(f'{who}: padding must be one of {_PADDINGS}, got {padding!r}')
    check_callable(who, 'kernel_initializer', kernel_initializer, 'a function init(shape, rng)')
    check_callable(who, 'bias_initializer', bias_initializer, 'a function init(shape, rng)')
    super().__init__(name=f'{who}_{filters}_{kernel_size}')
    self._kernel_initializer = kernel_initializer
    self._bias_initializer = bias_initializer
    self._use_bias = check_flag(who, 'use_bias', use_bias)
    self._padding = padding

  def _out_length(self, length):
    return length - self._kernel_size + 1 if self._padding == 'VALID' else length

  def init_weights_and_state(self, input_signature, rng):
    shape = input_signature.shape
    if len(shape) < 2 or self._out_length(shape[-2]) < 1:
      raise ArgumentError(f'{self.name}: input must be (..., length, d) with length >= '
                          f'kernel_size for VALID padding, got shape {shape}')
    length, depth = shape[-2], shape[-1]
    rng_w, rng_b = jax.random.split(rng)
    w = self._kernel_initializer((length, self._kernel_size, depth, self._filters), rng_w,
                                 nonreceptive_dims=[0])
    if not self._use_bias:
      return w, EMPTY
    return (w, self._bias_initializer((self._out_length(length), self._filters), rng_b)), EMPTY

  def _sources(self, length):
    """`(positions, valid)`: per output m and tap i, the input position read and if it exists."""
    m = np.arange(self._out_length(length))[:, None]
    i = np.arange(self._kernel_size)[None, :]
    if self._padding == 'VALID':
      pos = m + self._kernel_size - 1 - i
    else:
      pos = m - (self._kernel_size - 1) // 2 + i
    if self._padding == 'WRAP':
      pos = pos % length
    return np.clip(pos, 0, length - 1), (pos >= 0) & (pos < length)

  def forward(self, x, weights):
    w, b = weights if self._use_bias else (weights, None)
    length = w.shape[0]
    if x.shape[-2:] != w.shape[:1] + w.shape[2:3]:
      raise ArgumentError(f'{self.name}: input shape {x.shape} must end in (length, d) = '
                          f'{(w.shape[0], w.shape[2])}, fixed by the weights')
    products = jnp.einsum('...jd,jkdf->...jkf', x, w)  # R[..., j, i, :]
    pos, valid = self._sources(length)
    taps = np.broadcast_to(np.arange(self._kernel_size), pos.shape)
    picked = products[..., pos, taps, :]  # (..., L', k, filters)
    mask = valid.astype(np.float32).reshape((1,) * (x.ndim - 2) + valid.shape + (1,))
    y = jnp.sum(picked * mask.astype(picked.dtype), axis=-2)
    return y if b is None else y + jnp.broadcast_to(b, y.shape)


__all__ = ['LocallyConnected1d']
