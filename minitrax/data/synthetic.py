"""Synthetic tasks (T2T's algorithmic problems), seeded and random access.

Each task returns an `Inputs` whose batch `i` is drawn from a NumPy Generator
seeded by `(seed, stream, i)`, so streams are deterministic and resume
exactly. Look tasks up by name with `synthetic_inputs('copy', ...)`.

The copy task is the Trax codelab's: `x = 0 w 0 w` with `w` random ids in
`[1, vocab_size - 1)` of length `length // 2 - 1`; targets equal inputs (a
language model shifts right itself); loss weights are 0 on the first
`len(w)` positions and 1 on the remaining `len(w) + 2`:

>>> x, y, w = copy_inputs(batch_size=1, vocab_size=32, length=10).train_stream(1).__next__()
>>> x.shape, x.dtype, w.tolist()
((1, 10), dtype('int32'), [[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
"""

import types

import numpy as np

from minitrax.checks import check_int
from minitrax.data import batching
from minitrax.data.inputs import Inputs, Stream
from minitrax.errors import DataError

__all__ = [
    'copy_inputs',
    'reverse_inputs',
    'addition_inputs',
    'random_inputs',
    'synthetic_inputs',
    'SYNTHETIC_TASKS',
]


def _streams(make_batch, seed, name, eval_make_batch=None):
  """Inputs with train and eval Streams of `make_batch(rng) -> batch`."""
  seed = check_int(name, 'seed', seed, 0, error=DataError)
  eval_make_batch = eval_make_batch or make_batch

  def stream(tag, make):
    return Stream(lambda i, _: make(batching.rng_for(seed, tag, i)),
                  f'{name}/{batching.STREAM_NAMES[tag]}')

  return Inputs(stream(batching.TRAIN, make_batch), stream(batching.EVAL, eval_make_batch))


def _copy_batch(rng, batch_size, vocab_size, length, reverse):
  """One copy (or reverse) batch: ids `(B, length)` int32 twice, weights `(B, length)` float32."""
  w_length = length // 2 - 1
  w = rng.integers(1, vocab_size - 1, size=(batch_size, w_length), dtype=np.int32)
  zero = np.zeros((batch_size, 1), np.int32)
  x = np.concatenate([zero, w, zero, w[:, ::-1] if reverse else w], axis=1)
  weights = np.concatenate([
      np.zeros((batch_size, w_length), np.float32),
      np.ones((batch_size, w_length + 2), np.float32)
  ], axis=1)
  return x, x, weights


def _copy_task(batch_size, vocab_size, length, seed, reverse, name):
  batch_size = check_int(name, 'batch_size', batch_size, error=DataError)
  vocab_size = check_int(name, 'vocab_size', vocab_size, 3, error=DataError)
  length = check_int(name, 'length', length, 4, error=DataError)
  if length % 2:
    raise DataError(f'{name}: length must be even (0 w 0 w), got {length}')
  return _streams(lambda rng: _copy_batch(rng, batch_size, vocab_size, length, reverse), seed, name)


def copy_inputs(batch_size=16, vocab_size=32, length=10, seed=0):
  """The codelab's copy task: `0 w 0 w`, weights on the second `0 w` and the last id of the first.

  Args:
    batch_size: examples per batch `B`.
    vocab_size: ids are drawn from `[1, vocab_size - 1)`; 0 separates.
    length: even sequence length `L >= 4`; `w` has length `L // 2 - 1`.
    seed: int >= 0.

  Returns:
    `Inputs` of `(ids (B, L) int32, ids (B, L) int32, weights (B, L) float32)`.
  """
  return _copy_task(batch_size, vocab_size, length, seed, False, 'copy_inputs')


def reverse_inputs(batch_size=16, vocab_size=32, length=10, seed=0):
  """As `copy_inputs`, but the second copy is reversed: `0 w 0 reverse(w)`.

  Args:
    batch_size: examples per batch `B`.
    vocab_size: ids are drawn from `[1, vocab_size - 1)`; 0 separates.
    length: even sequence length `L >= 4`; `w` has length `L // 2 - 1`.
    seed: int >= 0.
  """
  return _copy_task(batch_size, vocab_size, length, seed, True, 'reverse_inputs')


def _digits(rng, n_digits, base):
  """A random number of `n_digits` digits, lowest first; no leading zero unless 1 digit."""
  if n_digits == 1:
    return [int(rng.integers(base))]
  return [int(d) for d in rng.integers(base, size=n_digits - 1)] + [int(rng.integers(1, base))]


def _to_digits(number, base):
  out = [number % base]
  while number >= base:
    number //= base
    out.append(number % base)
  return out


def _addition_example(rng, base, max_length, min_length):
  """`(ids, weights)` lists of `<S> x + y <S> (x + y)`, digits lowest first, shifted by 1."""
  add_length = (min_length - 1) // 2
  n1 = int(rng.integers((max_length - add_length + 1) // 2)) + add_length
  n2 = int(rng.integers(max_length - n1 - 1)) + 1
  x, y = _digits(rng, n1, base), _digits(rng, n2, base)
  total = sum(d * base**i for i, d in enumerate(x)) + sum(d * base**i for i, d in enumerate(y))
  question, answer = x + [base] + y, _to_digits(total, base)
  ids = [base + 2] + [d + 1 for d in question] + [base + 2] + [d + 1 for d in answer]
  return ids, [0.0] * (len(question) + 2) + [1.0] * len(answer)


def _addition_batch(rng, batch_size, base, max_length, min_length, pad_to_multiple):
  examples = [_addition_example(rng, base, max_length, min_length) for _ in range(batch_size)]
  longest = max(len(ids) for ids, _ in examples)
  length = -(-longest // pad_to_multiple) * pad_to_multiple
  x = np.zeros((batch_size, length), np.int32)
  weights = np.zeros((batch_size, length), np.float32)
  for row, (ids, w) in enumerate(examples):
    x[row, :len(ids)] = ids
    weights[row, :len(w)] = w
  return x, x, weights


def addition_inputs(vocab_size=13, batch_size=16, train_length=16, eval_min_length=3,
                    eval_max_length=16, pad_to_multiple=32, seed=0):
  """Trax's addition task: `<S> x + y <S> (x + y)` in base `vocab_size - 3`.

  Digits are written lowest first and shifted by 1 (0 pads); `+` is
  `base + 1` and `<S>` is `base + 2`. Loss weights are 1 on the answer only.
  Train examples have `x` and `y` of total length up to `train_length`; eval
  examples between `eval_min_length` and `eval_max_length`.

  Args:
    vocab_size: int >= 5; the digits' base is `vocab_size - 3`.
    batch_size: examples per batch `B`.
    train_length: longest total length of `x` and `y` in training, >= 3.
    eval_min_length, eval_max_length: the range of that length in eval.
    pad_to_multiple: each batch's length `L` is padded to a multiple of this.
    seed: int >= 0.

  Returns:
    `Inputs` of `(ids (B, L) int32, ids (B, L) int32, weights (B, L) float32)`.
  """
  name = 'addition_inputs'
  base = check_int(name, 'vocab_size', vocab_size, 5, error=DataError) - 3
  batch_size = check_int(name, 'batch_size', batch_size, error=DataError)
  train_length = check_int(name, 'train_length', train_length, 3, error=DataError)
  eval_max_length = check_int(name, 'eval_max_length', eval_max_length, 3, error=DataError)
  eval_min_length = check_int(name, 'eval_min_length', eval_min_length, 1, error=DataError)
  if eval_min_length > eval_max_length:
    raise DataError(f'{name}: eval_min_length {eval_min_length} > '
                    f'eval_max_length {eval_max_length}')
  pad = check_int(name, 'pad_to_multiple', pad_to_multiple, error=DataError)
  return _streams(
      lambda rng: _addition_batch(rng, batch_size, base, train_length, 3, pad), seed, name,
      lambda rng: _addition_batch(rng, batch_size, base, eval_max_length, eval_min_length, pad))


def _random_array(rng, shape, dtype, value_range):
  low, high = value_range
  if np.issubdtype(np.dtype(dtype), np.floating):
    return rng.uniform(low, high, size=shape).astype(dtype)
  return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)


def random_inputs(input_shape=(128, 28, 28, 1), input_dtype=np.float32, input_range=(0.0, 1.0),
                  output_shape=(128,), output_dtype=np.int32, output_range=(0, 9), seed=0):
  """Random batches for debugging and benchmarks (by default MNIST-shaped, 128 a batch).

  Integers are uniform in `[low, high]` (both included, as Trax); floats in
  `[low, high)`.

  Args:
    input_shape: shape of the inputs, batch axis first.
    input_dtype, input_range: dtype and `(low, high)` of the inputs.
    output_shape: shape of the targets, batch axis first.
    output_dtype, output_range: dtype and `(low, high)` of the targets.
    seed: int >= 0.

  Returns:
    `Inputs` of `(inputs input_shape, targets output_shape)`.
  """
  input_shape, output_shape = tuple(input_shape), tuple(output_shape)
  if not input_shape or not output_shape or input_shape[0] != output_shape[0]:
    raise DataError(f'random_inputs: input_shape {input_shape} and output_shape {output_shape} '
                    'must both start with the same batch size')
  return _streams(
      lambda rng: (_random_array(rng, input_shape, input_dtype, input_range),
                   _random_array(rng, output_shape, output_dtype, output_range)), seed,
      'random_inputs')


SYNTHETIC_TASKS = types.MappingProxyType({
    'copy': copy_inputs,
    'reverse': reverse_inputs,
    'addition': addition_inputs,
    'random': random_inputs,
})


def synthetic_inputs(name, **kwargs):
  """The synthetic task `name` built with `kwargs`.

  Args:
    name: a key of `SYNTHETIC_TASKS`: 'copy', 'reverse', 'addition', 'random'.
    **kwargs: the task function's keyword arguments.

  >>> synthetic_inputs('copy', batch_size=4, length=6).input_shape
  (6,)
  """
  if name not in SYNTHETIC_TASKS:
    raise DataError(f'unknown synthetic task {name!r}; known: {", ".join(sorted(SYNTHETIC_TASKS))}')
  return SYNTHETIC_TASKS[name](**kwargs)
