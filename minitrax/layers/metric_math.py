"""Array functions shared by the loss and metric layers of both Trax generations.

`metrics.py` (Trax 1.2's forms) and `metrics14.py` (Trax 1.4's) differ in how
they weight and reduce; what a loss or a match *is* lives here once. Every
function that can reject its inputs takes `who`, the layer name its message
starts with.
"""

import numpy as np

import jax
import jax.numpy as jnp

from minitrax.checks import check_real
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.core import check_ids


def as_float(x):
  """`x` as a float array of at least float32 precision."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def broadcast_weights(who, weights, shape, what="the targets' shape"):
  """`weights` as floats broadcast to `shape`; an `ArgumentError` if they do not broadcast to it."""
  weights = jnp.asarray(weights)
  try:
    ok = np.broadcast_shapes(weights.shape, tuple(shape)) == tuple(shape)
  except ValueError:
    ok = False
  if not ok:
    raise ArgumentError(f'{who}: weights of shape {tuple(weights.shape)} do not broadcast to '
                        f'{what} {tuple(shape)}')
  return jnp.broadcast_to(as_float(weights), tuple(shape))


def broadcast_together(who, values, weights):
  """`(values, weights)` as floats broadcast to one shape (NumPy's rules, made explicit)."""
  values, weights = jnp.asarray(values), jnp.asarray(weights)
  try:
    shape = np.broadcast_shapes(values.shape, weights.shape)
  except ValueError as e:
    raise ArgumentError(f'{who}: values of shape {tuple(values.shape)} and weights of shape '
                        f'{tuple(weights.shape)} do not broadcast together') from e
  return (jnp.broadcast_to(as_float(values), shape), jnp.broadcast_to(as_float(weights), shape))


def check_same_shape(who, what, a, b):
  """Raises an `ArgumentError` unless arrays `a` and `b` have the same shape."""
  if tuple(a.shape) != tuple(b.shape):
    raise ArgumentError(f'{who}: {what} must have the same shape, got {tuple(a.shape)} and '
                        f'{tuple(b.shape)}')


def category_ids(who, model_output, targets, weights=None):
  """`(ids, bad)`: integer targets checked against the model output's last axis.

  Targets must have the model output's shape without its last axis and an
  integer dtype. Where `weights` (of the targets' shape) are 0 the id is
  replaced by 0 and not checked, so padding may hold any id. `bad` is None
  when the ids were checked eagerly, else a traced flag for `core.poison`.
  """
  targets = jnp.asarray(targets)
  if tuple(model_output.shape[:-1]) != tuple(targets.shape):
    raise ArgumentError(f'{who}: targets must have the shape of the model output without its '
                        f'last axis, {tuple(model_output.shape[:-1])}; got '
                        f'{tuple(targets.shape)}')
  if not jnp.issubdtype(targets.dtype, jnp.integer):
    raise ArgumentTypeError(f'{who}: targets must be integer category ids, got dtype '
                            f'{targets.dtype}')
  if weights is not None:
    targets = jnp.where(weights != 0, targets, 0)
  return targets, check_ids(targets, model_output.shape[-1], f'{who} targets')


def target_log_probs(log_probs, ids):
  """`log_probs[..., ids]`: `(..., n), (...) -> (...)`."""
  return jnp.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]


def category_cross_entropy(logits, ids, label_smoothing=None, cutoff=0.0):
  """Cross-entropy of `softmax(logits)` against (smoothed) one-hot targets: `(..., n) -> (...)`.

  With `eps = label_smoothing or 0` the target distribution is
  `(1 - eps) * one_hot(ids) + eps / n`. A `cutoff > 0` maps each value `c`
  to `max(c, cutoff) - cutoff`.
  """
  log_q = jax.nn.log_softmax(as_float(logits), axis=-1)
  ce = -target_log_probs(log_q, ids)
  if label_smoothing:
    ce = (1 - label_smoothing) * ce - label_smoothing * jnp.mean(log_q, axis=-1)
  if cutoff > 0:
    ce = jnp.maximum(ce, cutoff) - cutoff
  return ce


def binary_cross_entropy(logits, targets):
  """`-(t log q + (1 - t) log(1 - q))` with `q = sigmoid(logits)`, finite for any logit.

  Computed as `t * softplus(-x) + (1 - t) * softplus(x)`.
  """
  x, t = as_float(logits), as_float(targets)
  return t * jax.nn.softplus(-x) + (1 - t) * jax.nn.softplus(x)


def sequence_mean(correct, weights):
  """Trax's sequence accuracy: the batch mean of `1 - min(1, sum((1 - correct) * weights))`.

  The sum runs over all axes but the first (one sequence per batch item).
  For 0/1 weights a sequence scores 1 when it is right at every position of
  weight 1, else 0; a wrong position of weight `w < 1` scores `1 - w`.
  """
  wrong = (1.0 - as_float(correct)) * weights
  per_sequence = jnp.sum(wrong.reshape(wrong.shape[:1] + (-1,)), axis=1)
  return jnp.mean(1.0 - jnp.minimum(1.0, per_sequence))


def check_label_smoothing(who, label_smoothing):
  """`label_smoothing` as a float (0.0 for None); it must lie in [0, 1]."""
  if label_smoothing is None:
    return 0.0
  check_real(who, 'label_smoothing', label_smoothing)
  if not 0.0 <= label_smoothing <= 1.0:
    raise ArgumentError(f'{who}: label_smoothing must lie in [0, 1], got {label_smoothing}')
  return float(label_smoothing)


__all__ = [
    'as_float', 'broadcast_weights', 'broadcast_together', 'check_same_shape', 'category_ids',
    'target_log_probs', 'category_cross_entropy', 'binary_cross_entropy', 'sequence_mean',
    'check_label_smoothing'
]
