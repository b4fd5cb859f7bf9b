"""Combinators that decide whether a sublayer runs: `Cond` (one of two) and `Cache` (once).

Both keep the weights of every branch, so the weights tree is the same
whichever branch runs; the choice is made by `jax.lax.cond` inside compiled
code (`Cond`: on a boolean computed by a layer; `Cache`: on whether the
layer's output is already held in its state).
"""

import jax
import jax.numpy as jnp

from minitrax.errors import ArgumentError
from minitrax.layers.base import EMPTY, Layer, as_stack, from_stack, split_rng, stack_inputs
from minitrax.layers.combinators import Select


class Cond(Layer):
  """`true(y) if cond(x) else false(y)`, running only the chosen branch.

  Args:
    cond: the layer on the top `cond.n_in` items `x`; one boolean scalar out.
    true, false: the branches on the next `true.n_in` items `y`, of equal
      arities; false=None is the identity (needs `true.n_in == true.n_out`).
      The branch not taken keeps its state.
    name: shown in `repr` and errors (default 'Cond').
  """

  def __init__(self, cond, true, false=None, name=None):
    if false is None:
      if true.n_in != true.n_out:
        raise ArgumentError(f'Cond: false=None needs true.n_in == true.n_out, got '
                            f'{true.n_in} and {true.n_out}')
      false = Select(list(range(true.n_in)))
    if (true.n_in, true.n_out) != (false.n_in, false.n_out):
      raise ArgumentError(f'Cond: true ({true.n_in} -> {true.n_out}) and false '
                          f'({false.n_in} -> {false.n_out}) must have the same arities')
    if cond.n_out != 1:
      raise ArgumentError(f'Cond: cond must have n_out=1, got {cond.n_out}')
    super().__init__(n_in=cond.n_in + true.n_in, n_out=true.n_out, name=name or 'Cond')
    self._sublayers = (cond, true, false)

  def init_weights_and_state(self, input_signature, rng):
    cond, true, false = self._sublayers
    stack = as_stack(input_signature, self.n_in)
    x, y = stack_inputs(cond, stack), stack_inputs(true, stack[cond.n_in:])
    r = split_rng(rng, 3)
    parts = [
        cond.make_weights_and_state(x, r[0]),
        true.make_weights_and_state(y, r[1]),
        false.make_weights_and_state(y, r[2])
    ]
    return tuple(w for w, _ in parts), tuple(s for _, s in parts)

  def forward_with_state(self, x, weights, state, rng):
    cond, true, false = self._sublayers
    stack = as_stack(x, self.n_in)
    r = split_rng(rng, 3)
    pred, cond_state = cond.pure_fn(stack_inputs(cond, stack), weights[0], state[0], r[0])
    if jnp.shape(pred) not in ((), (1,)):
      raise ArgumentError(f'Cond: cond must output one boolean, got shape {jnp.shape(pred)}')
    y = stack_inputs(true, stack[cond.n_in:])

    def run_true(operands):
      out, s = true.pure_fn(operands, weights[1], state[1], r[1])
      return out, (s, state[2])

    def run_false(operands):
      out, s = false.pure_fn(operands, weights[2], state[2], r[2])
      return out, (state[1], s)

    out, (true_state,
          false_state) = jax.lax.cond(jnp.reshape(pred, ()).astype(bool), run_true, run_false, y)
    return out, (cond_state, true_state, false_state)


class Cache(Layer):
  """Runs `layer` on the first call and returns its cached outputs afterwards.

  For parts of a predict-mode model that see the same input at every step
  (an encoder). The weights are exactly `layer`'s (wrapping in Cache does not
  change the weights tree); the state is `(layer_state, (outputs, is_cached))`.
  Compiled with `lax.cond`, so the first and later calls share one program.
  Re-initialise the state (or set `is_cached` False) to start a new input.

  Args:
    layer: the layer whose outputs are cached.
  """

  def __init__(self, layer):
    super().__init__(n_in=layer.n_in, n_out=layer.n_out, name='Cache')
    self._sublayers = (layer,)

  def pack_tree(self, kind, sub_trees, own):
    return sub_trees[0] if kind == 'weights' else (sub_trees[0], own)

  def unpack_tree(self, kind, tree):
    return ((tree,), EMPTY) if kind == 'weights' else ((tree[0],), tree[1])

  def init_weights_and_state(self, input_signature, rng):
    layer = self._sublayers[0]
    w, s = layer.make_weights_and_state(input_signature, rng)
    out = layer.output_signature_with(input_signature, w, s, rng)
    out = out if isinstance(out, tuple) else (out,)
    cached = tuple(jnp.zeros(o.shape, o.dtype) for o in out)
    return w, (s, (cached, jnp.zeros((), bool)))

  def forward_with_state(self, x, weights, state, rng):
    layer = self._sublayers[0]
    layer_state, (cached, is_cached) = state

    def compute(_):
      y, s = layer.pure_fn(x, weights, layer_state, rng)
      y = y if isinstance(y, tuple) else (y,)
      return tuple(a.astype(c.dtype) for a, c in zip(y, cached)), s

    y, layer_state = jax.lax.cond(is_cached, lambda _: (cached, layer_state), compute, None)
    return from_stack(y, self.n_out), (layer_state, (y, jnp.ones((), bool)))


__all__ = ['Cond', 'Cache']
