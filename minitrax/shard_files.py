"""Checkpoints of arrays sharded over processes: each process writes the pieces it holds.

In a run of several processes with `sharding='fsdp'`, a weight or an
optimizer slot is split over the devices of all processes: no process holds
it whole, and gathering it whole on every host is what a model bigger than
one host's memory cannot afford. `save` writes such an array
(`distributed.is_sharded_over_processes`) in pieces instead: every process
writes the pieces its devices hold into a file of its own, and process 0
writes the checkpoint file with everything else (replicated arrays, numbers,
the history) and, in place of each sharded array, a record naming its
files. In one process every array is fully addressable (also FSDP over
several local devices): `save` writes the one file that `checkpoint.save`
writes.

Files of the checkpoint `<dir>/<name>` (e.g. `model.pkl`) saved at step `s`::

    <dir>/<name>                                          the checkpoint
    <dir>/<name>.shards-<s>-<nonce>/process-<p>.msgpack   one per process p

The checkpoint's tree is a dict with the field 'shard_folder' (the name of
the folder beside it), and each sharded array is replaced by its reference
record::

    {'sharded_array': "['weights'][1][0]",  # its tree path: its key in the shard files
     'shape': [64, 128], 'dtype': 'float32',  # the whole array's
     'files': ['process-0.msgpack', 'process-1.msgpack']}  # the files holding its pieces

A shard file is a minitrax checkpoint file (`minitrax.checkpoint`: msgpack,
header, checksum, bounded reader) holding `{'format': 'minitrax.shards',
'process': p, 'arrays': {tree path: [piece, ...]}}`; a piece is
`{'index': [[start, stop], ...], 'data': array}`, one range per axis, `data`
being `whole[start_0:stop_0, start_1:stop_1, ...]`. Only the first copy of a
shard (`replica_id == 0`) is written, so each piece of an array is written
once.

The commit is atomic for the whole run. Every process calls `save` with the
same tree:

1. process 0 draws the folder's nonce and sends it to the others (a collective);
2. each process writes its file into the new folder (temporary file, rename);
3. after a barrier, process 0 writes the checkpoint (temporary file, rename:
   the commit point) and then deletes the checkpoint's other folders (the
   previous one, and any of a save killed before its commit); a barrier.

A save killed before the commit leaves the previous checkpoint and its folder
complete. A folder that no checkpoint names goes at the next save of that
checkpoint, or when a run restarts (`remove_strays`, which
`checkpoint.remove_temporaries` calls); `remove` deletes a checkpoint with
its folders (retention).

Reading (`resolve`, which `checkpoint.load` calls for a tree with
'shard_folder'): each sharded array is assembled whole in NumPy from the
pieces in its files, which must cover it exactly, each element once; the tree
is then the one a save in one process writes, so a checkpoint of 2 processes
restores in one process onto any number of devices. Shard files are read one
at a time, each with the checkpoint reader's bounds, and the arrays declared
may hold no more bytes than their files: reading takes the arrays' memory,
one byte per element of them (the coverage check) and one shard file's
bound. A missing, corrupt or malformed shard file, or pieces that do not
cover their array exactly, is a `CheckpointError` naming the file and the
tree path.
"""

import glob
import math
import os
import re
import shutil

import numpy as np

from jax.experimental import multihost_utils

from minitrax import checkpoint, distributed
from minitrax.errors import CheckpointError

__all__ = [
    'FOLDER_FIELD', 'FORMAT', 'save', 'split', 'resolve', 'assemble', 'remove_strays', 'remove'
]

FOLDER_FIELD = 'shard_folder'
FORMAT = 'minitrax.shards'
_RECORD_KEYS = frozenset({'sharded_array', 'shape', 'dtype', 'files'})
_FILE_NAME = re.compile(r'process-\d+\.msgpack')
_MARK = '.shards-'
_UNREADABLE = object()

# ------------------------------------------------------------------ writing


def save(path, tree, step):
  """Writes checkpoint `tree` to `path` atomically for the whole run; every process calls it.

  Args:
    path: the checkpoint file.
    tree: the tree to save, the same on every process: host data, except the
      arrays sharded over processes, which stay `jax.Array`s
      (`distributed.to_host(tree, keep_sharded=True)`). A dict if it holds any.
    step: int >= 0, the training step (in the folder's and barriers' names).

  Raises:
    CheckpointError: a file cannot be written (the message names it); the
      previous checkpoint is left complete.
  """
  path = os.fspath(path)
  tree, pieces = split(tree)
  folder = None
  if pieces:
    if not isinstance(tree, dict):
      raise CheckpointError(f'{path}: a tree with arrays sharded over processes must be a dict '
                            f'(it gets the field "{FOLDER_FIELD}"), got {type(tree).__name__}')
    folder = f'{os.path.basename(path)}{_MARK}{step}-{_nonce():08x}'
    process = distributed.process_index()
    shard_file = os.path.join(os.path.dirname(path), folder, f'process-{process}.msgpack')
    try:
      os.makedirs(os.path.dirname(shard_file), exist_ok=True)
    except OSError as e:
      raise CheckpointError(f'{shard_file}: cannot make the shard folder ({e.strerror}); the '
                            'previous checkpoint is unchanged') from e
    checkpoint.save(shard_file, {'format': FORMAT, 'process': process, 'arrays': pieces})
    tree = {**tree, FOLDER_FIELD: folder}

  def commit():
    checkpoint.save(path, tree)
    _remove_folders(path, keep=folder)

  distributed.commit(f'save {path} at step {step}', commit)


def split(tree):
  """`(tree, pieces)`: the arrays sharded over processes taken out of `tree`.

  Args:
    tree: dicts, lists and tuples of leaves.

  Returns:
    `tree` with each array sharded over processes replaced by its reference
    record, and `{tree path: [piece, ...]}` with the first copies of the
    pieces this process's devices hold (an entry for every record, maybe
    empty; `{}` when there is none).
  """
  pieces = {}

  def walk(x, path):
    if isinstance(x, dict):
      return {k: walk(v, path + (k,)) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
      items = [walk(v, path + (i,)) for i, v in enumerate(x)]
      return items if isinstance(x, list) else tuple(items)
    if not distributed.is_sharded_over_processes(x):
      return x
    where = _where(path)
    pieces[where] = [{'index': _ranges(shard.index, x.shape), 'data': np.asarray(shard.data)}
                     for shard in x.addressable_shards
                     if shard.replica_id == 0]
    return {
        'sharded_array': where, 'shape': list(x.shape), 'dtype': np.dtype(x.dtype).name,
        'files': [f'process-{p}.msgpack' for p in _writers(x)]
    }

  return walk(tree, ()), pieces


def _where(path):
  """A tree path as `['weights'][1][0]` (`<root>` for the top)."""
  return ''.join(f'[{p!r}]' for p in path) or '<root>'


def _ranges(index, shape):
  """`[[start, stop], ...]` of a shard's index (a tuple of slices) in an array of `shape`."""
  index = tuple(index) + (slice(None),) * (len(shape) - len(tuple(index)))
  return [list(s.indices(d)[:2]) for s, d in zip(index, shape)]


def _writers(x):
  """The processes whose devices hold the first copy of a piece of `x` (JAX's replica 0)."""
  first = {}
  for device, index in x.sharding.devices_indices_map(tuple(x.shape)).items():
    key = tuple(map(tuple, _ranges(index, x.shape)))
    first.setdefault(key, device.process_index)
  return sorted(set(first.values()))


def _nonce():
  """A random int in [0, 2**31) drawn by process 0, the same on every process (a collective)."""
  drawn = int.from_bytes(os.urandom(4), 'little') >> 1 if distributed.is_main() else 0
  return int(multihost_utils.broadcast_one_to_all(np.int32(drawn)))


# ------------------------------------------------------------------ reading


def resolve(tree, path):
  """The tree of checkpoint `path` with each reference record replaced by its whole array.

  Args:
    tree: the checkpoint's tree, a dict with `FOLDER_FIELD`, as read
      (`checkpoint.load(path, shards=False)`).
    path: the checkpoint file; the shard folder lies beside it.

  Returns:
    `tree` without `FOLDER_FIELD`, its sharded arrays whole NumPy arrays.

  Raises:
    CheckpointError: naming the file and the tree path: a malformed record, a
      missing, corrupt or malformed shard file, pieces that do not cover
      their array exactly.
  """
  path = os.fspath(path)
  folder = os.path.join(os.path.dirname(path), _folder_name(tree, path))
  records = {}
  _map_records(tree, (), lambda where, record: records.setdefault(where, record), path)
  _check_sizes(records, folder, path)
  by_file = {}
  for where, record in records.items():
    for name in record['files']:
      by_file.setdefault(name, []).append(where)
  arrays = {where: _Assembly(where, record) for where, record in records.items()}
  for name in sorted(by_file):
    file = os.path.join(folder, name)
    held = _read_shard_file(file, path, by_file[name][0])
    for where in by_file[name]:
      for piece in held.get(records[where]['sharded_array'], []):
        arrays[where].add(file, piece)
    del held
  whole = {where: array.finish(folder) for where, array in arrays.items()}
  rest = {k: v for k, v in tree.items() if k != FOLDER_FIELD}
  return _map_records(rest, (), lambda where, _: whole[where], path)


def assemble(record, pieces, where='<root>'):
  """The whole array of reference `record` from its `pieces`; checks they cover it exactly.

  Args:
    record: a reference record (`{'sharded_array', 'shape', 'dtype', 'files'}`).
    pieces: `[(file, piece), ...]`, a piece `{'index': [[start, stop], ...],
      'data': array}` read from `file`.
    where: the record's tree path, for messages.

  Returns:
    A NumPy array of the record's shape and dtype.

  Raises:
    CheckpointError: a malformed piece, one outside the array, one with
      another shape or dtype than its index says, pieces that overlap or
      leave elements out; naming the file, `where`, expected and found.
  """
  array = _Assembly(where, record)
  for file, piece in pieces:
    array.add(file, piece)
  return array.finish(', '.join(sorted({file for file, _ in pieces})) or '<no file>')


class _Assembly:
  """One sharded array being filled from its pieces, each element once."""

  def __init__(self, where, record):
    self.where, self.files = where, record['files']
    self.shape, self.dtype = tuple(record['shape']), np.dtype(record['dtype'])
    self.value = np.zeros(self.shape, self.dtype)
    self.covered = np.zeros(self.shape, bool)

  def add(self, file, piece):
    """Copies `piece` (read from `file`) into the array, after checking it."""
    ranges = self._ranges(file, piece)
    index = tuple(slice(start, stop) for start, stop in ranges)
    data, shape = piece['data'], tuple(stop - start for start, stop in ranges)
    if not isinstance(data, np.ndarray) or data.shape != shape or data.dtype != self.dtype:
      found = (f'{data.shape} {data.dtype.name}'
               if isinstance(data, np.ndarray) else type(data).__name__)
      raise CheckpointError(f'{file}: the piece {_show(ranges)} of {self.where} holds {found}, '
                            f'expected {shape} {self.dtype.name}')
    if self.covered[index].any():
      raise CheckpointError(f'{file}: the piece {_show(ranges)} of {self.where} overlaps another '
                            'piece (each element is written once)')
    self.value[index] = data
    self.covered[index] = True

  def _ranges(self, file, piece):
    """The `[[start, stop], ...]` of `piece`, checked to be well-formed and inside the array."""
    index = piece.get('index') if isinstance(piece, dict) and set(piece) == {'index', 'data'
                                                                            } else None
    ok = isinstance(index, list) and len(index) == len(self.shape) and all(
        isinstance(r, list) and len(r) == 2 and all(type(i) is int for i in r) for r in index)
    if not ok:
      raise CheckpointError(f'{file}: a piece of {self.where} is malformed: expected '
                            f'{{"index": [[start, stop]] * {len(self.shape)}, "data": array}}, '
                            f'got {piece!r:.120}')
    if not all(0 <= start <= stop <= d for (start, stop), d in zip(index, self.shape)):
      raise CheckpointError(f'{file}: the piece {_show(index)} of {self.where} lies outside its '
                            f'shape {self.shape}')
    return index

  def finish(self, files):
    """The whole array, once every element is covered; `files` names where pieces were read."""
    done = int(np.count_nonzero(self.covered))
    if done != self.covered.size:
      first = np.unravel_index(int(np.argmin(self.covered)), self.shape)
      raise CheckpointError(f'{files}: the pieces of {self.where} cover {done} of its '
                            f'{self.covered.size} elements (shape {self.shape}); the first '
                            f'missing one is at {tuple(int(i) for i in first)}')
    return self.value


def _show(ranges):
  """`[[0, 4], [0, 64]]` as `[0:4, 0:64]`."""
  return '[' + ', '.join(f'{start}:{stop}' for start, stop in ranges) + ']'


def _folder_name(tree, path):
  """The checkpoint's shard folder's name, checked to be a plain name beside it."""
  name = tree.get(FOLDER_FIELD)
  if not (isinstance(name, str) and _MARK in name and os.path.basename(name) == name and
          name not in ('.', '..') and '/' not in name and '\\' not in name):
    raise CheckpointError(f'{path}: field "{FOLDER_FIELD}" must name a folder beside the file '
                          f'(<name>{_MARK}<step>-<nonce>), got {name!r:.80}')
  return name


def _map_records(tree, path, fn, source):
  """`tree` with `fn(where, record)` in place of each reference record (checked)."""
  if isinstance(tree, dict) and set(tree) == _RECORD_KEYS:
    _check_record(tree, _where(path), source)
    return fn(_where(path), tree)
  if isinstance(tree, dict):
    return {k: _map_records(v, path + (k,), fn, source) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    items = [_map_records(v, path + (i,), fn, source) for i, v in enumerate(tree)]
    return items if isinstance(tree, list) else tuple(items)
  return tree


def _check_record(record, where, path):
  """A reference record holds a str key, a shape NumPy can make, an allowed dtype, file names."""
  shape, files = record['shape'], record['files']
  ok = (isinstance(record['sharded_array'], str) and isinstance(shape, list) and
        len(shape) <= 64 and all(type(d) is int and d >= 0 for d in shape) and
        math.prod(max(d, 1) for d in shape) < 2**56 and
        record['dtype'] in checkpoint.ALLOWED_DTYPES and isinstance(files, list) and files and
        all(isinstance(f, str) and _FILE_NAME.fullmatch(f) for f in files))
  if not ok:
    raise CheckpointError(f'{path}: the sharded array record at {where} is malformed: expected '
                          '{"sharded_array": str, "shape": [int >= 0, ...], "dtype": an allowed '
                          f'dtype, "files": ["process-<p>.msgpack", ...]}}, got {record!r:.200}')


def _check_sizes(records, folder, path):
  """Each shard file is there, and the arrays declared hold no more bytes than all of them."""
  sizes = {}
  for where, record in records.items():
    for name in record['files']:
      if name not in sizes:
        try:
          sizes[name] = os.path.getsize(os.path.join(folder, name))
        except OSError as e:
          raise CheckpointError(f'{path}: cannot read the pieces of {where}: '
                                f'{os.path.join(folder, name)}: {e.strerror}') from e
  need = sum(math.prod(r['shape']) * np.dtype(r['dtype']).itemsize for r in records.values())
  if need > sum(sizes.values()):
    raise CheckpointError(f'{path}: its sharded arrays declare {need} bytes, but their files in '
                          f'{folder} hold {sum(sizes.values())}; the checkpoint is corrupted')


def _read_shard_file(file, path, where):
  """`{tree path: [piece, ...]}` of a shard file, read with the checkpoint reader's bounds."""
  try:
    held = checkpoint.load(file, shards=False)
  except CheckpointError as e:
    raise CheckpointError(f'{path}: cannot read the pieces of {where}: {e}') from e
  ok = isinstance(held, dict) and held.get('format') == FORMAT and isinstance(
      held.get('arrays'), dict) and all(isinstance(v, list) for v in held['arrays'].values())
  if not ok:
    found = sorted(map(str, held)) if isinstance(held, dict) else type(held).__name__
    raise CheckpointError(f'{file}: not a shard file (a dict with "format": "{FORMAT}" and '
                          f'"arrays": {{tree path: [piece, ...]}}), found {found}; the pieces of '
                          f'{where} of {path} cannot be read')
  return held['arrays']


# ------------------------------------------------------------------ housekeeping


def remove(path):
  """Deletes checkpoint `path` (if there) and then its shard folders."""
  try:
    os.remove(path)
  except FileNotFoundError:
    pass
  _remove_folders(path)


def remove_strays(folder, pattern='*'):
  """Deletes the shard folders in `folder` that no checkpoint names (those of killed saves).

  Args:
    folder: the checkpoints' folder.
    pattern: a glob of checkpoint names: only folders `<name>.shards-*` with
      `<name>` matching it are looked at. Such a folder is a stray when the
      file `<name>` is not there or names another folder; a file that cannot
      be read keeps its folders.
  """
  named = {}
  for sub in sorted(glob.glob(os.path.join(glob.escape(folder), pattern + _MARK + '*'))):
    owner = sub[:sub.rindex(_MARK)]
    if owner not in named:
      named[owner] = _named_folder(owner)
    if os.path.isdir(sub) and named[owner] not in (os.path.basename(sub), _UNREADABLE):
      shutil.rmtree(sub, ignore_errors=True)


def _named_folder(path):
  """The shard folder checkpoint `path` names; None without one; `_UNREADABLE` if unreadable."""
  if not os.path.exists(path):
    return None
  try:
    tree = checkpoint.load(path, shards=False)
  except CheckpointError:
    return _UNREADABLE
  return tree.get(FOLDER_FIELD) if isinstance(tree, dict) else None


def _remove_folders(path, keep=None):
  """Deletes the shard folders `<path>.shards-*` of checkpoint `path`, except `keep`."""
  for sub in glob.glob(glob.escape(path) + _MARK + '*'):
    if os.path.basename(sub) != keep and os.path.isdir(sub):
      shutil.rmtree(sub, ignore_errors=True)
