"""The `Layer` base class: weights and state held on the object, one pure function.

The contract (after Trax):

* A layer is created with output sizes only (`Dense(10)`); it learns its input
  sizes from an *input signature* (a `ShapeDtype`, or a tuple of them) in
  `init`.
* Layers work on a data stack: a layer takes `n_in` inputs and gives `n_out`
  outputs. One input or output is a bare array, several are a tuple.
* `pure_fn(x, weights, state, rng) -> (y, new_state)` is the one pure function;
  it is the only thing `jax.jit` and `jax.grad` ever see. The friendly API
  (`layer(x)`, `layer.weights`, `layer.state`) sits on top of it and never
  stores a tracer.

Writing a new layer means overriding two methods::

    class Scale(Layer):
      '''Multiplies by one learned scalar: (...) -> (...).'''

      def init_weights_and_state(self, input_signature, rng):
        return jnp.ones((), input_signature.dtype), ()    # (weights, state)

      def forward(self, x, weights):
        return x * weights

Layers with state or randomness (BatchNorm, Dropout) override
`forward_with_state(x, weights, state, rng) -> (y, new_state)` instead of
`forward`. Combinators hold `sublayers`; their weights and state are tuples
with one entry per sublayer.

A layer instance used twice in one model shares its weights (Trax semantics):
the weights tree holds them at the first use and an empty tuple at the others.
"""

import difflib
import inspect
import os
import sys

import jax
import jax.numpy as jnp

from minitrax import checkpoint
from minitrax.errors import ArgumentError, CheckpointError, LayerAttributeError, LayerError
from minitrax.shapes import as_structs, signature

EMPTY = ()
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _created_at():
  """file:line of the user code that created a layer (outside minitrax and __init__s)."""
  frame = sys._getframe(2)  # pylint: disable=protected-access
  while frame is not None and (frame.f_code.co_filename.startswith(_PACKAGE_DIR) or (
      frame.f_code.co_name == '__init__' and isinstance(frame.f_locals.get('self'), Layer))):
    frame = frame.f_back
  if frame is None:
    return '<unknown>'
  return f'{frame.f_code.co_filename}:{frame.f_lineno}'


def as_signature(obj):
  """An input signature from ShapeDtypes, arrays or ShapeDtypeStructs (tuples kept)."""
  if isinstance(obj, list):
    obj = tuple(obj)
  return signature(obj)


def split_rng(rng, n):
  """`n` independent keys from `rng`, or `n` Nones when `rng` is None."""
  if rng is None:
    return [None] * n
  if n == 0:
    return []
  return list(jax.random.split(rng, n))


class _LayerMeta(type):
  """Marks a layer as constructed, so that the typo guard can start working."""

  def __call__(cls, *args, **kwargs):
    layer = super().__call__(*args, **kwargs)
    object.__setattr__(layer, '_constructed', True)
    return layer


class Layer(metaclass=_LayerMeta):
  """Base class of all layers; see the module docstring for the contract.

  Args:
    n_in: number of inputs taken from the data stack.
    n_out: number of outputs put back on the stack.
    name: name shown in `repr` and errors; default: the class name.
    sublayers_to_print: sublayers shown by `repr` instead of `sublayers`
      (for layers built as a Serial of helpers, e.g. Branch).
  """

  def __init__(self, n_in=1, n_out=1, name=None, sublayers_to_print=None):
    self._n_in = n_in
    self._n_out = n_out
    self._name = name or type(self).__name__
    self._sublayers = ()
    self._sublayers_to_print = sublayers_to_print
    self._weights = EMPTY
    self._state = EMPTY
    self._rng = None
    self._initialized = False
    self._created_at = _created_at()
    self._jit_pure_fn = None
    self._shared_ids_cache = None
    self._tree_cache = {}

  # ---------------------------------------------------------------- override

  def init_weights_and_state(self, input_signature, rng):
    """Makes this layer's `(weights, state)` from the input signature.

    Pure: returns new trees, stores nothing. Default: no weights, no state.
    Combinators initialise their sublayers here (see `Serial`).
    """
    del input_signature, rng
    return EMPTY, EMPTY

  def forward(self, x, weights):
    """Computes outputs from inputs and weights (layers without state or rng)."""
    raise NotImplementedError(f'layer {self._name} must override forward or forward_with_state')

  def forward_with_state(self, x, weights, state, rng):
    """Computes `(outputs, new_state)`; the default calls `forward`."""
    del rng
    return self.forward(x, weights), state

  # ---------------------------------------------------------------- properties

  @property
  def name(self):
    return self._name

  @property
  def n_in(self):
    return self._n_in

  @property
  def n_out(self):
    return self._n_out

  @property
  def sublayers(self):
    return tuple(self._sublayers)

  @property
  def weights(self):
    """This layer's weights tree (sublayers' included); settable."""
    return _cached_gather(self, 'weights')

  @weights.setter
  def weights(self, weights):
    _scatter_all(self, 'weights', weights)

  @property
  def state(self):
    """This layer's state tree (sublayers' included); settable."""
    return _cached_gather(self, 'state')

  @state.setter
  def state(self, state):
    _scatter_all(self, 'state', state)

  @property
  def rng(self):
    """The key that `init` used; `__call__` uses it when given no rng."""
    return self._rng

  @rng.setter
  def rng(self, rng):
    self._rng = rng

  @property
  def initialized(self):
    return self._initialized

  # ---------------------------------------------------------------- main API

  def init(self, input_signature, rng=None):
    """Initialises weights and state from an input signature and stores them.

    Args:
      input_signature: `ShapeDtype` (or tuple of them for `n_in > 1`); arrays
        and `jax.ShapeDtypeStruct`s are accepted too.
      rng: JAX key; default `jax.random.key(0)` (deterministic).

    Returns:
      `(weights, state)`, also stored on the layer (and its sublayers).
    """
    sig = as_signature(input_signature)
    rng = jax.random.key(0) if rng is None else rng
    weights, state = self._init_checked(sig, rng)
    weights = _unresolve(self, 'weights', weights, set())
    state = _unresolve(self, 'state', state, set())
    self.weights, self.state = weights, state
    for layer in _all_layers(self):
      object.__setattr__(layer, '_initialized', True)
    self._rng = rng
    return weights, state

  def pure_fn(self, x, weights, state, rng):
    """`(outputs, new_state)` from inputs, weights, state and a key (or None).

    The one pure function of a layer: no side effects, safe under `jax.jit`,
    `jax.grad` and `jax.vmap`. Any exception is re-raised as `LayerError`.
    """
    shared = self._shared_ids()
    if shared:
      weights = _resolve(self, 'weights', weights, {})
      state = _resolve(self, 'state', state, {})
    try:
      y, new_state = self.forward_with_state(x, weights, state, rng)
    except LayerError as e:
      e.add_outer(self._name)
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise self._error('pure_fn', x, e) from e
    if shared:
      new_state = _unresolve(self, 'state', new_state, set())
    return y, new_state

  def __call__(self, x, weights=None, state=None, rng=None):
    """Runs the layer; uses stored weights/state when not given, stores new state.

    Initialises the layer from `x`'s signature on first use if `init` was not
    called. Calls go through one cached `jax.jit` of `pure_fn`, so calling in a
    Python loop with same-shaped inputs compiles once, and the weights and
    state trees gathered from the layer objects are reused until some layer
    stores new ones (W4's codelab loop: 355 -> 440 tokens/s).

    Compiled programs hold no host callbacks, so under jit a token id out of
    range or a predict cache overflow only makes the outputs NaN (see
    `core.check_ids`). When a floating-point output holds NaN, the call is
    therefore re-run eagerly (no jit, the same inputs, weights, pre-call state
    and rng): if that raises (a `LayerError` from the eager checks, e.g.
    'ids must lie in [0, 32)'), the error propagates and no state is stored;
    if not (a genuine NaN), the jitted result is returned and its state stored.
    """
    if weights is None and not self._initialized:
      self.init(signature(x))
    weights = self.weights if weights is None else weights
    state = self.state if state is None else state
    rng = self._rng if rng is None else rng
    if self._jit_pure_fn is None:
      self._jit_pure_fn = jax.jit(self._pure_fn_with_nan_flag)
    y, new_state, has_nan = self._jit_pure_fn(x, weights, state, rng)
    if not isinstance(has_nan, jax.core.Tracer) and bool(has_nan):
      self.pure_fn(x, weights, state, rng)  # raises the LayerError of a bad id or position
    self.state = new_state
    # The next call's state is this tree: pure_fn returns the structure it was given.
    self.__dict__.setdefault('_tree_cache', {})['state'] = (_GENERATION['state'], new_state)
    return y

  def _pure_fn_with_nan_flag(self, x, weights, state, rng):
    """`pure_fn`, plus whether a floating-point output holds NaN (one program for `__call__`)."""
    y, new_state = self.pure_fn(x, weights, state, rng)
    return y, new_state, _any_nan(y)

  def output_signature(self, input_signature):
    """Output `ShapeDtype`(s) for the given input signature, via `jax.eval_shape`."""
    sig = as_signature(input_signature)
    try:
      def shapes_of_outputs(x, rng):
        weights, state = self.init_weights_and_state(sig, rng)
        return self.forward_with_state(x, weights, state, rng)[0]
      out = jax.eval_shape(shapes_of_outputs, as_structs(sig), jax.random.key(0))
    except LayerError as e:
      e.add_outer(self._name)
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise self._error('output_signature', sig, e) from e
    return signature(out)

  def output_signature_with(self, input_signature, weights, state, rng=None):
    """Output signature for given (possibly abstract) weights and state."""
    def outputs(x, w, s, r):
      return self.pure_fn(x, w, s, r)[0]
    sig = as_signature(input_signature)
    return signature(jax.eval_shape(outputs, as_structs(sig), weights, state, rng))

  # ---------------------------------------------------------------- files

  def save_to_file(self, file_name):
    """Saves weights, state and input signature to a minitrax checkpoint file."""
    self._require_initialized('save_to_file')
    checkpoint.save(file_name, {'weights': self.weights, 'state': self.state})

  def init_from_file(self, file_name, weights_only=False, input_signature=None):
    """Loads weights (and state unless `weights_only`) from a checkpoint file.

    Reads files written by `save_to_file` and the Trainer's `model.pkl` (both
    minitrax msgpack checkpoints holding `weights` and `state`; pickles are
    refused, never unpickled). The layer must be initialised first (or pass
    `input_signature`); trees, shapes and dtypes must match exactly, else a
    `CheckpointError` lists every mismatched path and nothing is loaded.
    """
    if input_signature is not None:
      self.init(input_signature)
    self._require_initialized('init_from_file')
    tree = checkpoint.load(file_name)
    if not isinstance(tree, dict) or 'weights' not in tree:
      found = sorted(map(str, tree)) if isinstance(tree, dict) else type(tree).__name__
      raise CheckpointError(f'{file_name}: not a model checkpoint: expected a dict with '
                            f'"weights", found {found}')
    checkpoint.check_compatible(tree['weights'], self.weights, file_name, 'weights')
    if not weights_only:
      checkpoint.check_compatible(tree.get('state'), self.state, file_name, 'state')
    self.weights = jax.tree.map(jnp.asarray, tree['weights'])
    if not weights_only:
      self.state = jax.tree.map(jnp.asarray, tree['state'])

  # ---------------------------------------------------------------- internals

  def _init_checked(self, input_signature, rng):
    """`init_weights_and_state` with errors re-raised as LayerError."""
    try:
      return self.init_weights_and_state(input_signature, rng)
    except LayerError as e:
      e.add_outer(self._name)
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise self._error('init', input_signature, e) from e

  def _error(self, method, x, cause):
    try:
      sig = signature(x)
    except Exception:  # pylint: disable=broad-except
      sig = repr(x)
    return LayerError(self._name, method, self._created_at, sig, cause)

  def _require_initialized(self, what):
    if not self._initialized:
      raise LayerError(self._name, what, self._created_at, None, RuntimeError(
          f'call init(input_signature) before {what}'))

  def _shared_ids(self):
    """Ids of layer objects that occur more than once under this layer."""
    if self._shared_ids_cache is None:
      counts = {}
      def visit(layer):
        counts[id(layer)] = counts.get(id(layer), 0) + 1
        if counts[id(layer)] == 1:
          for sub in layer.sublayers:
            visit(sub)
      visit(self)
      self._shared_ids_cache = frozenset(i for i, c in counts.items() if c > 1)
    return self._shared_ids_cache

  def pack_tree(self, kind, sub_trees, own):
    """Builds this layer's `kind` ('weights'/'state') tree from its parts.

    Default: a leaf's tree is its own; a combinator's is the tuple of its
    sublayers' trees. `Cache` overrides this to add its own state.
    """
    del kind
    return own if not self._sublayers else tuple(sub_trees)

  def unpack_tree(self, kind, tree):
    """Inverse of `pack_tree`: `(sub_trees, own)`; checks the tuple length."""
    if not self._sublayers:
      return (), tree
    if not isinstance(tree, (tuple, list)) or len(tree) != len(self._sublayers):
      got = f'{type(tree).__name__} of {len(tree)}' if isinstance(tree, (tuple, list)) else \
          type(tree).__name__
      raise LayerError(self._name, f'setting {kind}', self._created_at, None, ValueError(
          f'{kind} of {self._name} must be a tuple of {len(self._sublayers)} (one per '
          f'sublayer), got {got}'))
    return tuple(tree), EMPTY

  def __setattr__(self, attr, value):
    # The class is asked first: `hasattr(self, 'state')` would gather the tree.
    if (getattr(self, '_constructed', False) and not hasattr(type(self), attr)
        and not hasattr(self, attr)):
      known = [a for a in dir(self) if not a.startswith('__')]
      close = difflib.get_close_matches(attr, known, n=1)
      hint = f'; did you mean {close[0]!r}?' if close else ''
      raise LayerAttributeError(f'layer {self._name} has no attribute {attr!r} to set{hint}')
    object.__setattr__(self, attr, value)

  def __repr__(self):
    return '\n'.join(self._repr_lines())

  def _repr_lines(self):
    name = self._name
    if self._n_in != 1:
      name += f'_in{self._n_in}'
    if self._n_out != 1:
      name += f'_out{self._n_out}'
    subs = self._sublayers_to_print if self._sublayers_to_print is not None else self._sublayers
    if not subs:
      return [name]
    lines = [name + '[']
    for sub in subs:
      lines.extend('  ' + line for line in sub._repr_lines())  # pylint: disable=protected-access
    return lines + [']']


def _any_nan(tree):
  """Scalar bool: whether any floating-point leaf of `tree` holds NaN."""
  flags = [jnp.any(jnp.isnan(leaf)) for leaf in jax.tree.leaves(tree)
           if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
  return jnp.any(jnp.stack(flags)) if flags else jnp.zeros((), bool)


# ------------------------------------------------------------------ tree walks


def _all_layers(layer, seen=None):
  seen = set() if seen is None else seen
  if id(layer) in seen:
    return []
  seen.add(id(layer))
  out = [layer]
  for sub in layer.sublayers:
    out.extend(_all_layers(sub, seen))
  return out


def _gather(layer, kind, seen):
  """The stored `kind` tree; layers seen before contribute ()."""
  if id(layer) in seen:
    return EMPTY
  seen.add(id(layer))
  subs = [_gather(s, kind, seen) for s in layer.sublayers]
  return layer.pack_tree(kind, subs, getattr(layer, '_' + kind))


# Every store of weights or state (through `_scatter_all`) bumps its kind's
# generation; a layer's gathered tree is reused while the generation is unchanged,
# so a loop of `layer(x)` calls does not walk the layer tree for the weights.
_GENERATION = {'weights': 0, 'state': 0}


def _cached_gather(layer, kind):
  """`_gather(layer, kind)`, reused until any layer's `kind` is stored again."""
  cache = layer.__dict__.setdefault('_tree_cache', {})
  hit = cache.get(kind)
  if hit is None or hit[0] != _GENERATION[kind]:
    hit = (_GENERATION[kind], _gather(layer, kind, set()))
    cache[kind] = hit
  return hit[1]


def _scatter_all(layer, kind, tree):
  """Stores a `kind` tree on `layer` and its sublayers; invalidates gathered trees."""
  _GENERATION[kind] += 1
  _scatter(layer, kind, tree, set())


def _scatter(layer, kind, tree, seen):
  """Stores a `kind` tree on the layer objects; layers seen before are skipped."""
  if id(layer) in seen:
    return
  seen.add(id(layer))
  subs, own = layer.unpack_tree(kind, tree)
  object.__setattr__(layer, '_' + kind, own)
  for sub, sub_tree in zip(layer.sublayers, subs):
    _scatter(sub, kind, sub_tree, seen)


def _resolve(layer, kind, tree, seen):
  """Fills the () slots of repeated layers with their first use's tree."""
  if id(layer) in seen:
    return seen[id(layer)]
  if layer.sublayers:
    subs, own = layer.unpack_tree(kind, tree)
    subs = [_resolve(s, kind, t, seen) for s, t in zip(layer.sublayers, subs)]
    tree = layer.pack_tree(kind, subs, own)
  seen[id(layer)] = tree
  return tree


def _unresolve(layer, kind, tree, seen):
  """Replaces the trees of repeated layers (after the first use) with ()."""
  if id(layer) in seen:
    return EMPTY
  seen.add(id(layer))
  if not layer.sublayers:
    return tree
  subs, own = layer.unpack_tree(kind, tree)
  subs = [_unresolve(s, kind, t, seen) for s, t in zip(layer.sublayers, subs)]
  return layer.pack_tree(kind, subs, own)


# ------------------------------------------------------------------ Fn


class Fn(Layer):
  """A layer without weights from a function of its inputs.

  `n_in` is the number of positional parameters of `f`; `f` returns one
  array, or a tuple of `n_out` arrays.

  >>> Fn('Double', lambda x: 2 * x)
  """

  def __init__(self, name, f, n_out=1):
    try:
      params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError) as e:
      raise ArgumentError(f'Fn {name}: cannot read the parameters of {f!r}') from e
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
      raise ArgumentError(f'Fn {name}: f must have a fixed number of positional parameters')
    n_in = sum(1 for p in params if p.default is p.empty and p.kind != p.KEYWORD_ONLY)
    super().__init__(n_in=n_in, n_out=n_out, name=name)
    self._f = f

  def forward(self, x, weights):
    del weights
    return self._f(*x) if self._n_in != 1 else self._f(x)


def stack_inputs(layer, stack):
  """The inputs of `layer` from the top of a data stack (tuple)."""
  if layer.n_in == 1:
    return stack[0]
  return tuple(stack[:layer.n_in])


def push_outputs(layer, outputs, stack):
  """The stack after `layer` consumed its inputs and produced `outputs`."""
  if layer.n_out == 1:
    outputs = (outputs,)
  elif not isinstance(outputs, (tuple, list)) or len(outputs) != layer.n_out:
    raise ArgumentError(f'layer {layer.name} declares n_out={layer.n_out} but returned '
                     f'{len(outputs) if isinstance(outputs, (tuple, list)) else "one array"}')
  return tuple(outputs) + tuple(stack[layer.n_in:])


def as_stack(x, n_in):
  """The inputs of a layer as a tuple of `n_in` items."""
  if n_in == 1:
    return (x,)
  if not isinstance(x, (tuple, list)) or len(x) < n_in:
    got = f'{len(x)} items' if isinstance(x, (tuple, list)) else 'one array'
    raise ArgumentError(f'expected a tuple of {n_in} inputs, got {got}')
  return tuple(x)


def from_stack(stack, n_out):
  """Outputs of a layer from its final stack: a bare array when `n_out == 1`."""
  return stack[0] if n_out == 1 else tuple(stack[:n_out])


__all__ = ['Layer', 'Fn', 'EMPTY', 'as_signature', 'split_rng', 'stack_inputs',
           'push_outputs', 'as_stack', 'from_stack']
