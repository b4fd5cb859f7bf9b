"""Initializers: statistics against the variance-scaling formulas, orthogonality, keys."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.layers import initializers as init

KEY = jax.random.key(0)
SHAPE = (200, 100)  # fan_in 200, fan_out 100: 20000 draws
CONV = (3, 3, 16, 32)  # fan_in 3*3*16 = 144, fan_out 3*3*32 = 288


def _stats(a):
  a = np.asarray(a, np.float64)
  return a.mean(), a.std(), np.abs(a).max()


@pytest.mark.parametrize('shape, kwargs, expected', [
    ((), {}, (1, 1)),
    ((7,), {}, (7, 7)),
    ((3, 4), {}, (3, 4)),
    ((2, 3, 4, 5), {}, (2 * 3 * 4, 2 * 3 * 5)),
    ((2, 3, 4, 5), {'nonreceptive_dims': [0]}, (3 * 4, 3 * 5)),
    ((4, 5, 3), {'in_dim': 0, 'out_dim': 1}, (4 * 3, 5 * 3)),
])
def test_get_fans(shape, kwargs, expected):
  assert init.get_fans(shape, **kwargs) == expected


# (factory, shape, variance, distribution) with the variance computed by hand.
SCALED = [
    (init.GlorotNormalInitializer(), SHAPE, 2 / (200 + 100), 'normal'),
    (init.GlorotUniformInitializer(), SHAPE, 2 / (200 + 100), 'uniform'),
    (init.LeCunNormalInitializer(), SHAPE, 1 / 200, 'normal'),
    (init.LeCunUniformInitializer(scale=2.0), SHAPE, 2 / 200, 'uniform'),
    (init.KaimingNormalInitializer(), SHAPE, 2 / 200, 'normal'),
    (init.KaimingUniformInitializer(), SHAPE, 2 / 200, 'uniform'),
    (init.KaimingNormalInitializer(param=1.0), SHAPE, 1 / 200, 'normal'),
    (init.LeCunNormalInitializer(), CONV, 1 / 144, 'normal'),
    (init.GlorotUniformInitializer(), CONV, 2 / (144 + 288), 'uniform'),
    (init.ScaledInitializer(-1, -2, 1.0, 'fan_out', 'normal'), SHAPE, 1 / 100, 'normal'),
    (init.ScaledInitializer(-1, -2, 3.0, 'fan_in',
                            'truncated_normal'), SHAPE, 3 / 200, 'truncated_normal'),
]


@pytest.mark.parametrize('factory, shape, variance, distribution', SCALED)
def test_scaled_initializers_match_formulas(factory, shape, variance, distribution):
  w = factory(shape, KEY)
  assert w.shape == shape and w.dtype == jnp.float32
  mean, std, max_abs = _stats(w)
  std_expected = math.sqrt(variance)
  assert abs(mean) < 0.05 * std_expected
  assert std == pytest.approx(std_expected, rel=0.05)
  if distribution == 'uniform':
    lim = math.sqrt(3 * variance)
    assert lim * 0.98 < max_abs <= lim
  elif distribution == 'truncated_normal':
    assert max_abs <= 2 * std_expected / 0.87962566103423978 + 1e-6


def test_random_normal_and_uniform():
  mean, std, _ = _stats(init.RandomNormalInitializer(0.5)(SHAPE, KEY))
  assert abs(mean) < 0.01 and std == pytest.approx(0.5, rel=0.03)
  mean, std, max_abs = _stats(init.RandomUniformInitializer(2.0)(SHAPE, KEY))
  assert abs(mean) < 0.03 and std == pytest.approx(2 / math.sqrt(3), rel=0.03)
  assert 1.99 < max_abs <= 2.0
  assert np.std(init.RandomNormalInitializer()(SHAPE, KEY)) == pytest.approx(1e-2, rel=0.03)


@pytest.mark.parametrize('shape, stddev', [((6, 4), 1.0), ((3, 5), 2.0), ((2, 3, 4), 1.0)])
def test_orthogonal(shape, stddev):
  q = np.asarray(init.OrthogonalInitializer(stddev)(shape, KEY), np.float64)
  assert q.shape == shape
  m = q.reshape(-1, shape[-1])
  gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
  np.testing.assert_allclose(gram, stddev**2 * np.eye(len(gram)), atol=1e-5)


def test_same_key_same_values_and_dtype():
  for factory in (init.GlorotUniformInitializer(), init.RandomNormalInitializer(),
                  init.OrthogonalInitializer()):
    a, b = factory((4, 3), KEY), factory((4, 3), jax.random.key(0))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, factory((4, 3), jax.random.key(1)))
  w = init.LeCunNormalInitializer()((4, 3), KEY, jnp.bfloat16)
  assert w.dtype == jnp.bfloat16


def test_errors_name_the_argument():
  with pytest.raises(ValueError, match=r"mode must be one of .*got 'fan_sum'"):
    init.ScaledInitializer(-1, -2, 1.0, 'fan_sum', 'normal')
  with pytest.raises(ValueError, match=r"distribution must be one of .*got 'cauchy'"):
    init.ScaledInitializer(-1, -2, 1.0, 'fan_in', 'cauchy')
  with pytest.raises(ValueError, match='scale must be a positive float, got 0'):
    init.GlorotUniformInitializer(scale=0)
  with pytest.raises(ValueError, match='stddev must be a number >= 0, got -1'):
    init.RandomNormalInitializer(-1)
  with pytest.raises(ValueError, match=r'shape dimensions must be >= 0, got \(3, -1\)'):
    init.RandomUniformInitializer()((3, -1), KEY)
