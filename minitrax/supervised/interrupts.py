"""SIGTERM and SIGINT during training: finish the running call, save, stop.

Schedulers and cloud preemption send SIGTERM; a user presses Ctrl-C (SIGINT).
While a `Trainer.train_epoch`, `train()` or `Loop.run` runs in the main
thread, `watching()` replaces the handlers of both signals by one that only
records the signal. The training loop asks `pending()` after each compiled
call; when a signal came, it saves a checkpoint, logs
`Step N: interrupted, saved <path>` and raises `TrainingInterrupted` (see
`stop`). The command line then exits with status 128 + the signal's number.

The first signal puts the handlers that were there before back, so a second
signal acts at once as it would without minitrax (SIGTERM's default handler
ends the process; Python's SIGINT handler raises `KeyboardInterrupt`). When
training ends, the previous handlers are restored too. Outside the main
thread (where Python cannot install handlers) nothing is installed and
`pending()` is always None.

In a run of several processes (`minitrax.distributed`) the processes must
stop after the same call, or the first to stop waits forever in its save for
the others, which are in the next step. There SIGTERM is left to JAX's
runtime, which takes it as a preemption notice for the whole run (any one
process's SIGTERM stops them all), and SIGINT is turned into a SIGTERM of
the process. Every `pending()` counts a call (the same sequence on every
process) and asks the runtime whether the run has reached the call at which
all processes stop (`jax.experimental.multihost_utils.
reached_preemption_sync_point`: the first call after the one the farthest
process had reached when the notice came); there it returns SIGTERM on every
process. A second SIGTERM does not end a process of such a run; SIGKILL does.
"""

import contextlib
import signal
import threading

from jax.experimental import multihost_utils

from minitrax.errors import TrainingInterrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)

__all__ = ['SIGNALS', 'watching', 'pending', 'stop']

_local = threading.local()
_calls = [0]  # `pending()` calls in a run of several processes: the preemption sync counter


def _several_processes():
  from minitrax import distributed  # pylint: disable=import-outside-toplevel
  return distributed.is_initialized() and distributed.process_count() > 1


class _Watch:
  """The signal received while training (None if none) and the handlers to restore."""

  def __init__(self, coordinated=False):
    self.signum = None
    self.previous = {}
    self.coordinated = coordinated

  def handle(self, signum, frame):
    del frame
    self.signum = signum
    self.restore()

  @staticmethod
  def handle_coordinated(signum, frame):
    """SIGINT in a run of several processes: a preemption notice for all (see module doc)."""
    del signum, frame
    signal.raise_signal(signal.SIGTERM)

  def check(self):
    """The signal to stop for, or None; in a run of several processes, one more sync call."""
    if self.signum is None and self.coordinated:
      _calls[0] += 1
      if multihost_utils.reached_preemption_sync_point(_calls[0]):
        self.signum = signal.SIGTERM
    return self.signum

  def restore(self):
    previous, self.previous = self.previous, {}
    for signum, handler in previous.items():
      signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def watching():
  """Records SIGTERM and SIGINT instead of dying while the block runs (outermost block only).

  Nested blocks share the outermost block's record. Yields nothing.
  """
  if getattr(_local, 'watch', None) is not None:
    yield
    return
  watch = _Watch(_several_processes())
  if threading.current_thread() is threading.main_thread():
    if watch.coordinated:  # SIGTERM stays with JAX's runtime
      watch.previous[signal.SIGINT] = signal.signal(signal.SIGINT, watch.handle_coordinated)
    else:
      for signum in SIGNALS:
        watch.previous[signum] = signal.signal(signum, watch.handle)
  _local.watch = watch
  try:
    yield
  finally:
    _local.watch = None
    watch.restore()


def pending():
  """The number of the signal received in the current `watching()` block, or None.

  In a run of several processes: SIGTERM at the call where all processes
  stop, else None (see the module docstring).
  """
  watch = getattr(_local, 'watch', None)
  return None if watch is None else watch.check()


def stop(step, path, log):
  """Logs the interruption at `step` and raises `TrainingInterrupted`.

  Args:
    step: the step just saved.
    path: the checkpoint written, or None if the run has no output folder.
    log: a function taking the message (without its `Step N:` prefix).
  """
  signum = pending()
  name = signal.Signals(signum).name
  if path is None:
    log('interrupted, nothing saved (no output_dir)')
    again = 'training stopped; nothing was saved since the run has no output_dir'
  else:
    log(f'interrupted, saved {path}')
    again = f'saved {path}; run again on the same output_dir to continue from step {step}'
  raise TrainingInterrupted(f'Step {step}: training interrupted by {name}; {again}', signum, step,
                            path)
