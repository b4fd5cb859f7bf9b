"""MNIST-format (IDX) and CIFAR (binary version) datasets read from their distribution files.

Each reader gives, per split, a random-access source of examples exactly as
TFDS's prepared dataset gives them (`ArraySource`): the same features, dtypes
and shapes, in TFDS's stored order (`distribution_files.stored_order`, keys
are example indices):

* `IdxSpec` (mnist, fashion_mnist, kmnist; emnist from its `gzip.zip`):
  `{'image': uint8 (28, 28, 1), 'label': int64}`. IDX image files hold
  `(n, rows, cols)` uint8 after a header; labels are `(n,)` uint8. EMNIST's
  images stay as its files store them (transposed: TFDS applies no
  transposition either), and its labels as stored (letters: 1..26).
* `CifarSpec` (cifar10, cifar100, from `cifar-*-binary.tar.gz`): records of
  label bytes then a 3x32x32 channel-major image;
  `{'id': b'train_00042', 'image': uint8 (32, 32, 3), 'label': int64}` and,
  for CIFAR-100, `'coarse_label'` (its first label byte; `label` is the fine
  label).
"""

import numpy as np

from minitrax.data import archives
from minitrax.data.distribution_files import stored_order
from minitrax.errors import DataError

__all__ = ['ArraySource', 'IdxSpec', 'CifarSpec', 'parse_idx']

_CIFAR_IMAGE_BYTES = 3 * 32 * 32


class ArraySource:
  """The examples of one split, held as arrays, in TFDS's stored order: `len()` and `[i]`.

  Args:
    columns: `{feature: array}`, one row per example in reading order.
    order: stored example `i` is row `order[i]`.
    id_prefix: if given, each example also has feature `'id'`:
      `f'{id_prefix}{row:05d}'` as bytes (CIFAR's ids).
  """

  def __init__(self, columns, order, id_prefix=None):
    self.columns, self.order, self.id_prefix = columns, order, id_prefix

  def __len__(self):
    return len(self.order)

  def __getitem__(self, index):
    row = int(self.order[index])
    example = {name: values[row] for name, values in self.columns.items()}
    if self.id_prefix is not None:
      example['id'] = f'{self.id_prefix}{row:05d}'.encode()
    return example


def parse_idx(data, ndim, where):
  """The uint8 array of an IDX file's bytes `data` of rank `ndim` (writable, native order)."""
  header = 4 + 4 * ndim
  if len(data) < header or data[:3] != b'\0\0\x08' or data[3] != ndim:
    raise DataError(f'{where}: not an IDX file of uint8 values of rank {ndim} (header bytes '
                    f'{bytes(data[:4]).hex() or "none"}, expected 00 00 08 {ndim:02x})')
  shape = tuple(int(d) for d in np.frombuffer(data[4:header], '>i4'))
  if len(data) - header != int(np.prod(shape)):
    raise DataError(f'{where}: IDX header says shape {shape} ({int(np.prod(shape))} bytes), but '
                    f'{len(data) - header} bytes follow it')
  return np.frombuffer(bytearray(data[header:]), np.uint8).reshape(shape)


def _read_members(container, names):
  """`{member: bytes}` of the members `names` of `container`, gunzipped where gzipped."""
  found = {
      path: archives.read_maybe_gzipped(f, f'{container}: {path}')
      for path, f in container.members(lambda p: p in names)
  }
  missing = [n for n in names if n not in found]
  if missing:
    raise DataError(f'{container}: has no {", ".join(missing)}; is it the right file?')
  return found


class IdxSpec:
  """An MNIST-format dataset: per split, an images and a labels IDX file.

  Args:
    files: `{split: (images file, labels file)}`, names of distribution files.
    members: `{split: (images member, labels member)}`, the paths of the IDX
      files inside them (for a plain `.gz` file, its own name).
    tops: the top-level folders of the archive (when members are inside one).
  """

  def __init__(self, files, members, tops=()):
    self._files, self._members, self.tops = files, members, tuple(tops)
    self.splits = tuple(files)

  def files(self, split):
    return tuple(dict.fromkeys(self._files[split]))

  def _split(self, containers, split):
    (images_file, labels_file), (images_member, labels_member) = (self._files[split],
                                                                  self._members[split])
    images = _read_members(containers[images_file], [images_member])[images_member]
    labels = _read_members(containers[labels_file], [labels_member])[labels_member]
    images = parse_idx(images, 3, f'{containers[images_file]}: {images_member}')
    labels = parse_idx(labels, 1, f'{containers[labels_file]}: {labels_member}')
    if len(images) != len(labels):
      raise DataError(f'split {split!r}: {len(images)} images in {images_member} but '
                      f'{len(labels)} labels in {labels_member}')
    columns = {'image': images[..., None], 'label': labels.astype(np.int64)}
    return ArraySource(columns, stored_order(range(len(labels)), split))

  def read(self, containers, splits, cache_dir=None):
    """`{split: ArraySource}` for `splits`, from `{file name: container}` (no cache needed)."""
    del cache_dir
    return {split: self._split(containers, split) for split in splits}


class CifarSpec:
  """A CIFAR dataset in its binary version: one tar.gz holding each split's record files.

  Args:
    archive: the distribution file's name.
    top: the archive's folder holding the record files.
    members: `{split: [record file names, in order]}`.
    label_keys: the features of the label bytes of each record, in order.
  """

  def __init__(self, archive, top, members, label_keys):
    self.archive, self.tops, self._members = archive, (top,), members
    self.label_keys, self.splits = tuple(label_keys), tuple(members)

  def files(self, split):
    del split
    return (self.archive,)

  def _split(self, blobs, split):
    data = b''.join(blobs[f'{self.tops[0]}/{name}'] for name in self._members[split])
    width = len(self.label_keys) + _CIFAR_IMAGE_BYTES
    if len(data) % width:
      raise DataError(f'{self.archive}: split {split!r} has {len(data)} bytes of records, not a '
                      f'multiple of the record size {width}')
    records = np.frombuffer(data, np.uint8).reshape(-1, width)
    n = len(self.label_keys)
    images = records[:, n:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    columns = {'image': np.ascontiguousarray(images)}
    for i, key in enumerate(self.label_keys):
      columns[key] = records[:, i].astype(np.int64)
    return ArraySource(columns, stored_order(range(len(records)), split), id_prefix=f'{split}_')

  def read(self, containers, splits, cache_dir=None):
    """`{split: ArraySource}` for `splits`, from `{file name: container}` (one pass, no cache)."""
    del cache_dir
    names = [f'{self.tops[0]}/{n}' for split in splits for n in self._members[split]]
    blobs = _read_members(containers[self.archive], names)
    return {split: self._split(blobs, split) for split in splits}
