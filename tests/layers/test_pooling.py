"""MaxPool, AvgPool and SumPool against NumPy loops over windows."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.pooling import AvgPool, MaxPool, SumPool
from minitrax.shapes import ShapeDtype

RNG = np.random.RandomState(0)
X = RNG.normal(size=(2, 5, 6, 3)).astype(np.float32)


def np_pool(kind, x, pool_size, strides, padding):
  """Pools (N, *spatial, C) by looping over windows; padding is never counted."""
  spatial = x.shape[1:-1]
  if padding == 'VALID':
    pads = [(0, 0)] * len(spatial)
  else:
    pads = []
    for n, k, s in zip(spatial, pool_size, strides):
      total = max((-(-n // s) - 1) * s + k - n, 0)
      pads.append((total // 2, total - total // 2))
  xp = np.pad(x.astype(np.float64), [(0, 0)] + pads + [(0, 0)], constant_values=np.nan)
  out_shape = [
      (n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(spatial, pads, pool_size, strides)
  ]
  reduce = {'max': np.nanmax, 'avg': np.nanmean, 'sum': np.nansum}[kind]
  y = np.zeros((x.shape[0], *out_shape, x.shape[-1]))
  for pos in itertools.product(*map(range, out_shape)):
    window = tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, strides, pool_size))
    block = xp[(slice(None),) + window].reshape(x.shape[0], -1, x.shape[-1])
    y[(slice(None),) + pos] = reduce(block, axis=1)
  return y


LAYERS = {'max': MaxPool, 'avg': AvgPool, 'sum': SumPool}


@pytest.mark.parametrize('kind', ['max', 'avg', 'sum'])
@pytest.mark.parametrize(
    'pool_size,strides,padding',
    [
        ((2, 2), None, 'VALID'),  # Trax's default strides: 1
        ((2, 2), (2, 2), 'SAME'),  # partial windows at the edges
        ((3, 2), (2, 3), 'SAME'),
    ])
def test_pool_matches_numpy_loops(kind, pool_size, strides, padding):
  layer = LAYERS[kind](pool_size, strides=strides, padding=padding)
  y = layer(X)
  assert layer.output_signature(ShapeDtype(X.shape)) == ShapeDtype(y.shape, y.dtype)
  expected = np_pool(kind, X, pool_size, strides or (1, 1), padding)
  assert y.shape == expected.shape
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_default_strides_are_one_and_names_follow_trax():
  sig = ShapeDtype((1, 5, 5, 2))
  assert MaxPool().output_signature(sig) == ShapeDtype((1, 4, 4, 2))
  assert AvgPool(strides=(2, 2)).output_signature(sig) == ShapeDtype((1, 2, 2, 2))
  assert SumPool(padding='SAME').output_signature(sig) == sig
  assert [p.name for p in (MaxPool(), AvgPool((3,)), SumPool((1, 2, 3)))] == \
      ['MaxPool(2,2)', 'AvgPool(3,)', 'SumPool(1,2,3)']


def test_one_dimensional_pooling_and_integer_inputs():
  x = np.array([[[1], [5], [2], [4], [3]]], np.int32)  # (batch, length, channels)
  np.testing.assert_array_equal(MaxPool((2,), (2,), 'SAME')(x)[0, :, 0], [5, 4, 3])
  np.testing.assert_array_equal(SumPool((3,), (1,), 'VALID')(x)[0, :, 0], [8, 11, 9])
  y = AvgPool((2,), (2,), 'SAME')(x)
  assert y.dtype == jnp.float32
  np.testing.assert_allclose(y[0, :, 0], [3.0, 3.0, 3.0])


def test_max_pool_gradient_goes_to_the_window_maximum():
  x = np.array([[1., 4.], [3., 2.]], np.float32).reshape(1, 2, 2, 1)
  layer = MaxPool((2, 2))
  g = jax.grad(lambda x: jnp.sum(layer.pure_fn(x, (), (), None)[0]))(x)
  np.testing.assert_array_equal(g.reshape(2, 2), [[0., 1.], [0., 0.]])


def test_pooling_validates_arguments():
  with pytest.raises(
      ValueError, match=r'MaxPool: pool_size must be a non-empty tuple of '
      r'positive ints, got 2'):
    MaxPool(2)
  with pytest.raises(
      ValueError, match=r'AvgPool: strides must be a non-empty tuple of positive '
      r'ints of length 2, got \(1,\)'):
    AvgPool((2, 2), strides=(1,))
  with pytest.raises(ValueError, match=r"SumPool: padding must be 'VALID' or 'SAME', "
                     r"got 'same'"):
    SumPool(padding='same')
  with pytest.raises(
      LayerError, match=r'MaxPool: pool_size \(2, 2\) needs inputs of rank 4 '
      r'\(batch, 2 spatial, channels\), got shape \(5, 6, 3\)'):
    MaxPool().output_signature(ShapeDtype((5, 6, 3)))
