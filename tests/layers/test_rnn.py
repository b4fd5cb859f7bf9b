"""LSTM and GRU cells and sequence layers against NumPy step equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.rnn import GRU, LSTM, GRUCell, LSTMCell, MakeZeroState
from minitrax.shapes import ShapeDtype, signature

BATCH, TIME, D_IN, N_UNITS = 2, 4, 3, 5


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_lstm_step(x, state, w, b):
  """Reference LSTM step: gates i, j, f, o; state = [c, h]."""
  n = state.shape[-1] // 2
  c, h = state[:, :n], state[:, n:]
  y = np.concatenate([x, h], axis=1) @ w + b
  i, j, f, o = (y[:, k * n:(k + 1) * n] for k in range(4))
  new_c = c * _sigmoid(f) + _sigmoid(i) * np.tanh(j)
  new_h = np.tanh(new_c) * _sigmoid(o)
  return new_h, np.concatenate([new_c, new_h], axis=1)


def np_gru_step(x, h, w1, b1, w2, b2):
  """Reference GRU step: update gate u, reset gate r, candidate c."""
  n = h.shape[-1]
  gates = _sigmoid(np.concatenate([x, h], axis=1) @ w1 + b1)
  u, r = gates[:, :n], gates[:, n:]
  c = np.tanh(np.concatenate([x, r * h], axis=1) @ w2 + b2)
  new_h = u * h + (1 - u) * c
  return new_h, new_h


def np_run(step, xs, state, weights):
  """Runs a reference step along axis 1 from `state`; returns the stacked outputs."""
  ys = []
  for t in range(xs.shape[1]):
    y, state = step(xs[:, t], state, *weights)
    ys.append(y)
  return np.stack(ys, axis=1)


def _f64(tree):
  return [np.asarray(a, np.float64) for a in jax.tree.leaves(tree)]


def _rand(seed, *shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


CELLS = [
    pytest.param(LSTMCell, np_lstm_step, 2, [(D_IN + N_UNITS, 4 * N_UNITS), (4 * N_UNITS,)], 1.0,
                 id='lstm'),
    pytest.param(GRUCell, np_gru_step, 1, [(D_IN + N_UNITS, 2 * N_UNITS), (2 * N_UNITS,),
                                           (D_IN + N_UNITS, N_UNITS), (N_UNITS,)], 0.0, id='gru'),
]


@pytest.mark.parametrize('cell_cls, np_step, state_mult, weight_shapes, forget_bias', CELLS)
def test_cell_one_step_matches_numpy(cell_cls, np_step, state_mult, weight_shapes, forget_bias):
  x, state = _rand(0, BATCH, D_IN), _rand(1, BATCH, state_mult * N_UNITS)
  cell = cell_cls(N_UNITS)
  sig = signature((x, state))
  cell.init(sig, rng=jax.random.key(3))
  assert [w.shape for w in jax.tree.leaves(cell.weights)] == weight_shapes
  # forget_bias is added to the whole initial first bias (Trax); the init noise is 1e-6.
  np.testing.assert_allclose(jax.tree.leaves(cell.weights)[1], forget_bias, atol=1e-4)
  # Random weights of order 1, so that every gate is exercised.
  weights = tuple(_rand(10 + k, *s) for k, s in enumerate(weight_shapes))
  y, new_state = cell.pure_fn((x, state), weights, (), None)[0]
  want_y, want_state = np_step(x.astype(np.float64), state.astype(np.float64), *_f64(weights))
  np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(new_state, want_state, rtol=1e-5, atol=1e-5)
  assert cell.output_signature(sig) == (signature(y), signature(new_state))


SEQUENCES = [
    pytest.param(LSTM, np_lstm_step, 2, id='lstm'),
    pytest.param(GRU, np_gru_step, 1, id='gru'),
]


@pytest.mark.parametrize('layer_fn, np_step, state_mult', SEQUENCES)
def test_sequence_layer_matches_numpy_loop(layer_fn, np_step, state_mult):
  xs = _rand(2, BATCH, TIME, D_IN)
  layer = layer_fn(N_UNITS)
  layer.init(ShapeDtype(xs.shape), rng=jax.random.key(1))
  # Random weights of order 1 instead of the small initial ones: gates far from 0.5.
  leaves, tree = jax.tree.flatten(layer.weights)
  weights = jax.tree.unflatten(tree, [0.7 * _rand(20 + k, *w.shape) for k, w in enumerate(leaves)])
  layer.weights = weights
  ys = layer(xs)
  zero = np.zeros((BATCH, state_mult * N_UNITS))
  want = np_run(np_step, xs.astype(np.float64), zero, _f64(weights))
  assert ys.shape == (BATCH, TIME, N_UNITS)
  np.testing.assert_allclose(ys, want, rtol=1e-5, atol=1e-5)
  assert layer.output_signature(ShapeDtype(xs.shape)) == signature(ys)


@pytest.mark.parametrize('layer_fn', [LSTM, GRU])
def test_gradients_finite_and_reach_every_weight(layer_fn):
  xs = _rand(4, BATCH, TIME, D_IN)
  layer = layer_fn(N_UNITS)
  weights, state = layer.init(ShapeDtype(xs.shape))

  def loss(w):
    y, _ = layer.pure_fn(xs, w, state, None)
    return jnp.sum(y * np.broadcast_to(np.arange(N_UNITS), y.shape))  # not symmetric in the units

  grads = jax.grad(loss)(weights)
  leaves = jax.tree.leaves(grads)
  assert len(leaves) == (2 if layer_fn is LSTM else 4)
  for g in leaves:
    assert np.all(np.isfinite(g))
    assert np.linalg.norm(g) > 0


def test_names_and_arity():
  assert LSTM(4).name == 'LSTM_4' and GRU(4).name == 'GRU_4'
  assert repr(LSTM(4)) == 'LSTM_4'
  assert (LSTMCell(4).n_in, LSTMCell(4).n_out) == (2, 2)
  assert (LSTM(4).n_in, LSTM(4).n_out) == (1, 1)


def test_input_sizes_independent_of_n_units():
  # Trax's zero state copies the input width; here it has the cell's size.
  assert LSTM(2).output_signature(ShapeDtype((1, 3, 7))) == ShapeDtype((1, 3, 2))


def test_make_zero_state_like_trax():
  layer = MakeZeroState(depth_multiplier=2)
  z = layer(np.ones((2, 3, 4), np.float32))
  np.testing.assert_array_equal(z, np.zeros((2, 8), np.float32))
  assert layer.output_signature(ShapeDtype((2, 3, 4))) == signature(z)


def test_errors():
  with pytest.raises(ValueError, match='LSTMCell: n_units must be a positive int, got 0'):
    LSTMCell(0)
  with pytest.raises(ValueError, match='GRU: n_units must be a positive int, got 2.5'):
    GRU(2.5)
  with pytest.raises(
      LayerError, match=r'MakeZeroState: expected input of shape \(batch, '
      r'time, features\), got shape \(2, 3\)'):
    LSTM(3).output_signature(ShapeDtype((2, 3)))
  with pytest.raises(LayerError, match=r'state must have last axis 2 \* n_units = 6, got '
                     r'shape \(2, 3\)'):
    LSTMCell(3).init((ShapeDtype((2, 4)), ShapeDtype((2, 3))))
  cell = GRUCell(3)
  weights, _ = cell.init((ShapeDtype((2, 4)), ShapeDtype((2, 3))))
  x_wrong = np.zeros((2, 5), np.float32)
  with pytest.raises(
      LayerError, match=r'GRUCell: weights were made for x with last axis 4, '
      r'got x of shape \(2, 5\)'):
    cell.pure_fn((x_wrong, np.zeros((2, 3), np.float32)), weights, (), None)
