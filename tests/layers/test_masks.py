"""Dropout keep-masks (layers/masks.py): rate, determinism, independence, key handling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError
from minitrax.layers.masks import hash_bits, keep_mask

N = 1 << 20


def _mask(rng, p, shape=(N,)):
  return np.asarray(keep_mask(rng, p, shape))


@pytest.mark.parametrize('p', [0.1, 0.5, 0.9])
def test_keep_rate_within_five_sigma(p):
  for seed in range(3):
    m = _mask(jax.random.key(seed), p)
    assert abs(m.mean() - p) < 5 * np.sqrt(p * (1 - p) / N), (seed, m.mean())


def test_every_bit_is_fair():
  bits = np.asarray(hash_bits(jax.random.key(7, impl='rbg'), (N,)))
  ones = [(bits >> b & 1).mean() for b in range(32)]
  np.testing.assert_allclose(ones, 0.5, atol=5 * 0.5 / np.sqrt(N))


def test_neighbours_are_independent():
  """P(both kept) = p^2 for elements 1 apart, a row apart and a plane apart (p = 0.5)."""
  m = _mask(jax.random.key(3), 0.5, (64, 128, 128)).astype(np.float64)
  flat = m.ravel()
  tol = 5 * np.sqrt(0.25 * 0.75 / flat.size)
  for lag in (1, 2, 128, 128 * 128):
    assert abs(np.mean(flat[lag:] * flat[:-lag]) - 0.25) < tol, lag


def test_masks_of_related_keys_are_independent():
  """Split siblings, fold_in neighbours, consecutive seeds, seeds 2**32 apart: agreement 1/2."""
  key = jax.random.key(0)
  pairs = [
      tuple(jax.random.split(key)), (jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)),
      (jax.random.key(0), jax.random.key(1)),
      (jax.random.wrap_key_data(jnp.array([0, 5], jnp.uint32)),
       jax.random.wrap_key_data(jnp.array([1, 5], jnp.uint32))),
      (jax.random.key(0, impl='rbg'), jax.random.key(1, impl='rbg'))
  ]
  tol = 5 * 0.5 / np.sqrt(N)
  for a, b in pairs:
    agree = np.mean(_mask(a, 0.5) == _mask(b, 0.5))
    assert abs(agree - 0.5) < tol, (a, b, agree)


def test_same_key_same_mask_under_jit_and_vmap():
  key = jax.random.key(11)
  eager = _mask(key, 0.7, (4, 33))
  np.testing.assert_array_equal(np.asarray(jax.jit(lambda k: keep_mask(k, 0.7, (4, 33)))(key)),
                                eager)
  keys = jax.random.split(key, 3)
  batched = np.asarray(jax.vmap(lambda k: keep_mask(k, 0.7, (4, 33)))(keys))
  for i in range(3):
    np.testing.assert_array_equal(batched[i], _mask(keys[i], 0.7, (4, 33)))


def test_raw_uint32_keys_and_edge_rates():
  raw = jax.random.PRNGKey(5)
  np.testing.assert_array_equal(_mask(raw, 0.5, (50,)), _mask(raw, 0.5, (50,)))
  assert not _mask(jax.random.key(0), 0.0, (1000,)).any()
  assert _mask(jax.random.key(0), 1.0, (1000,)).all()
  assert _mask(jax.random.key(0), 0.5, (0, 3)).shape == (0, 3)


def test_bad_keep_prob():
  with pytest.raises(ArgumentError, match=r'keep_mask: keep_prob must be in \[0, 1\], got 1.5'):
    keep_mask(jax.random.key(0), 1.5, (2,))
