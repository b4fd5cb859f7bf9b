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
* Causal attentions whose Q/K/V projections use them: `ModularCausalAttention`,
  `ConvCausalAttention`, `LowRankCausalAttention`, `MultiplicativeCausalAttention`,
  `MultiplicativeModularCausalAttention`, `MultiplicativeConvCausalAttention`.

All attentions map `(batch, n, d_feature) -> (batch, n, d_feature)` (n_in = n_out = 1) with a
`DotProductCausalAttention` core whose predict-mode cache holds `max_inference_length` positions.
"""

import functools

import jax.numpy as jnp

from minitrax.checks import check_int, check_mode
from minitrax.errors import ArgumentError
from minitrax.layers.attention import DotProductCausalAttention
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Concatenate, Parallel, Select, Serial
from minitrax.layers.control import Cond
from minitrax.layers.convolution import Conv
from minitrax.layers.core import Dense
from minitrax.layers.core_more import RandomUniform, Weights
from minitrax.layers.heads import ConfigurableAttention, MergeHeads, SplitIntoHeads
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
  position t sees positions t - length_kernel_size + 1 .. t. `kernel_size`
  must be odd.
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
  """(..., d_in) -> (..., d_out) with about 1/n_modules the weights of a `Dense` (module doc)."""
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
  """Runs `layer_a` with probability `prob_a` (one draw per call from its rng), else `layer_b`."""
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


# ------------------------------------------------------------------ causal attentions


def _core(dropout, max_inference_length, mode):
  return DotProductCausalAttention(dropout=dropout, max_len=max_inference_length, mode=mode)


def _four(make):
  return make(), make(), make(), make()


def _modules(who, d_feature, n_modules):
  if d_feature % n_modules:
    raise ArgumentError(f'{who}: d_feature={d_feature} must be a multiple of the number of '
                        f'modules {n_modules} (sparsity, or n_heads when it is None)')
  return d_feature // n_modules


def ModularCausalAttention(
    d_feature,
    n_heads=1,
    sparsity=None,
    dropout=0.0,  # pylint: disable=invalid-name
    max_inference_length=2048,
    kernel_size=1,
    mode='train'):
  """Causal attention with `LocallyConnectedDense` Q/K/V/output projections (`sparsity` modules)."""
  n_modules = n_heads if sparsity is None else sparsity
  d_module = _modules('ModularCausalAttention', d_feature, n_modules)
  layers = _four(lambda: LocallyConnectedDense(n_modules, d_module, kernel_size=kernel_size))
  return ConfigurableAttention(*layers, n_heads=n_heads,
                               qkv_attention_layer=_core(dropout, max_inference_length, mode))


def ConvCausalAttention(
    d_feature,
    n_heads=1,
    sparsity=None,
    dropout=0.0,  # pylint: disable=invalid-name
    max_inference_length=2048,
    kernel_size=1,
    mode='train'):
  """Causal attention with `LocallyConvDense` Q/K/V/output projections (`sparsity` modules)."""
  n_modules = n_heads if sparsity is None else sparsity
  d_module = _modules('ConvCausalAttention', d_feature, n_modules)
  layers = _four(lambda: LocallyConvDense(n_modules, d_module, mode=mode, kernel_size=kernel_size))
  return ConfigurableAttention(*layers, n_heads=n_heads,
                               qkv_attention_layer=_core(dropout, max_inference_length, mode))


def LowRankCausalAttention(
    d_feature,
    n_heads=1,
    dropout=0.0,
    max_inference_length=2048,  # pylint: disable=invalid-name
    lowrank=64,
    mode='train'):
  """Causal attention with `LowRankDense(d_feature, lowrank)` Q/K/V/output projections."""
  layers = _four(lambda: LowRankDense(d_feature, lowrank))
  return ConfigurableAttention(*layers, n_heads=n_heads,
                               qkv_attention_layer=_core(dropout, max_inference_length, mode))


def MultiplicativeCausalAttention(
    d_feature,
    n_heads=1,
    sparsity=None,
    dropout=0.0,  # pylint: disable=invalid-name
    max_inference_length=2048,
    mode='train'):
  """Causal attention with `FactoredDense` Q/K/V/output projections (`sparsity` modules)."""
  sparsity = n_heads if sparsity is None else sparsity
  layers = _four(lambda: FactoredDense(sparsity, d_feature, d_feature))
  return ConfigurableAttention(*layers, n_heads=n_heads,
                               qkv_attention_layer=_core(dropout, max_inference_length, mode))


def MultiplicativeModularCausalAttention(
    d_feature,
    n_heads=1,
    sparsity=None,
    dropout=0.0,  # pylint: disable=invalid-name
    max_inference_length=2048,
    mode='train'):
  """Causal attention with `MultiplicativeModularSparseDense` Q/K/V/output projections."""
  sparsity = n_heads if sparsity is None else sparsity
  layers = _four(lambda: MultiplicativeModularSparseDense(sparsity, d_feature))
  return ConfigurableAttention(*layers, n_heads=n_heads,
                               qkv_attention_layer=_core(dropout, max_inference_length, mode))


def _v_concat(v_concat_type, sparsity, d_module, d_feature):
  """Layers on (multiplicative output, input) giving what V's convolution reads."""
  if v_concat_type == 'original':
    return [Concatenate()]
  if v_concat_type == 'fixed':

    def modules(x):
      return jnp.reshape(x, (x.shape[0], x.shape[1], sparsity, d_module))

    return [
        Parallel(Fn('Reshape1', modules), Fn('Reshape2', modules)),
        Concatenate(),
        Fn('Reshape3', lambda x: jnp.reshape(x, (x.shape[0], x.shape[1], 2 * d_feature)))
    ]
  return [Select([0], n_in=2)]


def MultiplicativeConvCausalAttention(  # pylint: disable=invalid-name
    d_feature, n_heads=1, sparsity=None, length_kernel_size=3, dropout=0.0, force_no_dropout=False,
    max_inference_length=2048, share_qk=False, output_layer_type='none', v_concat_type='none',
    mode='train'):
  """Terraformer's attention: one `FactoredDense`, then convolutions give Q, K and V.

  `(batch, n, d_feature) -> (batch, n, d_feature)`, n_in = n_out = 1. A shared
  `FactoredDense(sparsity, d, d)`; Q and K are `LocallyConvDense(sparsity, d /
  sparsity, kernel_size=3, length_kernel_size)` of it (one shared
  convolution with `share_qk`), V a `kernel_size=1` convolution of it
  (`v_concat_type='none'`), of it concatenated with the input ('original'),
  or of the two concatenated module by module ('fixed'). After the causal
  core and merging the heads, `output_layer_type` adds 'none', 'mult' (a
  `FactoredDense`), 'conv' (a `LocallyConvDense`) or 'multconv' (both).
  `force_no_dropout` sets `dropout` to 0.
  """
  who = 'MultiplicativeConvCausalAttention'
  if output_layer_type not in ('none', 'mult', 'conv', 'multconv'):
    raise ArgumentError(f"{who}: output_layer_type must be 'none', 'mult', 'conv' or "
                        f"'multconv', got {output_layer_type!r}")
  if v_concat_type not in ('original', 'fixed', 'none'):
    raise ArgumentError(f"{who}: v_concat_type must be 'original', 'fixed' or 'none', got "
                        f"{v_concat_type!r}")
  dropout = 0.0 if force_no_dropout else dropout
  sparsity = n_heads if sparsity is None else sparsity
  d_module = _modules(who, d_feature, sparsity)

  def conv(kernel_size):
    return LocallyConvDense(sparsity, d_module, mode=mode, kernel_size=kernel_size,
                            length_kernel_size=length_kernel_size)

  output_layers = []
  if 'mult' in output_layer_type:
    output_layers.append(FactoredDense(sparsity, d_feature, d_feature))
  if 'conv' in output_layer_type:
    output_layers.append(conv(3))
  concat = _v_concat(v_concat_type, sparsity, d_module, d_feature)
  core = _core(dropout, max_inference_length, mode)
  head = [Select([0, 0]), FactoredDense(sparsity, d_feature, d_feature)]
  if share_qk:
    qkv = [
        Select([0, 0]),
        conv(3),
        SplitIntoHeads(n_heads),
        Select([0, 0]),
        Parallel([], [], [concat, conv(1), SplitIntoHeads(n_heads)])
    ]
  else:
    qkv = [
        Select([0, 0, 0]),
        Parallel([conv(3), SplitIntoHeads(n_heads)], [conv(3), SplitIntoHeads(n_heads)],
                 [concat, conv(1), SplitIntoHeads(n_heads)])
    ]
  return Serial(head, qkv, core, MergeHeads(n_heads), output_layers, name=who)


__all__ = [
    'SplitLastAxis', 'MergeLastTwoAxes', 'LocallyConnectedDense', 'LocallyConvDense',
    'LowRankDense', 'EinsumDense', 'FactoredDense', 'MultiplicativeModularSparseDense',
    'RandomLayer', 'SparseDenseWithOptions', 'ModularCausalAttention', 'ConvCausalAttention',
    'LowRankCausalAttention', 'MultiplicativeCausalAttention',
    'MultiplicativeModularCausalAttention', 'MultiplicativeConvCausalAttention'
]
