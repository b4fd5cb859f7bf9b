"""`Inputs`: the train, eval and train-eval streams of batches for one training run.

A *stream function* takes the device count and returns an iterator of batches;
a batch is `(inputs, targets)` or `(inputs, targets, weights)` of NumPy arrays
whose first axis is the batch axis. The codelab's way still works:

>>> import numpy as np
>>> def copy_task(batch_size, vocab_size, length):
...   while True:
...     w = np.random.randint(1, vocab_size - 1, size=(batch_size, length // 2 - 1))
...     zero = np.zeros((batch_size, 1), np.int32)
...     x = np.concatenate([zero, w, zero, w], axis=1)
...     yield x, x, np.ones_like(x, np.float32)
>>> copy_inputs = Inputs(lambda _: copy_task(16, 32, 10))
>>> inputs, targets, weights = next(copy_inputs.train_stream(1))
>>> inputs.shape, copy_inputs.input_dtype
((16, 10), dtype('int32'))

A `Stream` is a stream function with random access: batch `i` is
`batch_fn(i, n_devices)`, a pure function of the source's seed and `i`. All
built-in sources (synthetic tasks, arrays, IDX and text files, TFDS) are
Streams, so `train_stream(n_devices, start=N)` yields exactly the batches an
uninterrupted run would have yielded from batch N on, in O(1).

For a plain function, `start=N` skips N batches of a fresh iterator: exact
only if the function is deterministic (the codelab's generator draws from
NumPy's global random state, so it is not). `Inputs.exact_resume` tells which.
"""

import itertools

from minitrax.checks import check_int
from minitrax.data import batching
from minitrax.data.prefetch import Prefetcher
from minitrax.errors import DataError
from minitrax.shapes import ShapeDtype

__all__ = ['Inputs', 'Stream']

_KINDS = ('train', 'eval', 'train_eval')


class Stream:
  """A random-access stream: batch `index` is `batch_fn(index, n_devices)`.

  Calling a Stream like a plain stream function, `stream(n_devices, start=0)`,
  returns the endless iterator of batches `start, start + 1, ...`.

  In a run of several processes each process needs only its *part* of every
  global batch: `part=(p, P)` asks for rows `[p * B / P, (p + 1) * B / P)`
  (`batching.part_rows`). A batch function that can read just those rows
  declares `reads_parts=True` and is called as `batch_fn(index, n_devices,
  part=(p, P))`; any other is called for the whole batch, which is then cut.

  Args:
    batch_fn: `(index, n_devices) -> batch`; must be pure (same arguments,
      same batch) and safe to call from a background thread.
    name: names the stream in `repr`.
    reads_parts: whether `batch_fn` takes `part=(p, P)` and returns only
      those rows, exactly the rows of the whole batch.
  """

  local = False  # whether batches are already this process's own (see PipelineStream)

  def __init__(self, batch_fn, name='stream', *, reads_parts=False):
    if not callable(batch_fn):
      raise DataError(f'Stream({name!r}): batch_fn must be callable, got {type(batch_fn).__name__}')
    self._batch_fn = batch_fn
    self.name = name
    self.reads_parts = reads_parts

  def batch(self, index, n_devices=1, part=None):
    """Batch number `index` (0-based) for `n_devices` devices; only rows `part` if given."""
    if part is None or part[1] == 1 or self.local:
      return self._batch_fn(index, n_devices)
    if self.reads_parts:
      return self._batch_fn(index, n_devices, part=part)
    return batching.take_part(self._batch_fn(index, n_devices), part)

  def __call__(self, n_devices, start=0, part=None):
    return (self.batch(i, n_devices, part) for i in itertools.count(start))

  def __repr__(self):
    return f'Stream({self.name!r})'


def _repeat(fn, n_devices, kind, peeked=None):
  """Batches of the plain stream function `fn`, restarted whenever it ends (as Trax)."""
  iterator, pending = peeked if peeked else (None, None)
  while True:
    if iterator is None:
      try:
        iterator = iter(fn(n_devices))
      except TypeError as e:
        raise DataError(f'{kind} stream: the stream function must return an iterator of batches; '
                        f'calling it with n_devices={n_devices} failed: {e}') from e
    n = 0
    if pending is not None:
      yield pending
      pending, n = None, 1
    for batch in iterator:
      n += 1
      yield batch
    if n == 0:
      raise DataError(f'{kind} stream: the stream function returned an iterator with no batches')
    iterator = None


def _checked(batches, kind, n_devices, start, part=None, cut=True):
  """Checked batches; with `part` and `cut`, whole batches cut to rows `part` once checked.

  Batches that are parts already (`cut=False`) must divide by the process's
  share of the devices, `n_devices / P`.
  """
  if part is not None and not cut:
    n_devices, kind = n_devices // part[1], f"{kind} (process {part[0]}'s part)"
  for index, batch in enumerate(batches, start):
    batch = batching.check_batch(batch, n_devices, kind, index)
    yield batching.take_part(batch, part) if part is not None and cut else batch


def _check_part(kind, part, n_devices):
  """`part` as `(p, P)` with `0 <= p < P` and `P` dividing `n_devices`, or None for P = 1."""
  if part is None:
    return None
  if (not isinstance(part, tuple) or len(part) != 2 or
      not all(isinstance(k, int) and not isinstance(k, bool) for k in part) or
      not 0 <= part[0] < part[1] or n_devices % part[1]):
    raise DataError(f'{kind}_stream: part must be (p, P) with 0 <= p < P and P dividing '
                    f'n_devices={n_devices}, got {part!r}')
  return None if part[1] == 1 else part


class Inputs:
  """Holds the stream functions of a training run and the shapes of its batches.

  Args:
    train_stream: `n_devices -> iterator of batches` (a plain function or a
      `Stream`), each batch `(inputs (B, ...), targets (B, ...))` or with
      `weights (B, ...)` third.
    eval_stream: the same for evaluation; default `train_stream`.
    train_eval_stream: training data for evaluation (typically without
      augmentation); default `train_stream`.

  The stream methods check every batch (structure, a non-empty batch axis
  dividing by `n_devices`), narrow 64-bit dtypes to 32-bit, restart plain
  iterators that end, and by default run in a background thread 2 batches
  ahead. The shape properties come from the first training batch, peeked
  once with `n_devices=1`; the first `train_stream(1)` reuses that batch and
  its iterator, so a stateful generator loses nothing.
  """

  def __init__(self, train_stream, eval_stream=None, train_eval_stream=None):
    given = {'train': train_stream, 'eval': eval_stream, 'train_eval': train_eval_stream}
    for kind, fn in given.items():
      if fn is not None and not callable(fn):
        raise DataError(
            f'Inputs: {kind}_stream must be a function n_devices -> iterator of batches, got a '
            f'{type(fn).__name__}; to wrap an iterator write `lambda _: iterator`')
    if train_stream is None:
      raise DataError('Inputs: train_stream is required')
    self._fns = {kind: fn if fn is not None else train_stream for kind, fn in given.items()}
    self._peeked = None  # (iterator, first batch) of the train function, n_devices=1.
    self._example = None

  # Streams.

  def train_stream(self, n_devices, start=0, *, prefetch=2, part=None):
    """Training batches from batch `start` on; see the class docstring.

    Args:
      n_devices: device count (of all processes); every batch size must
        divide by it.
      start: index of the first batch (the training step to resume at).
      prefetch: batches made ahead in a background thread; 0 for none.
      part: `(p, P)` for only process `p`'s rows of every batch (of `P`
        processes: rows `[p * B / P, (p + 1) * B / P)`), read alone where
        the stream can (`Stream(reads_parts=True)`), else cut from the whole
        batch; a stream whose batches are each process's own already
        (`Stream.local`, e.g. a Trax 1.4 pipeline) is left as it is.

    Returns:
      An endless iterator of batch tuples of NumPy arrays.
    """
    return self._stream('train', n_devices, start, prefetch, part)

  def eval_stream(self, n_devices, start=0, *, prefetch=2, part=None):
    """Evaluation batches from batch `start` on; arguments as `train_stream`."""
    return self._stream('eval', n_devices, start, prefetch, part)

  def train_eval_stream(self, n_devices, start=0, *, prefetch=2, part=None):
    """Training data for evaluation from batch `start` on; arguments as `train_stream`."""
    return self._stream('train_eval', n_devices, start, prefetch, part)

  @property
  def exact_resume(self):
    """True if all three streams are random-access `Stream`s (resume is exact)."""
    return all(isinstance(fn, Stream) for fn in self._fns.values())

  def _stream(self, kind, n_devices, start, prefetch, part=None):
    n_devices = check_int(f'{kind}_stream', 'n_devices', n_devices, 1, error=DataError)
    start = check_int(f'{kind}_stream', 'start', start, 0, error=DataError)
    prefetch = check_int(f'{kind}_stream', 'prefetch', prefetch, 0, error=DataError)
    part = _check_part(kind, part, n_devices)
    fn = self._fns[kind]
    cut = part is not None and not getattr(fn, 'local', False)
    if isinstance(fn, Stream):
      reads = cut and fn.reads_parts
      batches = fn(n_devices, start, part if reads else None)
      cut = cut and not reads
    else:
      peeked = None
      if kind == 'train' and n_devices == 1 and self._peeked is not None:
        peeked, self._peeked = self._peeked, None
      batches = itertools.islice(_repeat(fn, n_devices, kind, peeked), start, None)
    batches = _checked(batches, kind, n_devices, start, part, cut)
    return Prefetcher(batches, prefetch, kind) if prefetch else batches

  # Shapes, from the first training batch.

  def _example_batch(self):
    if self._example is None:
      fn = self._fns['train']
      if isinstance(fn, Stream):
        batch = fn.batch(0, 1)
      else:
        iterator = iter(fn(1))
        try:
          batch = next(iterator)
        except StopIteration:
          raise DataError('train stream: the stream function returned an iterator with no '
                          'batches') from None
        self._peeked = (iterator, batch)
      self._example = batching.check_batch(batch, 1, 'train', 0)
    return self._example

  @property
  def input_shape(self):
    """Shape of one example's inputs (no batch axis)."""
    return tuple(self._example_batch()[0].shape[1:])

  @property
  def input_dtype(self):
    """Dtype of the inputs."""
    return self._example_batch()[0].dtype

  @property
  def target_shape(self):
    """Shape of one example's targets (no batch axis)."""
    return tuple(self._example_batch()[1].shape[1:])

  @property
  def target_dtype(self):
    """Dtype of the targets."""
    return self._example_batch()[1].dtype

  @property
  def example_shape_dtype(self):
    """`(shapes, dtypes)` of a whole training batch, one entry per array (as Trax)."""
    batch = self._example_batch()
    return tuple(a.shape for a in batch), tuple(a.dtype for a in batch)

  @property
  def example_signature(self):
    """A training batch as a tuple of `ShapeDtype`s (batch axis included)."""
    return tuple(ShapeDtype(a.shape, a.dtype) for a in self._example_batch())

  def __repr__(self):
    kinds = ', '.join(
        f'{k}={getattr(f, "name", getattr(f, "__name__", "fn"))}' for k, f in self._fns.items())
    return f'Inputs({kinds})'
