"""Adam with decoupled weight decay."""

import jax.numpy as jnp

from minitrax.optimizers import base


class Adam(base.Optimizer):
  r"""Adam with decoupled weight decay, as in Trax.

  Adam is Kingma and Ba (2014), https://arxiv.org/abs/1412.6980; decoupled
  weight decay is Loshchilov and Hutter (2017),
  https://arxiv.org/abs/1711.05101. At update :math:`t = \text{step} + 1`,
  with moments :math:`m, v` (zeros at first):

  .. math::
      m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
      v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
      \hat m &= m / (1 - \beta_1^t), \quad \hat v = v / (1 - \beta_2^t) \\
      w &\leftarrow (1 - \lambda)\, w
          - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)

  The decay :math:`\lambda` is not scaled by :math:`\eta` (Trax's choice).

  Slots per array: `(m, v)`, each shaped like the weights.

  Args:
    learning_rate: :math:`\eta`; default 0.01 (Trax's base default; Trax's
      Adam itself has none, and the paper suggests 0.001).
    weight_decay_rate: :math:`\lambda`.
    b1: :math:`\beta_1`, decay of the first moment.
    b2: :math:`\beta_2`, decay of the second moment.
    eps: :math:`\epsilon`, added to the root of the second moment.
    clip_grad_norm: None, or the global gradient norm to clip to.
  """

  def __init__(self, learning_rate=0.01, weight_decay_rate=1e-5, b1=0.9, b2=0.999, eps=1e-5,
               clip_grad_norm=None):
    super().__init__(learning_rate=learning_rate, weight_decay_rate=weight_decay_rate, b1=b1, b2=b2,
                     eps=eps, clip_grad_norm=clip_grad_norm)

  def init(self, weights):
    return (jnp.zeros_like(weights), jnp.zeros_like(weights))

  def update(self, step, grads, weights, slots, opt_params):
    m, v = slots
    b1, b2 = opt_params['b1'], opt_params['b2']
    t = step.astype(jnp.float32) + 1
    m = b1 * m + (1 - b1) * grads
    v = b2 * v + (1 - b2) * grads * grads
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    direction = m_hat / (jnp.sqrt(v_hat) + opt_params['eps'])
    decay = 1 - opt_params['weight_decay_rate']
    return decay * weights - opt_params['learning_rate'] * direction, (m, v)
