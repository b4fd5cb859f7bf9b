"""LocallyConnected1d against real Trax 1.4.1 and a NumPy loop over positions and taps."""

import os
import sys

import jax
import numpy as np
import pytest

from minitrax.errors import ArgumentError, LayerError
from minitrax.layers.locally_connected import LocallyConnected1d
from minitrax.shapes import ShapeDtype

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import more_layers_fixture as fx  # noqa: E402

T141 = fx.load('141')


@pytest.mark.parametrize('name, make', [
    ('lc_VALID', lambda: LocallyConnected1d(2, 3, padding='VALID')),
    ('lc_SAME', lambda: LocallyConnected1d(2, 3, padding='SAME')),
    ('lc_WRAP', lambda: LocallyConnected1d(2, 3, padding='WRAP')),
    ('lc_k5_nobias', lambda: LocallyConnected1d(3, 5, use_bias=False, padding='SAME')),
    ('lc_k1', lambda: LocallyConnected1d(2, 1)),
])
def test_matches_trax(name, make):
  layer = fx.init_with_trax_weights(make(), T141, name)
  x = fx.inputs(T141, name)
  fx.assert_matches(layer(x), T141, name)
  assert layer.output_signature(ShapeDtype(x.shape)) == ShapeDtype(fx.outputs(T141, name)[0].shape)


def np_locally_connected(x, w, b, padding):
  """The module docstring's sums, one output position and tap at a time."""
  length, k = w.shape[:2]
  h = (k - 1) // 2
  n_out = length - k + 1 if padding == 'VALID' else length
  out = np.zeros(x.shape[:-2] + (n_out, w.shape[-1]))
  for m in range(n_out):
    for i in range(k):
      j = m + k - 1 - i if padding == 'VALID' else m - h + i
      if padding == 'WRAP':
        j %= length
      if 0 <= j < length:
        out[..., m, :] += x[..., j, :] @ w[j, i]
  return out if b is None else out + b


@pytest.mark.parametrize('padding', ['VALID', 'SAME', 'WRAP'])
def test_matches_numpy_with_extra_leading_axes(padding):
  x = np.random.default_rng(0).normal(size=(2, 3, 7, 4)).astype(np.float32)
  layer = LocallyConnected1d(3, 5, padding=padding)
  (w, b), _ = layer.init(ShapeDtype(x.shape))
  assert w.shape == (7, 5, 4, 3) and b.shape == ((3, 3) if padding == 'VALID' else (7, 3))
  np.testing.assert_allclose(layer(x), np_locally_connected(x, np.asarray(w), np.asarray(b),
                                                            padding), atol=1e-5)


def test_gradients_reach_every_used_weight():
  x = np.ones((2, 6, 3), np.float32)
  layer = LocallyConnected1d(2, 3, padding='SAME')
  weights, state = layer.init(ShapeDtype(x.shape))
  grads = jax.grad(lambda ws: layer.pure_fn(x, ws, state, None)[0].sum())(weights)
  used = np.abs(np.asarray(grads[0])).sum(axis=(2, 3)) > 0  # (position, tap)
  # SAME reads position m - 1 + i: tap 0 never reads the last position, tap 2 never the first.
  assert not used[5, 0] and not used[0, 2] and used.sum() == 6 * 3 - 2
  np.testing.assert_allclose(grads[1], np.full((6, 2), 2.0))


def test_errors():
  with pytest.raises(ArgumentError, match='kernel_size must be odd, got 4'):
    LocallyConnected1d(2, 4)
  with pytest.raises(ArgumentError, match=r"padding must be one of \('VALID', 'SAME', 'WRAP'\)"):
    LocallyConnected1d(2, 3, padding='CAUSAL')
  with pytest.raises(ArgumentError, match='filters must be a positive int'):
    LocallyConnected1d(0, 3)
  layer = LocallyConnected1d(2, 3)
  layer.init(ShapeDtype((1, 6, 3)))
  with pytest.raises(LayerError, match=r'must end in \(length, d\) = \(6, 3\)'):
    layer(np.ones((1, 7, 3), np.float32))
  with pytest.raises(LayerError, match='length >= kernel_size for VALID'):
    LocallyConnected1d(2, 5).init(ShapeDtype((1, 3, 3)))
  assert LocallyConnected1d(2, 3).name == 'LocallyConnected1d_2_3'
