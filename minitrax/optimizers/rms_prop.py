"""RMSProp: gradients divided by a running root mean square."""

import jax.numpy as jnp

from minitrax.optimizers import base


class RMSProp(base.Optimizer):
  r"""RMSProp: the gradient divided by its running root mean square.

  Tieleman and Hinton (2012), Coursera *Neural Networks for Machine
  Learning*, lecture 6.5. With decay :math:`\gamma`, learning rate
  :math:`\eta` and mean square :math:`a`, which starts at ONES (as in Trax;
  this damps the first steps):

  .. math::
      a &\leftarrow \gamma a + (1 - \gamma)\, g^2 \\
      w &\leftarrow w - \eta\, g / (\sqrt{a} + \epsilon)

  Slots per array: `(a,)`, shaped like the weights.

  Args:
    learning_rate: :math:`\eta`; default 0.001 (Trax's).
    gamma: :math:`\gamma`, the decay of the mean square.
    eps: :math:`\epsilon`, added to the root mean square.
    clip_grad_norm: None, or the global gradient norm to clip to.
  """

  def __init__(self, learning_rate=0.001, gamma=0.9, eps=1e-8, clip_grad_norm=None):
    super().__init__(learning_rate=learning_rate, gamma=gamma, eps=eps,
                     clip_grad_norm=clip_grad_norm)

  def init(self, weights):
    return (jnp.ones_like(weights),)

  def update(self, step, grads, weights, slots, opt_params):
    del step
    (mean_square,) = slots
    gamma = opt_params['gamma']
    mean_square = gamma * mean_square + (1 - gamma) * grads * grads
    scaled = grads / (jnp.sqrt(mean_square) + opt_params['eps'])
    return weights - opt_params['learning_rate'] * scaled, (mean_square,)
