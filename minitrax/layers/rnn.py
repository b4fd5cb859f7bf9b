"""Recurrent layers: LSTM and GRU cells, and the layers that run them over time.

A cell maps one time step `(x_t, state) -> (output_t, new_state)` (n_in = 2,
n_out = 2). The sequence layers `LSTM` and `GRU` start from a zero state and
run their cell along axis 1 of a `(batch, time, features)` input with `Scan`,
keeping the outputs and dropping the final state:

    LSTM(n) = Serial(Branch(None, zero_state), Scan(LSTMCell(n), axis=1),
                     Select([0], n_in=2))

The equations, gate order, bias layout and initialisers are Trax's, so that
weights and behaviour carry over one to one. One difference: the zero state
is sized by the cell (`2 * n_units` for LSTM, `n_units` for GRU), where Trax
copies the input width, so the input width need not equal `n_units`.
"""

import jax
import jax.numpy as jnp

from minitrax.checks import check_positive_int
from minitrax.errors import ArgumentError
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Branch, Scan, Select, Serial
from minitrax.layers.initializers import (GlorotUniformInitializer, RandomNormalInitializer,
                                          RandomUniformInitializer)


def _affine(x, w, b):
  """`x @ w + b` for x (batch, d_in), w (d_in, d_out), b (d_out,): (batch, d_out)."""
  y = x @ w
  return y + jnp.broadcast_to(b, y.shape)


def _check_step_inputs(name, x, state, state_size, n_rows, n_units):
  """Checks one step's `x` and `state` against the cell's weights (clear messages)."""
  if state.shape[-1] != state_size:
    raise ArgumentError(f'{name}: state must have last axis {state_size}, got shape '
                        f'{tuple(state.shape)}')
  if x.shape[-1] != n_rows - n_units:
    raise ArgumentError(f'{name}: weights were made for x with last axis {n_rows - n_units}, '
                        f'got x of shape {tuple(x.shape)}')
  if x.shape[:-1] != state.shape[:-1]:
    raise ArgumentError(f'{name}: x and state must agree on all but the last axis, got '
                        f'shapes {tuple(x.shape)} and {tuple(state.shape)}')


class LSTMCell(Layer):
  r"""One step of a long short-term memory cell, as in Trax.

  n_in = 2, n_out = 2: `(x, state) -> (new_h, new_state)` with
  `x: (..., d_in)`, `state: (..., 2 * n_units)` (c and h concatenated, c
  first), `new_h: (..., n_units)`, `new_state: (..., 2 * n_units)`.

  With `c, h = split(state)` and one dense map of `[x, h]`::

      i, j, f, o = split([x, h] @ w + b, 4)        # gate order i, j, f, o
      new_c = c * sigmoid(f) + sigmoid(i) * tanh(j)
      new_h = tanh(new_c) * sigmoid(o)
      new_state = [new_c, new_h]

  Weights: `w: (d_in + n_units, 4 * n_units)`, `b: (4 * n_units,)`. As in
  Trax, `forget_bias` is added to the whole initial bias vector (all four
  gates), not only to the forget gate's quarter.

  Args:
    n_units: size of h (and of c).
    forget_bias: constant added to the initial biases.
    kernel_initializer: `init(shape, rng)` for `w`.
    bias_initializer: `init(shape, rng)` for `b` (before `forget_bias`).
  """

  def __init__(self, n_units, forget_bias=1.0, kernel_initializer=GlorotUniformInitializer(),
               bias_initializer=RandomNormalInitializer(1e-6)):
    check_positive_int('LSTMCell', 'n_units', n_units)
    super().__init__(n_in=2, n_out=2, name='LSTMCell')
    self._n_units = int(n_units)
    self._forget_bias = float(forget_bias)
    self._kernel_initializer = kernel_initializer
    self._bias_initializer = bias_initializer

  def init_weights_and_state(self, input_signature, rng):
    x_sig, state_sig = input_signature
    if state_sig.shape[-1:] != (2 * self._n_units,):
      raise ArgumentError(f'LSTMCell: state must have last axis 2 * n_units = '
                          f'{2 * self._n_units}, got shape {state_sig.shape}')
    rng_w, rng_b = jax.random.split(rng)
    n = self._n_units
    w = self._kernel_initializer((x_sig.shape[-1] + n, 4 * n), rng_w)
    b = self._bias_initializer((4 * n,), rng_b) + self._forget_bias
    return (w, b), ()

  def forward(self, x, weights):
    x, state = x
    w, b = weights
    _check_step_inputs('LSTMCell', x, state, 2 * self._n_units, w.shape[0], self._n_units)
    c, h = jnp.split(state, 2, axis=-1)
    y = _affine(jnp.concatenate([x, h], axis=-1), w, b)
    i, j, f, o = jnp.split(y, 4, axis=-1)
    new_c = c * jax.nn.sigmoid(f) + jax.nn.sigmoid(i) * jnp.tanh(j)
    new_h = jnp.tanh(new_c) * jax.nn.sigmoid(o)
    return new_h, jnp.concatenate([new_c, new_h], axis=-1)


class GRUCell(Layer):
  r"""One step of a gated recurrent unit, as in Trax.

  n_in = 2, n_out = 2: `(x, h) -> (new_h, new_h)` with `x: (..., d_in)` and
  `h, new_h: (..., n_units)` (the state is h itself; it is output twice, once
  as the step's output and once as the carried state)::

      u, r = split(sigmoid([x, h] @ w1 + b1), 2)   # update gate u, reset gate r
      c = tanh([x, r * h] @ w2 + b2)               # candidate
      new_h = u * h + (1 - u) * c

  Weights: `w1: (d_in + n_units, 2 * n_units)`, `b1: (2 * n_units,)`,
  `w2: (d_in + n_units, n_units)`, `b2: (n_units,)`; `forget_bias` is added
  to the initial `b1` (both gates), as in Trax.

  Args:
    n_units: size of h.
    forget_bias: constant added to the initial `b1`.
    kernel_initializer: `init(shape, rng)` for `w1` and `w2`.
    bias_initializer: `init(shape, rng)` for `b1` and `b2`.
  """

  def __init__(self, n_units, forget_bias=0.0, kernel_initializer=RandomUniformInitializer(0.01),
               bias_initializer=RandomNormalInitializer(1e-6)):
    check_positive_int('GRUCell', 'n_units', n_units)
    super().__init__(n_in=2, n_out=2, name='GRUCell')
    self._n_units = int(n_units)
    self._forget_bias = float(forget_bias)
    self._kernel_initializer = kernel_initializer
    self._bias_initializer = bias_initializer

  def init_weights_and_state(self, input_signature, rng):
    x_sig, state_sig = input_signature
    if state_sig.shape[-1:] != (self._n_units,):
      raise ArgumentError(f'GRUCell: state must have last axis n_units = {self._n_units}, '
                          f'got shape {state_sig.shape}')
    n = self._n_units
    rows = x_sig.shape[-1] + n
    r1, r2, r3, r4 = jax.random.split(rng, 4)
    w1 = self._kernel_initializer((rows, 2 * n), r1)
    b1 = self._bias_initializer((2 * n,), r2) + self._forget_bias
    w2 = self._kernel_initializer((rows, n), r3)
    b2 = self._bias_initializer((n,), r4)
    return (w1, b1, w2, b2), ()

  def forward(self, x, weights):
    x, h = x
    w1, b1, w2, b2 = weights
    _check_step_inputs('GRUCell', x, h, self._n_units, w1.shape[0], self._n_units)
    u, r = jnp.split(jax.nn.sigmoid(_affine(jnp.concatenate([x, h], axis=-1), w1, b1)), 2, axis=-1)
    c = jnp.tanh(_affine(jnp.concatenate([x, r * h], axis=-1), w2, b2))
    new_h = u * h + (1 - u) * c
    return new_h, new_h


def _zeros_layer(size_of):
  """`Fn` named MakeZeroState: `(batch, time, d) -> (batch, size_of(d))` float32 zeros."""

  def zero_state(x):
    if x.ndim != 3:
      raise ArgumentError(f'MakeZeroState: expected input of shape (batch, time, features), '
                          f'got shape {tuple(x.shape)}')
    return jnp.zeros((x.shape[0], size_of(x.shape[-1])), jnp.float32)

  return Fn('MakeZeroState', zero_state)


def MakeZeroState(depth_multiplier=1):  # pylint: disable=invalid-name
  """Trax's zero state: `(batch, time, d) -> (batch, depth_multiplier * d)`, float32.

  n_in = 1, n_out = 1. (`LSTM` and `GRU` size their zero state from the cell
  instead; see the module docstring.)
  """
  check_positive_int('MakeZeroState', 'depth_multiplier', depth_multiplier)
  return _zeros_layer(lambda d: depth_multiplier * d)


def _recurrent(name, cell, state_size):
  zero_state = _zeros_layer(lambda d: state_size)
  return Serial(
      Branch(None, zero_state),  # x -> (x, zero state)
      Scan(cell, axis=1),  # -> (outputs, final state)
      Select([0], n_in=2),  # -> outputs
      name=name,
      sublayers_to_print=[])


def LSTM(n_units):  # pylint: disable=invalid-name
  """An LSTM over a sequence, from a zero state: `(batch, time, d_in) -> (batch, time, n_units)`.

  n_in = 1, n_out = 1. Runs `LSTMCell(n_units)` (weights shared over time)
  along axis 1 and outputs h at every step; the final state is dropped.
  Named `LSTM_{n_units}`.
  """
  check_positive_int('LSTM', 'n_units', n_units)
  return _recurrent(f'LSTM_{n_units}', LSTMCell(n_units), 2 * n_units)


def GRU(n_units):  # pylint: disable=invalid-name
  """A GRU over a sequence, from a zero state: `(batch, time, d_in) -> (batch, time, n_units)`.

  n_in = 1, n_out = 1. Runs `GRUCell(n_units)` (weights shared over time)
  along axis 1 and outputs h at every step; the final state is dropped.
  Named `GRU_{n_units}`.
  """
  check_positive_int('GRU', 'n_units', n_units)
  return _recurrent(f'GRU_{n_units}', GRUCell(n_units), n_units)


__all__ = ['LSTMCell', 'GRUCell', 'LSTM', 'GRU', 'MakeZeroState']
