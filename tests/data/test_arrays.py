"""Tests for minitrax.data.arrays: Inputs from NumPy arrays."""

import os
import sys

import numpy as np
import pytest

from minitrax.data import array_inputs
from minitrax.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_checks import assert_same_batches, take  # noqa: E402


def _data(n=10):
  x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
  return x, np.arange(n), np.linspace(0, 1, n)


def test_shapes_and_dtypes():
  data = array_inputs(_data(), batch_size=4)
  x, y, w = next(data.train_stream(1))
  assert (x.shape, y.shape, w.shape) == ((4, 3), (4,), (4,))
  assert (x.dtype, y.dtype, w.dtype) == (np.float32, np.int32, np.float32)
  assert data.input_shape == (3,) and data.target_shape == () and data.exact_resume


def test_examples_stay_together_and_each_epoch_covers_all():
  data = array_inputs(_data(12)[:2], batch_size=4, seed=7)
  batches = take(data.train_stream(1, prefetch=0), 6)  # Two epochs of 3 batches.
  for x, y in batches:
    np.testing.assert_array_equal(x[:, 0], y * 3)
  for epoch in (batches[:3], batches[3:]):
    assert sorted(np.concatenate([y for _, y in epoch]).tolist()) == list(range(12))
  assert not np.array_equal(batches[0][1], batches[3][1])  # Reshuffled.


def test_exact_resume_across_an_epoch_boundary():
  make = lambda: array_inputs(_data(10), batch_size=4, seed=3)
  full = take(make().train_stream(1), 8)  # Batch 2 holds examples of epochs 0 and 1.
  for start in (1, 2, 5):
    assert_same_batches(take(make().train_stream(1, start=start), 8 - start), full[start:])
  assert_same_batches(take(make().eval_stream(1, start=3), 2), take(make().eval_stream(1), 5)[3:])


def test_without_shuffle_batches_follow_the_array_order():
  data = array_inputs(_data(5)[:2], batch_size=2, shuffle=False)
  ys = [y.tolist() for _, y in take(data.train_stream(1), 3)]
  assert ys == [[0, 1], [2, 3], [4, 0]]


def test_eval_data_and_holdout():
  train = _data(10)
  held = array_inputs(train, batch_size=2, eval_holdout_size=0.3, shuffle=False)
  assert [int(y) for _, y, _ in take(held.eval_stream(1), 2) for y in y] == [7, 8, 9, 7]
  assert max(int(y.max()) for _, y, _ in take(held.train_stream(1), 10)) == 6
  given = array_inputs(train, eval_data=_data(3), batch_size=2, eval_batch_size=3)
  assert next(given.eval_stream(1))[0].shape == (3, 3)
  assert next(given.train_eval_stream(1))[0].shape == (3, 3)
  assert next(given.train_stream(1))[0].shape == (2, 3)


@pytest.mark.parametrize('train, message', [
    ((np.zeros((3, 2)), np.zeros(4)), 'the arrays need one common first axis'),
    ((np.zeros((0, 2)), np.zeros(0)), 'the arrays are empty'),
    (np.zeros((3, 2)), 'expected a tuple \\(x, y\\) or \\(x, y, weights\\) of arrays'),
])
def test_malformed_arrays_are_errors(train, message):
  with pytest.raises(DataError, match='array_inputs: train: ' + message):
    array_inputs(train)


def test_batch_size_is_validated_and_checked_against_devices():
  with pytest.raises(DataError, match='array_inputs: batch_size must be an int >= 1, got 0'):
    array_inputs(_data(), batch_size=0)
  with pytest.raises(DataError, match='batch size 3 does not divide by the number of devices 2'):
    next(array_inputs(_data(), batch_size=3).train_stream(2))
