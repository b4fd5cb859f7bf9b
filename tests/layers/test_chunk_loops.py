"""Chunk loops with hand-written backward passes: values and gradients equal the unchunked ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.layers import attention_kernels, lsh_hashing
from minitrax.layers.attention_kernels import (grouped_chunk_attention, hash_with_rotations,
                                               length_normalized, look_adjacent, random_rotations)
from minitrax.layers.chunk_loops import (ChunkedLayerNorm, MapChunks, chunk_map,
                                         chunk_sum_with_grads, zeros_after)
from minitrax.layers.combinators import Scan, Serial
from minitrax.layers.core import Dense
from minitrax.layers.activation_fns import Relu
from minitrax.layers.lsh_attention import LSHSelfAttention, SelfAttention
from minitrax.layers.normalization import LayerNorm
from minitrax.shapes import ShapeDtype

RNG = np.random.default_rng(0)


def normal(*shape):
  return jnp.asarray(RNG.normal(size=shape).astype(np.float32))


def assert_trees_close(a, b, atol=1e-5):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, atol=atol)


def test_zeros_after_is_zero_for_finite_and_infinite_anchors():
  for anchor in (jnp.float32(3.5), jnp.asarray([-jnp.inf, 1.0]), jnp.asarray([7], jnp.int32)):
    z = zeros_after((2, 3), jnp.float32, anchor)
    np.testing.assert_array_equal(z, np.zeros((2, 3), np.float32))


@pytest.mark.parametrize('reduce', [False, True])
def test_chunk_map_gradients_equal_a_python_loop(reduce):
  w, xs, ids = normal(3, 4), normal(5, 2, 3), jnp.asarray(RNG.integers(0, 4, (5, 2)), jnp.int32)

  def f(consts, x):
    (w,), (x, i) = consts, x
    return jnp.tanh(x @ w) * jnp.take(jnp.arange(4.0), i)[:, None]

  def looped(w, xs):
    y = chunk_map(f, (w,), (xs, ids), reduce=reduce)
    return jnp.sum(jnp.sin(y))

  def reference(w, xs):
    y = jnp.stack([f((w,), (xs[i], ids[i])) for i in range(5)])
    return jnp.sum(jnp.sin(y.sum(0) if reduce else y))

  np.testing.assert_allclose(looped(w, xs), reference(w, xs), atol=1e-6)
  assert_trees_close(
      jax.jit(jax.grad(looped, argnums=(0, 1)))(w, xs),
      jax.grad(reference, argnums=(0, 1))(w, xs))


def test_chunk_map_gradient_written_over_its_cotangent_is_right():
  s, xs = jnp.float32(0.7), normal(4, 3, 2)

  def looped(s, xs):
    return jnp.sum(jnp.cos(chunk_map(lambda c, x: jnp.tanh(x * c), s, xs)))

  def reference(s, xs):
    return jnp.sum(jnp.cos(jnp.tanh(xs * s)))

  assert_trees_close(jax.grad(looped, (0, 1))(s, xs), jax.grad(reference, (0, 1))(s, xs))


def test_chunk_sum_with_grads_equals_the_sum_and_its_gradient():
  w, xs, ids = normal(3, 4), normal(5, 2, 3), jnp.asarray(RNG.integers(0, 4, (5, 2)), jnp.int32)

  def loss(consts, x):
    x, i = x
    return -jnp.sum(jax.nn.log_softmax(x @ consts[0])[jnp.arange(2), i])

  def chunked(w, xs):
    return 3.0 * chunk_sum_with_grads(loss, (w,), (xs, ids))

  def reference(w, xs):
    return 3.0 * sum(loss((w,), (xs[i], ids[i])) for i in range(5))

  np.testing.assert_allclose(chunked(w, xs), reference(w, xs), rtol=1e-6)
  assert_trees_close(jax.jit(jax.grad(chunked, (0, 1)))(w, xs), jax.grad(reference, (0, 1))(w, xs))


def value_and_grads(layer, weights, x, rng=None):
  """(output, gradient of sum(sin(output)) w.r.t. weights and x) of `layer.pure_fn`."""

  def f(w, x):
    return jnp.sum(jnp.sin(layer.pure_fn(x, w, layer.state, rng)[0]))

  return layer.pure_fn(x, weights, layer.state, rng)[0], jax.grad(f, (0, 1))(weights, x)


def test_chunked_layer_norm_equals_layer_norm_with_gradients():
  x = normal(2, 8, 5)
  plain, chunked = LayerNorm(), ChunkedLayerNorm(4)
  weights, _ = plain.init(ShapeDtype(x.shape))
  weights = (weights[0] * 1.5, weights[1] + 0.25)
  chunked.init(ShapeDtype(x.shape))
  y_plain, g_plain = value_and_grads(plain, weights, x)
  y_chunked, g_chunked = value_and_grads(chunked, weights, x)
  np.testing.assert_allclose(y_chunked, y_plain, atol=1e-6)
  assert_trees_close(g_chunked, g_plain)


def test_map_chunks_equals_a_rematerialised_scan_with_gradients():
  x = normal(3, 2, 4, 5)
  scan, mapped = (wrap(Serial(LayerNorm(), Dense(7), Relu(), Dense(5)))
                  for wrap in (lambda body: Scan(body, axis=0, n_carry=0, remat=True), MapChunks))
  weights, _ = scan.init(ShapeDtype(x.shape))
  mapped.init(ShapeDtype(x.shape))
  rng = jax.random.key(3)
  y_scan, g_scan = value_and_grads(scan, weights, x, rng)
  y_map, g_map = value_and_grads(mapped, weights, x, rng)
  np.testing.assert_allclose(y_map, y_scan, atol=1e-6)
  assert_trees_close(g_map, g_scan)


@pytest.mark.parametrize('before,after', [(1, 0), (1, 1), (2, 1)])
def test_grouped_chunk_attention_equals_all_chunks_at_once(monkeypatch, before, after):
  c, length = 8, 3
  q, v = normal(c, length, 4), normal(c, length, 2)
  pos = jnp.asarray(RNG.permutation(c * length).reshape(c, length), jnp.int32)
  valid = jnp.asarray(RNG.random((c, length)) > 0.2)

  def all_at_once(q, v):
    near = lambda a: look_adjacent(a, before, after)  # noqa: E731
    dots = attention_kernels._scores(q, near(length_normalized(q)), pos, near(pos), near(valid),
                                     True, True)
    return attention_kernels._softmax_attend(dots, near(v), 0.0, None)

  def grouped(q, v):
    return grouped_chunk_attention(q, v, pos, valid, before, after, True)

  monkeypatch.setattr(attention_kernels, 'GROUP_SCORES', 2 * length * length * (1 + before + after))
  assert_trees_close(grouped(q, v), all_at_once(q, v), atol=1e-6)

  def loss(f):
    return lambda q, v: sum(jnp.sum(jnp.sin(a)) for a in f(q, v))

  assert_trees_close(
      jax.grad(loss(grouped), (0, 1))(q, v),
      jax.grad(loss(all_at_once), (0, 1))(q, v))


def test_hashing_in_chunks_equals_argmax_of_rotations_and_their_negatives(monkeypatch):
  vecs = normal(2, 32, 6)
  n_buckets = (4, 6)
  rotations = random_rotations(jax.random.key(1), 6, n_buckets, n_hashes=3)
  rotated = np.einsum('bnd,dhr->bhnr', np.asarray(vecs), np.asarray(rotations))
  first = np.argmax(np.concatenate([rotated[..., :2], -rotated[..., :2]], -1), -1)
  second = np.argmax(np.concatenate([rotated[..., 2:], -rotated[..., 2:]], -1), -1)
  expected = first + 4 * second
  np.testing.assert_array_equal(hash_with_rotations(vecs, rotations, n_buckets), expected)
  monkeypatch.setattr(lsh_hashing, 'HASH_CHUNK', 8)
  np.testing.assert_array_equal(hash_with_rotations(vecs, rotations, n_buckets), expected)


@pytest.mark.parametrize('make', [
    lambda p: LSHSelfAttention(n_heads=2, d_qk=4, d_v=3, causal=True, chunk_len=4, n_hashes=2,
                               n_buckets=4, n_parallel_heads=p),
    lambda p: SelfAttention(n_heads=2, d_qk=4, d_v=3, causal=True, chunk_len=4, n_chunks_before=1,
                            bias=True, n_parallel_heads=p),
    lambda p: SelfAttention(n_heads=4, d_qk=4, d_v=3, share_qk=True, n_parallel_heads=p),
])
def test_heads_looped_with_their_projections_equal_all_heads_at_once(make):
  x = normal(2, 16, 8)
  together, looped = make(None), make(2)
  weights, _ = together.init(ShapeDtype(x.shape))
  weights = jax.tree.map(lambda w: w + 0.1, weights)  # nonzero biases
  looped.init(ShapeDtype(x.shape))
  rng = jax.random.key(5)
  y_together, g_together = value_and_grads(together, weights, x, rng)
  y_looped, g_looped = value_and_grads(looped, weights, x, rng)
  np.testing.assert_allclose(y_looped, y_together, atol=1e-5)
  assert_trees_close(g_looped, g_together)
