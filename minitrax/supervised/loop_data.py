"""The batches of Trax 1.4's tasks: a `labeled_data` iterator read in order, for `DeviceBatches`.

A `TrainTask` or `EvalTask` holds an iterator (often a generator) of batches
`(inputs..., targets[, weights])`. `IteratorSource` reads it on the host, in
order and only when a batch is needed, as Trax's `Loop` does: no background
thread, so one iterator may feed several tasks. It is the `open_stream`
function of a `data.device.DeviceBatches`, which puts the batches on the
devices (stacked in chunks of several steps for training).

Batch `i` of a source is the `i`-th batch read from the iterator after the
source was made (a task's sample batch, read before, is not counted).
Opening the source at `start` reads and drops batches up to `start` (a seek
for a `data.seekable.Seekable`), which is how a restored `Loop` resumes
exactly; the last `keep` batches read are kept, so a batch of a failed step
can be read again.

>>> import numpy as np
>>> batches = ((np.full((2, 1), i), np.zeros((2, 1))) for i in range(10))
>>> source = IteratorSource(batches, 1, 'TrainTask')
>>> stream = source(3)  # skips batches 0-2
>>> [int(next(stream)[0][0, 0]) for _ in range(2)]
[3, 4]
"""

import collections

from minitrax.data.batching import canonical_array
from minitrax.data.seekable import skip
from minitrax.errors import DataError
from minitrax.shapes import ShapeDtype

__all__ = ['check_batch', 'batch_signature', 'IteratorSource']


def check_batch(batch, n_devices, where):
  """`batch` as a tuple of NumPy arrays (64-bit numbers narrowed to 32 bits), checked.

  Args:
    batch: a tuple (or list) of at least 2 arrays, `(inputs..., targets[,
      weights])`, each with the batch axis first.
    n_devices: the device count the batch size must divide by.
    where: names the batch in messages, e.g. 'TrainTask 0, batch 12'.

  Raises:
    DataError: not a tuple of arrays, a scalar, batch sizes that disagree, an
      empty batch or one that does not split over the devices.
  """
  if not isinstance(batch, (tuple, list)) or len(batch) < 2:
    got = type(batch).__name__ + (f' of length {len(batch)}' if isinstance(batch,
                                                                           (tuple, list)) else '')
    raise DataError(f'{where}: expected a tuple (inputs..., targets[, weights]) of arrays, '
                    f'got a {got}')
  arrays = tuple(canonical_array(x) for x in batch)
  if any(a.ndim == 0 for a in arrays):
    raise DataError(f'{where}: array {[a.ndim for a in arrays].index(0)} is a scalar; every array '
                    'needs a leading batch axis')
  sizes = sorted({a.shape[0] for a in arrays})
  if len(sizes) > 1:
    raise DataError(f'{where}: the arrays disagree on the batch size: shapes '
                    f'{[a.shape for a in arrays]}')
  if sizes[0] == 0 or sizes[0] % n_devices:
    raise DataError(f'{where}: batch size {sizes[0]} must be a positive multiple of the number '
                    f'of devices {n_devices}')
  return arrays


def batch_signature(batch):
  """A checked batch as a tuple of `ShapeDtype`s."""
  return tuple(ShapeDtype(a.shape, a.dtype) for a in batch)


class IteratorSource:
  """The batches of an iterator, by index, for `DeviceBatches`; see the module docstring.

  Args:
    iterator: the task's `labeled_data`.
    n_devices: the device count every batch size must divide by: this
      process's devices (in a run of several processes, each process's
      iterator gives its own rows of the global batch, as in Trax 1.4).
    name: names the task in messages, e.g. 'TrainTask 0'.
    keep: recent batches kept to be read again.
  """

  def __init__(self, iterator, n_devices, name, keep=16):
    self._iterator = iterator
    self._n_devices = n_devices
    self._name = name
    self._read = 0  # the index of the next batch the iterator yields
    self._recent = collections.deque(maxlen=keep)  # (index, batch)

  def __call__(self, start, prefetch=0, part=None):
    """Batches `start, start + 1, ...` (`prefetch` is ignored: batches are read when needed).

    In a run of several processes each process's iterator gives its own rows
    of the global batch (as in Trax 1.4), so `part` needs no cut.
    """
    del prefetch, part
    return self._from(start)

  def _from(self, index):
    while True:
      yield self._batch(index)
      index += 1

  def _batch(self, index):
    """Batch `index`: kept, or read (after skipping to it)."""
    for kept_index, batch in self._recent:
      if kept_index == index:
        return batch
    if index < self._read:
      raise DataError(f'{self._name}: batch {index} cannot be read again; the labeled_data '
                      f'iterator is at batch {self._read}')
    if index > self._read:
      self._iterator = skip(self._iterator, index - self._read)
      self._read = index
    try:
      batch = next(self._iterator)
    except StopIteration:
      raise DataError(
          f'{self._name}: labeled_data ended after {self._read} batches; give an '
          'endless iterator (e.g. itertools.cycle or a generator with a loop)') from None
    batch = check_batch(batch, self._n_devices, f'{self._name}, batch {index}')
    self._recent.append((index, batch))
    self._read += 1
    return batch
