"""Combinators: layers made of layers, working on the data stack.

Every layer takes its `n_in` inputs from the top of a stack and puts its
`n_out` outputs back. The small combinators (`Branch`, `Residual`, `Dup`, ...)
are functions built from `Serial`, `Parallel`, `Select` and `Fn`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_mode
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import (Fn, Layer, as_stack, from_stack, push_outputs, split_rng,
                                  stack_inputs)


def _flatten(layers, name):
  """Flattens nested lists/tuples of layers; checks every item is a Layer."""
  out = []
  for i, item in enumerate(layers):
    if isinstance(item, (list, tuple)):
      out.extend(_flatten(item, name))
    elif not isinstance(item, Layer):
      hint = ' (only Serial(None) stands for the identity)' if item is None else ''
      raise ArgumentTypeError(f'{name}: item {i} is a {type(item).__name__}, not a Layer{hint}')
    else:
      out.append(item)
  return out


def _as_branch(item, name):
  """One branch of Parallel/Branch: None or [] is the identity, a list a Serial."""
  if item is None or isinstance(item, (list, tuple)):
    return Serial(*_flatten([item] if item else [], name))
  if not isinstance(item, Layer):
    raise ArgumentTypeError(f'{name}: a branch is a {type(item).__name__}, not a Layer or list')
  return item


def _serial_arity(layers):
  """(n_in, n_out) of running `layers` one after another on the stack."""
  depth = need = 0  # depth: items produced beyond what was taken from the input
  for layer in layers:
    depth -= layer.n_in
    need = max(need, -depth)
    depth += layer.n_out
  return need, need + depth


class Serial(Layer):
  """Runs sublayers one after another on the data stack.

  `n_in`/`n_out` follow from the sublayers' stack effects (`Serial(Dup(), Add())` is 1 -> 1).

  Args:
    *sublayers: layers or nested lists of them (flattened); `Serial()` and
      `Serial(None)` are the identity, a None elsewhere is an error.
    name: shown in `repr` and errors (default 'Serial').
    sublayers_to_print: the sublayers `repr` shows instead (None: all).
  """

  def __init__(self, *sublayers, name=None, sublayers_to_print=None):
    layers = [] if len(sublayers) == 1 and sublayers[0] is None else _flatten(sublayers, 'Serial')
    n_in, n_out = _serial_arity(layers) if layers else (1, 1)
    super().__init__(n_in=n_in, n_out=n_out, name=name or 'Serial',
                     sublayers_to_print=sublayers_to_print)
    self._sublayers = tuple(layers)

  def init_weights_and_state(self, input_signature, rng):
    stack = as_stack(input_signature, self.n_in)
    weights, states = [], []
    for layer, r in zip(self._sublayers, split_rng(rng, len(self._sublayers))):
      inputs = stack_inputs(layer, stack)
      w, s = layer.make_weights_and_state(inputs, r)
      out = layer.output_signature_with(inputs, w, s, r)
      stack = push_outputs(layer, out, stack)
      weights.append(w)
      states.append(s)
    return tuple(weights), tuple(states)

  def forward_with_state(self, x, weights, state, rng):
    if not self._sublayers:
      return x, state
    stack = as_stack(x, self.n_in)
    new_states = []
    rngs = split_rng(rng, len(self._sublayers))
    for layer, w, s, r in zip(self._sublayers, weights, state, rngs):
      out, s = layer.pure_fn(stack_inputs(layer, stack), w, s, r)
      stack = push_outputs(layer, out, stack)
      new_states.append(s)
    return from_stack(stack, self.n_out), tuple(new_states)


class Parallel(Layer):
  """Runs sublayers side by side on consecutive stack items.

  `Parallel(f, g)` with f: 1 -> 1 and g: 2 -> 1 maps (a, b, c) to (f(a), g(b, c)).

  Args:
    *sublayers: layers; None or [] is the identity, a list one `Serial`.
    name: shown in `repr` and errors (default 'Parallel').
  """

  def __init__(self, *sublayers, name=None):
    layers = [_as_branch(item, 'Parallel') for item in sublayers]
    super().__init__(n_in=sum(layer.n_in for layer in layers),
                     n_out=sum(layer.n_out for layer in layers), name=name or 'Parallel')
    self._sublayers = tuple(layers)

  def _slices(self, stack):
    start = 0
    for layer in self._sublayers:
      yield layer, stack_inputs(layer, stack[start:])
      start += layer.n_in

  def init_weights_and_state(self, input_signature, rng):
    stack = as_stack(input_signature, self.n_in)
    pairs = [
        layer.make_weights_and_state(inputs, r)
        for (layer, inputs), r in zip(self._slices(stack), split_rng(rng, len(self._sublayers)))
    ]
    return tuple(w for w, _ in pairs), tuple(s for _, s in pairs)

  def forward_with_state(self, x, weights, state, rng):
    stack = as_stack(x, self.n_in)
    outputs, new_states = [], []
    rngs = split_rng(rng, len(self._sublayers))
    for (layer, inputs), w, s, r in zip(self._slices(stack), weights, state, rngs):
      out, s = layer.pure_fn(inputs, w, s, r)
      outputs.extend(as_stack(out, layer.n_out) if layer.n_out != 0 else ())
      new_states.append(s)
    return from_stack(tuple(outputs), self.n_out), tuple(new_states)


class Select(Layer):
  """Copies and reorders stack items: outputs `stack[i] for i in indices`.

  Args:
    indices: stack positions to output, 0 the top: [0, 0] duplicates the top
      item, [1, 0] swaps the top two.
    n_in: items taken (default `max(indices) + 1`); `Select([0], n_in=3)`
      keeps the top item and drops two.
    name: shown in `repr` and errors (default 'Select').
  """

  def __init__(self, indices, n_in=None, name=None):
    indices = [int(i) for i in indices]
    n_in = (max(indices) + 1 if indices else 0) if n_in is None else n_in
    if any(i < 0 or i >= n_in for i in indices):
      raise ArgumentError(f'Select: indices {indices} must lie in [0, n_in={n_in})')
    super().__init__(n_in=n_in, n_out=len(indices), name=name or 'Select')
    self._indices = tuple(indices)

  def forward(self, x, weights):
    stack = as_stack(x, self.n_in) if self.n_in else ()
    return from_stack(tuple(stack[i] for i in self._indices), self.n_out) \
        if self.n_out else ()


def Dup():  # pylint: disable=invalid-name
  """Duplicates the top stack item: x -> (x, x)."""
  return Fn('Dup', lambda x: (x, x), n_out=2)


def Drop():  # pylint: disable=invalid-name
  """Drops the top stack item: x -> ()."""
  return Fn('Drop', lambda x: (), n_out=0)


def Swap():  # pylint: disable=invalid-name
  """Swaps the two top stack items: (a, b) -> (b, a)."""
  return Fn('Swap', lambda a, b: (b, a), n_out=2)


def Add():  # pylint: disable=invalid-name
  """Adds the two top stack items: (a, b) -> a + b (shapes must broadcast)."""
  return Fn('Add', lambda a, b: a + b)


def SubtractTop():  # pylint: disable=invalid-name
  """Subtracts the top stack item from the one below: (a, b) -> a - b."""
  return Fn('SubtractTop', lambda a, b: a - b)


def Multiply():  # pylint: disable=invalid-name
  """Multiplies the two top stack items elementwise: (a, b) -> a * b."""
  return Fn('Multiply', lambda a, b: a * b)


def Branch(*layers, name='Branch'):  # pylint: disable=invalid-name
  """Runs each layer on copies of the top stack items; outputs all results.

  `Branch(f, g)` maps x to (f(x), g(x)); with g: 2 -> 1, (a, b) to (f(a), g(a, b)).

  Args:
    *layers: the branches; None or [] is the identity, a list one `Serial`.
    name: shown in `repr` and errors (default 'Branch').
  """
  layers = [_as_branch(item, name) for item in layers]
  if len(layers) == 1:
    return layers[0]
  parallel = Parallel(*layers)
  indices = [i for layer in parallel.sublayers for i in range(layer.n_in)]
  return Serial(Select(indices), parallel, name=name, sublayers_to_print=layers)


def Residual(*layers, shortcut=None):  # pylint: disable=invalid-name
  """`shortcut(x) + f(x)` for `f = Serial(*layers)`.

  Args:
    *layers: the layers of `f` (a single layer is used as it is).
    shortcut: a layer or list of layers for the shortcut; None: the identity.
  """
  layer = layers[0] if len(layers) == 1 and isinstance(layers[0], Layer) else Serial(*layers)
  shown = [layer] if shortcut is None else [_as_branch(shortcut, 'Residual'), layer]
  return Serial(Branch(shown[0] if shortcut is not None else None, layer), Add(), name='Residual',
                sublayers_to_print=shown)


class Concatenate(Layer):
  """Concatenates `n_items` stack items along `axis`: n_items -> 1.

  Args:
    n_items, axis: how many items, along which axis (the others must agree).
  """

  def __init__(self, n_items=2, axis=-1):
    super().__init__(n_in=n_items, name='Concatenate')
    self._axis = axis

  def forward(self, x, weights):
    return jnp.concatenate(as_stack(x, self.n_in), axis=self._axis)


class Split(Layer):
  """Splits the top item into `n_items` equal parts along `axis`: 1 -> n_items.

  Args:
    n_items, axis: how many parts, along which axis (its size must divide).
  """

  def __init__(self, n_items=2, axis=-1):
    super().__init__(n_out=n_items, name='Split')
    self._axis = axis

  def forward(self, x, weights):
    if x.shape[self._axis] % self.n_out:
      raise ArgumentError(f'Split: axis {self._axis} of size {x.shape[self._axis]} does not '
                          f'divide into {self.n_out} equal parts')
    return tuple(jnp.split(x, self.n_out, axis=self._axis))


class Scan(Layer):
  """Scans a layer over `axis` of its inputs, threading `n_carry` carries.

  The inner layer maps `(x_1..k, c_1..n) -> (y_1..m, c'_1..n)` for one slice;
  Scan maps `(xs_1..k, c_1..n)` to `(ys_1..m, final carries)`, the ys stacked
  along `axis`. Weights `(layer_weights,)` are shared across steps; state is
  threaded through the loop; step t gets `fold_in(rng, t)`.

  Args:
    layer: the inner layer; `n_carry <= min(layer.n_in, layer.n_out)`.
    axis: the scanned axis of every x and y.
    n_carry: number of carries, the last items of the inputs and outputs.
    remat: recompute each step in the backward pass (less memory).
    mode: 'predict' (with `n_carry > 0`) keeps the final carries in the
      state `(layer_state, (carries, started))`; from the second call they
      replace the carries given (Trax 1.4), so a sequence can be fed a piece
      per call. Else the state is `(layer_state,)`.
  """

  def __init__(self, layer, axis=0, n_carry=1, remat=False, mode='train'):
    if n_carry > min(layer.n_in, layer.n_out):
      raise ArgumentError(f'Scan: n_carry={n_carry} exceeds n_in={layer.n_in} or '
                          f'n_out={layer.n_out} of {layer.name}')
    check_mode('Scan', 'mode', mode)
    super().__init__(n_in=layer.n_in, n_out=layer.n_out, name='Scan')
    self._sublayers = (layer,)
    self._axis, self._n_carry, self._remat = axis, n_carry, remat
    self._keeps_carry = mode == 'predict' and n_carry > 0

  def pack_tree(self, kind, sub_trees, own):
    keep = kind == 'state' and self._keeps_carry
    return (sub_trees[0], own) if keep else super().pack_tree(kind, sub_trees, own)

  def unpack_tree(self, kind, tree):
    if kind != 'state' or not self._keeps_carry:
      return super().unpack_tree(kind, tree)
    if not isinstance(tree, (tuple, list)) or len(tree) != 2:
      raise ArgumentError(f'Scan: in predict mode the state is (layer_state, (carries, started)), '
                          f'got {tree!r}')
    return (tree[0],), tree[1]

  def init_weights_and_state(self, input_signature, rng):
    stack = as_stack(input_signature, self.n_in)
    n_xs = self.n_in - self._n_carry
    slices = tuple(sig.replace(shape=np.delete(sig.shape, self._axis)) for sig in stack[:n_xs])
    w, s = self._sublayers[0].make_weights_and_state(from_stack(slices + stack[n_xs:], self.n_in),
                                                     rng)
    if not self._keeps_carry:
      return (w,), (s,)
    carries = tuple(jnp.zeros(sig.shape, sig.dtype) for sig in stack[n_xs:])
    return (w,), (s, (carries, jnp.zeros((), bool)))

  def _carries_in(self, given, state):
    """The carries to start from: the kept ones in predict mode after the first call."""
    if not self._keeps_carry:
      return tuple(given)
    kept, started = state[1]  # the carries keep init's shapes (lax.scan checks)
    return tuple(jnp.where(started, k, g.astype(k.dtype)) for g, k in zip(given, kept))

  def forward_with_state(self, x, weights, state, rng):
    layer = self._sublayers[0]
    stack = as_stack(x, self.n_in)
    n_xs, n_ys = self.n_in - self._n_carry, self.n_out - self._n_carry
    xs = tuple(jnp.moveaxis(a, self._axis, 0) for a in stack[:n_xs])

    def step(carry, x_t):
      carries, layer_state, t = carry
      r = None if rng is None else jax.random.fold_in(rng, t)
      y, layer_state = layer.pure_fn(from_stack(tuple(x_t) + carries, self.n_in), weights[0],
                                     layer_state, r)
      ys = as_stack(y, self.n_out) if self.n_out else ()
      return (tuple(ys[n_ys:]), layer_state, t + 1), tuple(ys[:n_ys])

    if self._remat:
      step = jax.checkpoint(step)
    init = (self._carries_in(stack[n_xs:], state), state[0], jnp.zeros((), jnp.int32))
    (carries, layer_state, _), ys = jax.lax.scan(step, init, xs)
    ys = tuple(jnp.moveaxis(y, 0, self._axis) for y in ys)
    new_state = (layer_state,)
    if self._keeps_carry:
      new_state += ((carries, jnp.ones((), bool)),)
    return from_stack(ys + carries, self.n_out), new_state


class _ToChunks(Layer):
  """Reshapes (batch, ...) to (batch // size, size, ...); one chunk if it does not divide."""

  def __init__(self, n, chunk_size, undo=False):
    super().__init__(n_in=n, n_out=n, name='FromChunks' if undo else 'ToChunks')
    self._chunk_size, self._undo = chunk_size, undo

  def forward(self, x, weights):

    def reshape(a):
      if self._undo:
        return a.reshape((-1,) + a.shape[2:])
      size = self._chunk_size if a.shape[0] % self._chunk_size == 0 else a.shape[0]
      return a.reshape((a.shape[0] // size, size) + a.shape[1:])

    out = tuple(reshape(a) for a in as_stack(x, self.n_in))
    return from_stack(out, self.n_out)


def Chunk(layer, chunk_size):  # pylint: disable=invalid-name
  """Runs `layer` on chunks of `chunk_size` batch items at a time (less memory).

  Args:
    layer: the layer to run; each chunk is rematerialised in the backward pass.
    chunk_size: batch items per chunk; < 1 returns `layer` unchanged, and a
      batch that does not split into equal chunks is one chunk.
  """
  if chunk_size < 1:
    return layer
  return Serial(_ToChunks(layer.n_in, chunk_size), Scan(layer, axis=0, n_carry=0, remat=True),
                _ToChunks(layer.n_out, chunk_size, undo=True), name='Chunk',
                sublayers_to_print=[layer])


__all__ = [
    'Serial', 'Parallel', 'Select', 'Branch', 'Residual', 'Dup', 'Drop', 'Swap', 'Add',
    'SubtractTop', 'Multiply', 'Concatenate', 'Split', 'Scan', 'Chunk'
]
