"""SRU (Trax 1.2 and 1.4 forms), GRU cells with transforms, and LSTM/GRU's Trax 1.4 arguments."""

import os
import sys

import jax
import numpy as np
import pytest

from minitrax.errors import ArgumentError, LayerError
from minitrax.layers.activation_fns import Tanh
from minitrax.layers.convolution import Conv
from minitrax.layers.rnn import GRU, LSTM, SRU, SRU14, ConvGRUCell, GeneralGRUCell, InnerSRUCell
from minitrax.shapes import ShapeDtype

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import more_layers_fixture as fx  # noqa: E402

T141, T123 = fx.load('141'), fx.load('123')
X = T141['sru/x0']  # (2, 5, 4)
PIECES = [X[:, :2], X[:, 2:3], X[:, 3:4], X[:, 4:]]


def np_sru(x, w, b, scale, activation=lambda c: c):
  """The SRU equations, step by step."""
  n = w.shape[1] // 3
  r_f_y = x @ w + b
  r, f = 1 / (1 + np.exp(-r_f_y[..., :n])), 1 / (1 + np.exp(-r_f_y[..., n:2 * n]))
  y = r_f_y[..., 2 * n:]
  c, out = np.zeros((x.shape[0], n)), []
  for t in range(x.shape[1]):
    c = f[:, t] * c + (1 - f[:, t]) * y[:, t]
    out.append(r[:, t] * activation(c) + (1 - r[:, t]) * x[:, t] * scale)
  return np.stack(out, axis=1)


def test_sru_trax14_matches_trax_and_numpy():
  layer = fx.init_with_trax_weights(SRU14(4), T141, 'sru')
  y = layer(X)
  fx.assert_matches(y, T141, 'sru')
  np.testing.assert_allclose(y, np_sru(X, T141['sru/w0'], T141['sru/w1'], 3**0.5), atol=1e-5)
  tanh = fx.init_with_trax_weights(SRU14(4, activation=Tanh()), T141, 'sru_tanh')
  fx.assert_matches(tanh(X), T141, 'sru_tanh')


def test_sru_trax12_matches_trax_and_numpy():
  layer = fx.init_with_trax_weights(SRU(4), T123, 'sru')
  y = layer(X)
  fx.assert_matches(y, T123, 'sru')
  np.testing.assert_allclose(y, np_sru(X, T123['sru/w0'], T123['sru/w1'], 1.0), atol=1e-5)
  assert (layer.n_in, layer.n_out, repr(layer)) == (1, 1, 'SRU_4')


def test_sru_predict_mode_matches_trax_piece_by_piece():
  layer = fx.init_with_trax_weights(SRU14(4, mode='predict'), T141, 'sru_predict')
  for k, piece in enumerate(PIECES):
    fx.assert_matches(layer(piece), T141, 'sru_predict', call=k)
  whole = fx.init_with_trax_weights(SRU14(4, mode='eval'), T141, 'sru_predict')
  np.testing.assert_allclose(
      np.concatenate([fx.outputs(T141, 'sru_predict', k)[0] for k in range(4)], axis=1), whole(X),
      atol=1e-5)


def test_lstm_predict_mode_matches_trax_piece_by_piece():
  layer = fx.init_with_trax_weights(LSTM(4, mode='predict'), T141, 'lstm_predict')
  for k, piece in enumerate(PIECES):
    fx.assert_matches(layer(piece), T141, 'lstm_predict', call=k)


def test_gru_predict_equals_eval_over_pieces():
  train, predict = GRU(3), GRU(3, mode='predict')
  weights, _ = train.init(ShapeDtype(X[:, :2].shape))
  predict.init(ShapeDtype(X[:, :2].shape))
  predict.weights = weights
  pieces = np.concatenate([predict(p) for p in PIECES], axis=1)
  np.testing.assert_allclose(pieces, train(X), atol=1e-6)
  assert len(predict.state[1]) == 2  # Scan keeps (cell state, (carries, started))


def test_lstm_return_state_and_initial_state():
  with_state = LSTM(3, return_state=True)
  weights, _ = with_state.init(ShapeDtype(X.shape))
  ys, final = with_state(X)
  assert (with_state.n_in, with_state.n_out, ys.shape, final.shape) == (1, 2, (2, 5, 3), (2, 6))
  given = LSTM(3, initial_state=True)
  given.init((ShapeDtype(X.shape), ShapeDtype((2, 6))))
  given.weights = (weights[1], ())  # no zero-state Branch: (scan, select)
  assert given.n_in == 2
  np.testing.assert_allclose(given((X, np.zeros((2, 6), np.float32))), ys, atol=1e-6)
  np.testing.assert_allclose(ys[:, -1], final[:, 3:], atol=1e-6)  # h is the state's second half
  with pytest.raises(ArgumentError, match='LSTM: mode must be one of'):
    LSTM(3, mode='infer')


def _conv():
  return Conv(3, (3, 3), padding='SAME')


def test_general_gru_cell_matches_trax():
  layer = fx.init_with_trax_weights(GeneralGRUCell(_conv, dropout_rate_c=0.0), T141, 'conv_gru')
  s = fx.inputs(T141, 'conv_gru')
  fx.assert_matches(layer(s), T141, 'conv_gru')
  grads = jax.grad(lambda w: layer.pure_fn(s, w, layer.state, None)[0].sum())(layer.weights)
  assert all(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))


def test_conv_gru_cell_is_the_general_cell_with_dropout():
  s = fx.inputs(T141, 'conv_gru')
  cell, general = ConvGRUCell(3), GeneralGRUCell(_conv)
  weights, state = cell.init(ShapeDtype(s.shape))
  assert [a.shape for a in jax.tree.leaves(weights)
         ] == [T141[f'conv_gru/w{i}'].shape for i in range(6)]
  general.init(ShapeDtype(s.shape))
  general.weights = weights
  rng = jax.random.key(7)
  np.testing.assert_allclose(cell(s, rng=rng), general(s, rng=rng), rtol=1e-6)
  with pytest.raises(LayerError, match="Dropout: mode='train' with rate=0.1 needs an rng"):
    cell.pure_fn(s, weights, state, None)


def test_inner_sru_cell():
  xf, f, c = np.float32(2.0), np.float32(0.25), np.float32(4.0)
  assert InnerSRUCell()((xf, f, c)) == (3.0, 3.0)
