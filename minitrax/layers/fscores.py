"""F-scores of category predictions (Trax 1.4): `MacroAveragedFScore`, `WeightedFScore`.

For a category `k` let `P_k` (precision) be the fraction of the positions
predicted `k` whose target is `k`, and `R_k` (recall) the fraction of the
positions with target `k` predicted `k`; a 0/0 counts as 0. The F-score of
`k` is `(1 + beta**2) P_k R_k / (beta**2 P_k + R_k)` (0 when both are 0):
`beta > 1` weighs recall more, `beta < 1` precision.

The prediction is the argmax of the model output's last axis. As in Trax the
counts run over the first (batch) axis only: for targets of shape
`(batch, seq)` every sequence position gets its own counts and F-score, and
the scores of all categories and positions are then averaged. Categories
below `initial_category_index` (e.g. a padding id 0) are left out.
"""

import jax.numpy as jnp

from minitrax.checks import check_int, check_real
from minitrax.errors import ArgumentError
from minitrax.layers import metric_math as mm
from minitrax.layers.base import Layer
from minitrax.layers.core import poison


def _zero_nan(x):
  return jnp.where(jnp.isnan(x), 0.0, x)


class _FScore(Layer):
  """`(model_output (batch, ..., n), targets (batch, ...) int) -> ()`; n_in = 2."""

  def __init__(self, name, beta, initial_category_index):
    check_real(name, 'beta', beta, finite=True)
    check_int(name, 'initial_category_index', initial_category_index, 0)
    super().__init__(n_in=2, name=name)
    self._beta2 = float(beta)**2
    self._first = int(initial_category_index)

  def scores(self, model_output, targets):
    """`(f, n_targets, bad)`: F-score and target count per category and non-batch position."""
    n = model_output.shape[-1]
    if self._first >= n:
      raise ArgumentError(f'{self.name}: initial_category_index must be < the number of '
                          f'categories {n}, got {self._first}')
    ids, bad = mm.category_ids(self.name, model_output, targets)
    if ids.ndim == 0:
      raise ArgumentError(f'{self.name}: targets need a batch axis, got shape ()')
    ks = jnp.arange(self._first, n).reshape((1,) * ids.ndim + (-1,))
    predicted = jnp.argmax(model_output, axis=-1)[..., None] == ks
    actual = ids[..., None] == ks

    def count(x):
      return jnp.sum(x, axis=0).astype(jnp.float32)

    n_right, n_predicted, n_actual = count(predicted & actual), count(predicted), count(actual)
    precision, recall = _zero_nan(n_right / n_predicted), _zero_nan(n_right / n_actual)
    f = _zero_nan((1 + self._beta2) * precision * recall / (self._beta2 * precision + recall))
    return f, n_actual, bad


class _MacroAveragedFScore(_FScore):

  def forward(self, x, weights):
    del weights
    f, _, bad = self.scores(*x)
    return poison(jnp.mean(f), bad)


class _WeightedFScore(_FScore):

  def forward(self, x, weights):
    del weights
    f, n_actual, bad = self.scores(*x)
    return poison(jnp.sum(f * n_actual) / jnp.sum(n_actual), bad)


def MacroAveragedFScore(beta=1., initial_category_index=0):  # pylint: disable=invalid-name
  """The F-score averaged over categories, each category counting the same.

  `(model_output (batch, ..., n), targets (batch, ...) int) -> ()`; n_in = 2.
  See the module docstring for the F-score and how positions are counted.

  Args:
    beta: how much more recall weighs than precision.
    initial_category_index: the first category scored (an int >= 0).
  """
  return _MacroAveragedFScore('MacroAveragedFScore', beta, initial_category_index)


def WeightedFScore(beta=1., initial_category_index=0):  # pylint: disable=invalid-name
  """The F-score averaged over categories weighted by their number of targets.

  `(model_output (batch, ..., n), targets (batch, ...) int) -> ()`; n_in = 2;
  NaN if no target falls in a scored category.

  Args:
    beta: how much more recall weighs than precision.
    initial_category_index: the first category scored (an int >= 0).
  """
  return _WeightedFScore('WeightedFScore', beta, initial_category_index)


__all__ = ['MacroAveragedFScore', 'WeightedFScore']
