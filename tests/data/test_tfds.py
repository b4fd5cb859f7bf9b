"""Tests for minitrax.data.tfds: TFDS offline, through mock_data and real array_record files."""

import hashlib
import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest

from minitrax.data import batching, text, tfds_inputs
from minitrax.data.tfds import TF_EXTRA, crop_and_flip
from minitrax.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_checks import assert_same_batches, take  # noqa: E402
import distribution_fakes as fakes  # noqa: E402

tfds = pytest.importorskip('tensorflow_datasets')


def _text(word, i):
  return word * (i % 7 + 1) + str(i)


# tfds 4.9.10 looks for a checksums file next to a builder's module through
# `importlib_resources`, which it does not declare as a dependency; builders without
# downloads do not need that lookup.
class MinitraxTestText(tfds.core.GeneratorBasedBuilder):
  """A tiny text dataset that tfds prepares without TensorFlow (array_record)."""
  VERSION = tfds.core.Version('1.0.0')
  url_infos = None  # Nothing to download; skips tfds's checksum-file lookup (see below).

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, supervised_keys=('text', 'label'), features=tfds.features.FeaturesDict(
            {'text': tfds.features.Text(), 'label': tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {
        'train': self._generate_examples('ab', 40), 'validation': self._generate_examples('v', 8),
        'test': self._generate_examples('t', 6)
    }

  def _generate_examples(self, word, n):
    for i in range(n):
      yield i, {'text': _text(word, i), 'label': i % 3}


class MinitraxTestImages(tfds.core.GeneratorBasedBuilder):
  """A tiny image dataset: tfds needs TensorFlow to encode its PNGs."""
  VERSION = tfds.core.Version('1.0.0')
  url_infos = None

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, supervised_keys=('image', 'label'), features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(4, 4, 1)),
            'label': tfds.features.ClassLabel(num_classes=2)
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    for i in range(3):
      yield i, {'image': np.full((4, 4, 1), i, np.uint8), 'label': i % 2}


@pytest.fixture(scope='module')
def text_data_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  tfds_inputs('minitrax_test_text', data_dir=data_dir, batch_size=2)  # Prepares it.
  return data_dir


# Through tfds.testing.mock_data: an image and a text dataset.


def test_mnist_shapes_dtypes_and_batch_size_per_device():
  with tfds.testing.mock_data(num_examples=40):
    data = tfds_inputs('mnist', batch_size_per_device=8, eval_batch_size=12)
    x, y = next(data.train_stream(2))
    assert x.shape == (16, 28, 28, 1) and x.dtype == np.float32  # 8 per device, 2 devices.
    assert y.shape == (16,) and y.dtype == np.int32 and y.max() < 10
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert next(data.eval_stream(2))[0].shape == (12, 28, 28, 1)
    assert next(data.eval_stream(5))[0].shape == (10, 28, 28, 1)  # Trax: a multiple of 5.
    assert data.input_shape == (28, 28, 1) and data.target_dtype == np.int32
    assert data.exact_resume


def test_mnist_is_deterministic_and_resumes_across_an_epoch_boundary():
  with tfds.testing.mock_data(num_examples=40):
    make = lambda seed=0: tfds_inputs('mnist', batch_size=16, seed=seed)
    full = take(make().train_stream(1), 6)  # 40 examples: batch 2 straddles epochs 0 and 1.
    assert_same_batches(take(make().train_stream(1, start=2), 4), full[2:])
    assert_same_batches(take(make().eval_stream(1, start=3), 1), take(make().eval_stream(1), 4)[3:])
    assert not np.array_equal(next(make(seed=1).train_stream(1))[1], full[0][1])
    ys = np.concatenate([y for _, y in full[:5]])[:80]
    assert sorted(np.bincount(ys, minlength=10)) == sorted(np.bincount(ys, minlength=10))


def test_cifar10_augmentation_applies_to_training_batches_only():
  with tfds.testing.mock_data(num_examples=20):
    plain = tfds_inputs('cifar10', batch_size=4, eval_batch_size=4)
    augmented = tfds_inputs('cifar10', batch_size=4, eval_batch_size=4, augment_images=True)
    assert augmented.input_shape == (32, 32, 3) and augmented.input_dtype == np.float32
    for stream in ('eval_stream', 'train_eval_stream'):
      assert_same_batches(take(getattr(plain, stream)(1), 2),
                          take(getattr(augmented, stream)(1), 2))
    x_plain, y_plain = next(plain.train_stream(1))
    x_aug, y_aug = next(augmented.train_stream(1))
    np.testing.assert_array_equal(y_plain, y_aug)  # Same examples, ...
    assert not np.array_equal(x_plain, x_aug)  # ... augmented.
    assert_same_batches([next(augmented.train_stream(1))], [(x_aug, y_aug)])


def test_crop_and_flip_is_a_padded_crop_maybe_mirrored():
  images = np.arange(2 * 6 * 6 * 3, dtype=np.uint8).reshape(2, 6, 6, 3)
  out = crop_and_flip(images, np.random.default_rng(0), pad=2)
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  for i in range(2):
    crops = [padded[i, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
    candidates = crops + [c[:, ::-1] for c in crops]
    assert any(np.array_equal(out[i], c) for c in candidates)
  np.testing.assert_array_equal(crop_and_flip(images, np.random.default_rng(0), pad=2), out)


def _check_buckets(batch, boundaries, sizes):
  """Each batch is one bucket: its width is the bucket's boundary and its size the bucket's."""
  x = batch[0]
  lengths = (x != 0).sum(axis=1)
  k = int(np.searchsorted(boundaries, lengths.max()))
  assert len(x) == sizes[k]
  if k < len(boundaries):
    assert x.shape[1] == boundaries[k]
    assert (lengths > (boundaries[k - 1] if k else 0)).all()
  else:
    assert x.shape[1] == lengths.max()


def test_imdb_reviews_text_to_ids_with_length_bucketing():
  with tfds.testing.mock_data(num_examples=64):
    data = tfds_inputs('imdb_reviews', batch_size=4, eval_batch_size=4, bucket_length=8)
    train = take(data.train_stream(1), 12)
    boundaries, sizes = batching.trax_buckets(8, 4, 1, training=True)
    widths = set()
    for x, y in (b for b in train):
      _check_buckets((x, y), boundaries, sizes)
      assert x.dtype == np.int32 and y.dtype == np.int32 and y.shape == (len(x),)
      widths.add(x.shape[1])
      for row in x:
        decoded = text.decode_bytes(row)
        assert decoded and set(decoded) <= set(' abcdefghij')  # mock_data's text alphabet.
    assert len(widths) > 1
    eval_boundaries, eval_sizes = batching.trax_buckets(8, 4, 1, training=False)
    for batch in take(data.eval_stream(1), 5):
      _check_buckets(batch, eval_boundaries, eval_sizes)


def test_lm1b_gives_language_model_batches_and_resumes_exactly():
  with tfds.testing.mock_data(num_examples=50):
    make = lambda: tfds_inputs('lm1b', batch_size=4, bucket_length=8)
    full = take(make().train_stream(1), 40)  # Several epochs of bucketed batches.
    for x, y, w in full:
      np.testing.assert_array_equal(x, y)
      np.testing.assert_array_equal(w, (x != 0).astype(np.float32))
      assert (x[np.arange(len(x)), (x != 0).sum(axis=1) - 1] == text.EOS_ID).all()
    assert_same_batches(take(make().train_stream(1, start=31), 9), full[31:])
    fixed = tfds_inputs('lm1b', batch_size=4, pad_to_length=12)
    for x, _, w in take(fixed.train_stream(1), 5):
      assert x.shape == w.shape == (4, 12)
    short = tfds_inputs('lm1b', batch_size=4, bucket_length=8, max_length=5)
    assert all(x.shape[1] <= 8 for x, _, _ in take(short.train_stream(1), 10))


def test_feature_selection():
  with tfds.testing.mock_data(num_examples=8):
    data = tfds_inputs('cifar10', input_name='image', target_name='id', batch_size=2)
    x, ids = next(data.train_stream(1))
    assert x.shape == (2, 32, 32, 3) and ids.dtype == np.int32 and ids.ndim == 2
    with pytest.raises(
        DataError, match="TFDS dataset 'cifar10' has no feature 'pixels'; its "
        'features: id, image, label'):
      tfds_inputs('cifar10', input_name='pixels')


# Through real array_record files, prepared here without TensorFlow.


def test_prepared_dataset_is_read_with_trax_split_choice(text_data_dir):
  data = tfds_inputs('minitrax_test_text', data_dir=text_data_dir, batch_size=2, eval_batch_size=2,
                     pad_to_length=24)
  train_texts = [text.decode_bytes(r) for x, _ in take(data.train_stream(1), 20) for r in x]
  eval_texts = {text.decode_bytes(r) for x, _ in take(data.eval_stream(1), 8) for r in x}
  assert sorted(train_texts) == sorted(_text('ab', i) for i in range(40))  # One epoch.
  assert eval_texts == {_text('v', i) for i in range(8)}  # validation, not test.


def test_eval_holdout_is_the_end_of_train(text_data_dir):
  data = tfds_inputs('minitrax_test_text', data_dir=text_data_dir, batch_size=2, eval_batch_size=2,
                     eval_holdout_size=0.25, pad_to_length=24, shuffle=False)
  stored = tfds.data_source('minitrax_test_text', split='train', data_dir=text_data_dir,
                            download=False)
  stored_texts = [ex['text'].decode() for ex in stored]
  held = [text.decode_bytes(r) for x, _ in take(data.eval_stream(1), 5) for r in x]
  assert held == stored_texts[30:]  # train[75%:], in stored order.
  train = {text.decode_bytes(r) for x, _ in take(data.train_stream(1), 15) for r in x}
  assert train == set(stored_texts[:30])


def test_missing_dataset_without_download_names_where_to_put_files(tmp_path):
  with pytest.raises(DataError) as info:
    tfds_inputs('minitrax_test_images', data_dir=str(tmp_path), download=False)
  assert str(info.value) == (
      f"TFDS dataset 'minitrax_test_images' is not prepared in data_dir '{tmp_path}' and could "
      'not be prepared here (download=False). Without network, place files downloaded '
      'elsewhere:\n'
      f'  - a prepared copy in array_record format, in {tmp_path}/minitrax_test_images/1.0.0/ '
      '(make it where there is network: `tfds build minitrax_test_images --data_dir=DIR '
      '--file_format=array_record`), or\n'
      "  - the dataset's source files, in the TFDS manual directory "
      f'{tmp_path}/downloads/manual/, then run again with download=True.')


def test_failed_download_gives_the_same_advice(tmp_path, monkeypatch):

  def no_network(self, *args, **kwargs):
    raise ConnectionError('[Errno 101] Network is unreachable')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', no_network)
  with pytest.raises(
      DataError, match='could not be prepared here \\(ConnectionError: \\[Errno '
      '101\\] Network is unreachable\\)') as info:
    tfds_inputs('minitrax_test_images', data_dir=str(tmp_path))
  assert f'{tmp_path}/downloads/manual/' in str(info.value)
  assert isinstance(info.value.__cause__, ConnectionError)


def test_missing_python_module_while_preparing(tmp_path, monkeypatch):

  def module_missing(self, *args, **kwargs):
    raise ModuleNotFoundError("No module named 'importlib_resources'", name='importlib_resources')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', module_missing)
  with pytest.raises(DataError) as info:
    tfds_inputs('minitrax_test_images', data_dir=str(tmp_path))
  assert str(info.value) == ("TFDS dataset 'minitrax_test_images': tensorflow_datasets needs the "
                             "Python module 'importlib_resources' to prepare it, and it is not "
                             'installed; `pip install importlib_resources` and run again')


TF_MESSAGE = ("TFDS dataset 'minitrax_test_images' needs TensorFlow to prepare it (encode its "
              'examples), and TensorFlow is not installed (minitrax itself never imports it). '
              "Install the extra with `pip install -e '.[tfds]'` and run again.")


def test_dataset_that_needs_tensorflow_simulated(tmp_path, monkeypatch):

  def tensorflow_missing(self, *args, **kwargs):
    raise ModuleNotFoundError("No module named 'tensorflow'", name='tensorflow')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', tensorflow_missing)
  with pytest.raises(DataError) as info:
    tfds_inputs('minitrax_test_images', data_dir=str(tmp_path))
  assert str(info.value) == TF_MESSAGE and TF_EXTRA in str(info.value)


@pytest.mark.skipif(
    importlib.util.find_spec('tensorflow') is not None,
    reason='TensorFlow is installed, so it cannot be found missing')
def test_dataset_that_needs_tensorflow_for_real(tmp_path):
  with pytest.raises(DataError) as info:
    tfds_inputs('minitrax_test_images', data_dir=str(tmp_path))
  assert str(info.value) == TF_MESSAGE


def test_tfrecord_files_need_tensorflow(monkeypatch):

  def tfrecord_only(self, *args, **kwargs):
    raise NotImplementedError('Random access data source for file format tfrecord')

  with tfds.testing.mock_data(num_examples=4), monkeypatch.context() as patch:
    patch.setattr(tfds.core.DatasetBuilder, 'as_data_source', tfrecord_only)
    with pytest.raises(
        DataError, match="TFDS dataset 'minitrax_test_text' in .* is stored as TFRecord") as info:
      tfds_inputs('minitrax_test_text')
  assert '--out_file_format=array_record' in str(info.value) and TF_EXTRA in str(info.value)


def test_unknown_dataset():
  with pytest.raises(DataError, match="unknown TFDS dataset 'mnistt'"):
    tfds_inputs('mnistt', data_dir=os.devnull)


def _as_if_tfrecord(version_dir):
  """Marks a prepared dataset's `dataset_info.json` as written in the TFRecord format."""
  path = os.path.join(version_dir, 'dataset_info.json')
  with open(path) as f:
    info = json.load(f)
  info['fileFormat'] = 'tfrecord'
  with open(path, 'w') as f:
    json.dump(info, f)


def test_a_dataset_prepared_as_tfrecord_for_real(text_data_dir, tmp_path):
  shutil.copytree(text_data_dir, tmp_path, dirs_exist_ok=True)
  _as_if_tfrecord(tmp_path / 'minitrax_test_text' / '1.0.0')
  with pytest.raises(DataError, match="'minitrax_test_text' in .* is stored as TFRecord files"):
    tfds_inputs('minitrax_test_text', data_dir=str(tmp_path))


def test_a_seed_dataset_prepared_as_tfrecord_is_read_from_its_files(tmp_path, monkeypatch):
  from minitrax.data import distribution_files, tfds_sources
  from minitrax.data.local_datasets import LocalDataset
  fakes.write_idx_gz(str(tmp_path), 't10k', 5, seed=2)
  registry = {
      p.name:
          distribution_files.DistFile(p.name, f'http://127.0.0.1:9/{p.name}',
                                      p.stat().st_size,
                                      hashlib.sha256(p.read_bytes()).hexdigest())
      for p in tmp_path.iterdir()
  }
  monkeypatch.setattr(distribution_files, 'registered', lambda name: registry)
  builder = tfds.builder('mnist', data_dir=str(tmp_path))
  os.makedirs(builder.data_dir)
  builder.info.write_to_directory(builder.data_dir)  # "Prepared", as TFRecord files.
  _as_if_tfrecord(builder.data_dir)
  dataset = tfds_sources.open_dataset('mnist', str(tmp_path))
  assert isinstance(dataset, LocalDataset)
  assert len(tfds_sources.open_split(dataset, 'mnist', 'test[:3]')) == 3


# Split strings on the TFDS path (array_record files), checked against TFDS's own slicing.


@pytest.mark.parametrize('train_split, eval_split', [('train[:25%]+test', 'validation[50%:]'),
                                                     ('train[-7:]', 'test[:-2]'),
                                                     ('validation+train[10%:20%]', 'all')])
def test_split_strings_select_what_tfds_selects(text_data_dir, train_split, eval_split):
  data = tfds_inputs('minitrax_test_text', data_dir=text_data_dir, batch_size=1, eval_batch_size=1,
                     pad_to_length=24, shuffle=False, train_split=train_split,
                     eval_split=eval_split)
  for stream, split in ((data.train_stream, train_split), (data.eval_stream, eval_split)):
    expected = [
        ex['text'].decode() for ex in tfds.data_source('minitrax_test_text', split=split,
                                                       data_dir=text_data_dir, download=False)
    ]
    got = [text.decode_bytes(x[0]) for x, _ in take(stream(1), len(expected))]
    assert got == expected
  assert 'tensorflow' not in sys.modules


def test_split_argument_errors(text_data_dir):
  make = lambda **kw: tfds_inputs('minitrax_test_text', data_dir=text_data_dir, **kw)
  with pytest.raises(DataError, match="pass eval_holdout_size or train_split/eval_split, not both"):
    make(eval_holdout_size=0.1, train_split='train[:90%]')
  with pytest.raises(DataError) as info:
    make(eval_split='dev[:10%]')
  assert str(info.value).startswith("TFDS dataset 'minitrax_test_text' has no split 'dev' "
                                    '(splits: ')
  with pytest.raises(
      DataError, match=r"split 'train\[:50\]': slice \[:50\] of split 'train' does "
      'not fit its 40 examples'):
    make(train_split='train[:50]')
