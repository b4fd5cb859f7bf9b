"""Tests for minitrax.data.inputs: the Inputs bundle and random-access Streams."""

import itertools
import os
import sys

import numpy as np
import pytest

from minitrax.data import Inputs, Stream
from minitrax.errors import DataError
from minitrax.shapes import ShapeDtype

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_checks import assert_same_batches, take  # noqa: E402


def counting_batches(batch_size=4, length=3, limit=None, start=0):
  """Deterministic batches: batch k is filled with the value k."""
  for k in itertools.islice(itertools.count(start), limit):
    x = np.full((batch_size, length), k, np.int32)
    yield x, x[:, 0], np.ones((batch_size, length), np.float32)


def test_codelab_snippet_works_as_written():

  def copy_task(batch_size, vocab_size, length):
    """This task is to copy a random string w, so the input is 0w0w."""
    while True:
      assert length % 2 == 0
      w_length = (length // 2) - 1
      w = np.random.randint(low=1, high=vocab_size - 1, size=(batch_size, w_length))
      zero = np.zeros([batch_size, 1], np.int32)
      loss_weights = np.concatenate(
          [np.zeros((batch_size, w_length)),
           np.ones((batch_size, w_length + 2))], axis=1)
      x = np.concatenate([zero, w, zero, w], axis=1)
      yield (x, x, loss_weights)  # Here inputs and targets are the same.

  copy_inputs = Inputs(lambda _: copy_task(16, 32, 10))

  data_stream = copy_inputs.train_stream(1)
  inputs, targets, mask = next(data_stream)
  assert inputs.shape == (16, 10) and inputs.dtype == np.int32
  np.testing.assert_array_equal(inputs, targets)
  np.testing.assert_array_equal(mask[0], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
  assert mask.dtype == np.float32
  assert copy_inputs.input_shape == (10,) and copy_inputs.target_shape == (10,)
  assert not copy_inputs.exact_resume


def test_peek_does_not_lose_the_peeked_batch():
  shared = counting_batches()  # One stateful generator: a second call would not restart it.
  data = Inputs(lambda _: shared)
  assert data.input_shape == (3,)  # Peeks batch 0.
  first = take(data.train_stream(1), 3)
  assert [int(b[0][0, 0]) for b in first] == [0, 1, 2]


def test_shape_properties_describe_inputs_and_targets():
  data = Inputs(lambda _: counting_batches(batch_size=4, length=3))
  assert data.input_shape == (3,)
  assert data.input_dtype == np.int32
  assert data.target_shape == ()  # The targets, not the weights (Trax used the last array).
  assert data.target_dtype == np.int32
  shapes, dtypes = data.example_shape_dtype
  assert shapes == ((4, 3), (4,), (4, 3))
  assert dtypes == (np.int32, np.int32, np.float32)
  assert data.example_signature == (ShapeDtype((4, 3), np.int32), ShapeDtype(
      (4,), np.int32), ShapeDtype((4, 3), np.float32))


def test_64_bit_arrays_are_narrowed_to_32_bit():
  data = Inputs(lambda _: iter([(np.zeros((2, 3)), np.arange(2))]))
  x, y = next(data.train_stream(1))
  assert x.dtype == np.float32 and y.dtype == np.int32


def test_each_stream_uses_its_own_function():

  def tagged(tag):
    return lambda _: counting_batches(start=tag)

  data = Inputs(tagged(0), tagged(100), tagged(200))
  assert int(next(data.train_stream(1))[1][0]) == 0
  assert int(next(data.eval_stream(1))[1][0]) == 100
  assert int(next(data.train_eval_stream(1))[1][0]) == 200  # Trax ignored this one.
  only_train = Inputs(tagged(7))
  assert int(next(only_train.eval_stream(1))[1][0]) == 7
  assert int(next(only_train.train_eval_stream(1))[1][0]) == 7


def test_n_devices_is_passed_to_the_stream_function():
  seen = []

  def fn(n_devices):
    seen.append(n_devices)
    return counting_batches(batch_size=4 * n_devices)

  data = Inputs(fn)
  assert next(data.train_stream(2))[0].shape == (8, 3)
  assert seen == [2]


def test_a_stream_that_ends_is_repeated():
  data = Inputs(lambda _: counting_batches(limit=3))
  values = [int(b[1][0]) for b in take(data.train_stream(1), 7)]
  assert values == [0, 1, 2, 0, 1, 2, 0]


def test_an_iterator_without_batches_is_an_error_naming_the_stream():
  data = Inputs(lambda _: counting_batches(), eval_stream=lambda _: iter([]))
  with pytest.raises(
      DataError, match='eval stream: the stream function returned an iterator '
      'with no batches'):
    next(data.eval_stream(1))


def test_an_empty_batch_is_an_error_naming_the_stream():

  def fn(_):
    yield from counting_batches(limit=2)
    yield np.zeros((0, 3), np.int32), np.zeros((0,), np.int32)

  data = Inputs(lambda _: counting_batches(), train_eval_stream=fn)
  stream = data.train_eval_stream(1, prefetch=0)
  take(stream, 2)
  with pytest.raises(DataError) as info:
    next(stream)
  assert str(info.value) == 'train_eval stream, batch 2 is empty: inputs have shape (0, 3)'


def test_batch_size_must_divide_by_device_count():
  data = Inputs(lambda _: counting_batches(batch_size=6))
  with pytest.raises(DataError) as info:
    next(data.train_stream(4))
  assert ('train stream, batch 0: batch size 6 does not divide by the number of devices 4; '
          'use a batch size that is a multiple of 4') in str(info.value)
  assert next(data.train_stream(3))[0].shape == (6, 3)


@pytest.mark.parametrize('batch, message', [
    (np.zeros((2, 3)), 'expected (inputs, targets) or (inputs, targets, weights), got a ndarray'),
    ((np.zeros(2),), 'got a tuple of length 1'),
    ((np.zeros((2, 3)), np.zeros(3)), 'disagree on the batch size: inputs (2, 3), targets (3,)'),
    ((np.zeros((2, 3)), np.float32(1)), 'targets is a scalar'),
])
def test_malformed_batches_are_errors(batch, message):
  data = Inputs(lambda _: iter([batch]))
  with pytest.raises(DataError, match=message.replace('(', r'\(').replace(')', r'\)')):
    next(data.train_stream(1, prefetch=0))


def test_errors_in_the_background_thread_keep_the_original_as_cause():

  def fn(_):
    yield from counting_batches(limit=2)
    raise ValueError('disk on fire')

  stream = Inputs(fn).train_stream(1)
  take(stream, 2)
  with pytest.raises(DataError, match='train stream: the input pipeline failed: '
                     'ValueError: disk on fire') as info:
    next(stream)
  assert isinstance(info.value.__cause__, ValueError)


def test_start_skips_batches_of_a_plain_function():
  data = Inputs(lambda _: counting_batches())
  resumed = take(data.train_stream(1, start=5), 3)
  assert_same_batches(resumed, take(data.train_stream(1), 8)[5:], same_dtype=True)


def test_prefetch_does_not_change_the_batches():
  data = Inputs(lambda _: counting_batches())
  assert_same_batches(take(data.train_stream(1, prefetch=0), 5),
                      take(data.train_stream(1, prefetch=3), 5), same_dtype=True)


def test_stream_is_random_access():

  def batch_fn(index, n_devices):
    x = np.full((2 * n_devices, 2), index, np.int32)
    return x, x[:, 0]

  stream = Stream(batch_fn, 'demo')
  data = Inputs(stream, stream, stream)
  assert data.exact_resume
  assert int(next(data.train_stream(1, start=41))[1][0]) == 41
  assert next(data.eval_stream(3))[0].shape == (6, 2)
  np.testing.assert_array_equal(stream.batch(5, 2)[0], batch_fn(5, 2)[0])
  assert not Inputs(stream, lambda _: counting_batches()).exact_resume


@pytest.mark.parametrize('kwargs, message', [
    (dict(n_devices=0), 'train_stream: n_devices must be an int >= 1, got 0'),
    (dict(n_devices=1, start=-1), 'train_stream: start must be an int >= 0, got -1'),
    (dict(n_devices=1, prefetch=1.5), 'train_stream: prefetch must be an int >= 0, got 1.5'),
])
def test_stream_arguments_are_validated(kwargs, message):
  data = Inputs(lambda _: counting_batches())
  with pytest.raises(DataError, match=message):
    data.train_stream(**kwargs)


def test_inputs_needs_functions_not_iterators():
  with pytest.raises(
      DataError, match='train_stream must be a function n_devices -> iterator of '
      'batches, got a generator; to wrap an iterator write '
      '`lambda _: iterator`'):
    Inputs(counting_batches())
  with pytest.raises(DataError, match='train_stream is required'):
    Inputs(None)
