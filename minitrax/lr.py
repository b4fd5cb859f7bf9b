"""Learning-rate schedules: functions of the training step.

One form reaches the optimizer: a function `step -> {name: float32 value}`
whose names are hyperparameters of the optimizer (`'learning_rate'`, ...),
merged into its `opt_params` each step (`Optimizer.with_schedule`).
`bind(lr_schedule, history)` makes that function from what a user passes as
`lr_schedule`, which is one of:

* None: no schedule (`step -> {}`).
* A step function `step -> value` or `step -> {name: value}`, as in later
  Trax: `constant`, `warmup`, `warmup_and_rsqrt_decay`, `cosine` and
  `multifactor` build these. A bare value is the learning rate.
* A factory of the training history, Trax 1.2's form (used by Trax's
  codelab), declared as such with the `@takes_history` decorator:
  `MultifactorSchedule(history=None, ...)` and `EvalAdjustingSchedule(history,
  ...)` return `step -> {'learning_rate': value}`. `bind` calls it with the
  history; the Trainer binds it again after each epoch, so a schedule can
  follow the metrics.

The declaration is explicit: nothing is guessed from parameter names. An
unmarked factory is called with a step and returns a function, which `bind`
reports with the fix (mark it with `@minitrax.lr.takes_history`).

Every schedule takes a Python or NumPy int step (computed on the host in
float64, returned as a NumPy float32 scalar) or a JAX int array, traced or
not (computed with `jax.numpy`, returned as a float32 scalar array), so the
same schedule runs on the host each step or inside a compiled step.

>>> MultifactorSchedule()(400)
{'learning_rate': np.float32(0.005)}
>>> bind(warmup(9, 0.5), history=None)(5)
{'learning_rate': np.float32(0.25)}
"""

import collections.abc
import math

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_callable, check_int, check_positive, check_real
from minitrax.errors import OptimizerError

_TAKES_HISTORY = 'minitrax_takes_history'  # the function attribute set by `takes_history`

FACTORS = ('constant', 'linear_warmup', 'rsqrt_decay', 'rsqrt_normalized_decay', 'decay_every',
           'cosine_decay', 'two_constants')


def takes_history(factory):
  """Declares `factory` a factory of the training history (Trax 1.2's form).

  `factory(history, **kwargs)` must return a schedule `step -> value` or
  `step -> {name: value}`. The mark is a function attribute, so it survives
  `functools.wraps` (as in gin's `external_configurable`).

  >>> @takes_history
  ... def halving(history, constant=0.1):
  ...   return lambda step: constant / 2 ** len(history.get('eval', 'metrics/loss'))

  Args:
    factory: a function whose first argument is the training history.

  Returns:
    `factory` itself, marked.
  """
  check_callable('takes_history', 'factory', factory, 'a function of the training history',
                 error=OptimizerError)
  setattr(factory, _TAKES_HISTORY, True)
  return factory


def bind(lr_schedule, history):
  """The function `step -> {name: float32 value}` that `lr_schedule` stands for.

  Args:
    lr_schedule: None (no schedule), a factory marked with `@takes_history`
      (called here with `history`), or a step function `step -> value` or
      `step -> {name: value}`.
    history: the training history passed to a marked factory.

  Returns:
    A function of the step returning a dict of float32 scalars (NumPy for a
    host step, JAX for an array step); a bare value is `'learning_rate'`.

  Raises:
    OptimizerError: `lr_schedule` (or what a marked factory returns) is not
      callable; or, when called, a step function returns a function (an
      unmarked factory of the history).
  """
  if lr_schedule is None:
    return lambda step: {}
  check_callable('bind', 'lr_schedule', lr_schedule,
                 'None, a function step -> value or a factory marked with @takes_history',
                 error=OptimizerError)
  schedule = lr_schedule
  if getattr(lr_schedule, _TAKES_HISTORY, False):
    schedule = lr_schedule(history)
    check_callable('bind', f'{_name(lr_schedule)}(history)', schedule, 'a function step -> value',
                   error=OptimizerError)

  def values(step):
    """`{name: float32 value}` of the schedule at `step`."""
    result = schedule(step)
    if callable(result):
      raise OptimizerError(
          f'bind: lr_schedule {_name(lr_schedule)} returned a function for step {step!r}, so '
          f'it looks like a factory of the training history; mark it with '
          f'@minitrax.lr.takes_history')
    if not isinstance(result, collections.abc.Mapping):
      result = {'learning_rate': result}
    return {name: _as_float32(value) for name, value in result.items()}

  return values


def _name(fn):
  return getattr(fn, '__name__', repr(fn))


def _as_float32(value):
  """`value` as a float32 scalar: JAX for a JAX array (traced or not), else NumPy."""
  if isinstance(value, jax.Array):
    return jnp.asarray(value, jnp.float32)
  return np.float32(value)


def multifactor(factors='constant * linear_warmup * rsqrt_decay', constant=0.1, warmup_steps=400,
                decay_factor=0.5, steps_per_decay=20000, steps_per_cycle=100000,
                second_constant=0.01, second_constant_step=10000, minimum=None):
  r"""A schedule that is the product of named factors, as in Trax.

  With step s, warmup steps n:

  * `constant`: `constant`.
  * `linear_warmup`: :math:`\min(1, s / n)` (1 when n = 0).
  * `rsqrt_decay`: :math:`1 / \sqrt{\max(s, n)}`.
  * `rsqrt_normalized_decay`: :math:`\sqrt{n} / \sqrt{\max(s, n)}` (1 up to n).
  * `decay_every`: `decay_factor` to the power
    :math:`\lfloor s / \text{steps\_per\_decay} \rfloor`.
  * `cosine_decay`: :math:`\frac12 (1 + \cos(\pi\, \mathrm{frac}(p)))`,
    :math:`p = \max(0, (s - n) / \text{steps\_per\_cycle})` (restarts each
    cycle; Loshchilov and Hutter, 2017, https://arxiv.org/abs/1608.03983).
  * `two_constants`: `constant` before step `second_constant_step`, then
    `second_constant` (Trax 1.4).

  If `minimum` is given, the result is raised to at least `minimum`.

  Args:
    factors: Factor names joined by `*`, parsed here, once.
    constant: The `constant` factor.
    warmup_steps: n (>= 0; >= 1 for the rsqrt factors).
    decay_factor: Base of `decay_every`.
    steps_per_decay: Period of `decay_every` (int >= 1).
    steps_per_cycle: Period of `cosine_decay` (> 0).
    second_constant, second_constant_step: of `two_constants`.
    minimum: None, or the least value returned.

  Returns:
    A function `step -> value`, value a float32 scalar.

  Raises:
    OptimizerError: for an unknown factor (naming it and the valid ones) or
      an argument out of range.
  """
  check_real('multifactor', 'second_constant', second_constant, finite=True, error=OptimizerError)
  check_int('multifactor', 'second_constant_step', second_constant_step, 0, error=OptimizerError)
  return _multifactor('multifactor', factors, constant, warmup_steps, decay_factor, steps_per_decay,
                      steps_per_cycle, minimum, (second_constant, second_constant_step))


def constant(value):
  """`value` from step 1 on; 0 at step 0 (Trax 1.4's numbers: a ramp from (0, 0) to (1, value)).

  Trax's step functions count steps from 1, as its `Loop` does.

  Args:
    value: The learning rate.

  Returns:
    A function `step -> value`, value a float32 scalar.
  """
  return _body_and_tail('constant', value, body_start=1)


def warmup(n_warmup_steps, max_value):
  """Linear warm-up on the line from (0, 0) to (n + 1, max_value), then `max_value` from n + 1.

  Trax 1.4's numbers: `warmup(9, 0.01)(1) == 0.001`.

  Args:
    n_warmup_steps: n, the steps of warm-up (>= 0).
    max_value: The value from step n + 1 on.

  Returns:
    A function `step -> value`, value a float32 scalar.
  """
  check_int('warmup', 'n_warmup_steps', n_warmup_steps, 0, error=OptimizerError)
  return _body_and_tail('warmup', max_value, body_start=n_warmup_steps + 1)


def warmup_and_rsqrt_decay(n_warmup_steps, max_value):
  r"""Linear warm-up to `max_value` at step n + 1, then reciprocal square root.

  Up to step n the value is on the line from (0, 0) to (n + 1, max_value);
  from step n + 1 on it is :math:`\text{max\_value} \sqrt{(n + 1) / s}`
  (Trax 1.4's numbers: `warmup_and_rsqrt_decay(24, 0.25)(25) == 0.25`).

  Args:
    n_warmup_steps: n, the steps of warm-up (>= 0).
    max_value: The value at step n + 1.

  Returns:
    A function `step -> value`, value a float32 scalar.
  """
  check_int('warmup_and_rsqrt_decay', 'n_warmup_steps', n_warmup_steps, 0, error=OptimizerError)
  return _body_and_tail('warmup_and_rsqrt_decay', max_value, tail_start=n_warmup_steps + 1)


def _body_and_tail(owner, value, body_start=None, tail_start=None):
  """A ramp from (0, 0) to (start, value), `value` (the body), then an rsqrt tail if any.

  `start` is `body_start`, or `tail_start` when there is no body; the tail
  from `tail_start` on is `value * sqrt(tail_start / step)`.
  """
  check_real(owner, 'value' if owner == 'constant' else 'max_value', value, finite=True,
             error=OptimizerError)
  start = body_start or tail_start

  def schedule(step):
    """The value at `step` (int or int array)."""
    xp, _, s = _numeric_step(step)
    out = xp.where(s < start, s / start * value, value)
    if tail_start is not None:
      tail = value * xp.sqrt(tail_start / xp.maximum(s, 1.0))
      out = xp.where(s >= tail_start, tail, out)
    return _float32(xp, out)

  return schedule


def cosine(n_warmup_steps, max_value, steps_per_cycle):
  """Linear warm-up to `max_value`, then cosine decays that restart.

  The value falls from `max_value` at step `n_warmup_steps + k *
  steps_per_cycle` towards 0 along half a cosine (SGDR, Loshchilov and
  Hutter, 2017, https://arxiv.org/abs/1608.03983).

  Args:
    n_warmup_steps: Steps of linear warm-up (>= 0).
    max_value: The value at the start of each cycle.
    steps_per_cycle: Steps per cosine cycle (> 0).

  Returns:
    A function `step -> value`, value a float32 scalar.
  """
  return multifactor('constant * linear_warmup * cosine_decay', constant=max_value,
                     warmup_steps=n_warmup_steps, steps_per_cycle=steps_per_cycle)


@takes_history
def MultifactorSchedule(
    history=None,  # pylint: disable=invalid-name
    factors='constant * linear_warmup * rsqrt_decay',
    constant=0.1,  # pylint: disable=redefined-outer-name
    warmup_steps=400,
    decay_factor=0.5,
    steps_per_decay=20000,
    steps_per_cycle=100000):
  """Trax 1.2's factor-based schedule, in its history-taking form.

  The factors are those of `multifactor`. With the defaults the value rises
  linearly to 0.1 / sqrt(400) = 0.005 at step 400, then falls as 0.1 /
  sqrt(step).

  Args:
    history: Ignored (the Trainer passes its training history).
    factors: Factor names joined by `*`; see `multifactor`.
    constant: The `constant` factor.
    warmup_steps: Steps of linear warm-up.
    decay_factor: Base of `decay_every`.
    steps_per_decay: Period of `decay_every`.
    steps_per_cycle: Period of `cosine_decay`.

  Returns:
    A function `step -> {'learning_rate': value}`.

  Raises:
    OptimizerError: for an unknown factor or an argument out of range.
  """
  del history
  schedule = _multifactor('MultifactorSchedule', factors, constant, warmup_steps, decay_factor,
                          steps_per_decay, steps_per_cycle, minimum=None)

  def learning_rate(step):
    """`{'learning_rate': value}` at `step`."""
    return {'learning_rate': schedule(step)}

  return learning_rate


@takes_history
def EvalAdjustingSchedule(
    history,  # pylint: disable=invalid-name
    constant=0.1,  # pylint: disable=redefined-outer-name
    steps_to_decrease=20,
    improvement_margin=0.001,
    decrease_rate=1.5,
    history_mode='eval',
    metric='metrics/accuracy'):
  """Trax 1.2's schedule that lowers its constant when a metric stalls.

  Reads `history.get(history_mode, metric)`, a list of `(step, value)` in
  time order, where a higher value is better. Every `steps_to_decrease`
  evaluations without improvement (see `_n_decreases`) divide the constant by
  `decrease_rate`. The result is `MultifactorSchedule(constant=adjusted)` with
  its other defaults.

  Args:
    history: An object with `get(mode, metric) -> [(step, value), ...]`.
    constant: The starting constant.
    steps_to_decrease: Evaluations without improvement per decrease (>= 1).
    improvement_margin: Relative improvement that counts as one.
    decrease_rate: Divisor of the constant at each decrease (> 0).
    history_mode: The history mode to read, e.g. 'eval' or 'train'.
    metric: The metric to read.

  Returns:
    A function `step -> {'learning_rate': value}`.
  """
  who = 'EvalAdjustingSchedule'
  check_real(who, 'constant', constant, finite=True, error=OptimizerError)
  check_real(who, 'improvement_margin', improvement_margin, finite=True, error=OptimizerError)
  check_int(who, 'steps_to_decrease', steps_to_decrease, 1, error=OptimizerError)
  check_real(who, 'decrease_rate', decrease_rate, finite=True, error=OptimizerError)
  check_positive(who, 'decrease_rate', decrease_rate, error=OptimizerError)
  values = [value for _, value in history.get(history_mode, metric)]
  adjusted = constant
  for _ in range(_n_decreases(values, steps_to_decrease, improvement_margin)):
    adjusted /= decrease_rate
  return MultifactorSchedule(history, constant=adjusted)


def _n_decreases(values, steps_to_decrease, improvement_margin):
  """How many times `EvalAdjustingSchedule` divides its constant, for metric `values`.

  Walking back from the newest value `cur` over the earlier ones `prev` (as
  Trax does, the oldest value is never compared): if `cur < prev * (1 +
  improvement_margin)`, that counts as one evaluation without improvement,
  else `cur` becomes `prev` and the count restarts. Every `steps_to_decrease`
  evaluations without improvement make one decrease (and `cur` becomes
  `prev`).
  """
  n, stalled, cur = 0, 0, values[-1] if values else None
  for prev in reversed(values[1:-1]):
    if cur < prev * (1 + improvement_margin):
      stalled += 1
    else:
      cur, stalled = prev, 0
    if stalled >= steps_to_decrease:
      n += 1
      cur, stalled = prev, 0
  return n


def _multifactor(owner, factors, constant, warmup_steps, decay_factor, steps_per_decay,
                 steps_per_cycle, minimum, two_constants=(0.01, 10000)):
  """`multifactor`, with errors naming `owner`."""
  names = _parse_factors(factors, owner)
  _check_multifactor_args(owner, names, constant, warmup_steps, decay_factor, steps_per_decay,
                          steps_per_cycle, minimum)
  n = warmup_steps

  def schedule(step):
    """The product of the factors at `step` (int or int array)."""
    xp, step, s = _numeric_step(step)
    value = 1.0
    for name in names:
      if name == 'constant':
        value = value * constant
      elif name == 'linear_warmup':
        value = value * (xp.minimum(1.0, s / n) if n else 1.0)
      elif name == 'rsqrt_decay':
        value = value / xp.sqrt(xp.maximum(s, n))
      elif name == 'rsqrt_normalized_decay':
        value = value * xp.sqrt(n / xp.maximum(s, n))
      elif name == 'decay_every':
        value = value * decay_factor**(step // steps_per_decay)
      elif name == 'two_constants':
        value = value * xp.where(step < two_constants[1], constant, two_constants[0])
      else:  # cosine_decay
        progress = xp.maximum(0.0, (s - n) / steps_per_cycle)
        value = value * 0.5 * (1.0 + xp.cos(math.pi * (progress % 1.0)))
    if minimum is not None:
      value = xp.maximum(value, minimum)
    return _float32(xp, value)

  return schedule


def _check_multifactor_args(owner, names, constant, warmup_steps, decay_factor, steps_per_decay,
                            steps_per_cycle, minimum):
  """Raises OptimizerError, naming `owner`, for an argument out of range."""
  for arg, value in [('constant', constant), ('decay_factor', decay_factor)]:
    check_real(owner, arg, value, finite=True, error=OptimizerError)
  if minimum is not None:
    check_real(owner, 'minimum', minimum, finite=True, error=OptimizerError)
  check_int(owner, 'warmup_steps', warmup_steps, 0, error=OptimizerError)
  check_int(owner, 'steps_per_decay', steps_per_decay, 1, error=OptimizerError)
  check_real(owner, 'steps_per_cycle', steps_per_cycle, finite=True, error=OptimizerError)
  check_positive(owner, 'steps_per_cycle', steps_per_cycle, error=OptimizerError)
  rsqrt = {'rsqrt_decay', 'rsqrt_normalized_decay'} & set(names)
  if rsqrt and warmup_steps < 1:
    raise OptimizerError(f'{owner}: {sorted(rsqrt)[0]} divides by sqrt(max(step, '
                         f'warmup_steps)), so warmup_steps must be >= 1, got {warmup_steps}')


def _parse_factors(factors, owner):
  """The list of factor names in `factors`, each checked against FACTORS."""
  if not isinstance(factors, str):
    raise OptimizerError(f'{owner}: factors must be a string like "constant * linear_warmup", '
                         f'got {factors!r}')
  names = [name.strip() for name in factors.split('*')]
  for name in names:
    if name not in FACTORS:
      raise OptimizerError(f'{owner}: unknown factor {name!r} in factors={factors!r}; valid '
                           f'factors are: {", ".join(FACTORS)}')
  return names


def _numeric_step(step):
  """`(xp, int_step, float_step)`: NumPy for host ints, jax.numpy for arrays."""
  if isinstance(step, jax.Array):
    step = jnp.asarray(step)
    if not jnp.issubdtype(step.dtype, jnp.integer):
      step = step.astype(jnp.int32)
    return jnp, step, step.astype(jnp.float32)
  step = np.int64(step)
  return np, step, np.float64(step)


def _float32(xp, value):
  return np.float32(value) if xp is np else jnp.asarray(value, jnp.float32)
