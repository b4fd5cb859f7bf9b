"""Diagnosis of layer failures: where a layer was created; which error a NaN hides.

Compiled programs hold no host callbacks, so under `jax.jit` a token id out of
range or a predict-cache overflow cannot raise: it only makes the outputs NaN
(see `core.check_ids`). Run eagerly, on concrete arrays, the same checks raise
a `LayerError` that names the layer and the bad value. `Layer.__call__` (with
`with_nan_flag`) and the Trainer use `eager_error` when a compiled call gives
NaN. `created_at` finds the user's line that a `LayerError` names.
"""

import os
import sys

import jax
import jax.numpy as jnp

from minitrax.errors import LayerError

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def created_at(layer_type):
  """`file:line` of the user code creating a layer, or '<unknown>'.

  The first frame of the calling stack outside the minitrax package and
  outside the `__init__` of an instance of `layer_type` (so a user's layer
  subclass is located where it is created, not in its own `__init__`).
  """
  frame = sys._getframe(1)  # pylint: disable=protected-access
  while frame is not None and (frame.f_code.co_filename.startswith(_PACKAGE_DIR) or
                               (frame.f_code.co_name == '__init__' and
                                isinstance(frame.f_locals.get('self'), layer_type))):
    frame = frame.f_back
  return '<unknown>' if frame is None else f'{frame.f_code.co_filename}:{frame.f_lineno}'


def eager_error(layer, x, weights, state, rng):
  """The `LayerError` of running `layer.pure_fn(x, weights, state, rng)` eagerly, or None.

  Call it outside any jit, on concrete arrays, so that the eager checks of
  the layers can raise. Errors other than `LayerError` propagate (`pure_fn`
  wraps every error of a layer in one). Nothing is stored on the layer.

  Args:
    layer: the layer whose compiled call gave NaN.
    x: its inputs: an array (`n_in == 1`) or a tuple of `n_in` arrays.
    weights: its weights tree (the ones the compiled call used).
    state: its state tree *before* the call.
    rng: the JAX key of the call, or None.

  Returns:
    The `LayerError` raised, or None if the eager run completes (then the NaN
    is genuine, e.g. an overflow in the arithmetic).
  """
  try:
    layer.pure_fn(x, weights, state, rng)
  except LayerError as e:
    return e
  return None


def with_nan_flag(pure_fn):
  """`pure_fn` that also returns whether a floating-point output holds NaN.

  `Layer.__call__` jits the result, so one compiled program (one dispatch)
  gives the outputs, the new state and the flag.

  Args:
    pure_fn: `(x, weights, state, rng) -> (y, new_state)`.

  Returns:
    `(x, weights, state, rng) -> (y, new_state, has_nan)`, `has_nan` a bool scalar.
  """

  def run(x, weights, state, rng):
    y, new_state = pure_fn(x, weights, state, rng)
    return y, new_state, _any_nan(y)

  return run


def _any_nan(tree):
  """Bool scalar: whether any floating-point leaf of `tree` holds NaN."""
  flags = [
      jnp.any(jnp.isnan(leaf))
      for leaf in jax.tree.leaves(tree)
      if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
  ]
  return jnp.any(jnp.stack(flags)) if flags else jnp.zeros((), bool)


__all__ = ['created_at', 'eager_error', 'with_nan_flag']
