"""Combinator semantics on the data stack."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.layers.base import Fn, Layer
from minitrax.layers.control import Cache, Cond
from minitrax.layers.combinators import (Add, Branch, Chunk, Concatenate, Drop, Dup, Multiply,
                                         Parallel, Residual, Scan, Select, Serial, Split,
                                         SubtractTop, Swap)
from minitrax.shapes import ShapeDtype

A, B, C = (np.full((2,), v, np.float32) for v in (1.0, 10.0, 100.0))


def _close(actual, expected):
  if isinstance(expected, tuple):
    assert isinstance(actual, tuple) and len(actual) == len(expected)
    for a, e in zip(actual, expected):
      np.testing.assert_allclose(a, e, rtol=1e-6)
  else:
    np.testing.assert_allclose(actual, expected, rtol=1e-6)


class Scale(Layer):
  """Test layer with one scalar weight: x -> w * x."""

  def init_weights_and_state(self, input_signature, rng):
    return jax.random.uniform(rng, (), minval=0.5, maxval=1.5), ()

  def forward(self, x, weights):
    return weights * x


@pytest.mark.parametrize('layer, n_in, n_out', [
    (Serial(), 1, 1),
    (Serial(Dup(), Add()), 1, 1),
    (Serial(Add(), Add()), 3, 1),
    (Serial(Dup(), Dup()), 1, 3),
    (Serial([Drop(), [Drop()]]), 2, 0),
    (Serial(Select([2, 0])), 3, 2),
    (Parallel(Dup(), Add(), None), 4, 4),
    (Parallel([], Dup()), 2, 3),
    (Branch([], Dup()), 1, 3),
    (Branch([Dup(), Add()], Dup()), 1, 3),
    (Parallel([Dup(), Add()], None), 2, 2),
    (Residual(Dup(), Add(), shortcut=[Dup(), Multiply()]), 1, 1),
    (Branch(Add(), Drop(), Dup()), 2, 3),
    (Select([0], n_in=3), 3, 1),
    (Residual(Scale()), 1, 1),
    (Concatenate(n_items=3), 3, 1),
    (Split(n_items=4), 1, 4),
])
def test_arities(layer, n_in, n_out):
  assert (layer.n_in, layer.n_out) == (n_in, n_out)


@pytest.mark.parametrize(
    'layer, inputs, expected',
    [
        (Serial(), A, A),
        (Dup(), A, (A, A)),
        (Swap(), (A, B), (B, A)),
        (Serial(Drop(), Fn('Id', lambda x: x)), (A, B), B),
        (Select([2, 0, 0]), (A, B, C), (C, A, A)),
        (Serial(Select([0], n_in=2), Add()), (A, B, C), A + C),  # n_in=2 drops B
        (Add(), (A, B), A + B),
        (SubtractTop(), (A, B), A - B),
        (Multiply(), (A, B), A * B),
        (Parallel(Fn('Neg', lambda x: -x), Add()), (A, B, C), (-A, B + C)),
        (Parallel(None, Fn('Neg', lambda x: -x)), (A, B), (A, -B)),
        (Branch(Fn('Neg', lambda x: -x), Add()), (A, B), (-A, A + B)),
        (Branch(None, Fn('Sq', lambda x: x * x)), A, (A, A * A)),
        (Residual(Fn('Sq', lambda x: x * x)), B, B + B * B),
        (Residual(Fn('Sq', lambda x: x * x), shortcut=Fn('Neg', lambda x: -x)), B, -B + B * B),
        (Residual(Fn('Sq', lambda x: x * x), shortcut=[Dup(), Add()]), B, 2 * B + B * B),
        (Branch([Dup(), Add()], Fn('Neg', lambda x: -x)), A, (2 * A, -A)),
        (Serial(Add(), Add()), (A, B, C), A + B + C),
        (Serial(Dup(), Dup(), Add(), Multiply()), B, 2 * B * B),
        (Concatenate(), (A, B), np.concatenate([A, B])),
        (Split(), np.arange(4.0), (np.arange(2.0), np.arange(2.0, 4.0))),
    ])
def test_stack_semantics(layer, inputs, expected):
  _close(layer(inputs), expected)


def test_rest_of_stack_passes_through_serial():
  model = Serial(Fn('Neg', lambda x: -x), Swap())
  assert (model.n_in, model.n_out) == (2, 2)
  _close(model((A, B)), (B, -A))


def test_split_error_text():
  with pytest.raises(Exception, match='Split: axis -1 of size 3 does not divide into 2'):
    Split()(np.ones(3, np.float32))


def test_select_validates_indices():
  with pytest.raises(ValueError, match=r'Select: indices \[0, 3\] must lie in \[0, n_in=2\)'):
    Select([0, 3], n_in=2)


def test_serial_rejects_non_layers():
  with pytest.raises(TypeError, match='Serial: item 1 is a int, not a Layer'):
    Serial(Dup(), 3)


def test_scan_matches_python_loop_with_carry():
  cell = Fn('Cell', lambda x, c: (x + c, 0.5 * (x + c)), n_out=2)  # y_t, carry
  xs = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
  ys, final = Scan(cell, axis=1)((xs, np.zeros(3, np.float32)))
  carry, expected = np.zeros(3), []
  for t in range(5):
    y = xs[:, t] + carry
    carry = 0.5 * y
    expected.append(y)
  np.testing.assert_allclose(ys, np.stack(expected, axis=1), rtol=1e-6)
  np.testing.assert_allclose(final, carry, rtol=1e-6)


def test_scan_shares_weights_threads_state_and_folds_rng():

  class NoisyCount(Layer):

    def __init__(self):
      super().__init__(n_in=2, n_out=2)

    def init_weights_and_state(self, input_signature, rng):
      return jnp.ones(()), jnp.zeros((), jnp.int32)

    def forward_with_state(self, x, weights, state, rng):
      x, carry = x
      noise = jax.random.uniform(rng, x.shape)
      return (weights * x + noise, carry), state + 1

  scan = Scan(NoisyCount(), axis=0, n_carry=1)
  scan.init((ShapeDtype((4, 2)), ShapeDtype((2,))))
  ys, _ = scan((np.zeros((4, 2), np.float32), np.zeros(2, np.float32)), rng=jax.random.key(0))
  assert int(scan.state[0]) == 4  # state threaded through 4 steps
  assert len(set(np.asarray(ys[:, 0]).tolist())) == 4  # each step has its own key
  assert jax.tree.leaves(scan.weights)[0].shape == ()


def test_chunk_equals_unchunked_and_falls_back():
  layer = Scale()
  layer.init(ShapeDtype((6, 3)))
  x = np.arange(18, dtype=np.float32).reshape(6, 3)
  chunked = Chunk(layer, 2)
  chunked.init(ShapeDtype((6, 3)))
  chunked.weights = (((), (layer.weights,), ()))
  _close(chunked(x), layer(x))
  _close(chunked(x[:5]), layer(x[:5]))  # 5 does not divide by 2: one chunk
  assert Chunk(layer, 0) is layer


def test_cond_runs_one_branch_and_keeps_other_state():

  class Count(Layer):

    def init_weights_and_state(self, input_signature, rng):
      return (), jnp.zeros((), jnp.int32)

    def forward_with_state(self, x, weights, state, rng):
      return 2 * x, state + 1

  true = Count()
  cond = Cond(Fn('Positive', lambda p: p > 0), true)
  assert (cond.n_in, cond.n_out) == (2, 1)
  _close(cond((np.float32(1), A)), 2 * A)
  _close(cond((np.float32(-1), A)), A)
  assert int(true.state) == 1
  with pytest.raises(ValueError, match=r'Cond: true \(2 -> 1\) and false \(1 -> 1\)'):
    Cond(Fn('P', lambda p: p > 0), Add(), Fn('Id', lambda x: x))


def test_cache_computes_once_and_keeps_weights_tree():
  inner = Serial(Scale(), Scale())
  cache = Cache(inner)
  weights, state = cache.init(ShapeDtype((2,)))
  assert jax.tree.structure(weights) == jax.tree.structure(inner.weights)
  first = cache(A)
  _close(cache(B), first)  # cached: the new input is ignored
  assert bool(cache.state[1][1])
  cache.state = state  # a fresh state recomputes
  _close(cache(B), first * 10)


def test_gradients_flow_through_combinators():
  model = Serial(Branch(Scale(), Scale()), Add(), Residual(Scale()))
  weights, state = model.init(ShapeDtype((2,)))

  def loss(w):
    return jnp.sum(model.pure_fn(jnp.asarray(A), w, state, None)[0])

  grads = jax.grad(loss)(weights)
  leaves = jax.tree.leaves(grads)
  assert len(leaves) == 3 and all(np.isfinite(g) and g != 0 for g in leaves)


def test_output_signature_of_combinators():
  model = Serial(Branch(Scale(), Dup()), Concatenate(n_items=3, axis=0))
  sig = ShapeDtype((3, 2))
  model.init(sig)
  assert model.output_signature(sig) == ShapeDtype((9, 2))
  assert model(np.ones((3, 2), np.float32)).shape == (9, 2)
