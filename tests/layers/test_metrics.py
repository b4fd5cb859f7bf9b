"""Trax 1.2's losses and metrics (minitrax.layers.metrics): numbers printed by real Trax 1.2.3,
NumPy references for masking and weights, id checks and error messages."""

import jax
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers import metrics as m
from minitrax.layers import metrics14
from minitrax.layers.core import ArgMax, BinaryClassifier
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
  """Trax's score: each sequence `1 - min(1, sum of the weights of its wrong positions)`."""
  wrong = ((1 - correct) * w).reshape(len(w), -1).sum(axis=1)
  return np.mean(1 - np.minimum(1, wrong))


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


# Small fixed inputs; the same literals fed real Trax 1.2.3 for the numbers below.
T_LOGITS = np.array([[[0.5, -1.0, 2.0, 0.0], [1.5, 0.25, -0.5, 1.0], [-2.0, 0.0, 0.75, 3.0]],
                     [[0.0, 0.5, 1.0, -1.5], [2.5, -0.25, 0.5, 0.0], [1.0, 1.25, -1.0, 0.5]]],
                    np.float32)
T_LOG_PROBS = np_log_softmax(T_LOGITS).astype(np.float32)
T_TARGETS = np.array([[2, 3, 3], [2, 0, 1]], np.int32)
T_WEIGHTS = np.array([[1.0, 0.5, 0.0], [2.0, 1.0, 0.25]], np.float32)
T_Y = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], np.float32)
T_T = np.array([[0.0, 1.0, 2.5], [-1.0, 0.5, 0.0]], np.float32)
T_W = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 1.0]], np.float32)

# Printed by Trax 1.2.3 (`tl.<name>(id_to_mask=..., has_weights=...)` on (T_LOG_PROBS, T_TARGETS
# [, T_WEIGHTS]); ~/.cache/minitrax-bench/trax/trax123 with prelude_12x).
TRAX_123 = {
    ('CrossEntropyLoss', None, False): 0.5876302123069763,
    ('CrossEntropyLoss', 0, False): 0.6555737257003784,
    ('CrossEntropyLoss', 3, False): 0.5421178340911865,
    ('CrossEntropyLoss', None, True): 0.6000392436981201,
    ('CrossEntropyLoss', 3, True): 0.5286047458648682,
    ('AccuracyScalar', None, False): 0.8333333134651184,
    ('AccuracyScalar', 0, False): 0.800000011920929,
    ('AccuracyScalar', 3, False): 1.0,
    ('AccuracyScalar', None, True): 0.8947368264198303,
    ('AccuracyScalar', 3, True): 1.0,
    ('SequenceAccuracyScalar', None, False): 0.5,
    ('SequenceAccuracyScalar', 0, False): 0.5,
    ('SequenceAccuracyScalar', 3, False): 1.0,
    ('SequenceAccuracyScalar', None, True): 0.75,  # a wrong position of weight 0.5 scores 0.5
    ('SequenceAccuracyScalar', 3, True): 1.0,
    ('SumOfWeights', None, False): 6.0,  # int32 in Trax; float32 here
    ('SumOfWeights', 0, False): 5.0,
    ('SumOfWeights', 3, False): 4.0,
    ('SumOfWeights', None, True): 4.75,
    ('SumOfWeights', 3, True): 4.25,
}


@pytest.mark.parametrize('name, id_to_mask, has_weights', sorted(TRAX_123, key=str))
def test_trax_123_numbers(name, id_to_mask, has_weights):
  layer = getattr(m, name)(id_to_mask=id_to_mask, has_weights=has_weights)
  inputs = (T_LOG_PROBS, T_TARGETS) + ((T_WEIGHTS,) if has_weights else ())
  np.testing.assert_allclose(run(layer, *inputs), TRAX_123[name, id_to_mask, has_weights],
                             rtol=1e-6, atol=1e-7)
  if name != 'SumOfWeights':
    w = np_weights(T_TARGETS, T_WEIGHTS if has_weights else None, id_to_mask)
    np.testing.assert_allclose(
        run(layer, *inputs), CATEGORY_METRICS[name.replace('Scalar', '')](T_LOG_PROBS, T_TARGETS,
                                                                          w), rtol=1e-6)


def test_trax_123_l2_loss_and_broadcast_weights():
  # Printed by Trax 1.2.3: tl.L2Loss(), tl.L2Loss(has_weights=True) on (T_Y, T_T[, T_W]), and
  # CrossEntropyLoss / SequenceAccuracyScalar(has_weights=True) with weights [[1.], [3.]].
  np.testing.assert_allclose(run(m.L2Loss(), T_Y, T_T), 1.84375, rtol=1e-6)
  np.testing.assert_allclose(run(m.L2Loss(has_weights=True), T_Y, T_T, T_W), 0.7613636255264282,
                             rtol=1e-6)
  per_row = np.array([[1.0], [3.0]], np.float32)
  np.testing.assert_allclose(
      run(m.CrossEntropyLoss(has_weights=True), T_LOG_PROBS, T_TARGETS, per_row), 0.598168671131134,
      rtol=1e-6)
  np.testing.assert_allclose(
      run(m.SequenceAccuracyScalar(has_weights=True), T_LOG_PROBS, T_TARGETS, per_row), 0.5,
      rtol=1e-6)


def test_sequence_accuracy_gives_trax_partial_credit_for_fractional_weights():
  correct = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1]], bool)
  log_probs = np.log(np.where(correct[..., None], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]))
  targets = np.zeros((3, 3), np.int32)
  w = np.array([[1.0, 0.25, 1.0], [0.5, 1.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
  got = run(m.SequenceAccuracy(has_weights=True), log_probs.astype(np.float32), targets, w)
  np.testing.assert_allclose(got, (0.75 + 0.5 + 1.0) / 3, rtol=1e-6)
  np.testing.assert_allclose(got, np_sequence_accuracy(correct, w), rtol=1e-6)


def test_accuracy_with_a_classifier_is_trax_14s_form():
  for make in (lambda: m.Accuracy(classifier=ArgMax()), lambda: m.Accuracy(ArgMax())):
    layer = make()
    assert layer.n_in == 3 and layer.name == 'Accuracy' and not isinstance(layer, m.Accuracy)
    weights, state = layer.init(signature((T_LOGITS, T_TARGETS, T_WEIGHTS)))
    got = layer.pure_fn((T_LOGITS, T_TARGETS, T_WEIGHTS), weights, state, None)[0]
    np.testing.assert_allclose(got, 0.8947368264198303, rtol=1e-6)  # Trax 1.4.1's Accuracy()
  seq = m.SequenceAccuracy(classifier=BinaryClassifier())
  assert seq.name == 'SequenceAccuracy' and seq.n_in == 3
  assert repr(seq) == repr(metrics14.SequenceAccuracy()) == 'SequenceAccuracy_in3'
  assert isinstance(m.SequenceAccuracy(), m.SequenceAccuracy)  # no classifier: Trax 1.2's form
  assert m.Accuracy(0, True).n_in == 3 and isinstance(m.Accuracy(0, True), m.Accuracy)


def test_weighted_category_metrics_are_trax_14s():
  # Trax 1.4.1 divides by the sum of the weights as given: (batch, 1) weights over 3 positions.
  per_row = np.array([[1.0], [3.0]], np.float32)
  np.testing.assert_allclose(run(m.WeightedCategoryAccuracy(), T_LOGITS, T_TARGETS, per_row), 2.75,
                             rtol=1e-6)
  np.testing.assert_allclose(run(m.WeightedCategoryCrossEntropy(), T_LOGITS, T_TARGETS, per_row),
                             1.7945061922073364, rtol=1e-6)


def test_binary_cross_entropy_matches_trax_14():
  logits = np.array([[2.0, -1.0, 0.5], [-0.25, 3.0, -2.0]], np.float32)
  targets = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], np.float32)
  # Printed by Trax 1.4.1: tl.BinaryCrossEntropy()((logits, targets)).
  np.testing.assert_allclose(run(m.BinaryCrossEntropy(), logits, targets), 0.4026202857494354,
                             rtol=1e-6)


def test_all_zero_weights_give_nan_as_in_trax():
  zeros = np.zeros_like(T_WEIGHTS)
  for layer in (m.CrossEntropyLoss(has_weights=True), m.Accuracy(has_weights=True)):
    assert np.isnan(run(layer, T_LOG_PROBS, T_TARGETS, zeros))
  assert np.isnan(run(m.CrossEntropyLoss(id_to_mask=2), T_LOG_PROBS, np.full((2, 3), 2, np.int32)))
  assert run(m.SumOfWeights(has_weights=True), T_LOG_PROBS, T_TARGETS, zeros) == 0.0


def test_more_input_errors():
  with pytest.raises(TypeError, match='CrossEntropyLoss: has_weights must be a bool, got 1'):
    m.CrossEntropyLoss(has_weights=1)
  with pytest.raises(TypeError, match='Accuracy: classifier must be a layer such as ArgMax'):
    m.Accuracy(classifier='argmax')
  with pytest.raises(
      LayerError, match=r'SmoothL1Loss: model output and targets must have the same shape, '
      r'got \(2, 3\) and \(3, 2\)'):
    m.SmoothL1Loss().pure_fn((T_Y, T_T.T), (), (), None)
