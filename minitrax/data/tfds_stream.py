"""`TFDS`: Trax 1.4's stream of examples from a TensorFlow dataset, read without TensorFlow.

`TFDS('imdb_reviews', keys=('text', 'label'))` opens the dataset as
`minitrax.data.tfds` does (array_record files through TFDS's random-access
data sources; prepared on first use if possible, with the same advice when
not) and returns a stream function whose iterator yields tuples of the
selected features, endlessly (epoch after epoch), as Trax's does:

* text features as `bytes` (as Trax; `ConvertToUnicode` makes them `str`),
  other features as the NumPy values TFDS decodes (labels int64 scalars,
  images uint8 arrays);
* splits as Trax chooses them: `train`; for `train=False` `validation`, else
  `test` (glue/mnli: `validation_matched`, or `validation_mismatched` with
  `use_alt_eval`); with `eval_holdout_size`, eval is the last
  `int(n * eval_holdout_size)` training examples instead; with `n_hosts > 1`
  host `host_id` trains on its contiguous share of the rest;
* with `shuffle_train` the training examples come in a new seeded
  permutation each epoch (Trax shuffles the order of files, unseeded), else
  in stored order, as eval examples always do.

Example `p` of the stream is a pure function of `(seed, p)`: the iterator is
a `Seekable`, so a pipeline resumes at any position without reading what came
before (as long as the combinators after it keep random access).
"""

import os

import jax
import numpy as np

from minitrax.checks import check_int
from minitrax.data import batching
from minitrax.data import tfds as tfds_lib
from minitrax.data.seekable import Seekable
from minitrax.errors import DataError

__all__ = ['TFDS']


def _eval_split(builder, name, known, use_alt_eval):
  """The eval split Trax picks when no training examples are held out."""
  if name == 'glue/mnli':
    return 'validation_mismatched' if use_alt_eval else 'validation_matched'
  if name == 'c4/multilingual':
    return 'en-validation'
  if not known:  # Split names unknown (tfds.testing.mock_data): test, as most datasets have.
    return 'test'
  for split in ('validation', 'test'):
    if split in known:
      return split
  raise DataError(f'TFDS dataset {name!r} has no validation or test split (splits: '
                  f'{sorted(known)}); pass eval_holdout_size to hold out part of train')


def _host_range(name, n_train, host_id, n_hosts):
  """`[start, end)` of the training examples of host `host_id` of `n_hosts` (Trax's rounding)."""
  if n_hosts <= 1:
    return 0, n_train
  start, end = int(n_train * (host_id / n_hosts)), int(n_train * ((host_id + 1) / n_hosts))
  if end - start < 1:
    raise DataError(f'TFDS dataset {name!r}: host {host_id} of {n_hosts} gets no training examples '
                    f'({n_train} to share)')
  return start, end


def _plain(value):
  """A decoded feature as Trax gives it: text as bytes, the rest unchanged."""
  if isinstance(value, str):
    return value.encode('utf-8')
  if isinstance(value, np.ndarray) and value.dtype.kind == 'U':
    return np.char.encode(value, 'utf-8')
  return value


def _check_keys(builder, name, keys):
  if keys is None:
    return None
  if isinstance(keys, str) or not isinstance(keys, (tuple, list)):
    raise DataError(f'TFDS({name!r}): keys must be a tuple of feature names, e.g. '
                    f"('text', 'label'), got {keys!r}")
  features = list(builder.info.features.keys())
  missing = [k for k in keys if k not in features]
  if missing:
    raise DataError(f'TFDS dataset {name!r} has no feature {missing[0]!r}; its features: '
                    f'{", ".join(features)}')
  return tuple(keys)


def _choose(builder, name, train, use_alt_eval, eval_holdout_size, hosts):
  """`(split, start, end)`: the split to read and the range of its examples."""
  known = set(builder.info.splits.keys())
  train_split = 'en' if name == 'c4/multilingual' else 'train'
  if known and train_split not in known:
    raise DataError(f'TFDS dataset {name!r} has no {train_split} split (splits: {sorted(known)})')
  n = len(tfds_lib._open_source(builder, name, train_split))  # pylint: disable=protected-access
  holdout = int(n * eval_holdout_size)
  if train:
    start, end = _host_range(name, n - holdout, *hosts)
    return train_split, start, end
  if holdout > 0 and name not in ('glue/mnli', 'c4/multilingual'):
    return train_split, n - holdout, n
  return _eval_split(builder, name, known, use_alt_eval), 0, None


def TFDS(  # pylint: disable=invalid-name
    dataset_name, data_dir=None, tfds_preprocess_fn=None, keys=None, train=True, use_alt_eval=False,
    shuffle_train=True, host_id=None, n_hosts=None, eval_holdout_size=0, *, seed=0):
  """A source stream function of the examples of a TFDS dataset (see the module docstring).

  Args:
    dataset_name: a TFDS name, e.g. 'imdb_reviews', 'mnist', 'glue/mnli'.
    data_dir: TFDS data directory; default `$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`.
    tfds_preprocess_fn: a function `example dict -> example dict` applied
      before `keys` select (Trax's takes a `tf.data.Dataset`; there is none
      here).
    keys: feature names selected into each example tuple; None yields the
      example dicts.
    train: the training split (else the eval split).
    use_alt_eval: glue/mnli's mismatched validation split.
    shuffle_train: a seeded new order of the training examples each epoch.
    host_id, n_hosts: this host's share of the training examples; default
      `jax.process_index()` and `jax.process_count()`.
    eval_holdout_size: fraction of train held out as the eval split.
    seed: int >= 0, the training order's seed (a minitrax addition).

  Returns:
    `f(generator=None)`: an endless random-access iterator of examples.
  """
  seed = check_int(f'TFDS({dataset_name!r})', 'seed', seed, 0, error=DataError)
  if not 0 <= eval_holdout_size < 1:
    raise DataError(f'TFDS({dataset_name!r}): eval_holdout_size must be in [0, 1), got '
                    f'{eval_holdout_size!r}')
  hosts = (jax.process_index() if host_id is None else host_id, n_hosts or jax.process_count())
  data_dir = os.path.expanduser(data_dir) if data_dir else None
  builder = tfds_lib._open_builder(dataset_name, data_dir, True)  # pylint: disable=protected-access
  keys = _check_keys(builder, dataset_name, keys)
  split, start, end = _choose(builder, dataset_name, train, use_alt_eval, eval_holdout_size, hosts)
  source = tfds_lib._open_source(builder, dataset_name, split)  # pylint: disable=protected-access
  end = len(source) if end is None else end
  if end <= start:
    raise DataError(f'TFDS dataset {dataset_name!r}: split {split!r} has no examples')
  order = batching.EpochOrder(end - start, seed, batching.TRAIN, shuffle=train and shuffle_train)

  def example(position):
    epoch, offset = divmod(position, end - start)
    raw = source[start + int(order.permutation(epoch)[offset])]
    if tfds_preprocess_fn is not None:
      raw = tfds_preprocess_fn(raw)
    if keys is None:
      return {k: _plain(v) for k, v in raw.items()}
    return tuple(_plain(raw[k]) for k in keys)

  with tfds_lib._tf_guard(dataset_name, 'decode its examples'):  # pylint: disable=protected-access
    example(0)
  return lambda generator=None: Seekable(example)
