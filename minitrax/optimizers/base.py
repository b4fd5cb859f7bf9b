"""`Optimizer`: an update rule for one array, lifted over trees of weights.

A subclass writes the rule for ONE weight array:

  * `init(weights) -> slots`: a tuple of arrays (possibly empty).
  * `update(step, grads, weights, slots, opt_params)
    -> (new_weights, new_slots)`.

This class lifts the rule over any tree of weights (tuples, lists, dicts, with
empty tuples `()` for layers without weights) in `tree_init` and
`tree_update`, clips gradients by their global norm when asked, reports the
gradient and weight norms, and keeps each weight's dtype.

Precision: the rules see weights and gradients of at least float32 precision
(bfloat16 and float16 arrays are upcast), so slots are float32 for such
weights; the new weights are cast back to the dtype the weights came in.

Hyperparameters, the learning rate included, travel in `opt_params`: a dict
of float32 scalar arrays. A compiled step takes `opt_params` as an argument,
so a schedule can change any of them every step without a recompile.
"""

import collections.abc
import math

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.errors import OptimizerError


class Optimizer:
  """Base class of optimizers: a per-array rule lifted over trees.

  Construct with keyword hyperparameters; every one becomes an entry of
  `opt_params`, a float32 scalar that the Trainer may replace each step (see
  `with_schedule`). Flags that change the shape of the computation (such as
  `Adafactor(factored=...)`) are plain attributes, not hyperparameters.

  Every subclass can be built with no arguments, so a Trainer can be given
  the class itself (`optimizer=Adam`) and call it.

  Args:
    learning_rate: The step size before any schedule; default 0.01 (Trax's).
    clip_grad_norm: None, or a positive float: if the global L2 norm of all
      gradients exceeds it, every gradient is scaled by
      `clip_grad_norm / norm`. Stored in `opt_params['clip_grad_norm']`.
    **hyperparameters: Further real-valued hyperparameters of the rule.

  Raises:
    OptimizerError: if a hyperparameter is not a finite real number, or
      `clip_grad_norm` is not positive.
  """

  def __init__(self, learning_rate=0.01, clip_grad_norm=None, **hyperparameters):
    name = type(self).__name__
    values = {'learning_rate': learning_rate, **hyperparameters}
    if clip_grad_norm is not None:
      values['clip_grad_norm'] = clip_grad_norm
    self._hyperparameters = {k: _real(name, k, v) for k, v in values.items()}
    self._clip = clip_grad_norm is not None
    if self._clip and self._hyperparameters['clip_grad_norm'] <= 0:
      raise OptimizerError(f'{name}: clip_grad_norm must be None or > 0, got {clip_grad_norm!r}')

  # Subclass interface: the rule for one array.

  def init(self, weights):
    """Creates the slots for one weight array.

    Args:
      weights: One array, shape `S`, dtype float32 or wider.

    Returns:
      A tuple of arrays (an empty tuple if the rule keeps no state).
    """
    raise NotImplementedError(f'{type(self).__name__} must define init(weights) -> slots')

  def update(self, step, grads, weights, slots, opt_params):
    """Computes one update of one weight array.

    Args:
      step: int32 scalar array: the number of updates done before this one
        (0 on the first update).
      grads: Gradient, shape `S`, same dtype as `weights`.
      weights: One array, shape `S`, dtype float32 or wider.
      slots: The tuple this rule's `init` (or previous `update`) returned.
      opt_params: Dict of float32 scalars, `learning_rate` among them.

    Returns:
      `(new_weights, new_slots)`: new_weights of shape `S`; new_slots a tuple
      of arrays shaped like `slots`.
    """
    raise NotImplementedError(f'{type(self).__name__} must define update(step, grads, weights, '
                              'slots, opt_params) -> (new_weights, new_slots)')

  # Lifted over trees.

  @property
  def hyperparameters(self):
    """The constructor's hyperparameters as a dict of Python floats."""
    return dict(self._hyperparameters)

  @property
  def slots(self):
    """The optimizer's slots (Trax 1.4's `opt.slots`): of the last eager `tree_init`, as set, or
    those of the training run that tracks them (`track_slots`); None before any.

    Trax's flat form: a tuple with one tuple of slot arrays per weight array,
    in tree order. `tree_update` is pure and stores nothing here.
    """
    source = getattr(self, '_slots_source', None)
    return source() if source is not None else getattr(self, '_slots', None)

  @slots.setter
  def slots(self, slots):
    self._slots, self._slots_source = slots, None

  def track_slots(self, source):
    """Makes `slots` return `source()` (a training loop's current slots, read on access).

    A loop's slots live on the devices and are donated to each compiled step,
    so it hands out a function that copies them when asked, rather than a
    second copy kept here.
    """
    self._slots, self._slots_source = None, source

  @property
  def opt_params(self):
    """A fresh dict of float32 scalar arrays, one per hyperparameter."""
    return {k: jnp.asarray(v, jnp.float32) for k, v in self._hyperparameters.items()}

  def tree_init(self, weights):
    """Creates the slots for a whole tree of weights; pure and jit-able.

    Args:
      weights: A tree (tuples, lists, dicts) of arrays.

    Returns:
      `(slots, opt_params)`: slots is a tree with the structure of `weights`
      whose every leaf is replaced by that leaf's tuple of slot arrays;
      opt_params is `self.opt_params`.
    """
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(weights)
    slots = [self._init_leaf(path, w) for path, w in paths_and_leaves]
    if not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(slots)):
      self._slots = tuple(slots)  # kept for `slots` unless traced (never store a tracer)
    return treedef.unflatten(slots), self.opt_params

  def tree_update(self, step, grads, weights, slots, opt_params):
    """Updates a whole tree of weights; pure and jit-able.

    Args:
      step: int (or int32 scalar array): updates done so far, 0 at first.
      grads: Tree of gradients with exactly the structure of `weights`.
      weights: Tree of arrays.
      slots: Tree from `tree_init` or a previous `tree_update`.
      opt_params: Dict with exactly the keys of `self.opt_params`.

    Returns:
      `(new_weights, new_slots, stats)`: new_weights has the structure and
      dtypes of `weights`; stats is `{'gradients_l2': ..., 'weights_l2': ...}`,
      the global L2 norms (float32 scalars) of the gradients before clipping
      and of the weights before the update.

    Raises:
      OptimizerError: if the trees do not match or opt_params has missing or
        unknown keys.
    """
    self._check_opt_params(opt_params)
    step = jnp.asarray(step, jnp.int32)
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(weights)
    paths = [path for path, _ in paths_and_leaves]
    w_leaves = [w for _, w in paths_and_leaves]
    g_leaves = self._leaves_like(treedef, grads, 'grads')
    s_leaves = self._leaves_like(treedef, slots, 'slots')
    stats = {'gradients_l2': global_norm(g_leaves), 'weights_l2': global_norm(w_leaves)}
    if self._clip:
      g_leaves = clip_leaves(g_leaves, stats['gradients_l2'], opt_params['clip_grad_norm'])
    new_w, new_s = [], []
    for path, g, w, s in zip(paths, g_leaves, w_leaves, s_leaves):
      w2, s2 = self._update_leaf(path, step, g, w, s, opt_params)
      new_w.append(w2)
      new_s.append(s2)
    return treedef.unflatten(new_w), treedef.unflatten(new_s), stats

  @staticmethod
  def with_schedule(opt_params, schedule_values):
    """Merges a schedule's output into opt_params (for the Trainer).

    For example, each step: `opt_params = Optimizer.with_schedule(opt_params,
    schedule(step))`.

    Args:
      opt_params: Dict of float32 scalars, as from `tree_init`.
      schedule_values: Dict `{name: value}` with names from opt_params, or a
        bare number, taken as the learning rate.

    Returns:
      A new dict: opt_params with the scheduled values as float32 scalars.

    Raises:
      OptimizerError: if a name is not in opt_params or a value is not a
        scalar.
    """
    if not isinstance(schedule_values, collections.abc.Mapping):
      schedule_values = {'learning_rate': schedule_values}
    unknown = sorted(set(schedule_values) - set(opt_params))
    if unknown:
      raise OptimizerError(f'Optimizer.with_schedule: the schedule sets {unknown}, which the '
                           f'optimizer does not have; valid names are {sorted(opt_params)}')
    merged = dict(opt_params)
    for name, value in schedule_values.items():
      value = jnp.asarray(value, jnp.float32)
      if value.shape != ():
        raise OptimizerError(f'Optimizer.with_schedule: {name!r} must be a scalar, got shape '
                             f'{value.shape}')
      merged[name] = value
    return merged

  def __repr__(self):
    args = ', '.join(f'{k}={v!r}' for k, v in self._hyperparameters.items())
    return f'{type(self).__name__}({args})'

  # Helpers.

  def _init_leaf(self, path, weights):
    slots = self.init(_compute_view(weights))
    if not isinstance(slots, (tuple, list)):
      raise OptimizerError(f'{type(self).__name__}.init must return a tuple of arrays, got '
                           f'{type(slots).__name__} for weights{jax.tree_util.keystr(path)}')
    return tuple(slots)

  def _update_leaf(self, path, step, grads, weights, slots, opt_params):
    w = _compute_view(weights)
    new_w, new_s = self.update(step, jnp.asarray(grads, w.dtype), w, slots, opt_params)
    if jnp.shape(new_w) != w.shape:
      raise OptimizerError(f'{type(self).__name__}.update returned weights of shape '
                           f'{jnp.shape(new_w)} for weights{jax.tree_util.keystr(path)} of '
                           f'shape {w.shape}')
    return new_w.astype(jnp.asarray(weights).dtype), tuple(new_s)

  def _leaves_like(self, treedef, tree, what):
    """The subtrees of `tree` at the positions of treedef's leaves."""
    if what == 'grads' and jax.tree.structure(tree) != treedef:
      raise OptimizerError(f'{type(self).__name__}.tree_update: grads must have the structure '
                           f'of weights.\n  weights: {treedef}\n  grads:   '
                           f'{jax.tree.structure(tree)}')
    try:
      return treedef.flatten_up_to(tree)
    except (ValueError, TypeError) as e:
      raise OptimizerError(f'{type(self).__name__}.tree_update: {what} do not fit the weights '
                           f'tree {treedef}; make them with tree_init on these weights') from e

  def _check_opt_params(self, opt_params):
    expected, got = set(self._hyperparameters), set(opt_params)
    if expected != got:
      missing, unknown = sorted(expected - got), sorted(got - expected)
      raise OptimizerError(f'{type(self).__name__}.tree_update: opt_params has missing keys '
                           f'{missing} and unknown keys {unknown}; expected exactly '
                           f'{sorted(expected)} (make opt_params with tree_init)')


def global_norm(leaves):
  """The L2 norm of a list of arrays taken as one vector; float32 scalar."""
  total = jnp.zeros((), jnp.float32)
  for x in leaves:
    total = total + jnp.sum(jnp.square(jnp.asarray(x, jnp.float32)))
  return jnp.sqrt(total)


def clip_leaves(leaves, norm, max_norm):
  """Scales all leaves by `max_norm / norm` if `norm > max_norm`.

  Args:
    leaves: List of arrays (gradients).
    norm: Their global L2 norm, a scalar.
    max_norm: The largest norm allowed, a scalar.

  Returns:
    A list of arrays, shapes and dtypes as `leaves`.
  """
  scale = jnp.where(norm > max_norm, max_norm / norm, 1.0)
  return [(g * scale).astype(jnp.asarray(g).dtype) for g in leaves]


def _compute_view(x):
  """`x` as an array of at least float32 precision."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _real(owner, name, value):
  """`value` as a finite Python float, or an OptimizerError naming it."""
  ok = not isinstance(value, (bool, np.bool_, str))
  if ok:
    try:
      value = float(value)
    except (TypeError, ValueError):
      ok = False
  if not ok or not math.isfinite(value):
    raise OptimizerError(f'{owner}: hyperparameter {name} must be a finite real number, got '
                         f'{value!r}')
  return value
