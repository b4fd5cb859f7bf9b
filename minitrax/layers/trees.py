"""Weights and state trees of a layer: gathering, scattering, sharing and files, over one walk.

Each layer object holds its *own* part of the weights and of the state (a
leaf's arrays; `()` for most combinators) in its `TreeNode`. The tree of a
layer is built from its sublayers' trees by `Layer.pack_tree` and split back
by `Layer.unpack_tree`; by default a combinator's tree is the tuple of its
sublayers' trees.

A layer instance used twice in one tree shares its weights (Trax semantics):
the tree holds them at its first use, in depth-first order, and `()` at the
other uses. `fill_shared` puts the first use's tree into those `()` slots
(what `pure_fn` computes with); `clear_shared` empties them again.

One walk. `unique_layers` lists the distinct layers of a root, in first-use
depth-first order, shared instances once. The walk behind it (`_walk`) runs
once per root (sublayers are fixed at construction) and is kept in the root's
node; every operation here is a loop over its result: top-down to split a
tree (`scatter`, sharing), bottom-up to build one (`gather`, sharing).

Caching. Gathering visits every layer, so `cached_gather` keeps the gathered
tree in the root's node and a loop of `layer(x)` calls reuses it. A root that
keeps a tree records itself (weakly) in the node of every layer the tree
holds; `scatter`, the only way weights or state are stored, drops the kept
trees of every root recorded in the layers it stores to. A store through any
layer (the root, a sublayer, another model sharing a layer) is thus seen by
exactly the trees that hold it. There is no state at module level.

Ownership (for `donation`). A root whose `Layer.__call__` stored the state its
compiled program made records that tree as *owned* (`own_state`): no one
outside holds its arrays, so the next call may donate them. A store reaching
any of its layers, or a public read of the state of any layer it holds
(`hand_out_state`), ends that.

Files. `save` and `load` write and read both trees as a minitrax checkpoint
(`Layer.save_to_file`, `Layer.init_from_file`); `load` also reads the
checkpoints of real Trax 1.2 and 1.4 (`minitrax.trax_import`, no pickle run).
"""

import weakref
from typing import NamedTuple

import jax
import jax.numpy as jnp

from minitrax import checkpoint, trax_import
from minitrax.errors import CheckpointError

EMPTY = ()
KINDS = ('weights', 'state')


class TreeNode:
  """The tree bookkeeping of one layer (`Layer` makes one in `__init__`).

  Attributes:
    own: `{'weights': tree, 'state': tree}`: the layer's own parts.
    gathered: `{kind: tree}`: trees gathered with this layer as the root,
      kept until a store reaches a layer they hold.
    roots: weak references to the roots keeping gathered trees that hold
      this layer (a set: a dead reference never equals a live one).
    watching: whether this layer, as a root, is recorded in `roots` of all
      its layers.
    walk: this layer's `Walk` as a root, or None until first needed.
    owned: the state tree this layer, as a root, owns (see `own_state`), or None.
    plans: `{(kind, tree structure): plan}` of `_owns`, for this layer as a root.
  """

  __slots__ = ('own', 'gathered', 'roots', 'watching', 'walk', 'owned', 'plans')

  def __init__(self):
    self.own = {kind: EMPTY for kind in KINDS}
    self.gathered = {}
    self.roots = set()
    self.watching = False
    self.walk = None
    self.owned = None
    self.plans = {}


class Walk(NamedTuple):
  """The distinct layers of a root, in first-use depth-first order, with their links.

  Attributes:
    rest: the distinct layers after the root (left out, so that a root's node
      holds no reference to the root itself).
    links: per distinct layer (root first), per sublayer, `(position, first)`:
      the sublayer's position in this order and whether this is its first use.
    post_order: the positions, each layer after all of its sublayers.
    shared: whether some layer instance occurs more than once.
  """
  rest: tuple
  links: tuple
  post_order: tuple
  shared: bool


def _node(layer):
  """The `TreeNode` of a layer."""
  return layer._tree_node  # pylint: disable=protected-access


def _walk(root):
  """The `Walk` of `root`: one depth-first pass over its distinct layers, kept in its node."""
  node = _node(root)
  if node.walk is not None:
    return node.walk
  position, layers, links, post_order = {}, [], [], []

  def visit(layer):
    position[id(layer)] = i = len(layers)
    layers.append(layer)
    links.append(None)
    own_links = []
    for sub in layer.sublayers:
      first = id(sub) not in position
      if first:
        visit(sub)
      own_links.append((position[id(sub)], first))
    links[i] = tuple(own_links)
    post_order.append(i)

  visit(root)
  shared = any(not first for own_links in links for _, first in own_links)
  node.walk = Walk(tuple(layers[1:]), tuple(links), tuple(post_order), shared)
  return node.walk


def unique_layers(root):
  """The distinct layers of `root`, itself first, in first-use depth-first order.

  A layer instance used more than once is listed once, at its first use.

  >>> from minitrax.layers.combinators import Serial, Dup
  >>> dup = Dup()
  >>> [layer.name for layer in unique_layers(Serial(dup, Serial(dup), name='Model'))]
  ['Model', 'Dup', 'Serial']
  """
  return [root, *_walk(root).rest]


def has_shared_layers(root):
  """Whether some layer instance occurs more than once under `root` (itself included)."""
  return _walk(root).shared


def _split(root, kind, tree):
  """Top-down: per distinct layer of `root`, `(sub_trees, own)` of its part of `tree`.

  The sub-trees at repeated uses of a layer are ignored (they should be `()`).
  Raises `LayerError` (from `unpack_tree`) if the tree does not fit the layers.
  """
  walk = _walk(root)
  tree_at = [tree] + [EMPTY] * len(walk.rest)
  parts = []
  for i, layer in enumerate(unique_layers(root)):
    subs, own = layer.unpack_tree(kind, tree_at[i])
    for (j, first), sub in zip(walk.links[i], subs):
      if first:
        tree_at[j] = sub
    parts.append((subs, own))
  return parts


def _owns(root, kind, tree):
  """Per distinct layer of `root`, its own part of `tree` (as `_split`), by a kept plan.

  `layer(x)` stores a state of the same structure at every call; splitting it
  layer by layer is most of that call's host time. The plan, kept per (kind,
  tree structure) in the root's node, is `_split` of a tree of leaf indices:
  per layer, its part's structure and leaf indices (or, for a part without
  leaves, the part itself, which then is the same object at every store).
  A tree that does not fit is split directly, so its error shows the tree.
  """
  leaves, treedef = jax.tree.flatten(tree)
  plans = _node(root).plans
  if (kind, treedef) not in plans:
    try:
      parts = _split(root, kind, treedef.unflatten(range(len(leaves))))
    except Exception:  # pylint: disable=broad-except
      return [own for _, own in _split(root, kind, tree)]
    plans[kind, treedef] = [_part_plan(own) for _, own in parts]
  return [
      part if indices is None else part.unflatten([leaves[i]
                                                   for i in indices])
      for part, indices in plans[kind, treedef]
  ]


def _part_plan(own):
  """`(structure, leaf indices)` of a part of an index tree; `(part, None)` without leaves."""
  indices, structure = jax.tree.flatten(own)
  return (own, None) if not indices else (structure, indices)


def _join(root, kind, owns, fill):
  """Bottom-up: the `kind` tree of `root` from each distinct layer's own part.

  Args:
    root: the layer whose tree is built.
    kind: 'weights' or 'state'.
    owns: per distinct layer (first-use order), its own part.
    fill: put the first use's tree at repeated uses; else `()` there.
  """
  walk = _walk(root)
  layers = unique_layers(root)
  tree_at = [None] * len(layers)
  for i in walk.post_order:
    subs = [tree_at[j] if first or fill else EMPTY for j, first in walk.links[i]]
    tree_at[i] = layers[i].pack_tree(kind, subs, owns[i])
  return tree_at[0]


def gather(root, kind):
  """The `kind` tree ('weights' or 'state') of `root`, read afresh from its layers."""
  return _join(root, kind, [_node(layer).own[kind] for layer in unique_layers(root)], False)


def cached_gather(root, kind):
  """`gather(root, kind)`, kept in the root's node until a store reaches one of its layers."""
  gathered = _node(root).gathered
  if kind not in gathered:
    _watch(root)
    gathered[kind] = gather(root, kind)
  return gathered[kind]


def _watch(root):
  """Records `root` (weakly) in the node of each of its layers, once."""
  node = _node(root)
  if node.watching:
    return
  ref = weakref.ref(root)
  for layer in unique_layers(root):
    roots = _node(layer).roots
    roots.difference_update([other for other in roots if other() is None])  # collected roots
    roots.add(ref)
  node.watching = True


def scatter(root, kind, tree, keep=False):
  """Stores a `kind` tree on the layers of `root`; drops every kept tree holding them.

  The whole tree is split first, so a tree that does not fit (a `LayerError`
  from `unpack_tree`) stores nothing.

  Args:
    root: the layer the tree belongs to.
    kind: 'weights' or 'state'.
    tree: the tree, with `()` at repeated uses of a layer.
    keep: the tree is exactly what `gather(root, kind)` will return (as
      `pure_fn`'s new state is); keep it as the root's gathered tree.
  """
  owns = _owns(root, kind, tree)
  stale = set()
  for layer, own in zip(unique_layers(root), owns):
    node = _node(layer)
    if own is not node.own[kind]:
      node.own[kind] = own
      stale.update(node.roots)
  for ref in stale:
    other = ref()
    if other is not None:
      _node(other).gathered.pop(kind, None)
      if kind == 'state':
        _node(other).owned = None
  if keep:
    _watch(root)
    _node(root).gathered[kind] = tree


def own_state(root, tree):
  """Records `tree`, just stored on `root` by `scatter(..., keep=True)`, as owned by `root`.

  Call it only for a state whose arrays the root's own compiled call made and
  nothing else holds (`donation.CompiledCall` says when).
  """
  _node(root).owned = tree


def owns_state(root):
  """Whether `root` still owns its stored state: the tree of `own_state`, unread and unchanged."""
  node = _node(root)
  return node.owned is not None and node.gathered.get('state') is node.owned


def hand_out_state(layer):
  """`cached_gather(layer, 'state')` for a caller that may keep it (the public `Layer.state`).

  Ends the ownership of every root whose state holds arrays of `layer` or of
  its sublayers, so that no call donates the arrays handed out.
  """
  _node(layer).owned = None
  for sub in unique_layers(layer):
    for ref in _node(sub).roots:
      other = ref()
      if other is not None:
        _node(other).owned = None
  return cached_gather(layer, 'state')


def fill_shared(root, kind, tree):
  """`tree` with the `()` slot of every repeated use holding the first use's tree."""
  return _join(root, kind, [own for _, own in _split(root, kind, tree)], True)


def clear_shared(root, kind, tree):
  """`tree` with `()` at every repeated use of a layer (the inverse of `fill_shared`)."""
  return _join(root, kind, [own for _, own in _split(root, kind, tree)], False)


def save(root, file_name):
  """Writes the weights and state trees of `root` to a minitrax checkpoint file."""
  checkpoint.save(
      file_name, {'weights': cached_gather(root, 'weights'), 'state': cached_gather(root, 'state')})


def load(root, file_name, weights_only=False):
  """Stores the weights (and state unless `weights_only`) of a checkpoint file on `root`.

  Two kinds of file are read, told apart by their first bytes:

  * a minitrax checkpoint (magic `MTRXCKPT`) holding a dict with 'weights'
    (and 'state'), as `save` and the Trainer's `model.pkl` write. Its trees
    must match those of `root` in structure, shapes and dtypes.
  * a checkpoint of real Trax (a pickle: Trax 1.2's `model.pkl`; gzip: Trax
    1.4's `model.pkl.gz` with `model.weights.npy.gz` beside it), read by
    `minitrax.trax_import` without running its pickle. Trax's arrays fill the
    trees of `root` one to one in order (Trax's tree order, empty leaves left
    out); each must have the shape and dtype the model expects there. Trax's
    state keeps Dropout rates (0-d floats) that minitrax keeps in its layers:
    these are left out before the state is filled.

  Either way a tree that does not fit raises `CheckpointError` listing every
  mismatched path, and nothing is stored.
  """
  if trax_import.looks_like_trax(file_name):
    _load_trax(root, file_name, weights_only)
    return
  tree = checkpoint.load(file_name)
  if not isinstance(tree, dict) or 'weights' not in tree:
    found = sorted(map(str, tree)) if isinstance(tree, dict) else type(tree).__name__
    raise CheckpointError(f'{file_name}: not a model checkpoint: expected a dict with '
                          f'"weights", found {found}')
  kinds = KINDS[:1] if weights_only else KINDS
  for kind in kinds:
    checkpoint.check_compatible(tree.get(kind), cached_gather(root, kind), file_name, kind)
  for kind in kinds:
    scatter(root, kind, jax.tree.map(jnp.asarray, tree[kind]))


def _load_trax(root, file_name, weights_only):
  """`load` of a real Trax checkpoint: its leaves fill the trees of `root` in order."""
  file_name = str(file_name)
  saved = trax_import.read_checkpoint(file_name)
  filled = {
      'weights':
          trax_import.fill_tree(cached_gather(root, 'weights'),
                                trax_import.trax_leaves(saved.weights), file_name, 'weights')
  }
  if not weights_only:
    filled['state'] = trax_import.fill_tree(cached_gather(root, 'state'),
                                            trax_import.state_leaves(saved.state), file_name,
                                            'state')
  for kind, tree in filled.items():
    scatter(root, kind, jax.tree.map(jnp.asarray, tree))


def flatten_weights_and_state(weights, state):
  """`(flat weights, flat state)`: the arrays of both trees in order, empty parts left out.

  Trax's function: the order is depth-first, as checkpoints of Trax 1.4 store
  weights; `unflatten_weights_and_state` puts them back.

  Args:
    weights, state: A layer's weights and state trees (nested tuples/dicts of
      arrays; `EMPTY` parts hold no leaves).
  """
  return jax.tree.leaves(weights), jax.tree.leaves(state)


def unflatten_weights_and_state(flat_weights, flat_state, weights_and_state_signature,
                                weights_only=False):
  """`(weights, state)` in the structure of `weights_and_state_signature` from flat lists.

  The inverse of `flatten_weights_and_state`; with `weights_only` the state is None.

  Args:
    flat_weights, flat_state: Sequences of arrays in depth-first order, one per
      leaf of the matching tree of the signature (`flat_state` is not read
      when `weights_only`).
    weights_and_state_signature: A `(weights, state)` pair whose tree structure
      is used; its leaves are ignored.
    weights_only: If true, build only the weights and return None as the state.
  """
  weights_tree, state_tree = weights_and_state_signature
  weights = jax.tree.unflatten(jax.tree.structure(weights_tree), list(flat_weights))
  state = None if weights_only else jax.tree.unflatten(jax.tree.structure(state_tree),
                                                       list(flat_state))
  return weights, state


__all__ = [
    'EMPTY', 'TreeNode', 'Walk', 'unique_layers', 'has_shared_layers', 'gather', 'cached_gather',
    'scatter', 'own_state', 'owns_state', 'hand_out_state', 'fill_shared', 'clear_shared', 'save',
    'load', 'flatten_weights_and_state', 'unflatten_weights_and_state'
]
