"""Tests for minitrax.data.device: streams turned into stacked, sharded device batches."""

import functools

import jax
import numpy as np
import pytest

from minitrax.data import Inputs, Stream
from minitrax.data.device import (BATCH_AXIS, DeviceBatches, batch_sharding, device_prefetch,
                                  inputs_batches, stack_batches, steps_per_call)
from minitrax.errors import DataError
from minitrax.shapes import ShapeDtype

MESH = jax.sharding.Mesh(np.array(jax.devices()[:1]), (BATCH_AXIS,))


def _batches(n):
  return [(np.full((2, 3), i, np.float32), np.arange(2, dtype=np.int32) + i) for i in range(n)]


def _numbered(widths=None):
  """Inputs whose batch i is `(full((2, w_i), i), zeros(2))`, w_i = widths[i % len] (else 3)."""

  def batch(i, _):
    width = widths[i % len(widths)] if widths else 3
    return np.full((2, width), i, np.int32), np.zeros((2,), np.int32)

  return Inputs(Stream(batch))


def _first_ids(chunk, count):
  """The batch numbers of the `count` real batches of a stacked chunk."""
  return [int(chunk[0][k, 0, 0]) for k in range(count)]


def test_steps_per_call_depends_on_the_batch_size():
  small = (ShapeDtype((16, 10), np.int32),) * 3
  assert steps_per_call(small) == 10
  assert steps_per_call((ShapeDtype((256, 224, 224, 3), np.float32),)) == 1
  with jax.disable_jit():
    assert steps_per_call(small) == 1


def test_stack_batches_pads_with_zeros():
  stacked = stack_batches(_batches(2), 3)
  assert stacked[0].shape == (3, 2, 3) and stacked[1].shape == (3, 2)
  np.testing.assert_array_equal(stacked[0][1], np.ones((2, 3)))
  assert not stacked[0][2].any() and not stacked[1][2].any()


def test_training_chunks_stop_at_breaks_epoch_ends_and_shape_changes():
  inputs = _numbered([3, 3, 5, 5, 5, 3, 3, 3, 3, 3])
  batches = DeviceBatches(functools.partial(inputs.train_stream, 1), MESH, steps_per_call=4)
  chunks = [(_first_ids(c, n), c[0].shape) for c, n in batches.epoch(10, breaks=[8])]
  assert chunks == [([0, 1], (4, 2, 3)), ([2, 3, 4], (4, 2, 5)), ([5, 6, 7], (4, 2, 3)),
                    ([8, 9], (4, 2, 3))]
  assert batches.position == 10
  assert [_first_ids(c, n) for c, n in batches.epoch(3)] == [[10, 11], [12]]  # 12 is wider


def test_single_batches_are_sharded_over_the_batch_axis_and_counted():
  inputs = _numbered()
  batches = DeviceBatches(functools.partial(inputs.eval_stream, 1), MESH, start=5)
  out = list(batches.epoch(3))
  assert [(int(b[0][0, 0]), n) for b, n in out] == [(5, 1), (6, 1), (7, 1)]
  assert all(isinstance(b[0], jax.Array) for b, _ in out)
  assert out[0][0][0].sharding.is_equivalent_to(batch_sharding(MESH), 2)
  assert batches.position == 8


def test_an_epoch_left_early_resumes_at_the_next_batch_handed_out():
  inputs = _numbered()
  batches = DeviceBatches(functools.partial(inputs.eval_stream, 1), MESH, ahead=2)
  epoch = batches.epoch(6)
  assert int(next(epoch)[0][0][0, 0]) == 0  # batches 1 and 2 are already on the devices
  del epoch
  assert batches.position == 1
  assert [int(b[0][0, 0]) for b, _ in batches.epoch(2)] == [1, 2]


def test_host_batch_reads_a_batch_again():
  inputs = _numbered()
  batches = DeviceBatches(functools.partial(inputs.train_stream, 1), MESH, steps_per_call=2)
  list(batches.epoch(4))
  np.testing.assert_array_equal(batches.host_batch(1)[0], np.full((2, 3), 1))


def test_inputs_batches_opens_the_three_streams_at_their_positions():
  streams = {
      kind: Stream(lambda i, n, t=t: (np.full((2, 1), 10 * t + i), np.zeros(2)))
      for t, kind in enumerate(['train', 'eval', 'train_eval'])
  }
  inputs = Inputs(streams['train'], streams['eval'], streams['train_eval'])
  batches = inputs_batches(inputs, MESH, train_start=3, eval_start=1, steps_per_call=2)
  chunk, count = next(batches['train'].epoch(2))
  assert (count, _first_ids(chunk, 2)) == (2, [3, 4])
  assert int(next(batches['eval'].epoch(1))[0][0][0, 0]) == 11
  assert int(next(batches['train_eval'].epoch(1))[0][0][0, 0]) == 21


@pytest.mark.parametrize('sharding', [
    None,
    jax.sharding.SingleDeviceSharding(jax.devices()[0]),
    batch_sharding(MESH),
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


def _changing(at, change):
  """Inputs whose batch i is `(full((2, 3, 4), i), zeros(2))`, batch `at` passed through change."""

  def batch(i, _):
    arrays = (np.full((2, 3, 4), i, np.float32), np.zeros((2,), np.int32))
    return change(*arrays) if i == at else arrays

  return Inputs(Stream(batch))


def test_a_batch_missing_its_weights_is_a_data_error_naming_it():
  """Issue 13's raw IndexError in tracing: now a DataError on the host, before any device work."""

  def batch(i, _):
    x, y, w = np.zeros((2, 3), np.float32), np.zeros((2,), np.int32), np.ones((2,), np.float32)
    return (x, y) if i == 3 else (x, y, w)

  weighted = Inputs(Stream(batch))
  batches = inputs_batches(weighted, MESH, steps_per_call=4)['train']
  with pytest.raises(DataError) as e:
    list(batches.epoch(6))
  assert str(e.value) == ('train stream, batch 3: expected 3 arrays (inputs, targets, weights) '
                          'like batch 0, got 2 (inputs, targets)')
  assert batches.position == 0  # nothing reached the devices


@pytest.mark.parametrize('change,message', [
    (lambda x, y:
     (x.astype(np.int32), y), 'inputs have dtype int32, expected float32 like batch 1'),
    (lambda x, y: (x, y.astype(np.float32)), 'targets have dtype float32, expected int32 like '
     'batch 1'),
    (lambda x, y: (x[..., None], y), r'inputs have shape \(2, 3, 4, 1\), expected \(2, 3, 4\) like '
     r'batch 1 \(only axes 0 and 1, the batch size and the length, may differ\)'),
    (lambda x, y: (x[:, :, :3], y), r'inputs have shape \(2, 3, 3\), expected \(2, 3, 4\) like '
     'batch 1'),
])
def test_a_batch_of_another_dtype_rank_or_feature_size_is_a_data_error(change, message):
  eval_batches = inputs_batches(_changing(4, change), MESH, eval_start=1)['eval']
  with pytest.raises(DataError, match='^eval stream, batch 4: ' + message):
    list(eval_batches.epoch(5))


def test_batches_may_differ_in_batch_size_and_length():
  wider = lambda x, y: (np.zeros((4, 7, 4), np.float32), np.zeros((4,), np.int32))  # noqa: E731
  batches = DeviceBatches(functools.partial(_changing(2, wider).train_stream, 1), MESH,
                          steps_per_call=4)
  assert [(c[0].shape, n) for c, n in batches.epoch(4)] == [((4, 2, 3, 4), 2), ((4, 4, 7, 4), 1),
                                                            ((4, 2, 3, 4), 1)]
