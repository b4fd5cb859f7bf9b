"""Tests for minitrax.data.batching: epoch order, Trax's buckets, bucket plans, padding."""

import time

import numpy as np
import pytest

from minitrax.data import batching
from minitrax.errors import DataError


def test_each_epoch_is_a_seeded_permutation():
  order = batching.EpochOrder(10, seed=3, tag=batching.TRAIN)
  ids = order.take(0, 30)
  for epoch in range(3):
    assert sorted(ids[epoch * 10:(epoch + 1) * 10]) == list(range(10))
  assert not np.array_equal(ids[:10], ids[10:20])
  np.testing.assert_array_equal(batching.EpochOrder(10, 3, batching.TRAIN).take(0, 30), ids)
  assert not np.array_equal(batching.EpochOrder(10, 4, batching.TRAIN).take(0, 10), ids[:10])
  assert not np.array_equal(batching.EpochOrder(10, 3, batching.EVAL).take(0, 10), ids[:10])


def test_take_is_random_access_across_epoch_boundaries():
  order = batching.EpochOrder(7, seed=0, tag=batching.TRAIN)
  everything = order.take(0, 40)
  for start in (0, 5, 6, 7, 13, 20):
    np.testing.assert_array_equal(order.take(start, 9), everything[start:start + 9])


def test_without_shuffle_epochs_are_in_order():
  order = batching.EpochOrder(4, seed=0, tag=batching.TRAIN, shuffle=False)
  assert order.take(2, 7).tolist() == [2, 3, 0, 1, 2, 3, 0]


def test_empty_dataset_is_an_error_naming_the_stream():
  with pytest.raises(DataError, match='eval stream: the dataset has no examples'):
    batching.EpochOrder(0, 0, batching.EVAL)


def test_trax_buckets_for_training():
  boundaries, sizes = batching.trax_buckets(32, 32, n_devices=1, training=True)
  assert boundaries == [8, 16, 32, 64, 128, 256, 512]
  assert sizes == [128, 64, 32, 16, 8, 4, 2, 1]
  _, sizes = batching.trax_buckets(32, 64, n_devices=8, training=True)
  assert sizes == [256, 128, 64, 32, 16, 8, 8, 8]  # Each a multiple of 8, at least 8.


def test_trax_buckets_for_eval():
  boundaries, sizes = batching.trax_buckets(32, 32, n_devices=1, training=False)
  assert boundaries == [8, 16, 32, 64, 128, 256, 1024]  # Last: max_eval_length = 32 * 32.
  assert sizes == [128, 64, 32, 16, 8, 4, 1, 1]  # One-but-last: 32 // 1024, at least 1.
  boundaries, sizes = batching.trax_buckets(16, 512, 2, training=False, max_eval_length=128)
  assert boundaries == [4, 8, 16, 32, 64, 128, 128]
  assert sizes == [2048, 1024, 512, 256, 128, 64, 4, 2]


def test_bucket_batches_emit_each_batch_when_its_bucket_fills():
  buckets = np.array([0, 1, 0, 0, 1, 1, 0, 1])
  kinds, members = batching.bucket_batches(buckets, [2, 3])
  assert kinds.tolist() == [0, 1, 0]
  assert [m.tolist() for m in members] == [[0, 2], [1, 4, 5], [3, 6]]  # Position 7 is dropped.


def _bucketed(n=60, seed=0):
  lengths = np.random.default_rng(1).integers(1, 20, size=n)
  return lengths, batching.BucketedOrder(lengths, [4, 8, 16], [8, 4, 2, 1], seed, batching.TRAIN)


def test_bucketed_batches_respect_boundaries_and_sizes():
  lengths, order = _bucketed()
  limits = {4: (0, 4), 8: (4, 8), 16: (8, 16), None: (16, 10**9)}
  sizes = {4: 8, 8: 4, 16: 2, None: 1}
  seen_in_epoch0 = []
  for index in range(20):
    ids, pad = order.batch(index)
    low, high = limits[pad]
    assert all(low < lengths[i] <= high for i in ids)
    assert len(ids) == sizes[pad]
    seen_in_epoch0.extend(ids.tolist())
  assert len(seen_in_epoch0) == len(set(seen_in_epoch0))  # 20 batches: still epoch 0.


def test_bucketed_batches_are_random_access_across_epochs():
  _, order = _bucketed()
  sequential = [order.batch(i) for i in range(120)]  # About 3 epochs.
  _, fresh = _bucketed()
  for index in (119, 3, 64, 40):
    ids, pad = fresh.batch(index)
    np.testing.assert_array_equal(ids, sequential[index][0])
    assert pad == sequential[index][1]
  _, other_seed = _bucketed(seed=1)
  assert not all(np.array_equal(other_seed.batch(i)[0], sequential[i][0]) for i in range(5))


def test_windows_plan_batches_from_the_lengths_of_their_own_examples_only():
  asked = []

  def length_of(ids):  # a "dataset" of 5 million examples whose length is id % 23
    asked.append(len(ids))
    return ids % 23

  order = batching.BucketedOrder(length_of, [4, 8, 16], [8, 4, 2, 1], 0, batching.TRAIN,
                                 n_examples=5_000_000, window=1000)
  ids, pad = order.batch(0)
  assert sum(asked) == 1000  # one window's lengths, not 5 million
  assert all(pad is None and i % 23 > 16 or i % 23 <= pad for i in ids)
  for index in range(1, 700):  # ~500 batches per window: the second window is read too
    order.batch(index)
  assert sum(asked) == 2000
  fresh = batching.BucketedOrder(length_of, [4, 8, 16], [8, 4, 2, 1], 0, batching.TRAIN,
                                 n_examples=5_000_000, window=1000)
  np.testing.assert_array_equal(fresh.batch(699)[0], order.batch(699)[0])  # exact resume
  seen = np.concatenate([order.batch(i)[0] for i in range(700)])
  assert len(seen) == len(set(seen.tolist()))  # still the first epoch: no example twice


@pytest.mark.parametrize('n', [1, 2, 3, 1000, 65537])
def test_shuffled_positions_are_a_permutation_that_depends_on_the_key(n):
  perm = batching.shuffled_positions(np.arange(n), n, [0, 1])
  assert sorted(perm.tolist()) == list(range(n))
  np.testing.assert_array_equal(batching.shuffled_positions(np.arange(5, n), n, [0, 1]), perm[5:])
  if n >= 1000:
    other = batching.shuffled_positions(np.arange(n), n, [0, 2])
    assert np.mean(other == perm) < 0.01 and abs(np.corrcoef(np.arange(n), perm)[0, 1]) < 0.05


def test_the_first_batch_of_30_million_examples_is_quick():
  order = batching.BucketedOrder(lambda ids: ids % 300, [8, 32, 128], [64, 32, 8, 1], 0,
                                 batching.TRAIN, n_examples=30_000_000)
  start = time.perf_counter()
  order.batch(0)
  assert time.perf_counter() - start < 5.0  # ~0.06 s: one window, no 30M permutation


def test_small_datasets_are_one_window_per_epoch_as_before():
  lengths, order = _bucketed()
  windowed = batching.BucketedOrder(lambda ids: lengths[ids], [4, 8, 16], [8, 4, 2, 1], 0,
                                    batching.TRAIN, n_examples=len(lengths), window=len(lengths))
  for index in range(50):
    np.testing.assert_array_equal(windowed.batch(index)[0], order.batch(index)[0])


def test_bucketing_that_never_fills_a_batch_is_an_error():
  order = batching.BucketedOrder(np.full(5, 3), [4], [8, 8], 0, batching.TRAIN)
  with pytest.raises(
      DataError, match='train stream: no bucket fills a batch within one epoch of '
      '5 examples'):
    order.batch(0)


def test_buckets_need_one_more_batch_size_than_boundaries():
  with pytest.raises(DataError, match='need len\\(boundaries\\) \\+ 1 batch sizes'):
    batching.BucketedOrder(np.ones(3), [4, 8], [2, 2], 0, batching.TRAIN)


def test_pad_stack():
  out = batching.pad_stack([np.array([1, 2]), np.array([3])], length=4)
  assert out.tolist() == [[1, 2, 0, 0], [3, 0, 0, 0]]
  assert batching.pad_stack([np.ones((2, 3)), np.ones((1, 3))]).shape == (2, 2, 3)
  with pytest.raises(DataError, match='an example of length 3 does not fit length 2'):
    batching.pad_stack([np.ones(3)], length=2)


def test_check_batch_accepts_lists_and_returns_tuples():
  batch = batching.check_batch([np.zeros((4, 2)), np.zeros(4, np.int64)], n_devices=2)
  assert isinstance(batch, tuple) and batch[1].dtype == np.int32
