"""Activation functions as layers.

Each function returns an `Fn` layer without weights, n_in = n_out = 1, that
acts elementwise, `(...) -> (...)` with the input's shape and dtype; `Glu`
alone halves one axis. Names, arguments and formulas follow Trax
(`trax/layers/activation_fns.py`); `Swish` and `Glu` are additions with the
usual formulas. `ThresholdedLinearUnit` alone has a weight.

>>> LeakyRelu(a=0.1)(jnp.array([-2., 3.]))
Array([-0.2,  3. ], dtype=float32)
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from minitrax.checks import check_real
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import Fn, Layer

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_LAMBDA = 1.0507009873554804934193349852946


def Relu():  # pylint: disable=invalid-name
  """`max(x, 0)`."""
  return Fn('Relu', lambda x: jnp.where(x <= 0, jnp.zeros_like(x), x))


def ParametricRelu(a=1.):  # pylint: disable=invalid-name
  """`max(a x, 0)`: a ReLU whose positive side has slope `a` (Trax's formula).

  Args:
    a: a real number, the slope.
  """
  check_real('ParametricRelu', 'a', a)
  return Fn('ParametricRelu', lambda x: jnp.maximum(a * x, jnp.zeros_like(x)))


def LeakyRelu(a=0.01):  # pylint: disable=invalid-name
  """`x` for x >= 0, `a x` otherwise.

  Args:
    a: a real number, the slope of the negative side.
  """
  check_real('LeakyRelu', 'a', a)
  return Fn('LeakyRelu', lambda x: jnp.where(x >= 0, x, a * x))


def Elu(a=1.):  # pylint: disable=invalid-name
  """`x` for x > 0, `a (exp(x) - 1)` otherwise.

  Args:
    a: a real number, the scale of the negative side.
  """
  check_real('Elu', 'a', a)
  return Fn('Elu', lambda x: jnp.where(x > 0, x, a * jnp.expm1(jnp.minimum(x, 0))))


def Selu(alpha=_SELU_ALPHA, lmbda=_SELU_LAMBDA):  # pylint: disable=invalid-name
  """`lmbda * Elu_alpha(x)`: self-normalising ELU (Klambauer et al., 2017).

  Args:
    alpha: the ELU scale of the negative side (default the paper's 1.6733).
    lmbda: the overall scale (default the paper's 1.0507).
  """
  check_real('Selu', 'alpha', alpha)
  check_real('Selu', 'lmbda', lmbda)

  def f(x):
    return lmbda * jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0)))

  return Fn('Selu', f)


def Gelu():  # pylint: disable=invalid-name
  """`x Phi(x) = x (1 + erf(x / sqrt(2))) / 2`, exact Gaussian error linear unit."""
  return Fn('Gelu', lambda x: 0.5 * x * (1.0 + erf(x / jnp.sqrt(2.0))))


def FastGelu():  # pylint: disable=invalid-name
  """Tanh approximation of Gelu: `x (1 + tanh(c x (1 + 0.044715 x^2))) / 2`, c = sqrt(2/pi)."""

  def f(x):
    return 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))

  return Fn('FastGelu', f)


def Sigmoid():  # pylint: disable=invalid-name
  """`1 / (1 + exp(-x))`."""
  return Fn('Sigmoid', lambda x: jax.nn.sigmoid(x))  # pylint: disable=unnecessary-lambda


def Tanh():  # pylint: disable=invalid-name
  """`tanh(x)`."""
  return Fn('Tanh', lambda x: jnp.tanh(x))  # pylint: disable=unnecessary-lambda


def HardSigmoid():  # pylint: disable=invalid-name
  """`clip(x + 1, 0, 1)`: a piecewise-linear sigmoid (Trax's formula)."""
  return Fn('HardSigmoid', lambda x: jnp.maximum(0, jnp.minimum(1, x + 1)))


def HardTanh():  # pylint: disable=invalid-name
  """`clip(x, -1, 1)`: a piecewise-linear tanh."""
  return Fn('HardTanh', lambda x: jnp.maximum(-1, jnp.minimum(1, x)))


def Softplus():  # pylint: disable=invalid-name
  """`log(1 + exp(x))`, computed stably."""
  return Fn('Softplus', lambda x: jnp.logaddexp(x, 0.))


def Swish():  # pylint: disable=invalid-name
  """`x sigmoid(x)` (also called SiLU; Ramachandran et al., 2017)."""
  return Fn('Swish', lambda x: x * jax.nn.sigmoid(x))


def Glu(axis=-1):  # pylint: disable=invalid-name
  """Gated linear unit: splits `axis` into halves a, b; returns `a sigmoid(b)`.

  `(..., 2 d) -> (..., d)` for the default `axis=-1` (Dauphin et al., 2017).

  Args:
    axis: int, the axis split into halves; its size must be even.
  """
  if not isinstance(axis, int):
    raise ArgumentTypeError(f'Glu: axis must be an int, got {axis!r}')

  def f(x):
    size = x.shape[axis]
    if size % 2:
      raise ArgumentError(f'Glu: axis {axis} must have an even size to split into value and '
                          f'gate halves, got shape {x.shape}')
    a, b = jnp.split(x, 2, axis=axis)
    return a * jax.nn.sigmoid(b)

  return Fn('Glu', f)


def Exp():  # pylint: disable=invalid-name
  """`exp(x)`."""
  return Fn('Exp', lambda x: jnp.exp(x))  # pylint: disable=unnecessary-lambda


def Log():  # pylint: disable=invalid-name
  """`log(x)` (NaN for x < 0, -inf at 0)."""
  return Fn('Log', lambda x: jnp.log(x))  # pylint: disable=unnecessary-lambda


class ThresholdedLinearUnit(Layer):
  """`max(x, tau)` with a learned scalar threshold `tau` (weights: `tau`, initially 0).

  Any shape in, the same shape out (arXiv:1911.09737; used with
  `FilterResponseNorm`).
  """

  def __init__(self):
    super().__init__(name='ThresholdedLinearUnit')

  def init_weights_and_state(self, input_signature, rng):
    del input_signature, rng
    return jnp.zeros((), jnp.float32), ()

  def forward(self, x, weights):
    return jnp.maximum(x, weights.astype(x.dtype))


__all__ = [
    'ThresholdedLinearUnit', 'Relu', 'ParametricRelu', 'LeakyRelu', 'Elu', 'Selu', 'Gelu',
    'FastGelu', 'Sigmoid', 'Tanh', 'HardSigmoid', 'HardTanh', 'Softplus', 'Swish', 'Glu', 'Exp',
    'Log'
]
