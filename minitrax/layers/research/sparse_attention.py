"""Terraformer's causal attentions on sparse projections (Trax 1.4's research sparsity layers).

After Trax 1.4's `trax/layers/research/sparsity.py` (Jaszczur et al., 2021,
"Sparse is Enough in Scaling Transformers"): causal attentions whose query,
key, value and output projections are the sparse stand-ins for `Dense` of
`sparsity.py`, built as Trax builds them (weights in Trax's order and shapes).
All map `(batch, n, d_feature) -> (batch, n, d_feature)` (n_in = n_out = 1)
with a `DotProductCausalAttention` core whose predict-mode cache holds
`max_inference_length` positions.

Common arguments:

* `d_feature`: the model width d; `n_heads` must divide it;
* `n_heads`: attention heads;
* `sparsity`: modules of the sparse projections (default `n_heads`); must
  divide d;
* `dropout`: dropout rate on the attention weights (training only);
* `max_inference_length`: predict-mode cache length;
* `mode`: 'train', 'eval' or 'predict'.
"""

import jax.numpy as jnp

from minitrax.errors import ArgumentError
from minitrax.layers.attention import DotProductCausalAttention
from minitrax.layers.base import Fn
from minitrax.layers.combinators import Concatenate, Parallel, Select, Serial
from minitrax.layers.heads import ConfigurableAttention, MergeHeads, SplitIntoHeads
from minitrax.layers.research.sparsity import (FactoredDense, LocallyConnectedDense,
                                               LocallyConvDense, LowRankDense,
                                               MultiplicativeModularSparseDense)


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
  """Causal attention with `LocallyConnectedDense` Q/K/V/output projections (`sparsity` modules).

  Args:
    d_feature, n_heads, sparsity, dropout, max_inference_length, mode: see the
      module docstring.
    kernel_size: neighbouring modules each projection's output module reads.
  """
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
  """Causal attention with `LocallyConvDense` Q/K/V/output projections (`sparsity` modules).

  Args:
    d_feature, n_heads, sparsity, dropout, max_inference_length, mode: see the
      module docstring.
    kernel_size: odd number of neighbouring modules each convolution reads.
  """
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
  """Causal attention with `LowRankDense(d_feature, lowrank)` Q/K/V/output projections.

  Args:
    d_feature, n_heads, dropout, max_inference_length, mode: see the module
      docstring.
    lowrank: the bottleneck width of each projection.
  """
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
  """Causal attention with `FactoredDense` Q/K/V/output projections (`sparsity` modules).

  Args:
    d_feature, n_heads, sparsity, dropout, max_inference_length, mode: see the
      module docstring.
  """
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
  """Causal attention with `MultiplicativeModularSparseDense` Q/K/V/output projections.

  Args:
    d_feature, n_heads, sparsity, dropout, max_inference_length, mode: see the
      module docstring.
  """
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

  Args:
    d_feature, n_heads, sparsity, dropout, max_inference_length, mode: see the
      module docstring.
    length_kernel_size: causal taps of the convolutions along the sequence.
    force_no_dropout: use no dropout whatever `dropout` says.
    share_qk: one convolution gives both queries and keys.
    output_layer_type: 'none', 'mult', 'conv' or 'multconv' (see above).
    v_concat_type: 'none', 'original' or 'fixed' (see above).
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
    'ModularCausalAttention', 'ConvCausalAttention', 'LowRankCausalAttention',
    'MultiplicativeCausalAttention', 'MultiplicativeModularCausalAttention',
    'MultiplicativeConvCausalAttention'
]
