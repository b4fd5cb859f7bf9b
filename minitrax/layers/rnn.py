"""Recurrent layers: LSTM and GRU cells, and the layers that run them over time.

A cell maps one time step `(x_t, state) -> (output_t, new_state)` (n_in = 2,
n_out = 2). The sequence layers `LSTM` and `GRU` start from a zero state and
run their cell along axis 1 of a `(batch, time, features)` input with `Scan`,
keeping the outputs and dropping the final state:

    LSTM(n) = Serial(Branch(None, zero_state), Scan(LSTMCell(n), axis=1),
                     Select([0], n_in=2))

`GeneralGRUCell` and `ConvGRUCell` are GRU cells over the state alone
(`s -> s'`) built from combinators; `SRU` is the simple recurrent unit, whose
only recurrence is an elementwise `Scan`.

The equations, gate order, bias layout and initialisers are Trax's, so that
weights and behaviour carry over one to one. One difference: the zero state
is sized by the cell (`2 * n_units` for LSTM, `n_units` for GRU), where Trax
copies the input width, so the input width need not equal `n_units`.
"""

import jax
import jax.numpy as jnp

from minitrax.checks import check_mode, check_positive_int
from minitrax.errors import ArgumentError
from minitrax.layers.activation_fns import Sigmoid, Tanh
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import (Branch, Dup, Multiply, Parallel, Scan, Select, Serial,
                                         Split)
from minitrax.layers.combinators_more import Gate
from minitrax.layers.convolution import Conv
from minitrax.layers.core import Dense, Dropout
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

  Args:
    depth_multiplier: Positive int; the state's depth is this times the input's.
  """
  check_positive_int('MakeZeroState', 'depth_multiplier', depth_multiplier)
  return _zeros_layer(lambda d: depth_multiplier * d)


def _recurrent(name, cell, state_size, mode='train', return_state=False, initial_state=False):
  """`cell` scanned along axis 1 from a zero (or given) state; the final state dropped or kept."""
  start = [] if initial_state else [Branch(None, _zeros_layer(lambda d: state_size))]
  end = [] if return_state else [Select([0], n_in=2)]
  return Serial(start, Scan(cell, axis=1, mode=mode), end, name=name, sublayers_to_print=[])


def LSTM(n_units, mode='train', return_state=False, initial_state=False):  # pylint: disable=invalid-name
  """An LSTM over a sequence: `(batch, time, d_in) -> (batch, time, n_units)`.

  Runs `LSTMCell(n_units)` (weights shared over time) along axis 1 and
  outputs h at every step. By default n_in = n_out = 1: the state starts at
  zeros and the final state is dropped. `initial_state=True` takes the start
  state `(batch, 2 * n_units)` as a second input; `return_state=True` adds
  the final state as a second output. In `mode='predict'` the final state is
  kept and continues the next call (`Scan`'s predict mode). Named
  `LSTM_{n_units}`.

  Args:
    n_units: Positive int; the size of h and of c (the state holds both).
    mode: 'train', 'eval' or 'predict' (only 'predict' differs: see above).
    return_state: If true, also output the final state `(batch, 2 * n_units)`.
    initial_state: If true, take the start state as a second input instead
      of starting from zeros.
  """
  check_positive_int('LSTM', 'n_units', n_units)
  check_mode('LSTM', 'mode', mode)
  return _recurrent(f'LSTM_{n_units}', LSTMCell(n_units), 2 * n_units, mode, return_state,
                    initial_state)


def GRU(n_units, mode='train'):  # pylint: disable=invalid-name
  """A GRU over a sequence, from a zero state: `(batch, time, d_in) -> (batch, time, n_units)`.

  n_in = 1, n_out = 1. Runs `GRUCell(n_units)` (weights shared over time)
  along axis 1 and outputs h at every step; the final state is dropped (kept
  for the next call in `mode='predict'`). Named `GRU_{n_units}`.

  Args:
    n_units: Positive int; the size of h, the state and each step's output.
    mode: 'train', 'eval' or 'predict' (only 'predict' differs: see above).
  """
  check_positive_int('GRU', 'n_units', n_units)
  check_mode('GRU', 'mode', mode)
  return _recurrent(f'GRU_{n_units}', GRUCell(n_units), n_units, mode)


def GeneralGRUCell(  # pylint: disable=invalid-name
    candidate_transform, memory_transform_fn=None, gate_nonlinearity=Sigmoid,
    candidate_nonlinearity=Tanh, dropout_rate_c=0.1, sigmoid_bias=0.5):
  r"""A GRU cell over its state alone, with transforms of your choice: `s -> s'`, n_in = n_out = 1.

  With `T` a new `candidate_transform()` at each of its three uses::

      u = gate(T_u(s) + sigmoid_bias)                 # update gate
      r = gate(T_r(s) + sigmoid_bias)                 # reset gate
      c = dropout(candidate(T_c(r * s)))              # candidate
      s' = u * m(s) + (1 - u) * c                     # m: memory_transform_fn() or identity

  Built as `Serial(Branch(memory, gate_block, candidate_block), Gate())`, the
  layout of Trax's weights. The dropout (rate `dropout_rate_c`, mode 'train')
  needs an rng.

  Args:
    candidate_transform: function making a layer `s -> (same shape)`, e.g. a Conv.
    memory_transform_fn: function making a layer applied to the memory; default none.
    gate_nonlinearity: function making the gates' activation layer.
    candidate_nonlinearity: function making the candidate's activation layer.
    dropout_rate_c: dropout rate on the candidate.
    sigmoid_bias: constant added before the gate activations.
  """
  add_bias = lambda: Fn('AddSigmoidBias', lambda x: x + sigmoid_bias)  # noqa: E731
  gate_block = [candidate_transform(), add_bias(), gate_nonlinearity()]
  reset_block = [candidate_transform(), add_bias(), gate_nonlinearity()]
  candidate_block = [
      Dup(), reset_block,
      Multiply(),
      candidate_transform(),
      candidate_nonlinearity(),
      Dropout(rate=dropout_rate_c)
  ]
  memory = memory_transform_fn() if memory_transform_fn else []
  return Serial(Branch(memory, gate_block, candidate_block), Gate())


def ConvGRUCell(n_units, kernel_size=(3, 3)):  # pylint: disable=invalid-name
  """A convolutional GRU cell (arXiv:1511.06432): `(batch, h, w, c) -> (batch, h, w, n_units)`.

  `GeneralGRUCell` with `Conv(n_units, kernel_size, padding='SAME')` as the
  transform (so the state needs `c == n_units`), sigmoid gates, a tanh
  candidate and dropout 0.1 on the candidate. n_in = n_out = 1. Weights: three
  `(kernel, bias)` pairs, in the places of `GeneralGRUCell`'s layout.

  Args:
    n_units: Positive int; the convolutions' output channels (= the state's).
    kernel_size: The convolutions' window over (h, w), a pair of ints.
  """
  check_positive_int('ConvGRUCell', 'n_units', n_units)
  return GeneralGRUCell(lambda: Conv(n_units, kernel_size, padding='SAME'))


def InnerSRUCell():  # pylint: disable=invalid-name
  """One SRU step: `(x * (1 - f), f, c) -> (c', c')` with `c' = f * c + x * (1 - f)`."""
  return Fn('InnerSRUCell', lambda xf, f, c: (f * c + xf,) * 2, n_out=2)


def ScanSRUCell(mode, monkey_patched_mask=None):  # pylint: disable=invalid-name
  """`InnerSRUCell` scanned over axis 1: `(x (1 - f), f, c0) -> (c, c_last)`; n_in = 3, n_out = 2.

  The recurrent half of `SRU` (Trax 1.4's name). Trax's `monkey_patched_mask`
  (a Terraformer predict-mode hook) is not supported.

  Args:
    mode: 'train', 'eval' or 'predict'; in 'predict' the last `c` carries
      over to the next call (`Scan`'s predict mode).
    monkey_patched_mask: Must be None; anything else raises `ArgumentError`.
  """
  check_mode('ScanSRUCell', 'mode', mode)
  if monkey_patched_mask is not None:
    raise ArgumentError('ScanSRUCell: monkey_patched_mask (Trax\'s Terraformer hook) is not '
                        'supported; pass None')
  return Scan(InnerSRUCell(), axis=1, mode=mode)


def _sru(n_units, activation, mode, input_scale):
  check_positive_int('SRU', 'n_units', n_units)
  check_mode('SRU', 'mode', mode)
  return Serial(
      Branch(Dense(3 * n_units), None),  # -> (r f y, x)
      Split(n_items=3),  # -> (r, f, y, x)
      Parallel(Sigmoid(), Sigmoid()),
      Fn('', lambda r, f, y: (y * (1.0 - f), f, r), n_out=3),  # -> (y (1 - f), f, r, x)
      Parallel(None, None, Branch(MakeZeroState(), None)),  # -> (y (1 - f), f, c0, r, x)
      ScanSRUCell(mode),  # -> (c, c_last, r, x)
      Select([0], n_in=2),  # -> (c, r, x)
      activation if activation is not None else [],
      Fn('FinalSRUGate', lambda c, r, x: c * r + x * (1 - r) * input_scale),
      name=f'SRU_{n_units}',
      sublayers_to_print=[])


def SRU(n_units, activation=None, mode='train'):  # pylint: disable=invalid-name
  r"""Simple recurrent unit (arXiv:1709.02755) over axis 1: `(batch, time, d) -> (batch, time, d)`.

  n_in = n_out = 1; the input depth must equal `n_units` (the highway term
  adds `x`). With one Dense of `x` split in three::

      r, f = sigmoid(W_r x + b_r), sigmoid(W_f x + b_f);  y = W x + b
      c_t = f_t * c_{t-1} + (1 - f_t) * y_t              # c_0 = 0, scanned over time
      h_t = r_t * activation(c_t) + (1 - r_t) * x_t

  Trax 1.2's form; `SRU14` is Trax 1.4's, whose highway term is scaled by
  sqrt(3). Weights: the Dense's `(w: (d, 3 n_units), b)` inside Trax's
  layout. `mode='predict'` continues from the last call's `c`.

  Args:
    n_units: depth of the state and the output.
    activation: layer applied to `c` before the output gate; default none.
    mode: 'train', 'eval' or 'predict'.
  """
  return _sru(n_units, activation, mode, 1.0)


def SRU14(n_units, activation=None, mode='train'):  # pylint: disable=invalid-name
  """Trax 1.4's `SRU`: as `SRU`, with `h_t = r_t * act(c_t) + (1 - r_t) * x_t * sqrt(3)`.

  Args:
    n_units, activation, mode: As for `SRU`.
  """
  return _sru(n_units, activation, mode, 3**0.5)


__all__ = [
    'LSTMCell', 'GRUCell', 'LSTM', 'GRU', 'MakeZeroState', 'GeneralGRUCell', 'ConvGRUCell',
    'InnerSRUCell', 'ScanSRUCell', 'SRU', 'SRU14'
]
