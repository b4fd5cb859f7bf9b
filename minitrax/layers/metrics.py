"""Losses and metrics as layers: `(model_output, targets[, weights]) -> scalar`.

Every layer here reduces a batch to one float32 scalar by a weighted mean,
`sum(value * w) / sum(w)`, over the target positions. The weight `w` of a
position is the product of

* the given weights (a third input, when the layer is made with
  `has_weights=True`; they must broadcast to the targets' shape), and
* the mask `targets != id_to_mask` (when `id_to_mask` is not None), so that
  padding ids count for nothing.

With neither, every position weighs 1. If all weights are 0 the mean is NaN,
as in Trax. These are Trax 1.2's conventions:
`CrossEntropyLoss(id_to_mask=0, has_weights=True)` is a 3-input layer, and
`CrossEntropyLoss()` a 2-input one. `CrossEntropyLoss` takes log-probabilities
(put `LogSoftmax` at the end of the model); `WeightedCategoryCrossEntropy`
(Trax 1.4) takes logits. A target id outside `[0, n_categories)` at a position
of non-zero weight is an error (see `core.check_ids`): eagerly a `ValueError`;
under `jax.jit` the value is NaN, and `layer(x)` and the `Trainer` then
raise the same message.

`METRICS` names the five metrics that the Trainer reports at evaluation.
"""

import types

import numpy as np

import jax
import jax.numpy as jnp

from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import Layer
from minitrax.layers.core import check_ids, poison


def _float(x):
  """`x` as a float array of at least float32 precision."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _weighted_mean(values, weights):
  return jnp.sum(values * weights) / jnp.sum(weights)


class _Metric(Layer):
  """Base class: reduces `(model_output, targets[, weights])` to a scalar.

  Subclasses set `_CATEGORICAL` (targets are ids into the last axis of the
  model output) and override `values` (one value per target position) and,
  if need be, `reduce` (default: the weighted mean).
  """

  _CATEGORICAL = True
  _MASK_BY_ID = True

  def __init__(self, id_to_mask=None, has_weights=False, name=None):
    name = name or type(self).__name__
    if id_to_mask is not None and (isinstance(id_to_mask, bool) or
                                   not isinstance(id_to_mask, (int, np.integer))):
      raise ArgumentTypeError(f'{name}: id_to_mask must be an int or None, got {id_to_mask!r}')
    if id_to_mask is not None and not self._MASK_BY_ID:
      raise ArgumentError(f'{name}: cannot mask by id (id_to_mask={id_to_mask}) since its '
                          f'targets are not ids; pass has_weights=True and weights instead')
    if not isinstance(has_weights, (bool, np.bool_)):
      raise ArgumentTypeError(f'{name}: has_weights must be a bool, got {has_weights!r}')
    super().__init__(n_in=3 if has_weights else 2, name=name)
    self._id_to_mask = None if id_to_mask is None else int(id_to_mask)
    self._has_weights = bool(has_weights)

  def values(self, model_output, targets):
    """One value per target position: an array of the targets' shape."""
    raise NotImplementedError

  def reduce(self, values, weights):
    return _weighted_mean(values, weights)

  def forward(self, x, weights):
    del weights
    model_output, targets = x[0], jnp.asarray(x[1])
    w = self._position_weights(targets, x[2] if self._has_weights else None)
    bad = None
    if self._CATEGORICAL:
      targets, bad = self._checked_ids(model_output, targets, w)
    elif model_output.shape != targets.shape:
      raise ArgumentError(f'{self.name}: model output and targets must have the same shape, '
                          f'got {tuple(model_output.shape)} and {tuple(targets.shape)}')
    return poison(self.reduce(_float(self.values(model_output, targets)), w), bad)

  def _position_weights(self, targets, given):
    """The weight of every target position (float32, the targets' shape)."""
    if given is None:
      w = jnp.ones(targets.shape, jnp.float32)
    else:
      given = jnp.asarray(given)
      try:
        ok = np.broadcast_shapes(given.shape, targets.shape) == targets.shape
      except ValueError:
        ok = False
      if not ok:
        raise ArgumentError(f'{self.name}: weights of shape {tuple(given.shape)} do not '
                            f'broadcast to the targets\' shape {tuple(targets.shape)}')
      w = jnp.broadcast_to(_float(given), targets.shape)
    if self._id_to_mask is not None:
      w = w * (targets != self._id_to_mask)
    return w

  def _checked_ids(self, model_output, targets, w):
    """`(ids, bad)`: targets set to 0 where w == 0, the rest checked against n_categories.

    `bad` is None when the check ran eagerly (and passed), else a traced flag
    for `poison`.
    """
    if model_output.shape[:-1] != targets.shape:
      raise ArgumentError(f'{self.name}: targets must have the shape of the model output '
                          f'without its last axis, {tuple(model_output.shape[:-1])}; got '
                          f'{tuple(targets.shape)}')
    if not jnp.issubdtype(targets.dtype, jnp.integer):
      raise ArgumentTypeError(f'{self.name}: targets must be integer category ids, got dtype '
                              f'{targets.dtype}')
    targets = jnp.where(w != 0, targets, 0)
    return targets, check_ids(targets, model_output.shape[-1], f'{self.name} targets')


def _target_log_probs(log_probs, targets):
  """`log_probs[..., targets]`: `(..., n), (...) -> (...)`."""
  return jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]


class CrossEntropyLoss(_Metric):
  """Weighted mean cross-entropy of log-probabilities and target ids (Trax 1.2).

  `(log_probs (..., n), targets (...) int[, weights]) -> ()`; n_in = 2, or 3
  with `has_weights=True`. The value at a position is `-log_probs[target]`.
  The model output must already be log-probabilities (end the model with
  `LogSoftmax`); for logits use `WeightedCategoryCrossEntropy`.

  Args:
    id_to_mask: target id whose positions get weight 0 (padding); None: none.
    has_weights: whether weights come as a third input.
  """

  def values(self, model_output, targets):
    return -_target_log_probs(_float(model_output), targets)


class NegLogPerplexity(CrossEntropyLoss):
  """Minus `CrossEntropyLoss`: the weighted mean log-probability of the targets.

  `(log_probs (..., n), targets (...) int[, weights]) -> ()`; n_in = 2 or 3.
  Higher is better; `exp(-value)` is the perplexity.
  """

  def reduce(self, values, weights):
    return -_weighted_mean(values, weights)


class Accuracy(_Metric):
  """Weighted fraction of positions whose argmax equals the target (Trax 1.2's AccuracyScalar).

  `(model_output (..., n), targets (...) int[, weights]) -> ()`; n_in = 2 or 3.
  Ties in argmax go to the lowest index.
  """

  def values(self, model_output, targets):
    return jnp.argmax(model_output, axis=-1) == targets


class SequenceAccuracy(Accuracy):
  """Fraction of sequences whose every position of non-zero weight is correct.

  `(model_output (batch, ..., n), targets (batch, ...) int[, weights]) -> ()`;
  n_in = 2 or 3. A sequence is one batch item (all its non-batch axes);
  masked and zero-weight positions are ignored. The mean is over the batch,
  unweighted. Equals Trax's `SequenceAccuracyScalar` for 0/1 weights.
  """

  def reduce(self, values, weights):
    correct = jnp.logical_or(values != 0, weights == 0)
    per_sequence = jnp.all(correct.reshape(correct.shape[:1] + (-1,)), axis=1)
    return jnp.mean(per_sequence.astype(jnp.float32))


class SumOfWeights(_Metric):
  """The sum of the weights of all positions (Trax's `SumOfWeights`).

  `(model_output, targets[, weights]) -> ()`; n_in = 2 or 3. The model output
  is ignored; positions where `targets == id_to_mask` count 0. Without weights
  or mask it is the number of target positions.
  """

  _CATEGORICAL = False

  def forward(self, x, weights):
    del weights
    targets = jnp.asarray(x[1])
    return jnp.sum(self._position_weights(targets, x[2] if self._has_weights else None))


class _Elementwise(_Metric):
  """Base class of metrics whose targets are values (not ids) of the model output's shape."""

  _CATEGORICAL = False
  _MASK_BY_ID = False


class L2Loss(_Elementwise):
  """Weighted mean squared error: `sum(w * (y - t)**2) / sum(w)`.

  `(model_output, targets[, weights]) -> ()` with outputs and targets of the
  same shape; n_in = 2 or 3 (`L2Loss(has_weights=True)` is Trax 1.4's
  three-input `L2Loss()`). Without weights it is the mean over all elements.
  Masking by id is refused (targets are not ids).
  """

  def values(self, model_output, targets):
    return (_float(model_output) - targets)**2


class SmoothL1Loss(_Elementwise):
  """Weighted mean Huber loss with threshold 1 (Trax 1.4's `SmoothL1Loss`).

  `(model_output, targets[, weights]) -> ()`, outputs and targets of the same
  shape; n_in = 2 or 3. With `d = |y - t|` the value is `0.5 * d**2` where
  `d < 1`, else `d - 0.5`.
  """

  def values(self, model_output, targets):
    d = jnp.abs(_float(model_output) - targets)
    return jnp.where(d < 1, 0.5 * d**2, d - 0.5)


class BinaryCrossEntropy(_Elementwise):
  """Weighted mean binary cross-entropy of logits and 0/1 targets (Trax 1.4).

  `(logits, targets[, weights]) -> ()`, logits and targets of the same shape;
  n_in = 2 (Trax 1.4's layer) or 3. With `q = sigmoid(x)` the value is
  `-(t log q + (1 - t) log(1 - q))`, computed as
  `t * softplus(-x) + (1 - t) * softplus(x)` so that large |x| stays finite.
  Soft targets in [0, 1] work too.
  """

  def values(self, model_output, targets):
    x, t = _float(model_output), _float(targets)
    return t * jax.nn.softplus(-x) + (1 - t) * jax.nn.softplus(x)


class WeightedCategoryCrossEntropy(_Metric):
  """Weighted mean cross-entropy of logits and target ids, with label smoothing (Trax 1.4).

  `(logits (..., n), targets (...) int, weights) -> ()`; n_in = 3. With
  `q = log_softmax(logits)` and `eps = label_smoothing or 0` the target
  distribution is `p = (1 - eps) * one_hot(t) + eps / n` and the value at a
  position is `-sum_i p_i q_i`.

  Args:
    label_smoothing: None or a float in [0, 1].
  """

  def __init__(self, label_smoothing=None):
    if label_smoothing is not None and not 0.0 <= float(label_smoothing) <= 1.0:
      raise ArgumentError(f'WeightedCategoryCrossEntropy: label_smoothing must lie in [0, 1], '
                          f'got {label_smoothing}')
    super().__init__(has_weights=True)
    self._label_smoothing = float(label_smoothing or 0.0)

  def values(self, model_output, targets):
    log_q = jax.nn.log_softmax(_float(model_output), axis=-1)
    eps = self._label_smoothing
    ce = -_target_log_probs(log_q, targets)
    if eps:
      ce = (1 - eps) * ce - eps * jnp.mean(log_q, axis=-1)
    return ce


class WeightedCategoryAccuracy(Accuracy):
  """Weighted fraction of positions whose argmax equals the target (Trax 1.4).

  `(model_output (..., n), targets (...) int, weights) -> ()`; n_in = 3.
  """

  def __init__(self):
    super().__init__(has_weights=True)


# Trax 1.2 names.
AccuracyScalar = Accuracy
SequenceAccuracyScalar = SequenceAccuracy
NegLogPerplexityScalar = NegLogPerplexity

# The Trainer's evaluation metrics: name -> factory `(id_to_mask=None, has_weights=False)`.
METRICS = types.MappingProxyType({
    'loss': CrossEntropyLoss,
    'accuracy': Accuracy,
    'sequence_accuracy': SequenceAccuracy,
    'neg_log_perplexity': NegLogPerplexity,
    'weights_per_batch_per_core': SumOfWeights,
})

__all__ = [
    'CrossEntropyLoss', 'NegLogPerplexity', 'Accuracy', 'SequenceAccuracy', 'SumOfWeights',
    'L2Loss', 'SmoothL1Loss', 'BinaryCrossEntropy', 'WeightedCategoryCrossEntropy',
    'WeightedCategoryAccuracy', 'AccuracyScalar', 'SequenceAccuracyScalar',
    'NegLogPerplexityScalar', 'METRICS'
]
