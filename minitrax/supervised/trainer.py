"""`Trainer`: trains a model for epochs of steps, evaluates, saves checkpoints.

The codelab's API (Trax 1.2)::

    trainer = Trainer(model=tiny_transformer_lm, loss_fn=CrossEntropyLoss,
                      optimizer=Adafactor, lr_schedule=MultifactorSchedule,
                      inputs=copy_inputs, output_dir='~/train_dir/', has_weights=True)
    for _ in range(3):
      trainer.train_epoch(500, 2)   # 500 steps, then eval on 2 batches, then save

The model under training is `Serial(model(mode='train'), loss)` on the data
stack: a batch `(x, y[, w])` goes through the model, then `(output, y[, w])`
through the loss. Evaluation runs `model(mode='eval')` with the same weights
and reports Trax's five metrics. Steps are compiled and data-parallel
(`minitrax.supervised.step`); weights stay on the devices between steps.

`output_dir/model.pkl` keeps Trax's file name but is a minitrax msgpack
checkpoint (never a pickle) holding the model's 'weights' and 'state' (so
`layer.init_from_file` reads it), plus everything needed to continue exactly:
'step', 'slots', 'opt_params', 'history', 'input_position' (the next training
batch), 'eval_position', 'random_seed' and 'loss_weights'/'loss_state'.

Randomness: `random_seed=None` means seed 0, so runs are reproducible; the
key of training step `s` on device `d` is `fold_in(fold_in(train_key, s), d)`.
Keys use JAX's default generator, 'threefry2x32' (dropout masks come from
`layers.masks`, so the generator only splits keys and initialises weights;
there threefry compiled faster than 'rbg' on CPU: W1 first epoch 4.6-5.0 s
against 5.3-5.5 s).
"""

import collections
import collections.abc
import glob
import inspect
import os
import time

import numpy as np

import jax
import jax.numpy as jnp

from minitrax import checkpoint
from minitrax.data.prefetch import device_prefetch
from minitrax.errors import CheckpointError, ConfigError, LayerError, TrainingError
from minitrax.layers.base import Layer
from minitrax.layers.combinators import Serial
from minitrax.layers.metrics import METRICS
from minitrax.optimizers.base import Optimizer
from minitrax.supervised import step as step_lib
from minitrax.supervised.history import History
from minitrax.supervised.summaries import RunSummaries

TrainerState = collections.namedtuple('TrainerState', ['step', 'opt_state', 'history',
                                                       'model_state'])
OptState = collections.namedtuple('OptState', ['weights', 'slots', 'opt_params'])

FORMAT = 'minitrax.trainer'
RNG_IMPL = 'threefry2x32'
PROGRESS_SECS = 60.0  # A long epoch logs its progress this often.
_IN_FLIGHT = 2  # Compiled calls queued on the devices ahead of the host, at most.


def log(message):
  """Prints a log line to stdout at once (as Trax's `trainer_lib.log`)."""
  print(message, flush=True)


class Trainer:
  """Trains `model` on `inputs`; see the module docstring.

  Args:
    model: a function of `mode` returning the model layer (or a layer).
    loss_fn: a loss factory such as `CrossEntropyLoss` (called with
      `has_weights` and `id_to_mask`), or a loss layer.
    optimizer: an `Optimizer` class (built with its defaults) or instance.
    lr_schedule: a factory of the training history (`MultifactorSchedule`)
      returning `step -> {'learning_rate': ...}`, or a schedule `step -> value`.
    inputs: an `Inputs`, or a function returning one.
    output_dir: where checkpoints and summaries go; None for neither.
    random_seed: int; None means 0.
    n_devices: devices to split each batch over; default all local devices.
    checkpoints_at: steps at which to also keep `model_{step}.pkl`.
    should_save_checkpoints, should_write_summaries: bools.
    has_weights: whether batches carry loss weights as a third array.
    id_to_mask: target id whose positions count nothing (padding), or None.
    metrics: `{name: factory or layer}`; default Trax's five (`METRICS`).
    checkpoint_highest, checkpoint_lowest: metric names; the checkpoint of
      the best eval value so far is kept as `highest_<m>.pkl`/`lowest_<m>.pkl`.
  """

  def __init__(self, model, loss_fn, optimizer, lr_schedule, inputs, output_dir=None,
               random_seed=None, n_devices=None, checkpoints_at=None,
               should_save_checkpoints=True, should_write_summaries=True, has_weights=False,
               id_to_mask=None, metrics=None, checkpoint_highest=None, checkpoint_lowest=None):
    self._inputs = _as_inputs(inputs)
    self._mesh = step_lib.make_mesh(n_devices)
    self._signature = _batch_signature(self._inputs, has_weights)
    self._output_dir = os.path.expanduser(output_dir) if output_dir else None
    self._should_save = bool(should_save_checkpoints and self._output_dir)
    self._checkpoints_at = set(checkpoints_at or ())
    self._best = {'highest': checkpoint_highest, 'lowest': checkpoint_lowest}
    self._optimizer = optimizer if isinstance(optimizer, Optimizer) else optimizer()
    self._lr_schedule = lr_schedule
    self._build(model, loss_fn, metrics or METRICS, has_weights, id_to_mask)
    self._poisoned_at = None
    self._streams = {}
    if self._output_dir:
      os.makedirs(self._output_dir, exist_ok=True)
    self._restore_or_init(random_seed)
    self._summaries = RunSummaries(should_write_summaries and self._output_dir, self._step)

  # ---------------------------------------------------------------- setup

  def _build(self, model, loss_fn, metrics, has_weights, id_to_mask):
    """Makes the layers and the compiled train and eval steps."""
    as_model = (lambda mode: model) if isinstance(model, Layer) else model
    kwargs = {'has_weights': has_weights, 'id_to_mask': id_to_mask}
    model_train, self._model_eval = as_model(mode='train'), as_model(mode='eval')
    loss = loss_fn if isinstance(loss_fn, Layer) else loss_fn(**kwargs)
    expected = model_train.n_out + len(self._signature) - model_train.n_in
    if loss.n_in != expected:
      raise ConfigError(f'Trainer: the loss {loss.name} takes {loss.n_in} inputs but gets '
                        f'{expected} (model output, targets{", weights" if has_weights else ""})'
                        f'; make it with has_weights={has_weights}')
    self._model_with_loss = Serial(model_train, loss)
    self._metric_names = sorted(metrics)
    self._metric_layers = [m if isinstance(m, Layer) else m(**kwargs)
                           for m in (metrics[name] for name in self._metric_names)]
    weight_fn = step_lib.loss_weight_fn(has_weights, id_to_mask)
    self._steps_per_call = step_lib.steps_per_call(self._signature)
    self._train_fn = step_lib.make_train_step(self._model_with_loss, self._optimizer,
                                              self._mesh, weight_fn, self._steps_per_call)
    self._eval_fn = step_lib.make_eval_step(self._model_eval, self._metric_layers,
                                            self._mesh, weight_fn)

  def _restore_or_init(self, random_seed):
    """Initialises weights, slots and state, then restores `model.pkl` if there is one."""
    saved = None
    path = self._path('model')
    if self._output_dir and os.path.exists(path):
      _remove_stale_temporaries(self._output_dir)
      saved = checkpoint.load(path)
      if not isinstance(saved, dict) or saved.get('format') != FORMAT:
        raise CheckpointError(f'{path}: not a Trainer checkpoint (no "format": "{FORMAT}"); '
                              'move it away or pick another output_dir')
    seed = random_seed if random_seed is not None else (saved or {}).get('random_seed', 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
      raise ConfigError(f'Trainer: random_seed must be an int >= 0 or None, got {seed!r}')
    self._seed = int(seed)
    init_key, self._train_key, self._eval_key = jax.random.split(
        jax.random.key(self._seed, impl=RNG_IMPL), 3)
    weights, state = self._model_with_loss.init(self._signature, rng=init_key)
    slots, opt_params = self._optimizer.tree_init(weights)
    self._opt_params = {k: np.asarray(v, np.float32) for k, v in opt_params.items()}
    self._step, self._history = 0, History()
    self._positions = {'train': 0, 'eval': 0}
    if saved is not None:
      weights, state, slots = self._restore(saved, path, weights, state, slots)
    put = lambda tree: jax.device_put(tree, step_lib.replicated(self._mesh))
    self._weights, self._slots, self._state = put(weights), put(slots), put(state)
    self._schedule = self._make_schedule()
    if saved is None and self._should_save:
      self.save_state(keep=False)

  def _restore(self, saved, path, weights, state, slots):
    """Checks `saved` against the fresh trees and takes its values; returns the trees."""
    expected = {'weights': weights[0], 'state': state[0], 'loss_weights': weights[1],
                'loss_state': state[1], 'slots': slots, 'opt_params': self._opt_params}
    problems = []
    for key, tree in expected.items():
      problems += [f'{key}{p}' for p in checkpoint.tree_mismatches(saved.get(key), tree)]
    if problems:
      raise CheckpointError(f'{path}: the checkpoint does not fit this model and optimizer; '
                            f'{len(problems)} mismatched path(s):\n  ' + '\n  '.join(problems))
    self._step = int(saved['step'])
    self._history = History.from_dict(saved.get('history', {}), path)
    self._positions = {'train': int(saved.get('input_position', self._step)),
                       'eval': int(saved.get('eval_position', 0))}
    log(f'Model loaded from {path} at step {self._step}')
    return ((saved['weights'], saved['loss_weights']), (saved['state'], saved['loss_state']),
            saved['slots'])

  def _make_schedule(self):
    """`step -> opt_params updates` from `lr_schedule` (called with the history if a factory)."""
    if self._lr_schedule is None:
      return lambda step: {}
    params = list(inspect.signature(self._lr_schedule).parameters)
    if params and params[0] == 'history':
      return self._lr_schedule(self._history)
    return self._lr_schedule

  # ---------------------------------------------------------------- properties

  @property
  def step(self):
    """The number of training steps done."""
    return self._step

  @property
  def n_devices(self):
    return self._mesh.size

  @property
  def history(self):
    """The `History` of metrics: `get(mode, 'metrics/<name>') -> [(step, value)]`."""
    return self._history

  @property
  def model_weights(self):
    """A copy of the model's weights (settable, e.g. from another trainer)."""
    return jax.tree.map(jnp.copy, self._weights[0])

  @model_weights.setter
  def model_weights(self, weights):
    checkpoint.check_compatible(weights, self._weights[0], 'Trainer.model_weights', 'weights')
    weights = jax.device_put(weights, step_lib.replicated(self._mesh))
    self._weights = (weights, self._weights[1])

  @property
  def model_state(self):
    """A copy of the model's state."""
    return jax.tree.map(jnp.copy, self._state[0])

  @property
  def state(self):
    """`TrainerState(step, opt_state, history, model_state)` with host (NumPy) arrays."""
    weights, slots, state = jax.device_get((self._weights[0], self._slots, self._state[0]))
    return TrainerState(self._step, OptState(weights, slots, dict(self._opt_params)),
                        self._history, state)

  @property
  def learning_rate(self):
    """The learning rate the next step will use."""
    return float(self._params_at(self._step)['learning_rate'])

  # ---------------------------------------------------------------- training

  def train_epoch(self, n_steps, n_eval_steps):
    """Runs `n_steps` training steps, evaluates on `n_eval_steps` batches, saves."""
    print()
    start = time.time()
    self._train_steps(n_steps)
    elapsed = time.time() - start
    self.log_step(f'Ran {n_steps} train steps in {elapsed:0.2f} secs')
    if n_steps > 1:
      self._summaries.write('train', 'training/steps per second', n_steps / elapsed, self._step,
                            json_lines=False)
    self.evaluate(n_eval_steps)
    self._summaries.flush()
    if self._should_save:
      self.save_state(keep=False)
      for kind, metric in self._best.items():
        if metric is not None and self._is_best(metric, kind == 'highest'):
          self.save_state(keep=False, prefix=f'{kind}_{metric}')
    self._schedule = self._make_schedule()

  def _train_steps(self, n_steps):
    """Runs `n_steps` steps, several per compiled call; checks the losses; keeps checkpoints_at."""
    self._check_not_poisoned()
    chunks, k = self._stream('train'), self._steps_per_call
    pending, done, start, shown = [], 0, time.time(), time.time()
    while done < n_steps:
      batches = chunks.take(min(k, n_steps - done, self._steps_to_checkpoint()))
      first, n = self._step, len(batches)
      params = [self._params_at(first + i) for i in range(n)]
      batches = jax.device_put(step_lib.stack_batches(batches, k),
                               step_lib.batch_sharded(self._mesh, stacked=True))
      self._weights, self._slots, self._state, losses, norms = self._train_fn(
          self._weights, self._slots, self._state, step_lib.stack_params(params, k), batches,
          np.int32(first), np.int32(n), self._train_key)
      pending.append((losses, norms, [p['learning_rate'] for p in params]))
      self._step, done = self._step + n, done + n
      self._positions['train'] += n
      if len(pending) > _IN_FLIGHT:
        pending[-1 - _IN_FLIGHT][0].block_until_ready()
      if self._step in self._checkpoints_at or done == n_steps:
        self._record_losses(pending)
        pending = []
        if self._step in self._checkpoints_at and self._should_save:
          self._summaries.flush()
          self.save_state(keep=True)
      if time.time() - shown > PROGRESS_SECS:
        shown = time.time()
        self.log_step(f'Ran {done} of {n_steps} train steps ({done / (shown - start):0.2f} '
                      'steps/s)')

  def _steps_to_checkpoint(self):
    later = [s - self._step for s in self._checkpoints_at if s > self._step]
    return min(later, default=self._steps_per_call)

  def _record_losses(self, pending):
    """Fetches the losses of the last steps, stops at a non-finite one, logs them."""
    values = jax.device_get([(losses, norms) for losses, norms, _ in pending])
    step = self._step - sum(len(lrs) for _, _, lrs in pending)
    for (losses, norms), (_, _, lrs) in zip(values, pending):
      for loss, norm, lr in zip(losses, norms, lrs):
        step += 1
        if not (np.isfinite(loss) and np.isfinite(norm)):
          self._poisoned_at = step
          self._raise_diverged(step, loss, norm)
        sampled = step == 1 or step % 10 == 0  # in TensorBoard, as Trax
        self._summaries.write('train', 'training/loss', loss, step, tensorboard=sampled)
        if sampled:
          self._summaries.write('train', 'training/learning_rate', lr, step, json_lines=False)

  def _raise_diverged(self, step, loss, norm):
    """Raises the TrainingError of a non-finite loss or gradient norm at `step`.

    Compiled steps turn a bad token id into NaN (see `core.check_ids`), so the
    training model is first re-run eagerly on the batch of `step`; the
    `LayerError` it raises, if any, is the cause reported.
    """
    cause = self._eager_error(step)
    if cause is not None:
      raise TrainingError(f'Step {step}: the loss is {loss} because the model fails on this '
                          'step\'s batch (re-run without jit). Training stopped; nothing after '
                          f'the last checkpoint is saved.\n{cause}') from cause
    what = (f'the loss is {loss}' if not np.isfinite(loss) else
            f'the gradients are not finite (global norm {norm}) at loss {loss}')
    raise TrainingError(
        f'Step {step}: {what}. Training stopped; nothing after the last checkpoint is '
        'saved. Lower the learning rate, check the inputs, or find the operation with '
        'jax_debug_nans (`--jax_debug_nans` on the command line).')

  def _eager_error(self, step):
    """The `LayerError` of the training model run eagerly on step `step`'s batch, or None.

    The batch is read again from the training stream (exact for `Stream`
    inputs and deterministic generators); the weights and state are the
    current ones (those before the step were donated to the compiled call).
    """
    position = step - 1 + self._positions['train'] - self._step
    batch = next(self._inputs.train_stream(self.n_devices, start=position, prefetch=0))
    weights, state = jax.device_get((self._weights, self._state))
    rng = jax.random.fold_in(jax.random.fold_in(self._train_key, step - 1), 0)
    try:
      self._model_with_loss.pure_fn(tuple(batch), weights, state, rng)
    except LayerError as e:
      return e
    return None

  def _params_at(self, step):
    """The optimizer's hyperparameters at `step` (host float32 scalars), schedule applied."""
    values = self._schedule(step)
    if not isinstance(values, collections.abc.Mapping):
      values = {'learning_rate': values}
    if not set(values) <= set(self._opt_params):
      Optimizer.with_schedule(self._opt_params, values)  # raises, naming the unknown names
    return {**self._opt_params, **{k: np.float32(v) for k, v in values.items()}}

  def _stream(self, kind):
    """Training batches as `BatchChunks`; eval batches placed on the devices ahead."""
    if kind not in self._streams:
      position = self._positions['train' if kind == 'train' else 'eval']
      stream = getattr(self._inputs, f'{kind}_stream')
      if kind == 'train':
        host = stream(self.n_devices, start=position, prefetch=max(2, self._steps_per_call))
        self._streams[kind] = step_lib.BatchChunks(host)
      else:
        host = stream(self.n_devices, start=position)
        self._streams[kind] = device_prefetch(host, step_lib.batch_sharded(self._mesh))
    return self._streams[kind]

  # ---------------------------------------------------------------- evaluation

  def evaluate(self, n_eval_steps):
    """Evaluates on `n_eval_steps` batches of training and eval data; logs the metrics."""
    self._check_not_poisoned()
    self.log_step('Evaluation')
    position = self._positions['eval']
    for mode, kind in (('train', 'train_eval'), ('eval', 'eval')):
      self._log_metrics(self._evaluation_round(kind, n_eval_steps, position), mode)
    self._positions['eval'] = position + n_eval_steps
    self.log_step('Finished evaluation')
    self._history.append('train', 'training/learning_rate', self._step, self.learning_rate)

  def _evaluation_round(self, kind, n_eval_steps, position):
    """`{metric: value}` averaged over `n_eval_steps` batches of the `kind` stream."""
    if n_eval_steps <= 0:
      return {}
    batches = self._stream(kind)
    totals = jnp.zeros(len(self._metric_names), jnp.float32)
    for i in range(n_eval_steps):
      totals = self._eval_fn(self._weights[0], self._state[0], next(batches),
                             jax.random.fold_in(self._eval_key, position + i), totals)
    values = np.asarray(jax.device_get(totals), np.float64) / n_eval_steps
    return dict(zip(self._metric_names, values))

  def _log_metrics(self, metrics, mode):
    """Logs `metrics` in Trax's format; records them in history and summaries."""
    width = max([0] + [len(name) for name in metrics])
    for name, value in metrics.items():
      self.log_step(f'{mode.ljust(5)} {name.rjust(width)} | {value: .8f}')
      self._history.append(mode, f'metrics/{name}', self._step, value)
      self._summaries.write(mode, f'metrics/{name}', value, self._step)

  def _is_best(self, metric, high):
    pairs = self._history.get('eval', f'metrics/{metric}')
    if not pairs or pairs[-1][0] != self._step:
      return False
    values = [v for _, v in pairs]
    return values[-1] == (max(values) if high else min(values))

  # ---------------------------------------------------------------- saving and logging

  def save_state(self, keep, prefix='model'):
    """Saves `<prefix>.pkl` (and `<prefix>_<step>.pkl` if `keep`) atomically."""
    self._check_not_poisoned()
    weights, state, slots = jax.device_get((self._weights, self._state, self._slots))
    tree = {'format': FORMAT, 'step': self._step, 'weights': weights[0], 'state': state[0],
            'loss_weights': weights[1], 'loss_state': state[1], 'slots': slots,
            'opt_params': self._opt_params,
            'history': self._history.to_dict(), 'input_position': self._positions['train'],
            'eval_position': self._positions['eval'], 'random_seed': self._seed,
            'rng_impl': RNG_IMPL}
    checkpoint.save(self._path(prefix), tree)
    if keep:
      checkpoint.save(self._path(f'{prefix}_{self._step}'), tree)

  def _path(self, prefix):
    return os.path.join(self._output_dir or '', f'{prefix}.pkl')

  def _check_not_poisoned(self):
    if self._poisoned_at is not None:
      raise TrainingError(f'Trainer: training diverged at step {self._poisoned_at}; make a new '
                          'Trainer (it restores the last checkpoint) to go on')

  def log_step(self, message):
    """Logs `Step <step>: <message>` (Trax's format)."""
    log(f'Step {self._step:6d}: {message}')

  def print_n_weights(self):
    """Logs the number of trainable weights of the model."""
    total = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self._weights[0]))
    self.log_step(f'Total number of trainable weights: {total}')

  def text_summary(self, tag, text):
    """Writes `text` (Markdown) to the training summaries at the current step."""
    self._summaries.text(tag, text, self._step)
    self._summaries.flush()

  def close(self):
    """Flushes and closes the summary files."""
    self._summaries.close()


def _as_inputs(inputs):
  """An `Inputs` from an `Inputs` or a function returning one (as given by gin)."""
  if not hasattr(inputs, 'train_stream') and callable(inputs):
    inputs = inputs()
  if not hasattr(inputs, 'train_stream'):
    raise ConfigError(f'Trainer: inputs must be an Inputs or a function returning one, got '
                      f'{type(inputs).__name__}')
  return inputs


def _batch_signature(inputs, has_weights):
  """The signature of a training batch; checks it against `has_weights`."""
  signature = tuple(inputs.example_signature)
  if len(signature) == 3 and not has_weights:
    raise ConfigError('Trainer: the training batches carry loss weights (inputs, targets, '
                      'weights) but has_weights=False; pass has_weights=True to use them')
  if len(signature) == 2 and has_weights:
    raise ConfigError('Trainer: has_weights=True but the training batches have no weights '
                      '(they are (inputs, targets)); pass has_weights=False')
  return signature


def _remove_stale_temporaries(folder):
  """Removes temporary files of checkpoint writes that a killed process left behind."""
  for path in glob.glob(os.path.join(folder, '.*.pkl.*.tmp')):
    try:
      os.remove(path)
    except OSError:
      pass


__all__ = ['Trainer', 'TrainerState', 'OptState', 'log']
