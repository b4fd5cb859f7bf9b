"""Tests for minitrax.data.synthetic: copy, reverse, addition and random tasks."""

import os
import sys

import numpy as np
import pytest

from minitrax.data import (SYNTHETIC_TASKS, addition_inputs, copy_inputs, random_inputs,
                           reverse_inputs, synthetic_inputs)
from minitrax.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_checks import assert_same_batches, take  # noqa: E402


@pytest.mark.parametrize('length, vocab_size', [(10, 32), (4, 3), (16, 100)])
def test_copy_task_layout_matches_the_codelab(length, vocab_size):
  x, y, weights = next(
      copy_inputs(batch_size=64, vocab_size=vocab_size, length=length).train_stream(1))
  w_length = length // 2 - 1
  assert x.shape == y.shape == weights.shape == (64, length)
  assert x.dtype == y.dtype == np.int32 and weights.dtype == np.float32
  np.testing.assert_array_equal(x, y)
  assert (x[:, 0] == 0).all() and (x[:, w_length + 1] == 0).all()
  np.testing.assert_array_equal(x[:, 1:w_length + 1], x[:, w_length + 2:])
  w = x[:, 1:w_length + 1]
  assert w.min() >= 1 and w.max() <= vocab_size - 2  # ids in [1, vocab_size - 1).
  expected = [0.0] * w_length + [1.0] * (w_length + 2)
  assert (weights == np.array(expected, np.float32)).all()


def test_copy_task_draws_every_id_it_may():
  x, _, _ = next(copy_inputs(batch_size=256, vocab_size=8).train_stream(1))
  assert set(np.unique(x[:, 1:5]).tolist()) == set(range(1, 7))


def test_reverse_task_reverses_the_second_copy():
  x, y, weights = next(reverse_inputs(batch_size=8, length=12).train_stream(1))
  np.testing.assert_array_equal(x[:, 7:], x[:, 1:6][:, ::-1])
  assert (x[:, [0, 6]] == 0).all()
  assert weights[0].tolist() == [0.0] * 5 + [1.0] * 7


def _decode_addition(ids, weights, base):
  """(x, y, answer) of one addition example, checking its layout."""
  ids = [int(i) for i in ids if i != 0]
  assert ids[0] == base + 2
  second = ids.index(base + 2, 1)
  question, answer = ids[1:second], ids[second + 1:]
  plus = question.index(base + 1)
  digits = lambda ds: sum((d - 1) * base**k for k, d in enumerate(ds))
  n_weighted = int(weights.sum())
  assert n_weighted == len(answer) and weights[second + 1:second + 1 + len(answer)].all()
  return digits(question[:plus]), digits(question[plus + 1:]), digits(answer)


def test_addition_examples_add_up():
  data = addition_inputs(vocab_size=13, batch_size=32, train_length=12, eval_min_length=14,
                         eval_max_length=20)
  for stream in (data.train_stream(1), data.eval_stream(1)):
    x, y, weights = next(stream)
    assert x.shape[1] % 32 == 0 and x.dtype == np.int32 and weights.dtype == np.float32
    np.testing.assert_array_equal(x, y)
    for ids, w in zip(x, weights):
      a, b, total = _decode_addition(ids, w, base=10)
      assert a + b == total


def _operand_lengths(ids, base):
  ids = [int(i) for i in ids if i != 0]
  question = ids[1:ids.index(base + 2, 1)]
  plus = question.index(base + 1)
  return plus, len(question) - plus - 1


def test_addition_lengths_follow_train_and_eval_settings():
  # As Trax: x has at least (min_length - 1) // 2 digits, x and y together at most max_length - 1.
  data = addition_inputs(batch_size=64, train_length=6, eval_min_length=15, eval_max_length=16)
  for stream, low, high in ((data.train_stream(1), 1, 5), (data.eval_stream(1), 7, 15)):
    x, _, _ = next(stream)
    lengths = [_operand_lengths(row, base=10) for row in x]
    assert all(n1 >= low and n2 >= 1 and n1 + n2 <= high for n1, n2 in lengths)


def test_random_inputs_ranges_and_shapes():
  data = random_inputs(input_shape=(64, 5), input_dtype=np.int32, input_range=(2, 4),
                       output_shape=(64,), output_dtype=np.float32, output_range=(0.0, 1.0))
  x, y = next(data.train_stream(1))
  assert x.shape == (64, 5) and x.dtype == np.int32 and y.dtype == np.float32
  assert set(np.unique(x).tolist()) == {2, 3, 4}  # Both ends included, as Trax.
  assert 0.0 <= y.min() and y.max() < 1.0
  default = random_inputs()
  assert default.input_shape == (28, 28, 1) and default.input_dtype == np.float32


@pytest.mark.parametrize('name', sorted(SYNTHETIC_TASKS))
def test_synthetic_tasks_are_deterministic_and_resume_exactly(name):
  make = lambda seed: synthetic_inputs(name, seed=seed)
  data = make(5)
  assert data.exact_resume
  full = take(data.train_stream(1, prefetch=0), 12)
  assert_same_batches(take(make(5).train_stream(1), 12), full)
  assert_same_batches(take(make(5).train_stream(1, start=9), 3), full[9:])
  other = next(make(6).train_stream(1))
  assert not all(np.array_equal(a, b) for a, b in zip(other, full[0]))
  eval_batch = next(data.eval_stream(1))
  assert not all(np.array_equal(a, b) for a, b in zip(eval_batch, full[0]))


def test_synthetic_inputs_by_name():
  a = next(synthetic_inputs('copy', batch_size=4, length=6, seed=2).train_stream(1))
  b = next(copy_inputs(batch_size=4, length=6, seed=2).train_stream(1))
  assert_same_batches([a], [b])
  with pytest.raises(
      DataError, match="unknown synthetic task 'cpy'; known: addition, copy, "
      "random, reverse"):
    synthetic_inputs('cpy')


@pytest.mark.parametrize('make, message', [
    (lambda: copy_inputs(length=9), 'copy_inputs: length must be even'),
    (lambda: copy_inputs(length=2), 'copy_inputs: length must be an int >= 4, got 2'),
    (lambda: copy_inputs(vocab_size=2), 'copy_inputs: vocab_size must be an int >= 3, got 2'),
    (lambda: reverse_inputs(batch_size=0), 'reverse_inputs: batch_size must be an int >= 1'),
    (lambda: addition_inputs(eval_min_length=9, eval_max_length=8), 'eval_min_length 9 > '),
    (lambda: random_inputs(input_shape=(4, 2), output_shape=(3,)), 'must both start with the same'),
    (lambda: copy_inputs(seed=-1), 'copy_inputs: seed must be an int >= 0'),
])
def test_invalid_arguments_are_errors(make, message):
  with pytest.raises(DataError, match=message):
    make()
