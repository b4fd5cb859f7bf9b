"""IMDB reviews and LM1B read from their text archives, streamed, as TFDS gives them.

Both archives are `.tar.gz` files read front to back once (never unpacked);
each split becomes a `TextTable`: all texts in one byte buffer with offsets,
in TFDS's stored order (`distribution_files.stored_order`), random access.

* `ImdbSpec` (`aclImdb_v1.tar.gz`): one example per file under
  `aclImdb/{train,test}/{neg,pos}/` (`unsupervised`: `aclImdb/train/unsup/`);
  `{'text': bytes (the file, whitespace-stripped), 'label': int64 (neg 0,
  pos 1, unsupervised -1)}`; the key is the file's path in the archive.
* `Lm1bSpec` (`1-billion-word-language-modeling-benchmark-r13output.tar.gz`):
  one example per line of the files `news.en-*` (train) and
  `news.en.heldout-*` (test), read as UTF-8 text with universal newlines and
  stripped: `{'text': bytes}`; the key is `f'{file name}_{line index}'`.

Reading LM1B's 30 million sentences takes minutes, so tables are cached (when
`cache_dir` is writable) as `.npy` files, the texts memory-mapped on later
runs.
"""

import array
import fnmatch
import io
import os
import posixpath
import re
import shutil

import numpy as np

from minitrax.data.distribution_files import KeyHashes
from minitrax.errors import DataError

__all__ = ['TextTable', 'ImdbSpec', 'Lm1bSpec']

_LM1B_TOP = '1-billion-word-language-modeling-benchmark-r13output'


class TextTable:
  """The texts (and labels) of one split in TFDS's stored order: `len()` and `[i]`.

  Args:
    texts: uint8 array, every text's bytes one after another.
    offsets: int64 `(n + 1,)`: text `j` is `texts[offsets[j]:offsets[j + 1]]`.
    order: int64 `(n,)`: stored example `i` is text `order[i]`.
    labels: int64 `(n,)` or None (no `'label'` feature).
  """

  FIELDS = ('texts', 'offsets', 'order', 'labels')

  def __init__(self, texts, offsets, order, labels=None):
    self.texts, self.offsets, self.order, self.labels = texts, offsets, order, labels

  def __len__(self):
    return len(self.order)

  def __getitem__(self, index):
    row = int(self.order[index])
    example = {'text': self.texts[self.offsets[row]:self.offsets[row + 1]].tobytes()}
    if self.labels is not None:
      example['label'] = self.labels[row]
    return example

  def save(self, folder):
    """Writes the table into the new folder `folder` (atomically: all or nothing)."""
    tmp = f'{folder}.tmp.{os.getpid()}'
    os.makedirs(tmp)
    try:
      for field in self.FIELDS:
        if getattr(self, field) is not None:
          np.save(os.path.join(tmp, f'{field}.npy'), getattr(self, field))
      os.rename(tmp, folder)
    except OSError:
      shutil.rmtree(tmp, ignore_errors=True)
      raise

  @classmethod
  def load(cls, folder):
    """The table `save` wrote into `folder` (texts memory-mapped)."""
    path = lambda field: os.path.join(folder, f'{field}.npy')
    arrays = [
        np.load(path(f), mmap_mode='r' if f == 'texts' else None)
        if os.path.exists(path(f)) else None for f in cls.FIELDS
    ]
    return cls(*arrays)


class _TableMaker:
  """Collects the examples of one split as they stream by."""

  def __init__(self, split, labeled):
    self.texts, self.offsets, self.hashes = bytearray(), array.array('q', [0]), KeyHashes(split)
    self.labels = array.array('q') if labeled else None

  def add(self, key, text, label=None):
    self.texts += text
    self.offsets.append(len(self.texts))
    self.hashes.add(key)
    if self.labels is not None:
      self.labels.append(label)

  def table(self):
    labels = None if self.labels is None else np.array(self.labels, np.int64)
    return TextTable(np.frombuffer(self.texts, np.uint8), np.array(self.offsets, np.int64),
                     self.hashes.order(), labels)


def _cached_read(spec, container, splits, cache_dir):
  """`{split: TextTable}`: cached tables where present, the rest read (and cached if possible)."""
  tables = {}
  for split in splits:
    folder = cache_dir and os.path.join(cache_dir, split)
    if folder and os.path.isdir(folder):
      tables[split] = TextTable.load(folder)
  missing = [s for s in splits if s not in tables]
  if missing:
    read = spec.stream(container, missing)
    for split, table in read.items():
      if cache_dir:
        try:
          os.makedirs(cache_dir, exist_ok=True)
          table.save(os.path.join(cache_dir, split))
        except OSError:
          pass  # A read-only data folder: no cache, the table stays in memory.
    tables.update(read)
  return tables


class ImdbSpec:
  """IMDB movie reviews from `aclImdb_v1.tar.gz` (see the module docstring)."""

  archive = 'aclImdb_v1.tar.gz'
  cached = True
  tops = ('aclImdb',)
  splits = ('train', 'test', 'unsupervised')
  _PATTERNS = {
      'train': re.compile(r'^aclImdb/train/(neg|pos)/'),
      'test': re.compile(r'^aclImdb/test/(neg|pos)/'),
      'unsupervised': re.compile(r'^aclImdb/train/(unsup)/')
  }
  _LABELS = {'neg': 0, 'pos': 1, 'unsup': -1}

  def files(self, split):
    del split
    return (self.archive,)

  def stream(self, container, splits):
    """`{split: TextTable}` of `splits`, in one pass over `container`."""
    makers = {s: _TableMaker(s, labeled=True) for s in splits}
    accept = lambda path: any(self._PATTERNS[s].match(path) for s in splits)
    for path, f in container.members(accept):
      text = f.read().strip()
      for split in splits:
        match = self._PATTERNS[split].match(path)
        if match:
          makers[split].add(path, text, self._LABELS[match.group(1)])
    return {split: maker.table() for split, maker in makers.items()}

  def read(self, containers, splits, cache_dir=None):
    return _cached_read(self, containers[self.archive], splits, cache_dir)


class Lm1bSpec:
  """The One Billion Word benchmark's sentences (see the module docstring)."""

  archive = f'{_LM1B_TOP}.tar.gz'
  cached = True
  tops = (_LM1B_TOP,)
  splits = ('train', 'test')
  _FILES = {
      'train': (f'{_LM1B_TOP}/training-monolingual.tokenized.shuffled', 'news.en-*'),
      'test': (f'{_LM1B_TOP}/heldout-monolingual.tokenized.shuffled', 'news.en.heldout-*')
  }

  def files(self, split):
    del split
    return (self.archive,)

  def _split_of(self, path, splits):
    folder, name = posixpath.split(path)
    for split in splits:
      if folder == self._FILES[split][0] and fnmatch.fnmatchcase(name, self._FILES[split][1]):
        return split
    return None

  def stream(self, container, splits):
    """`{split: TextTable}` of `splits`, in one pass over `container`."""
    makers = {s: _TableMaker(s, labeled=False) for s in splits}
    for path, f in container.members(lambda p: self._split_of(p, splits) is not None):
      maker, name = makers[self._split_of(path, splits)], posixpath.basename(path)
      # Read as TFDS reads it: UTF-8 text, universal newlines (one file, ~40 MB, at a time).
      lines = io.TextIOWrapper(io.BytesIO(f.read()), encoding='utf-8', newline=None)
      try:
        for index, line in enumerate(lines):
          maker.add(f'{name}_{index}', line.strip().encode('utf-8'))
      except UnicodeDecodeError as e:
        raise DataError(f'{container}: {path} is not UTF-8 text ({e})') from e
    empty = [s for s in splits if len(makers[s].offsets) == 1]
    if empty:
      raise DataError(f'{container}: no {" or ".join(self._FILES[s][1] for s in empty)} files '
                      f'under {self.tops[0]}/; is it the right archive?')
    return {split: maker.table() for split, maker in makers.items()}

  def read(self, containers, splits, cache_dir=None):
    return _cached_read(self, containers[self.archive], splits, cache_dir)
