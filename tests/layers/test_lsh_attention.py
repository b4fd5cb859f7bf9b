"""LSH and chunked self-attention, hashing and axial positions against NumPy references."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.attention_kernels import (auto_n_buckets, bucketed_attention,
                                               chunked_attention, hash_vectors)
from minitrax.layers.lsh_attention import LSHSelfAttention, LSHSelfAttention14, SelfAttention
from minitrax.shapes import ShapeDtype, signature

B, N, D = 2, 16, 8
RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, N, D)).astype(np.float32)
SIG = ShapeDtype((B, N, D))
SIZES = dict(n_heads=2, d_qk=4, d_v=4)

# ------------------------------------------------------------------ NumPy references


def np_softmax(x, axis=-1):
  e = np.exp(x - x.max(axis, keepdims=True))
  return e / e.sum(axis, keepdims=True)


def np_normalized(x):
  return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + 1e-6)


def np_scores(q, k, q_pos, k_pos, causal, exclude_self, valid=None):
  """Scores with Trax's penalties: -1e5 for self, -1e9 for hidden keys."""
  s = q @ k.T / np.sqrt(q.shape[-1])
  s = s - 1e5 * (exclude_self & (q_pos[:, None] == k_pos[None, :]))
  hidden = (k_pos[None, :] > q_pos[:, None]) & causal
  if valid is not None:
    hidden = hidden | ~valid[k_pos][None, :]
  return s - 1e9 * hidden


def np_layer(x, weights, share_qk, causal, valid=None):
  """Multi-head exact attention (shared QK: keys = RMS-normalised queries, no self)."""
  w = [np.asarray(a, np.float64) for a in weights]
  w_q, w_v, w_o = w[0], w[-2], w[-1]
  y = np.zeros(x.shape)
  pos = np.arange(x.shape[1])
  for b in range(x.shape[0]):
    for h in range(w_q.shape[0]):
      q = x[b] @ w_q[h]
      k = np_normalized(q) if share_qk else x[b] @ w[1][h]
      s = np_scores(q, k, pos, pos, causal, share_qk, None if valid is None else valid[b])
      y[b] += np_softmax(s) @ (x[b] @ w_v[h]) @ w_o[h]
  return y


def np_lsh(qk, v, buckets, chunk_len, before, after, causal):
  """LSH attention of one head from its buckets: sort, chunk, attend, combine rounds."""
  n_hashes, n = buckets.shape
  k = np_normalized(qk)
  order = np.concatenate(
      [sorted(range(n), key=lambda t, r=r: (buckets[r, t], t)) for r in range(n_hashes)])
  n_chunks = len(order) // chunk_len
  out, lse = np.zeros((n_hashes, n, v.shape[1])), np.zeros((n_hashes, n))
  for c in range(n_chunks):
    queries = order[c * chunk_len:(c + 1) * chunk_len]
    keys = np.concatenate(
        [order[((c + j) % n_chunks) * chunk_len:][:chunk_len] for j in range(-before, after + 1)])
    s = np_scores(qk[queries], k[keys], queries, keys, causal, True)
    top = s.max(-1, keepdims=True)
    rounds = (c * chunk_len + np.arange(chunk_len)) // n
    out[rounds, queries] = np_softmax(s) @ v[keys]
    lse[rounds, queries] = (top + np.log(np.exp(s - top).sum(-1, keepdims=True)))[:, 0]
  return np.sum(out * np_softmax(lse, axis=0)[..., None], axis=0)


def check_signature(layer, sig, y):
  assert layer.output_signature(sig) == ShapeDtype(y.shape, y.dtype)


def layer_with(make, sig=SIG, **kwargs):
  layer = make(**SIZES, **kwargs)
  layer.init(sig)
  return layer


# ------------------------------------------------------------------ hashing


def test_hash_vectors_depends_only_on_the_rng_and_is_angular():
  v = jnp.asarray(RNG.normal(size=(32, 6)).astype(np.float32))
  key, other = jax.random.key(1), jax.random.key(2)
  buckets = np.asarray(hash_vectors(v, 8, key, n_hashes=3))
  assert buckets.shape == (3, 32) and buckets.dtype == np.int32
  assert buckets.min() >= 0 and buckets.max() < 8
  np.testing.assert_array_equal(hash_vectors(v, 8, key, n_hashes=3), buckets)
  assert np.mean(np.asarray(hash_vectors(v, 8, other, n_hashes=3)) != buckets) > 0.3
  np.testing.assert_array_equal(hash_vectors(2.5 * v, 8, key, n_hashes=3), buckets)
  # argmax([xR, -xR]) of -x is the opposite half: bucket + n_buckets / 2.
  np.testing.assert_array_equal(hash_vectors(-v, 8, key, n_hashes=3), (buckets + 4) % 8)
  factored = np.asarray(hash_vectors(v, (2, 4), key))
  assert factored.min() >= 0 and factored.max() < 8 and len(np.unique(factored)) > 2
  np.testing.assert_array_equal(hash_vectors(v, 1, key, n_hashes=2), np.zeros((2, 32)))


def test_auto_n_buckets_follows_trax():
  assert auto_n_buckets(1024, 128) == 16
  assert auto_n_buckets(100, 128) == 2
  assert auto_n_buckets(65536, 128) == (32, 32)


# ------------------------------------------------------------------ LSH attention


def test_bucketed_attention_matches_numpy_reference_for_given_buckets():
  n, chunk = 24, 4
  qk = RNG.normal(size=(n, 5)).astype(np.float32)
  v = RNG.normal(size=(n, 3)).astype(np.float32)
  buckets = RNG.integers(0, 4, size=(2, n)).astype(np.int32)
  for causal, before, after in ((True, 1, 0), (False, 1, 1)):
    got = bucketed_attention(jnp.asarray(qk), jnp.asarray(v), jnp.asarray(buckets), chunk_len=chunk,
                             n_chunks_before=before, n_chunks_after=after, causal=causal)
    want = np_lsh(qk.astype(np.float64), v.astype(np.float64), buckets, chunk, before, after,
                  causal)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_bucketed_attention_gradients_match_numpy_finite_differences():
  # Three rounds: the rounds' combination and the sorted rows' gradient (a gather
  # summed over the rounds' copies, written by hand) both add up three terms.
  n, chunk, rng = 24, 4, np.random.default_rng(17)
  qk = rng.normal(size=(n, 5)).astype(np.float32)
  v = rng.normal(size=(n, 3)).astype(np.float32)
  buckets = rng.integers(0, 4, size=(3, n)).astype(np.int32)
  d_qk, d_v = rng.normal(size=qk.shape), rng.normal(size=v.shape)

  def loss(qk, v):
    out = bucketed_attention(qk, v, jnp.asarray(buckets), chunk_len=chunk, causal=True)
    return jnp.sum(jnp.sin(out))

  g_qk, g_v = jax.grad(loss, (0, 1))(jnp.asarray(qk), jnp.asarray(v))
  got = np.sum(np.asarray(g_qk) * d_qk) + np.sum(np.asarray(g_v) * d_v)

  def np_loss(t):
    x, y = qk.astype(np.float64) + t * d_qk, v.astype(np.float64) + t * d_v
    return np.sum(np.sin(np_lsh(x, y, buckets, chunk, 1, 0, True)))

  eps = 1e-4
  want = (np_loss(eps) - np_loss(-eps)) / (2 * eps)
  assert abs(want) > 1.0  # a directional derivative well away from 0, so rtol means something
  np.testing.assert_allclose(got, want, rtol=1e-3)


@pytest.mark.parametrize('n_buckets, n_hashes', [(1, 1), (4, 2), ((2, 4), 1)])
def test_lsh_with_one_chunk_equals_full_causal_attention(n_buckets, n_hashes):
  layer = layer_with(LSHSelfAttention, causal=True, chunk_len=N, n_buckets=n_buckets,
                     n_hashes=n_hashes, mode='eval')
  y = layer(X)
  np.testing.assert_allclose(y, np_layer(X, layer.weights, True, True), atol=2e-5)
  check_signature(layer, SIG, y)


def test_same_rng_same_hashes_and_different_rng_different_output():
  layer = layer_with(LSHSelfAttention, causal=True, chunk_len=2, n_buckets=8, n_hashes=1)
  w, s = layer.weights, layer.state
  y1, _ = layer.pure_fn(X, w, s, jax.random.key(1))
  np.testing.assert_array_equal(layer.pure_fn(X, w, s, jax.random.key(1))[0], y1)
  assert not np.allclose(layer.pure_fn(X, w, s, jax.random.key(2))[0], y1, atol=1e-3)
  # No rng: the fixed key made from the int32 seed in the state.
  fixed, new_state = layer.pure_fn(X, w, s, None)
  assert s.dtype == jnp.int32 and s.shape == () and new_state is s
  np.testing.assert_array_equal(layer.pure_fn(X, w, s, None)[0], fixed)
  assert not np.allclose(layer.pure_fn(X, w, s + 1, None)[0], fixed, atol=1e-3)


def test_lsh_is_causal_and_gradients_flow():
  layer = layer_with(LSHSelfAttention, causal=True, chunk_len=2, n_buckets=4, n_hashes=2)
  i = 7
  y, vjp = jax.vjp(lambda x, w: layer.pure_fn(x, w, layer.state, jax.random.key(3))[0],
                   jnp.asarray(X), layer.weights)
  ct = np.zeros(y.shape, np.float32)
  ct[:, i] = 1.0  # d(sum of output i) / d(inputs)
  grad_x, grad_w = vjp(jnp.asarray(ct))
  assert np.all(np.asarray(grad_x)[:, i + 1:] == 0)  # later positions do not matter
  assert np.abs(np.asarray(grad_x)[:, :i]).sum() > 0
  assert all(np.all(np.isfinite(g)) and np.abs(g).sum() > 0 for g in jax.tree.leaves(grad_w))


TRAX_LSH = {  # (causal, chunk_len, n_chunks_after, masked) of make_efficient_attention_141.py
    'causal': (True, 4, 0, False),
    'bidirectional': (False, 2, 1, False),
    'masked': (False, 4, 0, True),
}


@pytest.mark.parametrize('name', sorted(TRAX_LSH))
def test_bucketed_attention_gives_the_numbers_of_trax_1_4(name):
  causal, chunk_len, after, masked = TRAX_LSH[name]
  valid = jnp.asarray(FIX['mask'][0]) if masked else None
  y = np.asarray(
      bucketed_attention(jnp.asarray(FIX['lsh/qk']), jnp.asarray(FIX['lsh/v']),
                         jnp.asarray(FIX[f'lsh_{name}/buckets']), chunk_len=chunk_len,
                         n_chunks_before=1, n_chunks_after=after, causal=causal, valid=valid))
  want = FIX[f'lsh_{name}/y']  # printed by Trax 1.4.1's PureLSHSelfAttention
  # Position 0 of the causal case sees only itself in both rounds (scores near -1e5); Trax
  # weighs the rounds with a float32 log-sum-exp at that magnitude, which is off by ~0.2%.
  np.testing.assert_allclose(y[1:], want[1:], atol=2e-6)
  np.testing.assert_allclose(y[0], want[0], atol=2e-6 if not causal else 3e-3)


def test_masked_lsh_hides_padding():
  valid = np.ones((B, N), bool)
  valid[:, -5:] = False
  sig = (SIG, ShapeDtype((B, N), bool))
  layer = layer_with(LSHSelfAttention, sig=sig, masked=True, chunk_len=N, n_buckets=2, mode='eval')
  y = layer((X, valid))
  want = np_layer(X, layer.weights, True, False, valid)
  np.testing.assert_allclose(y[:, :-5], want[:, :-5], atol=2e-5)
  check_signature(layer, sig, y)


# ------------------------------------------------------------------ SelfAttention


def np_local(q, k, v, chunk_len, before, after, causal, exclude_self, valid=None):
  """One head of Trax's chunked attention: chunk i sees chunks i-before..i+after (wrapping)."""
  n = q.shape[0]
  n_chunks = n // chunk_len
  out = np.zeros((n, v.shape[1]))
  for c in range(n_chunks):
    queries = np.arange(c * chunk_len, (c + 1) * chunk_len)
    keys = np.concatenate([
        np.arange(chunk_len) + ((c + j) % n_chunks) * chunk_len for j in range(-before, after + 1)
    ])
    s = np_scores(q[queries], k[keys], queries, keys, causal, exclude_self, valid)
    out[queries] = np_softmax(s) @ v[keys]
  return out


FIX = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'efficient_attention_141.npz'))
TRAX_SELF = {  # the configurations of fixtures/make_efficient_attention_141.py
    'causal_chunked': dict(causal=True, chunk_len=4, n_chunks_before=1),
    'shared_local': dict(share_qk=True, chunk_len=2, n_chunks_before=1, n_chunks_after=1),
    'masked_bias': dict(masked=True, bias=True),
    'shared_causal': dict(share_qk=True, causal=True),
    'wrap_before2': dict(chunk_len=4, n_chunks_before=2),
}


def fixture_weights(name):
  return tuple(jnp.asarray(FIX[f'{name}/w{i}']) for i in range(8) if f'{name}/w{i}' in FIX)


@pytest.mark.parametrize('name', sorted(TRAX_SELF))
def test_self_attention_gives_the_numbers_of_trax_1_4(name):
  kwargs = TRAX_SELF[name]
  x, mask = FIX['x'], FIX['mask']
  layer = SelfAttention(n_heads=2, d_qk=3, d_v=3, mode='eval', **kwargs)
  inputs = (x, mask) if kwargs.get('masked') else x
  layer.init(signature(inputs))
  y = layer(inputs, weights=fixture_weights('self_' + name))
  np.testing.assert_allclose(y, FIX[f'self_{name}/y'], atol=2e-6)  # printed by Trax 1.4.1
  check_signature(layer, signature(inputs), y)


def test_self_attention_gives_the_numbers_of_trax_1_2():
  data = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'attention12_123.npz'))
  layer = SelfAttention(n_heads=2, d_qk=3, d_v=3, causal=True, chunk_len=4, n_chunks_before=1,
                        mode='eval')
  layer.init(ShapeDtype(data['self_x'].shape))
  w = tuple(jnp.asarray(data[f'self_w{i}']) for i in range(4))
  np.testing.assert_allclose(layer(data['self_x'], weights=w), data['self_y'], atol=2e-6)


def test_chunked_self_attention_matches_numpy():
  kwargs = dict(chunk_len=4, n_chunks_before=1, n_chunks_after=1)
  layer = layer_with(SelfAttention, share_qk=True, mode='eval', **kwargs)
  w = [np.asarray(a, np.float64) for a in layer.weights]
  want = np.zeros(X.shape)
  for b in range(B):
    for h in range(2):
      q = X[b] @ w[0][h]
      o = np_local(q, np_normalized(q), X[b] @ w[1][h], 4, 1, 1, False, True)
      want[b] += o @ w[2][h]
  np.testing.assert_allclose(layer(X), want, atol=2e-5)


@pytest.mark.parametrize('share_qk, causal', [(False, True), (True, False)])
def test_full_self_attention_matches_numpy(share_qk, causal):
  layer = layer_with(SelfAttention, share_qk=share_qk, causal=causal, mode='eval')
  np.testing.assert_allclose(layer(X), np_layer(X, layer.weights, share_qk, causal), atol=2e-5)
  assert len(layer.weights) == (3 if share_qk else 4)


def test_bias_weights_follow_trax_and_get_gradients():
  layer = layer_with(SelfAttention, bias=True, causal=True)
  shapes = [w.shape for w in layer.weights]
  assert shapes == [(2, 8, 4)] * 3 + [(2, 4, 8)] + [(2, 4)] * 3
  assert all(np.all(np.asarray(b) == 0) for b in layer.weights[4:])
  grads = jax.grad(lambda w: jnp.sum(layer.pure_fn(X, w, (), None)[0]**2))(layer.weights)
  assert all(np.abs(np.asarray(g)).sum() > 0 for g in grads)
  lsh = layer_with(LSHSelfAttention, bias=True, chunk_len=8, n_buckets=4)
  assert [w.shape for w in lsh.weights][3:] == [(2, 4), (2, 4)]


def test_masked_self_attention_takes_a_padding_mask():
  valid = np.ones((B, 1, 1, N), bool)
  valid[0, ..., 10:] = False
  sig = (SIG, ShapeDtype(valid.shape, bool))
  layer = layer_with(SelfAttention, sig=sig, masked=True, causal=True, mode='eval')
  y = layer((X, valid))
  np.testing.assert_allclose(y, np_layer(X, layer.weights, False, True, valid[:, 0, 0]), atol=2e-5)
  check_signature(layer, sig, y)


def test_computing_options_do_not_change_the_result():
  kwargs = dict(causal=True, chunk_len=4, n_chunks_before=1, mode='eval')
  together = layer_with(SelfAttention, **kwargs)
  w = together.weights
  for options in (dict(n_parallel_heads=1), dict(use_python_loop=True, use_reference_code=True)):
    np.testing.assert_allclose(
        layer_with(SelfAttention, **options, **kwargs)(X, weights=w), together(X), atol=1e-6)
  lsh = dict(causal=True, chunk_len=4, n_hashes=2, mode='eval')
  together = layer_with(LSHSelfAttention, n_parallel_heads=None, **lsh)
  one_at_a_time = layer_with(LSHSelfAttention, n_parallel_heads=1, **lsh)
  np.testing.assert_allclose(one_at_a_time(X, weights=together.weights), together(X), atol=1e-6)


def test_chunked_attention_gradients_equal_unchunked():
  q, k, v = (jnp.asarray(RNG.normal(size=(2, 12, 4)).astype(np.float32)) for _ in range(3))

  def grads(chunk_len):
    return jax.grad(
        lambda q, k, v: jnp.sum(
            jnp.sin(chunked_attention(q, k, v, causal=True, chunk_len=chunk_len))),
        argnums=(0, 1, 2))(q, k, v)

  for a, b in zip(grads(5), grads(None)):
    np.testing.assert_allclose(a, b, atol=1e-5)


# ------------------------------------------------------------------ predict mode


def predictor_for(layer, make, **kwargs):
  predictor = make(**SIZES, mode='predict', **kwargs)
  predictor.init(ShapeDtype((B, 1, D)))
  predictor.weights = layer.weights
  return predictor


def test_predict_mode_of_chunked_attention_equals_eval_and_trax():
  kwargs = TRAX_SELF['causal_chunked']
  layer = SelfAttention(n_heads=2, d_qk=3, d_v=3, mode='predict', **kwargs)
  x = FIX['x']
  layer.init(ShapeDtype((2, 1, 6)))
  layer.weights = fixture_weights('self_causal_chunked')
  got = np.concatenate([layer(x[:, i:i + 1]) for i in range(x.shape[1])], axis=1)
  np.testing.assert_allclose(got, FIX['self_causal_chunked/predict'], atol=2e-6)  # Trax 1.4.1
  np.testing.assert_allclose(got, FIX['self_causal_chunked/y'], atol=2e-6)  # = eval mode
  assert layer.predict_capacity() is None and layer.state[0].shape == (2, 2, 8, 3)


def test_predict_memory_drops_the_oldest_positions():
  layer = layer_with(SelfAttention, causal=True, mode='eval')
  predictor = predictor_for(layer, SelfAttention, causal=True, predict_mem_len=6,
                            predict_drop_len=4)
  got = np.concatenate([predictor(X[:, i:i + 1]) for i in range(N)], axis=1)
  w = [np.asarray(a, np.float64) for a in layer.weights]
  want = np.zeros(X.shape)
  for i in range(N):  # the memory holds positions start..i, start from dropping 4 at a time
    start = 0 if i < 6 else 4 * ((i - 6) // 4 + 1)
    for b in range(B):
      for h in range(2):
        q, k, v = (X[b, start:i + 1] @ w[j][h] for j in range(3))
        s = q[-1:] @ k.T / np.sqrt(4)
        want[b, i] += (np_softmax(s) @ v @ w[3][h])[0]
  np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize('make', [
    functools.partial(SelfAttention),
    functools.partial(LSHSelfAttention, chunk_len=N, predict_drop_len=N)
])
def test_predict_mode_equals_eval_mode(make):
  evaluated = layer_with(make, causal=True, mode='eval')
  predictor = predictor_for(evaluated, make, causal=True, predict_mem_len=N)
  got = np.concatenate([predictor(X[:, :3])] + [predictor(X[:, i:i + 1]) for i in range(3, N)],
                       axis=1)
  np.testing.assert_allclose(got, evaluated(X), atol=1e-5)


def test_a_long_prompt_starts_a_sequence_and_fills_the_memory():
  kwargs = dict(causal=True, chunk_len=4, n_chunks_before=1)
  evaluated = layer_with(SelfAttention, mode='eval', **kwargs)
  predictor = predictor_for(evaluated, SelfAttention, **kwargs)  # memory 8, drops 4
  prompt = predictor(X[:, :12])
  rest = [predictor(X[:, i:i + 1]) for i in range(12, N)]
  np.testing.assert_allclose(np.concatenate([prompt] + rest, axis=1), evaluated(X), atol=1e-5)
  with pytest.raises(LayerError, match='a call with 12 positions .* must start a sequence'):
    predictor(X[:, :12])


def test_without_predict_drop_len_the_memory_is_a_limit():
  predictor = SelfAttention(**SIZES, causal=True, mode='predict', predict_mem_len=4)
  predictor.init(ShapeDtype((B, 1, D)))
  assert predictor.predict_capacity() == 4
  for i in range(4):
    predictor(X[:, i:i + 1])
  with pytest.raises(LayerError, match='predict mode ran past max_len=4: 1 new position'):
    predictor(X[:, :1])


# ------------------------------------------------------------------ the two LSH signatures


def test_lsh_signatures_of_trax_1_2_and_1_4():
  old, new = LSHSelfAttention(), LSHSelfAttention14()
  assert (old._chunk_len, old._n_buckets) == (None, 256)  # Trax 1.2.3's defaults
  assert (new._chunk_len, new._n_buckets) == (128, None)  # Trax 1.4.1's defaults
  assert LSHSelfAttention14(2, 4, 4, 'unused', True, True).n_in == 2  # 6th: masked
  assert LSHSelfAttention(2, 4, 4, 'unused', True, 8)._chunk_len == 8  # 6th: chunk_len
  # SelfAttention: Trax 1.2's positional order (mode 10th) still reads right.
  old_order = SelfAttention(2, 4, 4, False, True, False, None, 0, 0, 'predict', 7, None, 0.1)
  assert (old_order.mode, old_order.max_len, old_order.predict_capacity()) == ('predict', 7, 7)
  layer = layer_with(LSHSelfAttention, causal=True, mode='eval')  # chunk_len=None: exact
  np.testing.assert_allclose(layer(X), np_layer(X, layer.weights, True, True), atol=2e-5)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize('make, message', [
    (lambda: LSHSelfAttention(n_buckets=3), 'n_buckets must be None, 1, an even int'),
    (lambda: LSHSelfAttention(chunk_len=0), 'chunk_len must be an int >= 1, got 0'),
    (lambda: LSHSelfAttention(share_qk=False), "share_qk must be 'unused' or True, got False"),
    (lambda: SelfAttention(mode='predict'), "mode='predict' needs causal=True"),
    (lambda: SelfAttention(causal=True, mode='predict'), "needs predict_mem_len .or chunk_len."),
    (lambda: SelfAttention(causal=True, mode='predict', predict_mem_len=4, predict_drop_len=5),
     r'predict_drop_len must be in \[1, predict_mem_len=4\], got 5'),
    (lambda: SelfAttention(n_chunks_before=1), 'n_chunks_before=1 and n_chunks_after=0 need '
     'chunk_len'),
    (lambda: SelfAttention(n_heads=4, n_parallel_heads=3), 'n_parallel_heads must be a multiple '
     'or a divisor of n_heads=4, got 3'),
    (lambda: SelfAttention(bias='yes'), "bias must be True or False, got 'yes'"),
    (lambda: SelfAttention(attention_dropout=1.0), r'attention_dropout must be a number in'),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_lengths_must_chunk_evenly():
  with pytest.raises(
      LayerError, match=r'n_hashes x sequence length = 1 x 16 is not a multiple '
      'of chunk_len=5'):
    LSHSelfAttention(**SIZES, chunk_len=5)(X)
  with pytest.raises(LayerError, match='sequence length 16 is not a multiple of chunk_len=5'):
    SelfAttention(**SIZES, chunk_len=5)(X)
