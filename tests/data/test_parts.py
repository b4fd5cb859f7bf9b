"""Each process's part of every global batch: read alone where a stream can, else cut.

A run of P processes asks every stream for `part=(p, P)`: rows
`[p * B / P, (p + 1) * B / P)` of each global batch. The parts of all
processes, put together, must be exactly the whole batch (else 1 and P
processes would not train alike), and a stream that reads parts must not
decode the other processes' examples.
"""

import itertools

import numpy as np
import pytest

from minitrax.data import Inputs, Stream, array_inputs, batching, tfds_inputs
from minitrax.data import tfds as tfds_lib
from minitrax.data.pipeline import PipelineStream
from minitrax.errors import DataError

tfds = pytest.importorskip('tensorflow_datasets')


def _batches(stream_fn, n_devices, start, count, part=None):
  return list(itertools.islice(stream_fn(n_devices, start, prefetch=0, part=part), count))


def _assert_parts_make_the_whole(stream_fn, n_devices, start=0, count=6, n_parts=2):
  whole = _batches(stream_fn, n_devices, start, count)
  parts = [_batches(stream_fn, n_devices, start, count, (p, n_parts)) for p in range(n_parts)]
  for i, batch in enumerate(whole):
    for k, array in enumerate(batch):
      pieces = [part[i][k] for part in parts]
      assert all(len(piece) == len(array) // n_parts for piece in pieces)
      np.testing.assert_array_equal(np.concatenate(pieces), array)
  return whole


def test_part_rows_are_equal_consecutive_slices():
  assert [batching.part_rows(12, (p, 3)) for p in range(3)
         ] == [slice(0, 4), slice(4, 8), slice(8, 12)]
  with pytest.raises(
      DataError, match=r'^a batch of 10 rows does not split into 4 equal parts '
      r'\(one per process\); use a batch size that is a multiple of 4$'):
    batching.part_rows(10, (0, 4))


def test_array_inputs_read_only_their_rows_and_resume_exactly():
  x = np.arange(40, dtype=np.float32).reshape(20, 2)
  data = array_inputs((x, np.arange(20)), batch_size=8, seed=3)
  _assert_parts_make_the_whole(data.train_stream, 4, start=5)
  _assert_parts_make_the_whole(data.eval_stream, 4, n_parts=4)


def test_a_stream_that_cannot_read_parts_is_cut_after_the_whole_batch_is_checked():
  asked = []

  def batch_fn(i, n):
    asked.append((i, n))
    return np.full((6, 1), i), np.arange(6)

  data = Inputs(Stream(batch_fn))
  x, y = _batches(data.train_stream, 2, 4, 1, part=(1, 2))[0]
  assert asked[-1] == (4, 2) and x.tolist() == [[4]] * 3 and y.tolist() == [3, 4, 5]
  with pytest.raises(
      DataError, match=r'train stream, batch 0: batch size 6 does not divide by '
      r'the number of devices 4'):
    _batches(data.train_stream, 4, 0, 1, part=(0, 2))


def test_a_stream_that_reads_parts_is_asked_for_its_rows_and_checked_on_its_devices():
  asked = []

  def batch_fn(i, n, part=None):
    asked.append(part)
    return np.full((3, 1), i), np.arange(3)

  data = Inputs(Stream(batch_fn, reads_parts=True))
  assert len(_batches(data.train_stream, 2, 0, 2, part=(1, 2))) == 2
  assert asked == [(1, 2), (1, 2)]
  with pytest.raises(
      DataError, match=r"train \(process 0's part\) stream, batch 0: batch size 3 "
      r'does not divide by the number of devices 2'):
    _batches(data.train_stream, 4, 0, 1, part=(0, 2))


def test_plain_generators_and_pipelines():
  """A plain function's batches are cut; a pipeline's are each process's own (Trax 1.4)."""
  make = lambda n: ((np.full((4, 1), i), np.arange(4)) for i in itertools.count())
  x, y = _batches(Inputs(make).train_stream, 2, 2, 1, part=(0, 2))[0]
  assert x.tolist() == [[2], [2]] and y.tolist() == [0, 1]
  pipeline = PipelineStream(lambda: ((np.full((4, 1), i), np.arange(4)) for i in range(10)))
  x, y = _batches(Inputs(pipeline).train_stream, 8, 3, 1, part=(1, 2))[0]
  assert x.tolist() == [[3]] * 4 and y.tolist() == [0, 1, 2, 3]


def test_part_must_be_p_of_p_processes_dividing_the_devices():
  data = array_inputs((np.zeros((8, 1)), np.zeros(8)), batch_size=4)
  for bad in [(2, 2), (0, 3), [0, 2], (0.0, 2)]:
    with pytest.raises(
        DataError, match=r'^train_stream: part must be \(p, P\) with 0 <= p < P '
        r'and P dividing n_devices=4, got '):
      data.train_stream(4, part=bad)


def test_crop_and_flip_of_a_part_augments_its_rows_as_in_the_whole_batch():
  images = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
  rng = lambda: np.random.default_rng(11)
  whole = tfds_lib.crop_and_flip(images, rng())
  parts = [tfds_lib.crop_and_flip(images[2 * p:2 * p + 2], rng(), part=(p, 3)) for p in range(3)]
  np.testing.assert_array_equal(np.concatenate(parts), whole)


def _count_decodes(monkeypatch):
  decoded = []
  example = tfds_lib._Split.example  # pylint: disable=protected-access

  def counting(self, index):
    decoded.append(index)
    return example(self, index)

  monkeypatch.setattr(tfds_lib._Split, 'example', counting)  # pylint: disable=protected-access
  return decoded


def test_tfds_images_with_augmentation_decode_only_their_examples(monkeypatch):
  with tfds.testing.mock_data(num_examples=24):
    data = tfds_inputs('cifar10', batch_size=8, augment_images=True)
    _assert_parts_make_the_whole(data.train_stream, 2, start=1, count=3)
    decoded = _count_decodes(monkeypatch)
    _batches(data.train_stream, 2, 0, 3, part=(1, 2))
    assert len(decoded) == 3 * 4


@pytest.mark.parametrize('name', ['lm1b', 'imdb_reviews'])
def test_tfds_text_buckets_pad_every_part_to_the_whole_batch_length(name):
  """Bucketed text: every part has the whole batch's padded length, also in the last bucket
  (whose length is the batch's longest example, not the part's)."""
  with tfds.testing.mock_data(num_examples=64):
    data = tfds_inputs(name, batch_size=4, buckets=([4, 8], [4, 4, 4]))
    whole = _assert_parts_make_the_whole(data.train_stream, 2, count=16)
    assert max(batch[0].shape[1] for batch in whole) > 8  # the last bucket was used
