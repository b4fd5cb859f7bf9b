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
leaves the previous checkpoint readable. A checkpoint of a run of several
processes may keep the arrays sharded over them in shard files beside it
(`minitrax.shard_files`), which `load` reads to give whole arrays.

Reading is strict and bounded, for files from anyone (`minitrax.msgpack_reader`):
exactly the types above, with dict keys str or int (not bool), each once, and
the extension types 1 (array) and 2 (tuple mark) only; the header holds exactly
`format_version` (an int, not a bool), `payload_size` and `sha256`. Anything
else is a `CheckpointError` naming the file, the tree path and the byte. While
decoding, the nesting (at most `MAX_DEPTH` levels), the number of elements and
containers and the memory of the objects built are counted before each object
is made. Bound: loading a file of `n` bytes takes at most `n` bytes (the file,
read once) + 64 MiB + `2 * n` bytes (the decoded tree, arrays included) of
memory, and time linear in `n`; a valid checkpoint (mostly array data) takes
about `2 * n`.

>>> save('/tmp/ckpt', {'step': 3, 'weights': (np.ones((2, 2)), ())})
>>> load('/tmp/ckpt')['step']
3
"""

import difflib
import errno
import glob
import hashlib
import os
import struct
import tempfile

import ml_dtypes
import msgpack
import numpy as np

from minitrax import msgpack_reader
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

_HEADER_FIELDS = ('format_version', 'payload_size', 'sha256')


def _read_header(data, source):
  """Checks magic and header; returns (header dict, payload offset)."""
  if len(data) == 0:
    raise CheckpointError(f'{source}: the file is empty; it is not a minitrax checkpoint')
  if data[:8] != MAGIC:
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
    header = msgpack_reader.read_tree(data[12:12 + size], {}, max_depth=1, max_elements=16,
                                      max_containers=1, max_bytes=2**16)
  except msgpack_reader.FormatError as e:
    raise CheckpointError(f'{source}: the checkpoint header is corrupted ({e})') from e
  if not isinstance(header, dict) or 'format_version' not in header:
    found = list(header) if isinstance(header, dict) else type(header).__name__
    raise CheckpointError(f'{source}: the checkpoint header is corrupted (expected a dict of '
                          f'{", ".join(_HEADER_FIELDS)}, found {found})')
  _check_version(header['format_version'], source)
  _check_header_fields(header, source)
  return header, 12 + size


def _check_version(version, source):
  if isinstance(version, bool) or not isinstance(version, int):
    raise CheckpointError(f'{source}: the checkpoint header field "format_version" must be an '
                          f'int, got {type(version).__name__} {version!r:.40}')
  if version > FORMAT_VERSION or version < 1:
    raise CheckpointError(f'{source}: written in checkpoint format version {version}; this '
                          f'minitrax reads versions 1 to {FORMAT_VERSION}. Upgrade minitrax.')


def _check_header_fields(header, source):
  """The header holds exactly `_HEADER_FIELDS`: a payload size int >= 0 and a SHA-256 hex."""
  if set(header) != set(_HEADER_FIELDS):
    raise CheckpointError(f'{source}: the checkpoint header is corrupted (expected the fields '
                          f'{", ".join(_HEADER_FIELDS)}, found {", ".join(map(str, header))})')
  size, digest = header['payload_size'], header['sha256']
  if isinstance(size, bool) or not isinstance(size, int) or size < 0:
    raise CheckpointError(f'{source}: the checkpoint header field "payload_size" must be an '
                          f'int >= 0, got {type(size).__name__} {size!r:.40}')
  if not (isinstance(digest, str) and len(digest) == 64 and
          all(c in '0123456789abcdef' for c in digest)):
    raise CheckpointError(f'{source}: the checkpoint header field "sha256" must be 64 lowercase '
                          f'hex digits, got {type(digest).__name__} {digest!r:.80}')


def loads(data, source='<bytes>'):
  """Reads a tree from checkpoint bytes; `source` names the file in errors.

  `data` is any buffer (bytes, bytearray, memoryview); it is only read. Peak
  memory: `data` itself plus at most `msgpack_reader.BASE_BYTES` (64 MiB) +
  `msgpack_reader.BYTES_PER_BYTE` (2) * payload bytes (see the module docstring).
  """
  data = memoryview(data).cast('B')
  header, offset = _read_header(data, source)
  payload = data[offset:]
  if len(payload) != header['payload_size']:
    raise CheckpointError(f'{source}: the file is truncated or has trailing data (payload of '
                          f'{len(payload)} bytes, header says {header["payload_size"]})')
  if hashlib.sha256(payload).hexdigest() != header['sha256']:
    raise CheckpointError(f'{source}: the checkpoint is corrupted (payload checksum mismatch)')
  try:
    return msgpack_reader.read_tree(payload, _DTYPES, max_depth=MAX_DEPTH)
  except msgpack_reader.FormatError as e:  # a valid checksum over a hostile payload lands here
    raise CheckpointError(f'{source}: the checkpoint payload is malformed at {e.where()} '
                          f'(byte {offset + e.pos}): {e.what}') from e


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
  `pattern`) are touched; a file that vanishes meanwhile is skipped. The
  shard folders of killed saves of several processes go too
  (`shard_files.remove_strays`).
  """
  for path in glob.glob(os.path.join(folder, _temporary_prefix(pattern) + '*' + _TMP_SUFFIX)):
    try:
      os.remove(path)
    except OSError:
      pass
  from minitrax import shard_files  # pylint: disable=import-outside-toplevel
  shard_files.remove_strays(folder, pattern)


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


def load(path, shards=True):
  """Reads the tree saved in `path`; raises CheckpointError naming the file.

  A checkpoint of a run of several processes may keep sharded arrays in
  shard files beside it (`minitrax.shard_files`); with `shards` they are
  read and the tree holds whole arrays, as if saved in one process.
  """
  path = os.fspath(path)
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise CheckpointError(f'{path}: cannot read checkpoint ({e.strerror})') from e
  tree = loads(data, source=path)
  if shards and isinstance(tree, dict) and 'shard_folder' in tree:
    from minitrax import shard_files  # pylint: disable=import-outside-toplevel
    return shard_files.resolve(tree, path)
  return tree


# ------------------------------------------------------------------ checking


def _describe(x):
  if hasattr(x, 'shape') and hasattr(x, 'dtype'):
    return f'{tuple(x.shape)} {np.dtype(x.dtype).name}'
  if isinstance(x, (list, tuple)):
    return f'{type(x).__name__} of {len(x)} items'
  return type(x).__name__ if x is not None else 'None'


def _is_array(x):
  return hasattr(x, 'shape') and hasattr(x, 'dtype')


def _signature(x):
  """A hashable summary of `x`'s structure, shapes and dtypes (equal iff no mismatch inside)."""
  if _is_array(x):
    return ('array', tuple(x.shape), np.dtype(x.dtype).name)
  if isinstance(x, (list, tuple)):
    return (type(x).__name__,) + tuple(_signature(v) for v in x)
  if isinstance(x, dict):
    return ('dict',) + tuple(
        sorted(((str(k), _signature(v)) for k, v in x.items()), key=lambda item: item[0]))
  return 'number' if isinstance(x, (int, float)) and not isinstance(x, bool) else type(x).__name__


def tree_mismatches(saved, expected, path=(), root=None):
  """Lists every difference in structure, shape or dtype between two trees.

  Args:
    saved, expected: the trees.
    path: the path of these trees in the whole one (for recursion).
    root: the name of the whole tree in the paths (`'weights'` gives
      `weights[1][0]`); None writes `[1][0]`, and `<root>` for the top.

  Returns:
    A list of strings `'<path>: saved <what>, expected <what>'`; empty when
    the trees have the same structure and every array the same shape and
    dtype (values may differ). Where a list or tuple has another length than
    expected, its items are aligned by structure and each missing item
    (`[j]`, numbered as expected) or surplus item (`[i]`, numbered as saved)
    is listed too, and aligned items are compared path by path.
  """
  here = _where(root, path)
  if isinstance(expected, dict) and isinstance(saved, dict):
    out = []
    for k in sorted(set(expected) | set(saved), key=str):
      if k not in saved:
        out.append(f'{_where(root, path + (k,))}: missing in saved, expected '
                   f'{_describe(expected[k])}')
      elif k not in expected:
        out.append(f'{_where(root, path + (k,))}: saved {_describe(saved[k])}, not expected')
      else:
        out.extend(tree_mismatches(saved[k], expected[k], path + (k,), root))
    return out
  if isinstance(expected, (list, tuple)) and isinstance(saved, (list, tuple)):
    return _sequence_mismatches(saved, expected, path, root)
  if _is_array(expected) and _is_array(saved):
    same = (tuple(saved.shape) == tuple(expected.shape) and
            np.dtype(saved.dtype) == np.dtype(expected.dtype))
    return [] if same else [f'{here}: saved {_describe(saved)}, expected {_describe(expected)}']
  if _signature(saved) != _signature(expected):
    return [f'{here}: saved {_describe(saved)}, expected {_describe(expected)}']
  return []


def _where(root, path):
  """`path` in the tree named `root`: `weights[1][0]`, `[1][0]`, or `<root>` for the top."""
  return (root or '') + ''.join(f'[{p!r}]' for p in path) or '<root>'


def _sequence_mismatches(saved, expected, path, root):
  """`tree_mismatches` of two lists or tuples: item by item, aligned if their lengths differ."""
  here, out = _where(root, path), []
  if len(expected) != len(saved) or type(expected) is not type(saved):
    out.append(f'{here}: saved {_describe(saved)}, expected {_describe(expected)}')
  if len(expected) == len(saved):
    blocks = [('replace', 0, len(saved), 0, len(expected))]
  else:
    matcher = difflib.SequenceMatcher(None, [_signature(x) for x in saved],
                                      [_signature(x) for x in expected], autojunk=False)
    blocks = [b for b in matcher.get_opcodes() if b[0] != 'equal']
  for _, i1, i2, j1, j2 in blocks:
    common = min(i2 - i1, j2 - j1)
    for k in range(common):
      out.extend(tree_mismatches(saved[i1 + k], expected[j1 + k], path + (j1 + k,), root))
    for j in range(j1 + common, j2):
      out.append(f'{_where(root, path + (j,))}: missing in saved, expected '
                 f'{_describe(expected[j])}')
    for i in range(i1 + common, i2):
      out.append(f'{_where(root, path + (i,))}: saved {_describe(saved[i])}, not expected')
  return out


def check_compatible(saved, expected, source, what='weights'):
  """Raises CheckpointError listing every mismatched path, or returns None."""
  problems = tree_mismatches(saved, expected, root=what)
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
