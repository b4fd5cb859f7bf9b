"""Tests for minitrax.data.distribution_files and archives: TFDS's registry, layouts, order."""

import gzip
import hashlib
import io
import os
import shutil
import zipfile

import numpy as np
import pytest

from minitrax.data import archives
from minitrax.data import distribution_files as files_lib
from minitrax.errors import DataError

tfds = pytest.importorskip('tensorflow_datasets')


def _fake(tmp_path, name='t10k-labels-idx1-ubyte.gz', data=b'fake labels'):
  path = tmp_path / name
  path.write_bytes(data)
  dist = files_lib.DistFile(name, f'https://example.org/data/{name}', len(data),
                            hashlib.sha256(data).hexdigest())
  return path, dist


def test_registered_reads_tfds_registry():
  mnist = files_lib.registered('mnist')
  assert sorted(mnist) == [
      't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', 'train-images-idx3-ubyte.gz',
      'train-labels-idx1-ubyte.gz'
  ]
  assert mnist['train-images-idx3-ubyte.gz'] == files_lib.DistFile(
      'train-images-idx3-ubyte.gz',
      'https://storage.googleapis.com/cvdf-datasets/mnist/train-images-idx3-ubyte.gz', 9912422,
      '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609')
  assert list(files_lib.registered('emnist/letters')) == ['gzip.zip']
  assert list(files_lib.registered('lm1b')) == [
      '1-billion-word-language-modeling-benchmark-r13output.tar.gz'
  ]
  assert files_lib.registered('imdb_reviews')['aclImdb_v1.tar.gz'].size == 84125825


def test_checksum_matches_size_and_sha256(tmp_path):
  path, dist = _fake(tmp_path)
  assert files_lib.checksum_matches(path, dist)
  path.write_bytes(b'fake labelz')  # Same size, other bytes.
  assert not files_lib.checksum_matches(path, dist)
  path.write_bytes(b'fake')
  assert not files_lib.checksum_matches(path, dist)


@pytest.mark.skipif(not os.path.isdir('../shared/data/mnist'), reason='no ../shared/data/mnist')
def test_the_shared_mnist_test_files_are_genuine():
  registry = files_lib.registered('mnist')
  for name in ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
    assert files_lib.checksum_matches(os.path.join('../shared/data/mnist', name), registry[name])


def test_tfds_download_name_is_tfds_own():
  from tensorflow_datasets.core.download import resource
  dist = files_lib.registered('mnist')['t10k-labels-idx1-ubyte.gz']
  name = files_lib.tfds_download_name(dist)
  assert name == resource.get_dl_fname(dist.url, dist.sha256)
  assert name.startswith('cvdf-datasets_mnist_t10k-labels-idx1-ubyte') and name.endswith('.gz')


@pytest.mark.parametrize('where', ['root', 'manual', 'downloads', 'tfds', 'tfds_legacy'])
def test_locate_finds_a_genuine_file_in_every_tfds_layout(tmp_path, where):
  source, dist = _fake(tmp_path / '..', 'x.gz', gzip.compress(b'content'))
  root = tmp_path / 'data'
  dl = files_lib.tfds_download_name(dist)
  target = {
      'root': root / 'x.gz', 'manual': root / 'downloads' / 'manual' / 'x.gz',
      'downloads': root / 'downloads' / 'x.gz', 'tfds': root / 'downloads' / 'mnist' / dl,
      'tfds_legacy': root / 'downloads' / dl
  }[where]
  target.parent.mkdir(parents=True)
  shutil.copy(source, target)
  found, rejected = files_lib.locate(str(root), 'mnist', dist)
  assert isinstance(found, archives.SingleFile) and found.path == str(target)
  assert rejected == []
  assert [(p, gzip.decompress(f.read())) for p, f in found.members(lambda p: True)
         ] == [('x.gz', b'content')]


def test_locate_rejects_a_file_that_is_not_genuine(tmp_path):
  _, dist = _fake(tmp_path, 'x.gz', b'genuine')
  (tmp_path / 'x.gz').write_bytes(b'corrupt!!')
  found, rejected = files_lib.locate(str(tmp_path), 'mnist', dist)
  assert found is None
  assert rejected == [(str(tmp_path / 'x.gz'), '9 bytes, not the registered file')]
  found, _ = files_lib.locate(str(tmp_path), 'mnist', dist, matches=lambda path, d: True)
  assert found.path == str(tmp_path / 'x.gz')  # The check is injectable.


def test_locate_finds_extracted_content(tmp_path):
  path, gz = _fake(tmp_path, 'x-idx1-ubyte.gz', b'gz')
  path.unlink()  # Only the extracted form stays.
  extracted = tmp_path / 'downloads' / 'extracted'
  extracted.mkdir(parents=True)
  (extracted / f'GZIP.{files_lib.tfds_download_name(gz)}').write_bytes(b'raw idx')
  found, _ = files_lib.locate(str(tmp_path), 'mnist', gz)
  assert [(p, f.read()) for p, f in found.members(lambda p: True)] == [('x-idx1-ubyte.gz',
                                                                        b'raw idx')]
  path, tar = _fake(tmp_path, 'c.tar.gz', b'tar')
  path.unlink()
  assert files_lib.locate(str(tmp_path), 'cifar10', tar, tops=('top',))[0] is None
  folder = extracted / f'TAR_GZ.{files_lib.tfds_download_name(tar)}'
  (folder / 'top' / 'sub').mkdir(parents=True)
  (folder / 'top' / 'sub' / 'b.bin').write_bytes(b'b')
  (folder / 'top' / 'a.bin').write_bytes(b'a')
  (folder / 'top' / '.hidden').write_bytes(b'h')
  found, _ = files_lib.locate(str(tmp_path), 'cifar10', tar, tops=('top',))
  assert isinstance(found, archives.Folder)
  assert [(p, f.read()) for p, f in found.members(lambda p: True)] == [('top/a.bin', b'a'),
                                                                       ('top/sub/b.bin', b'b')]
  (tmp_path / 'top').mkdir()  # The archive's folder in data_dir itself comes after TFDS's.
  assert files_lib.locate(str(tmp_path), 'cifar10', tar, tops=('top',))[0].path == str(folder)


def test_stored_order_is_tfds_hash_order():
  from tensorflow_datasets.core import hashing
  for split, keys in (('test', list(range(300))),
                      ('train', [f'aclImdb/train/pos/{i}_7.txt' for i in range(200)
                                ]), ('train', [f'news.en-00001-of-00100_{i}' for i in range(200)])):
    hasher = hashing.Hasher(split)
    expected = sorted(range(len(keys)), key=lambda i: hasher.hash_key(keys[i]))
    np.testing.assert_array_equal(files_lib.stored_order(keys, split), expected)
  assert files_lib.stored_order([], 'train').tolist() == []
  with pytest.raises(DataError, match='key 1.5 is not an int, str or bytes'):
    files_lib.stored_order([1.5], 'train')


def test_archives_normalise_paths_and_skip_what_tfds_skips(tmp_path):
  path = tmp_path / 'a.zip'
  with zipfile.ZipFile(path, 'w') as z:
    for name in ('d/./a.txt', 'd/.b', 'd/c~', 'd/e/f.txt'):
      z.writestr(name, name)
  found = [p for p, _ in archives.ZipArchive(str(path)).members(lambda p: True)]
  assert found == ['d/a.txt', 'd/e/f.txt']
  assert archives.normalized('/abs/x') is None and archives.normalized('./x') == 'x'
  (tmp_path / 'bad.tar.gz').write_bytes(b'not a tar')
  with pytest.raises(DataError, match='bad.tar.gz: cannot read it as a tar archive'):
    list(archives.TarArchive(str(tmp_path / 'bad.tar.gz')).members(lambda p: True))
  with pytest.raises(DataError, match='x: gzip data is corrupt or truncated'):
    archives.read_maybe_gzipped(io.BytesIO(b'\x1f\x8bxx'), 'x')
