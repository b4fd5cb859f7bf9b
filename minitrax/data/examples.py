"""Per-example stream functions of Trax 1.4: each example in, one example out.

Each function here returns a stream function `generator -> generator` that
changes every example on its own, so over a random-access input (`Seekable`)
its output is random access too. Examples are tuples of arrays (or one array).

>>> add = AddLossWeights(id_to_mask=0)
>>> x, y, w = next(add(iter([(np.array([5, 6]), np.array([7, 0]))])))
>>> w.tolist()
[1.0, 0.0]
"""

import numbers

import numpy as np

from minitrax.data.seekable import Seekable, seekable_map
from minitrax.errors import DataError

__all__ = [
    'per_example', 'Dup', 'AddLossWeights', 'add_loss_weights', 'PadToLength', 'TruncateToLength',
    'ConvertToUnicode', 'to_unicode', 'at_keys'
]


def per_example(fn):
  """The stream function that applies `fn` to every example (random access kept)."""

  def stream(generator):
    if isinstance(generator, Seekable):
      return seekable_map(fn, generator)
    return map(fn, generator)

  return stream


def _as_tuple(example):
  return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def Dup():  # pylint: disable=invalid-name
  """Copies each example's first element: `(x, *rest) -> (x, x, *rest)` (an array x: `(x, x)`)."""

  def dup(example):
    x, *rest = _as_tuple(example)
    return (x, x, *rest)

  return per_example(dup)


def _loss_weights(example, id_to_mask):
  if not isinstance(example, (tuple, list)) or len(example) not in (2, 3):
    if id_to_mask is not None:
      size = len(example) if isinstance(example, (tuple, list)) else 'one array'
      raise DataError(f'AddLossWeights: id_to_mask={id_to_mask} needs examples (inputs, targets) '
                      f'or (inputs, targets, weights), got an example of {size}')
    return example
  targets = np.asarray(example[1])
  if len(example) == 2:
    weights = np.ones(targets.shape, np.float32)
  else:
    weights = np.asarray(example[2]).astype(np.float32)
  if id_to_mask is not None:
    weights = weights * (targets != id_to_mask).astype(np.float32)
  return (example[0], example[1], weights)


def AddLossWeights(id_to_mask=None):  # pylint: disable=invalid-name
  """Makes examples `(inputs, targets, weights)`, weights 0 where targets equal `id_to_mask`.

  An example `(inputs, targets)` gets float32 weights of ones shaped like its
  targets; one with weights keeps them (as float32). Examples of another size
  pass unchanged (only without `id_to_mask`).

  Args:
    id_to_mask: the target id (padding) whose positions get weight 0; None
      weights every position 1.
  """
  return per_example(lambda example: _loss_weights(example, id_to_mask))


def add_loss_weights(generator, id_to_mask=None):
  """`AddLossWeights(id_to_mask)` applied to `generator`.

  Args:
    generator: an iterable of `(inputs, targets)` or `(inputs, targets,
      weights)` examples.
    id_to_mask: the target id whose positions get weight 0; None for none.
  """
  return AddLossWeights(id_to_mask)(generator)


def _pad_values(pad_value, keys):
  if isinstance(pad_value, dict):
    missing = [k for k in keys if k not in pad_value]
    if missing:
      raise DataError(f'PadToLength: pad_value has no value for keys {missing} of len_map')
    return pad_value
  return {k: pad_value for k in keys}


def PadToLength(len_map=None, pad_value=0, multiple=False):  # pylint: disable=invalid-name
  """Pads the elements at `len_map`'s keys along axis 0 to its lengths.

  Args:
    len_map: `{element index: length}`; required.
    pad_value: `{element index: value}`, or one value for all (Trax 1.4 needs
      the dict; its default 0 fails there).
    multiple: pad to the next multiple of the length instead (Trax 1.4.1 pads
      by the remainder instead, not to a multiple).

  Returns:
    A stream function; an element longer than its length stays as it is.
  """
  if len_map is None:
    raise DataError('PadToLength: len_map must be given, e.g. {0: 256, 1: 256}')
  values = _pad_values(pad_value, list(len_map))

  def pad(example):
    out = list(_as_tuple(example))
    for key, length in len_map.items():
      x = np.asarray(out[key])
      target = -(-x.shape[0] // length) * length if multiple else max(length, x.shape[0])
      widths = [(0, target - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
      out[key] = np.pad(x, widths, mode='constant', constant_values=values[key])
    return tuple(out) if isinstance(example, (tuple, list)) else out[0]

  return per_example(pad)


def TruncateToLength(len_map=None):  # pylint: disable=invalid-name
  """Cuts the elements at `len_map`'s keys to at most the given shapes.

  Args:
    len_map: `{element index: shape}`, e.g. `{0: (256,), 1: (256,)}` (an int
      is the length of axis 0); None changes nothing.

  Returns:
    A stream function of tuples (an array example becomes a 1-tuple, as in Trax).
  """
  shapes = {
      k: (v,) if isinstance(v, numbers.Integral) else tuple(v) for k, v in (len_map or {}).items()
  }

  def truncate(example):
    out = list(_as_tuple(example))
    for key, shape in shapes.items():
      x = np.asarray(out[key])
      if x.shape > shape:  # Trax's test: the shapes compared as tuples.
        out[key] = x[tuple(slice(0, n) for n in shape)]
    return tuple(out)

  return per_example(truncate)


def to_unicode(s):
  """`s` (bytes, or a 0-d bytes array) as a str, undecodable bytes dropped; a str unchanged."""
  if isinstance(s, np.ndarray) and s.ndim == 0:
    s = s.item()
  if isinstance(s, str):
    return s
  if isinstance(s, (bytes, bytearray)):
    return bytes(s).decode('utf-8', errors='ignore')
  raise DataError(f'ConvertToUnicode: expected bytes or str, got {type(s).__name__}')


def at_keys(fn, keys):
  """`fn` applied to the elements at `keys` (all if None) of tuple, dict or single examples."""

  def apply(example):
    if isinstance(example, (tuple, list)):
      return tuple(fn(x) if keys is None or i in keys else x for i, x in enumerate(example))
    if isinstance(example, dict):
      return {k: fn(x) if keys is None or k in keys else x for k, x in example.items()}
    return fn(example)

  return apply


def ConvertToUnicode(keys=None):  # pylint: disable=invalid-name
  """Decodes the bytes elements at `keys` as UTF-8 str, dropping bad bytes.

  Args:
    keys: which elements of tuple (or keys of dict) examples to decode; None
      for all.
  """
  return per_example(at_keys(to_unicode, keys))
