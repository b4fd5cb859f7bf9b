"""Device batches: a stream of host batches turned into arrays on a device mesh.

Training and evaluation read their batches the same way: a `DeviceBatches`
opens a stream of NumPy batches (e.g. `Inputs.train_stream`) at a position,
puts each batch on the devices of a mesh with its batch axis split over the
mesh axis `'batch'`, and hands them out one epoch at a time. For training it
also *stacks* runs of up to `steps_per_call` equally shaped batches on a new
leading axis, so that one compiled call takes several steps (a `lax.scan`):

    host batches (B, ...)  ->  chunk (steps_per_call, B, ...), zero-padded  ->  devices

Its `position` is the index of the next batch it hands out, so a run saved
between epochs resumes from exactly there; `host_batch(i)` reads batch `i`
again (to diagnose a failed step).

Every batch is checked on the host, before it reaches the devices, against
the first batch read (`check_like`): the same number of arrays, each of the
same dtype and rank, and of the same size on every axis except axis 0 (the
batch size) and axis 1 (the length), the two axes that length bucketing and
padding vary; a batch of a new shape ends a chunk and compiles the step anew.
Any other difference is a `DataError` naming the batch (e.g. `train stream,
batch 3: expected 3 arrays (inputs, targets, weights) like batch 0, got 2
(inputs, targets)`). The check compares shapes and dtypes only: no work per
element.

>>> import functools, numpy as np, jax
>>> from minitrax.data import Inputs, Stream
>>> inputs = Inputs(Stream(lambda i, n: (np.full((4, 2), i), np.zeros((4,), np.int32))))
>>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), (BATCH_AXIS,))
>>> batches = DeviceBatches(functools.partial(inputs.train_stream, 1), mesh, steps_per_call=3)
>>> [(int(chunk[0][0, 0, 0]), n) for chunk, n in batches.epoch(4)]  # (first batch, count)
[(0, 3), (3, 1)]
>>> batches.position
4
"""

import collections
import functools

import numpy as np

import jax
from jax.sharding import NamedSharding, PartitionSpec

from minitrax.distributed import process_rows
from minitrax.errors import DataError
from minitrax.shapes import ShapeDtype

__all__ = [
    'BATCH_AXIS', 'VARIABLE_AXES', 'batch_sharding', 'steps_per_call', 'stack_batches',
    'check_like', 'DeviceBatches', 'inputs_batches', 'device_prefetch', 'place_batch'
]

BATCH_AXIS = 'batch'
VARIABLE_AXES = (0, 1)  # batch size and length: may differ between batches (bucketing, padding)


def batch_sharding(mesh, stacked=False):
  """The sharding that splits the batch axis over `mesh`'s `'batch'` axis: axis 0, or 1 if
  `stacked` (chunks of several steps' batches)."""
  return NamedSharding(mesh,
                       PartitionSpec(None, BATCH_AXIS) if stacked else PartitionSpec(BATCH_AXIS))


def steps_per_call(signature, max_steps=10, max_bytes=16 << 20):
  """Training steps per compiled call for batches of `signature` (a tuple of `ShapeDtype`s).

  Several small steps per call amortise the cost of a call; stacked batches
  of more than `max_bytes` are not worth it. 1 with jit disabled (debugging).
  """
  if jax.config.jax_disable_jit:
    return 1
  batch_bytes = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in signature)
  return int(max(1, min(max_steps, max_bytes // max(1, batch_bytes))))


def stack_batches(batches, n_steps):
  """Batches (tuples of equally shaped arrays) stacked on a new axis 0, zero-padded to n_steps."""

  def stack(arrays):
    pad = [np.zeros_like(arrays[0])] * (n_steps - len(arrays))
    return np.stack(list(arrays) + pad)

  return tuple(stack(arrays) for arrays in zip(*batches))


def _array_names(n):
  if n == 2:
    return ('inputs', 'targets')
  if n == 3:
    return ('inputs', 'targets', 'weights')
  return tuple(f'array {k}' for k in range(n))


def _listed(n):
  """' (inputs, targets)' for 2 arrays, ' (inputs, targets, weights)' for 3, else ''."""
  return f' ({", ".join(_array_names(n))})' if n in (2, 3) else ''


def check_like(batch, reference, where, reference_where):
  """Raises unless host `batch` is structured like `reference` (see the module docstring).

  Args:
    batch, reference: tuples of NumPy arrays (`reference` may hold `ShapeDtype`s).
    where: names `batch` in messages, e.g. 'train stream, batch 3'.
    reference_where: names `reference`, e.g. 'batch 0'.

  Raises:
    DataError: another number of arrays, or an array of another dtype,
      rank, or size on an axis other than `VARIABLE_AXES`.
  """
  like = f'like {reference_where}'
  if len(batch) != len(reference):
    raise DataError(f'{where}: expected {len(reference)} arrays{_listed(len(reference))} {like}, '
                    f'got {len(batch)}{_listed(len(batch))}')
  for name, a, r in zip(_array_names(len(batch)), batch, reference):
    if np.dtype(a.dtype) != np.dtype(r.dtype):
      raise DataError(f'{where}: {name} have dtype {np.dtype(a.dtype).name}, expected '
                      f'{np.dtype(r.dtype).name} {like}')
    shape, expected = tuple(a.shape), tuple(r.shape)
    if len(shape) != len(expected) or any(
        n != m for k, (n, m) in enumerate(zip(shape, expected)) if k not in VARIABLE_AXES):
      raise DataError(f'{where}: {name} have shape {shape}, expected {expected} {like} (only axes '
                      f'0 and 1, the batch size and the length, may differ)')


def _same_shapes(a, b):
  return [x.shape for x in a] == [x.shape for x in b]


class DeviceBatches:
  """The batches of one stream, on the devices of `mesh`, handed out an epoch at a time.

  Args:
    open_stream: `(start, prefetch=..., part=...) -> iterator of host
      batches`, batch `start` first, e.g. `functools.partial(
      inputs.train_stream, n_devices)`. In a run of several processes it is
      asked for this process's rows of each batch, `part=(p, P)`.
    mesh: a `jax.sharding.Mesh` with a `'batch'` axis; every batch's axis 0
      is split over it.
    start: the index of the first batch handed out.
    steps_per_call: None to hand out single batches `(B, ...)`; an int k to
      hand out chunks of up to k batches stacked to `(k, B, ...)`.
    ahead: batches (or chunks) placed on the devices ahead of the consumer,
      within an epoch; 0 for none.
    name: names the stream in messages, e.g. 'train stream'.
  """

  def __init__(self, open_stream, mesh, start=0, steps_per_call=None, ahead=2, name='stream'):
    self._open = open_stream
    self._name = name
    self._reference = None  # (index, batch): the first batch read, that the others must be like
    self._k = steps_per_call
    self._sharding = batch_sharding(mesh, stacked=steps_per_call is not None)
    self._ahead = ahead
    self._host = None  # opened on first use, so building a Trainer reads no batch
    self._part = _process_part()
    self._next_read = start  # the index of the batch `self._host` yields next
    self._waiting = None  # a batch read but not handed out (a new shape ends a chunk)
    self.position = start

  def epoch(self, n, breaks=()):
    """Yields `(device_batch, count)` until `n` batches are handed out.

    Single batches have `count == 1`. Chunks end at the offsets in `breaks`
    (counted from the epoch's start, e.g. steps that save a checkpoint), at
    the epoch's end, after `steps_per_call` batches, and before a batch of a
    new shape (length bucketing), so a chunk never mixes shapes. `position`
    advances as batches are handed out; an epoch left early (an exception in
    the consumer) makes the next one re-open the stream at `position`.
    """
    if self._next_read != self.position + (self._waiting is not None):
      self._host, self._waiting = None, None  # read ahead by an epoch left early
    for batch, count in _prefetched((self._put(run) for run in self._runs(n, breaks)), self._ahead):
      self.position += count
      yield batch, count

  def host_batch(self, index):
    """Batch number `index` of the stream, read again from the host stream (no prefetch).

    Whole, also in a run of several processes (where training reads parts).
    """
    return next(iter(self._open(index, prefetch=0)))

  def _runs(self, n, breaks):
    """Lists of consecutive host batches, one per batch or chunk handed out."""
    done = 0
    while done < n:
      stops = [b - done for b in breaks if b > done]
      run = self._take(min([n - done, self._k or 1] + stops))
      done += len(run)
      yield run

  def _take(self, count):
    """Up to `count` (at least 1) consecutive host batches of one shape."""
    if self._host is None:
      parts = {'part': self._part} if self._part else {}  # asked only of several processes
      self._host = self._open(self.position, prefetch=max(2, self._k or 2), **parts)
      self._next_read = self.position
    run = []
    while len(run) < count:
      if self._waiting is None:
        batch = self._checked(next(self._host), self._next_read)
        self._next_read += 1
      else:
        batch, self._waiting = self._waiting, None
      if run and not _same_shapes(batch, run[0]):
        self._waiting = batch
        break
      run.append(batch)
    return run

  def _checked(self, batch, index):
    """`batch` (number `index`) once checked against the first batch read (`check_like`)."""
    if self._reference is None:
      self._reference = (index, tuple(ShapeDtype(a.shape, a.dtype) for a in batch))
    else:
      first, reference = self._reference
      check_like(batch, reference, f'{self._name}, batch {index}', f'batch {first}')
    return batch

  def _put(self, run):
    """A run of host batches on the devices: one batch, or a stacked chunk."""
    batch = run[0] if self._k is None else stack_batches(run, self._k)
    return place_batch(batch, self._sharding, stacked=self._k is not None,
                       part=self._part), len(run)


def _process_part():
  """`(p, P)`: this process's part of every batch in a run of `P > 1` processes, else None."""
  count = jax.process_count()
  return (jax.process_index(), count) if count > 1 else None


def place_batch(batch, sharding, stacked=False, part=None):
  """A host batch on the devices of `sharding` (its batch axis: 1 if `stacked`, else 0).

  With one process, the batch is copied to the devices. In a run of several
  processes (`minitrax.distributed`), the global array is assembled from the
  processes' parts (`jax.make_array_from_process_local_data`): each passes
  its own rows, `part=(p, P)` (a `P`-th of the global batch axis), or, with
  `part` None, the whole global batch, of which it keeps its rows.
  """
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  axis = 1 if stacked else 0

  def assemble(x):
    if part is None:
      return jax.make_array_from_process_local_data(sharding, process_rows(x, axis), x.shape)
    shape = x.shape[:axis] + (x.shape[axis] * part[1],) + x.shape[axis + 1:]
    return jax.make_array_from_process_local_data(sharding, x, shape)

  return tuple(assemble(x) for x in batch)


def inputs_batches(inputs, mesh, train_start=0, eval_start=0, steps_per_call=1):
  """`{'train', 'train_eval', 'eval'}`: `DeviceBatches` of an `Inputs`' three streams.

  Training batches come in chunks of `steps_per_call` (no device prefetch:
  compiled calls are queued ahead instead); the two evaluation streams give
  single batches, both from `eval_start`.
  """

  def open_batches(kind, start, **kwargs):
    stream = functools.partial(getattr(inputs, f'{kind}_stream'), mesh.size)
    return DeviceBatches(stream, mesh, start, name=f'{kind} stream', **kwargs)

  return {
      'train': open_batches('train', train_start, steps_per_call=steps_per_call,
                            ahead=0), 'train_eval': open_batches('train_eval', eval_start),
      'eval': open_batches('eval', eval_start)
  }


def device_prefetch(batches, sharding=None, size=2):
  """Yields batches already transferred to device(s), `size` ahead.

  Args:
    batches: iterable of pytrees of host arrays, e.g. `(inputs, targets)`.
    sharding: `None` (the default device), or a `jax.sharding.Sharding`
      applied to every array (or a pytree prefix of shardings), e.g.
      `batch_sharding(mesh)` to split the batch axis over a mesh.
    size: how many batches to keep in flight, >= 1.

  Returns:
    An iterator of the same pytrees, holding `jax.Array`s.
  """
  if size < 1:
    raise DataError(f'device_prefetch: size must be >= 1, got {size}')
  return _prefetched((jax.device_put(batch, sharding) for batch in batches), size)


def _prefetched(items, size):
  """Iterates over `items`, `size` of them computed ahead (device transfers start early)."""
  if size == 0:
    yield from items
    return
  ahead = collections.deque()
  for item in items:
    ahead.append(item)
    if len(ahead) > size:
      yield ahead.popleft()
  while ahead:
    yield ahead.popleft()
