"""Adafactor: Adam-like steps with factored second moments."""

import jax
import jax.numpy as jnp

from minitrax.checks import check_flag
from minitrax.errors import OptimizerError
from minitrax.optimizers import base


class Adafactor(base.Optimizer):
  r"""Adafactor (Shazeer and Stern, 2018, https://arxiv.org/abs/1804.04235).

  At update :math:`t = \text{step} + 1` the second-moment decay is
  :math:`\hat\beta_2 = 1 - t^{-c}` (c = `decay_rate`). With
  :math:`G = g^2 + \epsilon_1`:

  * factored (rank >= 2 and `factored`): row and column statistics over the
    last two axes, :math:`R \leftarrow \hat\beta_2 R + (1-\hat\beta_2)
    \,\mathrm{mean}_{-1} G` (shape `S[:-1]`) and :math:`C \leftarrow
    \hat\beta_2 C + (1-\hat\beta_2)\,\mathrm{mean}_{-2} G` (shape
    `S[:-2] + S[-1:]`); then :math:`u = g / \sqrt{(R / \mathrm{mean}_{-1} R)
    \otimes C}`.
  * otherwise (rank < 2): :math:`V \leftarrow \hat\beta_2 V +
    (1-\hat\beta_2) G`, :math:`u = g / \sqrt{V}`.

  Then, with :math:`\mathrm{RMS}(x) = \sqrt{\mathrm{mean}(x^2)}`:

  .. math::
      u &\leftarrow u / \max(1, \mathrm{RMS}(u) / d)
          \quad \text{(if do\_clipping; } d = \text{clipping\_threshold)} \\
      \rho &= \eta \cdot \max(\epsilon_2, \mathrm{RMS}(w))
          \quad \text{(if multiply\_by\_parameter\_scale, else } \eta) \\
      \Delta &= \beta_1 m + (1-\beta_1)\, \rho u, \quad m \leftarrow \Delta
          \quad \text{(if do\_momentum, else } \Delta = \rho u) \\
      w &\leftarrow (1 - \lambda)\, w - \Delta

  Slots per array: `(R, C)` or `(V,)`, followed by `m` if `do_momentum`.
  They are float32 (or wider), whatever the weights' dtype.

  Args:
    learning_rate: :math:`\eta`; default 0.05 (Trax's).
    factored: Whether rank >= 2 arrays keep factored statistics (a flag).
    multiply_by_parameter_scale: Whether the step is relative to RMS(w).
    do_clipping: Whether to clip the update by its RMS (a flag).
    do_momentum: Whether to keep a first moment `m` (a flag).
    beta1: :math:`\beta_1`, used only with do_momentum.
    decay_rate: c, the exponent of the second-moment decay schedule.
    clipping_threshold: d.
    weight_decay_rate: :math:`\lambda`.
    epsilon1: :math:`\epsilon_1`, added to the squared gradient.
    epsilon2: :math:`\epsilon_2`, the least parameter scale.
    clip_grad_norm: None, or the global gradient norm to clip to.
  """

  def __init__(self, learning_rate=0.05, factored=True, multiply_by_parameter_scale=True,
               do_clipping=True, do_momentum=False, beta1=0.0, decay_rate=0.8,
               clipping_threshold=1.0, weight_decay_rate=1e-5, epsilon1=1e-30, epsilon2=1e-3,
               clip_grad_norm=None):
    super().__init__(learning_rate=learning_rate, beta1=beta1, decay_rate=decay_rate,
                     clipping_threshold=clipping_threshold, weight_decay_rate=weight_decay_rate,
                     epsilon1=epsilon1, epsilon2=epsilon2, clip_grad_norm=clip_grad_norm)
    flag = lambda name, value: check_flag('Adafactor', name, value, error=OptimizerError)
    self._factored = flag('factored', factored)
    self._multiply_by_parameter_scale = flag('multiply_by_parameter_scale',
                                             multiply_by_parameter_scale)
    self._do_clipping = flag('do_clipping', do_clipping)
    self._do_momentum = flag('do_momentum', do_momentum)

  def init(self, weights):
    shape, dtype = weights.shape, weights.dtype
    if self._is_factored(weights):
      slots = (jnp.zeros(shape[:-1], dtype), jnp.zeros(shape[:-2] + shape[-1:], dtype))
    else:
      slots = (jnp.zeros_like(weights),)
    if self._do_momentum:
      slots += (jnp.zeros_like(weights),)
    return slots

  def update(self, step, grads, weights, slots, opt_params):
    p = opt_params
    mix = (step.astype(jnp.float32) + 1)**-p['decay_rate']  # 1 - beta2_hat.
    sq_grads = grads * grads + p['epsilon1']
    if self._is_factored(weights):
      rows, cols = slots[:2]
      rows = (1 - mix) * rows + mix * jnp.mean(sq_grads, axis=-1)
      cols = (1 - mix) * cols + mix * jnp.mean(sq_grads, axis=-2)
      row_scale = rows / jnp.mean(rows, axis=-1, keepdims=True)
      # Two rsqrt factors, not rsqrt of their product: with whole zero rows and
      # columns of gradients (dead units) the product (~1e-30 * 1e-30) underflows
      # to 0 in float32 and the update would be 0/0.
      u = grads * jax.lax.rsqrt(row_scale)[..., :, None] * jax.lax.rsqrt(cols)[..., None, :]
      stats = (rows, cols)
    else:
      full = (1 - mix) * slots[0] + mix * sq_grads
      u = grads / jnp.sqrt(full)
      stats = (full,)
    if self._do_clipping:
      u = u / jnp.maximum(1.0, _rms(u) / p['clipping_threshold'])
    scale = p['learning_rate']
    if self._multiply_by_parameter_scale:
      scale = scale * jnp.maximum(_rms(weights), p['epsilon2'])
    delta = scale * u
    if self._do_momentum:
      delta = p['beta1'] * slots[-1] + (1 - p['beta1']) * delta
      stats += (delta,)
    return (1 - p['weight_decay_rate']) * weights - delta, stats

  def _is_factored(self, weights):
    return self._factored and weights.ndim >= 2


def _rms(x):
  """Root mean square of all entries of `x`; a scalar."""
  return jnp.sqrt(jnp.mean(x * x))
