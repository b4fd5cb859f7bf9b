"""Loops over chunks with hand-written backward passes: memory that does not grow with length.

Long-sequence layers (Reformer's chunked feed-forward, per-head attention,
the chunked loss) run one chunk at a time. Written as `lax.map` of a
`jax.checkpoint`, their gradients come from JAX's transposed loop, which
starts from zero-filled buffers (one per stacked output and per gradient)
that no data feeds; XLA's CPU scheduler may then build all of them at the
start of the program, holding buffers for every layer at once. The loops
here do the same computations, but every buffer they create is made from an
input that is computed just before the loop (`zeros_after`), and the
backward pass is a loop of its own:

* `chunk_map(f, consts, xs)`: `ys[i] = f(consts, xs[i])`, stacked; or with
  `reduce=True` their sum. Only the inputs are kept for the backward pass,
  which recomputes each chunk (as `jax.checkpoint` would), and writes the
  gradient of a chunk into the cotangent buffer it came from when the shapes
  allow.
* `chunk_sum_with_grads(f, consts, xs)`: `sum_i f(consts, xs[i])` for a scalar
  `f` (a loss); one loop computes the value and the gradients together, and
  the backward pass only scales them (no second pass over the chunks).

Leaves of `consts` and `xs` that are not floating point (ids, keys) get
`float0` cotangents.
"""

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.errors import ArgumentError
from minitrax.layers.base import Layer, as_stack, from_stack
from minitrax.layers.normalization import LayerNorm


def zeros_after(shape, dtype, anchor):
  """Zeros of `shape` and `dtype` that XLA can only make once `anchor` is computed.

  `min(|a|, 0)` of the first element `a` of `anchor`, broadcast: zero for
  every finite or infinite `a` (NaN stays NaN, as it would downstream).

  Args:
    shape: The shape of the result.
    dtype: Its dtype.
    anchor: Any array with at least one element (computed just before the
      zeros are needed).
  """
  first = jnp.ravel(anchor)[0].astype(jnp.float32)
  return jnp.broadcast_to(jnp.minimum(jnp.abs(first), 0.0).astype(dtype), shape)


def _inexact(a):
  return jnp.issubdtype(a.dtype, jnp.inexact)


def _anchor(*trees):
  """The first floating-point leaf with elements among `trees` (else the first leaf)."""
  leaves = [a for t in trees for a in jax.tree.leaves(t) if a.size]
  floats = [a for a in leaves if _inexact(a)]
  return (floats or leaves)[0]


def _index(tree, i):
  return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, 0, keepdims=False), tree)


def _put(buffers, values, i):
  return jax.tree.map(lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v.astype(b.dtype), i, 0),
                      buffers, values)


def _length(xs):
  sizes = {a.shape[0] for a in jax.tree.leaves(xs)}
  if len(sizes) != 1:
    raise ValueError(f'chunk loops: every leaf of xs needs the same leading axis, got {sizes}')
  return sizes.pop()


def _forward(f, consts, xs, reduce):
  n = _length(xs)
  out = jax.eval_shape(f, consts, _index(xs, 0))
  anchor = _anchor(xs, consts)
  init = jax.tree.map(lambda s: zeros_after(s.shape
                                            if reduce else (n,) + s.shape, s.dtype, anchor), out)

  def body(i, buffers):
    y = f(consts, _index(xs, i))
    if reduce:
      return jax.tree.map(lambda b, v: b + v.astype(b.dtype), buffers, y)
    return _put(buffers, y, i)

  return jax.lax.fori_loop(0, n, body, init)


def _split(tree):
  """(float leaves as a list, a function rebuilding the tree from new float leaves)."""
  leaves, treedef = jax.tree.flatten(tree)
  mask = [_inexact(a) for a in leaves]

  def rebuild(floats):
    it = iter(floats)
    return treedef.unflatten([next(it) if m else a for a, m in zip(leaves, mask)])

  return [a for a, m in zip(leaves, mask) if m], rebuild


def _float0_like(tree, floats):
  """`tree` with its float leaves replaced by `floats` and the others by float0 zeros."""
  it = iter(floats)
  return jax.tree.map(lambda a: next(it)
                      if _inexact(a) else np.zeros(a.shape, jax.dtypes.float0), tree)


def _chunk_vjp(f, consts, x_i, ct_i):
  """Cotangents (float leaves of consts, float leaves of x_i) of `f` at one chunk."""
  c_floats, c_rebuild = _split(consts)
  x_floats, x_rebuild = _split(x_i)

  def g(cf, xf):
    return f(c_rebuild(cf), x_rebuild(xf))

  _, vjp = jax.vjp(g, c_floats, x_floats)
  return vjp(ct_i)


def _backward(f, reduce, residuals, ct):
  consts, xs = residuals
  n = _length(xs)
  c_floats, _ = _split(consts)
  x_floats, _ = _split(xs)
  ct_leaves = jax.tree.leaves(ct)
  # The chunks' gradients overwrite the cotangents they came from when the shapes agree.
  in_place = (not reduce and len(x_floats) == 1 and len(ct_leaves) == 1 and
              x_floats[0].shape == ct_leaves[0].shape and x_floats[0].dtype == ct_leaves[0].dtype)
  anchor = ct_leaves[0]
  acc = [zeros_after(a.shape, a.dtype, anchor) for a in c_floats]
  buf = [ct_leaves[0]] if in_place else [zeros_after(a.shape, a.dtype, anchor) for a in x_floats]

  def body(i, carry):
    acc, buf = carry
    ct_i = ct if reduce else (jax.tree.unflatten(jax.tree.structure(ct), [b[i] for b in buf])
                              if in_place else _index(ct, i))
    dc, dx = _chunk_vjp(f, consts, _index(xs, i), ct_i)
    acc = [a + d.astype(a.dtype) for a, d in zip(acc, dc)]
    return acc, _put(buf, dx, i)

  acc, buf = jax.lax.fori_loop(0, n, body, (acc, buf))
  return _float0_like(consts, acc), _float0_like(xs, buf)


def _make_map():
  run = jax.custom_vjp(_forward, nondiff_argnums=(0, 3))

  def run_fwd(f, consts, xs, reduce):
    return _forward(f, consts, xs, reduce), (consts, xs)

  run.defvjp(run_fwd, _backward)
  return run


_MAP = _make_map()


def chunk_map(f, consts, xs, reduce=False):
  """`f` over the leading axis of `xs`, one chunk at a time; recomputed in the backward pass.

  Args:
    f: `f(consts, x_i) -> y_i`, a pure function of arrays (it must not close
      over traced values: pass them in `consts`).
    consts: A pytree of arrays given whole to every call.
    xs: A pytree of arrays with one leading axis of length n (the chunks).
    reduce: If True, return `sum_i f(consts, xs[i])` instead of the stack.

  Returns:
    The stacked outputs (leading axis n), or their sum.
  """
  return _MAP(f, consts, xs, reduce)


def _value_and_grads(f, consts, xs):
  """One loop: `(sum_i f(consts, xs[i]), (float grads of consts, float grads of xs))`."""
  n = _length(xs)
  c_floats, c_rebuild = _split(consts)
  x_floats, _ = _split(xs)
  anchor = _anchor(xs, consts)
  init = (zeros_after((), jnp.float32,
                      anchor), [zeros_after(a.shape, a.dtype, anchor) for a in c_floats],
          [zeros_after(a.shape, a.dtype, anchor) for a in x_floats])

  def body(i, carry):
    total, acc, buf = carry
    x_i = _index(xs, i)
    xf, x_rebuild = _split(x_i)
    value, (dc, dx) = jax.value_and_grad(lambda cf, xf: f(c_rebuild(cf), x_rebuild(xf)),
                                         argnums=(0, 1))(c_floats, xf)
    acc = [a + d.astype(a.dtype) for a, d in zip(acc, dc)]
    return total + value.astype(jnp.float32), acc, _put(buf, dx, i)

  return jax.lax.fori_loop(0, n, body, init)


def _make_sum():

  def run(f, consts, xs):
    return _forward(f, consts, xs, True)

  run = jax.custom_vjp(run, nondiff_argnums=(0,))

  def run_fwd(f, consts, xs):
    total, dc, dx = _value_and_grads(f, consts, xs)
    return total, (consts, xs, dc, dx)

  def run_bwd(f, residuals, ct):
    del f
    consts, xs, dc, dx = residuals
    scale = [a * ct.astype(a.dtype) for a in dc], [a * ct.astype(a.dtype) for a in dx]
    return _float0_like(consts, scale[0]), _float0_like(xs, scale[1])

  run.defvjp(run_fwd, run_bwd)
  return run


_SUM = _make_sum()


def chunk_sum_with_grads(f, consts, xs):
  """`sum_i f(consts, xs[i])` for a scalar float `f`; the gradients come from the same loop.

  Under differentiation the one forward loop computes the value and every
  gradient (`jax.value_and_grad` per chunk, summed or stacked), and the
  backward pass multiplies them by the incoming cotangent: the chunks run
  once, and nothing of the forward pass waits for the backward one. Without
  differentiation it is a plain loop over the chunks.

  Args:
    f: `f(consts, x_i) -> ()` float (a loss summed over one chunk); pure, as
      for `chunk_map`.
    consts: A pytree of arrays given whole to every call.
    xs: A pytree of arrays with one leading axis of length n.

  Returns:
    A float32 scalar.
  """
  return _SUM(f, consts, xs)


class MapChunks(Layer):
  """A layer run on the chunks of axis 0 of its inputs, one at a time: `Scan` with no carry.

  n_in = n_out = the layer's: each input `(n_chunks, ...)` is cut along axis
  0, chunk t gets `fold_in(rng, t)`, and the outputs are stacked on axis 0,
  exactly as `Scan(layer, axis=0, n_carry=0, remat=True)` computes them (the
  same weights `(layer_weights,)` and state `(layer_state,)`). The loop is a
  `chunk_map`: its backward pass recomputes one chunk at a time. The layer
  must keep its state unchanged (as Dense, LayerNorm, Dropout do).

  Args:
    layer: The layer run on each chunk.
  """

  def __init__(self, layer):
    super().__init__(n_in=layer.n_in, n_out=layer.n_out, name='MapChunks')
    self._sublayers = (layer,)

  def init_weights_and_state(self, input_signature, rng):
    stack = as_stack(input_signature, self.n_in)
    chunk = tuple(sig.replace(shape=sig.shape[1:]) for sig in stack)
    w, s = self._sublayers[0].make_weights_and_state(from_stack(chunk, self.n_in), rng)
    return (w,), (s,)

  def forward_with_state(self, x, weights, state, rng):
    layer, n_in = self._sublayers[0], self.n_in
    xs = as_stack(x, n_in)
    steps = jnp.arange(xs[0].shape[0], dtype=jnp.int32)

    def one(consts, x_t):
      w, s, r = consts
      t, x_t = x_t
      y, s_new = layer.pure_fn(from_stack(x_t, n_in), w, s,
                               None if r is None else jax.random.fold_in(r, t))
      if jax.tree.structure(s_new) != jax.tree.structure(s):
        raise ArgumentError(f'MapChunks: {layer.name} changed the structure of its state')
      return y

    return chunk_map(one, (weights[0], state[0], rng), (steps, tuple(xs))), state


class ChunkedLayerNorm(LayerNorm):
  """`LayerNorm` computed `chunk_size` positions at a time: the same numbers, weights and name.

  (..., d) -> (..., d). The positions (all axes but the last) are cut into
  chunks of `chunk_size` (one chunk if it does not divide them) and a
  `chunk_map` normalises one chunk after another, so that the backward pass
  too holds the per-position temporaries of one chunk only, and writes the
  input's gradient over the output's.

  Args:
    chunk_size: Positions per chunk (an int >= 1).
    center, epsilon: As for `LayerNorm`.
  """

  def __init__(self, chunk_size, center=True, epsilon=1e-6):
    super().__init__(center=center, epsilon=epsilon)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
      raise ArgumentError(f'ChunkedLayerNorm: chunk_size must be an int >= 1, got {chunk_size!r}')
    self._chunk_size = chunk_size

  def forward(self, x, weights):
    positions = x.size // x.shape[-1] if x.ndim else 0
    if positions <= self._chunk_size or positions % self._chunk_size:
      return super().forward(x, weights)
    chunks = x.reshape((positions // self._chunk_size, self._chunk_size, x.shape[-1]))
    y = chunk_map(lambda w, c: LayerNorm.forward(self, c, w), weights, chunks)
    return y.reshape(x.shape)


__all__ = ['ChunkedLayerNorm', 'MapChunks', 'chunk_map', 'chunk_sum_with_grads', 'zeros_after']
