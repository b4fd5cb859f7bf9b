"""Tests for minitrax.data.prefetch: the background-thread and device prefetchers."""

import gc
import itertools
import threading

import jax
import numpy as np
import pytest

from minitrax.data import Prefetcher, device_prefetch
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


def _batches(n):
  return [(np.full((2, 3), i, np.float32), np.arange(2, dtype=np.int32) + i) for i in range(n)]


@pytest.mark.parametrize('sharding', [
    None,
    jax.sharding.SingleDeviceSharding(jax.devices()[0]),
    jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(jax.devices()[:1]), ('batch',)),
                               jax.sharding.PartitionSpec('batch')),
], ids=['default', 'single_device', 'named_mesh'])
def test_device_prefetch_puts_batches_on_devices_in_order(sharding):
  host = _batches(5)
  on_device = list(device_prefetch(iter(host), sharding, size=2))
  assert len(on_device) == 5
  for (x, y), (dx, dy) in zip(host, on_device):
    assert isinstance(dx, jax.Array) and isinstance(dy, jax.Array)
    np.testing.assert_array_equal(dx, x)
    np.testing.assert_array_equal(dy, y)
    if sharding is not None:
      assert dx.sharding.is_equivalent_to(sharding, dx.ndim)


def test_device_prefetch_stays_ahead_of_the_consumer():
  pulled = []

  def source():
    for batch in _batches(6):
      pulled.append(batch)
      yield batch
  stream = device_prefetch(source(), size=3)
  next(stream)
  assert len(pulled) == 4  # The one consumed and 3 in flight.


def test_device_prefetch_size_is_validated():
  with pytest.raises(DataError, match='device_prefetch: size must be >= 1, got 0'):
    next(device_prefetch(iter(_batches(1)), size=0))
