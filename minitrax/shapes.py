"""Shapes and dtypes of (trees of) arrays, without the arrays.

`ShapeDtype` describes one array; an *input signature* is one `ShapeDtype` or
a tuple of them (one per input of a layer). Layers learn their input sizes
from a signature at `init`, never from real data.
"""

import jax
import numpy as np

from minitrax.checks import check_shape
from minitrax.errors import ShapeError


class ShapeDtype:
  """The shape and dtype of one array.

  >>> ShapeDtype((1, 1), np.int32)
  ShapeDtype{shape:(1, 1), dtype:int32}

  Args:
    shape: tuple of non-negative ints.
    dtype: anything `np.dtype` accepts; default float32.
  """

  __slots__ = ('shape', 'dtype')

  def __init__(self, shape, dtype=np.float32):
    self.shape = check_shape('ShapeDtype', 'shape', shape, error=ShapeError, type_error=ShapeError)
    self.dtype = np.dtype(dtype)

  @property
  def ndim(self):
    return len(self.shape)

  @property
  def size(self):
    return int(np.prod(self.shape, dtype=np.int64))

  def replace(self, shape=None, dtype=None):
    """A copy with `shape` and/or `dtype` replaced."""
    return ShapeDtype(self.shape if shape is None else shape,
                      self.dtype if dtype is None else dtype)

  def as_struct(self):
    """This signature as a `jax.ShapeDtypeStruct` (for `jax.eval_shape`)."""
    return jax.ShapeDtypeStruct(self.shape, self.dtype)

  def __eq__(self, other):
    return (isinstance(other, ShapeDtype) and self.shape == other.shape and
            self.dtype == other.dtype)

  def __hash__(self):
    return hash((self.shape, self.dtype))

  def __repr__(self):
    return f'ShapeDtype{{shape:{self.shape}, dtype:{self.dtype}}}'


def signature(obj):
  """The `ShapeDtype` of an array, or a tuple/list of signatures for a tuple/list.

  Works on NumPy and JAX arrays, tracers, `jax.ShapeDtypeStruct` and anything
  with `.shape` and `.dtype`; Python scalars become rank-0 signatures; None
  stays None (as in `Embedding(...).init(None)`: a signature a layer ignores).

  Args:
    obj: An array-like, a scalar, a `ShapeDtype`, None, or a (nested)
      tuple/list of these; anything else raises `ShapeError`.
  """
  if isinstance(obj, ShapeDtype) or obj is None:  # None: an input a layer does not look at
    return obj
  if isinstance(obj, (list, tuple)):
    return type(obj)(signature(x) for x in obj)
  if hasattr(obj, 'shape') and hasattr(obj, 'dtype'):
    return ShapeDtype(obj.shape, obj.dtype)
  if isinstance(obj, (bool, int, float, complex, np.generic)):
    return ShapeDtype((), np.asarray(obj).dtype)
  raise ShapeError(f'signature: expected an array or a tuple of arrays, got {type(obj).__name__}')


def as_structs(sig):
  """Maps ShapeDtypes in a (nested tuple) signature to `jax.ShapeDtypeStruct`."""
  if isinstance(sig, (list, tuple)):
    return type(sig)(as_structs(s) for s in sig)
  return signature(sig).as_struct()


def splice_signatures(*sigs):
  """Concatenates signatures into one flat tuple (a bare ShapeDtype counts as one)."""
  out = []
  for s in sigs:
    out.extend(s if isinstance(s, (list, tuple)) else [s])
  return tuple(out)


def signature_to_data(sig):
  """A signature as plain data for checkpoints: `{'shape': [...], 'dtype': name}`, or a list."""
  if isinstance(sig, (list, tuple)):
    return [signature_to_data(s) for s in sig]
  sig = signature(sig)
  return {'shape': list(sig.shape), 'dtype': sig.dtype.name}


def signature_from_data(data, source='<data>'):
  """The inverse of `signature_to_data` (a list becomes a tuple); `ShapeError` naming `source`."""
  if isinstance(data, (list, tuple)):
    return tuple(signature_from_data(d, source) for d in data)
  try:
    return ShapeDtype(tuple(data['shape']), data['dtype'])
  except (KeyError, TypeError, ValueError) as e:
    raise ShapeError(f'{source}: malformed input signature {data!r:.80} ({e})') from e
