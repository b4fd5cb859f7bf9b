"""The eager diagnosis of NaN outputs: eager_error, with_nan_flag, Layer.__call__ on NaN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers import core, diagnosis
from minitrax.layers.base import Layer
from minitrax.layers.combinators import Serial
from minitrax.shapes import ShapeDtype


class CheckedIds(Layer):
  """Test layer: int ids in [0, 10) -> float ids; NaN under jit for bad ids; counts calls."""

  def init_weights_and_state(self, input_signature, rng):
    return (), jnp.zeros((), jnp.int32)

  def forward_with_state(self, x, weights, state, rng):
    bad = core.check_ids(x, 10, self.name)  # raises when eager, a flag when traced
    return core.poison(x.astype(jnp.float32), bad), state + 1


class Overflow(Layer):
  """Test layer: a genuine NaN (inf - inf) that no eager check explains; counts calls."""

  def init_weights_and_state(self, input_signature, rng):
    return (), jnp.zeros((), jnp.int32)

  def forward_with_state(self, x, weights, state, rng):
    big = x.astype(jnp.float32) * jnp.float32(1e38) * 10
    return big - big, state + 1


GOOD = np.array([[1, 2]], np.int32)
BAD = np.array([[1, 12]], np.int32)


def test_eager_error_returns_the_layer_error_or_none():
  model = Serial(CheckedIds())
  weights, state = model.init(ShapeDtype((1, 2), np.int32))
  error = diagnosis.eager_error(model, BAD, weights, state, None)
  assert isinstance(error, LayerError)
  assert 'layer path: Serial > CheckedIds' in str(error)
  assert 'CheckedIds: ids must lie in [0, 10), got values from 1 to 12' in str(error)
  assert diagnosis.eager_error(model, GOOD, weights, state, None) is None
  assert diagnosis.eager_error(Overflow(), GOOD, (), jnp.zeros((), jnp.int32), None) is None
  assert int(model.state[0]) == 0  # nothing stored


def test_with_nan_flag_looks_at_floating_outputs_only():

  def pure_fn(x, weights, state, rng):
    del weights, rng
    return (x, jnp.array([1, 2])), state

  run = jax.jit(diagnosis.with_nan_flag(pure_fn))
  assert not bool(run(jnp.ones(2), (), (), None)[2])
  y, state, has_nan = run(jnp.array([1.0, jnp.nan]), (), 3, None)
  assert bool(has_nan) and int(state) == 3 and np.isnan(y[0][1])


def test_call_raises_the_eager_error_and_stores_no_state():
  layer = CheckedIds()
  layer.init(ShapeDtype((1, 2), np.int32))
  layer(GOOD)
  with pytest.raises(LayerError, match=r'CheckedIds: ids must lie in \[0, 10\)'):
    layer(BAD)
  assert int(layer.state) == 1


def test_call_returns_a_genuine_nan_and_stores_its_state():
  layer = Overflow()
  layer.init(ShapeDtype((1, 2), np.int32))
  assert np.all(np.isnan(layer(GOOD)))
  assert int(layer.state) == 1
