"""Research position encodings and rotary embeddings against real Trax (1.2.3, 1.4.1) and NumPy."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError, LayerError
from minitrax.layers.research.infinite_positions import (InfinitePositionalEncoding,
                                                         TimeBinPositionalEncoding)
from minitrax.layers.research.position_encodings import (FixedBasePositionalEncoding,
                                                         FixedBasePositionalEncoding12,
                                                         FixedBasePositionalEncoding14,
                                                         SinCosPositionalEncoding)
from minitrax.layers.research.rotary import Rotate, rotate
from minitrax.shapes import ShapeDtype, signature

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import research_fixture as fx  # noqa: E402

X = fx.DATA['x']  # (2, 6, 8)
E = dict(mode='eval')
FIX12 = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'attention12_123.npz'))

CASES = {  # the configurations of fixtures/make_research_141.py
    'Rotate': (Rotate, X),
    'FixedBase14': (lambda: FixedBasePositionalEncoding(bases=[3, 5], n_digits=2, **E), X),
    'SinCos': (lambda: SinCosPositionalEncoding(**E), X),
    'Infinite_any': (lambda: InfinitePositionalEncoding(affine=False, **E), X),
    'Infinite_diag': (lambda: InfinitePositionalEncoding(affine=False, transform='diag',
                                                         time_bin_length=4, **E), X),
    'Infinite_odd': (lambda: InfinitePositionalEncoding(affine=False, transform='none', **E),
                     X[..., :7]),
    'TimeBin': (lambda: TimeBinPositionalEncoding(time_bin_length=4, **E), X),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_outputs_are_those_of_trax_1_4(name):
  make, x = CASES[name]
  layer = make()
  y, want = fx.output_with_trax_weights(layer, name, x)
  np.testing.assert_allclose(y, want, atol=2e-6)  # printed by Trax 1.4.1
  assert layer.output_signature(ShapeDtype(x.shape)) == ShapeDtype(y.shape, y.dtype)


def test_rotate_matches_numpy_and_keeps_relative_scores():
  half = 4
  angles = np.arange(6)[:, None] * 10000.0**(-np.arange(0, 8, 2) / 8)[None, :]
  cos, sin = np.cos(np.tile(angles, 2)), np.sin(np.tile(angles, 2))
  turned = np.concatenate([-X[..., half:], X[..., :half]], -1)
  np.testing.assert_allclose(rotate(jnp.asarray(X)), X * cos + turned * sin, atol=1e-5)
  q = np.broadcast_to(X[:1, :1], (1, 6, 8))  # the same vector at every position
  r = np.asarray(rotate(jnp.asarray(q)))
  np.testing.assert_allclose(r[0, 1] @ r[0, 3], r[0, 2] @ r[0, 4], rtol=1e-5)


def test_fixed_base_of_trax_1_2_and_its_random_offset():
  x = FIX12['self_x']
  layer = FixedBasePositionalEncoding(base=3, n_digits=2, mode='eval')
  assert isinstance(layer, FixedBasePositionalEncoding12)
  layer.init(signature(x))
  tables = (jnp.asarray(FIX12['fixed_base_w0']), jnp.asarray(FIX12['fixed_base_w1']))
  y = np.asarray(layer(x, weights=tables))
  np.testing.assert_allclose(y, FIX12['fixed_base_y'], atol=1e-6)  # printed by Trax 1.2.3
  p = np.arange(8)
  want = x + np.concatenate([FIX12['fixed_base_w0'][p % 3], FIX12['fixed_base_w1'][p // 3]], -1)
  np.testing.assert_allclose(y, want, atol=1e-6)
  train = FixedBasePositionalEncoding(base=4, n_digits=2)
  w, s = train.init(signature(x))
  shifted, _ = train.pure_fn(x, w, s, jax.random.key(3))
  offset = next(
      o for o in range(16 - 8)
      if np.allclose(shifted - x,
                     np.concatenate([w[0][(p + o) % 4], w[1][(p + o) // 4]], -1)[None], atol=1e-6))
  assert 0 <= offset < 8


def test_fixed_base_of_trax_1_4_in_training_and_predict_mode():
  assert isinstance(FixedBasePositionalEncoding([2, 3]), FixedBasePositionalEncoding14)
  layer = FixedBasePositionalEncoding14(bases=[3, 5], n_digits=2, mode='eval')
  weights, _ = fx.trax_weights(layer, 'FixedBase14', X)
  want = np.asarray(layer(X, weights=weights))
  predictor = FixedBasePositionalEncoding14(bases=[3, 5], n_digits=2, mode='predict')
  w, s = predictor.init(ShapeDtype((2, 1, 8)))
  outs = []
  for i in range(6):
    y, s = predictor.pure_fn(X[:, i:i + 1], weights, s, None)
    outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), want, atol=1e-6)
  train = FixedBasePositionalEncoding14(bases=[3, 5], n_digits=2, base_dropout_one_in=1)
  y, _ = train.pure_fn(X, weights, (), jax.random.key(0))  # every base dropped ...
  np.testing.assert_allclose(y[:, 1:], X[:, 1:], atol=1e-6)  # ... except the start vector
  np.testing.assert_allclose(y[:, 0] - X[:, 0], np.broadcast_to(weights[1][0], (2, 8)), atol=1e-6)


@pytest.mark.parametrize('make', [
    lambda mode: SinCosPositionalEncoding(mode=mode),
    lambda mode: TimeBinPositionalEncoding(time_bin_length=4, mode=mode),
    lambda mode: InfinitePositionalEncoding(transform='diag', time_bin_length=3, mode=mode),
])
def test_predict_mode_equals_eval_mode(make):
  evaluated = make('eval')
  w, s = evaluated.init(ShapeDtype(X.shape))
  key = jax.random.key(4)
  want, _ = evaluated.pure_fn(X, w, s, key)
  predictor = make('predict')
  _, s = predictor.init(ShapeDtype((2, 1, 8)), rng=key)
  if isinstance(predictor, InfinitePositionalEncoding):  # the random phase: the same key
    s = (s[0], key, s[2])
  outs = []
  for i in range(6):
    y, s = predictor.pure_fn(X[:, i:i + 1], w, s, key)
    outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), want, atol=2e-5)


def test_infinite_encoding_draws_a_phase_per_call_and_has_trax_weights():
  layer = InfinitePositionalEncoding()
  w, s = layer.init(ShapeDtype(X.shape))
  assert w.shape == (8, 8) and np.allclose(w @ w.T, np.eye(8), atol=1e-5)
  a, _ = layer.pure_fn(X, w, s, jax.random.key(0))
  b, _ = layer.pure_fn(X, w, s, jax.random.key(1))
  assert not np.allclose(a, b, atol=1e-3)
  with pytest.raises(LayerError, match='affine=True draws a random phase and needs an rng'):
    layer.pure_fn(X, w, s, None)
  assert InfinitePositionalEncoding(transform='none').init(ShapeDtype(X.shape))[0] == ()


def test_time_bin_features_replace_the_last_three():
  layer = TimeBinPositionalEncoding(time_bin_length=4)
  y = np.asarray(layer(X))
  t = np.arange(6)
  want = np.stack([1 / (1 + t // 4), (t % 4) / 4, (t // 4) % 2], -1)
  np.testing.assert_allclose(y[..., -3:], np.broadcast_to(want, (2, 6, 3)), atol=1e-6)
  np.testing.assert_array_equal(y[..., :-3], X[..., :-3])


@pytest.mark.parametrize('make, message', [
    (lambda: FixedBasePositionalEncoding(base=1), 'base must be an int >= 2'),
    (lambda: FixedBasePositionalEncoding(bases=[3], base=3), 'pass base .Trax 1.2. or bases'),
    (lambda: InfinitePositionalEncoding(transform='full'), "transform must be 'any', 'diag'"),
    (lambda: TimeBinPositionalEncoding(0), 'time_bin_length must be an int >= 1'),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ArgumentError, match=message):
    make()


def test_lengths_must_fit_the_digits():
  layer = FixedBasePositionalEncoding(base=2, n_digits=2, mode='eval')
  with pytest.raises(LayerError, match='length 6 must be below base\\*\\*n_digits = 4'):
    layer(X)
