"""Conv, Conv1d and CausalConv against explicit NumPy window sums."""

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.convolution import CausalConv, Conv, Conv1d
from minitrax.shapes import ShapeDtype

RNG = np.random.RandomState(0)


def np_conv(x, w, strides, padding):
  """Channels-last convolution by explicit loops over output positions and taps.

  x: (N, *spatial, C); w: (*kernel, C, O); padding 'VALID', 'SAME' or pairs.
  """
  spatial, kernel = x.shape[1:-1], w.shape[:-2]
  if padding == 'VALID':
    pads = [(0, 0)] * len(spatial)
  elif padding == 'SAME':
    pads = []
    for n, k, s in zip(spatial, kernel, strides):
      total = max((-(-n // s) - 1) * s + k - n, 0)
      pads.append((total // 2, total - total // 2))
  else:
    pads = list(padding)
  xp = np.pad(x, [(0, 0)] + pads + [(0, 0)])
  out_shape = [
      (n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(spatial, pads, kernel, strides)
  ]
  y = np.zeros((x.shape[0], *out_shape, w.shape[-1]), np.float64)
  for pos in itertools.product(*map(range, out_shape)):
    for tap in itertools.product(*map(range, kernel)):
      idx = tuple(p * s + t for p, s, t in zip(pos, strides, tap))
      y[(slice(None),) + pos] += xp[(slice(None),) + idx] @ w[tap]
  return y


def _init_with(layer, x, kernel, bias=None):
  layer.init(ShapeDtype(x.shape))
  layer.weights = kernel if bias is None else (kernel, bias)


def _run(layer, x):
  """Output of `layer(x)`, checking `output_signature` against it."""
  y = layer(x)
  assert layer.output_signature(ShapeDtype(x.shape, x.dtype)) == ShapeDtype(y.shape, y.dtype)
  return np.asarray(y)


@pytest.mark.parametrize('padding,strides', [('VALID', None), ('SAME', None), ('VALID', (2, 1)),
                                             ('SAME', (2, 3))])
def test_conv2d_matches_numpy_loops(padding, strides):
  x = RNG.normal(size=(2, 5, 6, 3)).astype(np.float32)
  kernel = RNG.normal(size=(3, 2, 3, 4)).astype(np.float32)
  bias = RNG.normal(size=(4,)).astype(np.float32)
  layer = Conv(4, (3, 2), strides=strides, padding=padding)
  layer.init(ShapeDtype(x.shape))
  assert [a.shape for a in layer.weights] == [(3, 2, 3, 4), (4,)]
  layer.weights = (kernel, bias)
  y = _run(layer, x)
  expected = np_conv(x, kernel, strides or (1, 1), padding) + bias
  assert y.shape == expected.shape and y.shape[-1] == 4
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_conv3d_with_explicit_padding_and_no_bias():
  x = RNG.normal(size=(1, 3, 4, 3, 2)).astype(np.float32)
  kernel = RNG.normal(size=(2, 2, 2, 2, 3)).astype(np.float32)
  layer = Conv(3, (2, 2, 2), padding=((1, 0), (0, 0), (0, 1)), use_bias=False,
               dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC'))
  _init_with(layer, x, kernel)
  expected = np_conv(x, kernel, (1, 1, 1), ((1, 0), (0, 0), (0, 1)))
  np.testing.assert_allclose(_run(layer, x), expected, rtol=1e-4, atol=1e-4)


def test_conv_channels_first_layout_and_bias_broadcast():
  x = RNG.normal(size=(2, 3, 4, 4)).astype(np.float32)  # NCHW
  kernel = RNG.normal(size=(5, 3, 2, 2)).astype(np.float32)  # OIHW
  bias = RNG.normal(size=(5, 1, 1)).astype(np.float32)
  layer = Conv(5, (2, 2), dimension_numbers=('NCHW', 'OIHW', 'NCHW'))
  layer.init(ShapeDtype(x.shape))
  assert [a.shape for a in layer.weights] == [(5, 3, 2, 2), (5, 1, 1)]
  layer.weights = (kernel, bias)
  nhwc = np_conv(x.transpose(0, 2, 3, 1), kernel.transpose(2, 3, 1, 0), (1, 1), 'VALID')
  expected = nhwc.transpose(0, 3, 1, 2) + bias
  np.testing.assert_allclose(_run(layer, x), expected, rtol=1e-4, atol=1e-4)


def test_conv_folds_extra_leading_axes_into_the_batch():
  x = RNG.normal(size=(2, 1, 3, 3, 2)).astype(np.float32)
  kernel = RNG.normal(size=(2, 2, 2, 3)).astype(np.float32)
  layer = Conv(3, (2, 2))
  _init_with(layer, x, kernel, np.zeros(3, np.float32))
  expected = np_conv(x.reshape(2, 3, 3, 2), kernel, (1, 1), 'VALID').reshape(2, 1, 2, 2, 3)
  np.testing.assert_allclose(_run(layer, x), expected, rtol=1e-4, atol=1e-4)


def test_conv1d_matches_numpy_loops():
  x = RNG.normal(size=(2, 7, 3)).astype(np.float32)
  kernel = RNG.normal(size=(3, 3, 2)).astype(np.float32)
  bias = RNG.normal(size=(2,)).astype(np.float32)
  layer = Conv1d(2, 3, stride=2, padding='SAME')
  _init_with(layer, x, kernel, bias)
  expected = np_conv(x, kernel, (2,), 'SAME') + bias
  assert expected.shape == (2, 4, 2)
  np.testing.assert_allclose(_run(layer, x), expected, rtol=1e-4, atol=1e-4)


def test_causal_conv_matches_left_padded_numpy_and_is_causal():
  x = RNG.normal(size=(2, 8, 3)).astype(np.float32)
  kernel = RNG.normal(size=(3, 3, 4)).astype(np.float32)
  bias = RNG.normal(size=(4,)).astype(np.float32)
  layer = CausalConv(4, kernel_width=3, dilation=2)
  _init_with(layer, x, kernel, bias)
  y = _run(layer, x)
  # y[t] = sum_k x[t - 2 * (2 - k)] @ kernel[k], with x[t < 0] = 0.
  xp = np.pad(x, [(0, 0), (4, 0), (0, 0)])
  expected = sum(xp[:, 2 * k:2 * k + 8] @ kernel[k] for k in range(3)) + bias
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
  t0 = 5
  x_changed = x.copy()
  x_changed[:, t0] += 10.0
  y_changed = np.asarray(layer(x_changed))
  np.testing.assert_array_equal(y_changed[:, :t0], y[:, :t0])
  assert np.all(np.abs(y_changed[:, t0] - y[:, t0]) > 1e-3)


def test_default_initializers_and_custom_ones():
  layer = Conv(16, (3, 3))
  kernel, bias = layer.init(ShapeDtype((1, 4, 4, 8)))[0]
  assert kernel.shape == (3, 3, 8, 16) and kernel.dtype == jnp.float32
  # Glorot normal, fans counting the 3x3 window: std = sqrt(2 / (9 * 8 + 9 * 16)).
  np.testing.assert_allclose(np.std(kernel), np.sqrt(2 / (9 * 8 + 9 * 16)), rtol=0.1)
  assert bias.shape == (16,) and float(jnp.max(jnp.abs(bias))) < 1e-4
  seen = []

  def constant(value):

    def init(shape, rng):
      seen.append(tuple(shape))
      del rng
      return jnp.full(shape, value, jnp.float32)

    return init

  layer = CausalConv(2, kernel_width=4, kernel_initializer=constant(1.0),
                     bias_initializer=constant(0.5))
  layer.init(ShapeDtype((1, 5, 3)))
  assert seen == [(4, 3, 2), (2,)]


def test_conv_gradients_are_finite_and_reach_kernel_bias_and_input():
  layer = Conv(2, (2, 2), padding='SAME')
  x = RNG.normal(size=(1, 3, 3, 2)).astype(np.float32)
  weights, state = layer.init(ShapeDtype(x.shape))

  @jax.jit
  def grads(w, x):
    return jax.grad(lambda w, x: jnp.sum(layer.pure_fn(x, w, state, None)[0]**2), argnums=(0, 1))(w,
                                                                                                  x)

  (g_kernel, g_bias), g_x = grads(weights, x)
  for g in (g_kernel, g_bias, g_x):
    assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_conv_validates_arguments_eagerly():
  with pytest.raises(
      ValueError, match=re.escape(
          "Conv: dimension_numbers ('NHWC', 'HWIO', 'NHWC') have 2 spatial dims but kernel_size "
          "has 1; for 1 spatial dim use e.g. dimension_numbers=('NWC', 'WIO', 'NWC')")):
    Conv(4, (3,))
  with pytest.raises(ValueError, match=r"must name the same spatial dims in all three"):
    Conv(4, (3, 3), dimension_numbers=('NHWC', 'HDIO', 'NHWC'))
  with pytest.raises(ValueError, match=r"Conv: kernel layout 'HWI' must hold 'I' and 'O'"):
    Conv(4, (3, 3), dimension_numbers=('NHWC', 'HWI', 'NHWC'))
  with pytest.raises(ValueError, match=r'Conv: kernel_size must be a non-empty tuple'):
    Conv(4, 3)
  with pytest.raises(ValueError, match=r'Conv: strides must be a tuple of 2 positive ints, '
                     r'got \(1, 0\)'):
    Conv(4, (3, 3), strides=(1, 0))
  with pytest.raises(
      ValueError, match=r"Conv: padding must be 'VALID', 'SAME' or 2 "
      r"\(low, high\) pairs, got 'same'"):
    Conv(4, (3, 3), padding='same')
  with pytest.raises(ValueError, match=r'Conv: filters must be a positive int, got 0'):
    Conv(0, (3, 3))
  with pytest.raises(ValueError, match=r'CausalConv: dilation must be a positive int, got 0'):
    CausalConv(4, dilation=0)
  with pytest.raises(
      ValueError, match=r'Conv: bias_initializer must be a function '
      r'init\(shape, rng\), got 0.0'):
    Conv(4, (3, 3), bias_initializer=0.0)
  with pytest.raises(ValueError, match=r'Conv1d: kernel_size and stride must be ints'):
    Conv1d(4, (3,))


def test_conv_rejects_inputs_of_the_wrong_rank():
  with pytest.raises(LayerError, match=r"Conv: input layout 'NHWC' needs rank 4 or more"):
    Conv(4, (3, 3)).init(ShapeDtype((5, 5, 3)))
  with pytest.raises(
      LayerError, match=r"Conv: input layout 'HWCN' needs rank 4, got shape "
      r"\(1, 2, 3, 5, 5\)"):
    Conv(4, (3, 3), dimension_numbers=('HWCN', 'HWIO', 'HWCN')).init(ShapeDtype((1, 2, 3, 5, 5)))
