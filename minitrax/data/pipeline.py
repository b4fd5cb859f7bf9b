"""Trax 1.4's data pipelines: stream functions composed with `Serial`.

A *stream function* takes an iterator of examples (or None, for a source)
and returns another; `Serial(f, g, h)` is `lambda g0=None: h(g(f(g0)))`.
Trax 1.4 code runs with only the import changed:

    train_stream = data.Serial(
        data.TFDS('imdb_reviews', keys=('text', 'label'), train=True),
        data.Tokenize(vocab_file='en_8k.subword', keys=[0]),
        data.Shuffle(),
        data.FilterByLength(max_length=2048, length_keys=[0]),
        data.BucketByLength(boundaries=[32, 128, 512, 2048],
                            batch_sizes=[512, 128, 32, 8, 1], length_keys=[0]),
        data.AddLossWeights())
    inputs, targets, weights = next(train_stream())

`make_inputs(train_stream=[...], eval_stream=[...])` (or `PipelineStream`)
turns pipelines into the `Inputs` of the Trainer.

Exact resume. Every combinator here is deterministic (`Shuffle` and `TFDS`
are seeded), so reading a pipeline again from the start and dropping `n`
batches gives exactly batch `n` on: that is how a pipeline resumes, at the
cost of making the dropped batches. Where every step is a pure function of
position it resumes in O(1) instead (`minitrax.data.seekable`):

* random access kept: `TFDS`, `Tokenize`, `Detokenize`, `ConvertToUnicode`,
  `Dup`, `AddLossWeights`, `PadToLength`, `TruncateToLength`, `Batch`, `Log`,
  `UniformlySeek`, and `Shuffle` over a random-access input (it plans its
  queue on positions, replaying only integer draws);
* sequential (resumed by reading again): `FilterByLength`,
  `FilterEmptyExamples`, `BucketByLength`, `Parallel`, `Shuffle` over any
  other iterator, and user functions (`lambda g: map(f, g)`); those must be
  deterministic for the resume to be exact.
"""

import logging
import math

import jax
import numpy as np

from minitrax.data.inputs import Inputs, Stream
from minitrax.data.padded_batches import example_length
from minitrax.data.seekable import Seekable, skip
from minitrax.errors import DataError
from minitrax.shapes import ShapeDtype

__all__ = [
    'Serial', 'Parallel', 'FilterByLength', 'FilterEmptyExamples', 'UniformlySeek', 'Log',
    'PipelineStream', 'make_inputs'
]

_LOG = logging.getLogger('minitrax.data')


def _flatten(fns):
  if isinstance(fns, (list, tuple)):
    return [f for x in fns for f in _flatten(x)]
  if isinstance(fns, dict):
    return [f for x in fns.values() for f in _flatten(x)]
  return [fns]


def Serial(*fns):  # pylint: disable=invalid-name
  """Composes stream functions, first to last; nested lists (and dicts) of them are flattened.

  Returns:
    `f(generator=None)`: `generator` through all of `fns` (`Serial()` returns
    its input).
  """
  fns = _flatten(fns)
  for i, f in enumerate(fns):
    if not callable(f):
      raise DataError(f'Serial: stream function {i} must be callable (generator -> generator), '
                      f'got a {type(f).__name__}')

  def composed(generator=None):
    for f in fns:
      generator = f(generator)
    return generator

  return composed


def Parallel(  # pylint: disable=invalid-name
    fns=None, counters=None, reweight_by_minimum=False, gradually_reweight=False,
    use_remainders=False):
  """Mixes the streams of `fns`: `counters[i]` examples of stream `i` per round (Trax's rules).

  Args:
    fns: stream functions, each called on the input (or with no argument).
    counters: examples per round of each stream (default 1 each); streams with
      0 are left out.
    reweight_by_minimum: divide the counters by the smallest (rounding down).
    gradually_reweight: interleave as `(a (b c^k)^m)*` for sorted counters
      instead of taking each stream's examples in a row.
    use_remainders: with `gradually_reweight`, also emit the examples that the
      integer ratios leave over, after each round.

  Returns:
    A stream function; it ends when one of its streams ends.
  """
  fns = list(fns or [])
  if counters:
    if len(counters) != len(fns):
      raise DataError(f'Parallel: {len(counters)} counters for {len(fns)} stream functions')
    kept = [j for j, c in enumerate(counters) if c != 0]
    fns, counters = [fns[j] for j in kept], [counters[j] for j in kept]
  else:
    counters = [1] * len(fns)
  if not fns:
    raise DataError('Parallel: needs at least one stream function with a non-zero counter')
  if reweight_by_minimum:
    counters = [math.floor(c / min(counters)) for c in counters]

  def parallel(gen=None):
    streams = [f(gen) if gen else f() for f in fns]
    if gradually_reweight:
      return _gradual(streams, counters, use_remainders)
    return _round_robin(streams, counters)

  return parallel


class _Ended(Exception):
  """One of `Parallel`'s streams ended."""


def _next(stream):
  try:
    return next(stream)
  except StopIteration:
    raise _Ended() from None


def _round_robin(streams, counters):
  taken = [0] * len(streams)
  try:
    while True:
      for i, stream in enumerate(streams):
        if taken[i] < counters[i]:
          taken[i] += 1
          if sum(taken) == sum(counters):
            taken = [0] * len(streams)
          yield _next(stream)
  except _Ended:
    return


def _emit(ordered, previous):
  """One round of the gradual mix: `counter // previous` examples of the first stream, each
  followed by a round of the others."""
  if ordered:
    counter, stream = ordered[0]
    for _ in range(math.floor(counter / previous)):
      yield _next(stream)
      yield from _emit(ordered[1:], counter)


def _gradual(streams, counters, use_remainders):
  ordered = sorted(zip(counters, streams), key=lambda x: x[0])
  try:
    while True:
      yield from _emit(ordered, min(counters))
      if use_remainders:
        fractions = []
        for i, (counter, stream) in enumerate(ordered):
          for _ in range(counter - math.prod(fractions)):
            yield _next(stream)
          if i < len(ordered) - 1:
            fractions.append(math.floor(ordered[i + 1][0] / counter))
  except _Ended:
    return


def FilterByLength(  # pylint: disable=invalid-name
    max_length, min_length=0, length_keys=None, length_axis=0):
  """Keeps the examples whose length is in `[min_length, max_length]` (None: no bound).

  Args:
    max_length: the longest length kept, or None for no upper bound.
    min_length: the shortest length kept, or None for no lower bound.
    length_keys: elements whose longest `shape[length_axis]` is an example's
      length; default `[0, 1]`.
    length_axis: the axis that is the length.
  """
  if max_length is None and min_length is None:
    raise DataError('FilterByLength: give max_length or min_length (both are None)')

  def keep(example):
    n = example_length(example, length_axis, length_keys)
    return (max_length is None or n <= max_length) and (min_length is None or n >= min_length)

  return lambda g: filter(keep, g)


def FilterEmptyExamples(axes=None, debug=False):  # pylint: disable=invalid-name
  """Drops examples with an element of shape `(0,)`.

  Args:
    axes: indices of the elements to look at; None for all of them.
    debug: log each dropped example (at INFO level).
  """

  def keep(example):
    empty = any(np.shape(x) == (0,) for i, x in enumerate(example) if axes is None or i in axes)
    if empty and debug:
      _LOG.info('FilterEmptyExamples: dropped %r', example)
    return not empty

  return lambda g: filter(keep, g)


def UniformlySeek(name=None, host_id=None, n_hosts=None, dataset_size=None):  # pylint: disable=invalid-name
  """Starts host `host_id` at example `host_id * (dataset_size // n_hosts)` of its input.

  Args:
    name: names the dataset in logs; required.
    host_id, n_hosts: default `jax.process_index()`, `jax.process_count()`.
    dataset_size: examples in the dataset (default 2**18, with an error log).
  """
  if not name:
    raise DataError('UniformlySeek: name must be given (it names the dataset in logs)')
  if not dataset_size:
    dataset_size = 2**18
    _LOG.error('UniformlySeek(%r): no dataset_size given, assuming %d', name, dataset_size)
  host_id = jax.process_index() if host_id is None else host_id
  n_hosts = n_hosts or jax.process_count()
  offset = host_id * int(dataset_size / n_hosts)

  def seek(generator):
    _LOG.info('UniformlySeek(%r): host %d starts at example %d', name, host_id, offset)
    if isinstance(generator, Seekable):
      up = generator
      length = None if up.length is None else max(up.length - offset, 0)
      return Seekable(lambda p: up.at(p + offset), length)
    return skip(generator, offset)

  return seek


def _signature(x):
  if isinstance(x, (list, tuple)):
    out = tuple(_signature(v) for v in x)
    return out if isinstance(x, tuple) else list(out)
  if isinstance(x, dict):
    return {k: _signature(v) for k, v in x.items()}
  x = np.asarray(x)
  return ShapeDtype(x.shape, x.dtype)


def Log(n_steps_per_example=1, only_shapes=True):  # pylint: disable=invalid-name
  """Prints (and logs) every `n_steps_per_example`-th example passing by, or only its shapes.

  Over a random-access input the count is the example's position, so a
  resumed stream prints the same examples as an uninterrupted one.

  Args:
    n_steps_per_example: print one example in this many.
    only_shapes: print the example's shapes and dtypes instead of its values.
  """

  def show(position, example):
    if position % n_steps_per_example == 0:
      item = _signature(example) if only_shapes else example
      _LOG.info('%s', item)
      print(item)
    return example

  def log(stream):
    if isinstance(stream, Seekable):
      return Seekable(lambda p: show(p, stream.at(p)), stream.length)
    return (show(p, example) for p, example in enumerate(stream))

  return log


class PipelineStream(Stream):
  """A pipeline as an `Inputs` stream: `n_devices -> iterator of batches`, resumable.

  Each call builds the pipeline anew with `make_iterator()` and moves it to
  batch `start` (a seek where the pipeline is random access, else by reading
  and dropping `start` batches; see the module docstring). A pipeline that
  ends is built again and continues, as Trax's `Inputs` restarts streams.
  `n_devices` does not change the batches (the pipeline sets their size).

  Args:
    make_iterator: `() -> iterator of batches`, e.g. `Serial(...)`.
    name: names the stream in messages.

  In a run of several processes, each process's pipeline gives that
  process's own batches (`local`), as in Trax 1.4, whose `TFDS` reads a
  host's share of the files: the global batch is the processes' batches
  together.
  """

  local = True

  def __init__(self, make_iterator, name='pipeline'):
    if not callable(make_iterator):
      raise DataError(f'PipelineStream: make_iterator must be callable, got '
                      f'{type(make_iterator).__name__}')
    super().__init__(self._batch_at, name)
    self._make = make_iterator

  def _batch_at(self, index, n_devices):
    del n_devices
    return next(self._from(index))

  def __call__(self, n_devices, start=0, part=None):
    del n_devices, part  # a pipeline's batches are this process's own (see `local`)
    return self._from(start)

  def _from(self, start):
    """The endless batches from batch `start`, pipelines rebuilt as they end."""
    while True:
      iterator = self._make()
      if isinstance(iterator, Seekable) and iterator.length is not None and iterator.length > 0:
        start %= iterator.length
      iterator, left = _drop(iterator, start)
      made = 0
      for made, item in enumerate(iterator, 1):
        yield item
      if made == 0 and left == start:
        raise DataError(f'{self.name}: the pipeline yields no batches')
      start = left


def _drop(iterator, n):
  """`(iterator moved up to n items ahead, how many of the n were missing at its end)`."""
  if isinstance(iterator, Seekable):
    return skip(iterator, n), 0
  iterator = iter(iterator)
  dropped = sum(1 for _ in zip(range(n), iterator))
  return iterator, n - dropped


def _as_stream(stream, what):
  if isinstance(stream, (list, tuple)):
    fn = Serial(*stream)
    return PipelineStream(fn, what)
  if callable(stream):
    return PipelineStream(stream, what)
  if hasattr(stream, '__next__'):
    return lambda _: stream
  raise DataError(f'make_inputs: {what} must be a list of stream functions, a stream function or '
                  f'an iterator of batches, got a {type(stream).__name__}')


def make_inputs(train_stream, eval_stream=None):
  """`Inputs` from pipelines: lists of stream functions (as in Trax's gin configs).

  Args:
    train_stream: a list of stream functions (put in `Serial`), a pipeline
      function such as `Serial(...)`, or an iterator of batches (which cannot
      be restarted or resumed other than by reading on).
    eval_stream: the same for evaluation; default the training stream.

  Returns:
    `minitrax.data.Inputs`; the pipelines' batches must be `(inputs,
    targets[, weights])`.
  """
  train = _as_stream(train_stream, 'train_stream')
  evals = None if eval_stream is None else _as_stream(eval_stream, 'eval_stream')
  return Inputs(train, evals)
