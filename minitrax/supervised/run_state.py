"""`RunState`: everything a training run needs to continue exactly, under names.

A run trains `Serial(model, loss)`; its weights and state are kept as the
model's and the loss's parts, next to the optimizer's slots and
hyperparameters, the step, the random seed, the positions of the training and
evaluation streams and the metric history. The compiled step takes and
returns the `(model, loss)` pairs (`run.weights`, `run.state`); a checkpoint
(`run_checkpoint`) saves and restores the named fields.

Randomness: one seed gives three keys (`run_keys`), for weight
initialisation, training steps and evaluation. Keys use JAX's default
generator, 'threefry2x32' (dropout masks come from `layers.masks`, so the
generator only splits keys and initialises weights; there threefry compiled
faster than 'rbg' on CPU: the codelab's first epoch took 4.6-5.0 s against
5.3-5.5 s).
"""

import collections
import typing

import numpy as np

import jax

from minitrax.errors import ConfigError
from minitrax.supervised.history import History

RNG_IMPL = 'threefry2x32'

# The Trainer's `state` property, with Trax 1.2's names (host arrays).
TrainerState = collections.namedtuple('TrainerState',
                                      ['step', 'opt_state', 'history', 'model_state'])
OptState = collections.namedtuple('OptState', ['weights', 'slots', 'opt_params'])


class RunState(typing.NamedTuple):
  """The state of a training run; arrays on the host or on the devices.

  Attributes:
    step: training steps done.
    model_weights, model_state: the model's trees.
    loss_weights, loss_state: the loss layer's trees (usually empty).
    slots: the optimizer's slots, one tree per weight of `Serial(model, loss)`.
    opt_params: the optimizer's hyperparameters, `{name: float32 scalar}`.
    seed: the run's random seed (see `run_keys`).
    input_position: the index of the next training batch.
    eval_position: the index of the next evaluation batch.
    history: the `History` of metrics.
  """
  step: int
  model_weights: typing.Any
  model_state: typing.Any
  loss_weights: typing.Any
  loss_state: typing.Any
  slots: typing.Any
  opt_params: dict
  seed: int
  input_position: int
  eval_position: int
  history: History

  @property
  def weights(self):
    """`(model_weights, loss_weights)`: the weights of `Serial(model, loss)`."""
    return (self.model_weights, self.loss_weights)

  @property
  def state(self):
    """`(model_state, loss_state)`: the state of `Serial(model, loss)`."""
    return (self.model_state, self.loss_state)

  def with_trees(self, weights, slots, state):
    """This run with the `Serial(model, loss)` trees `weights`, `slots` and `state`."""
    return self._replace(model_weights=weights[0], loss_weights=weights[1], model_state=state[0],
                         loss_state=state[1], slots=slots)

  def after_steps(self, weights, slots, state, n_steps):
    """This run after `n_steps` training steps that gave these trees."""
    return self.with_trees(weights, slots,
                           state)._replace(step=self.step + n_steps,
                                           input_position=self.input_position + n_steps)

  def trees(self):
    """`(weights, slots, state)` of `Serial(model, loss)`, as the compiled step takes them."""
    return self.weights, self.slots, self.state


def check_seed(seed, who='Trainer'):
  """`seed` as an int, if it is an int >= 0; else `ConfigError` naming `who`."""
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ConfigError(f'{who}: random_seed must be an int >= 0 or None, got {seed!r}')
  return int(seed)


def run_keys(seed):
  """`(init_key, train_key, eval_key)`: the run's three JAX keys from its seed."""
  return tuple(jax.random.split(jax.random.key(seed, impl=RNG_IMPL), 3))


def new_run(model_with_loss, optimizer, signature, seed):
  """A `RunState` at step 0: `model_with_loss` initialised (and holding the weights).

  Args:
    model_with_loss: `Serial(model, loss)`.
    optimizer: an `Optimizer`.
    signature: the training batch as a tuple of `ShapeDtype`s.
    seed: int >= 0.
  """
  weights, state = model_with_loss.init(signature, rng=run_keys(seed)[0])
  slots, opt_params = optimizer.tree_init(weights)
  optimizer.slots = None  # the run's slots are donated to the compiled step: keep no reference
  opt_params = {k: np.asarray(v, np.float32) for k, v in opt_params.items()}
  return RunState(step=0, model_weights=weights[0], model_state=state[0], loss_weights=weights[1],
                  loss_state=state[1], slots=slots, opt_params=opt_params, seed=seed,
                  input_position=0, eval_position=0, history=History())


__all__ = ['RunState', 'TrainerState', 'OptState', 'RNG_IMPL', 'check_seed', 'run_keys', 'new_run']
