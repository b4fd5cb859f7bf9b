"""SGD with (Nesterov) momentum and weight decay."""

import jax.numpy as jnp

from minitrax.checks import check_flag
from minitrax.errors import OptimizerError
from minitrax.optimizers import base


class Momentum(base.Optimizer):
  r"""Momentum SGD, by default with the Nesterov correction.

  Heavy-ball momentum is Polyak (1964); the Nesterov form is Sutskever et al.
  (2013), http://proceedings.mlr.press/v28/sutskever13.html, as rewritten for
  backpropagation by Bengio et al. (2012), https://arxiv.org/abs/1212.0901.
  With mass :math:`\mu`, learning rate :math:`\eta` and weight decay
  :math:`\lambda`, velocity :math:`v` (zeros at first):

  .. math::
      v &\leftarrow \mu v + g \\
      d &= \mu v + g \ \text{(nesterov)}, \quad d = v \ \text{(otherwise)} \\
      w &\leftarrow (1 - \lambda)\, w - \eta\, d

  Slots per array: `(velocity,)`, shaped like the weights.

  Args:
    learning_rate: :math:`\eta`; default 0.01 (Trax's).
    mass: :math:`\mu`, the momentum coefficient.
    weight_decay_rate: :math:`\lambda`, the fraction of each weight removed
      per step (decoupled from the gradient).
    nesterov: Whether to use the Nesterov correction (a flag, not schedulable).
    clip_grad_norm: None, or the global gradient norm to clip to.
  """

  def __init__(self, learning_rate=0.01, mass=0.9, weight_decay_rate=1e-5, nesterov=True,
               clip_grad_norm=None):
    super().__init__(learning_rate=learning_rate, mass=mass, weight_decay_rate=weight_decay_rate,
                     clip_grad_norm=clip_grad_norm)
    self._nesterov = check_flag('Momentum', 'nesterov', nesterov, error=OptimizerError)

  def init(self, weights):
    return (jnp.zeros_like(weights),)

  def update(self, step, grads, weights, slots, opt_params):
    del step
    (velocity,) = slots
    mass = opt_params['mass']
    velocity = mass * velocity + grads
    direction = mass * velocity + grads if self._nesterov else velocity
    decay = 1 - opt_params['weight_decay_rate']
    new_weights = decay * weights - opt_params['learning_rate'] * direction
    return new_weights, (velocity,)
