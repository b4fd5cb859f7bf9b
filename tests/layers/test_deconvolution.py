"""ConvTranspose against real Trax 1.4.1 and against a NumPy scatter-add reference."""

import os
import sys

import jax
import numpy as np
import pytest

from minitrax.errors import ArgumentError
from minitrax.layers.deconvolution import ConvTranspose
from minitrax.layers.initializers import RandomNormalInitializer
from minitrax.shapes import ShapeDtype

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import more_layers_fixture as fx  # noqa: E402

T141 = fx.load('141')


@pytest.mark.parametrize('name, make', [
    ('ct_valid', lambda: ConvTranspose(2, (3, 2), strides=(2, 1))),
    ('ct_same', lambda: ConvTranspose(2, (3, 3), strides=(2, 2), padding='SAME')),
    ('ct_dilated', lambda: ConvTranspose(4, (2, 2), rhs_dilation=(2, 1))),
])
def test_matches_trax(name, make):
  layer = fx.init_with_trax_weights(make(), T141, name)
  x = fx.inputs(T141, name)
  fx.assert_matches(layer(x), T141, name)
  assert layer.output_signature(ShapeDtype(x.shape)) == ShapeDtype(fx.outputs(T141, name)[0].shape)


def np_conv_transpose_valid(x, w, b, strides):
  """Each input pixel adds its kernel-weighted copy at `stride * position` (VALID padding)."""
  (n, h, wd, _), (kh, kw, _, f) = x.shape, w.shape
  sh, sw = strides
  out = np.zeros((n, (h - 1) * sh + kh, (wd - 1) * sw + kw, f), np.float64)
  for i in range(h):
    for j in range(wd):
      # lax.conv_transpose (transpose_kernel=False) correlates with the kernel as given, so the
      # tap at offset (p, q) of the output window uses w[kh - 1 - p, kw - 1 - q].
      out[:, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.einsum('nc,pqcf->npqf', x[:, i, j],
                                                                  w[::-1, ::-1])
  return out + b


def test_valid_matches_numpy_scatter_add():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
  layer = ConvTranspose(3, (2, 3), strides=(2, 3))
  (w, b), _ = layer.init(ShapeDtype(x.shape))
  np.testing.assert_allclose(layer(x),
                             np_conv_transpose_valid(x, np.asarray(w), np.asarray(b), (2, 3)),
                             atol=1e-5)


def test_weights_shapes_layouts_and_gradients():
  layer = ConvTranspose(5, (3, 3), strides=(2, 2), dimension_numbers=('NCHW', 'OIHW', 'NCHW'))
  (w, b), state = layer.init(ShapeDtype((2, 4, 6, 6)))
  assert (w.shape, b.shape) == ((5, 4, 3, 3), (5, 1, 1))  # as Trax: bias broadcast to C, H, W
  x = np.ones((2, 4, 6, 6), np.float32)
  assert layer(x).shape == (2, 5, 13, 13)
  grads = jax.grad(lambda ws: layer.pure_fn(x, ws, state, None)[0].sum())((w, b))
  np.testing.assert_allclose(grads[1], np.full((5, 1, 1), 2 * 13 * 13))
  # Extra leading axes are folded into the batch.
  nhwc = ConvTranspose(2, (2, 2))
  nhwc.init(ShapeDtype((3, 2, 4, 4, 1)))
  assert nhwc(np.ones((3, 2, 4, 4, 1), np.float32)).shape == (3, 2, 5, 5, 2)


def test_initializer_arguments():
  fixed = lambda shape, rng: np.full(shape, 0.5, np.float32)  # noqa: E731
  for kwargs in ({'kernel_initialzer': fixed}, {'kernel_initializer': fixed}):  # Trax's spelling
    (w, b), _ = ConvTranspose(2, (2,), dimension_numbers=('NWC', 'WIO', 'NWC'),
                              bias_initializer=RandomNormalInitializer(0.0),
                              **kwargs).init(ShapeDtype((1, 3, 4)))
    np.testing.assert_array_equal(w, np.full((2, 4, 2), 0.5))
    np.testing.assert_array_equal(b, np.zeros((2,)))
  with pytest.raises(ArgumentError, match='kernel_initialzer .* or kernel_initializer, not both'):
    ConvTranspose(2, (2, 2), kernel_initialzer=fixed, kernel_initializer=fixed)


@pytest.mark.parametrize('kwargs, message', [
    ({'filters': 0, 'kernel_size': (3, 3)}, 'ConvTranspose: filters must be a positive int'),
    ({'filters': 2, 'kernel_size': 3}, 'ConvTranspose: kernel_size must be a non-empty tuple'),
    ({'filters': 2, 'kernel_size': (3, 3), 'strides':
        (2,)}, r'ConvTranspose: strides must be a tuple of 2 positive ints, got \(2,\)'),
    ({'filters': 2, 'kernel_size': (3, 3), 'padding': 'FULL'}, "ConvTranspose: padding must be"),
    ({'filters': 2, 'kernel_size': (3,)}, 'ConvTranspose: dimension_numbers .* have 2 spatial'),
])
def test_argument_errors(kwargs, message):
  with pytest.raises(ArgumentError, match=message):
    ConvTranspose(**kwargs)
