"""ReversibleSelect, ReversibleReshape, ReversibleConcatenatePair, ReversiblePrintShape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import minitrax.layers as tl
from minitrax.errors import ArgumentError
from minitrax.shapes import ShapeDtype


def _arrays(*shapes):
  rng = np.random.default_rng(0)
  return tuple(rng.normal(size=s).astype(np.float32) for s in shapes)


@pytest.mark.parametrize('make, shapes', [
    (lambda: tl.ReversibleSelect([2, 0, 1]), [(2, 3), (2, 4), (2, 5)]),
    (lambda: tl.ReversibleReshape((2, 6), (3, 4), n_in=2), [(2, 6, 5), (2, 6)]),
    (tl.ReversibleConcatenatePair, [(2, 3), (2, 3)]),
    (lambda: tl.ReversiblePrintShape(n_in=2), [(2, 3), (4,)]),
])
def test_reverse_recovers_the_inputs(make, shapes):
  layer = make()
  x = _arrays(*shapes)
  layer.init(tuple(ShapeDtype(s) for s in shapes))
  y = layer(x)
  back = layer.reverse(y)
  for a, b in zip(x, back):
    np.testing.assert_array_equal(a, b)


def test_select_and_reshape_compute_what_they_say():
  a, b, c = _arrays((1,), (2,), (3,))
  assert [v.shape for v in tl.ReversibleSelect([2, 0, 1])((a, b, c))] == [(3,), (1,), (2,)]
  assert tl.ReversibleSelect([1, 0]).name == 'ReversibleSelect[1,0]'
  x, = _arrays((2, 6, 5))
  y = tl.ReversibleReshape((2, 6), (12,))(x)
  np.testing.assert_array_equal(y, x.reshape(12, 5))
  pair = tl.ReversibleConcatenatePair()((a, a + 1))
  np.testing.assert_array_equal(pair[0], np.concatenate([a, a + 1]))


def test_in_a_reversible_serial_gradients_match_the_plain_serial():
  blocks = lambda: [
      tl.ReversibleHalfResidual(tl.Dense(4)),
      tl.ReversibleSelect([1, 0]),
      tl.ReversibleHalfResidual(tl.Dense(4)),
      tl.ReversibleReshape((2, 3), (6,), n_in=2),
      tl.ReversibleReshape((6,), (2, 3), n_in=2),
  ]
  rev, plain = tl.ReversibleSerial(*blocks()), tl.Serial(*blocks())
  sig = (ShapeDtype((2, 3, 4)), ShapeDtype((2, 3, 4)))
  weights, state = rev.init(sig)
  plain.init(sig)
  x = _arrays((2, 3, 4), (2, 3, 4))

  def loss(model):
    return lambda w, x: sum(jnp.sum(y**2) for y in model.pure_fn(x, w, state, None)[0])

  g_rev = jax.grad(loss(rev), argnums=(0, 1))(weights, x)
  g_plain = jax.grad(loss(plain), argnums=(0, 1))(weights, x)
  for a, b in zip(jax.tree.leaves(g_rev), jax.tree.leaves(g_plain)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_named():
  with pytest.raises(
      ArgumentError, match=r'ReversibleSelect: indices must be a permutation of '
      r'range\(n_in=3\) to be reversible, got \[0, 2\]'):
    tl.ReversibleSelect([0, 2])
  with pytest.raises(
      ArgumentError, match=r'ReversibleReshape: shape1 \(2, 3\) and shape2 \(5,\) '
      'must hold the same number of elements'):
    tl.ReversibleReshape((2, 3), (5,))
