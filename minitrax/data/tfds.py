"""TFDS datasets by name, read without TensorFlow through random-access data sources.

`tfds_inputs('mnist')` (Trax's `inputs`) opens a TFDS dataset (`minitrax.data.tfds_sources`): TFDS's
prepared `array_record` copy, whose examples `tfds` decodes with NumPy (and
PIL for images); for the seed's datasets (mnist, fashion_mnist, kmnist,
emnist, cifar10, cifar100, imdb_reviews, lm1b) otherwise their original
distribution files (`minitrax.data.local_datasets`); and returns an `Inputs`
whose batch `i` is a pure function of `(seed, i)`: exact resume.

Splits are TFDS split strings (`train_split='test[:80%]'`,
`eval_split='test[80%:]'`: `minitrax.data.splits`); by default, as in Trax,
train and, for eval, `validation`, else `test`, else (with
`eval_holdout_size`) the end of `train`; inputs and targets default to the
dataset's supervised keys; the training batch size is
`batch_size_per_device * n_devices`; variable-length data is bucketed by
length with Trax's boundaries and batch sizes (`batching.trax_buckets`).

Preprocessing: uint8 images become float32 in `[0, 1]`; `augment_images=True`
applies Trax's CIFAR-10 augmentation to training batches; text becomes byte
ids (`minitrax.data.text`), truncated to `max_length`; a text dataset whose
input and target are the same feature (`lm1b`) gives language-model batches
`(ids, ids, weights)` with weights 0 on padding.

Bucketing plans each window of 65,536 examples of an epoch from the lengths
of that window's examples (`batching.BucketedOrder`), computed when the
window is first needed: the first batch of a bucketed stream reads one
window, whatever the size of the dataset (lm1b's 30M sentences included).

TensorFlow is never imported here, and `tensorflow_datasets` only inside the
functions. Preparing other datasets (image encoding) or reading TFRecord files
needs TensorFlow; that, and a dataset that cannot be downloaded, end in one
`DataError` that says what to do.
"""

import threading
import types

import numpy as np

from minitrax.checks import check_int
from minitrax.data import batching
from minitrax.data import text as text_lib
from minitrax.data import tfds_sources
from minitrax.data.inputs import Inputs, Stream
from minitrax.data.tfds_sources import TF_EXTRA
from minitrax.errors import DataError

__all__ = ['tfds_inputs', 'inputs', 'crop_and_flip', 'TF_EXTRA']

# The openers `minitrax.data.tfds_stream` uses, under their former names.
_open_builder = tfds_sources.open_dataset
_open_source = tfds_sources.open_split
_tf_guard = tfds_sources.tf_guard


def _choose_splits(builder, name, eval_holdout_size, train_split=None, eval_split=None):
  """`(train_split, eval_split)` split strings: as given, else as Trax chooses them."""
  if eval_holdout_size:
    if train_split or eval_split:
      raise DataError(f'TFDS dataset {name!r}: pass eval_holdout_size or train_split/eval_split, '
                      'not both (e.g. train_split=\'train[:90%]\', eval_split=\'train[90%:]\')')
    percent = int(eval_holdout_size * 100)
    if not 0 < percent < 100:
      raise DataError(f'TFDS dataset {name!r}: eval_holdout_size must be in [0.01, 1), '
                      f'got {eval_holdout_size}')
    return f'train[:{100 - percent}%]', f'train[{100 - percent}%:]'
  known = set(builder.info.splits.keys())
  if not known:  # Split names unknown (tfds.testing.mock_data): train and test, as most datasets.
    return train_split or 'train', eval_split or 'test'
  if not train_split and 'train' not in known:
    raise DataError(f'TFDS dataset {name!r} has no train split (splits: {sorted(known)}); pass '
                    'train_split')
  if eval_split:
    return train_split or 'train', eval_split
  for split in ('validation', 'test'):
    if split in known:
      return train_split or 'train', split
  raise DataError(f'TFDS dataset {name!r} has no validation or test split (splits: '
                  f'{sorted(known)}); pass eval_split, or eval_holdout_size to hold out part of '
                  'train')


class _Feature:
  """One selected feature: its name, kind ('image', 'text', 'tensor') and whether axis 0 varies."""

  def __init__(self, name, kind, variable):
    self.name, self.kind, self.variable = name, kind, variable


def _feature(features, key, name):
  import tensorflow_datasets as tfds_lib  # pylint: disable=g-import-not-at-top
  if key not in features:
    raise DataError(f'TFDS dataset {name!r} has no feature {key!r}; its features: '
                    f'{", ".join(features.keys())}')
  f = features[key]
  shape = tuple(getattr(f, 'shape', ()))
  if isinstance(f, tfds_lib.features.Image):
    if None in shape:
      raise DataError(f'TFDS dataset {name!r}: feature {key!r} holds images of varying size '
                      f'{shape}; only fixed-size images are supported')
    return _Feature(key, 'image', False)
  if isinstance(f, tfds_lib.features.Text):
    return _Feature(key, 'text', True)
  if isinstance(f, tfds_lib.features.Tensor) and None not in shape[1:]:
    return _Feature(key, 'tensor', bool(shape) and shape[0] is None)
  raise DataError(f'TFDS dataset {name!r}: feature {key!r} is a {type(f).__name__} of shape '
                  f'{shape}; supported are Image, Text, ClassLabel and Tensor features whose '
                  'only varying axis is the first')


def _select(info, name, input_name, target_name):
  """`(input_feature, target_feature)`, defaulting to the supervised keys."""
  keys = info.supervised_keys
  if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
    input_name, target_name = input_name or keys[0], target_name or keys[1]
  if input_name is None and target_name is None and len(info.features.keys()) == 1:
    input_name = target_name = list(info.features.keys())[0]
  if input_name is None or target_name is None:
    raise DataError(f'TFDS dataset {name!r} has no supervised keys; pass input_name and '
                    f'target_name (features: {", ".join(info.features.keys())})')
  return _feature(info.features, input_name, name), _feature(info.features, target_name, name)


class _Split:
  """Random access to converted examples of one split: tuples of arrays, one per feature."""

  def __init__(self, source, features, max_length):
    self.source, self.features, self.max_length = source, features, max_length
    self.n_examples = len(source)

  def example(self, index):
    raw = self.source[int(index)]
    out = []
    for f in self.features:
      value = text_lib.encode_bytes(raw[f.name]) if f.kind == 'text' else (batching.canonical_array(
          raw[f.name]))
      out.append(value[:self.max_length] if f.variable and self.max_length else value)
    return tuple(out)

  def length_of(self, length_fn):
    """A function `ids -> lengths`: `length_fn` of those examples (decoded when asked)."""
    return lambda ids: np.array([length_fn(self.example(int(i))) for i in ids], np.int64)


def crop_and_flip(images, rng, pad=4, part=None):
  """Trax's CIFAR-10 augmentation: zero-pad by `pad`, random crop back, random left-right flip.

  Args:
    images: `(B, H, W, C)`.
    rng: NumPy Generator.
    pad: padding on each side (4: 32x32 -> 40x40 -> a random 32x32 crop).
    part: `(p, P)` if `images` are part `p` of a batch of `B * P` (one
      process's rows): the random draws are made for the whole batch, so
      each row is augmented as it is in the whole batch.

  Returns:
    Augmented images, same shape and dtype.
  """
  b, h, w = images.shape[:3]
  n = b * (part[1] if part else 1)
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
  flip = rng.random(n) < 0.5
  if part:
    rows = batching.part_rows(n, part)
    dy, dx, flip = dy[rows], dx[rows], flip[rows]
  out = np.empty_like(images)
  for i in range(b):
    crop = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    out[i] = crop[:, ::-1] if flip[i] else crop
  return out


def _length_fn(features, include_inputs):
  """Bucketing length of an example: its targets', else its inputs' (Trax's rule)."""
  if len(features) == 1:
    return lambda ex: len(ex[0])
  inp, tgt = features
  if tgt.variable and not (include_inputs and inp.variable):
    return lambda ex: len(ex[1])
  if tgt.variable:
    return lambda ex: max(len(ex[0]), len(ex[1]))
  return lambda ex: len(ex[0])


def _collate(examples, features, pad_length):
  columns = list(zip(*examples))
  return tuple(
      batching.pad_stack(col, max(pad_length or 0, max(
          len(a)
          for a in col))) if f.variable else np.stack(col)
      for col, f in zip(columns, features))


def _image_batch(images, cfg, augment_rng, part):
  """Images augmented with `augment_rng` (if `cfg.augment_images` and not False), then scaled."""
  if augment_rng and cfg.augment_images:
    images = crop_and_flip(images, augment_rng, part=part)
  if cfg.scale_images and images.dtype == np.uint8:
    images = images.astype(np.float32) * np.float32(1 / 255)
  return images


def _stream(split, tag, training, cfg):
  """A `Stream` over `split` for stream `tag` (train batch sizes and buckets if `training`)."""

  def batch_size(n_devices):
    size = (cfg.batch_size or
            cfg.batch_size_per_device * n_devices) if training else (cfg.eval_batch_size)
    return batching.devices_batch_size(size, n_devices)

  bucketed = any(f.variable for f in split.features) and not cfg.pad_to_length
  orders, lock = {}, threading.Lock()

  def order_for(n_devices):
    with lock:
      if n_devices not in orders:
        if bucketed:
          boundaries, sizes = cfg.buckets or batching.trax_buckets(
              cfg.bucket_length, batch_size(n_devices), n_devices, training, cfg.max_eval_length)
          lengths = split.length_of(_length_fn(split.features,
                                               cfg.buckets_include_inputs_in_length))
          orders[n_devices] = batching.BucketedOrder(lengths, boundaries, sizes, cfg.seed, tag,
                                                     cfg.shuffle, n_examples=split.n_examples)
        else:
          orders[n_devices] = batching.EpochOrder(split.n_examples, cfg.seed, tag, cfg.shuffle)
      return orders[n_devices]

  def batch_fn(index, n_devices, part=None):
    order = order_for(n_devices)
    if bucketed:
      ids, pad = order.batch(index)
      if part is not None and pad is None:  # the last bucket: the whole batch's longest
        pad = int(order.lengths(ids).max())
    else:
      size = batch_size(n_devices)
      ids, pad = order.take(index * size, size), cfg.pad_to_length
    if part is not None:
      ids = ids[batching.part_rows(len(ids), part)]
    batch = _collate([split.example(i) for i in ids], split.features, pad)
    x = batch[0]
    if split.features[0].kind == 'image':
      x = _image_batch(x, cfg, training and batching.rng_for(cfg.seed, tag, index), part)
    if len(split.features) == 1:
      return x, x, text_lib.lm_weights(x)
    return (x,) + batch[1:]

  # A process reads its rows alone when the padded length is the same for every part: fixed,
  # or set by the bucket (whose length covers every variable feature).
  uncovered = (len(split.features) == 2 and all(f.variable for f in split.features) and
               not cfg.buckets_include_inputs_in_length)
  return Stream(batch_fn, f'{cfg.name}/{batching.STREAM_NAMES[tag]}',
                reads_parts=not (bucketed and uncovered))


def _open_splits(dataset_name, data_dir, download, names, split_args, max_length):
  """`(train, eval)` `_Split`s of the dataset, its features selected by `names`."""
  dataset = tfds_sources.open_dataset(dataset_name, data_dir, download)
  train_split, eval_split = _choose_splits(dataset, dataset_name, *split_args)
  inp, tgt = _select(dataset.info, dataset_name, *names)
  features = [inp] if inp.name == tgt.name and inp.variable else [inp, tgt]
  tfds_sources.require_splits(dataset, [train_split, eval_split])
  open_split = lambda split: _Split(tfds_sources.open_split(dataset, dataset_name, split), features,
                                    max_length)
  train, evals = open_split(train_split), open_split(eval_split)
  for split, data in ((train_split, train), (eval_split, evals)):
    if data.n_examples == 0:
      raise DataError(f'TFDS dataset {dataset_name!r}: split {split!r} has no examples')
  with tfds_sources.tf_guard(dataset_name, 'decode its examples'):
    train.example(0)
  return train, evals


def tfds_inputs(dataset_name, data_dir=None, input_name=None, target_name=None, *,
                batch_size_per_device=32, batch_size=None, eval_batch_size=32,
                eval_holdout_size=0.0, shuffle=True, seed=0, scale_images=True,
                augment_images=False, max_length=None, pad_to_length=None, bucket_length=32,
                buckets=None, buckets_include_inputs_in_length=False, max_eval_length=None,
                download=True, train_split=None, eval_split=None):
  """`Inputs` for the TFDS dataset `dataset_name` (Trax's `inputs`, offline and exact).

  The seed's datasets (mnist, fashion_mnist, kmnist, emnist/CONFIG, cifar10,
  cifar100, imdb_reviews, lm1b) need no TensorFlow: unless TFDS's prepared
  array_record copy is in `data_dir`, they are read from their original
  files (found in `data_dir`, its `downloads/` or `downloads/manual/`, or
  downloaded through TFDS's download manager), with TFDS's splits, features
  and example order. Offline, a `DataError` lists the missing files, their
  SHA-256 checksums and the folder to put them in.

  Args:
    dataset_name: a TFDS name, e.g. 'mnist', 'cifar10', 'imdb_reviews', 'lm1b'
      ('name/config:version' works too).
    data_dir: TFDS data directory; default `$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`.
    input_name, target_name: features to use; default the supervised keys
      (the only feature for both, if there is just one).
    batch_size_per_device: training batch size per device (Trax's default 32).
    batch_size: global training batch size; overrides the above.
    eval_batch_size: eval and train-eval batch size.
      (Batch sizes become multiples of `n_devices`, as in Trax.)
    eval_holdout_size: if > 0, eval on this fraction of train (whole percents).
    shuffle: permute each epoch (seeded).
    seed: int >= 0, the shuffling seed.
    scale_images: uint8 images as float32 in `[0, 1]`.
    augment_images: Trax's CIFAR-10 augmentation on training batches.
    max_length: truncate variable-length features (text ids) to this length.
    pad_to_length: pad (and truncate) variable-length features to this fixed
      length instead of bucketing.
    bucket_length, buckets, buckets_include_inputs_in_length, max_eval_length:
      length bucketing as Trax's `batch_fn`; `buckets` is an explicit
      `(boundaries, batch_sizes)` pair.
    download: try to download (and prepare) a dataset missing from `data_dir`.
    train_split, eval_split: TFDS split strings to train and evaluate on,
      e.g. 'train', 'test[:80%]', 'test[80%:]', 'train[:1000]',
      'train[10%:20%]', 'train+test' (TFDS's slicing and rounding); default
      as Trax chooses (train; validation, else test). Not with
      `eval_holdout_size`.

  Returns:
    `Inputs` of `(inputs, targets)`, or `(ids, ids, weights)` for a text
    dataset whose input and target are the same feature.

  Raises:
    DataError: unknown dataset, feature or split; files missing and not
      downloadable (the message says which, and where to put them);
      TensorFlow needed (the message gives `pip install -e '.[tfds]'`).

  >>> data = tfds_inputs('mnist', data_dir='../shared/data/mnist',  # doctest: +SKIP
  ...               train_split='test[:80%]', eval_split='test[80%:]')
  """
  count = lambda value, what: check_int(None, what, value, error=DataError)
  optional = lambda value, what: None if value is None else count(value, what)
  if buckets is not None and (len(buckets) != 2 or len(buckets[1]) != len(buckets[0]) + 1):
    raise DataError(f'inputs({dataset_name!r}): buckets must be (boundaries, batch_sizes) with one '
                    f'more batch size than boundaries, got {buckets!r}')
  who = f'inputs({dataset_name!r})'
  cfg = types.SimpleNamespace(  # The arguments that shape batches.
      name=dataset_name, seed=check_int(who, 'seed', seed, 0, error=DataError),
      batch_size_per_device=count(batch_size_per_device, 'batch_size_per_device'),
      batch_size=optional(batch_size,
                          'batch_size'), eval_batch_size=count(eval_batch_size, 'eval_batch_size'),
      shuffle=shuffle, scale_images=scale_images, augment_images=augment_images,
      pad_to_length=optional(pad_to_length,
                             'pad_to_length'), bucket_length=count(bucket_length, 'bucket_length'),
      buckets=buckets, max_eval_length=optional(max_eval_length, 'max_eval_length'),
      buckets_include_inputs_in_length=buckets_include_inputs_in_length)
  max_length = cfg.pad_to_length or optional(max_length, 'max_length')
  train, evals = _open_splits(dataset_name, data_dir, download, (input_name, target_name),
                              (eval_holdout_size, train_split, eval_split), max_length)
  return Inputs(_stream(train, batching.TRAIN, True, cfg), _stream(evals, batching.EVAL, False,
                                                                   cfg),
                _stream(train, batching.TRAIN_EVAL, False, cfg))


inputs = tfds_inputs  # Trax's name (`trax.data.inputs`, the gin configurable `inputs`)
