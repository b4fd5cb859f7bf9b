"""Reversible layers: forward numerics, inverses, and a backward pass equal to plain autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.activation_fns import Relu
from minitrax.layers.base import Fn
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Dropout
from minitrax.layers.normalization import LayerNorm
from minitrax.layers.reversible import (ReversibleHalfResidual, ReversibleSerial, ReversibleSwap)
from minitrax.shapes import ShapeDtype

B, N, D = 2, 5, 8
RNG = np.random.default_rng(0)
X1, X2 = (RNG.normal(size=(B, N, D)).astype(np.float32) for _ in range(2))
MASK = RNG.integers(0, 2, size=(B, N)).astype(np.int32)
SIG = (ShapeDtype((B, N, D)), ShapeDtype((B, N, D)), ShapeDtype((B, N), np.int32))


def masked_dense():
  """A residual branch with an integer second input: (x, mask) -> Dense(x) * mask."""
  return [Fn('ApplyMask', lambda x, m: x * m[..., None].astype(x.dtype)), Dense(D)]


def blocks(n_blocks):
  """RevNet blocks on (x1, x2, mask): dropout (needs the same key backwards) and an int input."""
  layers = []
  for _ in range(n_blocks):
    layers += [
        ReversibleHalfResidual(LayerNorm(), Dense(D), Relu(), Dropout(0.3)),
        ReversibleSwap(),
        ReversibleHalfResidual(masked_dense()),
        ReversibleSwap()
    ]
  return layers


def check_signature(layer, sig, y):
  want = tuple(ShapeDtype(a.shape, a.dtype) for a in y) if isinstance(y, tuple) else \
      ShapeDtype(y.shape, y.dtype)
  assert layer.output_signature(sig) == want


# ------------------------------------------------------------------ building blocks


def test_half_residual_and_swap_match_numpy_and_invert():
  half = ReversibleHalfResidual(Dense(D))
  ((w, b),), = half.init(SIG[:2])[0]  # (f's weights,), f = Serial(Dense)
  y1, y2 = half((X1, X2))
  np.testing.assert_allclose(y1, X1 + X2 @ np.asarray(w) + np.asarray(b), atol=1e-5)
  np.testing.assert_array_equal(y2, X2)
  x1, x2 = half.reverse((y1, y2), half.weights, half.state)
  np.testing.assert_allclose(x1, X1, atol=1e-5)
  check_signature(half, SIG[:2], (y1, y2))
  swap = ReversibleSwap()
  a, b = swap((X1, X2))
  np.testing.assert_array_equal(a, X2)
  np.testing.assert_array_equal(swap.reverse((a, b)), (X1, X2))
  check_signature(swap, SIG[:2], (a, b))


def test_half_residual_with_more_context_passes_it_through():
  half = ReversibleHalfResidual(masked_dense())
  assert (half.n_in, half.n_out) == (3, 3)
  ((_, (w, b)),), _ = half.init(SIG)
  y1, y2, mask = half((X1, X2, MASK))
  want = X1 + (X2 * MASK[..., None]) @ np.asarray(w) + np.asarray(b)
  np.testing.assert_allclose(y1, want, atol=1e-5)
  np.testing.assert_array_equal(mask, MASK)
  check_signature(half, SIG, (y1, y2, mask))


# ------------------------------------------------------------------ the stack


@pytest.fixture(scope='module')
def stacks():
  layers = blocks(3)
  reversible, plain = ReversibleSerial(layers), Serial(layers)
  weights, state = reversible.init(SIG)
  return reversible, plain, weights, state


def test_reversible_serial_forward_and_reverse(stacks):
  reversible, plain, weights, state = stacks
  rng = jax.random.key(7)
  y, _ = reversible.pure_fn((X1, X2, MASK), weights, state, rng)
  want, _ = plain.pure_fn((X1, X2, MASK), weights, state, rng)
  for a, b in zip(y, want):
    np.testing.assert_array_equal(a, b)
  x1, x2, mask = reversible.reverse(y, weights, state, rng)
  np.testing.assert_allclose(x1, X1, atol=1e-5)
  np.testing.assert_allclose(x2, X2, atol=1e-5)
  np.testing.assert_array_equal(mask, MASK)
  check_signature(reversible, SIG, y)


def test_reversible_gradients_equal_plain_gradients(stacks):
  """The custom backward pass (reconstruct, then vjp per layer) equals autodiff of Serial."""
  reversible, plain, weights, state = stacks
  rng = jax.random.key(7)

  def gradients(layer):

    def loss(w, x1, x2):
      y1, y2, _ = layer.pure_fn((x1, x2, MASK), w, state, rng)[0]
      return jnp.sum(jnp.sin(y1) * y2)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(weights, X1, X2)

  got, want = gradients(reversible), gradients(plain)
  leaves = jax.tree.leaves(want)
  assert len(leaves) == len(jax.tree.leaves(got)) and all(np.abs(g).sum() > 0 for g in leaves)
  for a, b in zip(jax.tree.leaves(got), leaves):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_nested_reversible_serial_gradients():
  half_a, swap, half_b = (ReversibleHalfResidual(Dense(D)), ReversibleSwap(),
                          ReversibleHalfResidual(LayerNorm(), Dense(D)))
  nested = ReversibleSerial(ReversibleSerial(half_a, swap), half_b)
  flat = Serial(half_a, swap, half_b)
  w, s = nested.init(SIG[:2])

  def unnest(tree):
    return (tree[0][0], tree[0][1], tree[1])

  def grads(layer, w, s):
    return jax.grad(lambda w: jnp.sum(layer.pure_fn((X1, X2), w, s, None)[0][0]**2))(w)

  got, want = unnest(grads(nested, w, s)), grads(flat, unnest(w), unnest(s))
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ errors


def test_constructors_check_reversibility_and_arity():
  with pytest.raises(TypeError, match=r'sublayer 1 \(Dense_8\) is not reversible'):
    ReversibleSerial(ReversibleSwap(), Dense(D))
  with pytest.raises(ValueError, match='the residual layers must output one array, got n_out=2'):
    ReversibleHalfResidual(Fn('Two', lambda x: (x, x), n_out=2))


def test_half_residual_shape_mismatch_is_reported():
  half = ReversibleHalfResidual(Dense(3))
  with pytest.raises(
      LayerError, match=r'residual branch gives shape \(2, 5, 3\), but the '
      r'accumulator \(first input\) has shape \(2, 5, 8\)'):
    half((X1, X2))
