"""RNNLM and GRULM against NumPy; predict mode (one token per call) equals eval mode."""

import jax
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.rnn import GRUCell, LSTMCell
from minitrax.models.rnn import GRULM, RNNLM, MultiRNNCell, Recurrent
from minitrax.shapes import ShapeDtype, signature

VOCAB, D, BATCH, TIME = 7, 4, 2, 6
TOKENS = np.random.default_rng(0).integers(1, VOCAB, (BATCH, TIME)).astype(np.int32)
SEQ_SIG, STEP_SIG = signature(TOKENS), ShapeDtype((BATCH, 1), np.int32)

# ------------------------------------------------------------------ NumPy reference


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def np_lstm_step(x, state, w, b):
  c, h = np.split(state, 2, axis=-1)
  i, j, f, o = np.split(np.concatenate([x, h], -1) @ w + b, 4, axis=-1)
  c = c * _sigmoid(f) + _sigmoid(i) * np.tanh(j)
  h = np.tanh(c) * _sigmoid(o)
  return h, np.concatenate([c, h], -1)


def np_gru_step(x, h, w1, b1, w2, b2):
  u, r = np.split(_sigmoid(np.concatenate([x, h], -1) @ w1 + b1), 2, axis=-1)
  c = np.tanh(np.concatenate([x, r * h], -1) @ w2 + b2)
  h = u * h + (1 - u) * c
  return h, h


def np_language_model(tokens, table, layers, dense_w, dense_b):
  """Shift right, embed, run each (step, weights, state_size) layer in time, Dense, log-softmax."""
  shifted = np.concatenate([np.zeros_like(tokens[:, :1]), tokens[:, :-1]], axis=1)
  x = table[shifted]
  for step, weights, state_size in layers:
    state, outputs = np.zeros((x.shape[0], state_size)), []
    for t in range(x.shape[1]):
      y, state = step(x[:, t], state, *weights)
      outputs.append(y)
    x = np.stack(outputs, axis=1)
  logits = x @ dense_w + dense_b
  logits -= logits.max(-1, keepdims=True)
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _f64(tree):
  return [np.asarray(a, np.float64) for a in jax.tree.leaves(tree)]


def reference(kind, weights, tokens):
  """NumPy log-probabilities of the 2-layer models built in `MODELS` from their weights."""
  table, (dense_w, dense_b) = _f64(weights[1])[0], _f64(weights[-2])
  if kind == 'rnnlm':
    w0, b0, w1, b1 = _f64(weights[3])
    layers = [(np_lstm_step, (w0, b0), 2 * D), (np_lstm_step, (w1, b1), 2 * D)]
  else:
    layers = [(np_gru_step, _f64(weights[2]), D), (np_gru_step, _f64(weights[3]), D)]
  return np_language_model(tokens, table, layers, dense_w, dense_b)


MODELS = {
    'rnnlm':
        lambda mode, dropout=0.1: RNNLM(VOCAB, d_model=D, n_layers=2, dropout=dropout, mode=mode),
    'grulm':
        lambda mode: GRULM(VOCAB, d_model=D, n_layers=2, mode=mode),
}


@pytest.fixture(scope='module', params=list(MODELS))
def eval_and_predict(request):
  """(kind, eval model, predict model with the eval model's weights, predict initial state)."""
  kind = request.param
  evaluate = MODELS[kind]('eval')
  weights, _ = evaluate.init(SEQ_SIG, rng=jax.random.key(1))
  predict = MODELS[kind]('predict')
  _, initial_state = predict.init(STEP_SIG)
  predict.weights = weights
  return kind, evaluate, predict, initial_state


# ------------------------------------------------------------------ tests


def test_eval_mode_matches_numpy(eval_and_predict):
  kind, evaluate, _, _ = eval_and_predict
  y = evaluate(TOKENS)
  np.testing.assert_allclose(y, reference(kind, evaluate.weights, TOKENS), rtol=1e-5, atol=1e-5)
  assert evaluate.output_signature(SEQ_SIG) == signature(y) == ShapeDtype((BATCH, TIME, VOCAB))


def test_eval_mode_is_causal(eval_and_predict):
  _, evaluate, _, _ = eval_and_predict
  changed = TOKENS.copy()
  changed[:, 3] = (changed[:, 3] % (VOCAB - 1)) + 1
  y, y_changed = np.asarray(evaluate(TOKENS)), np.asarray(evaluate(changed))
  np.testing.assert_array_equal(y[:, :4], y_changed[:, :4])  # positions 0..3 never see x_3
  assert not np.allclose(y[:, 4:], y_changed[:, 4:])


def test_predict_one_token_per_call_equals_eval(eval_and_predict):
  _, evaluate, predict, initial_state = eval_and_predict
  predict.state = initial_state
  inputs = np.concatenate([np.zeros((BATCH, 1), np.int32), TOKENS[:, :-1]], axis=1)
  steps = [predict(inputs[:, t:t + 1]) for t in range(TIME)]
  assert all(signature(s) == ShapeDtype((BATCH, 1, VOCAB)) for s in steps)
  assert predict.output_signature(STEP_SIG) == signature(steps[0])
  np.testing.assert_allclose(np.concatenate(steps, axis=1), evaluate(TOKENS), atol=1e-5)
  # The carry lives in the state: it moved away from zero; resetting it starts again.
  carries = [c for c in jax.tree.leaves(predict.state) if c.ndim == 2]
  assert carries and all(np.abs(np.asarray(c)).max() > 0 for c in carries)
  predict.state = initial_state
  np.testing.assert_array_equal(predict(inputs[:, :1]), steps[0])


def test_predict_rejects_another_batch_size(eval_and_predict):
  _, _, predict, initial_state = eval_and_predict
  predict.state = initial_state
  with pytest.raises(
      LayerError, match=r'predict mode was initialised for batch 2, got input '
      r'of shape \(3, 1, 4\)'):
    predict.pure_fn(np.ones((3, 1), np.int32), predict.weights, initial_state, None)


@pytest.mark.parametrize('kind', list(MODELS))
def test_weights_identical_in_every_mode_and_load_into_predict(kind, tmp_path):
  trees = {}
  for mode, sig in (('train', SEQ_SIG), ('eval', SEQ_SIG), ('predict', STEP_SIG)):
    trees[mode] = MODELS[kind](mode).init(sig, rng=jax.random.key(2))
  for mode in ('eval', 'predict'):
    assert jax.tree.structure(trees[mode][0]) == jax.tree.structure(trees['train'][0])
    jax.tree.map(np.testing.assert_array_equal, trees[mode][0], trees['train'][0])
  assert jax.tree.structure(trees['predict'][1]) != jax.tree.structure(trees['eval'][1])
  trained = MODELS[kind]('train')
  trained.init(SEQ_SIG, rng=jax.random.key(3))
  trained.save_to_file(str(tmp_path / 'model.ckpt'))
  predict = MODELS[kind]('predict')
  predict.init(STEP_SIG)
  predict.init_from_file(str(tmp_path / 'model.ckpt'), weights_only=True)
  jax.tree.map(np.testing.assert_array_equal, predict.weights, trained.weights)


@pytest.mark.parametrize('make, vocab', [
    (lambda mode: RNNLM(VOCAB, d_model=D, n_layers=3, rnn_cell=GRUCell, rnn_cell_d_state_multiplier=
                        1, mode=mode), VOCAB),
    (lambda mode: GRULM(d_model=D, mode=mode), 256),
], ids=['rnnlm_gru_3_layers', 'grulm_defaults'])
def test_output_shapes_in_every_mode(make, vocab):
  for mode, sig, time in (('train', SEQ_SIG, TIME), ('eval', SEQ_SIG, TIME), ('predict', STEP_SIG,
                                                                              1)):
    assert make(mode).output_signature(sig) == ShapeDtype((BATCH, time, vocab))


def test_train_mode_applies_dropout_and_needs_an_rng():
  train = MODELS['rnnlm']('train', dropout=0.5)
  weights, state = train.init(SEQ_SIG)
  evaluate = MODELS['rnnlm']('eval', dropout=0.5)
  y_eval, _ = evaluate.pure_fn(TOKENS, weights, state, None)
  y_train, _ = train.pure_fn(TOKENS, weights, state, jax.random.key(4))
  assert signature(y_train) == signature(y_eval) and not np.allclose(y_train, y_eval)
  with pytest.raises(LayerError, match=r"Dropout: mode='train' with rate=0.5 needs an rng"):
    train.pure_fn(TOKENS, weights, state, None)


def test_multi_rnn_cell_matches_numpy():
  cell = MultiRNNCell([LSTMCell(3), LSTMCell(3)])
  rng = np.random.default_rng(5)
  x, carry = rng.normal(size=(2, 5)).astype(np.float32), rng.normal(size=(2, 12)).astype(np.float32)
  weights, _ = cell.init((signature(x), signature(carry)))
  (y, new_carry) = cell((x, carry))
  w0, b0, w1, b1 = _f64(weights)
  h0, s0 = np_lstm_step(x, carry[:, :6], w0, b0)
  h1, s1 = np_lstm_step(h0, carry[:, 6:], w1, b1)
  np.testing.assert_allclose(y, h1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new_carry, np.concatenate([s0, s1], -1), rtol=1e-5, atol=1e-6)
  assert cell.output_signature((signature(x), signature(carry))) == signature((y, new_carry))


def test_recurrent_layer_matches_numpy():
  layer = Recurrent(GRUCell(3), 3, mode='eval')
  x = np.random.default_rng(6).normal(size=(2, 4, 5)).astype(np.float32)
  weights, state = layer.init(signature(x))
  assert state == (((),), ())
  y = layer(x)
  h, expected = np.zeros((2, 3)), []
  for t in range(4):
    out, h = np_gru_step(x[:, t], h, *_f64(weights))
    expected.append(out)
  np.testing.assert_allclose(y, np.stack(expected, 1), rtol=1e-5, atol=1e-6)
  assert layer.output_signature(signature(x)) == signature(y) == ShapeDtype((2, 4, 3))


@pytest.mark.parametrize('make, error, message', [
    (lambda: RNNLM(0), ValueError, r'RNNLM: vocab_size must be an int >= 1, got 0'),
    (lambda: RNNLM(5, mode='decode'), ValueError,
     r"RNNLM: mode must be one of \('train', 'eval', 'predict'\), got 'decode'"),
    (lambda: RNNLM(5, rnn_cell='LSTM'), TypeError, r'RNNLM: rnn_cell must be a function'),
    (lambda: RNNLM(5, dropout=1.0), ValueError, r'Dropout: rate must be a number in \[0, 1\)'),
    (lambda: GRULM(n_layers=0), ValueError, r'GRULM: n_layers must be an int >= 1, got 0'),
    (lambda: MultiRNNCell([]), ValueError, r'MultiRNNCell: cells must be one or more layers'),
    (lambda: Recurrent(GRUCell(2), 0), ValueError,
     r'Recurrent: state_size must be an int >= 1, got 0'),
])
def test_bad_arguments_fail_at_construction(make, error, message):
  with pytest.raises(error, match=message):
    make()


def test_wrong_state_multiplier_names_the_cell():
  model = RNNLM(VOCAB, d_model=D, rnn_cell=GRUCell)  # GRU needs multiplier 1
  with pytest.raises(
      LayerError, match=r'GRUCell: state must have last axis n_units = 4, '
      r'got shape \(2, 8\)'):
    model.init(SEQ_SIG)


def test_recurrent_state_setter_checks_the_pair():
  layer = Recurrent(GRUCell(2), 2, mode='predict')
  layer.init(ShapeDtype((1, 1, 3)))
  with pytest.raises(LayerError, match=r'state of Recurrent must be a pair \(scan_state, '
                     r'carry\), got \(\)'):
    layer.state = ()
