"""Reversible layers: a residual stack whose backward pass recomputes its activations.

A reversible layer can compute its inputs from its outputs (`reverse`). A
stack of them (`ReversibleSerial`) therefore need not keep the activations of
every layer for the backward pass: it keeps only its final outputs and, going
backwards, reconstructs each layer's inputs from its outputs just before it
needs them (Gomez et al., 2017, "The Reversible Residual Network"; Kitaev et
al., 2020, "Reformer"). Activation memory then stays constant in depth.

The building blocks (names as in Trax):

* `ReversibleHalfResidual(f)`: `(acc, *ctx) -> (acc + f(*ctx), *ctx)`; its
  inverse subtracts `f(*ctx)` again.
* `ReversibleSwap()`: `(a, b) -> (b, a)`.
* `ReversibleSerial(*layers)`: reversible layers one after another; its
  backward pass is a `jax.custom_vjp` that walks the layers in reverse.

A RevNet block on the pair `(x1, x2)` is `[ReversibleHalfResidual(F),
ReversibleSwap(), ReversibleHalfResidual(G), ReversibleSwap()]`, i.e.
`y1 = x1 + F(x2)`, `y2 = x2 + G(y1)`.

Randomness and state. The backward pass calls every sublayer again with the
same key as the forward pass (keys are split from the stack's key exactly as
`Serial` splits them), so dropout masks and LSH hashes are reproduced. The
backward pass uses each sublayer's *input* state; new state (e.g. predict-mode
caches) is produced by the forward pass only. Reconstruction subtracts what
the forward pass added, so reconstructed activations carry float rounding
(~1e-7 relative per layer in float32).
"""

import jax
import jax.numpy as jnp

from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import Layer, as_stack, from_stack, split_rng
from minitrax.layers.chunk_loops import zeros_after
from minitrax.layers.combinators import Serial


def _add_cotangents(a, b):
  """`a + b` for cotangents; integer inputs have float0 cotangents, which stay as they are."""
  if a.dtype == jax.dtypes.float0:
    return a
  return a + b


def _in_order(activations, weights):
  """`(activations, weights)` unchanged, but XLA must compute them at one point of the program.

  Work that depends only on the weights (e.g. a bias broadcast to the shape
  of the activations) could otherwise be scheduled at the start of the
  program for every layer at once, holding activation-sized buffers for all
  layers. The optimization barrier says so to XLA's GPU/TPU pipelines; the CPU
  pipeline drops barriers, so each floating-point weight also gets a zero
  computed from all the activations (`chunk_loops.zeros_after`): work on the
  weights then happens only once the layer's inputs exist.
  """
  activations, weights = jax.lax.optimization_barrier((activations, weights))
  leaves = [a for a in jax.tree.leaves(activations) if a.size and _floating(a)]
  if not leaves:
    return activations, weights
  zero = sum(zeros_after((), jnp.float32, a) for a in leaves)  # after every activation
  weights = jax.tree.map(lambda w: w + zero.astype(w.dtype) if _floating(w) else w, weights)
  return activations, weights


def _floating(a):
  return jnp.issubdtype(a.dtype, jnp.inexact)


class ReversibleLayer(Layer):
  """Base class of layers whose inputs can be computed from their outputs.

  A subclass implements the forward pass as usual and `reverse`; it may also
  override `reverse_and_grad` when reconstruction and gradient share work
  (as `ReversibleHalfResidual` does).

  Args:
    n_in, n_out: How many items the layer takes from and puts on the stack.
    name: The name shown in `repr` and errors; default: the class name.
    sublayers_to_print: Sublayers that `repr` shows instead of `sublayers`.
  """

  def reverse(self, output, weights=(), state=(), rng=None):
    """The inputs that produce `output` (same arity as the forward's inputs).

    Args:
      output: the layer's outputs (a bare array when n_out == 1, else a tuple).
      weights: the layer's weights.
      state: the layer's state *before* the forward pass.
      rng: the key the forward pass was given.
    """
    raise NotImplementedError(f'layer {self.name} must implement reverse')

  def reverse_and_grad(self, output, ct, weights=(), state=(), rng=None):
    """Reconstructs the inputs and back-propagates `ct` through the layer.

    Args:
      output: the layer's outputs.
      ct: cotangents of the outputs (same structure).
      weights, state, rng: as for `reverse`.

    Returns:
      `(inputs, (inputs_ct, weights_ct))`.
    """
    x = self.reverse(output, weights, state, rng)

    def forward(x, w):
      return self.pure_fn(x, w, state, rng)[0]

    _, vjp = jax.vjp(forward, x, weights)
    return x, vjp(ct)


class ReversibleSwap(ReversibleLayer):
  """Swaps the two top stack items: (a, b) -> (b, a); its own inverse."""

  def __init__(self):
    super().__init__(n_in=2, n_out=2, name='ReversibleSwap')

  def forward(self, x, weights):
    del weights
    return x[1], x[0]

  def reverse(self, output, weights=(), state=(), rng=None):
    del weights, state, rng
    return output[1], output[0]

  def reverse_and_grad(self, output, ct, weights=(), state=(), rng=None):
    del weights, state, rng
    return (output[1], output[0]), ((ct[1], ct[0]), ())


class ReversibleHalfResidual(ReversibleLayer):
  """Half of a RevNet block: `(acc, *ctx) -> (acc + f(*ctx), *ctx)`.

  `f = Serial(*residual_layers, attention_layer)` must output one array of
  `acc`'s shape; n_in = n_out = 1 + f.n_in. E.g. with f = LayerNorm then
  attention, `(x1, x2) -> (x1 + attention(LayerNorm(x2)), x2)`; with f
  taking (x, mask), `(x1, x2, mask) -> (x1 + f(x2, mask), x2, mask)`. The
  inverse is `acc = out - f(*ctx)`. Weights and state: one-item tuples
  holding f's.

  Args:
    *residual_layers: the layers of f (nested lists are flattened).
    attention_layer: an optional last layer of f (Trax's keyword).
    name: default 'ReversibleHalfResidual'.
  """

  def __init__(self, *residual_layers, attention_layer=None, name=None):
    layers = list(residual_layers) + ([attention_layer] if attention_layer is not None else [])
    f = Serial(*layers, name='HalfResidualBody')
    if f.n_out != 1:
      raise ArgumentError(f'ReversibleHalfResidual: the residual layers must output one array, '
                          f'got n_out={f.n_out}')
    super().__init__(n_in=f.n_in + 1, n_out=f.n_in + 1, name=name or 'ReversibleHalfResidual',
                     sublayers_to_print=f.sublayers)
    self._sublayers = (f,)

  def _context(self, x):
    items = as_stack(x, self.n_in)
    return items[0], from_stack(items[1:], self.n_in - 1), items[1:]

  def init_weights_and_state(self, input_signature, rng):
    _, ctx, _ = self._context(input_signature)
    w, s = self._sublayers[0].make_weights_and_state(ctx, rng)
    return (w,), (s,)

  def forward_with_state(self, x, weights, state, rng):
    acc, ctx, rest = self._context(x)
    y, s = self._sublayers[0].pure_fn(ctx, weights[0], state[0], rng)
    if y.shape != acc.shape:
      raise ArgumentError(f'{self.name}: the residual branch gives shape {y.shape}, but the '
                          f'accumulator (first input) has shape {acc.shape}')
    return (acc + y.astype(acc.dtype),) + rest, (s,)

  def reverse(self, output, weights=(), state=(), rng=None):
    acc, ctx, rest = self._context(output)
    y, _ = self._sublayers[0].pure_fn(ctx, weights[0], state[0], rng)
    return (acc - y.astype(acc.dtype),) + rest

  def reverse_and_grad(self, output, ct, weights=(), state=(), rng=None):
    f = self._sublayers[0]
    acc, ctx, rest = self._context(output)
    ct_acc, _, ct_rest = self._context(ct)

    def branch(c, w):
      return f.pure_fn(c, w, state[0], rng)[0]

    y, vjp = jax.vjp(branch, ctx, weights[0])
    ct_ctx, ct_w = vjp(ct_acc.astype(y.dtype))
    ct_ctx = as_stack(ct_ctx, self.n_in - 1)
    ct_rest = tuple(_add_cotangents(a, b) for a, b in zip(ct_rest, ct_ctx))
    x = (acc - y.astype(acc.dtype),) + rest
    return x, ((ct_acc,) + ct_rest, (ct_w,))


class ReversibleSerial(ReversibleLayer, Serial):
  """Reversible layers in series, with a memory-saving backward pass.

  n_in = n_out, from the sublayers' stack effects (as `Serial`); every
  sublayer must be a `ReversibleLayer`. The forward pass is `Serial`'s. Its
  gradient is a `jax.custom_vjp`: the forward pass keeps only the final
  outputs (and weights, input states and keys), and the backward pass
  reconstructs each sublayer's inputs from its outputs with
  `reverse_and_grad`, last layer first. Peak activation memory is that of
  one sublayer, whatever the depth. Weights and state: one entry per
  sublayer, as in `Serial`. A sublayer object may not occur twice in one
  ReversibleSerial.

  Args:
    *layers: `ReversibleLayer`s (nested lists are flattened, as in `Serial`);
      anything else raises `ArgumentTypeError`.
    name: The layer's name; default 'ReversibleSerial'.
  """

  def __init__(self, *layers, name=None):
    super().__init__(*layers, name=name or 'ReversibleSerial')
    for i, layer in enumerate(self._sublayers):
      if not isinstance(layer, ReversibleLayer):
        raise ArgumentTypeError(f'ReversibleSerial: sublayer {i} ({layer.name}) is not reversible; '
                                f'use ReversibleHalfResidual, ReversibleSwap or another '
                                f'ReversibleLayer')
    if self.n_in != self.n_out:
      raise ArgumentError(f'ReversibleSerial: a reversible stack must have n_in == n_out, got '
                          f'{self.n_in} and {self.n_out}')
    self._run = None

  def forward_with_state(self, x, weights, state, rng):
    if not self._sublayers:
      return x, state
    if self._run is None:
      self._run = self._make_run()
    rngs = tuple(split_rng(rng, len(self._sublayers)))
    out, new_state = self._run(as_stack(x, self.n_in), weights, state, rngs)
    return from_stack(out, self.n_out), new_state

  def _forward_stack(self, stack, weights, state, rngs):
    new_states = []
    for layer, w, s, r in zip(self._sublayers, weights, state, rngs):
      stack, w = _in_order(stack, w)
      y, s = layer.pure_fn(from_stack(stack[:layer.n_in], layer.n_in), w, s, r)
      stack = as_stack(y, layer.n_out) + stack[layer.n_in:]
      new_states.append(s)
    return stack, tuple(new_states)

  def _backward_stack(self, stack, cts, weights, state, rngs):
    """Walks the sublayers last to first: `(inputs, (inputs_ct, weights_ct))` as stacks."""
    weights_ct = []
    for layer, w, s, r in reversed(list(zip(self._sublayers, weights, state, rngs))):
      n_in, n_out = layer.n_in, layer.n_out
      (stack, cts), w = _in_order((stack, cts), w)
      x, (x_ct, w_ct) = layer.reverse_and_grad(from_stack(stack[:n_out], n_out),
                                               from_stack(cts[:n_out], n_out), w, s, r)
      stack = as_stack(x, n_in) + stack[n_out:]
      cts = as_stack(x_ct, n_in) + cts[n_out:]
      weights_ct.append(w_ct)
    return stack, (cts, tuple(reversed(weights_ct)))

  def _make_run(self):
    """The custom-gradient function `(stack, weights, state, rngs) -> (stack, new_state)`."""
    run = jax.custom_vjp(self._forward_stack)

    def run_fwd(stack, weights, state, rngs):
      out, new_state = self._forward_stack(stack, weights, state, rngs)
      return (out, new_state), (out, weights, state, rngs)

    def run_bwd(residuals, cts):
      out, weights, state, rngs = residuals
      _, (x_ct, weights_ct) = self._backward_stack(out, cts[0], weights, state, rngs)
      return x_ct, weights_ct, None, None

    run.defvjp(run_fwd, run_bwd)
    return run

  def reverse(self, output, weights=(), state=(), rng=None):
    stack = as_stack(output, self.n_out)
    rngs = split_rng(rng, len(self._sublayers))
    for layer, w, s, r in reversed(list(zip(self._sublayers, weights, state, rngs))):
      x = layer.reverse(from_stack(stack[:layer.n_out], layer.n_out), w, s, r)
      stack = as_stack(x, layer.n_in) + stack[layer.n_out:]
    return from_stack(stack, self.n_in)

  def reverse_and_grad(self, output, ct, weights=(), state=(), rng=None):
    rngs = split_rng(rng, len(self._sublayers))
    x, (x_ct, w_ct) = self._backward_stack(as_stack(output, self.n_out), as_stack(ct, self.n_out),
                                           weights, state, rngs)
    return from_stack(x, self.n_in), (from_stack(x_ct, self.n_in), w_ct)


__all__ = ['ReversibleLayer', 'ReversibleSwap', 'ReversibleHalfResidual', 'ReversibleSerial']
