"""Tests for minitrax.data.files: IDX (MNIST) files and text files."""

import gzip
import hashlib
import os
import sys

import numpy as np
import pytest

from minitrax.data import idx_inputs, read_idx, text_inputs, write_idx
from minitrax.data import text
from minitrax.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_checks import assert_same_batches, take  # noqa: E402

SLICE = os.path.join(os.path.dirname(__file__), 'mnist')  # First 512 of the MNIST test split.
SHARED = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'data', 'mnist')
# sha256 of the full files, as ../shared/data/README.md (and TFDS) registers them.
SHARED_SHA256 = {
    't10k-images-idx3-ubyte.gz': '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
    't10k-labels-idx1-ubyte.gz': 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
}
needs_shared = pytest.mark.skipif(
    not os.path.isdir(SHARED), reason='../shared/data/mnist (the full MNIST test split) is absent')


def test_read_idx_on_the_mnist_slice():
  images = read_idx(os.path.join(SLICE, 't10k-images-idx3-ubyte.gz'))
  labels = read_idx(os.path.join(SLICE, 't10k-labels-idx1-ubyte.gz'))
  assert images.shape == (512, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (512,) and labels.dtype == np.uint8
  assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST's first test digits.
  assert images.max() == 255 and images[0, :4].max() == 0  # Ink in the middle, border blank.
  assert abs(images.mean() / 255 - 0.13) < 0.02  # MNIST's mean intensity.


@pytest.mark.parametrize('dtype', [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize('name', ['a.idx', 'a.idx.gz'])
def test_write_and_read_idx_round_trip(tmp_path, dtype, name):
  array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
  path = str(tmp_path / name)
  write_idx(path, array)
  back = read_idx(path)
  assert back.dtype == np.dtype(dtype) and back.dtype.isnative
  np.testing.assert_array_equal(back, array)


def test_read_idx_reads_gzip_data_whatever_the_name(tmp_path):
  path = tmp_path / 'labels'
  path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 5, 6])))
  assert read_idx(str(path)).tolist() == [5, 6]


def test_read_idx_errors_name_the_file(tmp_path):
  bad = tmp_path / 'bad'
  bad.write_bytes(b'PK\x03\x04rest')
  with pytest.raises(DataError, match=f'{bad}: not an IDX file \\(header bytes 504b0304'):
    read_idx(str(bad))
  short = tmp_path / 'short'
  short.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3]))
  with pytest.raises(DataError) as info:
    read_idx(str(short))
  assert str(info.value) == (f'{short}: IDX header says shape (2, 3) of uint8 (18 bytes with the '
                             'header), but the file has 15 bytes')


def test_idx_inputs_from_the_slice():
  data = idx_inputs(SLICE, train='t10k', eval_holdout_size=0.25, batch_size=32, seed=1)
  x, y = next(data.train_stream(1))
  assert x.shape == (32, 28, 28, 1) and x.dtype == np.float32
  assert y.shape == (32,) and y.dtype == np.int32
  assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.99
  assert data.exact_resume
  eval_labels = np.concatenate([y for _, y in take(data.eval_stream(1), 4)])  # One epoch: 128.
  assert np.bincount(eval_labels, minlength=10).sum() == 128
  raw = idx_inputs(SLICE, train='t10k', eval='t10k', scale=False, batch_size=8)
  assert raw.input_dtype == np.uint8


def test_idx_inputs_resume_exactly_across_an_epoch_boundary():
  make = lambda: idx_inputs(SLICE, train='t10k', eval_holdout_size=0.25, batch_size=100, seed=4)
  full = take(make().train_stream(1), 6)  # 384 training images: batch 3 straddles epochs.
  assert_same_batches(take(make().train_stream(1, start=3), 3), full[3:])


def test_idx_inputs_missing_files(tmp_path):
  (tmp_path / 'readme.txt').write_text('no digits here')
  with pytest.raises(DataError) as info:
    idx_inputs(str(tmp_path))
  assert str(info.value) == (f'idx_inputs: no train-images-idx3-ubyte[.gz] in {tmp_path} '
                             '(present: readme.txt)')


@needs_shared
def test_shared_mnist_files_are_genuine_and_match_the_slice():
  for name, digest in SHARED_SHA256.items():
    with open(os.path.join(SHARED, name), 'rb') as f:
      assert hashlib.sha256(f.read()).hexdigest() == digest
  images = read_idx(os.path.join(SHARED, 't10k-images-idx3-ubyte.gz'))
  labels = read_idx(os.path.join(SHARED, 't10k-labels-idx1-ubyte.gz'))
  assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist()[:3] == [980, 1135, 1032]
  np.testing.assert_array_equal(images[:512],
                                read_idx(os.path.join(SLICE, 't10k-images-idx3-ubyte.gz')))


@needs_shared
def test_idx_inputs_on_the_full_test_split_as_the_data_readme_suggests():
  data = idx_inputs(SHARED, train='t10k', eval_holdout_size=0.2, batch_size=128)
  labels = np.concatenate([y for _, y in take(data.eval_stream(1), 1000 // 64)])
  assert next(data.train_stream(1))[0].shape == (128, 28, 28, 1) and len(labels) == 1920


CORPUS = 'The quick brown fox\njumps over the lazy dog.\n\nÜber 9000 words.\n'


def test_text_inputs_layout(tmp_path):
  path = tmp_path / 'corpus.txt'
  path.write_text(CORPUS, encoding='utf-8')
  data = text_inputs(str(path), length=16, batch_size=2, eval_holdout_size=0.0, shuffle=False)
  rows = take(data.train_stream(1), 3)
  ids = np.concatenate([x for x, _, _ in rows])[:5]  # 67 bytes + EOS = 68 ids: 5 rows of 16.
  assert text.decode_bytes(ids.reshape(-1)) == CORPUS
  assert ids.reshape(-1)[len(CORPUS.encode('utf-8'))] == text.EOS_ID
  for x, y, w in rows:
    assert x.dtype == np.int32 and w.dtype == np.float32 and x.shape == (2, 16)
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(w, (x != 0).astype(np.float32))
  weights = np.concatenate([w for _, _, w in rows])[:5]
  assert weights.sum() == len(CORPUS.encode('utf-8')) + 1  # Zero only on the padding.


def test_text_inputs_by_line_holdout_and_resume(tmp_path):
  paths = [tmp_path / 'a.txt', tmp_path / 'b.txt']
  paths[0].write_text(CORPUS)
  paths[1].write_text('\n'.join(f'line {i}' for i in range(40)))
  data = text_inputs([str(p) for p in paths], length=8, batch_size=4, by_line=True,
                     eval_holdout_size=0.25, seed=2)
  texts = {text.decode_bytes(x) for x, _, _ in take(data.eval_stream(1), 3) for x in x}
  assert texts <= {f'line {i}' for i in range(40)}  # The held-out end of the corpus.
  full = take(data.train_stream(1), 12)
  assert_same_batches(take(data.train_stream(1, start=10), 2), full[10:])
  with pytest.raises(DataError, match='text_inputs: no text in'):
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n\n')
    text_inputs(str(empty), by_line=True)


def test_byte_ids():
  assert text.encode_bytes('hi').tolist() == [106, 107, 1]
  assert text.encode_bytes(b'\x00', eos=False).tolist() == [2]
  assert text.decode_bytes(text.encode_bytes('Über')) == 'Über'
  assert text.chunk_ids([5, 6, 7], 2).tolist() == [[5, 6], [7, 0]]
  assert text.BYTE_VOCAB_SIZE == 258
