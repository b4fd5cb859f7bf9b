"""Inputs from arrays in memory: `(x, y)` or `(x, y, weights)`, seeded shuffling.

Batch `i` holds the examples at positions `[i * B, (i + 1) * B)` of an endless
sequence of epochs, each epoch a permutation seeded by `(seed, stream,
epoch)`; a batch may straddle two epochs, and no example is dropped.

>>> import numpy as np
>>> x, y = np.arange(10.0).reshape(10, 1), np.arange(10)
>>> data = array_inputs((x, y), batch_size=4, seed=1)
>>> data.input_shape, data.target_dtype
((1,), dtype('int32'))
"""

import numpy as np  # noqa: F401  (the docstring example uses np)

from minitrax.checks import check_int
from minitrax.data import batching
from minitrax.data.inputs import Inputs, Stream
from minitrax.errors import DataError

__all__ = ['array_inputs', 'array_stream', 'arrays_to_inputs', 'holdout_split']


def _check_arrays(arrays, where):
  """`arrays` as a tuple of 2 or 3 canonical arrays with one, non-zero length."""
  if not isinstance(arrays, (tuple, list)) or len(arrays) not in (2, 3):
    raise DataError(f'{where}: expected a tuple (x, y) or (x, y, weights) of arrays, '
                    f'got {type(arrays).__name__}')
  arrays = tuple(batching.canonical_array(a) for a in arrays)
  lengths = [a.shape[0] if a.ndim else None for a in arrays]
  if None in lengths or len(set(lengths)) > 1:
    raise DataError(f'{where}: the arrays need one common first axis; got shapes '
                    f'{[a.shape for a in arrays]}')
  if lengths[0] == 0:
    raise DataError(f'{where}: the arrays are empty (shapes {[a.shape for a in arrays]})')
  return arrays


def holdout_split(arrays, holdout_size, where='holdout_split'):
  """Splits arrays into the first `1 - holdout_size` and the last `holdout_size` of examples.

  Args:
    arrays: tuple of arrays with a common first axis `N`.
    holdout_size: fraction in `[0, 1)`; `int(N * holdout_size)` examples are held out.

  Returns:
    `(train_arrays, eval_arrays)`; eval is None when nothing is held out.
  """
  if not 0 <= holdout_size < 1:
    raise DataError(f'{where}: eval_holdout_size must be in [0, 1), got {holdout_size}')
  n_eval = int(len(arrays[0]) * holdout_size)
  if n_eval == 0:
    return arrays, None
  n_train = len(arrays[0]) - n_eval
  return tuple(a[:n_train] for a in arrays), tuple(a[n_train:] for a in arrays)


def array_stream(arrays, batch_size, seed=0, tag=batching.TRAIN, shuffle=True, transform=None,
                 name='arrays', rowwise=False):
  """A `Stream` of batches of `batch_size` examples drawn from `arrays`.

  Args:
    arrays: tuple of 2 or 3 arrays `(N, ...)`.
    batch_size: examples per batch `B`.
    seed: int >= 0.
    tag: stream tag (`batching.TRAIN`, `EVAL`, `TRAIN_EVAL`).
    shuffle: permute each epoch.
    transform: optional `(batch, rng) -> batch`, with `rng` a Generator
      seeded by `(seed, tag, i)` (for scaling or augmentation).
    name: for messages.
    rowwise: whether `transform` treats each row alone and draws no random
      numbers (e.g. scaling); then a process of a multi-process run
      transforms only its part of each batch, else the whole batch.

  Returns:
    A `Stream` of tuples of arrays `(B, ...)`; it reads a process's part of a
    batch alone (`reads_parts`) unless a transform needs the whole batch.
  """
  order = batching.EpochOrder(len(arrays[0]), seed, tag, shuffle)

  def batch_fn(index, n_devices, part=None):
    del n_devices  # The batch size is given; Inputs checks that it divides.
    ids = order.take(index * batch_size, batch_size)
    if part is not None:
      ids = ids[batching.part_rows(batch_size, part)]
    batch = tuple(a[ids] for a in arrays)
    return transform(batch, batching.rng_for(seed, tag, index)) if transform else batch

  return Stream(batch_fn, f'{name}/{batching.STREAM_NAMES.get(tag, tag)}',
                reads_parts=transform is None or rowwise)


def arrays_to_inputs(train, eval_data, batch_size, eval_batch_size, shuffle, seed, name,
                     transform=None, train_transform=None, rowwise=False):
  """`Inputs` with train, eval and train-eval streams over two sets of arrays.

  `rowwise` says that `transform` and `train_transform` treat rows alone
  (see `array_stream`).
  """

  def stream(arrays, size, tag, fn):
    return array_stream(arrays, size, seed, tag, shuffle, fn, name, rowwise)

  return Inputs(stream(train, batch_size, batching.TRAIN, train_transform or transform),
                stream(eval_data, eval_batch_size, batching.EVAL, transform),
                stream(train, eval_batch_size, batching.TRAIN_EVAL, transform))


def array_inputs(train, eval_data=None, batch_size=32, eval_batch_size=None, eval_holdout_size=0.0,
                 shuffle=True, seed=0):
  """`Inputs` from NumPy arrays.

  Args:
    train: `(x, y)` or `(x, y, weights)`, arrays with a common first axis.
    eval_data: the same for evaluation; default: the last `eval_holdout_size`
      of `train` if that is > 0, else `train` itself.
    batch_size: training batch size `B`.
    eval_batch_size: batch size of the eval and train-eval streams; default `B`.
    eval_holdout_size: fraction of `train` held out for eval when
      `eval_data` is None.
    shuffle: permute each epoch (seeded).
    seed: int >= 0.

  Returns:
    `Inputs` whose streams are random access (exact resume).
  """
  name = 'array_inputs'
  seed = check_int(name, 'seed', seed, 0, error=DataError)
  batch_size = check_int(name, 'batch_size', batch_size, error=DataError)
  eval_batch_size = check_int(name, 'eval_batch_size', eval_batch_size or batch_size,
                              error=DataError)
  train = _check_arrays(train, f'{name}: train')
  if eval_data is None:
    train, eval_data = holdout_split(train, eval_holdout_size, name)
    eval_data = eval_data or train
  else:
    eval_data = _check_arrays(eval_data, f'{name}: eval_data')
  return arrays_to_inputs(train, eval_data, batch_size, eval_batch_size, shuffle, seed, name)
