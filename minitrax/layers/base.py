"""The `Layer` base class: weights and state held on the object, one pure function.

The contract (after Trax): a layer is created with output sizes only
(`Dense(10)`) and learns its input sizes from an *input signature* (a
`ShapeDtype`, or a tuple of them) in `init`. Layers work on a data stack
(`stack.py`): a layer takes `n_in` inputs and gives `n_out` outputs; one input
or output is a bare array, several are a tuple. `pure_fn(x, weights, state,
rng) -> (y, new_state)` is the one pure function, the only thing `jax.jit` and
`jax.grad` ever see; the friendly API (`layer(x)`, `layer.weights`,
`layer.state`) sits on top of it and never stores a tracer.

Writing a new layer means overriding two methods::

    class Scale(Layer):
      '''Multiplies by one learned scalar: (...) -> (...).'''

      def init_weights_and_state(self, input_signature, rng):
        return jnp.ones((), input_signature.dtype), ()    # (weights, state)

      def forward(self, x, weights):
        return x * weights

Layers with state or randomness (BatchNorm, Dropout) override
`forward_with_state(x, weights, state, rng) -> (y, new_state)` instead of
`forward`. The forms Trax 1.2 and 1.4 documented work too (`forms.py`).
Combinators' weights and state are tuples, one entry per sublayer. A layer
used twice in one model shares its weights (as in Trax): the tree holds them
at the first use and `()` at the others (`trees.py`).
"""

import contextlib
import difflib
import inspect

import jax

from minitrax.checks import check_int
from minitrax.errors import LayerAttributeError, LayerError
from minitrax.layers import diagnosis, donation, forms, trees
from minitrax.layers import files as layer_files
from minitrax.layers.stack import as_stack, check_n_inputs, from_stack, push_outputs, stack_inputs
from minitrax.layers.trees import EMPTY
from minitrax.shapes import as_structs, signature


def as_signature(obj):
  """An input signature from ShapeDtypes, arrays or ShapeDtypeStructs (tuples kept).

  Args:
    obj: one of those, or a tuple or list of them (a list becomes a tuple).
  """
  return signature(tuple(obj) if isinstance(obj, list) else obj)


def split_rng(rng, n):
  """A list of `n` independent keys from `rng`, or of `n` Nones when `rng` is None.

  Args:
    rng: a JAX key, or None.
    n: int >= 0, the number of keys.
  """
  if rng is None:
    return [None] * n
  return list(jax.random.split(rng, n)) if n else []


class _LayerMeta(type):
  """Marks a layer as constructed, so that the typo guard can start working."""

  def __call__(cls, *args, **kwargs):
    made = super().__call__(*args, **kwargs)
    object.__setattr__(made, '_constructed', True)
    return made

  @property
  def __signature__(cls):
    """The constructor's signature (without `self`), for `help()` and `inspect`."""
    init = inspect.signature(cls.__init__)
    return init.replace(parameters=list(init.parameters.values())[1:])


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
    self._input_signature = None
    self._scope = None  # set while a Trax-form method runs (see `forms`)
    self._created_at = diagnosis.created_at(Layer)
    self._jit_pure_fn = None

  # ---------------------------------------------------------------- override

  def init_weights_and_state(self, input_signature, rng):
    """Makes this layer's `(weights, state)` from the input signature.

    Pure: returns new trees, stores nothing. Default: no weights, no state.
    Combinators call their sublayers' `make_weights_and_state` here.
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
    """This layer's weights tree (sublayers' included); settable.

    While a method written in a Trax form runs, the weights of that call.
    """
    return self._scope.weights if self._scope else trees.cached_gather(self, 'weights')

  @weights.setter
  def weights(self, weights):
    if self._scope:
      self._scope.weights = weights
    else:
      trees.scatter(self, 'weights', weights)

  @property
  def state(self):
    """This layer's state tree (sublayers' included); settable (as `weights`)."""
    return self._scope.state if self._scope else trees.hand_out_state(self)

  @state.setter
  def state(self, state):
    if self._scope:
      self._scope.state = state
    else:
      trees.scatter(self, 'state', state)

  @property
  def rng(self):
    """The key that `init` used (`__call__` uses it when given none); in a call, the call's."""
    return self._scope.rng if self._scope else self._rng

  @rng.setter
  def rng(self, rng):
    if self._scope:
      self._scope.rng = rng
    object.__setattr__(self, '_rng', rng)

  def new_rng(self):
    """A new key split off `self.rng`, which moves on (Trax's `new_rng`)."""
    return self.new_rngs(1)[0]

  def new_rngs(self, n):
    """`n` new keys split off `self.rng`, which moves on (Trax's `new_rngs`)."""
    check_int(f'{self._name}.new_rngs', 'n', n, 1)
    rng = jax.random.key(0) if self.rng is None else self.rng
    keys = jax.random.split(rng, n + 1)
    self.rng = keys[0]
    return tuple(keys[1:])

  @property
  def input_signature(self):
    """The input signature of the last `init`, or None."""
    return self._input_signature

  @property
  def has_backward(self):
    """True if the layer computes its own gradients with `backward` (Trax's custom VJP)."""
    return False

  def backward(self, inputs, output, grad, weights, state, new_state, rng=None):
    """`(gradient of the inputs, gradient of the weights)`, given `grad` of the output."""
    raise NotImplementedError(f'layer {self._name} has_backward but no backward')

  @property
  def initialized(self):
    """Whether `init` stored weights and state on this layer."""
    return self._initialized

  # ---------------------------------------------------------------- main API

  def init(self, input_signature, rng=None, use_cache=False):
    """Initialises weights and state from an input signature and stores them.

    This layer's own weights are drawn anew; sublayers that already hold
    weights keep them (as in Trax, so `Serial(trained_model, LogSoftmax())`
    keeps the trained model). Every layer's state is made anew.

    Args:
      input_signature: `ShapeDtype` (or tuple of them for `n_in > 1`); arrays
        and `jax.ShapeDtypeStruct`s are accepted too.
      rng: JAX key; default `jax.random.key(0)` (deterministic).
      use_cache: if True and the layer is initialised, change nothing (Trax 1.4).

    Returns:
      `(weights, state)`, also stored on the layer (and its sublayers).
    """
    if use_cache and self._initialized:
      return self.weights, self.state
    sig = as_signature(input_signature)
    rng = jax.random.key(0) if rng is None else rng
    with self._errors_named('init', sig):
      check_n_inputs(self, sig)
      weights, state = forms.make_weights_and_state(self, sig, rng)
    weights = trees.clear_shared(self, 'weights', weights)
    state = trees.clear_shared(self, 'state', state)
    self.weights, self.state = weights, state
    for sub in trees.unique_layers(self):
      object.__setattr__(sub, '_initialized', True)
    self._rng, self._input_signature = rng, sig
    return weights, state

  def make_weights_and_state(self, input_signature, rng):
    """`(weights, state)` of this layer as a sublayer of one being initialised; stores nothing.

    Combinators initialise every sublayer through this hook; a layer already
    holding weights keeps them (Trax's rule), state is always new. Errors
    become a `LayerError` naming this layer and the combinators around it.

    Args:
      input_signature: `ShapeDtype`, or a tuple of them for `n_in > 1`.
      rng: JAX key (or None).
    """
    with self._errors_named('init', input_signature):
      weights, state = forms.make_weights_and_state(self, input_signature, rng)
    return (self.weights if self._initialized else weights), state

  def pure_fn(self, x, weights, state, rng, use_cache=False):
    """`(outputs, new_state)` from inputs, weights, state and a key (or None).

    The one pure function of a layer: no side effects, safe under `jax.jit`,
    `jax.grad` and `jax.vmap`. Any exception is re-raised as `LayerError`;
    more inputs than `n_in` is one. (`use_cache`, Trax 1.4's way of sharing
    weights, is accepted; minitrax shares weights through the trees.)
    """
    del use_cache
    shared = trees.has_shared_layers(self)
    if shared:
      weights = trees.fill_shared(self, 'weights', weights)
      state = trees.fill_shared(self, 'state', state)
    with self._errors_named('pure_fn', x):
      check_n_inputs(self, x)
      y, new_state = forms.forward(self, x, weights, state, rng)
    if shared:
      new_state = trees.clear_shared(self, 'state', new_state)
    return y, new_state

  def __call__(self, x, weights=None, state=None, rng=None):
    """Runs the layer; uses stored weights/state when not given, stores new state.

    Initialises the layer from `x`'s signature on first use if `init` was not
    called. Calls go through one cached `jax.jit` of `pure_fn` (same-shaped
    calls compile once) that donates the state: a state the layer owns (made
    by its last call, not read since) is updated in place, any other is
    copied first, so arrays you hold stay valid (`donation.py`). A NaN output
    (under jit, all a bad token id or a cache overflow can do) re-runs the
    call eagerly (`diagnosis.eager_error`) to raise the error it hides.
    """
    if weights is None and not self._initialized:
      self.init(signature(x))
    weights = self.weights if weights is None else weights
    owned = state is None and trees.owns_state(self)
    state = trees.cached_gather(self, 'state') if state is None else state
    if self._jit_pure_fn is None:
      self._jit_pure_fn = donation.CompiledCall(self.pure_fn)
    return self._jit_pure_fn(self, x, weights, state, self._rng if rng is None else rng, owned)

  def output_signature(self, input_signature):
    """Output `ShapeDtype`(s) for the given input signature, via `jax.eval_shape`."""
    sig = as_signature(input_signature)

    def shapes_of_outputs(x, rng):
      weights, state = forms.make_weights_and_state(self, sig, rng)
      return forms.forward(self, x, weights, state, rng)[0]

    with self._errors_named('output_signature', sig):
      check_n_inputs(self, sig)
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

  def save_to_file(self, file_name, weights_only=False, input_signature=None):
    """Saves weights (and state unless `weights_only`) to a minitrax checkpoint file.

    The file also records the input signature (`input_signature`, default the
    last `init`'s), so that `init_from_file` can initialise a new layer from it.
    """
    self._require_initialized('save_to_file')
    sig = input_signature if input_signature is not None else self._input_signature
    layer_files.save(file_name, self.weights, None if weights_only else self.state,
                     None if sig is None else as_signature(sig))

  def init_from_file(self, file_name, weights_only=False, input_signature=None):
    """Loads weights (and state unless `weights_only`) from a checkpoint file.

    Reads `save_to_file`'s files, the Trainer's `model.pkl` and Trax 1.2/1.4
    checkpoints without running their pickle. An uninitialised layer is first initialised from
    `input_signature`, else from the signature the file records; trees,
    shapes and dtypes must match exactly, else a `CheckpointError` lists
    every mismatched path and nothing is loaded.
    """
    if input_signature is None and not self._initialized:
      input_signature = layer_files.signature_in_file(file_name, self._n_in)
    if input_signature is not None:
      self.init(input_signature)
    self._require_initialized('init_from_file')
    trees.load(self, file_name, weights_only)

  # ---------------------------------------------------------------- trees

  def pack_tree(self, kind, sub_trees, own):
    """Builds this layer's `kind` ('weights'/'state') tree from its parts.

    Default: a leaf's own tree; a combinator's sublayers' trees as a tuple.
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
    """The typo guard: after construction only existing public attributes (or `_private`)."""
    # The class is asked first: `hasattr(self, 'state')` would gather the tree.
    if (not attr.startswith('_') and getattr(self, '_constructed', False) and
        not hasattr(type(self), attr) and not hasattr(self, attr)):
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


__all__ = [
    'Layer', 'Fn', 'EMPTY', 'as_signature', 'split_rng', 'stack_inputs', 'push_outputs', 'as_stack',
    'from_stack'
]

# Built on `Layer` in fn.py, and known here too (`trax.layers.base.Fn`, `.layer`, `.PureLayer`).
from minitrax.layers.fn import Fn, PureLayer, layer  # noqa: E402,F401  pylint: disable=wrong-import-position
