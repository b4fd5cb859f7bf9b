"""Trax 1.4's losses and metrics (minitrax.layers.metrics14, fscores, core's classifiers).

Numbers printed by real Trax 1.4.1 on small fixed inputs; NumPy references for the
weighting (Trax 1.4 divides by the sum of the weights as given), label smoothing, cutoff,
masking and F-scores; literal error messages.
"""

import jax
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers import metrics14 as m
from minitrax.layers.combinators import Serial
from minitrax.layers.core import ArgMax, BinaryClassifier, Dense, MulticlassClassifier
from minitrax.shapes import ShapeDtype, signature

LOGITS = np.array([[[0.5, -1.0, 2.0, 0.0], [1.5, 0.25, -0.5, 1.0], [-2.0, 0.0, 0.75, 3.0]],
                   [[0.0, 0.5, 1.0, -1.5], [2.5, -0.25, 0.5, 0.0], [1.0, 1.25, -1.0, 0.5]]],
                  np.float32)
TARGETS = np.array([[2, 3, 3], [2, 0, 1]], np.int32)
WEIGHTS = np.array([[1.0, 0.5, 0.0], [2.0, 1.0, 0.25]], np.float32)
PER_ROW = np.array([[1.0], [3.0]], np.float32)
SEQ_W = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], np.float32)
Y = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], np.float32)
T = np.array([[0.0, 1.0, 2.5], [-1.0, 0.5, 0.0]], np.float32)
W = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 1.0]], np.float32)
PROBS = np.array([0.9, 0.2, 0.6, 0.35], np.float32)
BIN_T = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
BIN_W = np.array([1.0, 2.0, 0.5, 1.0], np.float32)
BIN_LOGITS = np.array([[2.0, -1.0, 0.5], [-0.25, 3.0, -2.0]], np.float32)
BIN_LT = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], np.float32)
F_OUT = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3],
                  [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]], np.float32)
F_T = np.array([1, 0, 1, 1, 2, 2], np.int32)


def np_log_softmax(x):
  x = x.astype(np.float64)
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


LOG_PROBS = np_log_softmax(LOGITS).astype(np.float32)


def run(layer, *inputs):
  """`layer` initialised on the inputs and run eagerly: its output as float64."""
  weights, state = layer.init(signature(inputs))
  return np.float64(layer.pure_fn(inputs, weights, state, None)[0])


# Printed by Trax 1.4.1 (`tl.<layer>` applied to the inputs; the venv at
# ~/.cache/minitrax-bench/trax/venv). BinaryClassifier is Trax 1.3's
# `Fn('BinaryClassifier', lambda x: (x > 0.5).astype(jnp.int32))` (not in 1.4.1).
TRAX_141 = {
    'CategoryAccuracy': (m.CategoryAccuracy, (LOGITS, TARGETS), 0.8333333134651184),
    'CategoryCrossEntropy': (m.CategoryCrossEntropy, (LOGITS, TARGETS), 0.5876302719116211),
    'CategoryCrossEntropy ls=0.1': (lambda: m.CategoryCrossEntropy(label_smoothing=0.1),
                                    (LOGITS, TARGETS), 0.7251302599906921),
    'WeightedCategoryAccuracy':
        (m.WeightedCategoryAccuracy, (LOGITS, TARGETS, WEIGHTS), 0.8947368264198303),
    'WeightedCategoryAccuracy per row':
        (m.WeightedCategoryAccuracy, (LOGITS, TARGETS, PER_ROW), 2.75),
    'WeightedCategoryCrossEntropy':
        (m.WeightedCategoryCrossEntropy, (LOGITS, TARGETS, WEIGHTS), 0.6000393033027649),
    'WeightedCategoryCrossEntropy per row':
        (m.WeightedCategoryCrossEntropy, (LOGITS, TARGETS, PER_ROW), 1.7945061922073364),
    'WeightedCategoryCrossEntropy ls=0.2': (lambda: m.WeightedCategoryCrossEntropy(0.2),
                                            (LOGITS, TARGETS, WEIGHTS), 0.8467498421669006),
    'WeightedCategoryCrossEntropy cutoff=0.5': (lambda: m.WeightedCategoryCrossEntropy(cutoff=0.5),
                                                (LOGITS, TARGETS, WEIGHTS), 0.18629984557628632),
    'WeightedCategoryCrossEntropy ls=0.2 cutoff=0.5':
        (lambda: m.WeightedCategoryCrossEntropy(label_smoothing=0.2, cutoff=0.5),
         (LOGITS, TARGETS, WEIGHTS), 0.346749871969223),
    'BinaryCrossEntropy': (m.BinaryCrossEntropy, (BIN_LOGITS, BIN_LT), 0.4026202857494354),
    'MaskedSequenceAccuracy': (m.MaskedSequenceAccuracy, (LOGITS, TARGETS, WEIGHTS), 0.5),
    'MaskedSequenceAccuracy 0/1': (m.MaskedSequenceAccuracy, (LOGITS, TARGETS, SEQ_W), 1.0),
    'Accuracy': (m.Accuracy, (LOGITS, TARGETS, WEIGHTS), 0.8947368264198303),
    'Accuracy per row': (m.Accuracy, (LOGITS, TARGETS, PER_ROW), 2.75),
    'Accuracy binary': (lambda: m.Accuracy(classifier=BinaryClassifier()),
                        (PROBS, BIN_T.astype(np.int32), BIN_W), 0.6666666865348816),
    'SequenceAccuracy': (m.SequenceAccuracy, (LOGITS, TARGETS, WEIGHTS), 0.75),
    'SequenceAccuracy per row': (m.SequenceAccuracy, (LOGITS, TARGETS, PER_ROW), 0.5),
    'CrossEntropyLoss': (m.CrossEntropyLoss, (LOG_PROBS, TARGETS, WEIGHTS), 0.6000392436981201),
    'CrossEntropyLoss per row':
        (m.CrossEntropyLoss, (LOG_PROBS, TARGETS, PER_ROW), 1.7945060729980469),
    'CrossEntropyLossWithLogSoftmax':
        (m.CrossEntropyLossWithLogSoftmax, (LOGITS, TARGETS, WEIGHTS), 0.6000393033027649),
    'BinaryCrossEntropyLoss': (m.BinaryCrossEntropyLoss, (PROBS, BIN_T, BIN_W), 0.573654294013977),
    'BinaryCrossEntropyLoss column': (m.BinaryCrossEntropyLoss, (PROBS[:, None], BIN_T[:, None],
                                                                 BIN_W[:,
                                                                       None]), 0.573654294013977),
    'L2Loss': (m.L2Loss, (Y, T, W), 0.7613636255264282),
    'SmoothL1Loss': (m.SmoothL1Loss, (Y, T, W), 0.27840909361839294),
    'MacroAveragedFScore': (m.MacroAveragedFScore, (F_OUT, F_T), 0.6555556058883667),
    'MacroAveragedFScore 1 1':
        (lambda: m.MacroAveragedFScore(1.0, 1), (F_OUT, F_T), 0.6499999761581421),
    'MacroAveragedFScore 2 0':
        (lambda: m.MacroAveragedFScore(2.0), (F_OUT, F_T), 0.682539701461792),
    'MacroAveragedFScore 2 1':
        (lambda: m.MacroAveragedFScore(2.0, 1), (F_OUT, F_T), 0.6071429252624512),
    'MacroAveragedFScore 2d': (m.MacroAveragedFScore, (LOGITS, TARGETS), 0.3055555820465088),
    'WeightedFScore': (m.WeightedFScore, (F_OUT, F_T), 0.6777777671813965),
    'WeightedFScore 1 1': (lambda: m.WeightedFScore(1.0, 1), (F_OUT, F_T), 0.6800000071525574),
    'WeightedFScore 2 0': (lambda: m.WeightedFScore(beta=2.0), (F_OUT, F_T), 0.6626984477043152),
    'WeightedFScore 2 1':
        (lambda: m.WeightedFScore(2.0, initial_category_index=1), (F_OUT, F_T), 0.6285714507102966),
    'WeightedFScore 2d': (m.WeightedFScore, (LOGITS, TARGETS), 0.7777778506278992),
    'WeightedSum': (m.WeightedSum, (Y, W), 5.0),
    'CrossEntropySum': (m.CrossEntropySum, (LOG_PROBS, TARGETS, WEIGHTS), 2.850186347961426),
    'BinaryCrossEntropySum': (m.BinaryCrossEntropySum, (PROBS, BIN_T, BIN_W), 2.581444263458252),
}


@pytest.mark.parametrize('label', sorted(TRAX_141))
def test_trax_141_numbers(label):
  make, inputs, want = TRAX_141[label]
  layer = make()
  np.testing.assert_allclose(run(layer, *inputs), want, rtol=1e-6)
  assert layer.output_signature(signature(inputs)) == ShapeDtype((), np.float32)


# Printed by Trax 1.4.1: `l = tl.<name>(); l.n_in, repr(l)` (n_out is 1 for all).
TRAX_141_ARITY = {
    'CategoryAccuracy': 2, 'Accuracy': 3, 'SequenceAccuracy': 3, 'CrossEntropyLoss': 3, 'L2Loss': 3,
    'WeightedSum': 2, 'CrossEntropySum': 3, 'MacroAveragedFScore': 2, 'BinaryCrossEntropyLoss': 3,
    'CrossEntropyLossWithLogSoftmax': 3, 'MaskedSequenceAccuracy': 3, 'BinaryCrossEntropySum': 3,
    'SmoothL1Loss': 3, 'WeightedCategoryCrossEntropy': 3, 'CategoryCrossEntropy': 2,
    'WeightedFScore': 2, 'BinaryCrossEntropy': 2, 'WeightedCategoryAccuracy': 3
}


def test_arity_and_repr_match_trax_141():
  assert set(TRAX_141_ARITY) == set(m.__all__)
  for name, n_in in TRAX_141_ARITY.items():
    layer = getattr(m, name)()
    assert (layer.n_in, layer.n_out, repr(layer)) == (n_in, 1, f'{name}_in{n_in}'), name


# ------------------------------------------------------------------ NumPy references

RNG = np.random.default_rng(3)
R_LOGITS = RNG.normal(size=(4, 5, 6)).astype(np.float32)
R_TARGETS = RNG.integers(0, 6, size=(4, 5)).astype(np.int32)
R_W = RNG.uniform(0.0, 2.0, size=(4, 5)).astype(np.float32)
R_W[:, -1] = 0.0


def np_smoothed_ce(logits, targets, eps, cutoff=0.0):
  n = logits.shape[-1]
  p = (1 - eps) * np.eye(n)[targets] + eps / n
  ce = -np.sum(p * np_log_softmax(logits), axis=-1)
  return np.maximum(ce, cutoff) - cutoff if cutoff > 0 else ce


@pytest.mark.parametrize('weights', [R_W, R_W[:, :1], R_W[:1, :], np.float32(2.5)])
def test_weighted_mean_divides_by_the_weights_as_given(weights):
  correct = R_LOGITS.argmax(-1) == R_TARGETS
  wb = np.broadcast_to(weights, R_TARGETS.shape)
  want = np.sum(correct * wb) / np.sum(weights)
  np.testing.assert_allclose(run(m.WeightedCategoryAccuracy(), R_LOGITS, R_TARGETS, weights), want,
                             rtol=1e-6)
  np.testing.assert_allclose(run(m.Accuracy(), R_LOGITS, R_TARGETS, weights), want, rtol=1e-6)
  ce = -np.take_along_axis(np_log_softmax(R_LOGITS), R_TARGETS[..., None], -1)[..., 0]
  np.testing.assert_allclose(run(m.CrossEntropyLossWithLogSoftmax(), R_LOGITS, R_TARGETS, weights),
                             np.sum(ce * wb) / np.sum(weights), rtol=1e-5)
  np.testing.assert_allclose(
      run(m.CrossEntropySum(),
          np_log_softmax(R_LOGITS).astype(np.float32), R_TARGETS, weights), np.sum(ce * wb),
      rtol=1e-5)


@pytest.mark.parametrize('eps, cutoff', [(None, 0.0), (0.1, 0.0), (0.0, 1.5), (0.3, 1.0),
                                         (1.0, -2.0)])
def test_category_cross_entropy_smoothing_and_cutoff(eps, cutoff):
  ce = np_smoothed_ce(R_LOGITS, R_TARGETS, eps or 0.0, cutoff)
  got = run(m.WeightedCategoryCrossEntropy(eps, cutoff), R_LOGITS, R_TARGETS, R_W)
  np.testing.assert_allclose(got, np.sum(ce * R_W) / np.sum(R_W), rtol=1e-5)
  if cutoff == 0.0:
    np.testing.assert_allclose(run(m.CategoryCrossEntropy(eps), R_LOGITS, R_TARGETS), ce.mean(),
                               rtol=1e-5)


def test_cross_entropy_gradient_from_logits_with_cutoff():
  eps, cutoff = 0.1, 1.5
  layer = m.WeightedCategoryCrossEntropy(eps, cutoff)
  n = R_LOGITS.shape[-1]
  p = (1 - eps) * np.eye(n)[R_TARGETS] + eps / n
  above = np_smoothed_ce(R_LOGITS, R_TARGETS, eps) > cutoff  # below the cutoff: no gradient
  want = (R_W * above)[..., None] * (np.exp(np_log_softmax(R_LOGITS)) - p) / R_W.sum()
  grad = jax.grad(lambda z: layer.pure_fn((z, R_TARGETS, R_W), (), (), None)[0])(R_LOGITS)
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-7)
  assert 0 < above.sum() < above.size


def test_masked_sequence_accuracy_uses_the_last_axis():
  targets = R_TARGETS.reshape(2, 2, 5)
  predicted = R_LOGITS.reshape(2, 2, 5, 6).argmax(-1)
  predicted[0, 0] = targets[0, 0]
  predicted[1, 1, :4] = targets[1, 1, :4]  # wrong only at the last position, of weight 0
  w = R_W.reshape(2, 2, 5)
  want = np.mean(np.all((predicted == targets) | (w == 0), axis=-1))
  logits = np.eye(6, dtype=np.float32)[predicted]
  assert run(m.MaskedSequenceAccuracy(), logits, targets, w) == want == 0.5


def np_f_scores(predicted, targets, n, beta, first):
  """Per category k >= first (and per non-batch position): F-score and target count."""
  scores, counts = [], []
  for k in range(first, n):
    right = ((predicted == k) & (targets == k)).sum(0)
    n_pred, n_true = (predicted == k).sum(0), (targets == k).sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
      p = np.nan_to_num(right / n_pred)
      r = np.nan_to_num(right / n_true)
      f = np.nan_to_num((1 + beta**2) * p * r / (beta**2 * p + r))
    scores.append(np.ravel(f))
    counts.append(np.ravel(n_true))
  return np.concatenate(scores), np.concatenate(counts)


@pytest.mark.parametrize('beta, first', [(1.0, 0), (0.5, 2), (3.0, 1)])
@pytest.mark.parametrize('rank', [1, 2])
def test_f_scores_match_numpy(beta, first, rank):
  logits = R_LOGITS.reshape(-1, 6) if rank == 1 else R_LOGITS
  targets = R_TARGETS.reshape(-1) if rank == 1 else R_TARGETS
  f, counts = np_f_scores(logits.argmax(-1), targets, 6, beta, first)
  np.testing.assert_allclose(run(m.MacroAveragedFScore(beta, first), logits, targets), f.mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(run(m.WeightedFScore(beta, first), logits, targets),
                             np.sum(f * counts) / counts.sum(), rtol=1e-5)


def test_binary_cross_entropy_loss_from_probabilities():
  want = -np.mean(BIN_T * np.log(PROBS) + (1 - BIN_T) * np.log(1 - PROBS))
  np.testing.assert_allclose(run(m.BinaryCrossEntropyLoss(), PROBS, BIN_T, BIN_W), want, rtol=1e-6)
  np.testing.assert_allclose(run(m.BinaryCrossEntropySum(), PROBS, BIN_T, BIN_W),
                             want * BIN_W.sum(), rtol=1e-6)
  assert np.isnan(run(m.BinaryCrossEntropyLoss(), PROBS, BIN_T, np.zeros(4, np.float32)))


def test_binary_cross_entropy_stays_finite_for_large_logits():
  got = run(m.BinaryCrossEntropy(), np.array([-200.0, 200.0], np.float32),
            np.array([1.0, 0.0], np.float32))
  np.testing.assert_allclose(got, 200.0, rtol=1e-6)


def test_elementwise_losses_match_numpy():
  d = np.abs(Y.astype(np.float64) - T)
  np.testing.assert_allclose(run(m.L2Loss(), Y, T, W), np.sum(W * d**2) / W.sum(), rtol=1e-6)
  huber = np.where(d < 1, 0.5 * d**2, d - 0.5)
  np.testing.assert_allclose(run(m.SmoothL1Loss(), Y, T, W), np.sum(W * huber) / W.sum(), rtol=1e-6)


def test_zero_weight_positions_may_hold_any_id_and_all_zero_weights_give_nan():
  padded = np.where(WEIGHTS == 0, -1, TARGETS)
  np.testing.assert_allclose(run(m.WeightedCategoryCrossEntropy(), LOGITS, padded, WEIGHTS),
                             0.6000393033027649, rtol=1e-6)
  zeros = np.zeros_like(WEIGHTS)
  for make in (m.WeightedCategoryCrossEntropy, m.WeightedCategoryAccuracy, m.CrossEntropyLoss):
    assert np.isnan(run(make(), LOGITS, TARGETS, zeros))
  assert run(m.MaskedSequenceAccuracy(), LOGITS, TARGETS, zeros) == 1.0


def test_classifiers():
  x = np.array([[0.2, 0.5, 0.7], [0.9, -1.0, 0.5]], np.float32)
  assert BinaryClassifier()(x).tolist() == [[0, 0, 1], [1, 0, 0]]
  assert BinaryClassifier(threshold=0.0)(x).tolist() == [[1, 1, 1], [1, 0, 1]]
  assert BinaryClassifier()(x).dtype == np.int32
  assert MulticlassClassifier()(x).tolist() == [2, 0]
  assert MulticlassClassifier(axis=0)(x).tolist() == [1, 0, 0]
  assert repr(MulticlassClassifier()) == 'MulticlassClassifier'
  layer = m.SequenceAccuracy(classifier=MulticlassClassifier())
  assert run(layer, LOGITS, TARGETS, WEIGHTS) == 0.75


def test_a_classifier_with_weights_gets_them():
  layer = m.Accuracy(classifier=Serial(Dense(4), ArgMax()))
  inputs = (LOGITS, TARGETS, WEIGHTS)
  weights, _ = layer.init(signature(inputs), rng=jax.random.key(0))
  kernel, bias = weights[0][0]
  predicted = (LOGITS @ np.asarray(kernel) + np.asarray(bias)).argmax(-1)
  want = np.sum(WEIGHTS * (predicted == TARGETS)) / WEIGHTS.sum()
  np.testing.assert_allclose(layer(inputs), want, rtol=1e-6)


def test_errors():
  with pytest.raises(
      ValueError, match=r'CategoryCrossEntropy: label_smoothing must lie in '
      r'\[0, 1\], got 1.5'):
    m.CategoryCrossEntropy(1.5)
  with pytest.raises(TypeError, match="WeightedCategoryCrossEntropy: cutoff must be a real "
                     "number, got '1'"):
    m.WeightedCategoryCrossEntropy(cutoff='1')
  with pytest.raises(
      TypeError, match='SequenceAccuracy: classifier must be a layer such as '
      r'ArgMax\(\), got <function'):
    m.SequenceAccuracy(classifier=np.argmax)
  with pytest.raises(
      ValueError, match='MacroAveragedFScore: initial_category_index must be an '
      'int >= 0, got -1'):
    m.MacroAveragedFScore(initial_category_index=-1)
  with pytest.raises(TypeError, match='WeightedFScore: beta must be a finite real number'):
    m.WeightedFScore(beta=None)
  with pytest.raises(TypeError, match="BinaryClassifier: threshold must be a real number"):
    BinaryClassifier('0.5')
  cases = [
      (m.CategoryAccuracy(), (LOGITS, TARGETS[:, :2]),
       r'CategoryAccuracy: targets must have the shape of the model output without its last '
       r'axis, \(2, 3\); got \(2, 2\)'),
      (m.L2Loss(), (Y, T, W[:, :1]),
       r'L2Loss: model output and weights must have the same shape, got \(2, 3\) and \(2, 1\)'),
      (m.SmoothL1Loss(), (Y, T[:1], W),
       r'SmoothL1Loss: model output and targets must have the same shape, got \(2, 3\) and '
       r'\(1, 3\)'),
      (m.WeightedCategoryAccuracy(), (LOGITS, TARGETS, W[:, :2]),
       r"WeightedCategoryAccuracy: weights of shape \(2, 2\) do not broadcast to the targets' "
       r'shape \(2, 3\)'),
      (m.WeightedSum(), (Y, W[:, :2]), r'WeightedSum: values of shape \(2, 3\) and weights of '
       r'shape \(2, 2\) do not broadcast together'),
      (m.BinaryCrossEntropyLoss(), (Y, T, W), r'BinaryCrossEntropyLoss: model output must have '
       r'shape \(batch,\) or \(batch, 1\), got \(2, 3\)'),
      (m.MacroAveragedFScore(initial_category_index=4), (LOGITS, TARGETS),
       r'MacroAveragedFScore: initial_category_index must be < the number of categories 4, '
       r'got 4'),
      (m.CategoryCrossEntropy(), (LOGITS, TARGETS.astype(np.float32)),
       'CategoryCrossEntropy: targets must be integer category ids, got dtype float32'),
  ]
  for layer, inputs, message in cases:
    with pytest.raises(LayerError, match=message):
      layer.init(signature(inputs))
      layer(inputs)


@pytest.mark.parametrize('make', [
    m.WeightedCategoryCrossEntropy, m.CrossEntropyLoss, m.MaskedSequenceAccuracy,
    m.WeightedCategoryAccuracy
])
def test_out_of_range_targets_raise_eagerly_and_give_nan_under_jit(make):
  bad = TARGETS.copy()
  bad[1, 2] = 4
  layer = make()
  name = layer.name
  with pytest.raises(LayerError, match=rf'{name} targets: ids must lie in \[0, 4\), got values '
                     r'from 0 to 4'):
    layer.pure_fn((LOGITS, bad, WEIGHTS), (), (), None)
  assert np.isnan(jax.jit(layer.pure_fn)((LOGITS, bad, WEIGHTS), (), (), None)[0])
  np.testing.assert_allclose(
      jax.jit(layer.pure_fn)((LOGITS, TARGETS, WEIGHTS), (), (), None)[0],
      run(layer, LOGITS, TARGETS, WEIGHTS), rtol=1e-6)
