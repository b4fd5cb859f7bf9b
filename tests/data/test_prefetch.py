"""Tests for minitrax.data.prefetch: the background-thread prefetcher."""

import gc
import itertools
import threading

import pytest

from minitrax.data import Prefetcher
from minitrax.errors import DataError


def test_prefetcher_keeps_order_and_ends():
  assert list(Prefetcher(range(10), size=3)) == list(range(10))
  assert list(Prefetcher(iter([]))) == []


def test_prefetcher_runs_ahead_in_another_thread():
  threads, produced = [], threading.Semaphore(0)

  def source():
    for i in itertools.count():
      threads.append(threading.current_thread())
      produced.release()
      yield i

  p = Prefetcher(source(), size=2)
  assert produced.acquire(timeout=5)  # Made before anyone asked.
  assert next(p) == 0
  assert threads[0] is not threading.current_thread()
  p.close()


def test_prefetcher_raises_worker_errors_with_the_original_as_cause():

  def source():
    yield 1
    raise KeyError('missing shard')

  p = Prefetcher(source(), name='eval')
  assert next(p) == 1
  with pytest.raises(DataError, match="eval stream: the input pipeline failed: KeyError: "
                     "'missing shard'") as info:
    next(p)
  assert isinstance(info.value.__cause__, KeyError)
  with pytest.raises(StopIteration):
    next(p)


def _endless(closed):
  try:
    yield from itertools.count()
  finally:
    closed.set()


def test_prefetcher_stops_when_garbage_collected():
  closed = threading.Event()
  p = Prefetcher(_endless(closed), size=2)
  assert next(p) == 0
  thread = p._thread
  del p
  gc.collect()
  thread.join(timeout=5)
  assert not thread.is_alive()
  assert closed.is_set()  # The source generator was closed too.


def test_prefetcher_stops_when_closed():
  closed = threading.Event()
  with Prefetcher(_endless(closed), size=1) as p:
    assert next(p) == 0
  p._thread.join(timeout=5)
  assert not p._thread.is_alive() and closed.is_set()
  with pytest.raises(StopIteration):
    next(p)


def test_prefetcher_size_is_validated():
  with pytest.raises(DataError, match="Prefetcher\\('x'\\): size must be >= 1, got 0"):
    Prefetcher([], size=0, name='x')
