"""The restricted unpickler behind `minitrax.trax_import`: pickled data in, no code run.

Unpickling runs whatever callables a file names. Here each global a file
names is looked up in an allow-list of *inert stand-ins* written in this
module (nothing from Trax, JAX or NumPy's pickle helpers is imported or
called), and any other global is refused with a `CheckpointError` naming its
module and name, before anything of the file is run.

The stand-ins, one per global that real Trax files hold:

==========================================  =====================================
global in the file                          read as
==========================================  =====================================
numpy.core.multiarray._reconstruct,         a NumPy array rebuilt from its raw
numpy.ndarray, numpy.core.numeric.          bytes (numeric dtypes only)
_frombuffer (also ``numpy._core``)
numpy.dtype                                 a numeric NumPy dtype
numpy.core.multiarray.scalar                a NumPy scalar from its raw bytes
jax._src.array._reconstruct_array           a NumPy array (a pickled `jax.Array`)
trax.history.History                        `TraxHistory` (its `values` dict)
trax.shapes.ShapeDtype                      `TraxShapeDtype` (shape, dtype)
collections.defaultdict                     a plain dict
_codecs.encode (latin-1 only), bytes()      bytes (protocol-2 pickles of arrays)
builtins.list / dict / tuple / set          the builtin (a defaultdict factory)
==========================================  =====================================

Arrays are rebuilt from their raw bytes with a numeric dtype (bool, ints,
floats, complex); object and structured dtypes are refused.
"""

import io
import pickle

import numpy as np

from minitrax.errors import CheckpointError

_NUMERIC_KINDS = 'biufc'

# ------------------------------------------------------------------ inert stand-ins


class _NdarrayType:
  """Stands for `numpy.ndarray` where a pickle names it: only `_reconstruct` accepts it."""

  __slots__ = ()

  def __repr__(self):
    return 'numpy.ndarray'


_NDARRAY = _NdarrayType()


def _numeric_dtype(spec):
  """`np.dtype(spec)` if it is a plain numeric dtype; else ValueError."""
  dtype = spec.dtype if isinstance(spec, _DtypeSpec) else np.dtype(spec)
  if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
    raise ValueError(f'array dtype {dtype!r} is not numeric')
  return dtype


class _DtypeSpec:
  """`numpy.dtype(name, align, copy)` of a pickle, numeric only; its state sets the byte order."""

  def __init__(self, name, align=False, copy=True):
    del align, copy
    if not isinstance(name, str):
      raise ValueError(f'dtype name must be a str, got {type(name).__name__}')
    self.dtype = _numeric_dtype(name)

  def __setstate__(self, state):
    if not isinstance(state, tuple) or len(state) < 2 or state[1] not in '<>|=':
      raise ValueError(f'malformed dtype state {state!r}')
    if state[1] in '<>':
      self.dtype = self.dtype.newbyteorder(state[1])


class _PendingArray:
  """An array being unpickled: `_reconstruct` makes it, its state (raw bytes) fills it."""

  def __init__(self):
    self.value = None

  def __setstate__(self, state):
    if not isinstance(state, tuple) or len(state) != 5:
      raise ValueError('malformed array state')
    _, shape, dtype, fortran, raw = state
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
      raise ValueError(f'malformed array shape {shape!r}')
    dtype = _numeric_dtype(dtype)
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != dtype.itemsize * _size(shape):
      raise ValueError(f'array of shape {shape} and dtype {dtype} does not match its data')
    flat = np.frombuffer(bytes(raw), dtype=dtype)
    self.value = flat.reshape(shape, order='F' if fortran else 'C').copy()


def _size(shape):
  n = 1
  for d in shape:
    n *= d
  return n


def _reconstruct(subtype, shape, typecode):
  """Stand-in of `numpy.core.multiarray._reconstruct`: an empty array to be filled."""
  del shape, typecode
  if subtype is not _NDARRAY:
    raise ValueError(f'arrays of type {subtype!r} are not read')
  return _PendingArray()


def _frombuffer(buffer, dtype, shape, order):
  """Stand-in of `numpy.core.numeric._frombuffer` (protocol-5 pickles of arrays)."""
  dtype = _numeric_dtype(dtype)
  if not isinstance(buffer, (bytes, bytearray)) or order not in ('C', 'F'):
    raise ValueError('malformed protocol-5 array')
  if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
    raise ValueError(f'malformed array shape {shape!r}')
  if len(buffer) != dtype.itemsize * _size(shape):
    raise ValueError(f'array of shape {shape} and dtype {dtype} does not match its data')
  return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order).copy()


def _scalar(dtype, raw):
  """Stand-in of `numpy.core.multiarray.scalar`: one NumPy scalar from its bytes."""
  dtype = _numeric_dtype(dtype)
  if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
    raise ValueError(f'scalar of dtype {dtype} does not match its data')
  return np.frombuffer(raw, dtype=dtype)[0]


def _reconstruct_array(fun, args, arr_state, aval_state):
  """Stand-in of `jax._src.array._reconstruct_array`: a pickled `jax.Array`, as NumPy."""
  del aval_state
  if fun is not _reconstruct:
    raise ValueError('a jax.Array must be rebuilt by numpy.core.multiarray._reconstruct')
  pending = _reconstruct(*args)
  pending.__setstate__(arr_state)
  return pending.value


def _encode(text, encoding='utf-8'):
  """Stand-in of `_codecs.encode`: protocol-2 pickles store bytes as latin-1 text."""
  if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
    raise ValueError(f'only latin-1 text is read as bytes, got {type(text).__name__} in '
                     f'{encoding!r}')
  return text.encode('latin-1')


def _empty_bytes(*args):
  """Stand-in of `bytes`, as protocol-2 pickles call it: `bytes()` only."""
  if args:
    raise ValueError('only bytes() (empty) is read')
  return b''


def _defaultdict(default_factory=None, *unused):
  """Stand-in of `collections.defaultdict`: a plain dict (the factory is dropped)."""
  del default_factory, unused
  return {}


def _object_state(state, who):
  """The attribute dict of an object's pickled state (plain, or `(dict, slots)`)."""
  if isinstance(state, tuple) and len(state) == 2:
    merged = dict(state[0] or {})
    merged.update(state[1] or {})
    state = merged
  if not isinstance(state, dict):
    raise ValueError(f'malformed {who} state')
  return state


class TraxHistory:
  """A Trax 1.2 `trax.history.History`, read as data.

  Attributes:
    values: `{mode: {metric: [(step, value), ...]}}`, e.g.
      `values['eval']['metrics/accuracy']`.
  """

  values = None  # a pickle makes the object with `__new__`, then sets its state

  def __setstate__(self, state):
    self.values = _object_state(state, 'History').get('_values', {})

  def to_dict(self):
    """`{'_values': values}`, the dict Trax 1.4 writes in its checkpoints."""
    return {'_values': self.values}


class TraxShapeDtype:
  """A Trax `trax.shapes.ShapeDtype`, read as data: `shape` (tuple) and `dtype` (NumPy)."""

  shape, dtype = None, None  # a pickle makes the object with `__new__`, then sets its state

  def __setstate__(self, state):
    state = _object_state(state, 'ShapeDtype')
    self.shape, self.dtype = tuple(state.get('shape', ())), state.get('dtype')

  def __repr__(self):
    return f'ShapeDtype{{shape:{self.shape}, dtype:{self.dtype}}}'


STAND_INS = {
    ('numpy.core.multiarray', '_reconstruct'): _reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _reconstruct,
    ('numpy.core.numeric', '_frombuffer'): _frombuffer,
    ('numpy._core.numeric', '_frombuffer'): _frombuffer,
    ('numpy.core.multiarray', 'scalar'): _scalar,
    ('numpy._core.multiarray', 'scalar'): _scalar,
    ('numpy', 'ndarray'): _NDARRAY,
    ('numpy', 'dtype'): _DtypeSpec,
    ('jax._src.array', '_reconstruct_array'): _reconstruct_array,
    ('trax.history', 'History'): TraxHistory,
    ('trax.shapes', 'ShapeDtype'): TraxShapeDtype,
    ('collections', 'defaultdict'): _defaultdict,
    ('_codecs', 'encode'): _encode,
    ('builtins', 'bytes'): _empty_bytes,
    ('builtins', 'list'): list,
    ('builtins', 'dict'): dict,
    ('builtins', 'tuple'): tuple,
    ('builtins', 'set'): set,
}
"""The allow-list: (module, name) of a global in a pickle -> what it is read as."""

# ------------------------------------------------------------------ unpickling


class RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that knows only `STAND_INS`; `source` names the file in errors."""

  def __init__(self, file, source):
    super().__init__(file)
    self._source = source

  def find_class(self, module, name):
    if module == '__builtin__':  # protocol 2 names Python 2's module
      module = 'builtins'
    try:
      return STAND_INS[module, name]
    except KeyError:
      raise CheckpointError(
          f'{self._source}: refused to load the global {module}.{name} named in the pickle; '
          f'only NumPy arrays, JAX arrays, Trax ShapeDtype and History, and builtin '
          f'containers are read (minitrax never runs code from a checkpoint)') from None

  def persistent_load(self, pid):
    raise CheckpointError(f'{self._source}: refused a persistent id in the pickle')


def _resolve(obj, depth=0):
  """`obj` with every unpickled array placeholder and dtype replaced by NumPy objects."""
  if depth > 256:
    raise ValueError('the pickled data nests deeper than 256')
  if isinstance(obj, _PendingArray):
    if obj.value is None:
      raise ValueError('an array without data')
    return obj.value
  if isinstance(obj, _DtypeSpec):
    return obj.dtype
  if isinstance(obj, dict):
    return {k: _resolve(v, depth + 1) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve(v, depth + 1) for v in obj)
  if isinstance(obj, TraxHistory):
    obj.values = _resolve(obj.values, depth + 1)
  elif isinstance(obj, TraxShapeDtype):
    obj.dtype = _resolve(obj.dtype, depth + 1)
  return obj


def loads(data, source='<bytes>'):
  """Unpickles `data` with the allow-list; raises CheckpointError naming `source`."""
  try:
    return _resolve(RestrictedUnpickler(io.BytesIO(data), source).load())
  except CheckpointError:
    raise
  except Exception as e:  # a malformed or hostile pickle: never more than an error
    raise CheckpointError(f'{source}: cannot read the pickled Trax checkpoint '
                          f'({type(e).__name__}: {e})') from e


__all__ = ['loads', 'RestrictedUnpickler', 'STAND_INS', 'TraxHistory', 'TraxShapeDtype']
