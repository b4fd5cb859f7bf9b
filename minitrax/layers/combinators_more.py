"""More combinators from Trax: side outputs, gating, leading batch axes, both directions.

`SerialWithSideOutputs` runs layers in a row while putting some outputs of
each aside (at the bottom of the stack); `Gate` is the highway mix of memory
and candidate; `BatchLeadingAxes` lets a layer made for `(batch, ...)` take
any number of leading axes; `Bidirectional` runs a sequence layer forwards
and, as a copy with its own weights, backwards, and merges the two.
"""

import copy
import math

import jax.numpy as jnp

from minitrax.checks import check_int
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers import trees
from minitrax.layers.base import Fn, Layer, as_stack, from_stack
from minitrax.layers.combinators import Branch, Concatenate, Select, Serial


def _side_counts(layers, n_side_outputs):
  """One count of side outputs per layer, each checked against the layer's n_out."""
  if isinstance(n_side_outputs, (list, tuple)):
    counts = list(n_side_outputs)
    if len(counts) != len(layers):
      raise ArgumentError(f'SerialWithSideOutputs: n_side_outputs must give one count per layer '
                          f'({len(layers)}), got {len(counts)}: {counts}')
  else:
    counts = [n_side_outputs] * len(layers)
  for layer, count in zip(layers, counts):
    check_int('SerialWithSideOutputs', 'n_side_outputs', count, minimum=0)
    if count > layer.n_out:
      raise ArgumentError(f'SerialWithSideOutputs: {layer.name} has n_out={layer.n_out}, fewer '
                          f'than the {count} side outputs asked for')
  return counts


def SerialWithSideOutputs(layers, n_side_outputs=1):  # pylint: disable=invalid-name
  """Runs `layers` in a row, moving each one's last outputs to the bottom of the stack.

  Layer i keeps its first `n_out - n_side_outputs[i]` outputs on top of the
  stack for the next layer and puts its last `n_side_outputs[i]` outputs
  under everything else, so that they come out after the main outputs. With
  layers of n_in = 1, n_out = 2 and one side output each:
  `x -> (f_k(...f_1(x)), side_1, ..., side_k)`.

  Built as `Serial(layer_1, Select(...), layer_2, Select(...), ...)`, so the
  weights are a tuple with one entry per layer and `()` per Select. n_in and
  n_out follow from the layers.

  Args:
    layers: a list of layers.
    n_side_outputs: an int (the same for every layer) or one int per layer.
  """
  if not isinstance(layers, (list, tuple)) or not all(isinstance(a, Layer) for a in layers):
    raise ArgumentTypeError(f'SerialWithSideOutputs: layers must be a list of layers, got '
                            f'{layers!r}')
  counts = _side_counts(layers, n_side_outputs)
  depth = need = 0  # as in Serial's arity, with side outputs leaving the working stack
  for layer, count in zip(layers, counts):
    depth -= layer.n_in
    need = max(need, -depth)
    depth += layer.n_out - count
  size = need  # items on the whole stack, side outputs included
  parts = []
  for layer, count in zip(layers, counts):
    size += layer.n_out - layer.n_in
    kept = layer.n_out - count
    below = range(layer.n_out, size)  # the stack under this layer's outputs
    parts += [layer, Select(list(range(kept)) + list(below) + list(range(kept, layer.n_out)))]
  return Serial(parts)


def Gate():  # pylint: disable=invalid-name
  """Highway gating: `(memory, gate, candidate) -> gate * memory + (1 - gate) * candidate`.

  n_in = 3, n_out = 1; shapes must agree.
  """
  return Fn('Gate', lambda m, g, c: g * m + (1.0 - g) * c)


class BatchLeadingAxes(Layer):
  """Runs `layer` with all but the last `n_last_axes_to_keep` axes folded into one batch axis.

  Each input `(a_1, ..., a_k, d_1, ..., d_n)` (n = `n_last_axes_to_keep`) is
  reshaped to `(a_1 * ... * a_k, d_1, ..., d_n)`; the output `(B, e...)` is
  reshaped back to `(a_1, ..., a_k, e...)`, with the leading axes of the last
  input. n_in = `layer.n_in`; `layer` must have n_out = 1.
  Weights: `(layer_weights,)`; state: `(layer_state,)`.

  Args:
    layer: the layer to run.
    n_last_axes_to_keep: trailing axes the layer sees unchanged (>= 1).
  """

  def __init__(self, layer, n_last_axes_to_keep=1):
    if not isinstance(layer, Layer):
      raise ArgumentTypeError(f'BatchLeadingAxes: layer must be a Layer, got {layer!r}')
    if layer.n_out != 1:
      raise ArgumentError(f'BatchLeadingAxes: layer must have n_out=1, got {layer.n_out} '
                          f'({layer.name})')
    self._n_keep = check_int('BatchLeadingAxes', 'n_last_axes_to_keep', n_last_axes_to_keep)
    super().__init__(n_in=layer.n_in, name='BatchLeadingAxes')
    self._sublayers = (layer,)

  def _folded_shape(self, shape):
    if len(shape) < self._n_keep:
      raise ArgumentError(f'BatchLeadingAxes: input shape {tuple(shape)} has fewer than '
                          f'n_last_axes_to_keep={self._n_keep} axes')
    lead = tuple(shape[:len(shape) - self._n_keep])
    return lead, (math.prod(lead),) + tuple(shape[len(lead):])

  def init_weights_and_state(self, input_signature, rng):
    sigs = as_stack(input_signature, self.n_in)
    folded = tuple(s.replace(shape=self._folded_shape(s.shape)[1]) for s in sigs)
    w, s = self._sublayers[0].make_weights_and_state(from_stack(folded, self.n_in), rng)
    return (w,), (s,)

  def forward_with_state(self, x, weights, state, rng):
    xs = as_stack(x, self.n_in)
    folded = tuple(a.reshape(self._folded_shape(a.shape)[1]) for a in xs)
    y, s = self._sublayers[0].pure_fn(from_stack(folded, self.n_in), weights[0], state[0], rng)
    lead = self._folded_shape(xs[-1].shape)[0]
    return y.reshape(lead + y.shape[1:]), (s,)


def _fresh_copy(layer):
  """A deep copy of `layer` with its own weights slots and no shared bookkeeping.

  Each copied layer gets a new tree node (holding copies of its own weights
  and state) and no compiled function, so the copy and the original never
  share cached trees.
  """
  memo, todo, seen = {}, [layer], set()
  while todo:
    sub = todo.pop()
    if id(sub) in seen:
      continue
    seen.add(id(sub))
    node = trees.TreeNode()
    node.own = dict(sub._tree_node.own)  # pylint: disable=protected-access
    memo[id(sub._tree_node)] = node  # pylint: disable=protected-access
    if sub._jit_pure_fn is not None:  # pylint: disable=protected-access
      memo[id(sub._jit_pure_fn)] = None  # pylint: disable=protected-access
    todo.extend(sub.sublayers)
  return copy.deepcopy(layer, memo)


_CONCATENATE = Concatenate()


def Bidirectional(forward_layer, axis=1, merge_layer=_CONCATENATE):  # pylint: disable=invalid-name
  """Runs a sequence layer forwards and backwards along `axis` and merges the results.

  `Serial(Branch(forward_layer, [Flip, backward_layer, Flip]), merge_layer)`
  where `backward_layer` is a deep copy of `forward_layer` (its own weights)
  and Flip reverses `axis`. With `LSTM(n)` and the default merge:
  `(batch, time, d) -> (batch, time, 2 n)`. n_in = 1, n_out = merge_layer's.

  Args:
    forward_layer: a layer with n_in = n_out = 1, e.g. `LSTM(n)` or `GRU(n)`.
    axis: the time axis of the inputs.
    merge_layer: combines the two outputs; default `Concatenate()` (last axis).
  """
  if not isinstance(forward_layer, Layer):
    raise ArgumentTypeError(f'Bidirectional: forward_layer must be a Layer, got {forward_layer!r}')
  if merge_layer is _CONCATENATE:  # a new instance per model: no needlessly shared layer
    merge_layer = Concatenate()

  def flip():
    return Fn('_FlipAlongTimeAxis', lambda x: jnp.flip(x, axis=axis))

  backward = Serial(flip(), _fresh_copy(forward_layer), flip())
  return Serial(Branch(forward_layer, backward), merge_layer)


__all__ = ['SerialWithSideOutputs', 'Gate', 'BatchLeadingAxes', 'Bidirectional']
