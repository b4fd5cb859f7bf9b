"""LSH and chunked self-attention, hashing and axial positions against NumPy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.attention_kernels import (auto_n_buckets, bucketed_attention,
                                               chunked_attention, hash_vectors)
from minitrax.layers.lsh_attention import LSHSelfAttention, SelfAttention
from minitrax.layers.axial import AxialPositionalEncoding
from minitrax.shapes import ShapeDtype

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
  before = min(before, n_chunks - 1)
  after = min(after, n_chunks - 1 - before)
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


def test_n_parallel_heads_does_not_change_the_result():
  kwargs = dict(causal=True, chunk_len=4, n_hashes=2, mode='eval')
  together = layer_with(LSHSelfAttention, **kwargs)
  one_at_a_time = layer_with(LSHSelfAttention, n_parallel_heads=1, **kwargs)
  np.testing.assert_allclose(one_at_a_time(X, weights=together.weights), together(X), atol=1e-6)


def test_masked_lsh_hides_padding():
  valid = np.ones((B, N), bool)
  valid[:, -5:] = False
  sig = (SIG, ShapeDtype((B, N), bool))
  layer = layer_with(LSHSelfAttention, sig=sig, masked=True, chunk_len=N, n_buckets=2, mode='eval')
  y = layer((X, valid))
  want = np_layer(X, layer.weights, True, False, valid)
  np.testing.assert_allclose(y[:, :-5], want[:, :-5], atol=2e-5)
  check_signature(layer, sig, y)


# ------------------------------------------------------------------ exact (chunked) attention


@pytest.mark.parametrize('share_qk, causal', [(False, True), (True, False)])
def test_self_attention_matches_numpy_and_chunking_is_exact(share_qk, causal):
  whole = layer_with(SelfAttention, share_qk=share_qk, causal=causal, mode='eval')
  chunked = layer_with(SelfAttention, share_qk=share_qk, causal=causal, chunk_len=5, mode='eval')
  y = whole(X)
  np.testing.assert_allclose(y, np_layer(X, whole.weights, share_qk, causal), atol=2e-5)
  np.testing.assert_allclose(chunked(X, weights=whole.weights), y, atol=1e-6)
  check_signature(chunked, SIG, y)
  assert len(whole.weights) == (3 if share_qk else 4)


def test_masked_self_attention_takes_a_padding_mask():
  valid = np.ones((B, 1, 1, N), bool)
  valid[0, ..., 10:] = False
  sig = (SIG, ShapeDtype(valid.shape, bool))
  layer = layer_with(SelfAttention, sig=sig, masked=True, mode='eval')
  y = layer((X, valid))
  np.testing.assert_allclose(y, np_layer(X, layer.weights, False, False, valid[:, 0, 0]), atol=2e-5)
  check_signature(layer, sig, y)


def test_chunked_attention_gradients_equal_unchunked():
  q, k, v = (jnp.asarray(RNG.normal(size=(2, 12, 4)).astype(np.float32)) for _ in range(3))

  def loss(chunk_len):
    return jax.grad(
        lambda q, k, v: jnp.sum(
            jnp.sin(chunked_attention(q, k, v, causal=True, chunk_len=chunk_len))),
        argnums=(0, 1, 2))(q, k, v)

  for a, b in zip(loss(5), loss(None)):
    np.testing.assert_allclose(a, b, atol=1e-5)


# ------------------------------------------------------------------ predict mode


@pytest.mark.parametrize(
    'make', [functools.partial(SelfAttention),
             functools.partial(LSHSelfAttention, chunk_len=N)])
def test_predict_mode_equals_eval_mode(make):
  evaluated = layer_with(make, causal=True, mode='eval')
  predictor = layer_with(make, sig=ShapeDtype((B, 1, D)), causal=True, mode='predict',
                         predict_mem_len=N)
  predictor.weights = evaluated.weights
  got = np.concatenate([predictor(X[:, :3])] + [predictor(X[:, i:i + 1]) for i in range(3, N)],
                       axis=1)
  np.testing.assert_allclose(got, evaluated(X), atol=1e-5)
  with pytest.raises(LayerError, match='predict mode ran past max_len=16: 1 new position'):
    predictor(X[:, :1])


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize('make, message', [
    (lambda: LSHSelfAttention(n_buckets=3), 'n_buckets must be None, 1, an even int'),
    (lambda: LSHSelfAttention(chunk_len=0), 'chunk_len must be an int >= 1, got 0'),
    (lambda: SelfAttention(mode='predict'), "mode='predict' needs causal=True"),
    (lambda: SelfAttention(attention_dropout=1.0), r'attention_dropout must be a number in'),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_lsh_needs_a_length_that_chunks_evenly():
  layer = LSHSelfAttention(**SIZES, chunk_len=5)
  with pytest.raises(LayerError, match='sequence length 16 is not a multiple of chunk_len=5'):
    layer(X)


# ------------------------------------------------------------------ axial positions


def test_axial_positional_encoding_numpy_and_predict():
  shape, d_embs = (4, 5), (3, 5)
  sig = ShapeDtype((B, 18, 8))
  x = RNG.normal(size=sig.shape).astype(np.float32)
  layer = AxialPositionalEncoding(shape, d_embs, mode='eval')
  (w1, w2), state = layer.init(sig)
  assert (w1.shape, w2.shape, state) == ((4, 3), (5, 5), ())
  pos = np.arange(18)
  want = x + np.concatenate([np.asarray(w1)[pos // 5], np.asarray(w2)[pos % 5]], -1)[None]
  y = layer(x)
  np.testing.assert_allclose(y, want, atol=1e-6)
  check_signature(layer, sig, y)
  predictor = AxialPositionalEncoding(shape, d_embs, mode='predict')
  predictor.init(ShapeDtype((B, 1, 8)))
  predictor.weights = layer.weights
  got = np.concatenate([predictor(x[:, :2])] + [predictor(x[:, i:i + 1]) for i in range(2, 18)],
                       axis=1)
  np.testing.assert_allclose(got, want, atol=1e-6)
  with pytest.raises(LayerError, match=r'input must be \(batch, length, 8\)'):
    layer(np.zeros((B, 4, 6), np.float32))


def test_axial_dropout_is_shared_along_broadcast_dims():
  layer = AxialPositionalEncoding((4, 4), (4, 4), dropout=0.5, dropout_broadcast_dims=(1, 2))
  x = np.zeros((1, 16, 8), np.float32)
  layer.init(ShapeDtype(x.shape))
  y = np.asarray(layer(x))
  dropped = np.all(y == 0, axis=1)[0]  # one mask of the 8 features
  assert np.all((y == 0) == dropped[None, None, :]) and 0 < dropped.sum() < 8
