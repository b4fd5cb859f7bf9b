"""Inputs from local files: MNIST-format IDX files, and plain text for language models.

IDX (the format MNIST, Fashion-MNIST and EMNIST ship in): two zero bytes, a
type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E
float64), the number of dimensions, each dimension as a big-endian int32, then
the values, big-endian. Files may be gzipped (`.gz`).

`idx_inputs(data_dir)` reads `{prefix}-images-idx3-ubyte[.gz]` and
`{prefix}-labels-idx1-ubyte[.gz]` for the train and eval prefixes (`train`,
`t10k`); images become `(B, rows, cols, 1)`, float32 in `[0, 1]` by default
(as `tfds` MNIST with scaling), labels int32 `(B,)`.

`text_inputs(paths, length)` reads text files as byte ids (`minitrax.data.text`),
cuts each document into rows of `length` ids and yields language-model
batches `(ids, ids, weights)`, weights 0 on padding.
"""

import gzip
import os

import numpy as np

from minitrax.checks import check_int
from minitrax.data import text as text_lib
from minitrax.data.arrays import arrays_to_inputs, holdout_split
from minitrax.errors import DataError

__all__ = ['read_idx', 'write_idx', 'idx_inputs', 'text_inputs']

_IDX_DTYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def _read_bytes(path):
  with open(path, 'rb') as f:
    data = f.read()
  if data[:2] == b'\x1f\x8b':  # gzip magic, whatever the file name.
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError) as e:
      raise DataError(f'{path}: gzip data is corrupt or truncated: {e}') from e
  return data


def read_idx(path):
  """Reads one IDX file (gzipped or raw).

  Args:
    path: file path.

  Returns:
    NumPy array of the stored shape, in native byte order (uint8 for MNIST).

  Raises:
    DataError: the file is not IDX, or its size does not match its header.
  """
  data = _read_bytes(path)
  if len(data) < 4 or data[:2] != b'\0\0' or data[2] not in _IDX_DTYPES:
    raise DataError(f'{path}: not an IDX file (header bytes {data[:4].hex() or "none"}; '
                    'expected 00 00, a type byte in 08 09 0b 0c 0d 0e, and a rank)')
  dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
  header = 4 + 4 * ndim
  shape = tuple(int(d) for d in np.frombuffer(data[4:header], '>i4'))
  expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) != expected:
    raise DataError(f'{path}: IDX header says shape {shape} of {dtype.name} ({expected} bytes '
                    f'with the header), but the file has {len(data)} bytes')
  return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder('='))


def write_idx(path, array):
  """Writes `array` as an IDX file, gzipped if `path` ends in `.gz`.

  Args:
    path: the file to write.
    array: an array of a dtype IDX has a code for (uint8, int8, int16,
      int32, float32, float64).
  """
  array = np.asarray(array)
  codes = {np.dtype(v).newbyteorder('='): k for k, v in _IDX_DTYPES.items()}
  if array.dtype not in codes:
    raise DataError(f'write_idx: dtype {array.dtype} has no IDX type code')
  header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.asarray(array.shape, '>i4').tobytes()
  data = header + array.astype(array.dtype.newbyteorder('>')).tobytes()
  with open(path, 'wb') as f:
    f.write(gzip.compress(data, mtime=0) if path.endswith('.gz') else data)


def _find(data_dir, name):
  for candidate in (name + '.gz', name):
    path = os.path.join(data_dir, candidate)
    if os.path.isfile(path):
      return path
  if os.path.isdir(data_dir):
    where = f'present: {", ".join(sorted(os.listdir(data_dir))) or "nothing"}'
  else:
    where = 'no such directory'
  raise DataError(f'idx_inputs: no {name}[.gz] in {data_dir} ({where})')


def _read_split(data_dir, prefix):
  images = read_idx(_find(data_dir, f'{prefix}-images-idx3-ubyte'))
  labels = read_idx(_find(data_dir, f'{prefix}-labels-idx1-ubyte'))
  if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
    raise DataError(f'idx_inputs: {data_dir}/{prefix}-*: expected images (N, rows, cols) and '
                    f'labels (N,), got {images.shape} and {labels.shape}')
  return images[..., None], labels.astype(np.int32)


def _scale(batch, rng):
  del rng
  return (batch[0].astype(np.float32) * np.float32(1 / 255),) + tuple(batch[1:])


def idx_inputs(
    data_dir,
    train='train',
    eval='t10k',  # pylint: disable=redefined-builtin
    eval_holdout_size=0.0,
    batch_size=32,
    eval_batch_size=None,
    scale=True,
    shuffle=True,
    seed=0):
  """`Inputs` from MNIST-format IDX files in `data_dir`.

  Args:
    data_dir: directory with `{train}-images-idx3-ubyte[.gz]`,
      `{train}-labels-idx1-ubyte[.gz]` and the same for `eval`.
    train, eval: file-name prefixes of the two splits.
    eval_holdout_size: if > 0, the eval split is the last fraction of the
      `train` files instead (e.g. `train='t10k', eval_holdout_size=0.2` gives
      8,000 / 2,000 examples from the MNIST test files alone).
    batch_size: training batch size `B`.
    eval_batch_size: eval and train-eval batch size; default `B`.
    scale: images as float32 in `[0, 1]`; else uint8.
    shuffle: permute each epoch (seeded).
    seed: int >= 0.

  Returns:
    `Inputs` of `(images (B, rows, cols, 1), labels (B,) int32)`, random access.
  """
  name = 'idx_inputs'
  seed = check_int(name, 'seed', seed, 0, error=DataError)
  batch_size = check_int(name, 'batch_size', batch_size, error=DataError)
  eval_batch_size = check_int(name, 'eval_batch_size', eval_batch_size or batch_size,
                              error=DataError)
  train_arrays = _read_split(data_dir, train)
  if eval_holdout_size:
    train_arrays, eval_arrays = holdout_split(train_arrays, eval_holdout_size, name)
    if eval_arrays is None:
      raise DataError(f'{name}: eval_holdout_size {eval_holdout_size} of {len(train_arrays[0])} '
                      'examples holds out none')
  else:
    eval_arrays = _read_split(data_dir, eval)
  return arrays_to_inputs(train_arrays, eval_arrays, batch_size, eval_batch_size, shuffle, seed,
                          name, transform=_scale if scale else None, rowwise=True)


def _documents(paths, by_line):
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  for path in paths:
    with open(path, 'rb') as f:
      data = f.read()
    yield from (line for line in data.splitlines() if line.strip()) if by_line else [data]


def _text_rows(paths, length, by_line):
  rows = [
      text_lib.chunk_ids(text_lib.encode_bytes(doc), length) for doc in _documents(paths, by_line)
  ]
  if not rows:
    raise DataError(f'text_inputs: no text in {paths}')
  ids = np.concatenate(rows)
  return ids, ids, text_lib.lm_weights(ids)


def text_inputs(paths, length=128, batch_size=16, eval_paths=None, eval_holdout_size=0.1,
                eval_batch_size=None, by_line=False, shuffle=True, seed=0):
  """Language-model `Inputs` from plain text files, as byte ids.

  Each document (a whole file, or each non-empty line if `by_line`) becomes
  its UTF-8 bytes shifted by 2 and an end-of-sequence id 1, cut into rows of
  `length` ids; the last row of a document is padded with 0.

  Args:
    paths: a file path or a list of them.
    length: ids per row `L`.
    batch_size: rows per training batch `B`.
    eval_paths: files for evaluation; default the last `eval_holdout_size`
      of the rows of `paths` (or `paths` itself if that is 0).
    eval_holdout_size: fraction of rows held out when `eval_paths` is None.
    eval_batch_size: eval and train-eval batch size; default `B`.
    by_line: one document per non-empty line.
    shuffle: permute the rows each epoch (seeded).
    seed: int >= 0.

  Returns:
    `Inputs` of `(ids (B, L) int32, ids (B, L) int32, weights (B, L) float32)`,
    random access; `text.BYTE_VOCAB_SIZE` (258) ids.
  """
  name = 'text_inputs'
  seed = check_int(name, 'seed', seed, 0, error=DataError)
  length = check_int(name, 'length', length, error=DataError)
  batch_size = check_int(name, 'batch_size', batch_size, error=DataError)
  eval_batch_size = check_int(name, 'eval_batch_size', eval_batch_size or batch_size,
                              error=DataError)
  train = _text_rows(paths, length, by_line)
  if eval_paths is None:
    train, eval_rows = holdout_split(train, eval_holdout_size, name)
    eval_rows = eval_rows or train
  else:
    eval_rows = _text_rows(eval_paths, length, by_line)
  return arrays_to_inputs(train, eval_rows, batch_size, eval_batch_size, shuffle, seed, name)
