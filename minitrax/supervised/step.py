"""Compiled, data-parallel training and evaluation steps.

Each step is one `jax.jit` of a `jax.shard_map` over a one-axis device mesh
(`'batch'`): the batch is split over the devices (`P('batch')`), weights,
optimizer slots, model state and hyperparameters are replicated (`P()`).

Exactness across device counts. The loss of a batch is a weighted mean over
the whole (global) batch, `L = sum_d W_d L_d / W`, where device `d` holds loss
weights summing to `W_d` and `W = sum_d W_d`. So each device differentiates
its own mean loss `L_d` and the gradients are combined as
`sum_d (W_d / W) grad_d`; a plain mean over devices would be wrong whenever
the shards carry different weight. Evaluation metrics that are weighted means
are combined the same way; `SequenceAccuracy` (a mean over equal shards) and
`SumOfWeights` (reported per core, as Trax does) are averaged. Floating-point
model state (e.g. BatchNorm statistics) is averaged over devices.

Randomness: the key of a step is `fold_in(key, step)`, and each device folds
in its index, so dropout is a pure function of (seed, step, device).

The steps use `check_vma=False`: each device differentiates its own loss (its
gradients are local) and the combinations above are explicit collectives.
With JAX's replication typing on, layers that build a `lax.scan` carry from
constants (RNNs) would need to know about the mesh.
"""

import functools
import typing

import numpy as np

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from minitrax.data.device import BATCH_AXIS
from minitrax.errors import ConfigError
from minitrax.layers.metrics import SequenceAccuracy, SumOfWeights
from minitrax.shapes import signature
from minitrax.supervised import sharding as sharding_lib

AXIS = BATCH_AXIS


def make_mesh(n_devices=None):
  """A one-axis mesh (`'batch'`) over the first `n_devices` local devices of every process.

  Default all local devices. In a run of several processes
  (`minitrax.distributed`) the mesh is global: the devices ordered by
  process, so process `p` holds the `p`-th part of every batch.
  """
  devices = jax.local_devices()
  n = len(devices) if n_devices is None else n_devices
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(devices):
    raise ConfigError(f'n_devices must be an int from 1 to {len(devices)} (the local '
                      f'{devices[0].platform} devices), got {n_devices!r}')
  if jax.process_count() == 1:
    return Mesh(np.array(devices[:int(n)]), (AXIS,))
  by_process = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  chosen = [
      d for p in range(jax.process_count())
      for d in [d for d in by_process if d.process_index == p][:int(n)]
  ]
  return Mesh(np.array(chosen), (AXIS,))


def replicated(mesh):
  """The sharding that puts a whole copy of an array on every device of `mesh`."""
  return NamedSharding(mesh, P())


def loss_weight_fn(has_weights, id_to_mask):
  """`batch -> W_d`: the sum of the loss weights of a `(x, y[, w])` batch (shard).

  The weight of a target position is the given weight (if `has_weights`)
  times `y != id_to_mask` (if `id_to_mask` is not None), as in the losses.
  """
  layer = SumOfWeights(id_to_mask=id_to_mask, has_weights=has_weights)

  def weight_sum(batch):
    targets = batch[1]
    inputs = (targets, targets, batch[2]) if has_weights else (targets, targets)
    return layer.pure_fn(inputs, (), (), None)[0]

  return weight_sum


def trailing_weight_fn(n_inputs, has_weights):
  """`batch -> W_d` for Trax 1.4's batches `(inputs..., targets[, weights])` (a shard).

  With `has_weights` the weights are the last array and `W_d` is their sum
  as given (the denominator of Trax 1.4's weighted means); without, every
  target element weighs 1.

  Args:
    n_inputs: the number of model inputs at the front of the batch.
    has_weights: whether the batch ends with the loss weights.
  """

  def weight_sum(batch):
    if has_weights:
      return jnp.sum(jnp.asarray(batch[-1], jnp.float32))
    return jnp.float32(np.size(batch[n_inputs]))

  return weight_sum


class _Devices:
  """Collectives over the mesh axis `axis`; with `axis=None` (one device, no mesh), identities."""

  def __init__(self, axis):
    self.axis = axis

  def psum(self, x):
    return x if self.axis is None else jax.lax.psum(x, self.axis)

  def pmean(self, x):
    return x if self.axis is None else jax.lax.pmean(x, self.axis)

  def pmax(self, x):
    return x if self.axis is None else jax.lax.pmax(x, self.axis)

  def index(self):
    return 0 if self.axis is None else jax.lax.axis_index(self.axis)

  def weighted_sum(self, value, w_d, w_total):
    """`sum_d (W_d / W) value_d` over devices; shards of weight 0 contribute 0."""
    return jax.tree.map(
        lambda v: self.psum(jnp.where(w_d > 0, v * (w_d / w_total), 0).astype(v.dtype)), value)

  def mean_state(self, state):
    """Model state made equal on all devices: floats averaged, other arrays by max."""

    def combine(x):
      x = jnp.asarray(x)
      if jnp.issubdtype(x.dtype, jnp.inexact):
        return self.pmean(x)
      if x.dtype == jnp.bool_:
        return self.pmax(x.astype(jnp.int32)).astype(jnp.bool_)
      return self.pmax(x)

    return jax.tree.map(combine, state)


def _compiled(device_fn, mesh, in_specs, out_specs, donate_argnums, layout=None):
  """`jit(shard_map(device_fn))` over `mesh`; plain Python if jit is disabled on one device.

  With `jax_disable_jit` (the command line's `--disable_jit`) and one device,
  the step runs op by op on real arrays, so `print` and `pdb` work inside layers.
  `layout`, if given, maps the outputs of the shard_map inside the jit (to
  annotate their shardings).
  """
  if jax.config.jax_disable_jit and mesh.size == 1:
    return functools.partial(device_fn, _Devices(None))
  mapped = jax.shard_map(functools.partial(device_fn, _Devices(AXIS)), mesh=mesh, in_specs=in_specs,
                         out_specs=out_specs, check_vma=False)
  if layout is not None:
    return jax.jit(lambda *args: layout(mapped(*args)), donate_argnums=donate_argnums)
  return jax.jit(mapped, donate_argnums=donate_argnums)


def _update(devices, model_with_loss, optimizer, weight_fn, reported, weights, slots, state,
            opt_params, batch, step, key):
  """One optimizer update on a device's shard of the global batch.

  `step` counts the updates done before this one; the optimizer is given
  `step + reported.step_offset`. Returns the new trees and the float32 values
  `(loss, gradients_l2, *reported.extra_stats)`.
  """
  rng = jax.random.fold_in(jax.random.fold_in(key, step), devices.index())
  w_d = weight_fn(batch)
  w_total = devices.psum(w_d)

  def objective(w):
    return model_with_loss.pure_fn(batch, w, state, rng)

  (loss, new_state), grads = jax.value_and_grad(objective, has_aux=True)(weights)
  grads = devices.weighted_sum(grads, w_d, w_total)
  # NaN when no position of the global batch has weight (0 / 0), else the weighted loss.
  loss = devices.weighted_sum(loss, w_d, w_total) / (w_total > 0)
  new_weights, new_slots, stats = optimizer.tree_update(step + reported.step_offset, grads, weights,
                                                        slots, opt_params)
  values = (loss, stats['gradients_l2']) + tuple(stats[name] for name in reported.extra_stats)
  return (new_weights, new_slots,
          devices.mean_state(new_state)), tuple(v.astype(jnp.float32) for v in values)


class _Reported(typing.NamedTuple):
  """What a training step reports besides the loss and gradient norm, and its step offset."""
  step_offset: int = 0
  extra_stats: tuple = ()


def make_train_step(model_with_loss, optimizer, mesh, weight_fn, n_steps=1, step_offset=0,
                    extra_stats=(), sharding='replicated'):
  """The compiled training step: up to `n_steps` optimizer updates per call.

  Args:
    model_with_loss: a layer `(x, y[, w]) -> loss` (the model, then the loss).
    optimizer: an `Optimizer`.
    mesh: from `make_mesh`.
    weight_fn: from `loss_weight_fn` or `trailing_weight_fn`.
    n_steps: updates per call (a `lax.scan`; more amortise the per-call cost).
    step_offset: added to the step the optimizer is given: 0 counts updates
      from 0 (Trax 1.2's Trainer), 1 from 1 (Trax 1.4's `Loop`, whose Adam
      bias correction sees step 1 at the first update).
    extra_stats: names of further optimizer statistics to report per update
      (e.g. `('weights_l2',)`).
    sharding: where the new weights and slots are placed: 'replicated' or
      'fsdp' (split over the mesh, see `supervised.sharding`); the step takes
      them placed either way (e.g. by `sharding.place`).

  Returns:
    `step_fn(weights, slots, state, opt_params, batches, first_step, n_active,
    key) -> (weights, slots, state, losses, gradient_norms, *extras)`. Update
    `i` (for `i < n_active`; the others are skipped) is step `first_step + i`,
    taken on the global batch `batches[i]` (every array stacked `(n_steps,
    batch, ...)`, the batch axis sharded over `mesh`) with hyperparameters
    `opt_params[name][i]`. `losses`, `gradient_norms` and each of `extras`
    (one per `extra_stats`) are float32 `(n_steps,)` (0 where skipped).
    Weights, slots and state are donated.
  """
  reported = _Reported(int(step_offset), tuple(extra_stats))
  n_values = 2 + len(reported.extra_stats)

  def device_steps(devices, weights, slots, state, opt_params, batches, first_step, n_active, key):

    def body(carry, xs):
      i, params, batch = xs
      update = functools.partial(_update, devices, model_with_loss, optimizer, weight_fn, reported)
      return jax.lax.cond(i < n_active, lambda c: update(*c, params, batch, first_step + i, key),
                          lambda c: (c, (jnp.float32(0),) * n_values), carry)

    carry, values = jax.lax.scan(body, (weights, slots, state),
                                 (jnp.arange(n_steps), opt_params, batches))
    return carry + tuple(values)

  def layout(outputs):
    weights, slots, *rest = outputs
    return (sharding_lib.constrain(weights, mesh,
                                   sharding), sharding_lib.constrain(slots, mesh, sharding), *rest)

  return _compiled(device_steps, mesh, (P(), P(), P(), P(), P(None, AXIS), P(), P(), P()),
                   (P(),) * (3 + n_values), (0, 1, 2), layout)


def bind_train_step(model_with_loss, optimizer, mesh, weight_fn, steps_per_call, key, step_offset=0,
                    extra_stats=(), sharding='replicated'):
  """`make_train_step` over a `RunState`: `step(run, chunk, count, params) -> (run, losses, norms,
  *extras)`.

  `chunk` is `count` global batches stacked and padded to `(steps_per_call,
  batch, ...)` (`data.device.DeviceBatches`), `params` the hyperparameter
  dicts of its `count` steps; the run's trees are donated and replaced.
  `step_offset`, `extra_stats` and `sharding` are `make_train_step`'s.
  """
  train_fn = make_train_step(model_with_loss, optimizer, mesh, weight_fn, steps_per_call,
                             step_offset, extra_stats, sharding)

  def step(run, chunk, count, params):
    weights, slots, state, *values = train_fn(*run.trees(), stack_params(params, steps_per_call),
                                              chunk, np.int32(run.step), np.int32(count), key)
    return (run.after_steps(weights, slots, state, count),) + tuple(values)

  return step


def stack_params(params, n_steps):
  """Per-step hyperparameter dicts as one dict of float32 `(n_steps,)`, the last repeated."""
  params = list(params) + [params[-1]] * (n_steps - len(params))
  return {name: np.asarray([p[name] for p in params], np.float32) for name in params[0]}


# Trax 1.4 metrics that are not weighted means (plain means over the batch, or sums).
_UNWEIGHTED_14 = frozenset([
    'SequenceAccuracy', 'MaskedSequenceAccuracy', 'CategoryAccuracy', 'CategoryCrossEntropy',
    'BinaryCrossEntropy', 'CrossEntropySum', 'WeightedSum', 'BinaryCrossEntropySum'
])


def _averaged(layer):
  """True for metrics combined by a plain mean over devices, not by loss weight.

  Trax 1.2's `SumOfWeights` and `SequenceAccuracy`, and Trax 1.4's metrics
  that are no weighted means (named in `_UNWEIGHTED_14`; sums are averaged
  over devices as Trax reports them, per core).
  """
  return isinstance(layer, (SumOfWeights, SequenceAccuracy)) or layer.name in _UNWEIGHTED_14


def _metric_value(layer, inputs):
  """A metric layer's float32 value on `inputs`; its trees are made for them (metrics built of
  sublayers, as Trax 1.4's, need their tree structure; a layer holding weights keeps them)."""
  weights, state = layer.make_weights_and_state(signature(inputs), jax.random.key(0))
  return layer.pure_fn(inputs, weights, state, None)[0].astype(jnp.float32)


def make_eval_step(model, metric_layers, mesh, weight_fn):
  """The compiled evaluation step.

  Args:
    model: the model in eval mode, `x -> model output`, taking the weights and
      state of the training model.
    metric_layers: metric layers `(output, y[, w]) -> scalar`, in the order of
      the returned values.
    mesh: from `make_mesh`.
    weight_fn: from `loss_weight_fn`.

  Returns:
    `eval_fn(weights, state, batch, key, totals) -> totals + values`, where
    `values` is a float32 vector with one entry per metric, each combined over
    the devices' shards of the global batch; `eval_fn.zeros()` is the first
    `totals` (placed as the outputs, so later calls reuse the first program).
  """

  def device_eval(devices, weights, state, batch, key, totals):
    rng = jax.random.fold_in(key, devices.index())
    n_in = model.n_in
    x = batch[0] if n_in == 1 else tuple(batch[:n_in])
    output, _ = model.pure_fn(x, weights, state, rng)
    rest = ((output,) if model.n_out == 1 else tuple(output)) + tuple(batch[n_in:])
    w_d = weight_fn(batch)
    w_total = devices.psum(w_d)
    values = []
    for layer in metric_layers:
      value = _metric_value(layer, rest[0] if layer.n_in == 1 else rest[:layer.n_in])
      if _averaged(layer):
        values.append(devices.pmean(value))
      else:
        values.append(devices.weighted_sum(value, w_d, w_total))
    return totals + jnp.stack(values)

  return _EvalStep(_compiled(device_eval, mesh, (P(), P(), P(AXIS), P(), P()), P(), (4,)), mesh,
                   len(metric_layers))


class _EvalStep:
  """The compiled eval step, and its first `totals` placed as the step places its outputs.

  A first `totals` of another placement (a plain `jnp.zeros`) would make the
  second call, which gets the first one's output, compile the step again.
  """

  def __init__(self, fn, mesh, n):
    self._fn, self._mesh, self._n = fn, mesh, n

  def __call__(self, weights, state, batch, key, totals):
    return self._fn(weights, state, batch, key, totals)

  def zeros(self):
    """float32 zeros of shape (n_metrics,), replicated over the mesh (each process its copy)."""
    zeros = np.zeros(self._n, np.float32)
    return jax.make_array_from_callback(zeros.shape, replicated(self._mesh), lambda i: zeros[i])


__all__ = [
    'AXIS', 'make_mesh', 'replicated', 'loss_weight_fn', 'trailing_weight_fn', 'make_train_step',
    'bind_train_step', 'make_eval_step', 'stack_params'
]
