"""Plain stochastic gradient descent."""

from minitrax.optimizers import base


class SGD(base.Optimizer):
  r"""Stochastic gradient descent (Robbins and Monro, 1951).

  For weights :math:`w`, gradient :math:`g` and learning rate :math:`\eta`:

  .. math::
      w \leftarrow w - \eta\, g

  Slots: none (an empty tuple per weight array).

  Args:
    learning_rate: :math:`\eta`; default 0.01, the Trax base default.
    clip_grad_norm: None, or the global gradient norm to clip to.
  """

  def __init__(self, learning_rate=0.01, clip_grad_norm=None):
    super().__init__(learning_rate=learning_rate, clip_grad_norm=clip_grad_norm)

  def init(self, weights):
    del weights
    return ()

  def update(self, step, grads, weights, slots, opt_params):
    del step, slots
    return weights - opt_params['learning_rate'] * grads, ()
