"""Tests for minitrax.fastmath (and minitrax.math): Trax's math names on JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import fastmath
from minitrax import math as math12
from minitrax.errors import ArgumentError


def test_numpy_and_random_are_jax():
  assert fastmath.numpy is jnp and math12.numpy is jnp
  key = fastmath.random.get_prng(0)
  np.testing.assert_array_equal(key, jax.random.PRNGKey(0))
  a, b = fastmath.random.split(key)
  assert not np.array_equal(a, b)
  assert fastmath.random.uniform(a, (3,)).shape == (3,)
  assert fastmath.random.randint(b, (2,), 0, 5).dtype == jnp.int32


def test_nested_map_follows_trax():
  # Real Trax 1.4.1 gives the same tuples for both calls.
  assert fastmath.nested_map(lambda x: x * 2, (1, [2, {'a': 3}], None)) == (2, [4, {'a': 6}], None)
  assert fastmath.nested_map(len, ((1, 2), (3,)), level=1) == (2, 1)
  assert fastmath.nested_map(lambda x: 0, (None, None)) == (None, None)  # Nones stay


def test_tree_flatten_and_unflatten_skip_empty_weights():
  tree = ((), (np.ones(2), (np.zeros(3),)), np.ones(1))
  flat = fastmath.tree_leaves(tree)
  assert [x.shape for x in flat] == [(2,), (3,), (1,)]
  rebuilt, rest = fastmath.tree_unflatten([1, 2, 3, 4], tree, copy_from_tree=[()])
  assert rebuilt == ((), (1, (2,)), 3) and rest == [4]


def test_stack_zip_and_operations():
  stacked = fastmath.nested_stack([(np.ones(2), {'a': np.zeros(1)})] * 3)
  assert stacked[0].shape == (3, 2) and stacked[1]['a'].shape == (3, 1)
  assert fastmath.nested_zip([(1, 2), (3, 4)]) == ((1, 3), (2, 4))
  np.testing.assert_allclose(fastmath.logsumexp(jnp.zeros(4)), np.log(4), rtol=1e-6)
  np.testing.assert_array_equal(fastmath.index_update(jnp.zeros(3), 1, 5.0), [0, 5, 0])
  np.testing.assert_array_equal(fastmath.index_add(jnp.ones(3), 2, 1.0), [1, 1, 2])
  keys, values = fastmath.sort_key_val(jnp.array([3, 1, 2]), jnp.array([0, 1, 2]))
  assert keys.tolist() == [1, 2, 3] and values.tolist() == [1, 2, 0]


def test_custom_vjp_has_trax_signature():
  f = fastmath.custom_vjp(lambda x: x**2, lambda x: (x**2, x), lambda x, g: (10 * g * x,))
  assert float(jax.grad(f)(3.0)) == 30.0


def test_only_the_jax_backend():
  assert fastmath.backend_name() == 'jax' and fastmath.is_backend(fastmath.Backend.JAX)
  with fastmath.use_backend(fastmath.Backend.JAX):
    pass
  with pytest.raises(
      ArgumentError, match=r"fastmath: minitrax computes with JAX only; backend "
      r"'tensorflow-numpy' is not available"):
    with fastmath.use_backend(fastmath.Backend.TFNP):
      pass
