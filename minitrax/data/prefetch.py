"""Prefetching: batches made in a background thread.

`Prefetcher` runs any iterator in a daemon thread and hands its items over a
bounded queue, so a training step finds its next batch ready. An exception in
the worker is raised in the consumer as `DataError`, the original kept as
`__cause__`. The worker stops when the consumer is closed or garbage-collected.

Placing batches on the devices ahead of use is `minitrax.data.device`'s job.

>>> it = Prefetcher(iter(range(3)))
>>> list(it)
[0, 1, 2]
"""

import queue
import threading
import weakref

from minitrax.errors import DataError

__all__ = ['Prefetcher']

_POLL_S = 0.05  # How often a blocked worker checks whether it should stop.


class _End:
  """Marks the end of the source iterator."""


class _Failure:
  """Carries an exception from the worker to the consumer."""

  def __init__(self, error):
    self.error = error


def _put(q, item, stop):
  """Puts `item` unless `stop` is set first; True if it was put."""
  while not stop.is_set():
    try:
      q.put(item, timeout=_POLL_S)
      return True
    except queue.Full:
      continue
  return False


def _work(iterator, q, stop):
  """Worker thread body: moves items from `iterator` to `q` until done or stopped."""
  try:
    for item in iterator:
      if not _put(q, item, stop):
        return
    _put(q, _End(), stop)
  except BaseException as e:  # pylint: disable=broad-except  (handed to the consumer)
    _put(q, _Failure(e), stop)
  finally:
    close = getattr(iterator, 'close', None)
    if close is not None:
      try:
        close()
      except Exception:  # pylint: disable=broad-except
        pass


class Prefetcher:
  """Iterates over `iterable` in a background thread, `size` items ahead.

  Args:
    iterable: any iterable; it is advanced only by the worker thread.
    size: queue length, >= 1.
    name: names the stream in error messages and the thread.

  Raises (from `next`):
    DataError: the worker raised; the original exception is `__cause__`.
  """

  def __init__(self, iterable, size=2, name='input'):
    if size < 1:
      raise DataError(f'Prefetcher({name!r}): size must be >= 1, got {size}')
    self.name = name
    self._queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._done = False
    # Neither the thread nor the finalizer may refer to self, so that dropping
    # the last reference to this object stops the worker.
    self._thread = threading.Thread(target=_work, args=(iter(iterable), self._queue, self._stop),
                                    name=f'minitrax-prefetch-{name}', daemon=True)
    self._finalizer = weakref.finalize(self, self._stop.set)
    self._thread.start()

  def __iter__(self):
    return self

  def __next__(self):
    if self._done:
      raise StopIteration
    item = self._queue.get()
    if isinstance(item, _End):
      self._done = True
      raise StopIteration
    if isinstance(item, _Failure):
      self._done = True
      self.close()
      e = item.error
      raise DataError(f'{self.name} stream: the input pipeline failed: '
                      f'{type(e).__name__}: {e}') from e
    return item

  def close(self):
    """Stops the worker thread (it exits within ~50 ms unless inside the source)."""
    self._done = True
    self._finalizer()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
