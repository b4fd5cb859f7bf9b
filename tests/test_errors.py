"""One error family: every deliberate minitrax error is a MinitraxError."""

import inspect

import pytest

from minitrax import errors
from minitrax import layers as tl
from minitrax.models import get_model


def test_every_error_class_is_a_minitrax_error():
  classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
  assert len(classes) >= 10
  assert all(issubclass(c, errors.MinitraxError) for c in classes)


@pytest.mark.parametrize('make, kind, message', [
    (lambda: tl.Dense(0), ValueError, 'Dense: n_units must be an int >= 1, got 0'),
    (lambda: tl.Dropout(1.5), ValueError, 'Dropout'),
    (lambda: tl.Serial(tl.Dense(2), 3), TypeError, 'Serial: item 1 is a int, not a Layer'),
    (lambda: get_model('NoSuchModel'), ValueError, "unknown model 'NoSuchModel'"),
])
def test_bad_arguments_raise_family_errors(make, kind, message):
  with pytest.raises(errors.MinitraxError, match=message) as info:
    make()
  assert isinstance(info.value, kind)


def test_tests_run_with_strict_rank_promotion():
  """conftest.py's strict setting is on: an implicit rank broadcast raises."""
  import jax
  import jax.numpy as jnp
  assert jax.config.jax_numpy_rank_promotion == 'raise'
  with pytest.raises(ValueError, match='rank_promotion'):
    jnp.ones((3,)) + jnp.ones((2, 3))
