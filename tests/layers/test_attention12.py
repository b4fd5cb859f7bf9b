"""Trax 1.2's causal-attention cores against numbers printed by real Trax 1.2.3 and NumPy."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.attention import CausalAttention
from minitrax.layers.attention12 import MemoryEfficientCausalAttention, TimeBinCausalAttention
from minitrax.layers.lsh_causal_attention import LSHCausalAttention
from minitrax.shapes import ShapeDtype, signature

# Written by fixtures/make_attention12_123.py with Trax 1.2.3 (inputs from default_rng(1)).
FIX = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'attention12_123.npz'))
QKV = (FIX['q'], FIX['k'], FIX['v'])
KEY = jax.random.PRNGKey(0)


def run(layer, inputs=QKV, rng=KEY):
  weights, state = layer.init(signature(inputs))
  return layer.pure_fn(inputs, weights, state, rng)


def np_causal(q, k, v, share_qk=False):
  """Causal attention per slice; shared QK: keys RMS-normalised, self at -1e5."""
  if share_qk:
    k = k / np.sqrt(np.mean(k * k, -1, keepdims=True) + 1e-6)
  s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
  n = q.shape[1]
  s = s - 1e9 * np.triu(np.ones((n, n)), 1) - (1e5 * np.eye(n) if share_qk else 0)
  e = np.exp(s - s.max(-1, keepdims=True))
  return (e / e.sum(-1, keepdims=True)) @ v


@pytest.mark.parametrize('name, make', [
    ('memeff', lambda: MemoryEfficientCausalAttention(loop_stride=4, dropout=0.0, mode='eval')),
    ('memeff_shared', lambda: MemoryEfficientCausalAttention(4, 0.0, 'eval', share_qk=True)),
    ('memeff_hard', lambda: MemoryEfficientCausalAttention(8, 0.0, 'eval', hard_k=3)),
    ('timebin_nbins', lambda: TimeBinCausalAttention(mode='eval', n_bins=3)),
    ('timebin_shared', lambda: TimeBinCausalAttention(mode='eval', bin_length=5, share_qk=True)),
])
def test_cores_give_the_numbers_of_trax_1_2(name, make):
  y, _ = run(make())
  np.testing.assert_allclose(y, FIX[name], atol=3e-6)


def test_memory_efficient_attention_is_causal_attention_and_differentiable():
  q, k, v = (a.astype(np.float64) for a in QKV)
  y, _ = run(MemoryEfficientCausalAttention(loop_stride=2, dropout=0.0, mode='eval'))
  np.testing.assert_allclose(y, np_causal(q, k, v), atol=2e-5)
  layer = MemoryEfficientCausalAttention(loop_stride=4, dropout=0.0, mode='train')
  w, s = layer.init(signature(QKV))
  grads = jax.grad(lambda x: jnp.sum(layer.pure_fn(x, w, s, KEY)[0]**2))(QKV)
  assert all(np.abs(np.asarray(g)).sum() > 0 and np.all(np.isfinite(g)) for g in grads)


LSH = {  # the configurations of fixtures/make_attention12_123.py
    'lsh': dict(n_bins=4, n_hashes=1, n_buckets=4),
    'lsh_rounds': dict(n_bins=2, n_hashes=2, n_buckets=4),
    'lsh_factor': dict(n_bins=2, n_hashes=2, n_buckets=16, factorize_hash=True),
    'lsh_across': dict(n_bins=4, n_hashes=3, n_buckets=4, attend_across_buckets=True),
    'lsh_dup': dict(n_bins=4, n_hashes=2, n_buckets=4, allow_duplicate_attention=True),
}


@pytest.mark.parametrize('name', sorted(LSH))
def test_lsh_causal_attention_gives_the_numbers_of_trax_1_2(name):
  # Trax 1.2.3 ran on jax 0.4.13, whose threefry draws were not 'partitionable'.
  with jax.threefry_partitionable(False):
    y, buckets = run(LSHCausalAttention(dropout=0.0, mode='eval', **LSH[name]))
  np.testing.assert_array_equal(buckets, FIX[name + '/buckets'])  # the same hashes
  y, want = np.asarray(y), FIX[name]
  # Where a position sees only itself in every round (scores near -1e5), Trax weighs the rounds
  # with a float32 log-sum-exp at that magnitude, off by up to ~0.5%; the output is then v.
  alone = np.all(np.abs(y - QKV[2]) < 1e-6, axis=-1)
  np.testing.assert_allclose(y[~alone], want[~alone], atol=3e-6)
  np.testing.assert_allclose(y[alone], want[alone], rtol=1e-2, atol=1e-2)
  assert (~alone).sum() > alone.sum()


def test_lsh_with_one_bin_and_one_round_is_shared_qk_causal_attention():
  layer = LSHCausalAttention(dropout=0.0, mode='eval', n_bins=1, n_buckets=2)
  y, _ = run(layer)
  q, v = QKV[0].astype(np.float64), QKV[2].astype(np.float64)
  # One bucket per position's half-space; one bin holds all: buckets still hide across-bucket keys.
  layer_across = LSHCausalAttention(dropout=0.0, mode='eval', n_bins=1, n_buckets=2,
                                    attend_across_buckets=True)
  y_across, _ = run(layer_across)
  np.testing.assert_allclose(y_across, np_causal(q, q, v, share_qk=True), atol=2e-5)
  assert not np.allclose(y, y_across, atol=1e-3)


def test_lsh_hashes_come_from_the_rng_or_a_fixed_key():
  layer = LSHCausalAttention(dropout=0.0, mode='train', n_bins=2, n_hashes=2, n_buckets=4)
  _, b1 = run(layer, rng=jax.random.key(1))
  _, b2 = run(layer, rng=jax.random.key(2))
  assert b1.shape == (4, 32) and b1.dtype == jnp.int32 and not np.array_equal(b1, b2)
  fixed = LSHCausalAttention(dropout=0.0, mode='train', n_bins=2, n_buckets=4, one_rng=True)
  w, s = fixed.init(signature(QKV))
  y1, (f1, _) = fixed.pure_fn(QKV, w, s, jax.random.key(1))
  y2, (f2, _) = fixed.pure_fn(QKV, w, s, None)
  np.testing.assert_array_equal(f1, f2)
  np.testing.assert_allclose(y1, y2, atol=1e-6)
  grads = jax.grad(lambda x: jnp.sum(fixed.pure_fn(x, w, s, None)[0]**2))(QKV)
  assert np.abs(np.asarray(grads[0])).sum() > 0 and np.all(np.asarray(grads[1]) == 0)


def test_lsh_predict_mode_gives_the_numbers_of_trax_1_2():
  layer = LSHCausalAttention(0.0, 'predict', n_bins=4, n_hashes=2, n_buckets=4,
                             max_len_for_inference=32, bucket_capacity_for_inference=3)
  w, s = layer.init(signature(tuple(a[:, :1] for a in QKV)))
  s = s[:-1] + (jnp.int32(5),)  # Trax's state held PRNGKey(5): the same key bits
  outs = []
  with jax.threefry_partitionable(False):
    # One prompt call of 4 positions, then one position at a time (Trax: one at a time).
    y, s = layer.pure_fn(tuple(a[:, :4] for a in QKV), w, s, None)
    outs.append(y)
    for i in range(4, 16):
      y, s = layer.pure_fn(tuple(a[:, i:i + 1] for a in QKV), w, s, None)
      outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), FIX['lsh_predict'], atol=2e-6)
  assert int(s[3]) == 16


def test_time_bin_predict_mode_equals_eval_and_trax():
  eval_layer = TimeBinCausalAttention(mode='eval', bin_length=3)
  want, _ = run(eval_layer)
  layer = TimeBinCausalAttention(mode='predict', bin_length=3)
  w, s = layer.init(signature(tuple(a[:, :1] for a in QKV)))
  outs = []
  for i in range(0, 16, 2):  # two positions per call
    y, s = layer.pure_fn(tuple(a[:, i:i + 2] for a in QKV), w, s, None)
    outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), want, atol=2e-6)
  shared = TimeBinCausalAttention(mode='predict', bin_length=5, share_qk=True)
  w, s = shared.init(signature(tuple(a[:1, :1] for a in QKV)))
  got = []
  for i in range(16):
    y, s = shared.pure_fn(tuple(a[:1, i:i + 1] for a in QKV), w, s, None)
    got.append(y)
  np.testing.assert_allclose(np.concatenate(got, 1), FIX['timebin_predict'], atol=2e-6)
  np.testing.assert_allclose(np.concatenate(got, 1), FIX['timebin_shared'][:1], atol=2e-6)


def test_cores_plug_into_trax_1_2_causal_attention():
  x = np.random.default_rng(0).normal(size=(2, 12, 8)).astype(np.float32)
  for core in (functools.partial(TimeBinCausalAttention, bin_length=4),
               functools.partial(MemoryEfficientCausalAttention, loop_stride=4, dropout=0.0),
               functools.partial(LSHCausalAttention, dropout=0.0, n_bins=2, n_buckets=4)):
    layer = CausalAttention(8, n_heads=2, attention_type=core, mode='eval')
    layer.init(ShapeDtype(x.shape))
    y = layer(x)
    assert layer.output_signature(ShapeDtype(x.shape)) == ShapeDtype(y.shape, y.dtype)


@pytest.mark.parametrize('make, message', [
    (lambda: MemoryEfficientCausalAttention(4, 0.0, 'predict'), 'Trax has no predict mode'),
    (lambda: MemoryEfficientCausalAttention(0, 0.0, 'eval'), 'loop_stride must be an int >= 1'),
    (lambda: TimeBinCausalAttention('eval'), 'give exactly one of bin_length and n_bins'),
    (lambda: TimeBinCausalAttention('predict', n_bins=2), "mode='predict' needs bin_length"),
    (lambda: LSHCausalAttention(0.0, 'eval', hard_k=2), 'hard_k=2 is not supported'),
    (lambda: LSHCausalAttention(0.0, 'eval', rehash_each_round=False, data_rotation=True),
     'data_rotation=True, rehash_each_round=False is not supported'),
    (lambda: LSHCausalAttention(0.0, 'eval', n_bins=8, n_buckets=4), 'n_buckets must be even and'),
    (lambda: LSHCausalAttention(0.0, 'eval', n_bins=4, n_buckets=16, factorize_hash=[2, 4]),
     'factorize_hash must be even factors of n_buckets=16'),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_lengths_must_split_into_blocks():
  with pytest.raises(LayerError, match='loop_stride=5 must divide the length 16'):
    run(MemoryEfficientCausalAttention(5, 0.0, 'eval'))
  with pytest.raises(LayerError, match='the length 16 must be a multiple of n_bins=3'):
    run(LSHCausalAttention(0.0, 'eval', n_bins=3, n_buckets=4))
