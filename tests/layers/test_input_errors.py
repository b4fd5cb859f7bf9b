"""Wrong inputs to a layer: what is an error where (issue 13, defect 9)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import layers as tl
from minitrax.errors import LayerError
from minitrax.shapes import ShapeDtype

X = np.zeros((2, 3), np.float32)
SIG = ShapeDtype((2, 3))


@pytest.mark.parametrize('run', [
    lambda model: model((X, X)),
    lambda model: model.init((SIG, SIG)),
    lambda model: model.output_signature((SIG, SIG)),
    lambda model: jax.jit(lambda x: model.pure_fn(x, model.weights, model.state, None))((X, X)),
], ids=['call', 'init', 'output_signature', 'jit_pure_fn'])
def test_a_two_tuple_fed_to_a_one_input_model_says_expected_1_input_got_2(run):
  model = tl.Serial(tl.Dense(2), tl.LogSoftmax())
  model.init(SIG)
  with pytest.raises(LayerError) as e:
    run(model)
  assert str(e.value).endswith('ArgumentError: layer Serial (n_in=1): expected 1 input, got 2')
  assert not isinstance(e.value.__cause__, jax.errors.TracerArrayConversionError)


def test_out_of_range_target_is_an_error_in_layer_calls_and_nan_under_a_users_jit():
  """A layer call (compiled, NaN re-run eagerly) raises; a user's own jit has no way to."""
  log_probs, targets = jnp.log(jnp.full((2, 4), 0.25)), jnp.array([1, 7])
  loss = tl.CrossEntropyLoss()
  with pytest.raises(
      LayerError, match=r'CrossEntropyLoss targets: ids must lie in \[0, 4\), got '
      r'values from 1 to 7'):
    loss((log_probs, targets))
  weights, state = loss.init((log_probs, targets))
  with pytest.raises(LayerError, match=r'ids must lie in \[0, 4\)'):
    loss.pure_fn((log_probs, targets), weights, state, None)  # eager
  users_jit = jax.jit(lambda x: loss.pure_fn(x, weights, state, None)[0])
  assert np.isnan(users_jit((log_probs, targets)))
