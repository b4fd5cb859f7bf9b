"""AxialPositionalEncoding against NumPy and real Trax 1.4.1 numbers."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.axial import AxialPositionalEncoding
from minitrax.shapes import ShapeDtype

B = 2
RNG = np.random.default_rng(0)


def check_signature(layer, sig, y):
  assert layer.output_signature(sig) == ShapeDtype(y.shape, y.dtype)


def test_axial_positional_encoding_numpy_and_predict():
  shape, d_embs = (4, 5), (3, 5)
  sig = ShapeDtype((B, 18, 8))
  x = RNG.normal(size=sig.shape).astype(np.float32)
  layer = AxialPositionalEncoding(shape, d_embs, mode='eval')
  (w1, w2), state = layer.init(sig)
  assert (w1.shape, w2.shape, state) == ((1, 4, 1, 3), (1, 1, 5, 5), ())  # Trax's shapes
  pos = np.arange(18)
  want = x + np.concatenate([np.asarray(w1)[0, pos // 5, 0],
                             np.asarray(w2)[0, 0, pos % 5]], -1)[None]
  y = layer(x)
  np.testing.assert_allclose(y, want, atol=1e-6)
  check_signature(layer, sig, y)
  predictor = AxialPositionalEncoding(shape, d_embs, mode='predict')
  predictor.init(ShapeDtype((B, 1, 8)))
  predictor.weights = layer.weights
  got = np.concatenate([predictor(x[:, :2])] + [predictor(x[:, i:i + 1]) for i in range(2, 18)],
                       axis=1)
  np.testing.assert_allclose(got, want, atol=1e-6)
  with pytest.raises(LayerError, match=r'input must be \(batch, length, 8\)'):
    layer(np.zeros((B, 4, 6), np.float32))


def test_axial_positional_encoding_gives_the_numbers_of_trax_1_4():
  data = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'research_141.npz'))
  x = data['x']  # (2, 6, 8); made by fixtures/make_research_141.py
  layer = AxialPositionalEncoding(shape=(2, 3), d_embs=(3, 5), mode='eval')
  weights, _ = layer.init(ShapeDtype(x.shape))
  assert [w.shape for w in weights] == [data['Axial/w0'].shape, data['Axial/w1'].shape]
  y = layer(x, weights=(jnp.asarray(data['Axial/w0']), jnp.asarray(data['Axial/w1'])))
  np.testing.assert_allclose(y, data['Axial/y'], atol=1e-6)  # printed by Trax 1.4.1


def test_axial_dropout_is_shared_along_broadcast_dims():
  layer = AxialPositionalEncoding((4, 4), (4, 4), dropout=0.5, dropout_broadcast_dims=(1, 2))
  x = np.zeros((1, 16, 8), np.float32)
  layer.init(ShapeDtype(x.shape))
  y = np.asarray(layer(x))
  dropped = np.all(y == 0, axis=1)[0]  # one mask of the 8 features
  assert np.all((y == 0) == dropped[None, None, :]) and 0 < dropped.sum() < 8
