"""SerialWithSideOutputs, Gate, BatchLeadingAxes, Bidirectional (against real Trax), and the
combinators.py additions they lean on: `Serial(None)` and Scan's predict mode."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import Fn
from minitrax.layers.combinators import Add, Branch, Parallel, Residual, Scan, Serial
from minitrax.layers.combinators_more import (BatchLeadingAxes, Bidirectional, Gate,
                                              SerialWithSideOutputs)
from minitrax.layers.core import Dense
from minitrax.layers.rnn import LSTM
from minitrax.shapes import ShapeDtype

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import more_layers_fixture as fx  # noqa: E402

T141, T123 = fx.load('141'), fx.load('123')


def _fns():
  return [
      Fn('A', lambda a: (a + 1, a * 2), n_out=2),
      Fn('B', lambda a, b: (a + b, a - b, a * b), n_out=3),
      Fn('C', lambda a: (a * 3, a + 5), n_out=2),
  ]


@pytest.mark.parametrize('data', [T141, T123], ids=['trax141', 'trax123'])
def test_serial_with_side_outputs_matches_trax(data):
  fns = _fns()
  for name, layer in (('side', SerialWithSideOutputs(fns, n_side_outputs=[1, 2, 1])),
                      ('side1', SerialWithSideOutputs([fns[0], fns[2]]))):
    assert [layer.n_in, layer.n_out] == data[f'{name}/arity'].tolist()
    x = fx.inputs(data, name)
    layer.init(jax.tree.map(lambda a: ShapeDtype(a.shape), x))
    fx.assert_matches(layer(x), data, name)
    assert layer.output_signature(jax.tree.map(lambda a: ShapeDtype(a.shape), x)) == tuple(
        ShapeDtype(a.shape) for a in fx.outputs(data, name))


def test_serial_with_side_outputs_by_hand():
  # A: a -> (a + 1, a * 2) keeps a + 1 and puts a * 2 aside; C then keeps 3 (a + 1).
  fns = _fns()
  y = SerialWithSideOutputs([fns[0], fns[2]])(np.float32(1.0))
  np.testing.assert_allclose(y, (6.0, 2.0, 7.0))  # (3 (a + 1), side of A, side of C)


def test_serial_with_side_outputs_errors():
  fns = _fns()
  with pytest.raises(ArgumentError, match=r'one count per layer \(3\), got 2'):
    SerialWithSideOutputs(fns, n_side_outputs=[1, 1])
  with pytest.raises(ArgumentError, match='A has n_out=2, fewer than the 3 side outputs'):
    SerialWithSideOutputs(fns, n_side_outputs=3)
  with pytest.raises(ArgumentTypeError, match='layers must be a list of layers'):
    SerialWithSideOutputs(fns[0])


def test_gate():
  m, g, c = (np.array([1.0, 2.0]), np.array([0.25, 1.0]), np.array([5.0, 7.0]))
  np.testing.assert_allclose(Gate()((m, g, c)), g * m + (1 - g) * c)
  assert Gate().n_in == 3


def test_batch_leading_axes_matches_trax_and_numpy():
  layer = fx.init_with_trax_weights(BatchLeadingAxes(Dense(3), n_last_axes_to_keep=2), T141,
                                    'batch_leading')
  x = fx.inputs(T141, 'batch_leading')
  y = layer(x)
  fx.assert_matches(y, T141, 'batch_leading')
  w, b = T141['batch_leading/w0'], T141['batch_leading/w1']
  np.testing.assert_allclose(y, x @ w + b, atol=1e-5)
  assert (layer.weights[0][0].shape, len(layer.weights)) == ((5, 3), 1)
  assert layer.output_signature(ShapeDtype(x.shape)) == ShapeDtype((2, 3, 4, 3))


def test_batch_leading_axes_folds_many_axes_and_gets_gradients():
  layer = BatchLeadingAxes(Dense(2))
  x = np.ones((2, 3, 4, 5), np.float32)
  weights, state = layer.init(ShapeDtype(x.shape))
  grads = jax.grad(lambda w: jnp.sum(layer.pure_fn(x, w, state, None)[0]))(weights)
  assert layer(x).shape == (2, 3, 4, 2)
  np.testing.assert_allclose(grads[0][1], np.full((2,), 24.0))  # bias: one per folded row


def test_batch_leading_axes_errors():
  with pytest.raises(ArgumentError, match='layer must have n_out=1, got 2'):
    BatchLeadingAxes(Fn('Two', lambda x: (x, x), n_out=2))
  with pytest.raises(ArgumentError, match='n_last_axes_to_keep must be an int >= 1, got 0'):
    BatchLeadingAxes(Dense(2), n_last_axes_to_keep=0)


def test_bidirectional_matches_trax():
  layer = fx.init_with_trax_weights(Bidirectional(LSTM(4)), T141, 'bidirectional')
  fx.assert_matches(layer(fx.inputs(T141, 'bidirectional')), T141, 'bidirectional')


def test_bidirectional_backward_is_an_independent_copy():
  forward = LSTM(3)
  x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32)
  layer = Bidirectional(forward, merge_layer=Add())
  weights, _ = layer.init(ShapeDtype(x.shape))
  w_fwd, w_bwd = (jax.tree.leaves(w) for w in weights[0][1])  # Serial(Branch(Select, Parallel))
  assert [a.shape for a in w_fwd] == [a.shape for a in w_bwd]
  assert not np.allclose(w_fwd[0], w_bwd[0])  # own weights, drawn from their own key
  # Backward run == the copied layer on the time-reversed input, reversed back.
  backward = layer.sublayers[0].sublayers[1].sublayers[1].sublayers[1]
  assert backward is not forward and backward.name == forward.name
  y_bwd = backward(x[:, ::-1])[:, ::-1]
  np.testing.assert_allclose(layer(x), forward(x) + y_bwd, atol=1e-6)
  forward.weights = jax.tree.map(jnp.zeros_like, forward.weights)
  assert np.any(np.asarray(jax.tree.leaves(backward.weights)[0]) != 0)


def test_bidirectional_of_an_initialised_layer_copies_its_weights():
  forward = LSTM(3)  # as Trax's deep copy: the copy starts with the trained weights
  x = np.ones((2, 5, 4), np.float32)
  forward.init(ShapeDtype(x.shape))
  layer = Bidirectional(forward)
  w_fwd, w_bwd = (jax.tree.leaves(w) for w in layer.init(ShapeDtype(x.shape))[0][0][1])
  np.testing.assert_array_equal(w_fwd[0], w_bwd[0])
  assert layer(x).shape == (2, 5, 6)


def test_bidirectional_default_merge_is_not_shared_between_models():
  a, b = Bidirectional(Dense(2)), Bidirectional(Dense(2))
  assert a.sublayers[1] is not b.sublayers[1]
  assert a(np.ones((1, 3, 2), np.float32)).shape == (1, 3, 4)


# ---------------------------------------------------------------- combinators.py additions


def test_serial_none_is_the_identity_as_in_trax():
  x = np.arange(6, dtype=np.float32).reshape(2, 3)
  for layer in (Serial(None), Serial(None, name='Id'), Residual(None)):
    assert (layer.n_in, layer.n_out) == (1, 1)
  np.testing.assert_array_equal(Serial(None)(x), x)
  np.testing.assert_array_equal(Residual(None)(x), 2 * x)  # x + identity(x)
  np.testing.assert_array_equal(Branch(None, Serial(None))(x)[1], x)


@pytest.mark.parametrize('make', [
    lambda: Serial(Dense(2), None),
    lambda: Serial([Dense(2), None]),
    lambda: Serial(None, None),
    lambda: Parallel([Dense(2), None], None),
])
def test_none_inside_a_list_is_an_error_as_in_trax(make):
  with pytest.raises(ArgumentTypeError, match=r'is a NoneType, not a Layer \(only Serial\(None\)'):
    make()


def _running_sum():
  """Cell (x, c) -> (x + c, x + c)."""
  return Fn('Cumsum', lambda x, c: (x + c, x + c), n_out=2)


def test_scan_predict_mode_continues_from_the_kept_carry():
  xs = np.arange(1, 7, dtype=np.float32).reshape(6, 1)
  scan = Scan(_running_sum(), axis=0, mode='predict')
  weights, state = scan.init((ShapeDtype((2, 1)), ShapeDtype((1,))))
  assert len(state) == 2 and state[1][0][0].shape == (1,) and not state[1][1]
  ys, carry = scan((xs[:2], np.array([100.0], np.float32)))  # first call: the given carry
  np.testing.assert_allclose(ys[:, 0], [101, 103])
  ys, carry = scan((xs[2:4], np.array([-5.0], np.float32)))  # later: the kept one
  np.testing.assert_allclose(ys[:, 0], [106, 110])
  np.testing.assert_allclose(carry, [110])
  train = Scan(_running_sum(), axis=0)
  assert len(train.init((ShapeDtype((2, 1)), ShapeDtype((1,))))[1]) == 1
  np.testing.assert_allclose(train((xs[2:4], np.array([-5.0], np.float32)))[0][:, 0], [-2, 2])


def test_scan_predict_state_round_trips_and_checks_its_form():
  scan = Scan(_running_sum(), mode='predict')
  _, state = scan.init((ShapeDtype((2, 1)), ShapeDtype((1,))))
  scan.state = state
  assert jax.tree.structure(scan.state) == jax.tree.structure(state)
  with pytest.raises(ArgumentError, match=r'predict mode the state is \(layer_state, \(carries'):
    scan.state = ((),)
  with pytest.raises(ArgumentError, match="Scan: mode must be one of"):
    Scan(_running_sum(), mode='decode')
