"""Losses and metrics as layers, Trax 1.2's forms: `(model_output, targets[, weights]) -> ()`.

Every layer here reduces a batch to one float32 scalar by a weighted mean,
`sum(value * w) / sum(w)`, over the target positions. The weight `w` of a
position is the product of

* the given weights (a third input, when the layer is made with
  `has_weights=True`; they must broadcast to the targets' shape), and
* the mask `targets != id_to_mask` (when `id_to_mask` is not None), so that
  padding ids count for nothing.

With neither, every position weighs 1. If all weights are 0 the mean is NaN,
as in Trax. These are Trax 1.2's conventions, and each layer class is also
its factory, `CrossEntropyLoss(id_to_mask=0, has_weights=True)` (3 inputs) or
`CrossEntropyLoss()` (2 inputs), as the Trainer calls it. `CrossEntropyLoss`
takes log-probabilities (end the model with `LogSoftmax`).

Trax 1.4's forms live in `metrics14.py` (weights always an input, logits in).
Names that only Trax 1.4 has keep its meaning here too:
`WeightedCategoryCrossEntropy` and `WeightedCategoryAccuracy` are 1.4's
layers, `BinaryCrossEntropy()` gives 1.4's numbers, and `Accuracy` or
`SequenceAccuracy` called with a `classifier` layer builds 1.4's 3-input form.

Where minitrax differs from Trax 1.2.3 on purpose: a target id outside
`[0, n_categories)` at a position of non-zero weight is an error (see
`core.check_ids`: eagerly a `ValueError`; under `jax.jit` the value is NaN and
`layer(x)` and the `Trainer` then raise the message) where Trax counts a miss
with zero cross-entropy; shapes that Trax would broadcast by accident raise;
`SumOfWeights` is always float32 (Trax gives int32 without weights or mask);
and the Trainer's `neg_log_perplexity` is minus the loss (`NegLogPerplexity`;
Trax 1.2.3 reported the loss itself under that name, Trax 1.3 on negate it).

`METRICS` names the five metrics that the Trainer reports at evaluation.
"""

import types

import numpy as np

import jax.numpy as jnp

from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers import metric_math as mm
from minitrax.layers import metrics14
from minitrax.layers.base import Layer
from minitrax.layers.core import poison


class _Metric(Layer):
  """Base class: reduces `(model_output, targets[, weights])` to a scalar.

  Subclasses set `_CATEGORICAL` (targets are ids into the last axis of the
  model output) and override `values` (one value per target position) and,
  if need be, `reduce` (default: the weighted mean).
  """

  _CATEGORICAL = True
  _MASK_BY_ID = True

  def __init__(self, id_to_mask=None, has_weights=False, name=None):
    """Builds the metric; n_in is 3 with `has_weights`, else 2.

    Args:
      id_to_mask: int target id whose positions get weight 0 (padding), or
        None; refused by metrics whose targets are values, not ids.
      has_weights: whether per-position weights come as a third input.
      name: shown in `repr` and errors; default the class name.
    """
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
    return jnp.sum(values * weights) / jnp.sum(weights)

  def forward(self, x, weights):
    del weights
    model_output, targets = x[0], jnp.asarray(x[1])
    w = self._position_weights(targets, x[2] if self._has_weights else None)
    bad = None
    if self._CATEGORICAL:
      targets, bad = mm.category_ids(self.name, model_output, targets, w)
    else:
      mm.check_same_shape(self.name, 'model output and targets', model_output, targets)
    return poison(self.reduce(mm.as_float(self.values(model_output, targets)), w), bad)

  def _position_weights(self, targets, given):
    """The weight of every target position (float32, the targets' shape)."""
    if given is None:
      w = jnp.ones(targets.shape, jnp.float32)
    else:
      w = mm.broadcast_weights(self.name, given, targets.shape)
    if self._id_to_mask is not None:
      w = w * (targets != self._id_to_mask)
    return w


class CrossEntropyLoss(_Metric):
  """Weighted mean cross-entropy of log-probabilities and target ids (Trax 1.2).

  `(log_probs (..., n), targets (...) int[, weights]) -> ()`; n_in = 2, or 3
  with `has_weights=True`. The value at a position is `-log_probs[target]`.
  The model output must already be log-probabilities (end the model with
  `LogSoftmax`); for logits use `WeightedCategoryCrossEntropy`. Trax 1.4's
  3-input `CrossEntropyLoss()` is `metrics14.CrossEntropyLoss`.

  Args:
    id_to_mask: target id whose positions get weight 0 (padding); None: none.
    has_weights: whether weights come as a third input.
    name: shown in `repr` and errors; default the class name.
  """

  def values(self, model_output, targets):
    return -mm.target_log_probs(mm.as_float(model_output), targets)


class NegLogPerplexity(CrossEntropyLoss):
  """Minus `CrossEntropyLoss`: the weighted mean log-probability of the targets.

  `(log_probs (..., n), targets (...) int[, weights]) -> ()`; n_in = 2 or 3.
  Higher is better; `exp(-value)` is the perplexity.
  """

  def reduce(self, values, weights):
    return -super().reduce(values, weights)


def _takes_classifier(args, kwargs):
  """True when a call passes Trax 1.4's `classifier` (a keyword, or a layer first)."""
  return 'classifier' in kwargs or bool(args and isinstance(args[0], Layer))


class Accuracy(_Metric):
  """Weighted fraction of positions whose argmax equals the target (Trax 1.2's AccuracyScalar).

  `(model_output (..., n), targets (...) int[, weights]) -> ()`; n_in = 2 or 3.
  Ties in argmax go to the lowest index. Called with a classifier layer,
  `Accuracy(classifier=ArgMax())` builds Trax 1.4's 3-input form
  (`metrics14.Accuracy`).
  """

  _TRAX14 = staticmethod(metrics14.Accuracy)

  def __new__(cls, *args, **kwargs):
    if _takes_classifier(args, kwargs):
      return cls._TRAX14(*args, **kwargs)
    return super().__new__(cls)

  def values(self, model_output, targets):
    return jnp.argmax(model_output, axis=-1) == targets


class SequenceAccuracy(Accuracy):
  """Fraction of sequences right at all their positions (Trax 1.2's SequenceAccuracyScalar).

  `(model_output (batch, ..., n), targets (batch, ...) int[, weights]) -> ()`;
  n_in = 2 or 3. A sequence is one batch item (all its non-batch axes) and
  scores `1 - min(1, sum of the weights of its wrong positions)`, so with 0/1
  weights 1 if every position of weight 1 is right, else 0. The mean over the
  batch is unweighted. With a classifier layer, Trax 1.4's 3-input form
  (`metrics14.SequenceAccuracy`).
  """

  _TRAX14 = staticmethod(metrics14.SequenceAccuracy)

  def reduce(self, values, weights):
    return mm.sequence_mean(values, weights)


class SumOfWeights(_Metric):
  """The sum of the weights of all positions (Trax's `SumOfWeights`).

  `(model_output, targets[, weights]) -> ()`; n_in = 2 or 3. The model output
  is ignored; positions where `targets == id_to_mask` count 0. Without weights
  or mask it is the number of target positions (as float32).
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
  """Weighted mean squared error: `sum(w * (y - t)**2) / sum(w)` (Trax 1.2).

  `(model_output, targets[, weights]) -> ()` with outputs and targets of the
  same shape; n_in = 2 or 3. Without weights it is the mean over all
  elements. Masking by id is refused (targets are not ids). Trax 1.4's
  3-input `L2Loss()` is `metrics14.L2Loss` (= `L2Loss(has_weights=True)` for
  weights of the outputs' shape).
  """

  def values(self, model_output, targets):
    return (mm.as_float(model_output) - targets)**2


class SmoothL1Loss(_Elementwise):
  """Weighted mean Huber loss with threshold 1, in Trax 1.2's form.

  `(model_output, targets[, weights]) -> ()`, outputs and targets of the same
  shape; n_in = 2 or 3. With `d = |y - t|` the value is `0.5 * d**2` where
  `d < 1`, else `d - 0.5`. Trax 1.4's 3-input `SmoothL1Loss()` is
  `metrics14.SmoothL1Loss` (= `SmoothL1Loss(has_weights=True)`).
  """

  def values(self, model_output, targets):
    d = jnp.abs(mm.as_float(model_output) - targets)
    return jnp.where(d < 1, 0.5 * d**2, d - 0.5)


class BinaryCrossEntropy(_Elementwise):
  """Weighted mean binary cross-entropy of logits and 0/1 targets.

  `(logits, targets[, weights]) -> ()`, logits and targets of the same shape;
  n_in = 2 (Trax 1.4's layer, same numbers) or 3. With `q = sigmoid(x)` the
  value is `-(t log q + (1 - t) log(1 - q))`, finite for any logit. Soft
  targets in [0, 1] work too.
  """

  def values(self, model_output, targets):
    return mm.binary_cross_entropy(model_output, targets)


# Trax 1.4 names with one meaning in both namespaces.
WeightedCategoryCrossEntropy = metrics14.WeightedCategoryCrossEntropy
WeightedCategoryAccuracy = metrics14.WeightedCategoryAccuracy

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
