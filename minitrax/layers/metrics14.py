"""Trax 1.4's losses and metrics: fixed arities, weights as an input, logits in.

The layers here keep the names, arguments and numbers of Trax 1.4.1's
`trax/layers/metrics.py`. Where Trax 1.2 gave a name another meaning
(`CrossEntropyLoss`, `Accuracy`, `SequenceAccuracy`, `L2Loss`, `SmoothL1Loss`)
minitrax's default namespace keeps 1.2's (see `metrics.py`) and
`minitrax.trax14` exposes the functions of this module under Trax's names.

Trax 1.4's conventions, which differ from `metrics.py`:

* A layer's arity is fixed: `n_in = 3` whenever it takes weights; there is
  no `id_to_mask` (give padding weight 0).
* A weighted mean is `sum(values * w) / sum(w)` where the numerator
  broadcasts `w` to the values' shape and the denominator sums `w` *as
  given*: weights of shape `(batch, 1)` for targets `(batch, n)` count `n`
  times above the line and once below it, as in Trax:

  >>> import numpy as np
  >>> logits = np.zeros((1, 2, 3), np.float32)  # uniform: cross-entropy log(3) = 1.0986
  >>> loss = WeightedCategoryCrossEntropy()
  >>> round(float(loss((logits, np.array([[0, 2]]), np.ones((1, 2))))), 4)
  1.0986
  >>> round(float(loss((logits, np.array([[0, 2]]), np.ones((1, 1))))), 4)  # 2 log(3) / 1
  2.1972

* The model output is logits for `Category*`, `WeightedCategory*` and
  `BinaryCrossEntropy`; log-probabilities for `CrossEntropyLoss` and
  `CrossEntropySum` (the deprecated forms, to follow `LogSoftmax`);
  probabilities for `BinaryCrossEntropyLoss` and `BinaryCrossEntropySum`.

As everywhere in minitrax, a target id outside `[0, n_categories)` at a
position of non-zero weight is an error (NaN under `jax.jit`; see
`core.check_ids`), where Trax counts it as a miss with zero cross-entropy,
and shapes that Trax would broadcast by accident raise an `ArgumentError`.
"""

import jax.numpy as jnp

from minitrax.checks import check_real
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers import metric_math as mm
from minitrax.layers.base import Layer
from minitrax.layers.combinators import Serial
from minitrax.layers.core import ArgMax, log_softmax, poison
from minitrax.layers.fscores import MacroAveragedFScore, WeightedFScore


class _Reduce(Layer):
  """A layer without weights computing `fn(name, *inputs)`: n_in arrays -> one array."""

  def __init__(self, name, n_in, fn):
    super().__init__(n_in=n_in, name=name)
    self._fn = fn

  def forward(self, x, weights):
    del weights
    return self._fn(self.name, *x)


def _weighted_mean(values, broadcast_w, given_w):
  """`sum(values * broadcast_w) / sum(given_w)` (Trax 1.4's weighted mean)."""
  return jnp.sum(mm.as_float(values) * broadcast_w) / jnp.sum(mm.as_float(given_w))


def _weighted_ids(who, model_output, targets, weights):
  """`(ids, bad, w)`: checked ids and the weights broadcast to the targets' shape."""
  w = mm.broadcast_weights(who, weights, jnp.shape(targets))
  ids, bad = mm.category_ids(who, model_output, targets, w)
  return ids, bad, w


def _correct(model_output, ids):
  return jnp.argmax(model_output, axis=-1) == ids


# ------------------------------------------------------------------ logits in


def CategoryAccuracy():  # pylint: disable=invalid-name
  """Fraction of positions whose largest model output is the target category.

  `(model_output (..., n), targets (...) int) -> ()`; n_in = 2. Ties go to
  the lowest index.
  """

  def f(who, model_output, targets):
    ids, bad = mm.category_ids(who, model_output, targets)
    return poison(jnp.mean(mm.as_float(_correct(model_output, ids))), bad)

  return _Reduce('CategoryAccuracy', 2, f)


def WeightedCategoryAccuracy():  # pylint: disable=invalid-name
  """`CategoryAccuracy` with weights: the weighted mean of the 0/1 matches.

  `(model_output (..., n), targets (...) int, weights) -> ()`; n_in = 3. The
  weights must broadcast to the targets' shape; the denominator is the sum of
  the weights as given (see the module docstring).
  """

  def f(who, model_output, targets, weights):
    ids, bad, w = _weighted_ids(who, model_output, targets, weights)
    return poison(_weighted_mean(_correct(model_output, ids), w, weights), bad)

  return _Reduce('WeightedCategoryAccuracy', 3, f)


def CategoryCrossEntropy(label_smoothing=None):  # pylint: disable=invalid-name
  """Mean cross-entropy of `softmax(logits)` against the target categories.

  `(logits (..., n), targets (...) int) -> ()`; n_in = 2. With
  `eps = label_smoothing or 0` the target distribution of a position is
  `(1 - eps) * one_hot(target) + eps / n`.

  Args:
    label_smoothing: None or a number in [0, 1].
  """
  eps = mm.check_label_smoothing('CategoryCrossEntropy', label_smoothing)

  def f(who, model_output, targets):
    ids, bad = mm.category_ids(who, model_output, targets)
    return poison(jnp.mean(mm.category_cross_entropy(model_output, ids, eps)), bad)

  return _Reduce('CategoryCrossEntropy', 2, f)


def WeightedCategoryCrossEntropy(label_smoothing=None, cutoff=0.0):  # pylint: disable=invalid-name
  """`CategoryCrossEntropy` with weights, and an optional floor on each value.

  `(logits (..., n), targets (...) int, weights) -> ()`; n_in = 3; the
  weighted mean of the module docstring. A `cutoff > 0` maps each position's
  cross-entropy `c` to `max(c, cutoff) - cutoff` (no loss below the cutoff).

  Args:
    label_smoothing: None or a number in [0, 1].
    cutoff: a number; values <= 0 leave the cross-entropy unchanged.
  """
  who = 'WeightedCategoryCrossEntropy'
  eps = mm.check_label_smoothing(who, label_smoothing)
  check_real(who, 'cutoff', cutoff)

  def f(who, model_output, targets, weights):
    ids, bad, w = _weighted_ids(who, model_output, targets, weights)
    ce = mm.category_cross_entropy(model_output, ids, eps, float(cutoff))
    return poison(_weighted_mean(ce, w, weights), bad)

  return _Reduce(who, 3, f)


def BinaryCrossEntropy():  # pylint: disable=invalid-name
  """Mean binary cross-entropy of logits and 0/1 targets.

  `(logits, targets) -> ()`, both of one shape; n_in = 2. With
  `q = sigmoid(x)` each value is `-(t log q + (1 - t) log(1 - q))`, computed so
  that it stays finite for large |x| (where Trax's gives inf or NaN).
  """

  def f(who, model_output, targets):
    mm.check_same_shape(who, 'model output and targets', model_output, jnp.asarray(targets))
    return jnp.mean(mm.binary_cross_entropy(model_output, targets))

  return _Reduce('BinaryCrossEntropy', 2, f)


def MaskedSequenceAccuracy():  # pylint: disable=invalid-name
  """Fraction of sequences right at every position of non-zero weight.

  `(model_output (..., seq, n), targets (..., seq) int, weights) -> ()`;
  n_in = 3. A sequence is the last axis of the targets; only whether a weight
  is 0 matters. The mean runs over all other axes, unweighted.
  """

  def f(who, model_output, targets, weights):
    ids, bad, w = _weighted_ids(who, model_output, targets, weights)
    right = jnp.all(_correct(model_output, ids) | (w == 0), axis=-1)
    return poison(jnp.mean(mm.as_float(right)), bad)

  return _Reduce('MaskedSequenceAccuracy', 3, f)


# ------------------------------------------------------------------ classifier in front

_ARGMAX = ArgMax()  # the default shown in signatures; each layer made with it gets a new ArgMax


def _matches(who, predicted, targets):
  mm.check_same_shape(who, 'predicted categories and targets', predicted, jnp.asarray(targets))
  return mm.as_float(predicted == targets)


def _mean_of_matches(who, values, weights):
  values, w = mm.broadcast_together(who, values, weights)
  return jnp.sum(values * w) / jnp.sum(mm.as_float(weights))


def _sequence_mean_of_matches(who, values, weights):
  return mm.sequence_mean(*mm.broadcast_together(who, values, weights))


def _classified(name, classifier, reduce_name, reduce_fn):
  """`Serial(classifier, matches, reduce)`: `(model_output, targets, weights) -> ()`."""
  if classifier is _ARGMAX:
    classifier = ArgMax()
  if not isinstance(classifier, Layer):
    raise ArgumentTypeError(f'{name}: classifier must be a layer such as ArgMax(), got '
                            f'{classifier!r}')
  matches, reduce = _Reduce('_Accuracy', 2, _matches), _Reduce(reduce_name, 2, reduce_fn)
  return Serial(classifier, matches, reduce, name=name, sublayers_to_print=[])


def Accuracy(classifier=_ARGMAX):  # pylint: disable=invalid-name
  """Weighted mean of `classifier(model_output) == targets` (Trax 1.4's deprecated form).

  `(model_output, targets, weights) -> ()`; n_in = 3 (for a classifier of
  one input). The classifier maps model outputs to categories of the targets'
  shape (default `ArgMax()`; `BinaryClassifier()` for one probability per
  item). The weighted mean is the module docstring's.

  Args:
    classifier: a layer, model output -> predicted categories.
  """
  return _classified('Accuracy', classifier, '_WeightedMean', _mean_of_matches)


def SequenceAccuracy(classifier=_ARGMAX):  # pylint: disable=invalid-name
  """Batch mean of Trax's sequence score of `classifier(model_output) == targets`.

  `(model_output, targets, weights) -> ()`; n_in = 3. A sequence is one
  batch item; it scores `1 - min(1, sum of the weights of its wrong
  positions)`: 1 if right at every position of weight 1, else 0 for 0/1
  weights.

  Args:
    classifier: a layer, model output -> predicted categories.
  """
  return _classified('SequenceAccuracy', classifier, '_WeightedSequenceMean',
                     _sequence_mean_of_matches)


# ------------------------------------------------------------------ log-probabilities in


def _cross_entropy(name, from_logits, reduce_fn):
  """A 3-input layer reducing `-log_probs[target]` and the weights with `reduce_fn`."""

  def f(who, model_output, targets, weights):
    ids, bad, w = _weighted_ids(who, model_output, targets, weights)
    log_probs = mm.as_float(model_output)
    if from_logits:
      log_probs = log_softmax(log_probs)
    return poison(reduce_fn(-mm.target_log_probs(log_probs, ids), w, weights), bad)

  return _Reduce(name, 3, f)


def CrossEntropyLoss():  # pylint: disable=invalid-name
  """Weighted mean of `-log_probs[target]` (Trax 1.4's deprecated form; 3 inputs).

  `(log_probs (..., n), targets (...) int, weights) -> ()`; n_in = 3. The
  model must end in `LogSoftmax`; `WeightedCategoryCrossEntropy` takes logits.
  """
  return _cross_entropy('CrossEntropyLoss', False, _weighted_mean)


def CrossEntropyLossWithLogSoftmax():  # pylint: disable=invalid-name
  """`CrossEntropyLoss` of `log_softmax(logits)`: `(logits, targets, weights) -> ()`; n_in = 3."""
  return _cross_entropy('CrossEntropyLossWithLogSoftmax', True, _weighted_mean)


def CrossEntropySum():  # pylint: disable=invalid-name
  """Weighted sum of `-log_probs[target]`: `(log_probs, targets, weights) -> ()`; n_in = 3."""
  return _cross_entropy('CrossEntropySum', False, lambda v, w, _: jnp.sum(v * w))


def WeightedSum():  # pylint: disable=invalid-name
  """`sum(values * weights)` (NumPy broadcasting): `(values, weights) -> ()`; n_in = 2."""
  return _Reduce('WeightedSum', 2,
                 lambda who, v, w: jnp.sum(jnp.multiply(*mm.broadcast_together(who, v, w))))


# ------------------------------------------------------------------ probabilities in


def _binary_cross_entropy_of_batch(who, probs, targets):
  """Mean binary cross-entropy of probabilities `(batch,)` or `(batch, 1)` and 0/1 targets."""
  targets = jnp.asarray(targets)
  mm.check_same_shape(who, 'model output and targets', probs, targets)
  if probs.ndim not in (1, 2) or probs.shape[1:] not in ((), (1,)):
    raise ArgumentError(f'{who}: model output must have shape (batch,) or (batch, 1), got '
                        f'{tuple(probs.shape)}')
  p, t = mm.as_float(probs), mm.as_float(targets)
  return -(jnp.sum(t * jnp.log(p)) + jnp.sum((1 - t) * jnp.log(1 - p))) / p.shape[0]


def BinaryCrossEntropyLoss():  # pylint: disable=invalid-name
  """Mean binary cross-entropy of probabilities (Trax 1.4's deprecated form).

  `(probs (batch,) or (batch, 1), targets (same), weights) -> ()`; n_in = 3.
  The model output is probabilities (end the model with `Sigmoid`). As in
  Trax the value is the batch mean; the weights only scale it by
  `sum(w) / sum(w)` (NaN when they sum to 0).
  """

  def f(who, probs, targets, weights):
    w = mm.as_float(weights)
    return jnp.sum(_binary_cross_entropy_of_batch(who, probs, targets) * w) / jnp.sum(w)

  return _Reduce('BinaryCrossEntropyLoss', 3, f)


def BinaryCrossEntropySum():  # pylint: disable=invalid-name
  """`BinaryCrossEntropyLoss`'s batch mean times `sum(weights)`; n_in = 3."""

  def f(who, probs, targets, weights):
    return jnp.sum(_binary_cross_entropy_of_batch(who, probs, targets) * mm.as_float(weights))

  return _Reduce('BinaryCrossEntropySum', 3, f)


# ------------------------------------------------------------------ values in


def _elementwise(name, value_fn):
  """A 3-input loss: weighted mean of `value_fn(y - t)`; outputs, targets, weights of one shape."""

  def f(who, model_output, targets, weights):
    targets, weights = jnp.asarray(targets), jnp.asarray(weights)
    mm.check_same_shape(who, 'model output and targets', model_output, targets)
    mm.check_same_shape(who, 'model output and weights', model_output, weights)
    w = mm.as_float(weights)
    return jnp.sum(w * value_fn(mm.as_float(model_output) - targets)) / jnp.sum(w)

  return _Reduce(name, 3, f)


def L2Loss():  # pylint: disable=invalid-name
  """Weighted mean squared error `sum(w (y - t)**2) / sum(w)`; n_in = 3, all of one shape."""
  return _elementwise('L2Loss', jnp.square)


def _huber(d):
  d = jnp.abs(d)
  return jnp.where(d < 1, 0.5 * d**2, d - 0.5)


def SmoothL1Loss():  # pylint: disable=invalid-name
  """Weighted mean Huber loss (threshold 1); n_in = 3, all of one shape.

  With `d = |y - t|` each value is `0.5 * d**2` where `d < 1`, else `d - 0.5`.
  """
  return _elementwise('SmoothL1Loss', _huber)


__all__ = [
    'CategoryAccuracy', 'WeightedCategoryAccuracy', 'CategoryCrossEntropy',
    'WeightedCategoryCrossEntropy', 'BinaryCrossEntropy', 'MaskedSequenceAccuracy', 'Accuracy',
    'SequenceAccuracy', 'CrossEntropyLoss', 'CrossEntropyLossWithLogSoftmax', 'CrossEntropySum',
    'WeightedSum', 'BinaryCrossEntropyLoss', 'BinaryCrossEntropySum', 'L2Loss', 'SmoothL1Loss',
    'MacroAveragedFScore', 'WeightedFScore'
]
