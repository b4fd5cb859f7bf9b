"""`train()`: a whole training run in epochs, resumable; what the command line calls.

>>> from minitrax.data import copy_inputs
>>> from minitrax.models.transformer import TransformerLM
>>> def model(mode):
...   return TransformerLM(32, d_model=32, d_ff=64, n_layers=1, mode=mode)
>>> state = train('/tmp/copy', model, inputs=copy_inputs(), has_weights=True,
...               steps=300, eval_frequency=100)            # doctest: +SKIP

As in Trax, evaluation runs after step 1, then every `eval_frequency` steps
(epochs of 1, eval_frequency - 1, eval_frequency, ... steps), and a run
restarted on the same `output_dir` restores `model.pkl` and skips the steps
already done. `config.gin` records the configuration after the first epoch.
"""

import itertools
import os

from minitrax.errors import ConfigError
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.lr import MultifactorSchedule
from minitrax.optimizers import Adafactor
from minitrax.supervised.trainer import Trainer


def train(output_dir, model=None, loss_fn=CrossEntropyLoss, inputs=None, optimizer=Adafactor,
          lr_schedule=MultifactorSchedule, trainer_class=Trainer, steps=1000,
          checkpoints_at=None, eval_steps=10, eval_frequency=100, random_seed=None,
          n_devices=None, has_weights=False, id_to_mask=None, metrics=None,
          checkpoint_highest=None, checkpoint_lowest=None, train_steps=None, config_text=None):
  """Trains `model` on `inputs` for `steps` steps, saving and evaluating in `output_dir`.

  Args:
    output_dir: folder for checkpoints, summaries and `config.gin`.
    model: a function of `mode` returning the model layer.
    loss_fn, optimizer, lr_schedule, random_seed, n_devices, checkpoints_at,
      has_weights, id_to_mask, metrics, checkpoint_highest, checkpoint_lowest:
      as for `Trainer` (`trainer_class`).
    inputs: an `Inputs` or a function returning one.
    steps: total training steps (a restarted run does only the rest).
    eval_steps: batches per evaluation; 0 or None for training only.
    eval_frequency: steps between evaluations; 0 or None for training only.
    train_steps: the older name of `steps` (as in the Trax README's
      `--config="train.train_steps=1000"`); overrides `steps` when given.
    config_text: the configuration to write to `config.gin`: a string or a
      function returning one (the command line passes gin's operative
      config); default, a description of this call's arguments.

  Returns:
    The trainer's final `TrainerState`.
  """
  if model is None:
    raise ConfigError('train: no model given; pass model=... (on the command line --model=MLP '
                      'or the binding train.model=@MLP)')
  if inputs is None:
    raise ConfigError('train: no inputs given; pass inputs=... (on the command line '
                      '--dataset=mnist or the binding train.inputs=@copy_inputs)')
  output_dir = os.path.expanduser(output_dir)
  steps = train_steps if train_steps is not None else steps
  trainer = trainer_class(model, loss_fn, optimizer, lr_schedule, inputs, output_dir,
                          random_seed=random_seed, n_devices=n_devices,
                          checkpoints_at=checkpoints_at, has_weights=has_weights,
                          id_to_mask=id_to_mask, metrics=metrics,
                          checkpoint_highest=checkpoint_highest,
                          checkpoint_lowest=checkpoint_lowest)
  epoch_steps = [steps]
  if eval_frequency and eval_steps:
    epoch_steps = itertools.chain([1, eval_frequency - 1], itertools.repeat(eval_frequency))
  description = _describe_call(
      model=model, loss_fn=loss_fn, inputs=inputs, optimizer=optimizer, lr_schedule=lr_schedule,
      steps=steps, eval_steps=eval_steps, eval_frequency=eval_frequency,
      random_seed=random_seed, has_weights=has_weights, id_to_mask=id_to_mask)
  trainer.log_step(f'Starting training using {trainer.n_devices} devices')
  trainer.print_n_weights()
  config_path = os.path.join(output_dir, 'config.gin')
  write_config = trainer.step == 0 or not os.path.exists(config_path)
  try:
    for n_steps in epochs(steps, trainer.step, epoch_steps):
      trainer.train_epoch(n_steps, eval_steps or 0)
      if write_config:
        _write_config(trainer, config_path, config_text, description)
        write_config = False
    trainer.log_step('Training done')
  finally:
    trainer.close()
  return trainer.state


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


def _describe_call(**kwargs):
  """The arguments of a `train` call as `train.<name> = <value>` lines."""
  def show(value):
    name = getattr(value, '__name__', None)
    return f'@{name}' if name else repr(value)
  return ''.join(f'train.{k} = {show(v)}\n' for k, v in kwargs.items())


def _write_config(trainer, path, config_text, description):
  text = config_text() if callable(config_text) else config_text
  text = text if text is not None else description
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(tmp, path)
  trainer.text_summary('gin_config', '\n'.join('    ' + line for line in text.splitlines()))


__all__ = ['train', 'epochs']
