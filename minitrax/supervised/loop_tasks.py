"""Trax 1.4's task classes: `TrainTask` and `EvalTask` (exported by `training`).

A task holds an iterator of labeled batches `(inputs..., targets[,
weights])` and what to do with them: a loss layer and an optimizer to train
with (`TrainTask`), or metric layers to evaluate with (`EvalTask`). Unless a
`sample_batch` is given, the task takes the first batch of its iterator as
the sample that gives the shapes (as Trax does: training starts from the
second batch).
"""

from minitrax.checks import check_callable, check_int
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import Layer
from minitrax.optimizers.base import Optimizer

__all__ = ['TrainTask', 'EvalTask', 'check_supported', 'as_task_list']


def _optional_period(who, what, value):
  return None if value is None else check_int(who, what, value, 1)


def _first_batch(labeled_data, sample_batch, who):
  """The given sample batch, or the first batch of `labeled_data` (taken from it, as in Trax)."""
  if sample_batch is not None:
    return sample_batch
  try:
    return next(labeled_data)
  except TypeError as e:
    raise ArgumentTypeError(f'{who}: labeled_data must be an iterator of batches, got a '
                            f'{type(labeled_data).__name__}') from e


class TrainTask:
  """A training task: labeled data, a loss layer and an optimizer (Trax 1.4's `TrainTask`).

  Args:
    labeled_data: an iterator of batches `(inputs..., targets[, weights])`.
    loss_layer: `(model outputs..., targets[, weights]) -> scalar loss`.
    optimizer: an `Optimizer` instance, or class (built with its defaults).
    lr_schedule: `step -> learning rate` (steps from 1); None keeps the
      optimizer's learning rate.
    n_steps_per_checkpoint: the default period of checkpoints and evaluations.
    n_steps_per_permanent_checkpoint: the default period of permanent
      checkpoints `model_<step>.pkl.gz`; None for none.
    loss_name: the loss's name in logs; default the loss layer's name.
    sample_batch: a batch giving the shapes; default the next batch of
      `labeled_data` (which training then does not use).
    export_prefix: the folder of this task's summaries when a Loop has
      several tasks.
  """

  def __init__(self, labeled_data, loss_layer, optimizer, lr_schedule=None,
               n_steps_per_checkpoint=100, n_steps_per_permanent_checkpoint=None, loss_name=None,
               sample_batch=None, export_prefix=None):
    if not isinstance(loss_layer, Layer):
      raise ArgumentTypeError(f'TrainTask: loss_layer must be a layer, got {loss_layer!r}')
    if isinstance(optimizer, type) and issubclass(optimizer, Optimizer):
      optimizer = optimizer()
    if not isinstance(optimizer, Optimizer):
      raise ArgumentTypeError(f'TrainTask: optimizer must be an Optimizer or its class, got '
                              f'{optimizer!r}')
    if lr_schedule is not None:
      check_callable('TrainTask', 'lr_schedule', lr_schedule, 'a function step -> learning rate')
    self._n_steps_per_checkpoint = _optional_period('TrainTask', 'n_steps_per_checkpoint',
                                                    n_steps_per_checkpoint)
    self._n_steps_per_permanent_checkpoint = _optional_period('TrainTask',
                                                              'n_steps_per_permanent_checkpoint',
                                                              n_steps_per_permanent_checkpoint)
    self._labeled_data, self._loss_layer, self._optimizer = labeled_data, loss_layer, optimizer
    self._lr_schedule, self._export_prefix = lr_schedule, export_prefix
    self._sample_batch = _first_batch(labeled_data, sample_batch, 'TrainTask')
    self._loss_name = loss_name or loss_layer.name

  labeled_data = property(lambda self: self._labeled_data)
  sample_batch = property(lambda self: self._sample_batch)
  export_prefix = property(lambda self: self._export_prefix)
  loss_layer = property(lambda self: self._loss_layer)
  loss_name = property(lambda self: self._loss_name)
  n_steps_per_checkpoint = property(lambda self: self._n_steps_per_checkpoint)
  n_steps_per_permanent_checkpoint = property(lambda self: self._n_steps_per_permanent_checkpoint)
  optimizer = property(lambda self: self._optimizer)
  lr_schedule = property(lambda self: self._lr_schedule)

  def next_batch(self):
    """The next batch of `labeled_data`."""
    return next(self._labeled_data)

  def learning_rate(self, step):
    """The learning rate of (1-based) step `step`: the schedule's, else the optimizer's."""
    if self._lr_schedule is None:
      return self._optimizer.hyperparameters['learning_rate']
    value = self._lr_schedule(step)
    return value['learning_rate'] if isinstance(value, dict) else value


class EvalTask:
  """Labeled data and metric layers to evaluate a model on (Trax 1.4's `EvalTask`).

  Args:
    labeled_data: an iterator of batches `(inputs..., targets[, weights])`.
    metrics: metric layers, each `(model outputs..., targets[, weights]) -> scalar`.
    metric_names: their names in logs; default the layers' names.
    n_eval_batches: batches each evaluation averages over.
    sample_batch: a batch giving the shapes; default the next batch of
      `labeled_data`.
    export_prefix: the folder of this task's summaries when a Loop has
      several eval tasks.
  """

  def __init__(self, labeled_data, metrics, metric_names=None, n_eval_batches=1, sample_batch=None,
               export_prefix=None):
    metrics = list(metrics)
    for metric in metrics:
      if not isinstance(metric, Layer):
        raise ArgumentTypeError(f'EvalTask: metrics must be layers, got {metric!r}')
    metric_names = list(metric_names or [m.name for m in metrics])
    if len(metrics) != len(metric_names):
      raise ArgumentError(f'EvalTask: number of metrics ({len(metrics)}) does not equal number '
                          f'of metric names ({len(metric_names)})')
    self._n_eval_batches = check_int('EvalTask', 'n_eval_batches', n_eval_batches, 1)
    self._labeled_data, self._metrics, self._metric_names = labeled_data, metrics, metric_names
    self._export_prefix = export_prefix
    self._sample_batch = _first_batch(labeled_data, sample_batch, 'EvalTask')

  labeled_data = property(lambda self: self._labeled_data)
  sample_batch = property(lambda self: self._sample_batch)
  export_prefix = property(lambda self: self._export_prefix)
  metrics = property(lambda self: self._metrics)
  metric_names = property(lambda self: self._metric_names)
  n_eval_batches = property(lambda self: self._n_eval_batches)

  def next_batch(self):
    """The next batch of `labeled_data`."""
    return next(self._labeled_data)


def check_supported(loss_chunk_size, use_memory_efficient_trainer, adasum, callbacks):
  """Refuses, by name, the arguments of Trax's Loop that minitrax does not implement."""
  given = {
      'loss_chunk_size': loss_chunk_size,
      'use_memory_efficient_trainer': use_memory_efficient_trainer, 'adasum': adasum,
      'callbacks': callbacks
  }
  refused = [f'{name}={value!r}' for name, value in given.items() if value]
  if refused:
    raise ArgumentError(
        f'Loop: {", ".join(refused)} not supported: minitrax trains with one compiled '
        'data-parallel step (no memory-efficient trainer, Adasum, chunked loss or step callbacks); '
        'leave loss_chunk_size=0, use_memory_efficient_trainer=False, adasum=False, callbacks=None')


def as_task_list(tasks, cls, what):
  """`tasks` (one or a list or tuple) as a list, each checked to be a `cls`."""
  tasks = list(tasks) if isinstance(tasks, (list, tuple)) else [tasks]
  for task in tasks:
    if not isinstance(task, cls):
      raise ArgumentTypeError(f'Loop: {what} must be {cls.__name__}s, got {task!r}')
  return tasks
