"""Terraformer's sparse layers against real Trax 1.4.1 numbers (weights and outputs) and NumPy."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError
from minitrax.layers.research import sparse_attention as spa
from minitrax.layers.research import sparsity as sp
from minitrax.layers.research.sparse_ff import SparseFF
from minitrax.shapes import ShapeDtype, signature

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import research_fixture as fx  # noqa: E402

X = fx.DATA['x']  # (2, 6, 8)
E = dict(mode='eval')

CASES = {  # the configurations of fixtures/make_research_141.py
    'FactoredDense': lambda: sp.FactoredDense(2, 8, 6),
    'MultiplicativeModularSparseDense': lambda: sp.MultiplicativeModularSparseDense(2, 8),
    'LocallyConnectedDense': lambda: sp.LocallyConnectedDense(4, 3, kernel_size=3),
    'LocallyConvDense': lambda: sp.LocallyConvDense(4, 3, 'eval', kernel_size=3,
                                                    length_kernel_size=3),
    'ModularCausalAttention': lambda: spa.ModularCausalAttention(8, n_heads=2, kernel_size=3, **E),
    'ConvCausalAttention': lambda: spa.ConvCausalAttention(8, n_heads=2, sparsity=4, kernel_size=3,
                                                          **E),
    'LowRankCausalAttention': lambda: spa.LowRankCausalAttention(8, n_heads=2, lowrank=3, **E),
    'MultiplicativeCausalAttention': lambda: spa.MultiplicativeCausalAttention(8, n_heads=2, **E),
    'MultiplicativeModularCausalAttention':
        lambda: spa.MultiplicativeModularCausalAttention(8, n_heads=2, sparsity=4, **E),
    'MultiplicativeConvCausalAttention':
        lambda: spa.MultiplicativeConvCausalAttention(8, n_heads=2, sparsity=4, **E),
    'MultiplicativeConvCausalAttention_shared':
        lambda: spa.MultiplicativeConvCausalAttention(8, n_heads=2, share_qk=True, v_concat_type=
                                                     'fixed', output_layer_type='multconv', **E),
    'MultiplicativeConvCausalAttention_original':
        lambda: spa.MultiplicativeConvCausalAttention(8, n_heads=4, sparsity=2, v_concat_type=
                                                     'original', output_layer_type='conv', **E),
    'SparseDense_einsum': lambda: sp.SparseDenseWithOptions(5, d_input=8, sparsity_type='einsum',
                                                            sparsity=2),
    'SparseDense_lowrank': lambda: sp.SparseDenseWithOptions(5, d_input=8, sparsity_type=
                                                             'lowrank', sparsity=2, d_lowrank=3),
    'SparseFF': lambda: SparseFF(16, n_elements_in_block=4, d_lowrank=3, **E),
    'SparseFF_mult': lambda: SparseFF(16, n_elements_in_block=4, d_lowrank=3,
                                      multiply_by_controller_output=True, **E),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_weights_and_outputs_are_those_of_trax_1_4(name):
  layer = CASES[name]()
  y, want = fx.output_with_trax_weights(layer, name, X)
  np.testing.assert_allclose(y, want, atol=5e-6)  # printed by Trax 1.4.1
  assert layer.output_signature(ShapeDtype(X.shape)) == ShapeDtype(y.shape, y.dtype)


def test_factored_dense_matches_numpy():
  layer = sp.FactoredDense(2, 8, 6)
  (gating, projection, _, _, bias, _), _ = layer.init(ShapeDtype(X.shape))
  g, p, b = (np.asarray(a, np.float64) for a in (gating, projection, bias))
  want = np.einsum('bnd,md,dk->bnmk', X, g, p).reshape((2, 6, 6)) + b
  np.testing.assert_allclose(layer(X), want, atol=1e-5)


def test_conv_attention_predicts_one_position_at_a_time_as_in_eval_and_trax():
  name = 'MultiplicativeConvCausalAttention'
  evaluated = CASES[name]()
  weights, _ = fx.trax_weights(evaluated, name, X)
  want = np.asarray(evaluated(X, weights=weights))
  predictor = spa.MultiplicativeConvCausalAttention(8, n_heads=2, sparsity=4, mode='predict')
  predictor.init(ShapeDtype((2, 1, 8)))
  predictor.weights = weights
  got = np.concatenate([predictor(X[:, :2])] + [predictor(X[:, i:i + 1]) for i in range(2, 6)], 1)
  np.testing.assert_allclose(got, want, atol=5e-6)
  np.testing.assert_allclose(got, fx.DATA[name + '/predict'], atol=5e-6)  # Trax 1.4.1


def test_sparse_ff_picks_one_unit_per_block_and_trains():
  layer = SparseFF(16, n_elements_in_block=4, d_lowrank=3, **E)
  weights, _ = fx.trax_weights(layer, 'SparseFF', X)
  m1, m2, mb, w1, w2, b2 = (np.asarray(w, np.float64) for w in jax.tree.leaves(weights))
  x = X.reshape((-1, 8)).astype(np.float64)
  picks = np.argmax(np.einsum('bd,dl,lxy->bxy', x, m1, m2) + mb, axis=-1)
  onehot = np.eye(4)[picks]
  mid = np.maximum(np.einsum('bd,dxy->bxy', x, w1) * onehot, 0)
  want = (np.einsum('bxy,yxd->bd', mid, w2) + b2).reshape(X.shape)
  np.testing.assert_allclose(fx.DATA['SparseFF/y'], want, atol=5e-6)
  train = SparseFF(16, n_elements_in_block=4, d_lowrank=3, dropout_rate=0.1, ff_chunk_size=3)
  w, s = train.init(ShapeDtype(X.shape))
  grads = jax.grad(lambda w: jnp.sum(train.pure_fn(X, w, s, jax.random.key(0))[0]**2))(w)
  leaves = jax.tree.leaves(grads)
  assert len(leaves) == 6 and all(np.abs(np.asarray(g)).sum() > 0 for g in leaves)


def test_sparse_dense_with_options_picks_layers_by_name():
  assert sp.SparseDenseWithOptions(5).name == 'Dense_5'
  mult = sp.SparseDenseWithOptions(6, d_input=8, sparsity_type='mult', sparsity=2)
  assert [w.shape for w in jax.tree.leaves(mult.init(ShapeDtype(X.shape))[0])] == [(2, 8), (8, 3),
                                                                                   (6,)]
  mixed = sp.SparseDenseWithOptions(6, d_input=8, sparsity_type='mult', sparsity=2, prob_sparse=0.5,
                                    mode='train')
  w, s = mixed.init(ShapeDtype(X.shape))
  outs = {
      tuple(np.round(np.asarray(mixed.pure_fn(X, w, s, jax.random.key(i))[0][0, 0]), 4))
      for i in range(12)
  }
  assert len(outs) == 2  # the sparse layer or the Dense, by a coin per call
  local = sp.SparseDenseWithOptions(6, sparsity_type='local3', sparsity=2)
  assert local(X, weights=local.init(ShapeDtype(X.shape))[0]).shape == (2, 6, 6)


@pytest.mark.parametrize('make, message', [
    (lambda: sp.FactoredDense(4, 8, 6), 'd_out=6 must be a multiple of n_modules=4'),
    (lambda: sp.LocallyConvDense(2, 3, 'eval', kernel_size=2), 'kernel_size must be odd'),
    (lambda: sp.SparseDenseWithOptions(5, sparsity_type='blocks', sparsity=2),
     "sparsity_type must be one of"),
    (lambda: sp.SparseDenseWithOptions(5, sparsity_type='lowrank', sparsity=2, use_bias=False),
     "sparsity_type='lowrank' does not support use_bias=False"),
    (lambda: spa.MultiplicativeConvCausalAttention(8, output_layer_type='dense'),
     "output_layer_type must be 'none', 'mult', 'conv' or 'multconv'"),
    (lambda: spa.ModularCausalAttention(6, n_heads=4), 'd_feature=6 must be a multiple'),
    (lambda: SparseFF(10, n_elements_in_block=4), 'd_ff=10 must be a multiple of '
     'n_elements_in_block=4'),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ArgumentError, match=message):
    make()


def test_random_layer_needs_an_rng_per_call():
  layer = sp.RandomLayer(sp.LowRankDense(3, 2), sp.LowRankDense(3, 2), 0.5)
  w, s = layer.init(signature(X))
  assert layer.pure_fn(X, w, s, jax.random.key(0))[0].shape == (2, 6, 3)
