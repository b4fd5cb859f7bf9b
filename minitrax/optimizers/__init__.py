"""Optimizers written by hand on `jax.numpy`: the update rules Trax users know.

Every optimizer is a rule for ONE weight array, lifted over trees of weights
by `Optimizer` (in `base.py`):

  * `init(weights) -> slots`: a tuple of arrays, the rule's state for this
    array (an empty tuple if it keeps none).
  * `update(step, grads, weights, slots, opt_params) -> (new_weights,
    new_slots)`: one step for this array. `step` is an int32 scalar (0 on
    the first update); `opt_params` is a dict of float32 scalars holding
    every hyperparameter, `learning_rate` among them.

`tree_init(weights) -> (slots, opt_params)` and `tree_update(step, grads,
weights, slots, opt_params) -> (new_weights, new_slots, stats)` apply the rule
to every array of a tree (tuples, lists, dicts; `()` for layers without
weights passes through). Both are pure and jit-able. Because hyperparameters
are arrays in `opt_params`, a schedule may change them every step without a
recompile: `opt_params = Optimizer.with_schedule(opt_params, schedule(step))`.
Rules see float32 (or wider) arrays; new weights keep their dtype.

Writing a new optimizer takes one class; for example, sign descent:

>>> import jax.numpy as jnp
>>> from minitrax import optimizers
>>> class SignSGD(optimizers.Optimizer):
...   '''w <- w - learning_rate * sign(g)  (Bernstein et al., 2018).'''
...   def __init__(self, learning_rate=0.01, clip_grad_norm=None):
...     super().__init__(learning_rate=learning_rate,
...                      clip_grad_norm=clip_grad_norm)
...   def init(self, weights):
...     return ()
...   def update(self, step, grads, weights, slots, opt_params):
...     del step
...     return weights - opt_params['learning_rate'] * jnp.sign(grads), slots
>>> opt = SignSGD(learning_rate=0.5)
>>> slots, opt_params = opt.tree_init({'w': jnp.zeros(2), 'b': ()})
>>> new_weights, slots, stats = opt.tree_update(
...     0, {'w': jnp.array([3., -1.]), 'b': ()}, {'w': jnp.zeros(2), 'b': ()},
...     slots, opt_params)
>>> new_weights['w']
Array([-0.5,  0.5], dtype=float32)

The optimizers here use Trax 1.2.3's update rules and defaults; each class
docstring gives its formula and paper.
"""

from minitrax.optimizers.adafactor import Adafactor
from minitrax.optimizers.adam import Adam
from minitrax.optimizers.base import Optimizer
from minitrax.optimizers.momentum import Momentum
from minitrax.optimizers.rms_prop import RMSProp
from minitrax.optimizers.sgd import SGD
from minitrax.optimizers.sm3 import SM3

__all__ = [
    'Adafactor',
    'Adam',
    'Momentum',
    'Optimizer',
    'RMSProp',
    'SGD',
    'SM3',
]
