"""Helpers shared by the data tests: taking batches from a stream and comparing them."""

import itertools

import numpy as np


def take(iterator, n):
  """The next `n` items of `iterator`, as a list."""
  return list(itertools.islice(iterator, n))


def assert_same_batches(a, b, same_dtype=False):
  """Two lists of batches (tuples of arrays) are equal array by array (and dtype by dtype)."""
  assert len(a) == len(b)
  for batch_a, batch_b in zip(a, b):
    assert len(batch_a) == len(batch_b)
    for x, y in zip(batch_a, batch_b):
      np.testing.assert_array_equal(x, y)
      if same_dtype:
        assert x.dtype == y.dtype
