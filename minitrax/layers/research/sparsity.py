"""Sparse stand-ins for `Dense` and the causal attentions built on them (Terraformer).

After Trax 1.4's `trax/layers/research/sparsity.py` (Jaszczur et al., 2021,
"Sparse is Enough in Scaling Transformers"). Each layer is built exactly as
Trax builds it, so the weights come in Trax's order and shapes:

* `FactoredDense(n_modules, d_in, d_out)` (the 'mult' sparsity): the input is
  gated by `n_modules` learned vectors and each gated copy projected by one
  shared matrix to `d_out / n_modules` features: `y[..., n, m] = sum_d x[d]
  g[n, d] P[d, m]` (+ bias). Weights: gating (n_modules, d_in) ~ N(0, 0.5²),
  projection (d_in, d_out / n_modules) Glorot, bias (d_out,).
* `MultiplicativeModularSparseDense(sparsity, d)`: the same gating followed
  by a per-module matrix.
* `LocallyConnectedDense(n_modules, n_units)`: the feature axis cut into
  `n_modules` modules, each mapped by its own weights from its `kernel_size`
  neighbouring modules (a `LocallyConnected1d` over modules, wrapping).
* `LocallyConvDense(n_modules, n_units, mode)`: a convolution over (length,
  modules) with `length_kernel_size` causal taps along the sequence and
  `kernel_size` taps across modules; in predict mode it remembers the last
  `length_kernel_size - 1` positions.
* `LowRankDense`, `EinsumDense`, `SparseDenseWithOptions` (a choice by name).

The causal attentions whose projections use them are in `sparse_attention.py`.
"""

import functools

import jax.numpy as jnp

from minitrax.checks import check_int, check_mode
from minitrax.errors import ArgumentError
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Serial
from minitrax.layers.control import Cond
from minitrax.layers.convolution import Conv
from minitrax.layers.core import Dense
from minitrax.layers.core_more import RandomUniform, Weights
from minitrax.layers.initializers import GlorotUniformInitializer, RandomNormalInitializer
from minitrax.layers.locally_connected import LocallyConnected1d

# ------------------------------------------------------------------ reshapes


def SplitLastAxis(num_splits):  # pylint: disable=invalid-name
  """(..., a) -> (..., num_splits, a / num_splits).

  Args:
    num_splits: Number of equal parts; must divide the last axis.
  """
  return Fn(f'SplitLastAxis_{num_splits}',
            lambda x: jnp.reshape(x,
                                  tuple(x.shape)[:-1] + (num_splits, -1)))


def MergeLastTwoAxes():  # pylint: disable=invalid-name
  """(..., a, b) -> (..., a * b)."""
  return Fn('MergeLastTwoAxes', lambda x: jnp.reshape(x, tuple(x.shape)[:-2] + (-1,)))


# ------------------------------------------------------------------ dense stand-ins


def _add_bias():
  """(bias (d,), x (..., d)) -> x + bias: Trax's `Add` after a bias, broadcast explicitly."""
  return Fn('Add', lambda bias, x: x + jnp.broadcast_to(bias, x.shape).astype(x.dtype))


def LocallyConnectedDense(
    n_modules,
    n_units,
    kernel_size=1,  # pylint: disable=invalid-name
    kernel_initializer=GlorotUniformInitializer(),
    bias_initializer=RandomNormalInitializer(1e-6),
    use_bias=True):
  """(..., d) -> (..., n_modules * n_units): each module from `kernel_size` neighbouring modules.

  `Dense(n_units)` when `n_modules == 1`; else `SplitLastAxis(n_modules)`,
  `LocallyConnected1d(n_units, kernel_size, padding='WRAP')`,
  `MergeLastTwoAxes()`. About `n_modules / kernel_size` times fewer weights
  than a `Dense`.

  Args:
    n_modules: modules the feature axis is cut into (it must divide d).
    n_units: output features per module.
    kernel_size: neighbouring modules (wrapping around) each output module reads.
    kernel_initializer, bias_initializer, use_bias: as for `Dense`.
  """
  if n_modules == 1:
    return Dense(n_units, kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                 use_bias=use_bias)
  return Serial(
      SplitLastAxis(n_modules),
      LocallyConnected1d(n_units, kernel_size, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, use_bias=use_bias, padding='WRAP'),
      MergeLastTwoAxes())


class _RememberPad(Layer):
  """Pads axis 1 in front with `n_items_to_remember` zeros, or in predict mode the last inputs.

  n_in = n_out = 1: (batch, n, ...) -> (batch, n + n_items, ...). Predict
  mode: state (the last `n_items` positions seen, zeros at first).
  """

  def __init__(self, n_items_to_remember, mode):
    super().__init__(name='_RememberPad')
    self._n = check_int('_RememberPad', 'n_items_to_remember', n_items_to_remember, 0)
    self._mode = mode

  def init_weights_and_state(self, input_signature, rng):
    del rng
    if self._mode != 'predict' or not self._n:
      return (), ()
    shape = (input_signature.shape[0], self._n) + tuple(input_signature.shape[2:])
    return (), jnp.zeros(shape, jnp.float32)

  def forward_with_state(self, x, weights, state, rng):
    if not self._n:
      return x, state
    if self._mode == 'predict':
      x = jnp.concatenate([state.astype(x.dtype), x], axis=1)
      return x, x[:, -self._n:].astype(jnp.float32)
    pad = [(0, 0)] * x.ndim
    pad[1] = (self._n, 0)
    return jnp.pad(x, pad), state


def LocallyConvDense(n_modules, n_units, mode, kernel_size=1, length_kernel_size=1):  # pylint: disable=invalid-name
  """(batch, n, d) -> (batch, n, n_modules * n_units): a convolution over (length, modules).

  `Dense(n_units)` when `n_modules == 1`. Else the features are split into
  `n_modules` modules, the module axis is zero-padded by `(kernel_size - 1) /
  2` on both sides, the length axis by `length_kernel_size - 1` in front
  (remembered positions in predict mode), and a `Conv(n_units,
  (length_kernel_size, kernel_size))` runs over (length, modules): output
  position t sees positions t - length_kernel_size + 1 .. t.

  Args:
    n_modules: modules the feature axis is cut into (it must divide d).
    n_units: output features per module.
    mode: 'train', 'eval' or 'predict' (predict remembers past positions).
    kernel_size: odd number of neighbouring modules each output reads.
    length_kernel_size: causal taps along the sequence.
  """
  check_mode('LocallyConvDense', 'mode', mode)
  if n_modules == 1:
    return Dense(n_units)
  if kernel_size % 2 != 1:
    raise ArgumentError(f'LocallyConvDense: kernel_size must be odd, got {kernel_size}')
  half = (kernel_size - 1) // 2
  pad_widths = [[0, 0], [0, 0], [half, half], [0, 0]]
  return Serial(SplitLastAxis(n_modules), Fn('Pad', lambda x: jnp.pad(x, pad_widths)),
                _RememberPad(length_kernel_size - 1, mode=mode),
                Conv(n_units, kernel_size=(length_kernel_size, kernel_size)), MergeLastTwoAxes())


def LowRankDense(n_units, d_lowrank):  # pylint: disable=invalid-name
  """`Dense(d_lowrank)` then `Dense(n_units)`: (..., d) -> (..., n_units).

  Args:
    n_units, d_lowrank: The output width, and the bottleneck width between the two Denses.
  """
  return Serial(Dense(d_lowrank), Dense(n_units))


def EinsumDense(d_input, d_output, use_bias):  # pylint: disable=invalid-name
  """A `Dense` as einsum: kernel (d_output, d_input), then an optional bias (d_output,).

  Args:
    d_input, d_output, use_bias: Input width, output width, and whether to add the bias.
  """
  layers = [
      Weights(GlorotUniformInitializer(), [d_output, d_input]),
      Fn('EinsumDense', lambda kernel, embeds: jnp.einsum('xd,...d->...x', kernel, embeds))
  ]
  if use_bias:
    layers += [Weights(RandomNormalInitializer(1e-6), [d_output]), _add_bias()]
  return Serial(layers)


def _gate_and_project():
  # Stack order: the projection (pushed last) on top, then the gating, then x.
  return Fn('_GateAndProject',
            lambda projection, gating, x: jnp.einsum('...d,nd,dm->...nm', x, gating, projection))


def FactoredDense(n_modules, d_in, d_out, use_bias=True, use_bfloat16=False):  # pylint: disable=invalid-name
  """(..., d_in) -> (..., d_out) with about 1/n_modules the weights of a `Dense` (module doc).

  Args:
    n_modules: gating vectors; must divide `d_out`.
    d_in, d_out: input and output widths.
    use_bias: add a learned bias (d_out,).
    use_bfloat16: keep the weights in bfloat16.
  """
  if d_out % n_modules:
    raise ArgumentError(f'FactoredDense: d_out={d_out} must be a multiple of n_modules='
                        f'{n_modules}')
  d_module = d_out // n_modules
  layers = [
      Weights(RandomNormalInitializer(0.5), [n_modules, d_in], use_bfloat16=use_bfloat16),
      Weights(GlorotUniformInitializer(), [d_in, d_module], use_bfloat16=use_bfloat16),
      _gate_and_project(),
      MergeLastTwoAxes()
  ]
  if use_bias:
    layers += [
        Weights(RandomNormalInitializer(1e-6), [d_out], use_bfloat16=use_bfloat16),
        _add_bias()
    ]
  return Serial(layers)


def MultiplicativeModularSparseDense(sparsity, d_feature):  # pylint: disable=invalid-name
  """(..., d) -> (..., d): per-module gating, a shared matrix, then a per-module matrix.

  Weights: gating (sparsity, d) ~ N(0, 0.5²), shared kernel (d, d / sparsity),
  per-module kernels (sparsity, d / sparsity, d / sparsity), bias (d,).

  Args:
    sparsity: modules; must divide `d_feature`.
    d_feature: input and output width d.
  """
  if d_feature % sparsity:
    raise ArgumentError(f'MultiplicativeModularSparseDense: d_feature={d_feature} must be a '
                        f'multiple of sparsity={sparsity}')
  d_module = d_feature // sparsity
  return Serial(
      Weights(RandomNormalInitializer(0.5), [sparsity, d_feature]),
      Weights(GlorotUniformInitializer(), [d_feature, d_module]),
      Weights(functools.partial(GlorotUniformInitializer(), nonreceptive_dims=[0]),
              [sparsity, d_module, d_module]),
      Fn(
          'SparseDenseEinsum', lambda kmod, kmult, multiplier, embeds: jnp.einsum(
              'hxo,dx,hd,...d->...ho', kmod, kmult, multiplier, embeds)), MergeLastTwoAxes(),
      Weights(RandomNormalInitializer(1e-6), [d_feature]), _add_bias())


def RandomLayer(layer_a, layer_b, prob_a):  # pylint: disable=invalid-name
  """Runs `layer_a` with probability `prob_a` (one draw per call from its rng), else `layer_b`.

  Args:
    layer_a, layer_b: the two layers, of equal arities.
    prob_a: probability in [0, 1] of running `layer_a`.
  """
  condition = Serial(RandomUniform(), Fn('SmallerThan', lambda x: x < prob_a))
  return Cond(condition, layer_a, layer_b)


_SPARSITY_TYPES = (None, 'None', 'mult', 'lowrank', 'einsum', 'local', 'local3')


def SparseDenseWithOptions(
    n_units,
    d_input=None,
    sparsity_type=None,
    sparsity=0,  # pylint: disable=invalid-name
    d_lowrank=None,
    prob_sparse=None,
    mode=None,
    use_bias=True,
    use_bfloat16=False):
  """A `Dense(n_units)` stand-in chosen by `sparsity_type` (Terraformer's loss layer).

  `None`/'None' or `sparsity=0`: `Dense`; 'mult': `FactoredDense(sparsity,
  d_input, n_units)`; 'lowrank': `LowRankDense(n_units, d_lowrank)`;
  'einsum': `EinsumDense`; 'local' / 'local3': `LocallyConnectedDense(sparsity,
  n_units / sparsity)` with kernel 1 / 3. With `prob_sparse`, training runs
  the sparse layer with that probability and a `Dense` otherwise (`RandomLayer`);
  other modes always run the sparse one.

  Args:
    n_units: output width.
    d_input: input width (needed by 'mult' and 'einsum').
    sparsity_type: None, 'None', 'mult', 'lowrank', 'einsum', 'local' or 'local3'.
    sparsity: modules of the sparse layer; 0 means a plain `Dense`.
    d_lowrank: bottleneck width of 'lowrank'.
    prob_sparse: None, or the probability of the sparse layer in training.
    mode: the model's mode (only 'train' draws between the two layers).
    use_bias, use_bfloat16: as for `Dense` / `FactoredDense`.
  """
  if sparsity_type not in _SPARSITY_TYPES:
    raise ArgumentError(f'SparseDenseWithOptions: sparsity_type must be one of '
                        f'{_SPARSITY_TYPES}, got {sparsity_type!r}')
  if prob_sparse is not None:
    prob_sparse = 1.0 if mode is not None and mode != 'train' else prob_sparse
    sparse = SparseDenseWithOptions(n_units, d_input, sparsity_type, sparsity, d_lowrank,
                                    use_bias=use_bias, use_bfloat16=use_bfloat16)
    return RandomLayer(sparse, Dense(n_units, use_bias=use_bias), prob_sparse)
  if sparsity_type in (None, 'None') or sparsity == 0:
    return Dense(n_units, use_bias=use_bias)
  if sparsity_type == 'mult':
    return FactoredDense(sparsity, d_input, n_units, use_bias=use_bias, use_bfloat16=use_bfloat16)
  unsupported = [
      what for what, bad in (('use_bfloat16=True', use_bfloat16),
                             ('use_bias=False', not use_bias and sparsity_type != 'einsum')) if bad
  ]
  if unsupported:
    raise ArgumentError(f'SparseDenseWithOptions: sparsity_type={sparsity_type!r} does not '
                        f'support {" and ".join(unsupported)} (neither does Trax)')
  if sparsity_type == 'lowrank':
    return LowRankDense(n_units, d_lowrank)
  if sparsity_type == 'einsum':
    return EinsumDense(d_input, n_units, use_bias=use_bias)
  if n_units % sparsity:
    raise ArgumentError(f'SparseDenseWithOptions: n_units={n_units} must be a multiple of '
                        f'sparsity={sparsity}')
  return LocallyConnectedDense(sparsity, n_units // sparsity,
                               kernel_size=3 if sparsity_type == 'local3' else 1)


__all__ = [
    'SplitLastAxis', 'MergeLastTwoAxes', 'LocallyConnectedDense', 'LocallyConvDense',
    'LowRankDense', 'EinsumDense', 'FactoredDense', 'MultiplicativeModularSparseDense',
    'RandomLayer', 'SparseDenseWithOptions'
]
