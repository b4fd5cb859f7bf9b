"""`Shuffle`: Trax 1.4's streaming shuffle through a queue, seeded.

The algorithm is Trax's: fill a queue with the first `queue_size` examples;
then, for each further example, yield the queue entry at a random slot and put
the new example in that slot; when the input ends, shuffle the queue and yield
all of it. Trax draws from NumPy's global random state; here the draws come
from `np.random.RandomState(seed)`, so a stream is the same on every run, and
equal to Trax's after `np.random.seed(seed)`.

Over a random-access input (a `Seekable`: a TFDS source and maps of it) the
queue is planned on example positions only, and the output is a `Seekable`
too: moving to position `p` replays `p` integer draws (fast) and reads no
example. Over any other iterator the output is a generator, and resuming it
means reading it again from the start (exact, since it is seeded).
"""

import logging

import numpy as np

from minitrax.checks import check_int
from minitrax.data.seekable import Seekable
from minitrax.errors import DataError

__all__ = ['Shuffle', 'shuffle']

_LOG = logging.getLogger('minitrax.data')
_DRAWS = 4096  # Random slots drawn at a time while planning (same values as one at a time).


def Shuffle(queue_size=1024, *, seed=0):  # pylint: disable=invalid-name
  """A stream function that shuffles examples through a queue of `queue_size`.

  Args:
    queue_size: int >= 1; how far an example can move ahead (1: no shuffling).
    seed: int >= 0 (a minitrax addition; Trax uses the global NumPy state).

  Returns:
    `generator -> generator` of the same examples in shuffled order.
  """
  queue_size = check_int('Shuffle', 'queue_size', queue_size, 1, error=DataError)
  seed = check_int('Shuffle', 'seed', seed, 0, error=DataError)
  return lambda g: shuffle(g, queue_size, seed=seed)


def shuffle(samples, queue_size, *, seed=0):
  """The examples of `samples` shuffled through a queue (see the module docstring).

  Args:
    samples: an iterable of examples, or a random-access `Seekable`.
    queue_size: int >= 1; how far an example can move ahead (1: no shuffling).
    seed: int >= 0; seeds the queue's random slot draws.

  Returns:
    A `Seekable` if `samples` is one, else a generator.
  """
  if queue_size < 1:
    raise DataError(f'shuffle: queue_size must be an int >= 1, got {queue_size!r}')
  if queue_size == 1:
    _LOG.warning('Shuffle: a queue of size 1 does not shuffle.')
  if isinstance(samples, Seekable):
    plan = _QueuePlan(queue_size, samples.length, seed)
    return Seekable(lambda p: samples.at(plan.index(p)), samples.length)
  return _shuffled(iter(samples), queue_size, np.random.RandomState(seed))


def _shuffled(samples, queue_size, rng):
  """Trax's queue shuffle over a plain iterator."""
  queue = []
  for sample in samples:
    queue.append(sample)
    if len(queue) == queue_size:
      break
  else:
    _LOG.warning('Shuffle: %d examples do not fill the queue of size %d.', len(queue), queue_size)
  if len(queue) == queue_size:
    for sample in samples:
      i = rng.randint(queue_size)
      yield queue[i]
      queue[i] = sample
  rng.shuffle(queue)
  yield from queue


class _QueuePlan:
  """The input position of each output position of the queue shuffle, computed in order.

  Moving back restarts the plan from position 0 (same seed, same plan).
  """

  def __init__(self, queue_size, length, seed):
    self._q, self._length, self._seed = queue_size, length, seed
    self._reset()

  def _reset(self):
    self._rng = np.random.RandomState(self._seed)
    self._out = 0  # The next output position to plan.
    self._last = None  # The input position planned for output `_out - 1`.
    n = self._q if self._length is None else min(self._q, self._length)
    self._queue = list(range(n))
    self._next_in = n  # The next input position to enter the queue.
    self._slots, self._k = [], 0  # Random slots drawn ahead, and the next one to use.
    self._drain = None  # The shuffled queue, once the input has ended.

  def index(self, position):
    if position < self._out - 1:
      self._reset()
    while self._out <= position:
      self._last = self._step()
      self._out += 1
    return self._last

  def _step(self):
    if len(self._queue) == self._q and (self._length is None or self._next_in < self._length):
      return self._swap()
    if self._drain is None:
      self._drain = list(self._queue)
      self._rng.shuffle(self._drain)
    return self._drain[self._out - (self._next_in - len(self._queue))]

  def _swap(self):
    if self._k == len(self._slots):
      left = _DRAWS if self._length is None else min(_DRAWS, self._length - self._next_in)
      self._slots, self._k = self._rng.randint(self._q, size=left).tolist(), 0
    i = self._slots[self._k]
    self._k += 1
    out, self._queue[i] = self._queue[i], self._next_in
    self._next_in += 1
    return out
