"""The losses of training steps: read back from the devices, checked, logged.

A compiled training call returns its steps' losses and gradient norms as
device arrays. `StepsLog` keeps them without waiting (at most `IN_FLIGHT`
calls queued on the devices ahead of the host), and at a checkpoint or the end
of an epoch fetches them all at once: each step's loss goes to the summaries,
and the first non-finite loss or gradient norm stops training with a
`TrainingError` naming the step.

Compiled steps turn a bad token id or target into NaN (see `core.check_ids`),
so a non-finite loss is diagnosed by re-running the training model eagerly on
that step's batch (`layers.diagnosis.eager_error`); the `LayerError` it
raises, if any, is reported as the cause.
"""

import time

import jax
import numpy as np

from minitrax.errors import TrainingError
from minitrax.layers.diagnosis import eager_error

IN_FLIGHT = 2  # Compiled calls queued on the devices ahead of the host, at most.


class StepsLog:
  """Losses of the training steps not yet checked, and whether training diverged.

  Args:
    model_with_loss: the training layer, `Serial(model, loss)`.
    batches: the training `DeviceBatches` (read again to diagnose a step).
    train_key: the run's training key (`run_state.run_keys`).
  """

  def __init__(self, model_with_loss, batches, train_key):
    self._model_with_loss = model_with_loss
    self._batches = batches
    self._train_key = train_key
    self._pending = []  # (losses, norms, learning rates) of calls not yet checked
    self._diverged_at = None

  def add(self, losses, norms, params, *extras):
    """Keeps one compiled call's `(n,)` losses, norms (and `extras`, further `(n,)` statistics)
    and its steps' hyperparameters."""
    self._pending.append((losses, norms, [p['learning_rate'] for p in params], extras))
    if len(self._pending) > IN_FLIGHT:
      self._pending[-1 - IN_FLIGHT][0].block_until_ready()

  def record(self, run, summaries=None):
    """Fetches the kept losses (of the steps up to `run.step`), checks and logs them.

    Args:
      run: the `RunState` after the kept steps.
      summaries: a `RunSummaries` to write each step's loss (and some learning
        rates) to, or None for none.

    Returns:
      `[(step, loss, gradients_l2, learning_rate, *extras)]`, one tuple of
      Python numbers per step, in order.

    Raises:
      TrainingError: a loss or gradient norm is not finite; names the step.
    """
    pending, self._pending = self._pending, []
    values = jax.device_get([(losses, norms) + extras for losses, norms, _, extras in pending])
    step = run.step - sum(len(lrs) for _, _, lrs, _ in pending)
    rows = []
    for arrays, (_, _, lrs, _) in zip(values, pending):
      for i, lr in enumerate(lrs):
        step += 1
        loss, norm = arrays[0][i], arrays[1][i]
        if not (np.isfinite(loss) and np.isfinite(norm)):
          self._diverged_at = step
          self._raise_diverged(run, step, loss, norm)
        if summaries is not None:
          _write(summaries, step, loss, lr)
        rows.append((step, float(loss), float(norm), float(lr)) +
                    tuple(float(a[i]) for a in arrays[2:]))
    return rows

  def check_not_diverged(self):
    """Raises `TrainingError` if training diverged (the trainer's arrays are then unusable)."""
    if self._diverged_at is not None:
      raise TrainingError(f'Trainer: training diverged at step {self._diverged_at}; make a new '
                          'Trainer (it restores the last checkpoint) to go on')

  def _raise_diverged(self, run, step, loss, norm):
    """Raises the TrainingError of a non-finite loss or gradient norm at `step`."""
    cause = self._eager_error(run, step)
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

  def _eager_error(self, run, step):
    """The `LayerError` of the training model run eagerly on step `step`'s batch, or None.

    The batch is read again from the training stream (exact for `Stream`
    inputs and deterministic generators); the weights and state are the
    current ones (those before the step were donated to the compiled call).
    """
    batch = self._batches.host_batch(step - 1 + run.input_position - run.step)
    weights, state = jax.device_get((run.weights, run.state))
    rng = jax.random.fold_in(jax.random.fold_in(self._train_key, step - 1), 0)
    return eager_error(self._model_with_loss, tuple(batch), weights, state, rng)


def _write(summaries, step, loss, lr):
  """A step's loss to the summaries (TensorBoard: step 1 and every 10th, as Trax)."""
  sampled = step == 1 or step % 10 == 0
  summaries.write('train', 'training/loss', loss, step, tensorboard=sampled)
  if sampled:
    summaries.write('train', 'training/learning_rate', lr, step, json_lines=False)


class Progress:
  """Logs `Ran <done> of <n> train steps (<rate> steps/s, loss <loss>)` every `every_secs`.

  Args:
    n_steps: steps in the epoch.
    log_step: logs one line (`Trainer.log_step`).
    every_secs: seconds between two lines.
  """

  def __init__(self, n_steps, log_step, every_secs):
    self._n, self._log_step, self._every = n_steps, log_step, every_secs
    self._start = self._shown = time.time()

  def update(self, done, losses=None):
    """Called after each compiled call with the steps done so far in the epoch.

    Args:
      done: steps done so far in the epoch.
      losses: the last compiled call's `(n,)` losses (a device array); its
        last is shown (read from the device only when a line is logged).
    """
    if time.time() - self._shown > self._every:
      self._shown = time.time()
      loss = '' if losses is None else f', loss {float(np.asarray(losses)[-1]):0.8f}'
      self._log_step(f'Ran {done} of {self._n} train steps '
                     f'({done / (self._shown - self._start):0.2f} steps/s{loss})')


__all__ = ['IN_FLIGHT', 'StepsLog', 'Progress']
