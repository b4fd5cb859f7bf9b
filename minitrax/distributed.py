"""Many processes on JAX's distributed runtime: start-up, the global device list, coordination.

One training run may span several processes (typically one per host), each
driving its local devices. `initialize` connects them through JAX's own
runtime (`jax.distributed.initialize`); from then on `jax.devices()` lists the
devices of all processes, the Trainer's mesh spans them all, and every
process runs the same program:

    # on every host (or with a cluster launcher's environment, no arguments):
    minitrax.distributed.initialize('10.0.0.1:1234', num_processes=2, process_id=0)

What a run does across processes:

* Data: each process reads only its part of every global batch, rows
  `[p * B / P, (p + 1) * B / P)` (`Inputs.train_stream(..., part=(p, P))`:
  array, IDX and TFDS streams decode just those examples; other streams
  make the whole batch and cut it), and the global batch is assembled from
  the parts with `jax.make_array_from_process_local_data`
  (`data.device.DeviceBatches`). The batch size is the global one, so 1 or N
  processes train on the same batches; a resumed run starts every process
  at the same batch index. Trax 1.4 pipelines and `Loop` tasks give each
  process's own batches, as in Trax (global = the processes' together).
* Checkpoints (`commit`): process 0 alone writes the file after a barrier
  and the others wait at a second barrier until the atomic rename is done.
  Arrays sharded over several processes' devices (`sharding='fsdp'`) are not
  gathered: each process first writes the pieces its devices hold into a file
  of its own, which the checkpoint names (`minitrax.shard_files`); the other
  arrays are fetched to process 0's host. The output folder must be one file
  system that all processes see.
* Logs and summaries come from process 0 (`is_main`); the other processes
  print only the lines that differ between processes (their devices and
  rows, their errors), prefixed by their index (`process_prefix`), and the
  records of minitrax's `logging` loggers carry the prefix on every process.
* A process that dies: the collectives of the others fail at once (the
  operating system closes its connections), and `peer_failures` turns the
  error into a `TrainingError` naming the dead processes, as the runtime
  reports them within `heartbeat_timeout_s`. Recoverability is on
  (`jax_enable_recoverability`), so the runtime does not abort the survivors
  itself. The exception is process 0, which hosts the runtime's coordination
  service: when it dies, JAX terminates the others at once with its own
  message ("the JAX distributed service detected fatal errors").

Without `initialize` (one process) everything here is the identity, a no-op
or process 0's behaviour.
"""

import atexit
import functools
import logging
import time

import numpy as np

import jax
from jax.experimental import multihost_utils

from minitrax.checks import check_int
from minitrax.errors import ConfigError, MinitraxError, TrainingError

__all__ = [
    'HEARTBEAT_TIMEOUT_S', 'initialize', 'is_initialized', 'process_index', 'process_count',
    'is_main', 'process_prefix', 'process_rows', 'barrier', 'commit', 'is_sharded_over_processes',
    'to_host', 'dead_processes', 'peer_failures'
]

HEARTBEAT_TIMEOUT_S = 10  # A process silent this long is dead (JAX's default: 100 s).
_heartbeat_s = [HEARTBEAT_TIMEOUT_S]  # the timeout `initialize` was given


def initialize(coordinator_address=None, num_processes=None, process_id=None,
               heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, initialization_timeout_s=300):
  """Joins this process to a multi-process run (`jax.distributed.initialize`).

  Call it first, before anything uses a JAX device. With no arguments, JAX
  detects the cluster from the environment its launchers set (SLURM, Cloud
  TPU pod slices, Open MPI / MPI-style variables, `JAX_COORDINATOR_ADDRESS`).
  On CPU, collectives between processes use gloo.

  Args:
    coordinator_address: `'host:port'` of process 0 (it serves there), or None.
    num_processes: int >= 1, or None to detect.
    process_id: int in `[0, num_processes)`, or None to detect.
    heartbeat_timeout_s: a process silent this long counts as dead.
    initialization_timeout_s: how long to wait for all processes to connect.

  Raises:
    ConfigError: an argument is malformed, or the cluster cannot be detected.
    TrainingError: the processes did not all connect in time.
  """
  if num_processes is not None:
    num_processes = check_int('initialize', 'num_processes', num_processes, 1, error=ConfigError)
  if process_id is not None:
    process_id = check_int('initialize', 'process_id', process_id, 0, error=ConfigError)
    if num_processes is not None and process_id >= num_processes:
      raise ConfigError(f'initialize: process_id must be < num_processes={num_processes}, '
                        f'got {process_id}')
  check_int('initialize', 'heartbeat_timeout_s', heartbeat_timeout_s, 1, error=ConfigError)
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.config.update('jax_enable_recoverability', True)
  _heartbeat_s[0] = heartbeat_timeout_s
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=initialization_timeout_s,
                               heartbeat_timeout_seconds=heartbeat_timeout_s,
                               shutdown_timeout_seconds=heartbeat_timeout_s)
  except (ValueError, TypeError) as e:
    raise ConfigError(f'initialize: cannot start the distributed run (coordinator_address='
                      f'{coordinator_address!r}, num_processes={num_processes!r}, process_id='
                      f'{process_id!r}): {e}') from e
  except RuntimeError as e:
    raise TrainingError(f'initialize: process {process_id} could not join the run at '
                        f'{coordinator_address!r} within {initialization_timeout_s} s: {e}') from e
  atexit.register(_leave, max(30, 3 * heartbeat_timeout_s))
  logging.setLogRecordFactory(_prefix_records(logging.getLogRecordFactory()))
  print(
      f'{process_prefix()}joined the run: devices {[d.id for d in jax.local_devices()]} of '
      f'{jax.device_count()}; reads part {process_index()} of every global batch', flush=True)


def _leave(timeout_s):
  """At exit: leaves the run in order, so that no process loses the coordination service.

  All processes meet at a last barrier (skipped when one is dead already),
  the others disconnect, and process 0, which serves the coordination
  service, shuts down last. Without this, the process that finishes first
  may be process 0, and the others' disconnection fails (JAX aborts them).
  """
  client = _client()
  if client is None or dead_processes(wait_s=0):
    return
  try:
    client.wait_at_barrier('minitrax:exit', int(timeout_s * 1000))
    if is_main():
      deadline = time.monotonic() + timeout_s
      while len(client.get_live_nodes(list(range(process_count())))) > 1:
        if time.monotonic() > deadline:
          break
        time.sleep(0.05)
  except Exception:  # pylint: disable=broad-except  (JAX's own shutdown follows)
    return
  jax.distributed.shutdown()


def _client():
  """JAX's distributed runtime client, or None without `initialize`."""
  from jax._src import distributed as jax_distributed  # pylint: disable=import-outside-toplevel
  return jax_distributed.global_state.client


def is_initialized():
  """Whether `initialize` joined this process to a multi-process run."""
  return _client() is not None


def process_index():
  """This process's index in the run (0 without `initialize`)."""
  return jax.process_index()


def process_count():
  """The number of processes in the run (1 without `initialize`)."""
  return jax.process_count()


def is_main():
  """Whether this is process 0: the one that logs, writes summaries and checkpoints."""
  return process_index() == 0


def process_prefix():
  """`'[process p/P] '` in a run of several processes, else `''`: it starts their own log lines."""
  return f'[process {process_index()}/{process_count()}] ' if is_initialized() else ''


def _prefix_records(make_record):
  """A `logging` record factory that prefixes the messages of minitrax's loggers."""

  def make(*args, **kwargs):
    record = make_record(*args, **kwargs)
    if record.name.startswith('minitrax') and isinstance(record.msg, str):
      record.msg = process_prefix() + record.msg
    return record

  return make


def process_rows(array, axis=0):
  """This process's equal share of `array` along `axis` (the whole array for one process).

  The global batch's rows `[p * n / P, (p + 1) * n / P)` belong to process `p`
  of `P`, the rows its devices hold in a mesh ordered by process.
  """
  count = process_count()
  if count == 1:
    return array
  n = array.shape[axis] // count
  index = [slice(None)] * array.ndim
  index[axis] = slice(process_index() * n, (process_index() + 1) * n)
  return array[tuple(index)]


def barrier(name):
  """Waits until every process reaches the barrier `name` (a device collective)."""
  if process_count() > 1:
    multihost_utils.sync_global_devices(name)


def commit(name, write):
  """Runs `write()` on process 0 alone, between two barriers of all processes.

  The first barrier makes sure every process is done reading the old file;
  the second that no process goes on before the new one is in place. With an
  atomic `write` (temporary file and rename), a checkpoint is either complete
  for the whole run or not there.
  """
  barrier(f'{name}:before')
  if is_main():
    write()
  barrier(f'{name}:after')


def is_sharded_over_processes(x):
  """Whether `x` is a `jax.Array` split over the devices of several processes.

  Such an array is neither fully addressable (no process holds it all) nor
  fully replicated: `sharding='fsdp'` weights and slots in a run of several
  processes. A checkpoint saves it in pieces (`minitrax.shard_files`).
  """
  return isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated


def to_host(tree, keep_sharded=False):
  """`tree` with its arrays as NumPy arrays holding their whole (global) values.

  Arrays spread over other processes' devices (`is_sharded_over_processes`)
  are gathered (a collective: every process must call it with the same
  tree), or, with `keep_sharded`, left as they are (a checkpoint writes each
  process's pieces of them, `minitrax.shard_files`).
  """
  leaves, treedef = jax.tree.flatten(tree)
  spread = [is_sharded_over_processes(x) for x in leaves]
  if not keep_sharded:
    leaves = [
        np.asarray(multihost_utils.process_allgather(x, tiled=True)) if s else x
        for x, s in zip(leaves, spread)
    ]
    spread = [False] * len(leaves)
  fetched = jax.device_get([None if s else x for x, s in zip(leaves, spread)])
  return jax.tree.unflatten(treedef, [x if s else y for x, y, s in zip(leaves, fetched, spread)])


def dead_processes(wait_s=None):
  """The indices of the run's processes that the runtime reports dead, `[]` if none.

  A process killed a moment ago is reported once its heartbeats are missed:
  this polls up to `wait_s` (default: the heartbeat timeout + 2) seconds.
  """
  client = _client()
  if client is None:
    return []
  everyone = list(range(process_count()))
  deadline = time.monotonic() + (_heartbeat_s[0] + 2 if wait_s is None else wait_s)
  while True:
    try:
      live = set(client.get_live_nodes(everyone))
    except Exception:  # pylint: disable=broad-except  (the service itself is gone)
      live = {process_index()}
    dead = [p for p in everyone if p not in live]
    if dead or time.monotonic() >= deadline:
      return dead
    time.sleep(0.2)


def peer_failures(fn):
  """Decorates `fn` so that a failure caused by another process's death is a `TrainingError`.

  In a run of several processes, an exception that is no `MinitraxError` is
  checked against the runtime's list of live processes (see
  `dead_processes`); if one died, the exception becomes a `TrainingError`
  naming it, the original kept as `__cause__`. Otherwise (and with one
  process) exceptions pass unchanged.
  """

  @functools.wraps(fn)
  def guarded(*args, **kwargs):
    try:
      return fn(*args, **kwargs)
    except MinitraxError:
      raise
    except Exception as e:
      if process_count() == 1:
        raise
      dead = dead_processes()
      if not dead:
        raise
      names = ', '.join(str(p) for p in dead)
      raise TrainingError(
          f'process {process_index()}: training cannot go on: process(es) {names} of '
          f'{process_count()} died (no heartbeat for {_heartbeat_s[0]} s); their collective '
          f'failed with {type(e).__name__}: {str(e)[:300]}') from e

  return guarded
