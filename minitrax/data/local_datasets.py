"""The seed's TFDS datasets read from their original distribution files, without TensorFlow.

`mnist`, `fashion_mnist`, `kmnist`, `emnist` (every config: `emnist/letters`,
`emnist/digits`, ...), `cifar10`, `cifar100`, `imdb_reviews` and `lm1b` are
read from the files TFDS itself downloads to prepare them (IDX files, CIFAR's
binary tarballs, the IMDB and LM1B text archives), with the same splits,
features and example order as TFDS's prepared dataset.

`LocalDataset` stands where a TFDS builder would: it has the builder's `info`
(features, supervised keys, split names) and opens one split at a time.
`require(splits)` finds the files those splits need (`distribution_files`:
every TFDS folder layout; archives must be genuine), downloads the missing
ones through TFDS's download manager (`downloads`: offline is known in
seconds), or raises a `DataError` naming each missing file with its
SHA-256, the folder to put it in, and, when another split's files are
present, how to slice that split instead.
"""

import os
import types

from minitrax.data import distribution_files as files_lib
from minitrax.data import downloads
from minitrax.data import splits as splits_lib
from minitrax.data.image_files import CifarSpec, IdxSpec
from minitrax.data.text_archives import ImdbSpec, Lm1bSpec
from minitrax.errors import DataError

__all__ = ['LocalDataset', 'spec_for', 'DATASETS']

EMNIST_CONFIGS = ('byclass', 'bymerge', 'balanced', 'letters', 'digits', 'mnist')


def _mnist_format():
  files = {
      'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
      'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')
  }
  return IdxSpec(files, files)


def _emnist(config):
  members = {
      s: (f'gzip/emnist-{config}-{s}-images-idx3-ubyte.gz',
          f'gzip/emnist-{config}-{s}-labels-idx1-ubyte.gz') for s in ('train', 'test')
  }
  return IdxSpec({s: ('gzip.zip', 'gzip.zip') for s in members}, members, tops=('gzip',))


def _cifar10():
  train = [f'data_batch_{i}.bin' for i in range(1, 6)]
  return CifarSpec('cifar-10-binary.tar.gz', 'cifar-10-batches-bin',
                   {'train': train, 'test': ['test_batch.bin']}, ['label'])


def _cifar100():
  return CifarSpec('cifar-100-binary.tar.gz', 'cifar-100-binary',
                   {'train': ['train.bin'], 'test': ['test.bin']}, ['coarse_label', 'label'])


DATASETS = {('mnist', None): _mnist_format,
            ('fashion_mnist', None): _mnist_format, ('kmnist', None): _mnist_format,
            ('cifar10', None): _cifar10, ('cifar100', None): _cifar100,
            ('imdb_reviews', 'plain_text'): ImdbSpec, ('lm1b', None): Lm1bSpec,
            **{('emnist', c): (lambda c=c: _emnist(c)) for c in EMNIST_CONFIGS}}


def spec_for(builder):
  """The reader spec of a TFDS builder's dataset, or None if it has none."""
  config = builder.builder_config.name if builder.builder_config else None
  make = DATASETS.get((builder.name, config))
  return make() if make else None


class LocalDataset:
  """A TFDS dataset read from its distribution files (see the module docstring).

  Args:
    builder: the dataset's (unprepared) TFDS builder: its name, info and
      data folder.
    spec: its reader spec (`spec_for(builder)`).
    download: download missing files.
    name: the dataset name as the user wrote it (for messages).
  """

  def __init__(self, builder, spec, download, name):
    self.spec, self.download, self.name, self.dataset = spec, download, name, builder.name
    self.data_dir = self.data_dir_root = os.fspath(builder.data_dir_root)
    self.info = types.SimpleNamespace(features=builder.info.features,
                                      supervised_keys=builder.info.supervised_keys,
                                      splits={s: None for s in spec.splits})
    self._sources = {}

  def _registered(self, names):
    registry = files_lib.registered(self.dataset)
    unknown = [n for n in names if n not in registry]
    if unknown:
      raise DataError(f'TFDS dataset {self.name!r}: tensorflow_datasets registers no file '
                      f'{unknown[0]!r} (registered: {", ".join(registry) or "none"})')
    return registry

  def _locate(self, registry, names):
    """`({name: container}, rejected)` of the files `names` found under the data folder."""
    found, rejected = {}, []
    for name in names:
      container, bad = files_lib.locate(self.data_dir, self.dataset, registry[name], self.spec.tops)
      rejected += bad
      if container is not None:
        found[name] = container
    return found, rejected

  def _present_splits(self, registry, found):
    present = []
    for split in self.spec.splits:
      names = self.spec.files(split)
      others, _ = self._locate(registry, [n for n in names if n not in found])
      if all(n in found or n in others for n in names):
        present.append(split)
    return present

  def _missing_message(self, registry, splits, missing, found, rejected, reason):
    lines = [
        f'TFDS dataset {self.name!r}: split{"s" if len(splits) > 1 else ""} '
        f'{", ".join(map(repr, splits))} need{"" if len(splits) > 1 else "s"} files that are '
        f'not in data_dir {self.data_dir!r} and were not downloaded ({reason}). Download them '
        f'elsewhere and put them, named as here, in {self.data_dir}/ (or in TFDS\'s folder '
        f'{os.path.join(self.data_dir, "downloads", "manual")}/):'
    ]
    lines += [f'  {registry[n].describe()}' for n in missing]
    lines += [f'Found but not genuine (size or SHA-256 differ): {p} ({why})' for p, why in rejected]
    present = [s for s in self._present_splits(registry, found) if s not in splits]
    if present:
      lines.append(f'The files of split {present[0]!r} are here: to train and evaluate on it, '
                   f"slice it as TFDS does, e.g. train_split='{present[0]}[:80%]', "
                   f"eval_split='{present[0]}[80%:]'.")
    return '\n'.join(lines)

  def _fetch(self, registry, missing, splits, found, rejected):
    """`{name: container}` of the `missing` files, downloaded (or the DataError saying why not)."""
    reason = 'download=False'
    if self.download:
      try:
        paths = downloads.fetch([registry[n] for n in missing], self.data_dir, self.dataset)
        return {n: files_lib.container(paths[n], n) for n in missing}
      except downloads.DownloadFailed as e:
        reason = str(e)
        message = self._missing_message(registry, splits, missing, found, rejected, reason)
        raise DataError(message) from e
    raise DataError(self._missing_message(registry, splits, missing, found, rejected, reason))

  def _cache_dir(self, registry):
    if not getattr(self.spec, 'cached', False):
      return None
    name = files_lib.tfds_download_name(registry[self.spec.archive])
    return os.path.join(self.data_dir, 'downloads', 'extracted', f'MINITRAX.{name}')

  def require(self, splits):
    """Finds (or downloads) the files of `splits` and reads them; once per split."""
    todo = [s for s in dict.fromkeys(splits) if s not in self._sources]
    unknown = [s for s in todo if s not in self.spec.splits]
    if unknown:
      raise DataError(f'TFDS dataset {self.name!r} has no split {unknown[0]!r} (splits: '
                      f'{", ".join(self.spec.splits)}). {splits_lib.SPLITS_HELP}')
    if not todo:
      return
    names = list(dict.fromkeys(n for s in todo for n in self.spec.files(s)))
    registry = self._registered(names)
    found, rejected = self._locate(registry, names)
    missing = [n for n in names if n not in found]
    if missing:
      needing = [s for s in todo if any(n in missing for n in self.spec.files(s))]
      found.update(self._fetch(registry, missing, needing, found, rejected))
    self._sources.update(self.spec.read(found, todo, cache_dir=self._cache_dir(registry)))

  def source(self, split):
    """The random-access source of the examples of split `split` (a name, not sliced)."""
    self.require([split])
    return self._sources[split]
