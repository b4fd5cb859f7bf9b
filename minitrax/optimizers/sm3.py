"""SM3: adaptive steps with one accumulator per axis."""

import functools

import jax.numpy as jnp

from minitrax.optimizers import base


class SM3(base.Optimizer):
  r"""SM3: memory-efficient AdaGrad with one accumulator per axis.

  Anil, Gupta, Koren and Singer (2019), https://arxiv.org/abs/1901.11150.
  For an array of rank r > 1 it keeps one accumulator per axis,
  :math:`\mu_i` of shape `(S[i],)`, instead of one per entry. With learning
  rate :math:`\eta` and momentum :math:`\beta`:

  .. math::
      \nu &= \min_i \mu_i[\text{index}_i] + g^2
          \quad \text{(rank > 1; broadcast over the other axes)} \\
      \nu &= \nu_{\text{prev}} + g^2
          \quad \text{(rank <= 1: diagonal AdaGrad)} \\
      \mu_i &\leftarrow \max_{\text{axes} \ne i} \nu \\
      m &\leftarrow \beta m + (1 - \beta)\, g / \sqrt{\nu}
          \quad (g / \sqrt{\nu} := 0 \text{ where } \nu = 0) \\
      w &\leftarrow w - \eta\, m

  Slots per array: `(m, mu_0, ..., mu_{r-1})` for rank r > 1, `(m, nu)` with
  nu shaped like the weights for rank 0 and 1. All accumulators start at 0.

  Args:
    learning_rate: :math:`\eta`; default 0.01 (Trax's).
    momentum: :math:`\beta`.
    clip_grad_norm: None, or the global gradient norm to clip to.
  """

  def __init__(self, learning_rate=0.01, momentum=0.9, clip_grad_norm=None):
    super().__init__(learning_rate=learning_rate, momentum=momentum, clip_grad_norm=clip_grad_norm)

  def init(self, weights):
    m = jnp.zeros_like(weights)
    if weights.ndim <= 1:
      return (m, jnp.zeros_like(weights))
    return (m,) + tuple(jnp.zeros((n,), weights.dtype) for n in weights.shape)

  def update(self, step, grads, weights, slots, opt_params):
    del step
    m, accumulators = slots[0], slots[1:]
    rank = weights.ndim
    if rank <= 1:
      nu = accumulators[0] + grads * grads
      accumulators = (nu,)
    else:
      nu = functools.reduce(jnp.minimum,
                            [_along_axis(mu, i, rank) for i, mu in enumerate(accumulators)])
      nu = nu + grads * grads
      accumulators = tuple(
          jnp.max(nu, axis=tuple(j for j in range(rank) if j != i)) for i in range(rank))
    positive = nu > 0
    preconditioned = jnp.where(positive, grads / jnp.sqrt(jnp.where(positive, nu, 1)), 0)
    beta = opt_params['momentum']
    m = beta * m + (1 - beta) * preconditioned
    return weights - opt_params['learning_rate'] * m, (m,) + accumulators


def _along_axis(vector, axis, rank):
  """`vector` (shape (n,)) reshaped to rank `rank`: n on `axis`, 1 elsewhere."""
  shape = [1] * rank
  shape[axis] = vector.shape[0]
  return vector.reshape(shape)
