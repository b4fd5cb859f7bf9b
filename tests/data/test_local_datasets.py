"""Tests for the seed's datasets read from distribution files (minitrax.data.local_datasets).

The archives are tiny fakes in the real formats (distribution_fakes.py), so
TFDS's registered checksums are replaced by theirs (`_register`); the
expected example orders are what real TFDS 4.9.2 (with TensorFlow) stored
after preparing the very same fake archives (values printed by it, copied
here), and, for MNIST's test split, the genuine files in ../shared/data/mnist.
"""

import hashlib
import os
import shutil
import sys

import numpy as np
import pytest

from minitrax.data import distribution_files as files_lib
from minitrax.data import text_archives, tfds_inputs, tfds_sources
from minitrax.data.local_datasets import LocalDataset
from minitrax.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distribution_fakes as fakes  # noqa: E402
from batch_checks import assert_same_batches, take  # noqa: E402

tfds = pytest.importorskip('tensorflow_datasets')
SHARED_MNIST = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'data', 'mnist')
SLICE_MNIST = os.path.join(os.path.dirname(__file__), 'mnist')
CLOSED = 'http://127.0.0.1:9'  # Nothing listens there: a download would fail at once.


def _register(monkeypatch, paths):
  """Makes TFDS's registry list the files `paths` (their real sizes and SHA-256) for any dataset."""
  registry = {}
  for path in paths:
    with open(path, 'rb') as f:
      data = f.read()
    name = os.path.basename(path)
    registry[name] = files_lib.DistFile(name, f'{CLOSED}/{name}', len(data),
                                        hashlib.sha256(data).hexdigest())
  monkeypatch.setattr(files_lib, 'registered', lambda dataset: dict(registry))
  return registry


def _examples(dataset, split):
  source = tfds_sources.open_split(dataset, dataset.name, split)
  return [source[i] for i in range(len(source))]


def _mnist_dir(tmp_path, monkeypatch, n_train=30, n_test=20):
  train = fakes.write_idx_gz(str(tmp_path), 'train', n_train, seed=1)
  test = fakes.write_idx_gz(str(tmp_path), 't10k', n_test, seed=2)
  _register(monkeypatch, [str(p) for p in tmp_path.iterdir()])
  return train, test


def test_mnist_from_idx_files_in_tfds_order(tmp_path, monkeypatch):
  (train_images, train_labels), _ = _mnist_dir(tmp_path, monkeypatch)
  dataset = tfds_sources.open_dataset('mnist', str(tmp_path))
  assert isinstance(dataset, LocalDataset) and list(dataset.info.splits) == ['train', 'test']
  examples = _examples(dataset, 'train')
  order = files_lib.stored_order(range(30), 'train')
  for example, row in zip(examples, order):
    assert sorted(example) == ['image', 'label']
    assert example['image'].shape == (28, 28, 1) and example['image'].dtype == np.uint8
    assert example['label'].dtype == np.int64 and example['label'] == train_labels[row]
    np.testing.assert_array_equal(example['image'][..., 0], train_images[row])
  assert len(_examples(dataset, 'test[:80%]')) == 16 and len(_examples(dataset, 'test[80%:]')) == 4
  assert 'tensorflow' not in sys.modules


def test_inputs_with_split_strings_resume_exactly(tmp_path, monkeypatch):
  _mnist_dir(tmp_path, monkeypatch, n_train=5)
  make = lambda: tfds_inputs('mnist', data_dir=str(tmp_path), batch_size=4, eval_batch_size=4,
                             train_split='test[:80%]+train', eval_split='test[80%:]')
  full = take(make().train_stream(1), 7)  # 21 examples: several epochs.
  assert_same_batches(take(make().train_stream(1, start=4), 3), full[4:])
  x, y = full[0]
  assert x.shape == (4, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
  eval_labels = np.concatenate([y for _, y in take(make().eval_stream(1), 1)])
  source = tfds_sources.open_split(tfds_sources.open_dataset('mnist', str(tmp_path)), 'mnist',
                                   'test[80%:]')
  assert sorted(eval_labels) == sorted(int(source[i]['label']) for i in range(4))
  assert 'tensorflow' not in sys.modules


def test_the_test_slice_in_tests_data_mnist(tmp_path, monkeypatch):
  names = ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
  _register(monkeypatch, [os.path.join(SLICE_MNIST, n) for n in names])
  data = tfds_inputs('mnist', data_dir=SLICE_MNIST, batch_size=8, eval_batch_size=8,
                     train_split='test[:80%]', eval_split='test[80%:]', shuffle=False)
  x, y = next(data.eval_stream(1))
  dataset = tfds_sources.open_dataset('mnist', SLICE_MNIST)
  stored = _examples(dataset, 'test')
  assert len(stored) == 512
  np.testing.assert_array_equal(y, [e['label'] for e in stored[410:418]])  # round(.8 * 512)
  np.testing.assert_allclose(x, np.stack([e['image'] for e in stored[410:418]]) / 255, rtol=1e-6)


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason='no ../shared/data/mnist')
def test_real_mnist_test_split_is_tfds_own():
  dataset = tfds_sources.open_dataset('mnist', SHARED_MNIST)  # Genuine files: no registry patch.
  labels = np.array([e['label'] for e in _examples(dataset, 'test')], np.uint8)
  # Printed by real TFDS 4.9.2 (TensorFlow 2.12) after preparing MNIST from the same files.
  assert labels[:20].tolist() == [2, 0, 4, 8, 7, 6, 0, 6, 3, 1, 8, 0, 7, 9, 8, 4, 5, 3, 4, 0]
  assert labels[8000:8010].tolist() == [8, 3, 9, 8, 2, 6, 6, 1, 7, 9]
  assert hashlib.md5(labels.tobytes()).hexdigest() == '9e0d35ddf8ef6ea2b3126727bce25e1d'
  assert [len(_examples(dataset, s)) for s in ('test[:80%]', 'test[80%:]')] == [8000, 2000]


def test_emnist_letters_from_its_zip_as_stored(tmp_path, monkeypatch):
  written = fakes.write_emnist_zip(str(tmp_path / 'gzip.zip'))
  _register(monkeypatch, [str(tmp_path / 'gzip.zip')])
  dataset = tfds_sources.open_dataset('emnist/letters', str(tmp_path))
  assert dataset.info.features['label'].num_classes == 37
  images, labels = written['test']
  for example, row in zip(_examples(dataset, 'test'), files_lib.stored_order(range(4), 'test')):
    assert example['label'] == labels[row] and 1 <= example['label'] <= 26  # Letters: 1..26.
    np.testing.assert_array_equal(example['image'][..., 0], images[row])  # Not transposed.
  with pytest.raises(DataError) as info:
    _examples(tfds_sources.open_dataset('emnist/digits', str(tmp_path)), 'train')
  assert str(info.value) == (f'{tmp_path}/gzip.zip: has no gzip/emnist-digits-train-images-'
                             'idx3-ubyte.gz; is it the right file?')


# The stored orders below are those real TFDS 4.9.2 gave for the same fake archives.
CIFAR10_IDS = {'train': [6, 12, 14, 5, 13, 4, 10, 0, 8, 3, 1, 9, 7, 11, 2], 'test': [1, 3, 2, 0]}
CIFAR10_LABELS = {'train': [8, 6, 0, 1, 8, 2, 9, 4, 1, 8, 5, 7, 0, 8, 7], 'test': [8, 2, 9, 4]}


def test_cifar10_binary_tarball(tmp_path, monkeypatch):
  written = fakes.write_cifar10(str(tmp_path / 'cifar-10-binary.tar.gz'))
  _register(monkeypatch, [str(tmp_path / 'cifar-10-binary.tar.gz')])
  dataset = tfds_sources.open_dataset('cifar10', str(tmp_path))
  for split in ('train', 'test'):
    examples = _examples(dataset, split)
    assert [e['id'] for e in examples] == [f'{split}_{i:05d}'.encode() for i in CIFAR10_IDS[split]]
    assert [int(e['label']) for e in examples] == CIFAR10_LABELS[split]
    labels, images = written[split]
    for example, row in zip(examples, CIFAR10_IDS[split]):
      assert example['image'].shape == (32, 32, 3) and example['image'].flags.c_contiguous
      np.testing.assert_array_equal(example['image'], images[row].transpose(1, 2, 0))
      assert example['label'] == labels[row, 0]


def test_cifar100_has_coarse_and_fine_labels(tmp_path, monkeypatch):
  written = fakes.write_cifar100(str(tmp_path / 'cifar-100-binary.tar.gz'))
  _register(monkeypatch, [str(tmp_path / 'cifar-100-binary.tar.gz')])
  examples = _examples(tfds_sources.open_dataset('cifar100', str(tmp_path)), 'train')
  assert [e['id'] for e in examples] == [b'train_%05d' % i for i in (4, 0, 3, 1, 2)]  # Real TFDS.
  assert [int(e['label']) for e in examples] == [2, 2, 0, 9, 12]
  labels, _ = written['train']
  assert [int(e['coarse_label']) for e in examples] == labels[[4, 0, 3, 1, 2], 0].tolist()


def test_cifar_from_tfds_extracted_folder(tmp_path, monkeypatch):
  archive = tmp_path / 'cifar-10-binary.tar.gz'
  fakes.write_cifar10(str(archive))
  registry = _register(monkeypatch, [str(archive)])
  folder = tmp_path / 'downloads' / 'extracted' / (
      'TAR_GZ.' + files_lib.tfds_download_name(registry['cifar-10-binary.tar.gz']))
  shutil.unpack_archive(str(archive), str(folder))
  archive.unlink()
  examples = _examples(tfds_sources.open_dataset('cifar10', str(tmp_path)), 'test')
  assert [int(e['label']) for e in examples] == CIFAR10_LABELS['test']


IMDB = {  # Real TFDS 4.9.2's stored order of the fake archive: (split, label, index).
    'train': [('neg', 1), ('pos', 2), ('neg', 2), ('neg', 0), ('pos', 0), ('pos', 3), ('pos', 1),
              ('neg', 3)], 'test': [('pos', 1), ('neg', 1), ('neg', 2), ('pos', 0), ('neg', 0),
                                    ('pos', 2)]
}


def test_imdb_reviews_streamed_from_its_archive(tmp_path, monkeypatch):
  downloads = tmp_path / 'downloads' / 'imdb_reviews'
  downloads.mkdir(parents=True)
  fakes.write_tar_gz(str(tmp_path / 'aclImdb_v1.tar.gz'), fakes.imdb_members())
  registry = _register(monkeypatch, [str(tmp_path / 'aclImdb_v1.tar.gz')])
  hashed = downloads / files_lib.tfds_download_name(registry['aclImdb_v1.tar.gz'])
  (tmp_path / 'aclImdb_v1.tar.gz').rename(hashed)  # Where TFDS's download manager puts it.
  dataset = tfds_sources.open_dataset('imdb_reviews', str(tmp_path))
  for split, expected in IMDB.items():
    examples = _examples(dataset, split)
    assert [e['text'].decode() for e in examples] == [
        f'{split} {label} review {i}: fine<br />film \u00e9t\u00e9' for label, i in expected
    ]
    assert [int(e['label']) for e in examples] == [int(label == 'pos') for label, _ in expected]
  unsup = _examples(dataset, 'unsupervised')
  assert [(e['text'], int(e['label'])) for e in unsup] == [(b'unlabeled 0', -1),
                                                           (b'unlabeled 2', -1),
                                                           (b'unlabeled 1', -1)]


LM1B_TRAIN = [
    'last', 'caf\u00e9 ok .', 'old', 'mac', 'A dog', 'end', '', 'The cat sat .', 'x\u2028y'
]


def _lm1b(tmp_path, monkeypatch):
  path = tmp_path / '1-billion-word-language-modeling-benchmark-r13output.tar.gz'
  fakes.write_tar_gz(str(path), fakes.lm1b_members())
  return _register(monkeypatch, [str(path)])


def test_lm1b_lines_as_tfds_reads_them_and_cached(tmp_path, monkeypatch):
  _lm1b(tmp_path, monkeypatch)
  dataset = tfds_sources.open_dataset('lm1b', str(tmp_path))
  assert [e['text'].decode() for e in _examples(dataset, 'train')] == LM1B_TRAIN  # Real TFDS.
  assert [e['text'] for e in _examples(dataset, 'test')] == [b'Held out one .', b'Held out two .']
  cache = list((tmp_path / 'downloads' / 'extracted').iterdir())
  assert len(cache) == 1 and cache[0].name.startswith('MINITRAX.')
  assert sorted(os.listdir(cache[0])) == ['test', 'train']
  monkeypatch.setattr(text_archives.Lm1bSpec, 'stream',
                      lambda *args: pytest.fail('read the archive again'))
  again = tfds_sources.open_dataset('lm1b', str(tmp_path))
  assert [e['text'].decode() for e in _examples(again, 'train')] == LM1B_TRAIN  # The cache.


def test_without_a_writable_cache_tables_stay_in_memory(tmp_path, monkeypatch):
  _lm1b(tmp_path, monkeypatch)

  def read_only(self, folder):
    raise PermissionError(f'[Errno 13] Permission denied: {folder!r}')

  monkeypatch.setattr(text_archives.TextTable, 'save', read_only)
  dataset = tfds_sources.open_dataset('lm1b', str(tmp_path))
  assert [e['text'].decode() for e in _examples(dataset, 'train')] == LM1B_TRAIN


def test_text_sets_through_inputs(tmp_path, monkeypatch):
  _lm1b(tmp_path, monkeypatch)
  data = tfds_inputs('lm1b', data_dir=str(tmp_path), batch_size=2, pad_to_length=16,
                     eval_split='train[:4]')
  x, y, w = next(data.train_stream(1))
  assert x.shape == (2, 16) and np.array_equal(x, y) and np.array_equal(w, (x != 0) * 1.0)
  assert 'tensorflow' not in sys.modules


def test_trax14_tfds_stream_reads_local_files(tmp_path, monkeypatch):
  from minitrax.data import TFDS
  fakes.write_tar_gz(str(tmp_path / 'aclImdb_v1.tar.gz'), fakes.imdb_members())
  _register(monkeypatch, [str(tmp_path / 'aclImdb_v1.tar.gz')])
  evals = TFDS('imdb_reviews', data_dir=str(tmp_path), keys=('text', 'label'), train=False)()
  expected = [(f'test {label} review {i}: fine<br />film \u00e9t\u00e9'.encode(),
               int(label == 'pos')) for label, i in IMDB['test']]
  assert [(t, int(y)) for t, y in (next(evals) for _ in range(6))] == expected
  train = TFDS('imdb_reviews', data_dir=str(tmp_path), keys=('text', 'label'))()
  assert {next(train)[0] for _ in range(8)} == {
      f'train {label} review {i}: fine<br />film \u00e9t\u00e9'.encode()
      for label, i in IMDB['train']
  }
