"""Core layers against NumPy: Dense, Embedding (id checks), Dropout, small functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers import core
from minitrax.layers.combinators import Serial
from minitrax.shapes import ShapeDtype, signature

KEY = jax.random.key(0)
X = np.arange(6, dtype=np.float32).reshape(2, 3) / 4 - 0.5


def _np(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _check_signature(layer, x):
  """output_signature(sig) equals the signature of the real output."""
  layer.init(signature(x))
  assert layer.output_signature(signature(x)) == signature(layer(x))


# ------------------------------------------------------------------ Dense


def test_dense_matches_numpy():
  layer = core.Dense(4)
  (w, b), state = layer.init(ShapeDtype((2, 3)), rng=KEY)
  assert layer.name == 'Dense_4' and state == ()
  assert w.shape == (3, 4) and b.shape == (4,) and w.dtype == b.dtype == jnp.float32
  w, b = _np((w, b))
  np.testing.assert_allclose(layer(X), X @ w + b, rtol=1e-5, atol=1e-6)
  assert np.all(np.abs(w) <= np.sqrt(6 / (3 + 4)))  # Glorot uniform limit
  _check_signature(core.Dense(4), np.ones((2, 5, 3), np.float32))


def test_dense_without_bias_has_bare_kernel():
  layer = core.Dense(2, use_bias=False)
  w, _ = layer.init(ShapeDtype((2, 3)))
  assert isinstance(w, jax.Array) and w.shape == (3, 2)
  np.testing.assert_allclose(layer(X), X @ np.asarray(w), rtol=1e-5, atol=1e-6)


def test_dense_gradient_reaches_weights():
  layer = core.Dense(2)
  weights, _ = layer.init(ShapeDtype((2, 3)))
  grads = jax.grad(lambda w: layer.pure_fn(X, w, (), None)[0].sum())(weights)
  np.testing.assert_allclose(grads[0], np.tile(X.sum(0)[:, None], (1, 2)), rtol=1e-6)
  np.testing.assert_allclose(grads[1], [2.0, 2.0])


def test_dense_used_twice_shares_weights_and_sums_gradients():
  d = core.Dense(3)
  model = Serial(d, d)
  weights, _ = model.init(ShapeDtype((2, 3)), rng=KEY)
  assert weights[1] == () and len(jax.tree.leaves(weights)) == 2
  w, b = _np(weights[0])
  h1 = X @ w + b
  np.testing.assert_allclose(model(X), h1 @ w + b, rtol=1e-5, atol=1e-6)
  # loss = sum(h2), h2 = h1 w + b, h1 = x w + b: the two uses' gradients add up.
  ones = np.ones((2, 3))
  grad_w = h1.T @ ones + X.T @ (ones @ w.T)
  grad_b = ones.sum(0) + (ones @ w.T).sum(0)
  grads = jax.grad(lambda ws: model.pure_fn(X, ws, model.state, None)[0].sum())(weights)
  np.testing.assert_allclose(grads[0][0], grad_w, rtol=1e-5)
  np.testing.assert_allclose(grads[0][1], grad_b, rtol=1e-5)


def test_dense_errors():
  with pytest.raises(ValueError, match='Dense: n_units must be an int >= 1, got 0'):
    core.Dense(0)
  layer = core.Dense(2)
  layer.init(ShapeDtype((1, 3)))
  with pytest.raises(LayerError, match=r'Dense_2: input shape \(1, 4\) does not end in d_in=3'):
    layer.pure_fn(np.ones((1, 4), np.float32), layer.weights, (), None)


# ------------------------------------------------------------------ Embedding

IDS = np.array([[1, 0, 4], [4, 4, 2]], np.int32)


def test_embedding_is_a_table_lookup():
  layer = core.Embedding(5, 3)
  table, _ = layer.init(ShapeDtype(IDS.shape, np.int32), rng=KEY)
  assert layer.name == 'Embedding_5_3' and table.shape == (5, 3)
  table = np.asarray(table)
  np.testing.assert_array_equal(layer(IDS), table[IDS])
  assert np.std(table) > 0.3  # N(0, 1) by default
  _check_signature(core.Embedding(5, 3), IDS)


def test_embedding_gradient_counts_each_id():
  layer = core.Embedding(5, 3)
  table, _ = layer.init(ShapeDtype(IDS.shape, np.int32))
  grad = jax.grad(lambda t: layer.pure_fn(IDS, t, (), None)[0].sum())(table)
  counts = np.zeros(5)
  np.add.at(counts, IDS.ravel(), 1)
  np.testing.assert_allclose(grad, np.tile(counts[:, None], (1, 3)))


def test_embedding_rejects_out_of_range_ids_eagerly():
  layer = core.Embedding(32, 8)
  table, _ = layer.init(ShapeDtype((1, 2), np.int32))
  bad = np.array([[-1, 40]], np.int32)
  with pytest.raises(
      LayerError, match=r'Embedding_32_8: ids must lie in \[0, 32\), got values '
      r'from -1 to 40'):
    layer.pure_fn(bad, table, (), None)


def test_embedding_out_of_range_ids_give_nan_under_jit_and_raise_through_call():
  layer = core.Embedding(32, 8)
  table, _ = layer.init(ShapeDtype((1, 2), np.int32))
  assert layer(np.array([[0, 31]], np.int32)).shape == (1, 2, 8)
  bad = np.array([[3, 32]], np.int32)
  assert np.all(np.isnan(jax.jit(layer.pure_fn)(bad, table, (), None)[0]))
  with pytest.raises(LayerError,
                     match=r'Embedding_32_8: ids must lie in \[0, 32\), got values from 3 to 32'):
    layer(bad)


def test_compiled_id_check_holds_no_host_callback():
  # A host callback in a program makes every call of it ~300 us slower.
  layer = core.Embedding(32, 8)
  table, _ = layer.init(ShapeDtype((1, 2), np.int32))
  text = jax.jit(layer.pure_fn).lower(np.zeros((1, 2), np.int32), table, (), None).as_text()
  assert 'callback' not in text


def test_check_ids_eager_traced_and_vmapped():
  assert core.check_ids(np.array([0, 9]), 10, 'Accuracy targets') is None
  with pytest.raises(
      ValueError, match=r'Accuracy targets: ids must lie in \[0, 10\), got '
      r'values from 0 to 10'):
    core.check_ids(np.array([0, 10]), 10, 'Accuracy targets')
  with pytest.raises(TypeError, match='Accuracy targets: ids must be integers, got dtype float32'):
    core.check_ids(np.array([0.0], np.float32), 10, 'Accuracy targets')

  def lookup(ids):
    bad = core.check_ids(ids, 4, 'T')
    return core.poison(jnp.take(jnp.arange(4.0), ids), bad), bad

  y, bad = jax.jit(lookup)(jnp.array([0, 3]))
  assert not bad and y.tolist() == [0.0, 3.0]
  ys, bads = jax.jit(jax.vmap(lookup))(jnp.array([[0, 3], [1, 7], [-1, 0]]))
  assert bads.tolist() == [False, True, True]
  assert ys[0].tolist() == [0.0, 3.0] and np.all(np.isnan(ys[1:]))


def test_poison_fills_with_nan_only_when_bad():
  y = jnp.ones((2, 3))
  assert core.poison(y, None) is y
  np.testing.assert_array_equal(core.poison(y, jnp.array(False)), y)
  assert np.all(np.isnan(core.poison(y, jnp.array(True))))


# ------------------------------------------------------------------ Dropout

ONES = np.ones((100, 100), np.float32)


def _dropout(layer, x, rng):
  return np.asarray(layer.pure_fn(x, (), (), rng)[0])


def test_dropout_statistics():
  y = _dropout(core.Dropout(0.3), ONES, KEY)
  np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-6)
  assert np.mean(y == 0) == pytest.approx(0.3, abs=0.02)
  assert np.mean(y) == pytest.approx(1.0, abs=0.03)
  _check_signature(core.Dropout(0.3), X)


def test_dropout_is_identity_outside_training_or_at_rate_zero():
  for layer in (core.Dropout(0.5, mode='eval'), core.Dropout(0.5,
                                                             mode='predict'), core.Dropout(0.0)):
    np.testing.assert_array_equal(_dropout(layer, X, KEY), X)
    np.testing.assert_array_equal(_dropout(layer, X, None), X)


def test_dropout_shared_axes_and_keys():
  x = ONES[:8, :50]
  y = _dropout(core.Dropout(0.5, shared_axes=[0]), x, KEY)
  assert np.all(y == y[:1]) and 0 < np.mean(y == 0) < 1  # one mask row for all rows
  layer = core.Dropout(0.5)
  np.testing.assert_array_equal(_dropout(layer, x, KEY), _dropout(layer, x, jax.random.key(0)))
  assert not np.array_equal(_dropout(layer, x, KEY), _dropout(layer, x, jax.random.key(1)))


def test_dropout_errors():
  with pytest.raises(LayerError, match=r"Dropout: mode='train' with rate=0.5 needs an rng"):
    core.Dropout(0.5).pure_fn(X, (), (), None)
  with pytest.raises(ValueError, match=r'Dropout: rate must be a number in \[0, 1\), got 1.0'):
    core.Dropout(1.0)
  with pytest.raises(ValueError, match="Dropout: mode must be one of .*got 'test'"):
    core.Dropout(0.1, mode='test')
  with pytest.raises(LayerError, match=r'shared axis 2 is out of range for input shape \(2, 3\)'):
    core.Dropout(0.1, shared_axes=[2]).pure_fn(X, (), (), KEY)


# ------------------------------------------------------------------ functions as layers

A = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 5 - 2


def _log_softmax(x, axis):
  x = x.astype(np.float64)
  m = x.max(axis, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


FUNCTIONS = [
    ('Flatten_keep1', core.Flatten(), lambda x: x.reshape(2, 12)),
    ('Flatten_keep2', core.Flatten(2), lambda x: x),
    ('Flatten_keep0', core.Flatten(0), lambda x: x.reshape(24)),
    ('Mean', core.Mean(), lambda x: x.mean(-1)),
    ('Mean', core.Mean(axis=1, keepdims=True), lambda x: x.mean(1, keepdims=True)),
    ('Sum', core.Sum(), lambda x: x.sum(-1)),
    ('Sum', core.Sum(axis=None), lambda x: x.sum()),
    ('LogSoftmax', core.LogSoftmax(), lambda x: _log_softmax(x, -1)),
    ('Softmax', core.Softmax(axis=1), lambda x: np.exp(_log_softmax(x, 1))),
    ('ArgMax', core.ArgMax(axis=1), lambda x: x.argmax(1)),
    ('Negate', core.Negate(), lambda x: -x),
    ('StopGradient', core.StopGradient(), lambda x: x),
    ('ToFloat', core.ToFloat(), lambda x: x),
]


@pytest.mark.parametrize('name, layer, reference', FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_function_layers_match_numpy(name, layer, reference):
  x = A * np.array([1, -1, 1], np.float32)[:, None] if name == 'ArgMax' else A
  y = layer(x)
  assert layer.name == name
  np.testing.assert_allclose(y, reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
  assert layer.output_signature(signature(x)) == signature(y)


def test_argmax_and_tofloat_dtypes():
  assert core.ArgMax()(A).dtype == jnp.int32
  assert core.ToFloat()(np.array([1, 2], np.int32)).dtype == jnp.float32


def test_stop_gradient_blocks_gradient():
  grad = jax.grad(lambda x: core.StopGradient().pure_fn(x, (), (), None)[0].sum() + x.sum())(
      jnp.ones(3))
  np.testing.assert_array_equal(grad, np.ones(3))


def test_flatten_rank_error():
  with pytest.raises(
      LayerError, match=r'Flatten: input rank 2 \(shape \(2, 3\)\) must exceed '
      r'n_axes_to_keep=2'):
    core.Flatten(2).output_signature(ShapeDtype((2, 3)))


def test_one_hot():
  ids = np.array([[0, 2], [3, 1]])
  y = core.one_hot(ids, 4)
  np.testing.assert_array_equal(y, np.eye(4)[ids])
  assert y.dtype == jnp.float32 and core.one_hot(ids, 4, jnp.int32).dtype == jnp.int32
  np.testing.assert_array_equal(core.one_hot(np.array([-1, 4]), 4), np.zeros((2, 4)))
