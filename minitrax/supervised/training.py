"""Trax 1.4's training API: `TrainTask`, `EvalTask` and `Loop`.

Trax 1.4 code runs with only the import changed::

    task = training.TrainTask(train_batches, tl.WeightedCategoryCrossEntropy(),
                              optimizers.Adam(0.01), lr_schedule=lr.warmup(100, 0.01))
    eval_task = training.EvalTask(eval_batches, [tl.WeightedCategoryCrossEntropy(),
                                                 tl.WeightedCategoryAccuracy()])
    loop = training.Loop(model, task, eval_tasks=[eval_task], output_dir='~/run')
    loop.run(1000)   # logs 'Step    100: Ran 99 train steps in 0.52 secs' ...

A `Loop` is built on the Trainer's pieces (`loop_parts`): the compiled
data-parallel step (`step`), stacked device batches (`data.device`),
`RunState` and the run checkpoint, `StepsLog`, `metrics_round`. Steps count
from 1: step `s` uses the learning rate `lr_schedule(s)` and the optimizer
sees step `s`; checkpoints (`model.pkl.gz`) and evaluations come, by default,
at step 1 and every `n_steps_per_checkpoint` steps of the first task; a
checkpoint is written before the evaluation of its step. With several tasks,
step `s` trains task `which_task(s)` (default `s % len(tasks)`).

Where minitrax differs from Trax 1.4.1, on purpose:

* `random_seed=None` is the seed of the checkpoint being resumed, else 0,
  never a seed from the clock.
* Checkpoints keep Trax's name `<basename>.pkl.gz` but are one minitrax
  msgpack file (`loop_checkpoint`; never pickle). `load_checkpoint` also
  reads real Trax checkpoints without running their pickle.
* A restored Loop resumes exactly: it skips the batches of `labeled_data`
  the saved run used (a seek for `data.seekable` streams), so it continues
  with the losses an uninterrupted run would have had.
* With several devices the loss, gradients and weighted metrics are the
  weighted means over the global batch, equal to one device's values.
* `use_memory_efficient_trainer`, `adasum`, `loss_chunk_size > 0` and
  `callbacks` are refused with an `ArgumentError`; no `config.gin` is written.
"""

import functools
import logging
import os
import time
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from minitrax import checkpoint, lr
from minitrax.checks import check_int
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import Layer
from minitrax.optimizers.base import Optimizer
from minitrax.supervised import interrupts, loop_checkpoint, run_dir
from minitrax.supervised import step as step_lib
from minitrax.supervised.evaluation import last_is_best
from minitrax.supervised.loop_parts import (Evaluator, Progress, TaskTrainer, at_step_1_and_every,
                                            never, summary_writers)
from minitrax.supervised.loop_tasks import EvalTask, TrainTask, as_task_list, check_supported
from minitrax.supervised.run_state import check_seed, new_run, run_keys
from minitrax.supervised.summaries import log

__all__ = ['TrainTask', 'EvalTask', 'Loop']

_LOG = logging.getLogger('minitrax.training')
_RUN_GLOBALS = ('model_weights', 'model_state', 'step', 'history', 'eval_position')


def _log(message, stdout=True):
  """Trax's `_log`: to the `logging` module, and printed unless `stdout` is False."""
  _LOG.info(message)
  if stdout:
    log(message)


def _copied(tree):
  """A copy of a tree of arrays (device buffers given to a compiled step are donated)."""
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


class Loop(run_dir.RunDirOwner):
  """Trains a model on one or more `TrainTask`s, evaluates, saves checkpoints (Trax 1.4's `Loop`).

  Args:
    model: the model layer to train (trained in place: after `run` it holds
      the trained weights); its weights are kept if it is initialised.
    tasks: a `TrainTask` or a list of them.
    eval_model: the layer to evaluate with, given the model's weights;
      default `model`.
    eval_tasks: an `EvalTask`, a list of them, or None for no evaluation (nor
      any training log).
    output_dir: where checkpoints and summaries go; None for neither. A
      checkpoint `model.pkl.gz` there is loaded.
    checkpoint_at: `step -> bool`; default step 1 and every
      `tasks[0].n_steps_per_checkpoint` steps.
    checkpoint_low_metric, checkpoint_high_metric: eval metric names; at a
      checkpoint step the checkpoint is also kept as `lowest_<m>.pkl.gz`
      (`highest_<m>`) when the metric's last value is its lowest (highest).
    permanent_checkpoint_at: `step -> bool` for `model_<step>.pkl.gz`; default
      step 1 and every `tasks[0].n_steps_per_permanent_checkpoint` steps
      (never if that is None).
    eval_at: `step -> bool`; default as `checkpoint_at`.
    which_task: `step -> task index`; default `step % len(tasks)`.
    n_devices: devices to split each batch over; default all local ones.
    random_seed: int >= 0; None for the resumed run's seed, else 0.
    loss_chunk_size, use_memory_efficient_trainer, adasum, callbacks: must
      keep their defaults (see the module docstring).

  The Loop holds `output_dir` (`run_dir`) until `close()` or the end of its
  `with` block; a SIGTERM or SIGINT during `run` saves `model.pkl.gz` after the
  running compiled call and raises `TrainingInterrupted` (`interrupts`).
  """

  def __init__(self, model, tasks, eval_model=None, eval_tasks=None, output_dir=None,
               checkpoint_at=None, checkpoint_low_metric=None, checkpoint_high_metric=None,
               permanent_checkpoint_at=None, eval_at=None, which_task=None, n_devices=None,
               random_seed=None, loss_chunk_size=0, use_memory_efficient_trainer=False,
               adasum=False, callbacks=None):
    check_supported(loss_chunk_size, use_memory_efficient_trainer, adasum, callbacks)
    if not isinstance(model, Layer):
      raise ArgumentTypeError(f'Loop: model must be a layer, got {model!r}')
    self._tasks = as_task_list(tasks, TrainTask, 'tasks')
    if not self._tasks:
      raise ArgumentError('Loop: tasks must hold at least one TrainTask, got none')
    self._run_dir = run_dir.acquire(output_dir, 'Loop')  # before reading data or compiling
    with self._closed_on_error():
      self._eval_tasks = [] if eval_tasks is None else as_task_list(eval_tasks, EvalTask,
                                                                    'eval_tasks')
      self._model, self._eval_model = model, eval_model or model
      self._mesh = step_lib.make_mesh(n_devices)
      self._output_dir = os.path.expanduser(output_dir) if output_dir else None
      first = self._tasks[0]
      default_at = at_step_1_and_every(first.n_steps_per_checkpoint)
      self._checkpoint_at = checkpoint_at or default_at
      self._permanent_checkpoint_at = permanent_checkpoint_at or at_step_1_and_every(
          first.n_steps_per_permanent_checkpoint)
      self._eval_at = never if eval_tasks is None else eval_at or default_at
      self._best = {'lowest': checkpoint_low_metric, 'highest': checkpoint_high_metric}
      self._which_task = which_task or (lambda step: step % len(self._tasks))
      self._rng = jax.random.split(jax.random.key(random_seed or 0), 4)[3]  # for new_rng only
      self._eval_pending, self._metrics_log = False, None
      if self._output_dir:
        checkpoint.remove_temporaries(self._output_dir, '*' + loop_checkpoint.SUFFIX)
      self._setup(random_seed)
      names = [t.loss_name for t in self._tasks
              ] + [n for t in self._eval_tasks for n in t.metric_names]
      self._rjust_len = max(map(len, names))
      if self._output_dir is None:
        _log('Will not write evaluation metrics, because output_dir is None.')
      self._train_dirs, self._eval_dirs = self._task_dirs(self._tasks), self._task_dirs(
          self._eval_tasks)

  def _setup(self, random_seed):
    """Builds the parts, makes the runs (or restores those in output_dir), binds the steps."""
    self._trainers = [TaskTrainer(i, t, self._model, self._mesh) for i, t in enumerate(self._tasks)]
    signature = self._trainers[0].layers.signature
    n_in = self._model.n_in
    self._input_signature = signature[0] if n_in == 1 else tuple(signature[:n_in])
    seed = 0 if random_seed is None else check_seed(random_seed, 'Loop')
    fresh = [
        new_run(t.layers.model_with_loss, t.task.optimizer, t.layers.signature, seed)
        for t in self._trainers
    ]
    if not self._eval_model.initialized:
      self._eval_model.init(self._input_signature)
    self._evaluators = [
        Evaluator(i, t, self._eval_model, self._mesh) for i, t in enumerate(self._eval_tasks)
    ]
    restored = self._read_checkpoint(self._output_dir, None, fresh)
    if restored is None and self._output_dir:
      _log(f'No checkpoint in {self._output_dir}; initialising')
    self._seed = restored[0].seed if restored and random_seed is None else seed
    _, train_key, self._eval_key = run_keys(self._seed)
    for trainer in self._trainers:
      trainer.bind(train_key)
    self._install(restored or fresh)

  def _task_dirs(self, tasks):
    """Trax's summary folders: output_dir, or one sub-folder per task if there are several."""
    if self._output_dir is None:
      return [None] * len(tasks)
    if len(tasks) < 2:
      return [self._output_dir] * len(tasks)
    dirs = [os.path.join(self._output_dir, t.export_prefix or str(i)) for i, t in enumerate(tasks)]
    for folder in dirs:
      os.makedirs(folder, exist_ok=True)
    return dirs

  # ---------------------------------------------------------------- properties

  step = property(lambda self: self._runs[self._active].step, doc='Training steps done.')
  history = property(lambda self: self._runs[self._active].history, doc='The metrics `History`.')
  n_devices = property(lambda self: self._mesh.size, doc='Devices each batch is split over.')
  is_chief = property(lambda self: jax.process_index() == 0, doc='Whether this is process 0.')
  model = property(lambda self: self._model, doc='The model layer being trained.')
  tasks = property(lambda self: self._tasks, doc='The training tasks.')
  eval_model = property(lambda self: self._eval_model, doc='The model used for evaluation.')
  eval_tasks = property(lambda self: self._eval_tasks, doc='The evaluation tasks.')
  output_dir = property(lambda self: self._output_dir, doc='The output folder, or None.')

  def new_rng(self):
    """A new single-use JAX key, split off the Loop's own (training does not use these)."""
    self._rng, rng = jax.random.split(self._rng)
    return rng

  # ---------------------------------------------------------------- runs

  def _install(self, runs):
    """Makes `runs` (one per task) the Loop's, on the devices, task 0's active; reopens batches."""
    placed = []
    for i, run in enumerate(runs):
      if i:
        run = run._replace(model_weights=None, model_state=None)
      trees = jax.device_put(run.trees(), step_lib.replicated(self._mesh))
      placed.append(run.with_trees(*trees)._replace(seed=self._seed, history=runs[0].history))
    self._runs, self._active = placed, 0
    for trainer, run in zip(self._trainers, placed):
      trainer.open(run.input_position)
    for evaluator in self._evaluators:
      evaluator.open(placed[0].eval_position)
    self._schedules = [lr.bind(t.lr_schedule, placed[0].history) for t in self._tasks]
    self._store_on_layers()
    owner = weakref.ref(self)
    for i, task in enumerate(self._tasks):
      task.optimizer.track_slots(lambda i=i: owner() and owner()._slots_of(i))

  def _templates(self):
    """The runs, each with the active run's model trees, step, history and eval position."""
    active = self._runs[self._active]
    return [run._replace(**{f: getattr(active, f) for f in _RUN_GLOBALS}) for run in self._runs]

  def _activate(self, index):
    """Moves the model's trees (and the step, history, eval position) to task `index`'s run."""
    if index != self._active:
      self._runs = self._templates()
      for i in range(len(self._runs)):
        if i != index:
          self._runs[i] = self._runs[i]._replace(model_weights=None, model_state=None)
      self._active = index

  def _slots_of(self, index):
    """Task `index`'s slots in Trax's flat form: one tuple per weight array (copies)."""
    run = self._templates()[index]
    per_weight = jax.tree.structure(run.weights).flatten_up_to(run.slots)
    return tuple(_copied(tuple(s)) for s in per_weight)

  def _store_on_layers(self):
    """Stores copies of the current weights and state on the model (and the eval model)."""
    run = self._runs[self._active]
    weights, state = _copied(run.model_weights), _copied(run.model_state)
    self._model.weights, self._model.state = weights, state
    if self._eval_model is not self._model:
      self._eval_model.weights = weights
      if jax.tree.structure(self._eval_model.state) == jax.tree.structure(state):
        self._eval_model.state = state

  def update_weights_and_state(self, weights=None, state=None):
    """Sets the model's weights and/or state, on the layer and for training (None: unchanged)."""
    run = self._runs[self._active]
    for name, tree in (('weights', weights), ('state', state)):
      if tree is not None:
        current = getattr(run, f'model_{name}')
        checkpoint.check_compatible(tree, current, 'Loop.update_weights_and_state', name)
        placed = jax.device_put(_copied(tree), step_lib.replicated(self._mesh))
        run = run._replace(**{f'model_{name}': placed})
        setattr(self._model, name, _copied(tree))
    self._runs[self._active] = run

  # ---------------------------------------------------------------- training

  def run(self, n_steps=1):
    """Trains `n_steps` steps; checkpoints and evaluates at the steps the schedules say."""
    n_steps = check_int('Loop.run', 'n_steps', n_steps, 0)
    self._check_open('Loop')
    if self._output_dir is not None:
      _log(f'Metrics will be written in {self._output_dir}.', stdout=False)
    with summary_writers(self._train_dirs, self._eval_dirs, self._output_dir,
                         self.step) as writers, interrupts.watching():
      self._metrics_log = writers[2]
      try:
        progress, done = Progress(), 0
        while done < n_steps:
          index = self._which_task(self.step + 1)
          if index != self._which_task(self.step):
            progress.reset_loss()
          count = self._segment(index, n_steps - done)
          rows = self._train(index, count)  # fewer than `count` after a signal
          progress.add(rows)
          done += len(rows)
          if len(rows) == count:
            self._after_steps(index, progress, writers)
          if interrupts.pending() is not None:
            self._interrupt()
      finally:
        self._metrics_log = None
    self._store_on_layers()

  def _interrupt(self):
    """After a signal: saves `model.pkl.gz`, logs, raises `TrainingInterrupted`."""
    self.save_checkpoint('model')
    self._store_on_layers()
    path = self._output_dir and os.path.join(self._output_dir, 'model' + loop_checkpoint.SUFFIX)
    interrupts.stop(self.step, path, self._log_step)

  def _segment(self, index, remaining):
    """Steps of task `index` to train before the next checkpoint, evaluation or task change."""
    for i in range(1, remaining):
      step = self.step + i
      if (self._checkpoint_at(step) or self._permanent_checkpoint_at(step) or self._eval_at(step) or
          self._which_task(step + 1) != index):
        return i
    return remaining

  def _train(self, index, count):
    """Trains task `index` for `count` steps; returns the steps' rows (`StepsLog.record`)."""
    self._activate(index)

    def keep(run):
      self._runs[index] = run

    run, rows = self._trainers[index].train(self._runs[index], count,
                                            functools.partial(self._params_at, index), keep)
    keep(run)
    return rows

  def _params_at(self, index, step):
    """The optimizer's hyperparameters at (1-based) `step` of task `index`, schedule applied."""
    opt_params = self._runs[index].opt_params
    values = self._schedules[index](step)
    if not set(values) <= set(opt_params):
      Optimizer.with_schedule(opt_params, values)  # raises, naming the unknown names
    return {**opt_params, **{k: np.float32(v) for k, v in values.items()}}

  def _after_steps(self, index, progress, writers):
    """Trax's order at a step: checkpoints, evaluation, then the best-metric checkpoints."""
    step, (train_writers, eval_writers, _) = self.step, writers
    evaluating = bool(self._eval_at(step))
    self._eval_pending = evaluating  # a checkpoint of this step resumes after its evaluation
    try:
      if self._checkpoint_at(step):
        self.save_checkpoint('model')
      if self._permanent_checkpoint_at(step):
        self.save_checkpoint(f'model_{step}')
    finally:
      self._eval_pending = False
    if evaluating:
      self._log_training_progress(self._tasks[index], progress, train_writers[index])
      self.run_evals(eval_writers)
      progress.reset()
    if self._checkpoint_at(step):
      for kind, metric in self._best.items():
        if metric is not None and last_is_best(self.history, metric, kind == 'highest'):
          self.save_checkpoint(f'{kind}_{metric}')

  # ---------------------------------------------------------------- logs and evaluation

  def _log_training_progress(self, task, progress, summary_writer):
    """Logs the steps since the last evaluation: count, time, mean loss (and, quietly, stats)."""
    n_steps = max(1, progress.n_steps)
    elapsed = time.time() - progress.start
    _log('')
    if self.step == 1:
      self._log_n_weights()
    self._log_step('Ran %d train steps in %0.2f secs' % (n_steps, elapsed))
    self.log_summary({task.loss_name: progress.loss / n_steps}, summary_writer, 'metrics/', 'train')
    values = {'learning_rate': task.learning_rate(self.step), 'steps per second': n_steps / elapsed}
    values.update({name: total / n_steps for name, total in progress.stats.items()})
    self.log_summary(values, summary_writer, 'training/', 'train', stdout=False)

  def _log_n_weights(self):
    sizes = [int(np.prod(np.shape(w))) for w in jax.tree.leaves(self._runs[self._active].weights)]
    self._log_step('Total number of trainable weights: %d' % sum(sizes))

  def run_evals(self, summary_writers=None):  # pylint: disable=redefined-outer-name
    """Evaluates the model on every eval task and logs the metrics (one evaluation round)."""
    self._trainers[self._active].steps_log.check_not_diverged()
    writers = summary_writers or [None] * len(self._eval_tasks)
    run = self._runs[self._active]
    for evaluator, writer in zip(self._evaluators, writers):
      self.log_summary(evaluator.evaluate(run, run.eval_position, self._eval_key), writer,
                       'metrics/', 'eval')
    self._runs[self._active] = run._replace(eval_position=run.eval_position + 1)

  def log_summary(self, values, summary_writer, value_prefix, log_prefix, stdout=True):
    """Logs `{name: value}` as `Step N: <log_prefix> <name> | <value>`; records history, summaries.

    Non-scalar values (Trax writes them as images) are left out.
    """
    for name, value in values.items():
      if np.ndim(value):
        continue
      value, full_name = float(value), value_prefix + name
      self._log_step('%s %s | % .8f' % (log_prefix.ljust(5), name.rjust(self._rjust_len), value),
                     stdout=stdout)
      if summary_writer is not None:
        summary_writer.scalar(full_name, value, self.step)
        if self._metrics_log is not None:
          self._metrics_log.write(self.step, log_prefix, full_name, value)
      self.history.append(log_prefix, full_name, self.step, value)
    if summary_writer is not None:
      summary_writer.flush()

  def _log_step(self, message, stdout=True):
    _log('Step % 6d: %s' % (self.step, message), stdout=stdout)

  # ---------------------------------------------------------------- checkpoints

  def save_checkpoint(self, basename):
    """Saves the run as `<output_dir>/<basename>.pkl.gz` (a minitrax checkpoint), atomically."""
    if self._output_dir is None:
      _log('Did not save checkpoint as output_dir is None')
      return
    for trainer in self._trainers:
      trainer.steps_log.check_not_diverged()
    path = os.path.join(self._output_dir, basename + loop_checkpoint.SUFFIX)
    _log(f'Saving checkpoint to {path}', stdout=False)
    runs = self._templates()
    runs[0] = runs[0]._replace(eval_position=runs[0].eval_position + int(self._eval_pending))
    loop_checkpoint.save(path, runs, self._input_signature)
    _log(f'Checkpoint saved in {path}', stdout=False)

  def load_checkpoint(self, directory=None, filename=None):
    """Loads `<directory>/<filename>.pkl.gz` (default `output_dir/model`) if it exists.

    Reads the Loop's own checkpoints and real Trax 1.4 (and 1.2) ones; the
    Loop then continues from the saved step. The Loop keeps its seed.
    """
    runs = self._read_checkpoint(directory or self._output_dir, filename, self._templates())
    if runs is not None:
      self._install(runs)

  def _read_checkpoint(self, directory, filename, templates):
    """The runs saved in a checkpoint file (checked against `templates`), or None if none."""
    if directory is None:
      _log('Not loading as both directory and output_dir are None.', stdout=False)
      return None
    path = os.path.join(os.path.expanduser(directory),
                        (filename or 'model') + loop_checkpoint.SUFFIX)
    if not os.path.exists(path):
      _log(f'Not loading as checkpoint file does not exist: {path}', stdout=False)
      return None
    _log(f'Loading checkpoint from {path}', stdout=False)
    runs = loop_checkpoint.load(path, templates)
    _log(f'Checkpoint loaded from {path}', stdout=False)
    return runs
