"""`train()`: a whole training run in epochs, resumable; what the command line calls.

>>> from minitrax.data import copy_inputs
>>> from minitrax.models.transformer import TransformerLM
>>> def model(mode):
...   return TransformerLM(32, d_model=32, d_ff=64, n_layers=1, mode=mode)
>>> state = train('/tmp/copy', model, copy_inputs(),
...               objective=Objective(has_weights=True),
...               plan=Plan(steps=300, eval_frequency=100))         # doctest: +SKIP

The settings come in groups, each checked when it is made: `Objective` (the
loss and the metrics, and how batches weigh positions) and `Plan` (how many
steps, when to evaluate and which checkpoints to keep). Gin files and the
command line keep their flat bindings (`train.steps = 1000`,
`train.has_weights = True`): `minitrax.config` maps them onto the groups.

As in Trax, evaluation runs after step 1, then every `eval_frequency` steps
(epochs of 1, eval_frequency - 1, eval_frequency, ... steps), and a run
restarted on the same `output_dir` restores `model.pkl` and skips the steps
already done. `config.gin` records the configuration after the first epoch.
"""

import dataclasses
import itertools
import os
import typing

from minitrax import distributed
from minitrax.checks import check_int
from minitrax.errors import ConfigError, RunDirError
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.lr import MultifactorSchedule
from minitrax.optimizers import Adafactor
from minitrax.optimizers.base import Optimizer
from minitrax.supervised import interrupts
from minitrax.supervised.trainer import Trainer


def _check_kind(what, value, test, expected):
  """Raises `ConfigError("train: <what> must be <expected>, got <value>")` unless `test(value)`."""
  if not test(value):
    raise ConfigError(f'train: {what} must be {expected}, got {value!r}')


@dataclasses.dataclass(frozen=True)
class Objective:
  """What training minimises and evaluation reports.

  Attributes:
    loss_fn: a loss factory (called with `has_weights`, `id_to_mask`) or layer.
    has_weights: whether batches carry loss weights as a third array.
    id_to_mask: target id whose positions count nothing (padding), or None.
    metrics: `{name: factory or layer}`; None for Trax's five.
  """
  loss_fn: typing.Any = CrossEntropyLoss
  has_weights: bool = False
  id_to_mask: typing.Optional[int] = None
  metrics: typing.Optional[dict] = None

  def __post_init__(self):
    if not isinstance(self.has_weights, bool):
      raise ConfigError(f'train: has_weights must be True or False, got {self.has_weights!r}')
    if self.id_to_mask is not None:
      check_int('train', 'id_to_mask', self.id_to_mask, 0, error=ConfigError)
    _check_kind('loss_fn', self.loss_fn, callable, 'a loss factory or layer')
    _check_kind('metrics', self.metrics, lambda m: m is None or isinstance(m, dict),
                'None or a dict {name: factory or layer}')


@dataclasses.dataclass(frozen=True)
class Plan:
  """How long a run trains, when it evaluates and which checkpoints it keeps.

  Attributes:
    steps: total training steps, >= 1 (a restarted run does only the rest).
    eval_steps: batches per evaluation; 0 for training only.
    eval_frequency: steps between evaluations; 0 for training only.
    checkpoints_at: steps at which to also keep `model_{step}.pkl`.
    checkpoint_highest, checkpoint_lowest: metric names whose best
      checkpoints are kept (`highest_<m>.pkl`, `lowest_<m>.pkl`).
    keep_checkpoints: None, or N >= 1: `model_<step>.pkl` is also saved at
      each epoch's end and the newest N are kept (see `Trainer`).
    permanent_every: None, or K >= 1: `model_<step>.pkl` of every K-th step
      is saved and never deleted.
  """
  steps: int = 1000
  eval_steps: int = 10
  eval_frequency: int = 100
  checkpoints_at: typing.Optional[typing.Sequence[int]] = None
  checkpoint_highest: typing.Optional[str] = None
  checkpoint_lowest: typing.Optional[str] = None
  keep_checkpoints: typing.Optional[int] = None
  permanent_every: typing.Optional[int] = None

  def __post_init__(self):
    check_int('train', 'steps', self.steps, 1, error=ConfigError)
    for name in ('eval_steps', 'eval_frequency'):
      if getattr(self, name) is not None:
        check_int('train', name, getattr(self, name), 0, error=ConfigError)
    _check_kind('checkpoints_at', self.checkpoints_at,
                lambda v: v is None or isinstance(v, (list, tuple, set, frozenset, range)),
                'None or a list of steps')
    for step in self.checkpoints_at or ():
      check_int('train', 'checkpoints_at', step, 1, error=ConfigError)
    for name in ('checkpoint_highest', 'checkpoint_lowest'):
      _check_kind(name, getattr(self, name), lambda v: v is None or isinstance(v, str),
                  'None or a metric name')
    for name in ('keep_checkpoints', 'permanent_every'):
      if getattr(self, name) is not None:
        check_int('train', name, getattr(self, name), 1, error=ConfigError)

  def epoch_steps(self):
    """The step counts of all epochs of a run from its start (Trax's schedule)."""
    if self.eval_frequency and self.eval_steps:
      return itertools.chain([1, self.eval_frequency - 1], itertools.repeat(self.eval_frequency))
    return [self.steps]


def train(output_dir, model=None, inputs=None, optimizer=Adafactor, lr_schedule=MultifactorSchedule,
          objective=Objective(), plan=Plan(), random_seed=None, n_devices=None,
          trainer_class=Trainer, config_text=None, sharding=None):
  """Trains `model` on `inputs` for `plan.steps` steps, saving and evaluating in `output_dir`.

  Args:
    output_dir: folder for checkpoints, summaries and `config.gin`.
    model: a function of `mode` returning the model layer.
    inputs: an `Inputs` or a function returning one.
    optimizer, lr_schedule, random_seed, n_devices: as for `Trainer`.
    trainer_class: the class that trains, `Trainer` or a subclass of it.
    objective: an `Objective`: loss, metrics, loss weights.
    plan: a `Plan`: steps, evaluations, kept checkpoints.
    config_text: the configuration to write to `config.gin`: a string or a
      function returning one (the command line passes gin's operative
      config); default, a description of this call's arguments.
    sharding: None (the Trainer's default, replicated), 'replicated' or 'fsdp'
      (see `Trainer`).

  Returns:
    The trainer's final `TrainerState`.

  Raises:
    RunDirError: `output_dir` is a file, lies under a file, is not writable,
      or another run holds it (checked first, before any compiling).
    TrainingInterrupted: a SIGTERM or SIGINT came; the steps done are saved
      in `model.pkl` and a new call on the same `output_dir` continues them.
  """
  _check_given(model, inputs)
  _check_arguments(output_dir, model, inputs, optimizer, lr_schedule, random_seed, n_devices,
                   trainer_class, config_text)
  output_dir = os.path.expanduser(output_dir)
  retention = {
      name: getattr(plan, name)
      for name in ('keep_checkpoints', 'permanent_every')
      if getattr(plan, name) is not None
  }
  trainer = trainer_class(model, objective.loss_fn, optimizer, lr_schedule, inputs, output_dir,
                          random_seed=random_seed, n_devices=n_devices,
                          checkpoints_at=plan.checkpoints_at, has_weights=objective.has_weights,
                          id_to_mask=objective.id_to_mask, metrics=objective.metrics,
                          checkpoint_highest=plan.checkpoint_highest,
                          checkpoint_lowest=plan.checkpoint_lowest, **retention,
                          **({} if sharding is None else {'sharding': sharding}))
  try:
    description = _describe_call(model=model, inputs=inputs, optimizer=optimizer,
                                 lr_schedule=lr_schedule, random_seed=random_seed,
                                 **_fields(objective), **_fields(plan))
    with interrupts.watching():
      _run_epochs(trainer, plan, os.path.join(output_dir, 'config.gin'), lambda: config_text()
                  if callable(config_text) else config_text, description)
  finally:
    trainer.close()
  return trainer.state


def _run_epochs(trainer, plan, config_path, config_text, description):
  """Trains the epochs still to run; writes `config.gin` after the first (if new)."""
  trainer.log_step(f'Starting training using {trainer.n_devices} devices')
  trainer.print_n_weights()
  write_config = trainer.step == 0 or not os.path.exists(config_path)
  for n_steps in epochs(plan.steps, trainer.step, plan.epoch_steps()):
    trainer.train_epoch(n_steps, plan.eval_steps or 0)
    if write_config and distributed.is_main():
      _write_config(trainer, config_path, config_text(), description)
      write_config = False
  trainer.log_step('Training done')


def _check_given(model, inputs):
  if model is None:
    raise ConfigError('train: no model given; pass model=... (on the command line --model=MLP '
                      'or the binding train.model=@MLP)')
  if inputs is None:
    raise ConfigError('train: no inputs given; pass inputs=... (on the command line '
                      '--dataset=mnist or the binding train.inputs=@copy_inputs)')


def _check_arguments(output_dir, model, inputs, optimizer, lr_schedule, random_seed, n_devices,
                     trainer_class, config_text):
  """The types and ranges of `train`'s arguments, before anything is built, read or written.

  Raises:
    ConfigError: naming the argument (the binding `train.<name>`), what it
      must be and what it is.
  """
  _check_kind('output_dir', output_dir, lambda v: isinstance(v, (str, os.PathLike)) and str(v),
              'a folder path')
  _check_kind('model', model, callable, 'a function of mode returning a layer, or a layer')
  _check_kind('inputs', inputs, lambda v: hasattr(v, 'train_stream') or callable(v),
              'an Inputs or a function returning one')
  _check_kind('optimizer', optimizer, lambda v: isinstance(v, Optimizer) or callable(v),
              'an Optimizer class or instance')
  _check_kind('lr_schedule', lr_schedule, callable, 'a schedule or a factory of one')
  _check_kind('trainer_class', trainer_class, callable, 'a Trainer class')
  _check_kind('config_text', config_text, lambda v: v is None or isinstance(v, str) or callable(v),
              'None, a string or a function returning one')
  if random_seed is not None:
    check_int('train', 'random_seed', random_seed, 0, error=ConfigError)
  if n_devices is not None:
    check_int('train', 'n_devices', n_devices, 1, error=ConfigError)


def epochs(total_steps, steps_to_skip, epoch_steps):
  """The step counts of the epochs still to run (Trax's `epochs`).

  Args:
    total_steps: steps of the whole run.
    steps_to_skip: steps already done (by a run that was interrupted).
    epoch_steps: iterable of the step counts of all epochs, from the start.

  Yields:
    The number of steps of each remaining epoch (the first may be the rest of
    an interrupted one; the last is cut to end at `total_steps`; empty epochs
    are skipped).
  """
  to_go = total_steps - steps_to_skip
  epoch_steps = iter(epoch_steps)
  for n in epoch_steps:
    if n > steps_to_skip:
      epoch_steps = itertools.chain([n - steps_to_skip], epoch_steps)
      break
    steps_to_skip -= n
  for n in epoch_steps:
    if to_go <= 0:
      break
    n = min(n, to_go)
    if n > 0:
      yield n
      to_go -= n


def _fields(settings):
  return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def _describe_call(**kwargs):
  """The arguments of a `train` call as `train.<name> = <value>` lines."""

  def show(value):
    name = getattr(value, '__name__', None)
    return f'@{name}' if name else repr(value)

  return ''.join(f'train.{k} = {show(v)}\n' for k, v in kwargs.items())


def _write_config(trainer, path, text, description):
  text = text if text is not None else description
  tmp = path + '.tmp'
  try:
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
    os.replace(tmp, path)
  except OSError as e:
    raise RunDirError(f'train: cannot write {path} ({e.strerror or e})') from e
  trainer.text_summary('gin_config', '\n'.join('    ' + line for line in text.splitlines()))


__all__ = ['train', 'epochs', 'Objective', 'Plan']
