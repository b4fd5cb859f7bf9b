"""Reads checkpoints written by real Trax (1.2 and 1.4) without running their pickle.

Trax saves its checkpoints with Python's pickle, and unpickling runs whatever
the file names. They are read here with the restricted unpickler of
`minitrax.trax_unpickle`: each global a file names is looked up in an
allow-list of *inert stand-ins* (NumPy and JAX arrays, NumPy dtypes and
scalars, Trax's `History` and `ShapeDtype`, `defaultdict`, builtin
containers; nothing from Trax, JAX or NumPy's pickle helpers is imported or
called), and any other global is refused with a `CheckpointError` naming its
module and name, before anything of the file is run. Side files of arrays are
read with `np.load(..., allow_pickle=False)`.

The two layouts (`read_checkpoint` tells them apart):

* Trax 1.2 `model.pkl` (`Trainer.save_state`): a pickled dict with 'step',
  'weights' and 'state' as Trax's nested trees (lists and tuples, `()` for a
  layer without weights, NumPy leaves), plus 'slots', 'opt_params', 'history'
  (a `History`), 'loss_weights', 'loss_state', 'version_timestamp'.
* Trax 1.4 `model.pkl.gz` (`training.Loop.save_checkpoint`): a gzipped pickled
  dict with 'step', 'flat_weights' (an int: the weights are in the side file
  `model.weights.npy.gz`, `np.save` records one after another, read here with
  `allow_pickle=False`), 'flat_state', 'flat_eval_state', 'history' (a dict),
  'input_signature' (`ShapeDtype`s), ... The lists are flat: the tree's leaves
  in order, empty leaves left out; bfloat16 weights are stored as uint16 bits.

Trees. A 1.2 file gives Trax's nested trees; a 1.4 file gives flat lists,
because only the model knows the nesting. `trax_leaves(tree)` flattens a 1.2
tree the way Trax does, so both generations meet as one list of arrays, and
`fill_tree(template, leaves, ...)` puts such a list into a model's own tree in
order, checking every shape and dtype (`Layer.init_from_file` does this).

>>> weights, state = import_trax('output_dir/model.pkl')   # doctest: +SKIP
"""

import collections
import gzip
import os

import numpy as np

from minitrax.errors import CheckpointError
from minitrax.trax_unpickle import (STAND_INS, RestrictedUnpickler, TraxHistory, TraxShapeDtype,
                                    loads)

_PICKLE_MAGIC = b'\x80'
_GZIP_MAGIC = b'\x1f\x8b'


def _read_bytes(path):
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise CheckpointError(f'{path}: cannot read checkpoint ({e.strerror})') from e
  if data[:2] == _GZIP_MAGIC:
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError) as e:
      raise CheckpointError(f'{path}: the gzip data is truncated or corrupted ({e})') from e
  return data


def read_npy_records(path):
  """The arrays of a Trax `.npy.gz` side file: `np.save` records, read with allow_pickle=False."""
  arrays = []
  try:
    with gzip.open(path, 'rb') as f:
      while f.peek(1):
        arrays.append(np.load(f, allow_pickle=False))
  except FileNotFoundError as e:
    raise CheckpointError(f'{path}: the Trax weights side file is missing') from e
  except (OSError, EOFError, ValueError) as e:
    raise CheckpointError(f'{path}: cannot read the Trax arrays ({type(e).__name__}: '
                          f'{e})') from e
  return arrays


# ------------------------------------------------------------------ the two layouts

TraxCheckpoint = collections.namedtuple(
    'TraxCheckpoint', ['version', 'step', 'weights', 'state', 'history', 'input_signature', 'raw'])
TraxCheckpoint.__doc__ = """What a Trax checkpoint holds, as plain data.

Attributes:
  version: '1.2' (nested `model.pkl`) or '1.4' (flat `model.pkl.gz`).
  step: the training step.
  weights: 1.2: Trax's nested weights tree; 1.4: the flat list of arrays.
  state: 1.2: Trax's nested state tree; 1.4: the flat list ('flat_state').
  history: a `TraxHistory` (1.2) or its dict (1.4), or None.
  input_signature: 1.4: the model's input `TraxShapeDtype`s; 1.2: None.
  raw: the whole unpickled dict (1.4: weights read from the side file).
"""


def looks_like_trax(path):
  """Whether the file starts as a pickle or a gzip file (what Trax writes)."""
  try:
    with open(path, 'rb') as f:
      head = f.read(2)
  except OSError:
    return False
  return head[:1] == _PICKLE_MAGIC or head == _GZIP_MAGIC


def _weights_side_file(path):
  """Trax 1.4's name for the weights of `<base>.pkl.gz`: `<base>.weights.npy.gz`."""
  if path.endswith('.pkl.gz'):
    side = path[:-len('pkl.gz')] + 'weights.npy.gz'
    if os.path.exists(side):
      return side
  return path + '.npy'


def read_checkpoint(path):
  """Reads a Trax 1.2 `model.pkl` or a Trax 1.4 `model.pkl.gz` (+ side file).

  Returns:
    A `TraxCheckpoint`.

  Raises:
    CheckpointError: naming the file, if it cannot be read, names a global
      outside the allow-list, or is not a Trax checkpoint of either layout.
  """
  path = os.fspath(path)
  tree = loads(_read_bytes(path), path)
  if isinstance(tree, dict) and 'flat_weights' in tree:
    return _read_1_4(path, tree)
  if isinstance(tree, dict) and 'weights' in tree and 'state' in tree:
    return TraxCheckpoint('1.2', tree.get('step'), tree['weights'], tree['state'],
                          tree.get('history'), None, tree)
  found = sorted(map(str, tree)) if isinstance(tree, dict) else type(tree).__name__
  raise CheckpointError(f'{path}: the file is a Python pickle but not a Trax checkpoint: '
                        f'expected a dict with "weights" and "state" (Trax 1.2) or '
                        f'"flat_weights" (Trax 1.4), found {found}')


def _read_1_4(path, tree):
  weights = tree['flat_weights']
  if isinstance(weights, int) and not isinstance(weights, bool):
    weights = read_npy_records(_weights_side_file(path))
  if not isinstance(weights, (list, tuple)):
    raise CheckpointError(f'{path}: "flat_weights" must be a list or an int, got '
                          f'{type(weights).__name__}')
  tree = dict(tree, flat_weights=list(weights))
  signature = tree.get('input_signature')
  return TraxCheckpoint('1.4', tree.get('step'), list(weights), list(tree.get('flat_state') or []),
                        tree.get('history'), signature, tree)


def import_trax(path):
  """Reads the model weights and state of a Trax checkpoint, without running its pickle.

  Args:
    path: a Trax 1.2 `model.pkl`, or a Trax 1.4 `model.pkl.gz` with its
      `model.weights.npy.gz` beside it.

  Returns:
    `(weights, state)`: Trax 1.2 files give Trax's nested trees; Trax 1.4 files
    give flat lists of arrays (tree order, empty leaves left out). Either way
    `fill_tree(model_tree, trax_leaves(weights), ...)` puts them into a
    minitrax model's tree; `Layer.init_from_file(path)` does all of it.
  """
  ckpt = read_checkpoint(path)
  return ckpt.weights, ckpt.state


# ------------------------------------------------------------------ leaves and trees


def trax_leaves(tree):
  """Trax's flattening: depth-first over lists, tuples and dict values; `()` vanishes."""
  if isinstance(tree, (list, tuple)):
    return [leaf for sub in tree for leaf in trax_leaves(sub)]
  if isinstance(tree, dict):
    return [leaf for sub in tree.values() for leaf in trax_leaves(sub)]
  return [tree]


def state_leaves(tree):
  """The leaves of a Trax state that minitrax keeps in its state.

  Trax keeps each Dropout rate in the state (a 0-d float array, in 1.2 under a
  dict key such as 'dropout_embedding'); minitrax keeps it in the layer, so
  these are left out.
  """
  return [
      leaf for leaf in trax_leaves(tree)
      if not (isinstance(leaf, np.ndarray) and leaf.ndim == 0 and leaf.dtype.kind == 'f')
  ]


def _template_paths(tree, path=()):
  """`[(path, leaf)]` of a minitrax tree, in `jax.tree` order (dict keys sorted)."""
  if isinstance(tree, dict):
    items = sorted(tree.items(), key=lambda kv: str(kv[0]))
    return [p for k, v in items for p in _template_paths(v, path + (k,))]
  if isinstance(tree, (list, tuple)):
    return [p for i, v in enumerate(tree) for p in _template_paths(v, path + (i,))]
  if tree is None:
    return []
  return [(path, tree)]


def _rebuild(tree, values):
  """`tree` with its leaves (in `_template_paths` order) replaced by `values` (an iterator)."""
  if isinstance(tree, dict):
    new = {k: _rebuild(v, values) for k, v in sorted(tree.items(), key=lambda kv: str(kv[0]))}
    return {k: new[k] for k in tree}
  if isinstance(tree, (list, tuple)):
    return type(tree)(_rebuild(v, values) for v in tree)
  return tree if tree is None else next(values)


def _fit(saved, expected):
  """`saved` as an array of `expected`'s shape and dtype, or None if it does not fit."""
  if not (hasattr(saved, 'shape') and hasattr(saved, 'dtype')):
    return None
  saved = np.asarray(saved)
  dtype = np.dtype(expected.dtype)
  if tuple(saved.shape) != tuple(expected.shape):
    return None
  if saved.dtype == dtype:
    return saved
  if dtype.name == 'bfloat16' and saved.dtype == np.uint16:  # Trax 1.4 saves bfloat16 as bits
    return saved.view(dtype)
  return None


def _describe(x):
  if hasattr(x, 'shape') and hasattr(x, 'dtype'):
    return f'{tuple(x.shape)} {np.dtype(x.dtype).name}'
  return type(x).__name__


def fill_tree(template, leaves, source, what='weights'):
  """Puts Trax's `leaves` into a minitrax tree, one to one in order.

  Args:
    template: the model's tree (arrays or `ShapeDtype`s as leaves).
    leaves: Trax's arrays in tree order (`trax_leaves`, or a 1.4 flat list).
    source: the file name, for errors.
    what: 'weights' or 'state', for errors.

  Returns:
    `template`'s structure holding Trax's arrays (NumPy).

  Raises:
    CheckpointError: listing every path whose array does not fit (shape or
      dtype), and the leaves missing or left over; nothing is returned then.
  """
  slots = _template_paths(template)
  problems, values = [], []
  for i, ((path, expected), saved) in enumerate(zip(slots, leaves)):
    fitted = _fit(saved, expected)
    if fitted is None:
      where = ''.join(f'[{p!r}]' for p in path) or '<root>'
      problems.append(f'{where}: Trax {what} #{i} is {_describe(saved)}, the model expects '
                      f'{_describe(expected)}')
    values.append(fitted)
  for path, expected in slots[len(leaves):]:
    where = ''.join(f'[{p!r}]' for p in path) or '<root>'
    problems.append(f'{where}: missing in the file, the model expects {_describe(expected)}')
  for i, saved in enumerate(leaves[len(slots):], start=len(slots)):
    problems.append(f'Trax {what} #{i} ({_describe(saved)}): left over, the model has no place '
                    f'for it')
  if problems:
    lines = '\n  '.join(problems)
    raise CheckpointError(f'{source}: the Trax {what} do not fit the model ({len(leaves)} '
                          f'arrays in the file, {len(slots)} in the model); {len(problems)} '
                          f'mismatched path(s):\n  {lines}')
  return _rebuild(template, iter(values))


__all__ = [
    'import_trax', 'read_checkpoint', 'TraxCheckpoint', 'TraxHistory', 'TraxShapeDtype',
    'RestrictedUnpickler', 'STAND_INS', 'loads', 'read_npy_records', 'looks_like_trax',
    'trax_leaves', 'state_leaves', 'fill_tree'
]
