"""The minitrax checkpoint format: msgpack data, never pickle.

A checkpoint holds one tree of dicts (str or int keys), lists, tuples, None,
bools, ints, floats, strings, bytes and arrays. Loading never runs code: only
these types exist in the format, and arrays come back from raw bytes with a
dtype from an allow-list.

File layout (all integers little-endian)::

    magic          8 bytes   b'MTRXCKPT'
    header length  4 bytes   uint32
    header         msgpack   {'format_version': int, 'payload_size': int,
                              'sha256': hex str of the payload}
    payload        msgpack   the tree

In the payload an array is the msgpack extension type 1 holding msgpack
`[dtype name, shape, raw C-order bytes]`, and a tuple is a msgpack array whose
first element is the (empty) extension type 2, so tuples and lists survive a
round trip. Writes are atomic: a temporary file in the same folder is written,
flushed and fsync'ed, then renamed over the target, so a crash at any point
leaves the previous checkpoint readable.

>>> save('/tmp/ckpt', {'step': 3, 'weights': (np.ones((2, 2)), ())})
>>> load('/tmp/ckpt')['step']
3
"""

import errno
import glob
import hashlib
import os
import struct
import tempfile

import ml_dtypes
import msgpack
import numpy as np

from minitrax.errors import CheckpointError

MAGIC = b'MTRXCKPT'
FORMAT_VERSION = 1
MAX_DEPTH = 128
_ARRAY_EXT = 1
_TUPLE_EXT = 2
_HEADER_MAX = 4096
_TMP_SUFFIX = '.tmp'

_DTYPES = {
    name: np.dtype(t)
    for name, t in [('bool', np.bool_), ('int8', np.int8), ('int16', np.int16), (
        'int32', np.int32), ('int64', np.int64), ('uint8', np.uint8), (
            'uint16', np.uint16), ('uint32',
                                   np.uint32), ('uint64',
                                                np.uint64), ('float16',
                                                             np.float16), ('float32', np.float32),
                    ('float64',
                     np.float64), ('bfloat16',
                                   ml_dtypes.bfloat16), ('complex64',
                                                         np.complex64), ('complex128',
                                                                         np.complex128)]
}
ALLOWED_DTYPES = tuple(_DTYPES)


class _TupleMark:
  """Decoded form of the tuple marker (the first element of a tuple's array)."""


_TUPLE_MARK = _TupleMark()


def _path_str(path):
  return ''.join(f'[{p!r}]' for p in path) or '<root>'


# ------------------------------------------------------------------ encoding


def _encode(obj, path):
  """Turns a tree into msgpack-ready Python objects; arrays become ExtType."""
  if len(path) > MAX_DEPTH:
    raise CheckpointError(f'tree nests deeper than {MAX_DEPTH} at {_path_str(path)}')
  if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
    return obj
  if isinstance(obj, dict):
    out = {}
    for k, v in obj.items():
      if not isinstance(k, (str, int)) or isinstance(k, bool):
        raise CheckpointError(f'dict key {k!r} at {_path_str(path)} is a '
                              f'{type(k).__name__}; keys must be str or int')
      out[k] = _encode(v, path + (k,))
    return out
  if isinstance(obj, tuple):
    return [msgpack.ExtType(_TUPLE_EXT, b'')] + [_encode(v, path + (i,)) for i, v in enumerate(obj)]
  if isinstance(obj, list):
    return [_encode(v, path + (i,)) for i, v in enumerate(obj)]
  if hasattr(obj, 'shape') and hasattr(obj, 'dtype') or isinstance(obj, np.generic):
    return _encode_array(obj, path)
  raise CheckpointError(
      f'cannot save a {type(obj).__name__} at {_path_str(path)}: checkpoints hold '
      'dicts, lists, tuples, None, bool, int, float, str, bytes and arrays')


def _encode_array(obj, path):
  if 'key<' in str(getattr(obj, 'dtype', '')):
    raise CheckpointError(f'cannot save a typed PRNG key at {_path_str(path)}; '
                          'save jax.random.key_data(key) instead')
  arr = np.asarray(obj)
  name = arr.dtype.name
  if name not in _DTYPES:
    raise CheckpointError(f'cannot save an array of dtype {name} at {_path_str(path)}; '
                          f'allowed dtypes: {", ".join(ALLOWED_DTYPES)}')
  data = np.ascontiguousarray(arr).tobytes()
  packed = msgpack.packb([name, list(arr.shape), data], use_bin_type=True)
  return msgpack.ExtType(_ARRAY_EXT, packed)


def dumps(tree):
  """Serialises `tree` to bytes in the checkpoint format (header included)."""
  payload = msgpack.packb(_encode(tree, ()), use_bin_type=True)
  header = msgpack.packb({
      'format_version': FORMAT_VERSION, 'payload_size': len(payload),
      'sha256': hashlib.sha256(payload).hexdigest()
  })
  return MAGIC + struct.pack('<I', len(header)) + header + payload


# ------------------------------------------------------------------ decoding


def _ext_hook(code, data):
  if code == _TUPLE_EXT:
    return _TUPLE_MARK
  if code != _ARRAY_EXT:
    raise ValueError(f'unknown extension type {code}')
  fields = msgpack.unpackb(data, raw=False, max_bin_len=len(data), max_str_len=64, max_array_len=64,
                           max_map_len=0, max_ext_len=0)
  if not (isinstance(fields, list) and len(fields) == 3):
    raise ValueError('malformed array record')
  name, shape, raw = fields
  if name not in _DTYPES:
    raise ValueError(f'array dtype {name!r} is not allowed; allowed: {", ".join(ALLOWED_DTYPES)}')
  if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
    raise ValueError(f'malformed array shape {shape!r}')
  dtype = _DTYPES[name]
  if not isinstance(raw, bytes) or int(np.prod(shape, dtype=object)) * dtype.itemsize != len(raw):
    raise ValueError(f'array of shape {tuple(shape)} and dtype {name} does not match '
                     f'its {len(raw) if isinstance(raw, bytes) else "missing"} bytes of data')
  return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _decode(obj, depth):
  """Turns tuple-marked lists back into tuples, bounding the depth."""
  if depth > MAX_DEPTH:
    raise ValueError(f'tree nests deeper than {MAX_DEPTH}')
  if isinstance(obj, list):
    if obj and obj[0] is _TUPLE_MARK:
      return tuple(_decode(v, depth + 1) for v in obj[1:])
    return [_decode(v, depth + 1) for v in obj]
  if isinstance(obj, dict):
    return {k: _decode(v, depth + 1) for k, v in obj.items()}
  if obj is _TUPLE_MARK:
    raise ValueError('tuple marker outside the first position of a list')
  return obj


def _read_header(data, source):
  """Checks magic and header; returns (header dict, payload offset)."""
  if len(data) == 0:
    raise CheckpointError(f'{source}: the file is empty; it is not a minitrax checkpoint')
  if data[:2] == b'\x80\x04' or data[:1] == b'\x80' or data[:8] != MAGIC:
    what = 'a Python pickle' if data[:1] == b'\x80' else 'not a minitrax checkpoint'
    raise CheckpointError(f'{source}: the file is {what} (it does not start with '
                          f'{MAGIC!r}); minitrax never unpickles files')
  if len(data) < 12:
    raise CheckpointError(f'{source}: the file is truncated (header missing)')
  (size,) = struct.unpack('<I', data[8:12])
  if size > _HEADER_MAX or 12 + size > len(data):
    raise CheckpointError(f'{source}: the file is truncated or corrupted (header of '
                          f'{size} bytes, file of {len(data)} bytes)')
  try:
    header = msgpack.unpackb(data[12:12 + size], max_bin_len=0, max_str_len=256, max_array_len=16,
                             max_map_len=16)
    version = header['format_version']
    header['payload_size'], header['sha256']  # pylint: disable=pointless-statement
  except Exception as e:
    raise CheckpointError(f'{source}: the checkpoint header is corrupted ({e})') from e
  if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
    raise CheckpointError(f'{source}: written in checkpoint format version {version}; this '
                          f'minitrax reads versions 1 to {FORMAT_VERSION}. Upgrade minitrax.')
  return header, 12 + size


def loads(data, source='<bytes>'):
  """Reads a tree from checkpoint bytes; `source` names the file in errors."""
  header, offset = _read_header(data, source)
  payload = data[offset:]
  if len(payload) != header['payload_size']:
    raise CheckpointError(f'{source}: the file is truncated or has trailing data (payload of '
                          f'{len(payload)} bytes, header says {header["payload_size"]})')
  if hashlib.sha256(payload).hexdigest() != header['sha256']:
    raise CheckpointError(f'{source}: the checkpoint is corrupted (payload checksum mismatch)')
  try:
    raw = msgpack.unpackb(payload, raw=False, ext_hook=_ext_hook, strict_map_key=False,
                          max_bin_len=len(payload), max_str_len=len(payload),
                          max_array_len=len(payload), max_map_len=len(payload),
                          max_ext_len=len(payload))
    return _decode(raw, 0)
  except Exception as e:  # a valid checksum over a hostile payload lands here
    raise CheckpointError(f'{source}: the checkpoint payload is malformed ({e})') from e


# ------------------------------------------------------------------ files


def _temporary_prefix(path):
  """The name prefix of `save`'s temporary files for `path`: '.<name>.'."""
  return '.' + os.path.basename(path) + '.'


def save(path, tree):
  """Writes `tree` to `path` atomically (temporary file, fsync, rename).

  Raises:
    CheckpointError: the tree holds a type the format has not, or the file
      cannot be written (disk full, no permission, ...): the message names
      the file and the reason, the temporary file is removed and a previous
      file at `path` is left as it was.
  """
  data = dumps(tree)
  path = os.fspath(path)
  try:
    _write_atomically(path, data)
  except OSError as e:
    raise CheckpointError(f'{path}: cannot write checkpoint ({_reason(e)}); the previous '
                          'checkpoint there, if any, is unchanged') from e


def _reason(error):
  """`'<strerror> [<errno name>]'` of an OSError, e.g. 'No space left on device [ENOSPC]'."""
  name = errno.errorcode.get(error.errno)
  text = error.strerror or str(error)
  return f'{text} [{name}]' if name else text


def _write_atomically(path, data):
  """Writes `data` to a temporary file beside `path`, fsyncs it, renames it over `path`."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temporary_prefix(path), suffix=_TMP_SUFFIX)
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  _fsync_dir(folder)


def remove_temporaries(folder, pattern='*'):
  """Removes the temporary files that `save` calls killed mid-write left in `folder`.

  Only names `save` makes (`.<name>.<random>.tmp`, `<name>` matching the glob
  `pattern`) are touched; a file that vanishes meanwhile is skipped.
  """
  for path in glob.glob(os.path.join(folder, _temporary_prefix(pattern) + '*' + _TMP_SUFFIX)):
    try:
      os.remove(path)
    except OSError:
      pass


def _fsync_dir(folder):
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def load(path):
  """Reads the tree saved in `path`; raises CheckpointError naming the file."""
  path = os.fspath(path)
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise CheckpointError(f'{path}: cannot read checkpoint ({e.strerror})') from e
  return loads(data, source=path)


# ------------------------------------------------------------------ checking


def _describe(x):
  if hasattr(x, 'shape') and hasattr(x, 'dtype'):
    return f'{tuple(x.shape)} {np.dtype(x.dtype).name}'
  return type(x).__name__ if x is not None else 'None'


def tree_mismatches(saved, expected, path=()):
  """Lists every difference in structure, shape or dtype between two trees.

  Returns:
    A list of strings `'<path>: saved <what>, expected <what>'`; empty when
    the trees have the same structure and every array the same shape and
    dtype (values may differ).
  """
  here = _path_str(path)
  if isinstance(expected, dict) and isinstance(saved, dict):
    out = []
    for k in sorted(set(expected) | set(saved), key=str):
      if k not in saved:
        out.append(f'{_path_str(path + (k,))}: missing in saved, expected {_describe(expected[k])}')
      elif k not in expected:
        out.append(f'{_path_str(path + (k,))}: saved {_describe(saved[k])}, not expected')
      else:
        out.extend(tree_mismatches(saved[k], expected[k], path + (k,)))
    return out
  if isinstance(expected, (list, tuple)) and isinstance(saved, (list, tuple)):
    if len(expected) != len(saved) or type(expected) is not type(saved):
      return [
          f'{here}: saved {type(saved).__name__} of {len(saved)} items, expected '
          f'{type(expected).__name__} of {len(expected)} items'
      ]
    out = []
    for i, (s, e) in enumerate(zip(saved, expected)):
      out.extend(tree_mismatches(s, e, path + (i,)))
    return out
  is_arr = lambda x: hasattr(x, 'shape') and hasattr(x, 'dtype')
  if is_arr(expected) and is_arr(saved):
    same = (tuple(saved.shape) == tuple(expected.shape) and
            np.dtype(saved.dtype) == np.dtype(expected.dtype))
    return [] if same else [f'{here}: saved {_describe(saved)}, expected {_describe(expected)}']
  if is_arr(expected) or is_arr(saved) or type(expected) is not type(saved):
    if not (isinstance(expected, (int, float)) and isinstance(saved, (int, float))):
      return [f'{here}: saved {_describe(saved)}, expected {_describe(expected)}']
  return []


def check_compatible(saved, expected, source, what='weights'):
  """Raises CheckpointError listing every mismatched path, or returns None."""
  problems = tree_mismatches(saved, expected)
  if problems:
    lines = '\n  '.join(problems)
    raise CheckpointError(f'{source}: the saved {what} do not fit the model; '
                          f'{len(problems)} mismatched path(s):\n  {lines}')


# ------------------------------------------------------------------ Trax's own checkpoints


def import_trax(path):
  """`(weights, state)` of a real Trax checkpoint, read without running its pickle.

  A Trax 1.2 `model.pkl` gives Trax's nested trees, a Trax 1.4 `model.pkl.gz`
  (with `model.weights.npy.gz` beside it) flat lists; see
  `minitrax.trax_import.import_trax`, which this calls.
  """
  from minitrax import trax_import  # pylint: disable=import-outside-toplevel
  return trax_import.import_trax(path)
