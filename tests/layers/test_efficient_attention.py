"""Trax 1.4's EncDecAttention, PureLSH* and MixedLSH attention against real Trax and NumPy."""

import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError, LayerError
from minitrax.layers.efficient_attention import (EncDecAttention, MixedLSHSelfAttention,
                                                 PureLSHSelfAttention, PureLSHSelfAttentionWrapper)
from minitrax.layers.lsh_attention import LSHSelfAttention14
from minitrax.shapes import ShapeDtype, signature

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import research_fixture as fx  # noqa: E402

FIX = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'efficient_attention_141.npz'))
RNG = np.random.default_rng(3)


def np_softmax(s):
  e = np.exp(s - s.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


FIX12 = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'attention12_123.npz'))


def test_enc_dec_attention_gives_the_numbers_of_trax_1_2_and_numpy():
  x, enc, mask = FIX12['self_x'], FIX12['encdec_enc'], FIX12['encdec_mask']
  w = [FIX12[f'encdec_w{i}'] for i in range(4)]
  layer = EncDecAttention(n_heads=2, d_qk=3, d_v=3, mode='eval')
  inputs = (x, enc, mask)
  layer.init(signature(inputs))
  y = np.asarray(layer(inputs, weights=tuple(jnp.asarray(a) for a in w)))
  np.testing.assert_allclose(y, FIX12['encdec_y'], atol=2e-6)  # printed by Trax 1.2.3
  want = np.zeros(y.shape)
  for b in range(2):
    for h in range(2):
      q, k, v = x[b] @ w[0][h], enc[b] @ w[1][h], enc[b] @ w[2][h]
      s = np.where(mask[b][None], q @ k.T / np.sqrt(3), -1e9)
      want[b] += np_softmax(s) @ v @ w[3][h]
  np.testing.assert_allclose(y, want, atol=2e-5)
  assert [a.shape for a in layer.weights] == [(2, 6, 3), (2, 4, 3), (2, 4, 3), (2, 3, 6)]
  assert layer.output_signature(signature(inputs)) == ShapeDtype(y.shape, y.dtype)
  assert EncDecAttention(masked=False).n_in == 2
  # Trax 1.4.1 subtracts 1e9 from every score of a masked EncDecAttention (its `attend` adds 1
  # to the mask indicator), so all its queries attend uniformly: we keep Trax 1.2's numbers.
  trax14 = FIX['encdec/y']
  np.testing.assert_allclose(trax14[:, 0], trax14[:, 5], atol=1e-6)


def test_pure_lsh_equals_lsh_self_attention_on_its_projections():
  x = RNG.normal(size=(2, 16, 8)).astype(np.float32)
  kwargs = dict(n_heads=2, d_qk=4, d_v=4, causal=True, chunk_len=4, n_hashes=2, n_buckets=4,
                mode='eval')
  full = LSHSelfAttention14(**kwargs)
  full.init(ShapeDtype(x.shape))
  w_q, w_v, w_o = (np.asarray(a) for a in full.weights)
  qk = np.einsum('bnd,hde->bhne', x, w_q).reshape((4, 16, 4))
  v = np.einsum('bnd,hde->bhne', x, w_v).reshape((4, 16, 4))
  pure = PureLSHSelfAttention(**kwargs)
  w, s = pure.init(signature((qk, v)))
  assert w == () and s.shape == () and pure.n_in == 2
  o, _ = pure.pure_fn((qk, v), w, s, jax.random.key(7))
  y, _ = full.pure_fn(x, full.weights, full.state, jax.random.key(7))
  np.testing.assert_allclose(np.einsum('bhne,hed->bnd',
                                       np.asarray(o).reshape((2, 2, 16, 4)), w_o), y, atol=2e-5)


def test_pure_lsh_predict_mode_equals_eval_with_one_chunk():
  qk = RNG.normal(size=(4, 8, 3)).astype(np.float32)
  v = RNG.normal(size=(4, 8, 3)).astype(np.float32)
  kwargs = dict(n_heads=2, causal=True, chunk_len=8, n_buckets=2)
  evaluated = PureLSHSelfAttention(mode='eval', **kwargs)
  want, _ = evaluated.pure_fn((qk, v), *evaluated.init(signature((qk, v))), jax.random.key(0))
  predictor = PureLSHSelfAttention(mode='predict', predict_mem_len=8, predict_drop_len=4, **kwargs)
  w, s = predictor.init(signature((qk[:, :1], v[:, :1])))
  outs = []
  for i in range(8):
    y, s = predictor.pure_fn((qk[:, i:i + 1], v[:, i:i + 1]), w, s, None)
    outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), want, atol=2e-5)


WRAPPERS = {  # the configurations of fixtures/make_research_141.py
    'Wrapper_model': dict(causal=True, rotary_position_emb=True),
    'Wrapper_sparse': dict(causal=True, weights_format='sparse', sparsity=2, num_weights=2),
    'Wrapper_masked': dict(masked=True, num_weights=2, bias=False),
}


@pytest.mark.parametrize('name', sorted(WRAPPERS))
def test_wrapper_gives_the_numbers_of_trax_1_4(name):
  kwargs = WRAPPERS[name]
  layer = PureLSHSelfAttentionWrapper(n_heads=2, d_qk=4, d_v=4, chunk_len=6, n_hashes=1,
                                      n_buckets=2, mode='eval', **kwargs)
  inputs = (fx.DATA['x'], fx.DATA['mask']) if kwargs.get('masked') else fx.DATA['x']
  y, want = fx.output_with_trax_weights(layer, name, inputs)
  # Position 0 of a causal layer sees only itself (score near -1e5): Trax's unnormalised
  # exp(score - float32 logsumexp) there is off by ~0.3%; every other position agrees.
  np.testing.assert_allclose(y[:, 1:], want[:, 1:], atol=3e-6)
  np.testing.assert_allclose(y[:, 0], want[:, 0], rtol=1e-2, atol=1e-2)
  assert layer.output_signature(signature(inputs)) == ShapeDtype(y.shape, y.dtype)


@pytest.mark.parametrize('name, causal', [('Mixed_causal', True), ('Mixed_masked', False)])
def test_mixed_attention_below_std_length_is_plain_attention_as_in_trax(name, causal):
  qk, v, mask = fx.DATA['qk'], fx.DATA['vv'], fx.DATA['mask']
  inputs = (qk, v) if causal else (qk, v, mask)
  layer = MixedLSHSelfAttention(n_heads=2, d_qk=3, d_v=3, causal=causal, masked=not causal,
                                std_length=8, mode='eval')
  y, want = fx.output_with_trax_weights(layer, name, inputs)
  np.testing.assert_allclose(y, want, atol=2e-6)  # printed by Trax 1.4.1
  heads_mask = np.repeat(mask, 2, axis=0)[:, None, :]
  s = qk @ np.swapaxes(qk, -1, -2) / np.sqrt(3)
  s = s - 1e9 * np.triu(np.ones((6, 6)), 1) if causal else np.where(heads_mask, s, -1e9)
  np.testing.assert_allclose(y, np_softmax(s) @ v, atol=2e-5)


def test_mixed_attention_beyond_std_length_is_lsh():
  qk = RNG.normal(size=(4, 8, 3)).astype(np.float32)
  mixed = MixedLSHSelfAttention(n_heads=2, causal=True, std_length=4, chunk_len=4, n_buckets=4,
                                mode='eval')
  pure = PureLSHSelfAttention(n_heads=2, causal=True, chunk_len=4, n_buckets=4, mode='eval')
  w, s = mixed.init(signature((qk, qk)))
  y, _ = mixed.pure_fn((qk, qk), w, s, jax.random.key(2))
  rng_lsh = jax.random.split(jax.random.key(2), 2)[0]
  want, _ = pure.pure_fn((qk, qk), (), s[0], rng_lsh)
  np.testing.assert_allclose(y, want, atol=1e-6)


@pytest.mark.parametrize('make, message', [
    (lambda: MixedLSHSelfAttention(causal=True, masked=True), 'causal attention takes no mask'),
    (lambda: PureLSHSelfAttentionWrapper(weights_format='heads'), "weights_format must be 'model'"),
    (lambda: PureLSHSelfAttentionWrapper(num_weights=4), 'num_weights must be 2 or 3, got 4'),
    (lambda: PureLSHSelfAttentionWrapper(n_heads=2, d_qk=3, weights_format='sparse', sparsity=4),
     'd_qk \\* n_heads = 6 must be a multiple of sparsity=4'),
    (lambda: EncDecAttention(masked='yes'), "masked must be True or False, got 'yes'"),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ArgumentError, match=message):
    make()


def test_pure_lsh_checks_its_head_axis():
  layer = PureLSHSelfAttention(n_heads=3, chunk_len=4, mode='eval')
  qk = np.zeros((4, 8, 2), np.float32)
  with pytest.raises(LayerError, match='a multiple of n_heads=3'):
    layer.init(signature((qk, qk)))


def test_wrapper_layers_are_partial_friendly():
  make = functools.partial(
      PureLSHSelfAttentionWrapper,
      pure_lsh_implementation=functools.partial(PureLSHSelfAttention, chunk_len=4,
                                                n_buckets=2), weights_format='model', bias=False)
  layer = make(n_heads=2, d_qk=4, d_v=4, causal=True, mode='train')
  x = RNG.normal(size=(2, 8, 8)).astype(np.float32)
  w, s = layer.init(ShapeDtype(x.shape))
  grads = jax.grad(lambda w: jnp.sum(layer.pure_fn(x, w, s, jax.random.key(1))[0]**2))(w)
  assert all(np.abs(np.asarray(g)).sum() > 0 for g in jax.tree.leaves(grads))
