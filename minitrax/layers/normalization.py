"""Normalization layers: LayerNorm, BatchNorm, FilterResponseNorm.

Each layer rescales its input to zero mean and/or unit size along some axes,
then applies a learned per-feature scale and bias:

* `LayerNorm` normalises each example over its last axis (features).
* `BatchNorm` normalises over the batch (and spatial) axes with batch
  statistics while training, and keeps running statistics in its state for
  evaluation.
* `FilterResponseNorm` divides by the root mean square over the spatial axes
  of each example and channel (no mean subtraction).
"""

import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_mode, check_positive
from minitrax.errors import ArgumentError
from minitrax.layers.base import EMPTY, Layer


class LayerNorm(Layer):
  """Layer normalization (Ba et al. 2016) over the last axis.

  n_in = n_out = 1; `(..., d) -> (..., d)`. With `mean` and `var` the mean and
  (biased) variance of `x` over the last axis::

    y = (x - mean) / sqrt(var + epsilon) * scale + bias

  Weights: `(scale, bias)`, each of shape `(d,)` and the input's dtype,
  initialised to ones and zeros.

  Args:
    center: if False, the mean is not subtracted (`var` becomes the mean
      square) and `bias` is not added; `bias` stays in the weights tree so that
      the tree has the same structure either way (as in Trax).
    epsilon: positive number added to the variance.
  """

  def __init__(self, center=True, epsilon=1e-6):
    super().__init__(name='LayerNorm')
    check_positive('LayerNorm', 'epsilon', epsilon)
    self._center = bool(center)
    self._epsilon = epsilon

  def init_weights_and_state(self, input_signature, rng):
    del rng
    if input_signature.ndim < 1:
      raise ArgumentError('LayerNorm: input must have at least 1 axis (features last), '
                          f'got shape {input_signature.shape}')
    d, dtype = input_signature.shape[-1], input_signature.dtype
    return (jnp.ones((d,), dtype), jnp.zeros((d,), dtype)), EMPTY

  def forward(self, x, weights):
    scale, bias = weights
    centered = x - jnp.mean(x, axis=-1, keepdims=True) if self._center else x
    variance = jnp.mean(centered * centered, axis=-1, keepdims=True)
    y = centered / jnp.sqrt(variance + self._epsilon) * jnp.broadcast_to(scale, x.shape)
    return y + jnp.broadcast_to(bias, x.shape) if self._center else y


class BatchNorm(Layer):
  """Batch normalization (Ioffe & Szegedy 2015) with running statistics.

  n_in = n_out = 1; the output has the input's shape and dtype. Statistics are
  taken over `axis` (default `(0, 1, 2)`: batch, height, width of NHWC images,
  one mean and variance per channel).

  * `mode='train'`: normalise with the batch mean and biased variance
    (`mean((x - mean)**2)`) and update the state::

      running = momentum * running + (1 - momentum) * batch_statistic

  * any other mode (`'eval'`, `'predict'`): normalise with the running
    statistics; the state is returned unchanged.

  Then `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`.

  Weights: `(beta, gamma)`, float32 of the input shape without `axis`
  (`(C,)` by default), zeros and ones; each is `()` when `center`/`scale` is
  False. State: `(running_mean, running_var, n_batches)`; the running
  statistics are float32 of the input shape with `axis` set to 1 (e.g.
  `(1, 1, 1, C)`), initialised to 0 and 1 (no bias correction: early running
  statistics lean towards 0 and 1); `n_batches` is an int32 count of training
  steps.

  Args:
    axis: int or tuple of ints; the axes to average over (negative allowed).
    epsilon: positive number added to the variance.
    center: learn and add `beta`.
    scale: learn and multiply by `gamma`.
    momentum: weight of the old running statistics, in [0, 1].
    mode: 'train', 'eval' or 'predict'.
  """

  def __init__(self, axis=(0, 1, 2), epsilon=1e-5, center=True, scale=True, momentum=0.999,
               mode='train'):
    super().__init__(name='BatchNorm')
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if not axis or not all(isinstance(a, (int, np.integer)) for a in axis):
      raise ArgumentError(f'BatchNorm: axis must be an int or a non-empty tuple of ints, '
                          f'got {axis!r}')
    check_positive('BatchNorm', 'epsilon', epsilon)
    if not 0.0 <= momentum <= 1.0:
      raise ArgumentError(f'BatchNorm: momentum must lie in [0, 1], got {momentum!r}')
    check_mode('BatchNorm', 'mode', mode)
    self._axis = tuple(int(a) for a in axis)
    self._epsilon = epsilon
    self._center, self._scale = bool(center), bool(scale)
    self._momentum = momentum
    self._mode = mode

  def _axes(self, ndim):
    """`axis` as sorted non-negative ints for rank `ndim`; checks range and repeats."""
    if any(not -ndim <= a < ndim for a in self._axis):
      raise ArgumentError(f'BatchNorm: axis {self._axis} out of range for an input of rank {ndim}')
    axes = sorted(a % ndim for a in self._axis)
    if len(set(axes)) != len(axes):
      raise ArgumentError(f'BatchNorm: axis {self._axis} names the same axis twice')
    return tuple(axes)

  def init_weights_and_state(self, input_signature, rng):
    del rng
    shape = input_signature.shape
    axes = self._axes(len(shape))
    param_shape = tuple(d for i, d in enumerate(shape) if i not in axes)
    stats_shape = tuple(1 if i in axes else d for i, d in enumerate(shape))
    beta = jnp.zeros(param_shape, jnp.float32) if self._center else EMPTY
    gamma = jnp.ones(param_shape, jnp.float32) if self._scale else EMPTY
    state = (jnp.zeros(stats_shape, jnp.float32), jnp.ones(stats_shape,
                                                           jnp.float32), jnp.zeros((), jnp.int32))
    return (beta, gamma), state

  def forward_with_state(self, x, weights, state, rng):
    del rng
    axes = self._axes(x.ndim)
    running_mean, running_var, n_batches = state
    if self._mode == 'train':
      mean = jnp.mean(x, axis=axes, keepdims=True)
      var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
      state = (self._smoothed(running_mean, mean), self._smoothed(running_var, var), n_batches + 1)
    else:
      mean, var = running_mean, running_var
    y = (x - mean.astype(x.dtype)) / jnp.sqrt(var + self._epsilon).astype(x.dtype)
    beta, gamma = weights
    expand = tuple(None if i in axes else slice(None) for i in range(x.ndim))
    if self._scale:
      y = y * gamma[expand]
    if self._center:
      y = y + beta[expand]
    return y.astype(x.dtype), state

  def _smoothed(self, old, new):
    return (self._momentum * old + (1.0 - self._momentum) * new).astype(old.dtype)


class FilterResponseNorm(Layer):
  """Filter Response Normalization (Singh & Krishnan 2019), without the TLU.

  n_in = n_out = 1; `(batch, ..., channels) -> (batch, ..., channels)`, at
  least rank 3. With `nu2` the mean of `x**2` over the axes between the first
  (batch) and the last (channels)::

    y = gamma * x / sqrt(nu2 + epsilon) + beta

  Weights: `(gamma, beta, epsilon_l)`: float32 of shape `(channels,)`, ones
  and zeros, and `epsilon_l = ()` or, with `learn_epsilon`, a 1-tuple holding a
  learned float32 scalar (initialised to `init_learnt_epsilon`), in which case
  `epsilon = init_epsilon + |epsilon_l[0]|`; else `epsilon = init_epsilon`.

  Args:
    mode: 'train', 'eval' or 'predict'; all behave the same.
    learn_epsilon: learn part of epsilon (see above).
    init_epsilon: positive fixed part of epsilon.
    init_learnt_epsilon: positive initial value of the learned part.
  """

  def __init__(self, mode='train', learn_epsilon=False, init_epsilon=1e-6,
               init_learnt_epsilon=1e-4):
    super().__init__(name='FilterResponseNorm')
    check_mode('FilterResponseNorm', 'mode', mode)
    check_positive('FilterResponseNorm', 'init_epsilon', init_epsilon)
    check_positive('FilterResponseNorm', 'init_learnt_epsilon', init_learnt_epsilon)
    self._learn_epsilon = bool(learn_epsilon)
    self._init_epsilon = float(init_epsilon)
    self._init_learnt_epsilon = float(init_learnt_epsilon)

  def init_weights_and_state(self, input_signature, rng):
    del rng
    if input_signature.ndim < 3:
      raise ArgumentError('FilterResponseNorm: input must have rank >= 3 (batch, spatial..., '
                          f'channels), got shape {input_signature.shape}')
    channels = input_signature.shape[-1]
    epsilon_l = (jnp.asarray(self._init_learnt_epsilon, jnp.float32),) \
        if self._learn_epsilon else EMPTY
    return (jnp.ones((channels,), jnp.float32), jnp.zeros((channels,),
                                                          jnp.float32), epsilon_l), EMPTY

  def forward(self, x, weights):
    gamma, beta, epsilon_l = weights
    epsilon = self._init_epsilon
    if self._learn_epsilon:
      epsilon = epsilon + jnp.abs(epsilon_l[0])
    nu2 = jnp.mean(jnp.square(x), axis=tuple(range(1, x.ndim - 1)), keepdims=True)
    y = jnp.broadcast_to(gamma, x.shape) * (x / jnp.sqrt(nu2 + epsilon)) + \
        jnp.broadcast_to(beta, x.shape)
    return y.astype(x.dtype)


__all__ = ['LayerNorm', 'BatchNorm', 'FilterResponseNorm']
