"""Attention layers against NumPy references; predict-mode caches and their limits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers import attention, positions
from minitrax.shapes import ShapeDtype

B, L, D, H = 2, 5, 8, 2
RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, L, D)).astype(np.float32)
SIG = ShapeDtype((B, L, D))

# ------------------------------------------------------------------ NumPy references


def np_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_attention(q, k, v, mask):
  """Scaled dot-product attention; mask False -> score -1e9."""
  scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
  scores = np.where(mask, scores, -1e9)
  return np_softmax(scores) @ v


def np_multi_head(xq, xkv, leaves, n_heads, mask):
  """Projections, per-head attention, merge, output projection (weights as leaves).

  `leaves` are `wq, bq, wk, bk, wv, bv, wo, bo`, or the four kernels alone.
  """
  leaves = [np.asarray(a, np.float64) for a in leaves]
  if len(leaves) == 4:
    leaves = [a for w in leaves for a in (w, np.zeros(w.shape[-1]))]
  wq, bq, wk, bk, wv, bv, wo, bo = leaves

  def heads(a):
    b, n, d = a.shape
    return a.reshape(b, n, n_heads, d // n_heads).transpose(0, 2, 1, 3)

  y = np_attention(heads(xq @ wq + bq), heads(xkv @ wk + bk), heads(xkv @ wv + bv), mask)
  b, h, n, dh = y.shape
  return y.transpose(0, 2, 1, 3).reshape(b, n, h * dh) @ wo + bo


def np_sinusoid(n, d, start=0):
  pe = np.zeros((n, d))
  pos = np.arange(start, start + n)[:, None]
  for i in range(d):
    angle = pos[:, 0] / 10000**(2 * (i // 2) / d)
    pe[:, i] = np.sin(angle) if i % 2 == 0 else np.cos(angle)
  return pe


def check_signature(layer, sig, y):
  assert layer.output_signature(sig) == jax.tree.map(lambda a: ShapeDtype(a.shape, a.dtype), y,
                                                     is_leaf=lambda a: hasattr(a, 'shape'))


# ------------------------------------------------------------------ dot-product attention


def test_dot_product_attention_matches_numpy_with_mask():
  q, k, v = (RNG.normal(size=(2, 3, 4, 6)).astype(np.float32) for _ in range(3))
  mask = RNG.random((2, 1, 4, 4)) > 0.3
  mask[..., 0] = True
  y = attention.dot_product_attention(q, k, v, mask)
  np.testing.assert_allclose(y, np_attention(q, k, v, mask), rtol=1e-5, atol=1e-6)
  # A fully masked row averages the values uniformly (finite -1e9, no NaN).
  y = attention.dot_product_attention(q, k, v, np.zeros((4, 4), bool))
  np.testing.assert_allclose(y, np.broadcast_to(v.mean(-2, keepdims=True), y.shape), rtol=1e-5)


def test_dot_product_attention_softmax_is_float32_for_bfloat16():
  q = jnp.asarray(RNG.normal(size=(3, 4)) * 30, jnp.bfloat16)
  y = attention.dot_product_attention(q, q, q, None)
  assert y.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(y)))


# ------------------------------------------------------------------ multi-head attention


def test_attention_with_padding_mask_matches_numpy():
  ids = np.array([[3, 4, 0, 0, 0], [5, 6, 7, 8, 2]], np.int32)
  mask = attention.PaddingMask()(ids)
  np.testing.assert_array_equal(mask, (ids != 0)[:, None, None, :])
  layer = attention.Attention(D, n_heads=H, mode='eval')
  assert (layer.n_in, layer.n_out) == (2, 2)
  layer.init((SIG, ShapeDtype(mask.shape, bool)))
  y, mask_out = layer((X, mask))
  np.testing.assert_array_equal(mask_out, mask)
  expected = np_multi_head(X, X, jax.tree.leaves(layer.weights), H, np.asarray(mask))
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
  check_signature(layer, (SIG, ShapeDtype(mask.shape, bool)), (y, mask_out))


def test_attention_qkv_and_pure_attention_signatures():
  xk = RNG.normal(size=(B, 3, D)).astype(np.float32)
  mask = np.ones((B, 1, 1, 3), bool)
  layer = attention.AttentionQKV(D, n_heads=H)
  sigs = (SIG, ShapeDtype(xk.shape), ShapeDtype(xk.shape), ShapeDtype(mask.shape, bool))
  layer.init(sigs)
  y, _ = layer((X, xk, xk, mask))
  expected = np_multi_head(X, xk, jax.tree.leaves(layer.weights), H, mask)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
  check_signature(layer, sigs, (y, mask))
  pure = attention.PureAttention(n_heads=H)
  assert pure.output_signature(sigs) == (SIG, sigs[3])
  with pytest.raises(
      LayerError, match=r'PureAttention: queries must be \(batch, length, d\) '
      r'with d a multiple of n_heads=3, got shape \(2, 5, 8\)'):
    attention.PureAttention(n_heads=3).output_signature(sigs)


@pytest.mark.parametrize('make, shapes', [
    (lambda: attention.CausalAttention(D, n_heads=H, mode='eval'), [(D, D)] * 4),
    (lambda: attention.CausalAttention14(D, n_heads=H, mode='eval'), [(D, D), (D,)] * 4),
])
def test_causal_attention_matches_numpy_and_ignores_the_future(make, shapes):
  """Trax 1.2's form has four kernels and no biases; Trax 1.4's form has biases."""
  layer = make()
  layer.init(SIG)
  assert [a.shape for a in jax.tree.leaves(layer.weights)] == shapes
  y = layer(X)
  causal = np.tril(np.ones((L, L), bool))
  expected = np_multi_head(X, X, jax.tree.leaves(layer.weights), H, causal)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
  changed = X.copy()
  changed[:, 3:] += 1.0
  np.testing.assert_allclose(layer(changed)[:, :3], y[:, :3], rtol=1e-6)
  check_signature(layer, SIG, y)


def test_causal_attention_gradients_are_finite_and_reach_every_weight():
  layer = attention.CausalAttention(D, n_heads=H)
  weights, state = layer.init(SIG)
  grads = jax.grad(lambda w: layer.pure_fn(X, w, state, None)[0].sum())(weights)
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_causal_attention_head_sizes_and_shared_queries_and_keys():
  """Trax 1.2's d_attention_key / d_attention_value / share_qk: projection shapes and numbers."""
  layer = attention.CausalAttention(D, n_heads=H, d_attention_key=3, d_attention_value=5,
                                    mode='eval')
  layer.init(SIG)
  assert [a.shape for a in jax.tree.leaves(layer.weights)] == [(D, 6), (D, 6), (D, 10), (10, D)]
  assert layer(X).shape == (B, L, D)
  shared = attention.CausalAttention(D, n_heads=H, share_qk=True, mode='eval')
  shared.init(SIG)
  wqk, wv, wo = jax.tree.leaves(shared.weights)
  causal = np.tril(np.ones((L, L), bool))
  expected = np_multi_head(X, X, [wqk, wqk, wv, wo], H, causal)
  np.testing.assert_allclose(shared(X), expected, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match='CausalAttention: use_dconv=True is not supported'):
    attention.CausalAttention14(D, use_dconv=True)


def test_attention_dropout_in_training_only():
  layer = attention.DotProductCausalAttention(dropout=0.5)
  sigs = (SIG,) * 3
  layer.init(sigs)
  x = (X, X, X)
  y1 = layer.pure_fn(x, (), (), jax.random.key(1))[0]
  y2 = layer.pure_fn(x, (), (), jax.random.key(2))[0]
  assert not np.allclose(y1, y2)
  evaluated = attention.DotProductCausalAttention(dropout=0.5, mode='eval')
  np.testing.assert_allclose(
      evaluated.pure_fn(x, (), (), None)[0], np_attention(X, X, X, np.tril(np.ones((L, L), bool))),
      rtol=1e-5, atol=1e-6)
  with pytest.raises(
      LayerError, match=r"DotProductCausalAttention: mode='train' with "
      r"dropout=0.5 needs an rng, got rng=None"):
    layer.pure_fn(x, (), (), None)


# ------------------------------------------------------------------ predict mode


def test_causal_attention_predict_state_is_sized_by_max_len():
  layer = attention.CausalAttention(D, n_heads=H, max_len=7, mode='predict')
  weights, state = layer.init(ShapeDtype((B, 1, D)))
  train_weights, _ = attention.CausalAttention(D, n_heads=H).init(SIG)
  assert jax.tree.map(jnp.shape, weights) == jax.tree.map(jnp.shape, train_weights)
  keys, values, position = state[1]
  assert keys.shape == values.shape == (B * H, 7, D // H)
  assert position.dtype == jnp.int32 and int(position) == 0


def test_predict_mode_one_token_and_chunks_equal_eval():
  """Per-head causal attention fed one position (or a chunk) per call equals one eval call."""
  q, k, v = (RNG.normal(size=(B * H, L, D // H)).astype(np.float32) for _ in range(3))
  full = attention.DotProductCausalAttention(mode='eval').pure_fn((q, k, v), (), (), None)[0]
  layer = attention.DotProductCausalAttention(max_len=L + 1, mode='predict')
  _, state = layer.init(tuple(ShapeDtype((B * H, 1, D // H)) for _ in range(3)))
  step = jax.jit(layer.pure_fn)
  pieces = []
  for lo, hi in ((0, 2), (2, 3), (3, 4), (4, 5)):
    y, state = step((q[:, lo:hi], k[:, lo:hi], v[:, lo:hi]), (), state, None)
    pieces.append(y)
  np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-5, atol=1e-6)
  assert int(state[2]) == L


def test_predict_past_max_len_raises_eagerly():
  layer = attention.DotProductCausalAttention(max_len=3, mode='predict')
  sig = tuple(ShapeDtype((1, 2, 4)) for _ in range(3))
  _, state = layer.init(sig)
  x = tuple(np.ones((1, 2, 4), np.float32) for _ in range(3))
  _, state = layer.pure_fn(x, (), state, None)
  with pytest.raises(
      LayerError, match=r'DotProductCausalAttention: predict mode ran past '
      r'max_len=3: 2 new position\(s\) at position 2 need 4 '
      r'cache slots; build the model with a larger max_len'):
    layer.pure_fn(x, (), state, None)


def test_predict_past_max_len_poisons_under_jit_and_raises_through_call():
  layer = attention.PositionalEncoding(max_len=2, mode='predict')
  layer.init(ShapeDtype((1, 1, 4)))
  x = np.zeros((1, 1, 4), np.float32)
  np.testing.assert_allclose(layer(x)[0], np_sinusoid(1, 4), atol=1e-6)
  np.testing.assert_allclose(layer(x)[0], np_sinusoid(1, 4, start=1), atol=1e-6)
  state = layer.state
  y, _ = jax.jit(layer.pure_fn)(x, layer.weights, state, None)
  assert np.all(np.isnan(y))
  with pytest.raises(
      LayerError, match=r'PositionalEncoding: predict mode ran past max_len=2: 1 new '
      r'position\(s\) at position 2 need 3 cache slots'):
    layer(x)
  assert int(layer.state) == 2  # the failed call stored no state
  check = jax.jit(lambda start: attention.check_positions(start, 1, 2, 'T'))
  assert not bool(check(jnp.int32(1)))
  assert bool(check(jnp.int32(2)))
  assert 'callback' not in check.lower(jnp.int32(0)).as_text()


# ------------------------------------------------------------------ positions and shifts


def test_positional_encoding_matches_numpy_sinusoid_for_odd_width():
  layer = attention.PositionalEncoding(max_len=6, mode='eval')
  x = np.zeros((1, 6, 7), np.float32)
  y = layer(x)
  np.testing.assert_allclose(y[0], np_sinusoid(6, 7), atol=1e-6)
  # Trax 1.2's trained table: a weight of shape (1, max_len, d), initialised to the sinusoid.
  assert layer.weights.shape == (1, 6, 7) and layer.weights.dtype == jnp.float32
  np.testing.assert_allclose(layer.weights[0], np_sinusoid(6, 7), atol=1e-6)
  assert layer.state == ()
  check_signature(layer, ShapeDtype(x.shape), y)
  with pytest.raises(LayerError, match='PositionalEncoding: sequence length 7 exceeds max_len=6'):
    layer(np.zeros((1, 7, 7), np.float32))


def test_positional_encoding_adds_its_trained_table_and_gradients_reach_it():
  layer = attention.PositionalEncoding(max_len=8, mode='eval')
  weights, state = layer.init(SIG)
  table = RNG.normal(size=(1, 8, D)).astype(np.float32)
  y, _ = layer.pure_fn(X, jnp.asarray(table), state, None)
  np.testing.assert_allclose(y, X + table[:, :L], rtol=1e-6)
  grads = jax.grad(lambda w: layer.pure_fn(X, w, state, None)[0].sum())(weights)
  np.testing.assert_allclose(grads[0, :L], B * np.ones((L, D)))
  np.testing.assert_array_equal(grads[0, L:], 0)


def test_positional_encoding_of_trax_1_4_table_shapes_and_projection():
  layer = attention.PositionalEncoding14(max_len=8, mode='eval')
  assert layer.init(SIG)[0].shape == (8, D)
  np.testing.assert_allclose(layer(X), X + np_sinusoid(L, D)[None], atol=1e-5)
  half = attention.PositionalEncoding14(max_len=8, use_bfloat16=True, mode='eval')
  assert half.init(SIG)[0].dtype == jnp.bfloat16
  projected = attention.PositionalEncoding14(max_len=8, d_feature=3, mode='eval')
  (table, ff), _ = projected.init(SIG)
  assert table.shape == (8, 3) and ff.shape == (3, D)
  np.testing.assert_allclose(projected(X), X + np.asarray(table)[:L] @ np.asarray(ff), atol=1e-5)
  with pytest.raises(ValueError, match='PositionalEncoding: table_rank must be 3'):
    attention.PositionalEncoding(d_feature=3)


def test_positional_encoding_random_start_in_training():
  """Trax 1.4's start_from_zero_prob: some training calls add rows from a random offset."""
  layer = attention.PositionalEncoding14(max_len=16, start_from_zero_prob=0.0, max_offset_to_add=8)
  weights, state = layer.init(SIG)
  table = np.asarray(weights)
  starts = set()
  for seed in range(6):
    y = np.asarray(layer.pure_fn(X, weights, state, jax.random.key(seed))[0])
    start = [s for s in range(16 - L + 1) if np.allclose(y - X, table[s:s + L], atol=1e-6)]
    assert len(start) == 1
    starts.add(start[0])
  assert len(starts) > 1 and max(starts) < 8
  evaluated = attention.PositionalEncoding14(max_len=16, start_from_zero_prob=0.0,
                                             max_offset_to_add=8, mode='eval')
  np.testing.assert_allclose(evaluated.pure_fn(X, weights, (), None)[0], X + table[:L], atol=1e-6)


def test_positional_encoding_predict_chunk_continues_the_positions():
  layer = attention.PositionalEncoding(max_len=8, mode='predict')
  weights, state = layer.init(ShapeDtype((2, 3, 4)))
  y, state = layer.pure_fn(np.zeros((2, 3, 4), np.float32), weights, state, None)
  y2, state = layer.pure_fn(np.zeros((2, 2, 4), np.float32), weights, state, None)
  np.testing.assert_allclose(np.concatenate([y, y2], 1)[1], np_sinusoid(5, 4), atol=1e-6)
  assert int(state) == 5


def test_positional_encoding_dropout_is_shared_along_positions():
  layer = attention.PositionalEncoding(max_len=8, dropout=0.5)
  x = np.zeros((2, 6, 16), np.float32)
  weights, state = layer.init(ShapeDtype(x.shape))
  y = np.asarray(layer.pure_fn(x, weights, state, jax.random.key(3))[0])
  kept = y[0, 1] != 0  # position 1's signal has no zeros: its kept features
  assert 0 < kept.mean() < 1
  # One mask over the features, shared by every example and position; kept values doubled.
  np.testing.assert_allclose(y, np.broadcast_to(2 * np_sinusoid(6, 16) * kept, y.shape), rtol=1e-5,
                             atol=1e-6)


def test_positional_encoding_view_adds_the_shared_table_with_its_own_counter():
  source = attention.PositionalEncoding(max_len=8, mode='eval')
  view = positions.PositionalEncodingView(source, mode='predict')
  weights, state = view.init(ShapeDtype((B, 1, D)))
  assert weights[0].shape == (1, 8, D) and int(state[1]) == 0
  table = RNG.normal(size=(1, 8, D)).astype(np.float32)
  y1, state = view.pure_fn(X[:, :2], (jnp.asarray(table),), state, None)
  y2, state = view.pure_fn(X[:, 2:3], (jnp.asarray(table),), state, None)
  np.testing.assert_allclose(np.concatenate([y1, y2], 1), X[:, :3] + table[:, :3], rtol=1e-6)
  assert int(state[1]) == 3


def test_shift_right_padding_and_encoder_decoder_masks():
  ids = np.array([[5, 6, 7], [8, 9, 1]], np.int32)
  np.testing.assert_array_equal(attention.ShiftRight()(ids), [[0, 5, 6], [0, 8, 9]])
  np.testing.assert_array_equal(attention.ShiftRight(2)(ids), [[0, 0, 5], [0, 0, 8]])
  np.testing.assert_array_equal(attention.ShiftRight(mode='predict')(ids), ids)
  mask = attention.PaddingMask(pad=1)(ids)
  assert mask.shape == (2, 1, 1, 3) and mask.tolist()[1] == [[[True, True, False]]]
  layer = attention.EncoderDecoderMask()
  dec_sig, mask_sig = ShapeDtype((2, 4, 8)), ShapeDtype((2, 1, 1, 3), bool)
  out = layer((np.zeros((2, 4, 8), np.float32), mask))
  assert out.shape == (2, 1, 4, 3) and np.all(out == mask)
  check_signature(layer, (dec_sig, mask_sig), out)
  check_signature(attention.ShiftRight(), ShapeDtype((2, 3), np.int32), ids)


@pytest.mark.parametrize('layer, sig', [
    (attention.PureAttention(n_heads=H), (SIG, SIG, SIG, ShapeDtype((B, 1, 1, L), bool))),
    (attention.DotProductCausalAttention(mode='eval'), (SIG, SIG, SIG)),
    (attention.PaddingMask(), ShapeDtype((B, L), np.int32)),
    (attention.PositionalEncoding(max_len=L, mode='predict'), SIG),
])
def test_output_signature_matches_real_output(layer, sig):
  layer.init(sig)
  x = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), sig,
                   is_leaf=lambda s: isinstance(s, ShapeDtype))
  check_signature(layer, sig, layer(x))


@pytest.mark.parametrize('make, message', [
    (lambda: attention.CausalAttention(10, n_heads=3),
     'CausalAttention: d_feature=10 is not a multiple of n_heads=3'),
    (lambda: attention.Attention(8, n_heads=0), 'AttentionQKV: n_heads must be an int >= 1, got 0'),
    (lambda: attention.DotProductCausalAttention(dropout=1.0),
     r'DotProductCausalAttention: dropout must be a number in \[0, 1\), got 1.0'),
    (lambda: attention.PositionalEncoding(mode='test'),
     "PositionalEncoding: mode must be one of .*, got 'test'"),
    (lambda: attention.PositionalEncoding(max_len=0),
     'PositionalEncoding: max_len must be an int >= 1, got 0'),
    (lambda: attention.ShiftRight(0), 'ShiftRight: n_positions must be an int >= 1, got 0'),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ValueError, match=message):
    make()
