"""Opening a TFDS dataset by name and a split of it by TFDS split string, without TensorFlow.

`open_dataset(name, data_dir, download)` returns, in this order of preference:

1. TFDS's own prepared copy in `array_record` format (or whatever
   `tfds.testing.mock_data` fakes), read through TFDS's random-access data
   sources;
2. for the seed's datasets (`local_datasets.DATASETS`: mnist, fashion_mnist,
   kmnist, emnist, cifar10, cifar100, imdb_reviews, lm1b), a `LocalDataset`
   that reads the original distribution files (found in `data_dir`, or
   downloaded through TFDS's download manager);
3. for every other dataset, the TFDS builder after `download_and_prepare`
   in `array_record` format (some need TensorFlow for that: a `DataError`
   then says to install the extra).

`open_split(dataset, name, split)` reads a TFDS split string (`'train'`,
`'test[:80%]'`, `'train+test'`: `minitrax.data.splits`) from either kind.
TensorFlow is never imported here, and `tensorflow_datasets` only inside the
functions.
"""

import contextlib
import logging
import os
import re

from minitrax.data import splits as splits_lib
from minitrax.data.local_datasets import LocalDataset, spec_for
from minitrax.errors import DataError

__all__ = ['open_dataset', 'open_split', 'require_splits', 'tf_guard', 'TF_EXTRA']

TF_EXTRA = "pip install -e '.[tfds]'"  # from a checkout: minitrax is not on PyPI
_TF_WORD = re.compile(r'\btensorflow\b')
_NOT_PREPARED = (KeyError, ValueError, AssertionError, FileNotFoundError, NotImplementedError)


def _chain(error):
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def _missing_tensorflow(error):
  """True if `error`, or an exception it was raised from, is TensorFlow failing to import."""
  return any(
      isinstance(e, ImportError) and (
          (e.name or '').split('.')[0] == 'tensorflow' or _TF_WORD.search(str(e)))
      for e in _chain(error))


def _missing_module(error):
  """The name of a module that failed to import in `error`'s chain, or None."""
  return next((e.name for e in _chain(error) if isinstance(e, ImportError) and e.name), None)


def _first_line(error):
  lines = str(error).strip().splitlines()
  return f'{type(error).__name__}: {lines[0] if lines else ""}'


@contextlib.contextmanager
def _quiet_absl():
  """absl's warnings muted (TFDS warns of a folder of a dataset not prepared yet)."""
  absl = logging.getLogger('absl')
  level = absl.level
  absl.setLevel(logging.ERROR)
  try:
    yield
  finally:
    absl.setLevel(level)


@contextlib.contextmanager
def tf_guard(name, action):
  """Turns a missing-TensorFlow failure inside the block into the install-extra DataError."""
  try:
    yield
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if _missing_tensorflow(e):
      raise DataError(
          f'TFDS dataset {name!r} needs TensorFlow to {action}, and TensorFlow is not installed '
          f'(minitrax itself never imports it). Install the extra with `{TF_EXTRA}` and run '
          'again.') from e
    raise


def _unprepared_message(builder, name, reason):
  root = os.fspath(builder.data_dir_root)
  return (f'TFDS dataset {name!r} is not prepared in data_dir {root!r} and could not be prepared '
          f'here ({reason}). Without network, place files downloaded elsewhere:\n'
          f'  - a prepared copy in array_record format, in {os.fspath(builder.data_dir)}/ (make it '
          f'where there is network: `tfds build {name} --data_dir=DIR '
          '--file_format=array_record`), or\n'
          f'  - the dataset\'s source files, in the TFDS manual directory '
          f'{os.path.join(root, "downloads", "manual")}/, then run again with download=True.')


def _prepare(builder, name, download):
  """`builder`, prepared in array_record format by TFDS (or a DataError saying why not)."""
  if builder.is_prepared():
    return builder
  if not download:
    raise DataError(_unprepared_message(builder, name, 'download=False'))
  with tf_guard(name, 'prepare it (encode its examples)'):
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      if _missing_tensorflow(e):
        raise
      module = _missing_module(e)
      if module:
        raise DataError(f'TFDS dataset {name!r}: tensorflow_datasets needs the Python module '
                        f'{module!r} to prepare it, and it is not installed; `pip install '
                        f'{module.split(".")[0]}` and run again') from e
      raise DataError(_unprepared_message(builder, name, _first_line(e))) from e
  return builder


def _tfds_readable(builder):
  """True if TFDS can read the dataset itself: prepared as array_record, or faked by mock_data."""
  if builder.is_prepared():
    file_format = builder.info.file_format
    return getattr(file_format, 'value', file_format) == 'array_record'
  try:  # Not prepared: TFDS reads it only when `tfds.testing.mock_data` fakes its sources.
    builder.as_data_source(split='train')
    return True
  except _NOT_PREPARED:
    return False


def open_dataset(name, data_dir=None, download=True):
  """The dataset `name`: a TFDS builder or a `LocalDataset` (see the module docstring).

  Raises:
    DataError: unknown dataset; not available (the message says what to do).
  """
  with _quiet_absl():
    return _open_dataset(name, data_dir, download)


def _builder(tfds_lib, name, data_dir):
  """The TFDS builder of `name`, for array_record files unless prepared in another format."""
  try:
    return tfds_lib.builder(name, data_dir=data_dir, file_format='array_record')
  except ValueError as e:
    if 'File format is already set' not in str(e):
      raise
    return tfds_lib.builder(name, data_dir=data_dir)  # Prepared as TFRecord files.


def _open_dataset(name, data_dir, download):
  import tensorflow_datasets as tfds_lib  # pylint: disable=g-import-not-at-top  (slow import)
  with tf_guard(name, 'load its dataset builder'):
    try:
      builder = _builder(tfds_lib, name, data_dir)
    except tfds_lib.core.DatasetNotFoundError as e:
      raise DataError(f'unknown TFDS dataset {name!r} (tensorflow_datasets '
                      f'{tfds_lib.__version__}); tfds.list_builders() lists the names') from e
  spec = spec_for(builder)
  if spec is None:
    return _prepare(builder, name, download)
  if _tfds_readable(builder):
    return builder
  return LocalDataset(builder, spec, download, name)


def _tfds_source(builder, name, split):
  with tf_guard(name, f'read split {split!r}'):
    try:
      return builder.as_data_source(split=split)
    except NotImplementedError as e:
      raise DataError(
          f'TFDS dataset {name!r} in {os.fspath(builder.data_dir)} is stored as TFRecord files, '
          'which only TensorFlow reads; minitrax reads array_record files. Convert it with '
          f'`tfds convert_format --dataset_version_dir={os.fspath(builder.data_dir)} '
          '--out_file_format=array_record`, or build it again with `tfds build '
          f'{name} --file_format=array_record` (both need TensorFlow: `{TF_EXTRA}`)') from e


def require_splits(dataset, split_strings):
  """Makes every split that `split_strings` read available at once (one download, one error)."""
  if isinstance(dataset, LocalDataset):
    known = list(dataset.info.splits)
    dataset.require([n for s in split_strings for n in splits_lib.split_names(s, known)])


def open_split(dataset, name, split):
  """Random access (`len()`, `[i]` -> example dict) to the TFDS split string `split`.

  Args:
    dataset: what `open_dataset` returned.
    name: the dataset's name (for messages).
    split: a TFDS split string, e.g. 'train', 'test[:80%]', 'train+test'.
  """
  known = list(dataset.info.splits)
  names = splits_lib.split_names(split, known)
  unknown = [n for n in names if known and n not in known]
  if unknown:
    raise DataError(f'TFDS dataset {name!r} has no split {unknown[0]!r} (splits: '
                    f'{", ".join(known)}). {splits_lib.SPLITS_HELP}')
  if isinstance(dataset, LocalDataset):
    require_splits(dataset, [split])
    sources = {n: dataset.source(n) for n in names}
  else:
    sources = {n: _tfds_source(dataset, name, n) for n in names}
  return splits_lib.Slices(split, sources)
