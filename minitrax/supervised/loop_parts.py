"""The parts of a Trax 1.4 `training.Loop`, each on the Trainer's pieces.

* `TaskTrainer`: one `TrainTask`'s layers (`task.layers_task`), its batches
  (`loop_data.IteratorSource` in a `data.device.DeviceBatches` of stacked
  chunks), its compiled data-parallel step (`step.bind_train_step`, the
  optimizer counting steps from 1 as Trax 1.4's does) and its `StepsLog`.
* `Evaluator`: one `EvalTask`'s compiled eval step (`step.make_eval_step`)
  and batches; `evaluation.metrics_round` averages its metrics.
* `Progress`: what Trax logs at an evaluation about the steps since the last.
* `summary_writers`: the TensorBoard writers Trax opens for each `run`.
"""

import collections
import contextlib
import os
import time

import jax

from minitrax.data.device import DeviceBatches, steps_per_call
from minitrax.errors import ConfigError
from minitrax.supervised import interrupts
from minitrax.supervised import step as step_lib
from minitrax.supervised.evaluation import metrics_round
from minitrax.supervised.loop_data import IteratorSource, batch_signature, check_batch
from minitrax.supervised.steps_log import StepsLog
from minitrax.supervised.summaries import MetricsLog, SummaryWriter
from minitrax.supervised.task import layers_task

__all__ = [
    'TaskTrainer', 'Evaluator', 'Progress', 'summary_writers', 'at_step_1_and_every', 'never'
]

EXTRA_STATS = ('weights_l2',)  # reported by each step besides the loss and gradients_l2


def at_step_1_and_every(period):
  """`step -> bool`: True at step 1 and every `period` steps; never if `period` is None."""
  if period is None:
    return never
  return lambda step: step == 1 or (step > 0 and step % period == 0)


def never(step):
  """`step -> False`: a schedule that never fires."""
  del step
  return False


def sample_signature(task, name):
  """The batch signature of a task's sample batch (checked)."""
  return batch_signature(check_batch(task.sample_batch, 1, f'{name}, sample_batch'))


class TaskTrainer:
  """Trains the model on one `TrainTask`: layers, batches, compiled step, losses.

  Args:
    index: the task's index in the Loop.
    task: the `TrainTask`.
    model: the model layer.
    mesh: the device mesh (`step.make_mesh`).
  """

  def __init__(self, index, task, model, mesh):
    name = f'TrainTask {index}'
    self.task = task
    self.mesh = mesh
    self.layers = layers_task(model, task.loss_layer, sample_signature(task, name))
    self.source = IteratorSource(task.labeled_data, len(mesh.local_devices), name)
    self.source_name = name
    self.steps_per_call = steps_per_call(self.layers.signature)
    self.step_fn = self.batches = self.steps_log = None

  def bind(self, train_key):
    """Compiles (lazily) the training step for the run's training key."""
    self._train_key = train_key
    self.step_fn = step_lib.bind_train_step(self.layers.model_with_loss, self.task.optimizer,
                                            self.mesh, self.layers.weight_fn, self.steps_per_call,
                                            train_key, step_offset=1, extra_stats=EXTRA_STATS)

  def open(self, position):
    """Reads the task's batches from batch `position` on (after a restore: skips the used ones)."""
    self.batches = DeviceBatches(self.source, self.mesh, position, self.steps_per_call, ahead=0,
                                 name=self.source_name)
    self.steps_log = StepsLog(self.layers.model_with_loss, self.batches, self._train_key)

  def train(self, run, count, params_at, keep):
    """Trains `count` steps from `run`; returns `(run, rows)`, a row per step (`StepsLog.record`).

    `params_at(step)` gives the hyperparameters of (1-based) step `step`;
    `keep(run)` is called with the run after each compiled call (the trees
    given to a call are donated, so the caller must hold the new ones). After
    a SIGTERM or SIGINT (`interrupts.pending()`) it stops after the running call.
    """
    self.steps_log.check_not_diverged()
    for chunk, n in self.batches.epoch(count):
      params = [params_at(run.step + i + 1) for i in range(n)]
      run, losses, norms, *extras = self.step_fn(run, chunk, n, params)
      keep(run)
      self.steps_log.add(losses, norms, params, *extras)
      if interrupts.pending() is not None:
        break
    return run, self.steps_log.record(run)


class Evaluator:
  """Evaluates the model on one `EvalTask`.

  Args:
    index: the eval task's index in the Loop.
    task: the `EvalTask`.
    eval_model: the evaluation model (run with the training model's weights).
    mesh: the device mesh.
  """

  def __init__(self, index, task, eval_model, mesh):
    name = f'EvalTask {index}'
    signature = sample_signature(task, name)
    n_rest = len(signature) - eval_model.n_in
    available = eval_model.n_out + n_rest
    for metric in task.metrics:
      if n_rest < 1 or metric.n_in > available:
        raise ConfigError(f'{name}: the metric {metric.name} takes {metric.n_in} inputs but only '
                          f'{available} are there (the {eval_model.n_out} output(s) of the model '
                          f'and {n_rest} array(s) of the batch after its inputs)')
    self.task = task
    self.mesh = mesh
    self.eval_step = step_lib.make_eval_step(
        eval_model, list(task.metrics), mesh,
        step_lib.trailing_weight_fn(eval_model.n_in, n_rest > 1))
    self.source = IteratorSource(task.labeled_data, len(mesh.local_devices), name)
    self.source_name = name
    self.index = index
    self.batches = None

  def open(self, rounds):
    """Reads the eval batches as after `rounds` evaluation rounds."""
    self.batches = DeviceBatches(self.source, self.mesh, rounds * self.task.n_eval_batches,
                                 name=self.source_name)

  def evaluate(self, run, rounds, eval_key):
    """`{name: value}`: the task's metrics on its next `n_eval_batches` batches (round `rounds`)."""
    n = self.task.n_eval_batches
    return metrics_round(self.eval_step, run.model_weights, run.model_state, self.batches, n,
                         jax.random.fold_in(eval_key, self.index), rounds * n,
                         list(self.task.metric_names))


class Progress:
  """What Trax 1.4 accumulates between evaluations: losses, optimizer statistics, time."""

  def __init__(self):
    self.reset()

  def reset(self):
    """Starts afresh (after an evaluation)."""
    self.start = time.time()
    self.stats = collections.defaultdict(float)
    self.reset_loss()

  def reset_loss(self):
    """Forgets the losses and the step count only (Trax's rule when the task changes)."""
    self.loss, self.n_steps = 0.0, 0

  def add(self, rows):
    """Adds the rows of `StepsLog.record`: `(step, loss, gradients_l2, lr, weights_l2)`."""
    for _, loss, gradients_l2, _, weights_l2 in rows:
      self.loss += loss
      self.n_steps += 1
      self.stats['gradients_l2'] += gradients_l2
      self.stats['weights_l2'] += weights_l2
      self.stats['loss'] += loss


@contextlib.contextmanager
def summary_writers(train_dirs, eval_dirs, output_dir, step):
  """Yields `(train writers, eval writers, metrics log)` for one `run` (Nones without output_dir).

  As in Trax, each `run` opens new event files (`<dir>/train`, `<dir>/eval`)
  and closes them at its end; minitrax also appends to `metrics.jsonl`.
  """
  if output_dir is None:
    yield [None] * len(train_dirs), [None] * len(eval_dirs), None
    return
  writers = ([SummaryWriter(os.path.join(d, 'train'), step) for d in train_dirs],
             [SummaryWriter(os.path.join(d, 'eval'), step) for d in eval_dirs])
  metrics_log = MetricsLog(os.path.join(output_dir, 'metrics.jsonl'), step)
  try:
    yield writers + (metrics_log,)
  finally:
    for writer in writers[0] + writers[1]:
      writer.close()
    metrics_log.close()
