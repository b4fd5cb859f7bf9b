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
Gathering, storing, sharing and saving these trees lives in `trees.py`; the
eager re-run that explains a NaN output of a compiled call in `diagnosis.py`.
"""

import contextlib
import difflib
import inspect

import jax

from minitrax.errors import ArgumentError, LayerAttributeError, LayerError
from minitrax.layers import diagnosis, trees
from minitrax.layers.trees import EMPTY
from minitrax.shapes import as_structs, signature


def as_signature(obj):
  """An input signature from ShapeDtypes, arrays or ShapeDtypeStructs (tuples kept)."""
  return signature(tuple(obj) if isinstance(obj, list) else obj)


def split_rng(rng, n):
  """`n` independent keys from `rng`, or `n` Nones when `rng` is None."""
  if rng is None:
    return [None] * n
  return list(jax.random.split(rng, n)) if n else []


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
    self._tree_node = trees.TreeNode()  # own weights and state, gathered trees
    self._rng = None
    self._initialized = False
    self._created_at = diagnosis.created_at(Layer)
    self._jit_pure_fn = None

  # ---------------------------------------------------------------- override

  def init_weights_and_state(self, input_signature, rng):
    """Makes this layer's `(weights, state)` from the input signature.

    Pure: returns new trees, stores nothing. Default: no weights, no state.
    Combinators initialise their sublayers here with `make_weights_and_state`
    (see `Serial`).
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
    """The name shown in `repr` and in errors."""
    return self._name

  @property
  def n_in(self):
    """Number of inputs taken from the data stack."""
    return self._n_in

  @property
  def n_out(self):
    """Number of outputs put back on the data stack."""
    return self._n_out

  @property
  def sublayers(self):
    """The layers this layer is made of (a tuple; empty for a leaf)."""
    return tuple(self._sublayers)

  @property
  def weights(self):
    """This layer's weights tree (sublayers' included); settable."""
    return trees.cached_gather(self, 'weights')

  @weights.setter
  def weights(self, weights):
    trees.scatter(self, 'weights', weights)

  @property
  def state(self):
    """This layer's state tree (sublayers' included); settable."""
    return trees.cached_gather(self, 'state')

  @state.setter
  def state(self, state):
    trees.scatter(self, 'state', state)

  @property
  def rng(self):
    """The key that `init` used; `__call__` uses it when given no rng."""
    return self._rng

  @rng.setter
  def rng(self, rng):
    self._rng = rng

  @property
  def initialized(self):
    """Whether `init` stored weights and state on this layer."""
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
    weights, state = self.make_weights_and_state(sig, rng)
    weights = trees.clear_shared(self, 'weights', weights)
    state = trees.clear_shared(self, 'state', state)
    self.weights, self.state = weights, state
    for layer in trees.unique_layers(self):
      object.__setattr__(layer, '_initialized', True)
    self._rng = rng
    return weights, state

  def make_weights_and_state(self, input_signature, rng):
    """`(weights, state)` of this layer for an input signature; stores nothing.

    Combinators initialise every sublayer through this hook: it calls
    `init_weights_and_state` and re-raises any error as a `LayerError` naming
    this layer (and, as it propagates, the combinators around it).

    Args:
      input_signature: `ShapeDtype`, or a tuple of them for `n_in > 1`.
      rng: JAX key (or None).
    """
    with self._errors_named('init', input_signature):
      return self.init_weights_and_state(input_signature, rng)

  def pure_fn(self, x, weights, state, rng):
    """`(outputs, new_state)` from inputs, weights, state and a key (or None).

    The one pure function of a layer: no side effects, safe under `jax.jit`,
    `jax.grad` and `jax.vmap`. Any exception is re-raised as `LayerError`.
    """
    shared = trees.has_shared_layers(self)
    if shared:
      weights = trees.fill_shared(self, 'weights', weights)
      state = trees.fill_shared(self, 'state', state)
    with self._errors_named('pure_fn', x):
      y, new_state = self.forward_with_state(x, weights, state, rng)
    if shared:
      new_state = trees.clear_shared(self, 'state', new_state)
    return y, new_state

  def __call__(self, x, weights=None, state=None, rng=None):
    """Runs the layer; uses stored weights/state when not given, stores new state.

    Initialises the layer from `x`'s signature on first use if `init` was not
    called. Calls go through one cached `jax.jit` of `pure_fn` (a loop of
    same-shaped calls compiles once) and reuse the gathered weights and state
    trees until some layer stores new ones (W4's codelab loop: 355 -> 440
    tokens/s). Under jit a bad token id or a predict-cache overflow only makes
    the outputs NaN; so when a floating-point output holds NaN, the call is
    re-run eagerly (`diagnosis.eager_error`, pre-call state): if that raises
    (e.g. 'ids must lie in [0, 32)'), the error propagates and no state is
    stored; if not (a genuine NaN), the jitted result is returned and stored.
    """
    if weights is None and not self._initialized:
      self.init(signature(x))
    weights = self.weights if weights is None else weights
    state = self.state if state is None else state
    rng = self._rng if rng is None else rng
    if self._jit_pure_fn is None:
      self._jit_pure_fn = jax.jit(diagnosis.with_nan_flag(self.pure_fn))
    y, new_state, has_nan = self._jit_pure_fn(x, weights, state, rng)
    if not isinstance(has_nan, jax.core.Tracer) and bool(has_nan):
      error = diagnosis.eager_error(self, x, weights, state, rng)
      if error is not None:
        raise error
    # pure_fn returns the structure it was given: the new state is the next call's tree.
    trees.scatter(self, 'state', new_state, keep=True)
    return y

  def output_signature(self, input_signature):
    """Output `ShapeDtype`(s) for the given input signature, via `jax.eval_shape`."""
    sig = as_signature(input_signature)

    def shapes_of_outputs(x, rng):
      weights, state = self.init_weights_and_state(sig, rng)
      return self.forward_with_state(x, weights, state, rng)[0]

    with self._errors_named('output_signature', sig):
      out = jax.eval_shape(shapes_of_outputs, as_structs(sig), jax.random.key(0))
    return signature(out)

  def output_signature_with(self, input_signature, weights, state, rng=None):
    """Output signature for given (possibly abstract) weights and state."""
    structs = as_structs(as_signature(input_signature))
    out = jax.eval_shape(lambda *args: self.pure_fn(*args)[0], structs, weights, state, rng)
    return signature(out)

  def predict_capacity(self):
    """The most positions this layer can decode in predict mode; None for no limit.

    Default: the least of its sublayers' capacities that are not None (None if
    none is). Layers with a predict-mode cache (attention) override it.
    """
    capacities = (sub.predict_capacity() for sub in self._sublayers)
    return min((c for c in capacities if c is not None), default=None)

  # ---------------------------------------------------------------- files

  def save_to_file(self, file_name):
    """Saves weights and state to a minitrax checkpoint file."""
    self._require_initialized('save_to_file')
    trees.save(self, file_name)

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
    trees.load(self, file_name, weights_only)

  # ---------------------------------------------------------------- trees

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
      got = type(tree).__name__ + (f' of {len(tree)}' if isinstance(tree, (tuple, list)) else '')
      raise LayerError(
          self._name, f'setting {kind}', self._created_at, None,
          ValueError(f'{kind} of {self._name} must be a tuple of {len(self._sublayers)} (one per '
                     f'sublayer), got {got}'))
    return tuple(tree), EMPTY

  # ---------------------------------------------------------------- internals

  @contextlib.contextmanager
  def _errors_named(self, method, x):
    """Re-raises any error of the block as a `LayerError` naming this layer, `method`, `x`."""
    try:
      yield
    except LayerError as e:
      e.add_outer(self._name)
      raise
    except Exception as e:  # pylint: disable=broad-except
      try:
        sig = signature(x)
      except Exception:  # pylint: disable=broad-except
        sig = repr(x)
      raise LayerError(self._name, method, self._created_at, sig, e) from e

  def _require_initialized(self, what):
    """Raises a `LayerError` naming `what` unless `init` has run."""
    if not self._initialized:
      raise LayerError(self._name, what, self._created_at, None,
                       RuntimeError(f'call init(input_signature) before {what}'))

  def __setattr__(self, attr, value):
    """The typo guard: after construction, only existing attributes can be set."""
    # The class is asked first: `hasattr(self, 'state')` would gather the tree.
    if (getattr(self, '_constructed', False) and not hasattr(type(self), attr) and
        not hasattr(self, attr)):
      known = [a for a in dir(self) if not a.startswith('__')]
      close = difflib.get_close_matches(attr, known, n=1)
      hint = f'; did you mean {close[0]!r}?' if close else ''
      raise LayerAttributeError(f'layer {self._name} has no attribute {attr!r} to set{hint}')
    object.__setattr__(self, attr, value)

  def __repr__(self):
    return '\n'.join(self._repr_lines())

  def _repr_lines(self):
    """The lines of `repr`: the name with arities, then the printed sublayers indented."""
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


class Fn(Layer):
  """A layer without weights from a function of its inputs.

  `n_in` is the number of positional parameters of `f` without defaults;
  `f` returns one array, or a tuple of `n_out` arrays.

  >>> import jax.numpy as jnp
  >>> double = Fn('Double', lambda x: 2 * x)
  >>> double
  Double
  >>> double(jnp.array([1.0, 2.0])).tolist()
  [2.0, 4.0]
  >>> Fn('Pair', lambda a, b: (a + b, a - b), n_out=2)
  Pair_in2_out2
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


__all__ = [
    'Layer', 'Fn', 'EMPTY', 'as_signature', 'split_rng', 'stack_inputs', 'push_outputs', 'as_stack',
    'from_stack'
]
