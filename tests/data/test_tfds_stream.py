"""Tests for minitrax.data.TFDS (Trax 1.4's source) and pipelines over it, offline and TF-free."""

import os
import subprocess
import sys

import numpy as np
import pytest

from minitrax import data
from minitrax.data import Seekable
from minitrax.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trax14_pipeline_outputs import TFDS_ORDER  # noqa: E402

tfds = pytest.importorskip('tensorflow_datasets')
ROOT = os.path.join(os.path.dirname(__file__), '..', '..')


def _text(word, i):
  return word * (i % 5 + 1) + ' ' + str(i)


class MinitraxPipelineText(tfds.core.GeneratorBasedBuilder):
  """20 train and 5 validation texts with 2 labels; tfds prepares it without TensorFlow."""
  VERSION = tfds.core.Version('1.0.0')
  url_infos = None  # Nothing to download (skips tfds's checksum-file lookup).

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, supervised_keys=('text', 'label'), features=tfds.features.FeaturesDict(
            {'text': tfds.features.Text(), 'label': tfds.features.ClassLabel(num_classes=2)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {
        'train': self._generate_examples('ab', 20), 'validation': self._generate_examples('v', 5)
    }

  def _generate_examples(self, word, n):
    for i in range(n):
      yield i, {'text': _text(word, i), 'label': i % 2}


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('tfds'))
  data.TFDS('minitrax_pipeline_text', data_dir=path)  # Prepares it (array_record).
  return path


def _texts(data_dir, n, **kwargs):
  kwargs.setdefault('shuffle_train', False)
  stream = data.TFDS('minitrax_pipeline_text', data_dir=data_dir, keys=('text', 'label'),
                     **kwargs)()
  return [(text.decode(), int(label)) for text, label in (next(stream) for _ in range(n))]


ARGUMENTS = {
    'train': {},
    'eval': dict(train=False),
    'holdout_eval': dict(train=False, eval_holdout_size=0.2),
    'holdout_train': dict(eval_holdout_size=0.2),
    'host1of3': dict(eval_holdout_size=0.2, host_id=1, n_hosts=3),
    'host2of3': dict(host_id=2, n_hosts=3),
}


@pytest.mark.parametrize('case', sorted(ARGUMENTS))
def test_examples_and_splits_as_real_trax_1_4_1(data_dir, case):
  assert _texts(data_dir, len(TFDS_ORDER[case]), **ARGUMENTS[case]) == TFDS_ORDER[case]


def test_example_types_as_trax():
  with tfds.testing.mock_data(num_examples=4):
    text, label = next(data.TFDS('imdb_reviews', keys=('text', 'label'))())
    image, digit = next(data.TFDS('mnist', keys=('image', 'label'), train=False)())
  assert isinstance(text, bytes) and label.dtype == np.int64 and label.shape == ()
  assert image.dtype == np.uint8 and image.shape == (28, 28, 1) and digit.dtype == np.int64


def test_shuffled_training_order_is_a_seeded_permutation_per_epoch(data_dir):
  stored = sorted(TFDS_ORDER['train'][:20])
  first = _texts(data_dir, 60, shuffle_train=True)
  epochs = [first[i:i + 20] for i in (0, 20, 40)]
  assert all(sorted(e) == stored for e in epochs)
  assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != TFDS_ORDER['train'][:20]
  assert _texts(data_dir, 60, shuffle_train=True) == first
  assert _texts(data_dir, 20, shuffle_train=True, seed=1) != epochs[0]
  assert _texts(data_dir, 6, shuffle_train=True, train=False) == TFDS_ORDER['eval']


def test_whole_examples_and_preprocessing(data_dir):

  def upper(example):
    return dict(example, text=example['text'].upper())

  stream = data.TFDS('minitrax_pipeline_text', data_dir=data_dir, shuffle_train=False,
                     tfds_preprocess_fn=upper)()
  assert isinstance(stream, Seekable)
  example = next(stream.seek(1))
  assert example['text'] == b'ABAB 16' and int(example['label']) == 0


@pytest.mark.parametrize('kwargs, message', [
    (dict(keys=('text', 'stars')), "TFDS dataset 'minitrax_pipeline_text' has no feature 'stars'; "
     'its features: text, label'),
    (dict(keys='text'), "TFDS('minitrax_pipeline_text'): keys must be a tuple of feature names, "
     "e.g. ('text', 'label'), got 'text'"),
    (dict(eval_holdout_size=1.0), "TFDS('minitrax_pipeline_text'): eval_holdout_size must be in "
     '[0, 1), got 1.0'),
    (dict(host_id=0, n_hosts=40), "TFDS dataset 'minitrax_pipeline_text': host 0 of 40 gets no "
     'training examples (20 to share)'),
])
def test_argument_errors(data_dir, kwargs, message):
  with pytest.raises(DataError) as info:
    data.TFDS('minitrax_pipeline_text', data_dir=data_dir, **kwargs)
  assert str(info.value) == message


def _imdb(max_length=2048):
  """The pipeline of Trax 1.4's documentation, with byte ids for the subword vocabulary."""
  return data.Serial(
      data.TFDS('imdb_reviews', keys=('text', 'label'), train=True),
      data.Tokenize(vocab_type='char', keys=[0]), data.Shuffle(),
      data.FilterByLength(max_length=max_length, length_keys=[0]),
      data.BucketByLength(boundaries=[32, 128, 512, 2048], batch_sizes=[512, 128, 32, 8, 1],
                          length_keys=[0]), data.AddLossWeights())


def test_trax_documentation_pipeline_runs_and_resumes_exactly():
  with tfds.testing.mock_data(num_examples=40):
    short = _imdb(max_length=16)
    batches = [next(b) for b in [short()] for _ in range(3)]
    for x, y, w in batches:
      # Lengths <= 16 go to the first bucket: 512 examples padded to 32 (2 * 16 is not < 32).
      assert x.shape == (512, 32) and x.dtype == np.int64 and y.dtype == np.int64
      assert y.shape == w.shape == (512,) and (w == 1).all() and set(y) <= {0, 1}
      texts = [bytes(r[r > 0].astype(np.uint8)).decode() for r in x]
      assert all(t and set(t) <= set(' abcdefghij') for t in texts)  # mock_data's alphabet.
    inputs = data.make_inputs([_imdb()])
    full = [next(s) for s in [inputs.train_stream(1, prefetch=0)] for _ in range(4)]
    resumed = inputs.train_stream(1, start=2, prefetch=0)
    for want, got in zip(full[2:], [next(resumed), next(resumed)]):
      for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_fixed_size_pipeline_is_random_access_end_to_end():
  with tfds.testing.mock_data(num_examples=30):
    mnist = data.Serial(data.TFDS('mnist', keys=('image', 'label')), data.Shuffle(32),
                        data.Batch(8), data.AddLossWeights())
    assert isinstance(mnist(), Seekable)
    full = [next(b) for b in [mnist()] for _ in range(9)]  # Over 2 epochs of 30 examples.
    moved = mnist().seek(7)
    for want in full[7:]:
      for a, b in zip(want, next(moved)):
        np.testing.assert_array_equal(a, b)
    labels = np.concatenate([y for _, y, _ in full[:7]])
    assert labels.shape == (56,) and full[0][0].shape == (8, 28, 28, 1)


CHECK_NO_TF = """
import sys
import tensorflow_datasets as tfds
from minitrax import data
with tfds.testing.mock_data(num_examples=8):
  next(data.Serial(data.TFDS('imdb_reviews', keys=('text', 'label')),
                   data.Tokenize(vocab_type='char', keys=[0]), data.Batch(2))())
assert 'tensorflow' not in sys.modules
"""


def test_reading_never_imports_tensorflow():
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', CHECK_NO_TF], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
