"""A dataset's original distribution files: TFDS's registry of them, and finding them on disk.

TFDS registers, for every file a dataset builder downloads, its URL, size and
SHA-256 (the `url_checksums/*.txt` and `checksums.tsv` files shipped in the
`tensorflow_datasets` package, read through the builder's `url_infos`).
`registered(name)` returns them as `DistFile`s keyed by file name.

`locate` finds one of them under a TFDS data folder `root`, in every layout
TFDS (or a person) leaves it:

* the archive itself, genuine (its size and SHA-256 match the registry), as
  `root/NAME`, `root/downloads/manual/NAME` (TFDS's manual folder),
  `root/downloads/NAME`, or under TFDS's download name (URL and checksum
  encoded) as `root/downloads/DATASET/DLNAME` or `root/downloads/DLNAME`;
* or its extracted content, which has no registered checksum: the folder
  (or, for a `.gz` file, the file) `root/downloads/extracted/METHOD.DLNAME` or
  `.../METHOD.NAME` that TFDS extracts to, or the archive's top-level folders
  (`NAME` less `.gz` for a single file) in `root` or the manual folder; readers
  check the structure of what they read from these.

`stored_order(keys, split)` is the order TFDS stores a split's examples in:
sorted by the MD5 hash of `split name + key` (TFDS's shuffling by key), so
that example `i` (and every slice) here is example `i` of TFDS's split.
"""

import dataclasses
import hashlib
import os

import numpy as np

from minitrax.data import archives
from minitrax.errors import DataError

__all__ = [
    'DistFile', 'registered', 'checksum_matches', 'tfds_download_name', 'locate', 'container',
    'stored_order', 'KeyHashes'
]

_EXTRACT_METHODS = (('.tar.gz', 'TAR_GZ'), ('.tgz', 'TAR_GZ'), ('.tar', 'TAR'), ('.zip', 'ZIP'),
                    ('.gz', 'GZIP'))


@dataclasses.dataclass(frozen=True)
class DistFile:
  """One registered distribution file: its name, URL, size in bytes and SHA-256 (hex)."""
  name: str
  url: str
  size: int
  sha256: str

  def describe(self):
    return f'{self.name}  sha256 {self.sha256}  ({self.size:,} bytes, {self.url})'


def registered(dataset_name):
  """`{file name: DistFile}` of the files TFDS registers for `dataset_name` ('mnist', ...)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  infos = tfds.builder_cls(dataset_name.split('/')[0]).url_infos or {}
  return {
      info.filename: DistFile(info.filename, url, int(info.size), info.checksum)
      for url, info in infos.items()
  }


def checksum_matches(path, dist_file):
  """True if the file at `path` has `dist_file`'s size and SHA-256."""
  if os.path.getsize(path) != dist_file.size:
    return False
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest() == dist_file.sha256


def tfds_download_name(dist_file):
  """The file name TFDS's download manager gives `dist_file` in its `downloads/` folder."""
  from tensorflow_datasets.core.download import resource  # pylint: disable=g-import-not-at-top
  return resource.get_dl_fname(dist_file.url, dist_file.sha256)


def _method(name):
  for suffix, method in _EXTRACT_METHODS:
    if name.endswith(suffix):
      return method, name[:-len(suffix)]
  return None, name


def _archive_paths(root, dataset, dist_file):
  downloads, dl_name = os.path.join(root, 'downloads'), tfds_download_name(dist_file)
  return [
      os.path.join(root, dist_file.name),
      os.path.join(downloads, 'manual', dist_file.name),
      os.path.join(downloads, dist_file.name),
      os.path.join(downloads, dataset, dl_name),
      os.path.join(downloads, dl_name)
  ]


def container(path, name):
  """The container reading the distribution file `name` stored at `path`."""
  method, _ = _method(name)
  if method in ('TAR_GZ', 'TAR'):
    return archives.TarArchive(path)
  if method == 'ZIP':
    return archives.ZipArchive(path)
  return archives.SingleFile(path, name)


def _extracted(root, dist_file, tops):
  """Containers of `dist_file`'s extracted content that exist under `root`."""
  method, stem = _method(dist_file.name)
  extracted = os.path.join(root, 'downloads', 'extracted')
  tfds_dirs = [
      os.path.join(extracted, f'{method}.{name}')
      for name in (tfds_download_name(dist_file), dist_file.name)
  ]
  if method == 'GZIP':
    paths = tfds_dirs + [os.path.join(root, stem), os.path.join(root, 'downloads', 'manual', stem)]
    return [archives.SingleFile(p, dist_file.name) for p in paths if os.path.isfile(p)]
  folders = tfds_dirs + [root, os.path.join(root, 'downloads', 'manual')]
  return [
      archives.Folder(f, tops)
      for f in folders
      if tops and all(os.path.isdir(os.path.join(f, t)) for t in tops)
  ]


def locate(root, dataset, dist_file, tops=(), matches=None):
  """A container of `dist_file` found under the TFDS data folder `root`, or None.

  Args:
    root: the data folder (`data_dir`).
    dataset: the dataset's TFDS name without config ('mnist', 'emnist').
    dist_file: the `DistFile` to find.
    tops: the top-level folders inside the archive (for its extracted form).
    matches: `(path, dist_file) -> bool`, the genuineness check; default
      `checksum_matches`.

  Returns:
    `(container or None, rejected)`: `rejected` lists `(path, why)` for files
    that have the right name but are not genuine.
  """
  matches = matches or checksum_matches
  rejected = []
  for path in _archive_paths(root, dataset, dist_file):
    if os.path.isfile(path):
      if matches(path, dist_file):
        return container(path, dist_file.name), rejected
      rejected.append((path, f'{os.path.getsize(path):,} bytes, not the registered file'))
  found = _extracted(root, dist_file, tops)
  return (found[0] if found else None), rejected


def _key_bytes(key):
  """A key as TFDS hashes it: ints as decimal text, strings as UTF-8 with '/' separators."""
  if isinstance(key, bytes):
    return key
  if isinstance(key, (int, np.integer)):
    return str(int(key)).encode()
  if isinstance(key, str):
    return key.replace('\\', '/').encode('utf-8')
  raise DataError(f'stored_order: key {key!r} is not an int, str or bytes')


class KeyHashes:
  """The hashes TFDS orders a split's examples by, collected one key at a time.

  Args:
    split: the split name (TFDS's salt), e.g. 'train'.
  """

  def __init__(self, split):
    self._salt = split.encode('utf-8')
    self._digests = bytearray()

  def add(self, key):
    self._digests += hashlib.md5(self._salt + _key_bytes(key)).digest()

  def order(self):
    """int64 `order`: stored example `i` is the example of the `order[i]`-th key added."""
    halves = np.frombuffer(bytes(self._digests), '>u8').reshape(-1, 2)
    return np.lexsort((halves[:, 1], halves[:, 0])).astype(np.int64)


def stored_order(keys, split):
  """Indices of `keys` in the order TFDS stores the examples of split `split`.

  TFDS sorts a split's examples by the 128-bit MD5 hash of the split name
  followed by the example's key.

  Args:
    keys: the examples' keys, in reading order (ints or strings).
    split: the split name, e.g. 'train'.

  Returns:
    int64 array `order`: stored example `i` is read example `order[i]`.
  """
  hashes = KeyHashes(split)
  for key in keys:
    hashes.add(key)
  return hashes.order()
