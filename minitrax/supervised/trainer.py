"""`Trainer`: trains a model for epochs of steps, evaluates, saves checkpoints.

The codelab's API (Trax 1.2)::

    trainer = Trainer(model=tiny_transformer_lm, loss_fn=CrossEntropyLoss,
                      optimizer=Adafactor, lr_schedule=MultifactorSchedule,
                      inputs=copy_inputs, output_dir='~/train_dir/', has_weights=True)
    for _ in range(3):
      trainer.train_epoch(500, 2)   # 500 steps, then eval on 2 batches, then save

The Trainer is a thin loop over pieces that each live in their own module:
`task` (the training model `Serial(model(mode='train'), loss)`, the eval model
and the metrics), `run_state` (step, weights, slots, positions, history, as
named fields), `data.device` (training chunks and eval batches placed on the
devices), `step` (the compiled data-parallel steps), `steps_log` (losses
read back, checked and logged), `run_checkpoint` (`model.pkl`) and
`summaries`. Evaluation reports Trax's five metrics by default.

The key of training step `s` on device `d` is `fold_in(fold_in(train_key, s), d)`
(`run_state.run_keys`); `random_seed=None` means seed 0, so runs are reproducible.
"""

import os
import time

import numpy as np

import jax
import jax.numpy as jnp

from minitrax import checkpoint
from minitrax import distributed
from minitrax import lr
from minitrax.data.device import inputs_batches, steps_per_call
from minitrax.checks import check_int
from minitrax.errors import CheckpointError
from minitrax.optimizers.base import Optimizer
from minitrax.supervised import interrupts, run_dir
from minitrax.supervised import sharding as sharding_lib
from minitrax.supervised import step as step_lib
from minitrax.supervised.evaluation import metrics_round
from minitrax.supervised.run_checkpoint import Checkpoints, restore_or_new
from minitrax.supervised.run_state import OptState, TrainerState, run_keys
from minitrax.supervised.steps_log import Progress, StepsLog
from minitrax.supervised.summaries import RunSummaries, log
from minitrax.supervised.task import as_inputs, build_task

PROGRESS_SECS = 30.0  # A long epoch logs its progress this often.


class Trainer(run_dir.RunDirOwner):
  """Trains `model` on `inputs`; see the module docstring.

  Args:
    model: a function of `mode` returning the model layer (or a layer).
    loss_fn: a loss factory such as `CrossEntropyLoss` (called with
      `has_weights` and `id_to_mask`), or a loss layer.
    optimizer: an `Optimizer` class (built with its defaults) or instance.
    lr_schedule: a factory of the training history marked with
      `lr.takes_history` (`MultifactorSchedule`), re-bound after each epoch,
      or a schedule `step -> value` (see `lr.bind`).
    inputs: an `Inputs`, or a function returning one.
    output_dir: where checkpoints and summaries go; None for neither.
    random_seed: int; None means the restored run's seed, else 0.
    n_devices: devices to split each batch over; default all local devices.
    checkpoints_at: steps at which to also keep `model_{step}.pkl`.
    should_save_checkpoints, should_write_summaries: bools.
    has_weights: whether batches carry loss weights as a third array.
    id_to_mask: target id whose positions count nothing (padding), or None.
    metrics: `{name: factory or layer}`; default Trax's five (`METRICS`).
    checkpoint_highest, checkpoint_lowest: metric names; the checkpoint of
      the best eval value so far is kept as `highest_<m>.pkl`/`lowest_<m>.pkl`.
    keep_checkpoints: None keeps every numbered checkpoint; an int N >= 1
      also saves `model_<step>.pkl` at each epoch's end and keeps the newest
      N of them (`run_checkpoint.Checkpoints`).
    permanent_every: None, or an int K >= 1: `model_<step>.pkl` is saved at
      every K-th step and never deleted.
    sharding: 'replicated' (default; a copy of the weights and optimizer slots
      on every device) or 'fsdp' (split over the devices,
      `supervised.sharding`).

  The Trainer holds its `output_dir` (a lock, `run_dir`) from its creation to
  `close()` (or the end of a `with Trainer(...) as trainer:` block); another
  Trainer, `train()` or `Loop` on the folder is refused meanwhile. A SIGTERM
  or SIGINT during `train_epoch` saves `model.pkl` after the running compiled
  call and raises `TrainingInterrupted` (`interrupts`).

  In a run of several processes (`minitrax.distributed.initialize` first),
  the mesh spans the devices of all processes, each process reads its part
  of every batch, and process 0 alone logs, writes summaries and writes
  checkpoints (`distributed.commit`), except for arrays split over the
  processes' devices, of which each process saves its own pieces
  (`minitrax.shard_files`).
  """

  def __init__(self, model, loss_fn, optimizer, lr_schedule, inputs, output_dir=None,
               random_seed=None, n_devices=None, checkpoints_at=None, should_save_checkpoints=True,
               should_write_summaries=True, has_weights=False, id_to_mask=None, metrics=None,
               checkpoint_highest=None, checkpoint_lowest=None, keep_checkpoints=None,
               permanent_every=None, sharding=None):
    self._sharding = sharding_lib.check_sharding('Trainer', sharding)
    self._checkpoint_options = dict(
        enabled=should_save_checkpoints, steps=checkpoints_at, highest=checkpoint_highest,
        lowest=checkpoint_lowest, keep=_optional_count('keep_checkpoints', keep_checkpoints),
        permanent_every=_optional_count('permanent_every', permanent_every))
    self._random_seed = random_seed
    self._should_write_summaries = should_write_summaries
    self._summaries = self._run_dir = None
    self._run_dir = run_dir.acquire(output_dir, 'Trainer')  # first: before any data or compiling
    with self._closed_on_error():
      self._build(model, loss_fn, optimizer, lr_schedule, inputs, n_devices, has_weights,
                  id_to_mask, metrics)
      self._start(output_dir)

  def _build(self, model, loss_fn, optimizer, lr_schedule, inputs, n_devices, has_weights,
             id_to_mask, metrics):
    """Makes the parts that do not depend on the output folder: task, optimizer, eval step."""
    self._inputs = as_inputs(inputs)
    self._mesh = step_lib.make_mesh(n_devices)
    self._task = build_task(model, loss_fn, self._inputs, has_weights, id_to_mask, metrics)
    self._optimizer = optimizer if isinstance(optimizer, Optimizer) else optimizer()
    self._lr_schedule = lr_schedule
    self._eval_step = step_lib.make_eval_step(self._task.model_eval, self._task.metric_layers,
                                              self._mesh, self._task.weight_fn)
    self._keys = self._seed = self._summaries = None

  def _start(self, output_dir, init_checkpoint=None):
    """Targets `output_dir` (locked): restores its (or `init_checkpoint`'s) run or makes one."""
    self._checkpoints = Checkpoints(output_dir, **self._checkpoint_options)
    output_dir = self._checkpoints.output_dir
    task = self._task
    run, restored = restore_or_new(init_checkpoint or self._checkpoints.path(),
                                   task.model_with_loss, self._optimizer, task.signature,
                                   self._random_seed, clean=init_checkpoint is None)
    # Copies: the layers keep the initial trees (a reset makes its new run from them), while the
    # run's are donated to the compiled step.
    self._run = run.with_trees(*_placed(run.trees(), self._mesh, self._sharding))
    k = steps_per_call(task.signature)
    if self._keys is None or run.seed != self._seed:  # a new seed: new keys, a new binding
      self._seed, self._keys = run.seed, run_keys(run.seed)
      self._train_step = step_lib.bind_train_step(task.model_with_loss, self._optimizer, self._mesh,
                                                  task.weight_fn, k, self._keys[1],
                                                  sharding=self._sharding)
    self._batches = inputs_batches(self._inputs, self._mesh, run.input_position, run.eval_position,
                                   k)
    self._schedule = lr.bind(self._lr_schedule, run.history)
    self._steps_log = StepsLog(task.model_with_loss, self._batches['train'], self._keys[1])
    self._summaries = RunSummaries(
        self._should_write_summaries and distributed.is_main() and output_dir, run.step)
    if not restored and self._checkpoints.enabled:
      self.save_state(keep=False)

  def reset(self, output_dir, init_checkpoint=None):
    """Re-targets the trainer at `output_dir` (Trax's `Trainer.reset`); compiles nothing anew.

    Closes the summaries, then continues from the run saved in `output_dir`
    (or in the file `init_checkpoint`, a minitrax run checkpoint such as
    another run's `model.pkl`) if there is one, else from a new run (step 0,
    weights initialised from the seed), and re-opens the data streams at that
    run's position.

    The trainer keeps holding its folder if `output_dir` is the same one, and
    holds the new one before it releases the old one otherwise.

    Raises:
      CheckpointError: `init_checkpoint` is given but there is no such file.
      RunDirError: `output_dir` cannot be used (the trainer is unchanged).
    """
    if init_checkpoint is not None and not os.path.exists(init_checkpoint):
      raise CheckpointError(f'Trainer.reset: init_checkpoint {init_checkpoint} does not exist')
    old = self._run_dir
    same = old is not None and old.held and old.is_for(output_dir)
    new = old if same else run_dir.acquire(output_dir, 'Trainer.reset')
    self._run_dir = None
    self.close()  # the summaries
    if old is not None and old is not new:
      old.release()
    self._run_dir = new
    with self._closed_on_error():
      self._start(output_dir, init_checkpoint)

  # ---------------------------------------------------------------- properties

  @property
  def step(self):
    """The number of training steps done."""
    return self._run.step

  @property
  def n_devices(self):
    return self._mesh.size

  @property
  def history(self):
    """The `History` of metrics: `get(mode, 'metrics/<name>') -> [(step, value)]`."""
    return self._run.history

  @property
  def model_weights(self):
    """A copy of the model's weights (settable, e.g. from another trainer)."""
    return jax.tree.map(jnp.copy, self._run.model_weights)

  @model_weights.setter
  def model_weights(self, weights):
    checkpoint.check_compatible(weights, self._run.model_weights, 'Trainer.model_weights',
                                'weights')
    weights = sharding_lib.place(weights, self._mesh, self._sharding)
    self._run = self._run._replace(model_weights=weights)

  @property
  def model_state(self):
    """A copy of the model's state."""
    return jax.tree.map(jnp.copy, self._run.model_state)

  @property
  def state(self):
    """`TrainerState(step, opt_state, history, model_state)` with host (NumPy) arrays."""
    run = self._run
    weights, slots, state = distributed.to_host((run.model_weights, run.slots, run.model_state))
    return TrainerState(run.step, OptState(weights, slots, dict(run.opt_params)), run.history,
                        state)

  @property
  def learning_rate(self):
    """The learning rate the next step will use."""
    return float(self._params_at(self.step)['learning_rate'])

  # ---------------------------------------------------------------- training

  @distributed.peer_failures
  def train_epoch(self, n_steps, n_eval_steps):
    """Runs `n_steps` training steps, evaluates on `n_eval_steps` batches, saves.

    Raises:
      TrainingInterrupted: a SIGTERM or SIGINT came; `model.pkl` holds the
        steps done (`interrupts`).
    """
    with interrupts.watching():
      if distributed.is_main():
        print()
      start = time.time()
      self._train_steps(n_steps)
      elapsed = time.time() - start
      self.log_step(f'Ran {n_steps} train steps in {elapsed:0.2f} secs')
      if n_steps > 1:
        self._summaries.write('train', 'training/steps per second', n_steps / elapsed, self.step,
                              json_lines=False)
      self.evaluate(n_eval_steps)
      self._summaries.flush()
      self._checkpoints.at_epoch_end(self._run)
      self._schedule = lr.bind(self._lr_schedule, self._run.history)
      if interrupts.pending() is not None:
        self._interrupt(saved=True)

  def _interrupt(self, saved=False):
    """After a signal: records the losses, saves `model.pkl` (unless `saved`), raises."""
    self._steps_log.record(self._run, self._summaries)
    self._summaries.flush()
    if self._checkpoints.enabled and not saved:
      self.save_state(keep=False)
    path = self._checkpoints.path() if self._checkpoints.enabled else None
    interrupts.stop(self.step, path, self.log_step)

  def _train_steps(self, n_steps):
    """Runs `n_steps` steps, several per compiled call; checks the losses; keeps checkpoints_at."""
    self._check_open('Trainer')
    self._steps_log.check_not_diverged()
    first, progress = self.step, Progress(n_steps, self.log_step, PROGRESS_SECS)
    breaks = self._checkpoints.breaks(first, n_steps)
    if interrupts.pending() is not None:  # came between epochs
      self._interrupt()
    for chunk, count in self._batches['train'].epoch(n_steps, breaks):
      params = [self._params_at(self.step + i) for i in range(count)]
      self._run, losses, norms = self._train_step(self._run, chunk, count, params)
      self._steps_log.add(losses, norms, params)
      if self.step - first in breaks + [n_steps]:
        self._steps_log.record(self._run, self._summaries)
        self._summaries.flush()
        self._checkpoints.at_step(self._run)
      progress.update(self.step - first, losses)
      if interrupts.pending() is not None and self.step - first < n_steps:
        self._interrupt()

  def _params_at(self, step):
    """The optimizer's hyperparameters at `step` (host float32 scalars), schedule applied."""
    values = self._schedule(step)
    if not set(values) <= set(self._run.opt_params):
      Optimizer.with_schedule(self._run.opt_params, values)  # raises, naming the unknown names
    return {**self._run.opt_params, **{k: np.float32(v) for k, v in values.items()}}

  # ---------------------------------------------------------------- evaluation

  def evaluate(self, n_eval_steps):
    """Evaluates on `n_eval_steps` batches of training and eval data; logs the metrics."""
    self._steps_log.check_not_diverged()
    self.log_step('Evaluation')
    run = self._run
    for mode, kind in (('train', 'train_eval'), ('eval', 'eval')):
      self._log_metrics(
          mode,
          metrics_round(self._eval_step, run.model_weights, run.model_state, self._batches[kind],
                        n_eval_steps, self._keys[2], run.eval_position, self._task.metric_names))
    self._run = run._replace(eval_position=run.eval_position + n_eval_steps)
    self.log_step('Finished evaluation')
    self.history.append('train', 'training/learning_rate', self.step, self.learning_rate)

  def _log_metrics(self, mode, metrics):
    """Logs `metrics` in Trax's format; records them in history and summaries."""
    width = max([0] + [len(name) for name in metrics])
    for name, value in metrics.items():
      self.log_step(f'{mode.ljust(5)} {name.rjust(width)} | {value: .8f}')
      self.history.append(mode, f'metrics/{name}', self.step, value)
      self._summaries.write(mode, f'metrics/{name}', value, self.step)

  # ---------------------------------------------------------------- saving and logging

  def save_state(self, keep, prefix='model'):
    """Saves `<prefix>.pkl` (and `<prefix>_<step>.pkl` if `keep`) atomically."""
    self._steps_log.check_not_diverged()
    self._checkpoints.save(self._run, keep, prefix)

  def log_step(self, message):
    """Logs `Step <step>: <message>` (Trax's format); in process 0 of a multi-process run only."""
    if distributed.is_main():
      log(f'Step {self.step:6d}: {message}')

  def print_n_weights(self):
    """Logs the number of trainable weights of the model."""
    total = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self._run.model_weights))
    self.log_step(f'Total number of trainable weights: {total}')

  def text_summary(self, tag, text):
    """Writes `text` (Markdown) to the training summaries at the current step."""
    self._summaries.text(tag, text, self.step)
    self._summaries.flush()

  def close(self):
    """Ends the run: flushes and closes the summary files, releases the output folder.

    Done also at the end of a `with` block, and (the folder only) when the
    Trainer is garbage-collected or the interpreter exits.
    """
    if self._summaries is not None:
      self._summaries.close()
    super().close()


def _optional_count(name, value):
  """`value` if None or an int >= 1; else ArgumentError naming `Trainer: <name>`."""
  return None if value is None else check_int('Trainer', name, value, 1)


def _placed(trees, mesh, sharding):
  """A run's `(weights, slots, state)` copied onto `mesh`: weights and slots by `sharding`, the
  state replicated."""
  weights, slots, state = trees
  return (sharding_lib.place(weights, mesh, sharding), sharding_lib.place(slots, mesh, sharding),
          sharding_lib.place(state, mesh))


__all__ = ['Trainer', 'TrainerState', 'OptState', 'log']
