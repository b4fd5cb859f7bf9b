"""`Batch` and `BucketByLength`: examples stacked into padded batches, as Trax 1.4 does.

An example is a tuple of arrays (or one array); a batch stacks each element
over the examples, zero-padding every axis to the longest (`pad_to_max_dims`).
`Batch(n)` groups consecutive examples and drops a last partial batch; over a
random-access input it is random access too (batch `p` is examples
`[p * n, (p + 1) * n)`). `BucketByLength` sends each example to the first
bucket whose boundary is at least its length and emits a bucket when it holds
its batch size, padded towards the boundary; what is left in the buckets when
the input ends is dropped. It depends on everything before it, so it is a
plain generator (resumed by reading again).

>>> x = [np.array([1, 2]), np.array([3])]
>>> pad_to_max_dims(x).tolist()
[[1, 2], [3, 0]]
>>> pad_to_max_dims(x, boundary=5).tolist()  # 2 * 2 < 5: the next power of 2 instead.
[[1, 2], [3, 0]]
>>> pad_to_max_dims(x, boundary=3).tolist()
[[1, 2, 0], [3, 0, 0]]
"""

import math

import numpy as np

from minitrax.checks import check_int
from minitrax.data.seekable import Seekable
from minitrax.errors import DataError

__all__ = [
    'Batch', 'batch', 'BucketByLength', 'bucket_by_length', 'pad_to_max_dims', 'example_length'
]


def _pad(tensor, lengths):
  widths = [(0, n - s) for n, s in zip(lengths, tensor.shape)]
  return np.pad(tensor, widths, mode='constant', constant_values=tensor.dtype.type(0))


def _strict_lengths(tensors, boundary):
  """Every axis rounded up to a multiple of its boundary (None or 0: the longest)."""
  ndim = tensors[0].ndim
  if not isinstance(boundary, (list, tuple)):
    boundary = [boundary] * ndim
  if len(boundary) != ndim:
    raise DataError(f'pad_to_max_dims: {len(boundary)} boundaries {list(boundary)} for arrays of '
                    f'{ndim} axes')
  longest = np.max([t.shape for t in tensors], axis=0) if ndim else []
  return [int(m) if not b else b * math.ceil(m / b) for m, b in zip(longest, boundary)]


def pad_to_max_dims(tensors, boundary=None, strict_pad_on_len=False):
  """Stacks arrays of equal rank, zero-padding each axis (Trax 1.4's rule).

  Args:
    tensors: arrays of one rank; `(n_i, m_i, ...)` for example `i`.
    boundary: None: pad each axis to the longest. An int: pad each axis to the
      boundary, or to the next power of 2 of the longest if that is under half
      the boundary (axes already all at the boundary stay). With
      `strict_pad_on_len`, or a list of per-axis ints: pad each axis to a
      multiple of its boundary.
    strict_pad_on_len: see `boundary`.

  Returns:
    Array `(len(tensors), N, M, ...)`.
  """
  tensors = [np.asarray(t) for t in tensors]
  if len({t.ndim for t in tensors}) > 1:
    raise DataError(f'pad_to_max_dims: arrays of different ranks {[t.shape for t in tensors]}')
  if boundary is not None and (strict_pad_on_len or isinstance(boundary, (list, tuple))):
    return np.stack([_pad(t, _strict_lengths(tensors, boundary)) for t in tensors])
  lengths, padded = [], False
  for axis in range(tensors[0].ndim):
    longest = max(t.shape[axis] for t in tensors)
    shortest = min(t.shape[axis] for t in tensors)
    if longest == shortest == boundary:
      lengths.append(longest)
      continue
    padded = True
    if boundary is None:
      lengths.append(longest)
    else:
      target = max(longest, boundary)
      if 2 * longest < target:
        target = 2**int(np.ceil(np.log2(longest))) if longest else 0
      lengths.append(target)
  if not padded:
    return np.stack(tensors)
  return np.stack([_pad(t, lengths) for t in tensors])


def _collate(examples, boundary=None, strict_pad_on_len=False):
  """A batch of examples: one padded array per element (or one array for array examples)."""
  if not isinstance(examples[0], (tuple, list)):
    return pad_to_max_dims(examples, boundary, strict_pad_on_len)
  sizes = {len(e) for e in examples}
  if len(sizes) > 1:
    raise DataError(f'Batch: examples with different numbers of elements {sorted(sizes)}')
  return tuple(pad_to_max_dims(column, boundary, strict_pad_on_len) for column in zip(*examples))


def Batch(batch_size):  # pylint: disable=invalid-name
  """A stream function that stacks each `batch_size` consecutive examples into a padded batch.

  Args:
    batch_size: int >= 1.

  Returns:
    `generator -> batches`: tuples of arrays `(batch_size, ...)` padded with
    zeros to the longest example on every axis; a last partial batch is
    dropped. Random access if the input is.
  """
  batch_size = check_int('Batch', 'batch_size', batch_size, 1, error=DataError)
  return lambda g: batch(g, batch_size)


def batch(generator, batch_size):
  """The batches of `Batch(batch_size)` from `generator` (a `Seekable` for a `Seekable`).

  Args:
    generator: an iterable of examples (tuples of arrays), or a `Seekable`.
    batch_size: int >= 1, examples per batch; a last incomplete batch is
      dropped.
  """
  if not isinstance(batch_size, int) or batch_size <= 0:
    raise DataError(f'Batch: batch_size must be an int >= 1, got {batch_size!r}')
  if isinstance(generator, Seekable):
    up = generator
    length = None if up.length is None else up.length // batch_size
    return Seekable(lambda p: _collate([up.at(p * batch_size + j) for j in range(batch_size)]),
                    length)
  return _batches(generator, batch_size)


def _batches(generator, batch_size):
  buffer = []
  for example in generator:
    buffer.append(example)
    if len(buffer) == batch_size:
      yield _collate(buffer)
      buffer = []


def example_length(example, length_axis=0, length_keys=None):
  """Length of an example: the longest `shape[length_axis]` of its elements at `length_keys`.

  `length_keys` defaults to `[0, 1]`; an example that is one array has its own length.
  """
  if not isinstance(example, (tuple, list)):
    return _axis_length(example, length_axis, 'the example')
  keys = length_keys or [0, 1]
  missing = [k for k in keys if not -len(example) <= k < len(example)]
  if missing:
    raise DataError(f'length: the example has no element {missing[0]} (length_keys {keys})')
  return max(_axis_length(example[k], length_axis, f'element {k}') for k in keys)


def _axis_length(x, axis, what):
  shape = np.shape(x)
  try:
    return shape[axis]
  except IndexError:
    raise DataError(f'length: {what} has shape {shape}, which has no axis {axis} (length_axis)')


def BucketByLength(  # pylint: disable=invalid-name
    boundaries, batch_sizes, length_keys=None, length_axis=0, strict_pad_on_len=False):
  """A stream function that batches examples of similar length together.

  Args:
    boundaries: increasing ints; bucket `k` takes examples of length
      `<= boundaries[k]` (and above the previous boundary); one more bucket
      takes the longer ones.
    batch_sizes: `len(boundaries) + 1` ints >= 1, the batch size of each bucket.
    length_keys: elements whose longest `shape[length_axis]` is an example's
      length; default `[0, 1]`.
    length_axis: the axis that is the length.
    strict_pad_on_len: pad the length axis to a multiple of the bucket's
      boundary (else towards the boundary, see `pad_to_max_dims`).

  Returns:
    `generator -> batches`, one bucket's batch at a time, as buckets fill.
  """
  boundaries, batch_sizes = list(boundaries), list(batch_sizes)
  if len(batch_sizes) != len(boundaries) + 1:
    raise DataError(f'BucketByLength: needs one more batch size than boundaries, got boundaries '
                    f'{boundaries} and batch_sizes {batch_sizes}')
  for size in batch_sizes:
    check_int('BucketByLength', 'each batch size', size, 1, error=DataError)
  length_fn = lambda x: example_length(x, length_axis, length_keys)
  return lambda g: bucket_by_length(g, length_fn, boundaries, batch_sizes, strict_pad_on_len)


def bucket_by_length(generator, length_fn, boundaries, batch_sizes, strict_pad_on_len=False):
  """Batches from buckets filled by `length_fn(example)`; see `BucketByLength`.

  Args:
    generator: an iterable of examples (tuples of arrays).
    length_fn: `example -> int`, the length that picks the bucket.
    boundaries: increasing ints; bucket `k` takes lengths `<= boundaries[k]`,
      one more bucket the longer ones.
    batch_sizes: `len(boundaries) + 1` ints, each bucket's batch size.
    strict_pad_on_len: pad the length axis to a multiple of the bucket's
      boundary (else towards the boundary, see `pad_to_max_dims`).
  """
  bounds = list(boundaries) + [math.inf]
  buckets = [[] for _ in bounds]
  for example in generator:
    length = length_fn(example)
    k = next(i for i, b in enumerate(bounds) if length <= b)
    buckets[k].append(example)
    if len(buckets[k]) == batch_sizes[k]:
      boundary = None if bounds[k] == math.inf else bounds[k]
      yield _collate(buckets[k], boundary, strict_pad_on_len)
      buckets[k] = []
