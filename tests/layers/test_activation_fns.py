"""Activation layers against NumPy formulas; finite gradients; output signatures."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.layers import activation_fns as af
from minitrax.shapes import ShapeDtype, signature

X = np.linspace(-3.0, 3.0, 13, dtype=np.float32)  # includes 0 and negatives
POSITIVE = np.linspace(0.25, 3.0, 12, dtype=np.float32)
_erf = np.vectorize(math.erf)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


SELU_A, SELU_L = 1.6732632423543772, 1.0507009873554805

CASES = [
    ('Relu', af.Relu(), lambda x: np.maximum(x, 0), X),
    ('ParametricRelu', af.ParametricRelu(0.5), lambda x: np.maximum(0.5 * x, 0), X),
    ('LeakyRelu', af.LeakyRelu(), lambda x: np.where(x >= 0, x, 0.01 * x), X),
    ('Elu', af.Elu(2.0), lambda x: np.where(x > 0, x, 2.0 * (np.exp(x) - 1)), X),
    ('Selu', af.Selu(), lambda x: SELU_L * np.where(x > 0, x, SELU_A * (np.exp(x) - 1)), X),
    ('Gelu', af.Gelu(), lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), X),
    ('FastGelu', af.FastGelu(), lambda x: 0.5 * x *
     (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))), X),
    ('Sigmoid', af.Sigmoid(), _sigmoid, X),
    ('Tanh', af.Tanh(), np.tanh, X),
    ('HardSigmoid', af.HardSigmoid(), lambda x: np.clip(x + 1, 0, 1), X),
    ('HardTanh', af.HardTanh(), lambda x: np.clip(x, -1, 1), X),
    ('Softplus', af.Softplus(), lambda x: np.log1p(np.exp(x)), X),
    ('Swish', af.Swish(), lambda x: x * _sigmoid(x), X),
    ('Exp', af.Exp(), np.exp, X),
    ('Log', af.Log(), np.log, POSITIVE),
]


@pytest.mark.parametrize('name, layer, reference, x', CASES, ids=[c[0] for c in CASES])
def test_activation_matches_numpy_and_has_finite_gradient(name, layer, reference, x):
  assert layer.name == name and (layer.n_in, layer.n_out) == (1, 1)
  y = layer(x)
  np.testing.assert_allclose(y, reference(x.astype(np.float64)), rtol=2e-6, atol=2e-6)
  assert layer.output_signature(ShapeDtype(x.shape)) == signature(y)
  grad = jax.grad(lambda v: layer.pure_fn(v, (), (), None)[0].sum())(jnp.asarray(x))
  assert grad.shape == x.shape and np.all(np.isfinite(grad))


def test_gradients_of_piecewise_activations():
  x = jnp.array([-2.0, -0.5, 0.5, 2.0])
  slopes = {
      af.Relu(): [0, 0, 1, 1],
      af.LeakyRelu(0.1): [0.1, 0.1, 1, 1],
      af.HardTanh(): [0, 1, 1, 0],
      af.HardSigmoid(): [0, 1, 0, 0]
  }
  for layer, expected in slopes.items():
    grad = jax.grad(lambda v, fn=layer: fn.pure_fn(v, (), (), None)[0].sum())(x)
    np.testing.assert_allclose(grad, expected, err_msg=layer.name)


def test_elu_gradient_is_finite_for_large_inputs():
  x = jnp.array([100.0, 200.0], jnp.float32)
  grad = jax.grad(lambda v: af.Elu().pure_fn(v, (), (), None)[0].sum())(x)
  np.testing.assert_array_equal(grad, [1.0, 1.0])


def test_glu_halves_the_axis():
  x = np.arange(-4, 4, dtype=np.float32).reshape(2, 4) / 2
  layer = af.Glu()
  y = layer(x)
  np.testing.assert_allclose(y, x[:, :2] * _sigmoid(x[:, 2:].astype(np.float64)), rtol=1e-6)
  assert layer.output_signature(ShapeDtype((2, 4))) == signature(y) == ShapeDtype((2, 2))
  y0 = af.Glu(axis=0)(x)
  np.testing.assert_allclose(y0, x[:1] * _sigmoid(x[1:].astype(np.float64)), rtol=1e-6)


def test_errors():
  with pytest.raises(Exception, match=r'Glu: axis -1 must have an even size .*shape \(2, 3\)'):
    af.Glu().output_signature(ShapeDtype((2, 3)))
  with pytest.raises(TypeError, match="LeakyRelu: a must be a real number, got '0.1'"):
    af.LeakyRelu('0.1')
  with pytest.raises(TypeError, match='Glu: axis must be an int'):
    af.Glu(axis=None)


def test_dtype_is_preserved():
  x = jnp.array([-1.0, 2.0], jnp.bfloat16)
  for layer in (af.Relu(), af.HardSigmoid(), af.Elu(), af.Gelu()):
    assert layer.output_signature(signature(x)).dtype == jnp.bfloat16, layer.name
