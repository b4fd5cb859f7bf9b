"""LayerNorm, BatchNorm and FilterResponseNorm against NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.normalization import BatchNorm, FilterResponseNorm, LayerNorm
from minitrax.shapes import ShapeDtype

RNG = np.random.RandomState(0)
X = RNG.normal(1.0, 2.0, (2, 3, 2, 4)).astype(np.float32)  # NHWC, 4 channels
X2 = RNG.normal(-1.0, 0.5, (2, 3, 2, 4)).astype(np.float32)


def _check_signature(layer, x):
  y = layer(x)
  assert layer.output_signature(ShapeDtype(x.shape, x.dtype)) == ShapeDtype(y.shape, y.dtype)
  return np.asarray(y)


# ------------------------------------------------------------------ LayerNorm


@pytest.mark.parametrize('center', [True, False])
def test_layer_norm_matches_numpy(center):
  layer = LayerNorm(center=center, epsilon=1e-3)
  layer.init(ShapeDtype(X.shape))
  scale, bias = layer.weights
  assert scale.shape == bias.shape == (4,)
  np.testing.assert_array_equal(scale, np.ones(4))
  np.testing.assert_array_equal(bias, np.zeros(4))
  scale, bias = RNG.normal(size=(2, 4)).astype(np.float32)
  layer.weights = (scale, bias)
  y = _check_signature(layer, X)
  centered = X - X.mean(-1, keepdims=True) if center else X
  expected = centered / np.sqrt((centered**2).mean(-1, keepdims=True) + 1e-3) * scale
  expected = expected + bias if center else expected
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_layer_norm_rejects_bad_epsilon_and_scalars():
  with pytest.raises(ValueError, match=r'LayerNorm: epsilon must be > 0, got 0'):
    LayerNorm(epsilon=0)
  with pytest.raises(LayerError, match=r'input must have at least 1 axis'):
    LayerNorm().init(ShapeDtype(()))


# ------------------------------------------------------------------ BatchNorm


def _np_normalize(x, mean, var, beta, gamma, eps):
  return gamma * (x - mean) / np.sqrt(var + eps) + beta


def test_batch_norm_train_outputs_and_running_statistics_after_two_steps():
  momentum, eps = 0.9, 1e-5
  layer = BatchNorm(momentum=momentum)
  weights, state = layer.init(ShapeDtype(X.shape))
  assert [w.shape for w in weights] == [(4,), (4,)]
  assert [s.shape for s in state[:2]] == [(1, 1, 1, 4), (1, 1, 1, 4)]
  beta, gamma = RNG.normal(size=(2, 4)).astype(np.float32)
  layer.weights = (beta, gamma)
  running_mean, running_var = np.zeros((1, 1, 1, 4)), np.ones((1, 1, 1, 4))
  for x in (X, X2):
    mean = x.mean((0, 1, 2), keepdims=True)
    var = ((x - mean)**2).mean((0, 1, 2), keepdims=True)  # biased
    y = _check_signature(layer, x)
    np.testing.assert_allclose(y, _np_normalize(x, mean, var, beta, gamma, eps), rtol=1e-4,
                               atol=1e-4)
    running_mean = momentum * running_mean + (1 - momentum) * mean
    running_var = momentum * running_var + (1 - momentum) * var
  new_mean, new_var, n_batches = layer.state
  np.testing.assert_allclose(new_mean, running_mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new_var, running_var, rtol=1e-5, atol=1e-6)
  assert int(n_batches) == 2


def test_batch_norm_eval_uses_running_statistics_and_keeps_state():
  mean = RNG.normal(size=(1, 1, 1, 4)).astype(np.float32)
  var = RNG.uniform(0.5, 2.0, (1, 1, 1, 4)).astype(np.float32)
  beta, gamma = RNG.normal(size=(2, 4)).astype(np.float32)
  state = (mean, var, np.array(7, np.int32))
  outputs = {}
  for mode in ('train', 'eval'):
    layer = BatchNorm(mode=mode, epsilon=1e-3)
    layer.init(ShapeDtype(X.shape))
    layer.weights, layer.state = (beta, gamma), state
    outputs[mode] = _check_signature(layer, X)
    if mode == 'eval':
      np.testing.assert_allclose(outputs[mode], _np_normalize(X, mean, var, beta, gamma, 1e-3),
                                 rtol=1e-5, atol=1e-5)
      for new, old in zip(layer.state, state):
        np.testing.assert_array_equal(new, old)
  assert not np.allclose(outputs['train'], outputs['eval'], atol=1e-2)


def test_batch_norm_dense_axis_without_center_or_scale():
  layer = BatchNorm(axis=0, center=False, scale=False, momentum=0.5)
  x = X.reshape(6, 8)
  weights, state = layer.init(ShapeDtype(x.shape))
  assert weights == ((), ()) and state[0].shape == (1, 8)
  y = _check_signature(layer, x)
  expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(layer.state[0], 0.5 * x.mean(0, keepdims=True), rtol=1e-5)


def test_batch_norm_gradients_are_finite_and_reach_beta_and_gamma():
  layer = BatchNorm()
  weights, state = layer.init(ShapeDtype(X.shape))
  target = np.arange(4, dtype=np.float32)

  def loss(w, x):
    y = layer.pure_fn(x, w, state, None)[0]
    return jnp.sum(y * jnp.broadcast_to(target, y.shape))

  (g_beta, g_gamma), g_x = jax.grad(loss, argnums=(0, 1))(weights, X)
  np.testing.assert_allclose(g_beta, X[..., 0].size * target, rtol=1e-6)
  assert np.all(np.isfinite(g_gamma)) and np.all(np.isfinite(g_x))
  assert np.abs(g_x).max() < 1e-3  # sum of a normalised batch ignores shifts of x


def test_batch_norm_validates_arguments():
  with pytest.raises(
      ValueError, match=r"BatchNorm: mode must be one of \('train', 'eval', "
      r"'predict'\), got 'test'"):
    BatchNorm(mode='test')
  with pytest.raises(ValueError, match=r'BatchNorm: momentum must lie in \[0, 1\], got 1.5'):
    BatchNorm(momentum=1.5)
  with pytest.raises(LayerError, match=r'BatchNorm: axis \(0, 1, 2\) out of range for an '
                     r'input of rank 2'):
    BatchNorm().init(ShapeDtype((3, 4)))


# ------------------------------------------------------------------ FilterResponseNorm


@pytest.mark.parametrize('learn_epsilon', [False, True])
def test_filter_response_norm_matches_numpy(learn_epsilon):
  layer = FilterResponseNorm(learn_epsilon=learn_epsilon, init_epsilon=0.5,
                             init_learnt_epsilon=0.25)
  gamma, beta, epsilon_l = layer.init(ShapeDtype(X.shape))[0]
  assert gamma.shape == beta.shape == (4,)
  assert len(epsilon_l) == (1 if learn_epsilon else 0)
  gamma, beta = RNG.normal(size=(2, 4)).astype(np.float32)
  epsilon_l = (np.float32(-0.25),) if learn_epsilon else ()
  layer.weights = (gamma, beta, epsilon_l)
  y = _check_signature(layer, X)
  eps = 0.5 + (0.25 if learn_epsilon else 0.0)
  nu2 = (X**2).mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(y, gamma * X / np.sqrt(nu2 + eps) + beta, rtol=1e-5, atol=1e-5)


def test_filter_response_norm_learned_epsilon_gets_a_gradient():
  layer = FilterResponseNorm(learn_epsilon=True)
  weights, state = layer.init(ShapeDtype(X.shape))
  grads = jax.grad(lambda w: jnp.sum(layer.pure_fn(X, w, state, None)[0]))(weights)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert float(grads[2][0]) != 0.0


def test_filter_response_norm_validates():
  with pytest.raises(ValueError, match=r'FilterResponseNorm: init_epsilon must be > 0, got -1'):
    FilterResponseNorm(init_epsilon=-1)
  with pytest.raises(
      LayerError, match=r'input must have rank >= 3 \(batch, spatial..., '
      r'channels\), got shape \(2, 4\)'):
    FilterResponseNorm().init(ShapeDtype((2, 4)))
