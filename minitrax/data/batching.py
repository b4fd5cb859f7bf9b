"""The NumPy side of input streams: batch checks, epoch order, bucketing, padding.

Every built-in source in `minitrax.data` is *random access*: batch `i` is a
pure function of `(seed, i)`. Two pieces make that work:

* `EpochOrder` maps a position in the endless sequence of examples
  (epoch 0, then epoch 1, ...) to an example id, each epoch being a
  permutation seeded by `(seed, stream tag, epoch)`. Batch `i` of a fixed batch
  size `B` is positions `[i * B, (i + 1) * B)`, which may straddle two epochs.
* `BucketedOrder` does the same for length bucketing: it plans the batches
  of each window of an epoch's permutation from the lengths of that window's
  examples (computed when first needed), so batch `i` is found by counting
  the batches of earlier windows, not by replaying them.

Bucketing follows Trax 1.2 (`trax.supervised.inputs.batch_fn`): see
`trax_buckets`.
"""

import functools
import threading

import numpy as np

import jax

from minitrax.errors import DataError

__all__ = [
    'TRAIN',
    'EVAL',
    'TRAIN_EVAL',
    'STREAM_NAMES',
    'rng_for',
    'canonical_array',
    'check_batch',
    'EpochOrder',
    'trax_buckets',
    'bucket_batches',
    'BucketedOrder',
    'shuffled_positions',
    'pad_stack',
    'devices_batch_size',
    'part_rows',
    'take_part',
]

# Stream tags: part of every seed, so the three streams of one `Inputs` differ.
TRAIN, EVAL, TRAIN_EVAL = 0, 1, 2
STREAM_NAMES = {TRAIN: 'train', EVAL: 'eval', TRAIN_EVAL: 'train_eval'}
_ORDER = 0  # Purpose keys: one seed for the example order, ...
_BATCH = 1  # ... another for randomness inside batch i (synthetic data, augmentation).


def rng_for(seed, tag, index):
  """The NumPy Generator for randomness inside batch `index` of stream `tag`."""
  return np.random.default_rng(np.random.SeedSequence([seed, tag, _BATCH, int(index)]))


def canonical_array(x):
  """`x` as a NumPy array, 64-bit numbers narrowed to 32 bits as JAX does by default."""
  x = np.asarray(x)
  if not jax.config.jax_enable_x64:
    if x.dtype == np.int64:
      return x.astype(np.int32)
    if x.dtype == np.uint64:
      return x.astype(np.uint32)
    if x.dtype == np.float64:
      return x.astype(np.float32)
  return x


def check_batch(batch, n_devices, stream='train', index=0):
  """Validates one batch and returns it as a tuple of canonical NumPy arrays.

  Args:
    batch: `(inputs, targets)` or `(inputs, targets, weights)`; each an array
      whose first axis is the batch axis, `(B, ...)`.
    n_devices: the device count that `B` must divide by.
    stream: stream name for messages ('train', 'eval', 'train_eval').
    index: the batch's position in its stream, for messages.

  Returns:
    A tuple of 2 or 3 arrays, 64-bit dtypes narrowed to 32-bit.

  Raises:
    DataError: wrong structure, mismatched or missing batch axes, an empty
      batch, or a batch size that `n_devices` does not divide.
  """
  where = f'{stream} stream, batch {index}'
  if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
    got = f'a {type(batch).__name__}'
    if isinstance(batch, (tuple, list)):
      got += f' of length {len(batch)}'
    raise DataError(f'{where}: expected (inputs, targets) or (inputs, targets, weights), got {got}')
  arrays = tuple(canonical_array(x) for x in batch)
  names = ('inputs', 'targets', 'weights')
  for name, a in zip(names, arrays):
    if a.ndim == 0:
      raise DataError(f'{where}: {name} is a scalar; every array needs a leading batch axis')
  sizes = [a.shape[0] for a in arrays]
  if len(set(sizes)) > 1:
    got = ', '.join(f'{n} {a.shape}' for n, a in zip(names, arrays))
    raise DataError(f'{where}: the arrays disagree on the batch size: {got}')
  if sizes[0] == 0:
    raise DataError(f'{where} is empty: inputs have shape {arrays[0].shape}')
  if sizes[0] % n_devices:
    raise DataError(f'{where}: batch size {sizes[0]} does not divide by the number of devices '
                    f'{n_devices}; use a batch size that is a multiple of {n_devices}')
  return arrays


def devices_batch_size(batch_size, n_devices):
  """Trax's rule: the largest multiple of `n_devices` <= `batch_size`, at least `n_devices`."""
  return max(batch_size // n_devices, 1) * n_devices


def part_rows(n_rows, part):
  """The rows of part `(p, P)` of a batch of `n_rows`: `slice(p * n / P, (p + 1) * n / P)`.

  Part `p` is what process `p` of `P` holds of a global batch (its devices
  come `p`-th in the mesh). `n_rows` must divide by `P`.

  >>> part_rows(8, (1, 4))
  slice(2, 4, None)
  """
  p, count = part
  if n_rows % count:
    raise DataError(f'a batch of {n_rows} rows does not split into {count} equal parts '
                    f'(one per process); use a batch size that is a multiple of {count}')
  size = n_rows // count
  return slice(p * size, (p + 1) * size)


def take_part(batch, part):
  """Rows `part_rows(B, part)` of each array of `batch` (a tuple of arrays `(B, ...)`)."""
  rows = part_rows(len(batch[0]), part)
  return tuple(a[rows] for a in batch)


class EpochOrder:
  """Example ids along an endless sequence of epochs.

  Epoch `e` visits all `n_examples` ids once, in the order of a permutation
  seeded by `(seed, tag, e)`, or in order `0..n-1` if `shuffle` is False.

  Args:
    n_examples: examples per epoch, > 0.
    seed: int >= 0.
    tag: stream tag (`TRAIN`, `EVAL`, `TRAIN_EVAL`), so streams differ.
    shuffle: permute each epoch.
  """

  def __init__(self, n_examples, seed, tag, shuffle=True):
    if n_examples <= 0:
      raise DataError(f'{STREAM_NAMES.get(tag, tag)} stream: the dataset has no examples')
    self.n_examples = int(n_examples)
    self.seed, self.shuffle, self._tag = seed, shuffle, tag
    self.permutation = functools.lru_cache(maxsize=4)(self._permutation)

  def _permutation(self, epoch):
    if not self.shuffle:
      return np.arange(self.n_examples)
    ss = np.random.SeedSequence([self.seed, self._tag, _ORDER, int(epoch)])
    return np.random.default_rng(ss).permutation(self.n_examples)

  def take(self, start, count):
    """Example ids at positions `[start, start + count)`: int64 array `(count,)`."""
    positions = np.arange(start, start + count, dtype=np.int64)
    epochs, offsets = np.divmod(positions, self.n_examples)
    ids = np.empty(count, np.int64)
    for e in np.unique(epochs):
      mask = epochs == e
      ids[mask] = self.permutation(int(e))[offsets[mask]]
    return ids


def trax_buckets(bucket_length, batch_size, n_devices, training, max_eval_length=None):
  """Trax 1.2's heuristic bucket boundaries and batch sizes.

  Boundaries are `[L/4, L/2, L, 2L, 4L, 8L, 16L]` for `L = bucket_length`
  (for eval the last one is `max_eval_length`, default `32L`); an example of
  length `n` goes to the first bucket with `n <= boundary` and is padded to
  that boundary; longer examples go to a last, unbounded bucket. Batch sizes
  are `[4B, 2B, B, B/2, B/4, B/8, B/16, 1]` (for eval the one-but-last is
  `B // max_eval_length`), each made a multiple of `n_devices`.

  Args:
    bucket_length: int >= 1, the middle boundary `L`.
    batch_size: the middle batch size `B`.
    n_devices: device count; every batch size divides by it.
    training: train buckets or eval buckets.
    max_eval_length: the last eval boundary (default `32 * bucket_length`).

  Returns:
    `(boundaries, batch_sizes)`: lists of 7 and 8 ints.
  """
  if bucket_length < 1:
    raise DataError(f'bucket_length must be >= 1, got {bucket_length}')
  length, b = bucket_length, batch_size
  boundaries = [length // 4, length // 2, length, length * 2, length * 4, length * 8, length * 16]
  sizes = [b * 4, b * 2, b, b // 2, b // 4, b // 8, b // 16, 1]
  if not training:
    max_eval_length = max_eval_length or length * 32
    boundaries[-1] = max_eval_length
    sizes[-2] = b // max_eval_length
  return boundaries, [devices_batch_size(s, n_devices) for s in sizes]


def bucket_batches(buckets, batch_sizes):
  """Plans the full batches of one epoch of bucketed examples.

  Walks the epoch in order; a batch is emitted when its bucket has collected
  its batch size (as `tf.data`'s bucket_by_sequence_length does). Partial
  buckets left at the end of the epoch are dropped.

  Args:
    buckets: int array `(n,)`: the bucket of each position of the epoch.
    batch_sizes: batch size of each bucket.

  Returns:
    `(batch_buckets, members)`: int array `(n_batches,)` and a list of
    `n_batches` int arrays of positions, ordered by when each batch fills.
  """
  groups, ends, kinds = [], [], []
  for k, size in enumerate(batch_sizes):
    pos = np.flatnonzero(buckets == k)
    n_full = len(pos) // size
    if n_full:
      g = pos[:n_full * size].reshape(n_full, size)
      groups.extend(g)
      ends.append(g[:, -1])
      kinds.append(np.full(n_full, k))
  if not groups:
    return np.zeros(0, np.int64), []
  order = np.argsort(np.concatenate(ends), kind='stable')
  return np.concatenate(kinds)[order], [groups[j] for j in order]


WINDOW = 1 << 16  # examples per bucketing window (see BucketedOrder)
_M32 = np.uint64(0xffffffff)


def _mix32(v):
  """A 32-bit integer hash (xor-shift-multiply) of uint64 `v` < 2^32, elementwise."""
  v = v ^ (v >> np.uint64(16))
  v = (v * np.uint64(0x7feb352d)) & _M32
  v = v ^ (v >> np.uint64(15))
  v = (v * np.uint64(0x846ca68b)) & _M32
  return v ^ (v >> np.uint64(16))


def shuffled_positions(positions, n, key):
  """Entries `positions` of a pseudo-random permutation of `range(n)`, without making it.

  An 8-round Feistel network on the smallest even number of bits that holds
  `n`, keyed by `key` (ints for `np.random.SeedSequence`), with cycle walking
  back into `[0, n)`: O(1) per entry, so any window of a huge epoch costs
  only its own size. `n` must be below 2^32.
  """
  bits = max(2, int(n - 1).bit_length())
  half = np.uint64((bits + 1) // 2)
  mask = np.uint64((1 << int(half)) - 1)
  keys = np.random.SeedSequence(key).generate_state(8, np.uint32).astype(np.uint64)

  def rounds(x):
    left, right = x >> half, x & mask
    for k in keys:
      left, right = right, left ^ (_mix32(right ^ k) & mask)
    return (left << half) | right

  out = rounds(np.asarray(positions, np.uint64))
  outside = out >= np.uint64(n)
  while outside.any():
    out[outside] = rounds(out[outside])
    outside = out >= np.uint64(n)
  return out.astype(np.int64)


class BucketedOrder:
  """Random access to length-bucketed batches along an endless sequence of epochs.

  Each epoch's permutation is cut into windows of `window` examples (for a
  dataset larger than one window the permutation is `shuffled_positions`,
  computed a window at a time, so no step needs memory or time in the size
  of the dataset); the
  batches of a window are planned from the lengths of its examples alone
  (`bucket_batches`; partial buckets at a window's end are dropped). Lengths
  are computed only when a window is first planned and kept (as uint16,
  clipped at 65535: enough to compare with the boundaries), so the first
  batch needs the lengths of one window, not of the whole dataset, and
  batch `i` needs only the windows up to it. A dataset of at most `window`
  examples is one window per epoch.

  Args:
    lengths: int array `(n_examples,)` of the bucketing length of each
      example, or a function `ids -> lengths` (int array in, int array out).
    boundaries: increasing ints; bucket `k` holds lengths `<= boundaries[k]`
      (and `> boundaries[k-1]`); a last bucket holds longer examples.
    batch_sizes: `len(boundaries) + 1` batch sizes.
    seed, tag, shuffle: as for `EpochOrder`.
    n_examples: the number of examples; needed when `lengths` is a function.
    window: examples per planning window.
  """

  def __init__(self, lengths, boundaries, batch_sizes, seed, tag, shuffle=True, *, n_examples=None,
               window=WINDOW):
    if len(batch_sizes) != len(boundaries) + 1:
      raise DataError(f'buckets: need len(boundaries) + 1 batch sizes, got {len(boundaries)} '
                      f'boundaries and {len(batch_sizes)} batch sizes')
    if any(b <= 0 for b in batch_sizes):
      raise DataError(f'buckets: batch sizes must be > 0, got {list(batch_sizes)}')
    if callable(lengths):
      self._length_of, n = lengths, int(n_examples)
    else:
      table = np.asarray(lengths)
      self._length_of, n = (lambda ids: table[ids]), len(table)
    self._known = np.zeros(n, np.uint16)  # lengths + 1 (0: not computed yet), clipped
    self._order = EpochOrder(n, seed, tag, shuffle)
    self._window = int(window)
    self._boundaries = np.asarray(boundaries)
    self._batch_sizes = list(batch_sizes)
    self._tag = tag
    self._counts = []  # Batches in each (epoch, window) planned so far, in order.
    self._lock = threading.RLock()
    self._plan = functools.lru_cache(maxsize=4)(self._plan_window)

  @property
  def windows_per_epoch(self):
    return -(-self._order.n_examples // self._window)

  def lengths(self, ids):
    """Bucketing lengths of example `ids`, computed once each."""
    missing = ids[self._known[ids] == 0]
    if len(missing):
      found = np.asarray(self._length_of(missing), np.int64)
      self._known[missing] = np.clip(found, 0, 65534) + 1
    return self._known[ids].astype(np.int64) - 1

  def _window_ids(self, epoch, w):
    """Example ids of window `w` of `epoch`: a slice of its permutation (Feistel when large)."""
    n = self._order.n_examples
    if n <= self._window or not self._order.shuffle:
      return self._order.permutation(epoch)[w * self._window:(w + 1) * self._window]
    positions = np.arange(w * self._window, min((w + 1) * self._window, n))
    return shuffled_positions(positions, n, [self._order.seed, self._tag, _ORDER, int(epoch)])

  def _plan_window(self, epoch, w):
    perm = self._window_ids(epoch, w)
    buckets = np.searchsorted(self._boundaries, self.lengths(perm), side='left')
    kinds, members = bucket_batches(buckets, self._batch_sizes)
    return kinds, [perm[m] for m in members]

  def _locate(self, index):
    """(epoch, window, index within that window) of batch `index`."""
    with self._lock:
      first, k, per_epoch = 0, 0, self.windows_per_epoch
      while True:
        if k == len(self._counts):
          self._counts.append(len(self._plan(*divmod(k, per_epoch))[1]))
          if k + 1 == per_epoch and not any(self._counts):
            raise DataError(
                f'{STREAM_NAMES.get(self._tag, self._tag)} stream: no bucket fills a batch within '
                f'one epoch of {self._order.n_examples} examples (bucket boundaries '
                f'{self._boundaries.tolist()}, batch sizes {self._batch_sizes}); use a smaller '
                f'batch size, or pad to a fixed length')
        if index < first + self._counts[k]:
          return divmod(k, per_epoch) + (index - first,)
        first += self._counts[k]
        k += 1

  def batch(self, index):
    """`(example_ids, pad_length)` of batch `index`; `pad_length` None for the last bucket."""
    epoch, w, j = self._locate(index)
    with self._lock:
      kinds, members = self._plan(epoch, w)
    k = int(kinds[j])
    pad = int(self._boundaries[k]) if k < len(self._boundaries) else None
    return members[j], pad


def pad_stack(arrays, length=None, dtype=None):
  """Stacks arrays that differ along axis 0, zero-padding them to `length`.

  Args:
    arrays: sequence of arrays `(n_i, ...)` with equal trailing shapes.
    length: the padded length; default the largest `n_i`.
    dtype: result dtype; default that of the first array.

  Returns:
    Array `(len(arrays), length, ...)`.
  """
  length = max(len(a) for a in arrays) if length is None else length
  first = np.asarray(arrays[0])
  out = np.zeros((len(arrays), length) + first.shape[1:], dtype or first.dtype)
  for row, a in zip(out, arrays):
    if len(a) > length:
      raise DataError(f'pad_stack: an example of length {len(a)} does not fit length {length}')
    row[:len(a)] = a
  return out
