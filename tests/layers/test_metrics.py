"""Losses and metrics against NumPy references; masking, weights, id checks."""

import jax
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers import metrics as m
from minitrax.shapes import ShapeDtype, signature

N_CAT = 5
RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(3, 4, N_CAT)).astype(np.float32)
LOG_PROBS = np.asarray(jax.nn.log_softmax(LOGITS), np.float32)
TARGETS = np.array([[1, 2, 0, 0], [4, 4, 3, 0], [2, 1, 0, 3]], np.int32)
WEIGHTS = RNG.uniform(0.5, 2.0, size=TARGETS.shape).astype(np.float32)


def run(layer, *inputs):
  """Eager `pure_fn` (no compile): the layer's output as float64."""
  return np.float64(layer.pure_fn(inputs if len(inputs) > 1 else inputs[0], (), (), None)[0])


def np_log_softmax(x):
  x = x.astype(np.float64)
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def np_weights(targets, weights, id_to_mask):
  w = np.ones(targets.shape) if weights is None else np.broadcast_to(weights, targets.shape)
  return w * (targets != id_to_mask) if id_to_mask is not None else w


def np_mean(values, w):
  return np.sum(values * w) / np.sum(w)


def np_picked(log_probs, targets):
  return np.take_along_axis(log_probs.astype(np.float64), targets[..., None], -1)[..., 0]


def np_sequence_accuracy(correct, w):
  return np.mean(np.all(correct | (w == 0), axis=1))


MASKING = [(None, False), (0, False), (None, True), (0, True)]
CATEGORY_METRICS = {
    'CrossEntropyLoss': lambda lp, t, w: np_mean(-np_picked(lp, t), w),
    'NegLogPerplexity': lambda lp, t, w: np_mean(np_picked(lp, t), w),
    'Accuracy': lambda lp, t, w: np_mean(lp.argmax(-1) == t, w),
    'SequenceAccuracy': lambda lp, t, w: np_sequence_accuracy(lp.argmax(-1) == t, w),
    'SumOfWeights': lambda lp, t, w: np.sum(w),
}


@pytest.mark.parametrize('name', sorted(CATEGORY_METRICS))
@pytest.mark.parametrize('id_to_mask, has_weights', MASKING)
def test_category_metrics_match_numpy(name, id_to_mask, has_weights):
  layer = getattr(m, name)(id_to_mask=id_to_mask, has_weights=has_weights)
  assert layer.n_in == (3 if has_weights else 2)
  inputs = (LOG_PROBS, TARGETS) + ((WEIGHTS,) if has_weights else ())
  w = np_weights(TARGETS, WEIGHTS if has_weights else None, id_to_mask)
  want = CATEGORY_METRICS[name](LOG_PROBS, TARGETS, w)
  np.testing.assert_allclose(run(layer, *inputs), want, rtol=1e-6)
  assert layer.output_signature(signature(inputs)) == ShapeDtype((), np.float32)


def test_sequence_accuracy_ignores_masked_positions():
  predicted = np.array([[1, 2, 3], [1, 2, 3]])
  targets = np.array([[1, 2, 0], [1, 0, 3]])  # row 0 wrong only at a padding position
  log_probs = np.log(np.eye(4, dtype=np.float32)[predicted] * 0.97 + 0.01)
  np.testing.assert_allclose(run(m.SequenceAccuracy(), log_probs, targets), 0.0)
  np.testing.assert_allclose(run(m.SequenceAccuracy(id_to_mask=0), log_probs, targets), 1.0)
  weights = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
  np.testing.assert_allclose(run(m.SequenceAccuracy(has_weights=True), log_probs, targets, weights),
                             0.5)


def test_weights_broadcast_over_positions():
  per_sequence = np.array([[1.0], [0.0], [3.0]], np.float32)  # (batch, 1)
  got = run(m.CrossEntropyLoss(has_weights=True), LOG_PROBS, TARGETS, per_sequence)
  want = np_mean(-np_picked(LOG_PROBS, TARGETS), np.broadcast_to(per_sequence, TARGETS.shape))
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_perfect_prediction():
  targets = TARGETS
  log_probs = np.asarray(jax.nn.log_softmax(40.0 * np.eye(N_CAT, dtype=np.float32)[targets]))
  assert run(m.Accuracy(), log_probs, targets) == 1.0
  assert run(m.SequenceAccuracy(), log_probs, targets) == 1.0
  assert 0 <= run(m.CrossEntropyLoss(), log_probs, targets) < 1e-6
  logits = 40.0 * np.eye(N_CAT, dtype=np.float32)[targets]
  assert run(m.WeightedCategoryCrossEntropy(), logits, targets, WEIGHTS) < 1e-6
  assert run(m.WeightedCategoryAccuracy(), logits, targets, WEIGHTS) == 1.0


@pytest.mark.parametrize('label_smoothing', [None, 0.1])
def test_weighted_category_cross_entropy_from_logits(label_smoothing):
  eps = label_smoothing or 0.0
  p = (1 - eps) * np.eye(N_CAT)[TARGETS] + eps / N_CAT
  want = np_mean(-np.sum(p * np_log_softmax(LOGITS), axis=-1), WEIGHTS)
  layer = m.WeightedCategoryCrossEntropy(label_smoothing)
  assert layer.n_in == 3
  np.testing.assert_allclose(run(layer, LOGITS, TARGETS, WEIGHTS), want, rtol=1e-6)


def test_cross_entropy_gradient_from_logits():
  eps = 0.1
  p = (1 - eps) * np.eye(N_CAT)[TARGETS] + eps / N_CAT
  softmax = np.exp(np_log_softmax(LOGITS))
  want = WEIGHTS[..., None] * (softmax - p) / WEIGHTS.sum()
  layer = m.WeightedCategoryCrossEntropy(eps)
  grad = jax.grad(lambda z: layer.pure_fn((z, TARGETS, WEIGHTS), (), (), None)[0])(LOGITS)
  np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)


def test_weighted_category_accuracy():
  want = np_mean(LOGITS.argmax(-1) == TARGETS, WEIGHTS)
  layer = m.WeightedCategoryAccuracy()
  assert layer.n_in == 3
  np.testing.assert_allclose(run(layer, LOGITS, TARGETS, WEIGHTS), want, rtol=1e-6)


Y = RNG.normal(size=(3, 4)).astype(np.float32)
T = (Y + RNG.normal(scale=1.5, size=Y.shape)).astype(np.float32)
W = RNG.uniform(0.0, 2.0, size=Y.shape).astype(np.float32)
D = np.abs(Y.astype(np.float64) - T)
BITS = (RNG.uniform(size=Y.shape) < 0.5).astype(np.float32)
X64 = 4.0 * Y.astype(np.float64)
ELEMENTWISE = {
    'L2Loss': (Y, T, (Y - T.astype(np.float64))**2),
    'SmoothL1Loss': (Y, T, np.where(D < 1, 0.5 * D**2, D - 0.5)),
    'BinaryCrossEntropy': (4.0 * Y, BITS, -(BITS * np.log(1 / (1 + np.exp(-X64))) +
                                            (1 - BITS) * np.log(1 - 1 / (1 + np.exp(-X64))))),
}


@pytest.mark.parametrize('name', sorted(ELEMENTWISE))
@pytest.mark.parametrize('has_weights', [False, True])
def test_elementwise_losses_match_numpy(name, has_weights):
  y, t, values = ELEMENTWISE[name]
  layer = getattr(m, name)(has_weights=has_weights)
  inputs = (y, t, W) if has_weights else (y, t)
  want = np_mean(values, W) if has_weights else np.mean(values)
  np.testing.assert_allclose(run(layer, *inputs), want, rtol=1e-5)
  assert layer.output_signature(signature(inputs)) == ShapeDtype((), np.float32)


def test_binary_cross_entropy_stays_finite_for_large_logits():
  logits = np.array([[-200.0, 200.0]], np.float32)
  got = run(m.BinaryCrossEntropy(), logits, np.array([[1.0, 0.0]], np.float32))
  np.testing.assert_allclose(got, 200.0, rtol=1e-6)


def test_out_of_range_targets_raise_eagerly_and_under_jit():
  bad = TARGETS.copy()
  bad[1, 2] = N_CAT
  msg = r'CrossEntropyLoss targets: ids must lie in \[0, 5\), got values from 0 to 5'
  layer = m.CrossEntropyLoss()
  with pytest.raises(LayerError, match=msg):
    layer.pure_fn((LOG_PROBS, bad), (), (), None)
  assert np.isnan(jax.jit(layer.pure_fn)((LOG_PROBS, bad), (), (), None)[0])
  with pytest.raises(LayerError, match=msg):
    layer((LOG_PROBS, bad))
  bad[1, 2] = -1
  with pytest.raises(
      LayerError, match=r'Accuracy targets: ids must lie in \[0, 5\), got '
      r'values from -1 to 4'):
    m.Accuracy().pure_fn((LOG_PROBS, bad), (), (), None)
  # A masked position may hold any id (here -1 used as padding).
  padded = np.where(TARGETS == 0, -1, TARGETS)
  want = np_mean(-np_picked(LOG_PROBS, np.maximum(padded, 0)), padded != -1)
  np.testing.assert_allclose(run(m.CrossEntropyLoss(id_to_mask=-1), LOG_PROBS, padded), want,
                             rtol=1e-6)


def test_jit_matches_eager():
  layer = m.CrossEntropyLoss(id_to_mask=0, has_weights=True)
  inputs = (LOG_PROBS, TARGETS, WEIGHTS)
  np.testing.assert_allclose(layer(inputs), run(layer, *inputs), rtol=1e-6)


def test_input_errors():
  with pytest.raises(ValueError, match='L2Loss: cannot mask by id'):
    m.L2Loss(id_to_mask=0)
  with pytest.raises(TypeError, match="Accuracy: id_to_mask must be an int or None, got 'x'"):
    m.Accuracy(id_to_mask='x')
  with pytest.raises(ValueError, match=r'label_smoothing must lie in \[0, 1\], got 1.5'):
    m.WeightedCategoryCrossEntropy(1.5)
  with pytest.raises(
      LayerError, match=r"Accuracy: weights of shape \(2,\) do not broadcast "
      r"to the targets' shape \(3, 4\)"):
    m.Accuracy(has_weights=True).pure_fn((LOG_PROBS, TARGETS, np.ones(2)), (), (), None)
  with pytest.raises(
      LayerError, match=r'targets must have the shape of the model output '
      r'without its last axis, \(3, 4\); got \(3, 4, 1\)'):
    m.CrossEntropyLoss().pure_fn((LOG_PROBS, TARGETS[..., None]), (), (), None)
  with pytest.raises(LayerError, match='targets must be integer category ids'):
    m.Accuracy().pure_fn((LOG_PROBS, TARGETS.astype(np.float32)), (), (), None)
  with pytest.raises(LayerError, match=r'same shape, got \(3, 4\) and \(4,\)'):
    m.L2Loss().pure_fn((Y, T[0]), (), (), None)


def test_metrics_registry():
  assert set(m.METRICS) == {
      'loss', 'accuracy', 'sequence_accuracy', 'neg_log_perplexity', 'weights_per_batch_per_core'
  }
  for factory in m.METRICS.values():
    assert factory(has_weights=True, id_to_mask=0).n_in == 3
    assert factory().n_in == 2
  assert m.METRICS['weights_per_batch_per_core'] is m.SumOfWeights
