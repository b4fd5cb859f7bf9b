"""`layer(x)` donates the state it owns (caches updated in place), never arrays you hold."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import layers as tl
from minitrax.errors import LayerError
from minitrax.layers import trees
from minitrax.models.transformer import TransformerLM
from minitrax.shapes import ShapeDtype

SIZES = dict(vocab_size=11, d_model=8, d_ff=16, n_layers=1, n_heads=2, max_len=6)
ONE = ShapeDtype((2, 1), np.int32)
IDS = np.array([[1, 4, 2, 7, 3, 5], [2, 9, 9, 1, 0, 6]], np.int32)


def _predictor(weights=None):
  model = TransformerLM(**SIZES, mode='predict')
  _, fresh = model.init(ONE)
  if weights is not None:
    model.weights = weights
  return model, fresh


def _held(model):
  """The stored state tree, read without handing it out (as the next call sees it)."""
  return trees.cached_gather(model, 'state')


def _caches(state):
  return [leaf for leaf in jax.tree.leaves(state) if leaf.ndim == 3]


def _alive(state):
  return all(not leaf.is_deleted() for leaf in jax.tree.leaves(state))


def test_codelab_loop_updates_the_caches_in_place_after_the_first_call():
  model, fresh = _predictor()
  model(IDS[:, :1])  # the state init returned is the caller's: copied, not donated
  assert _alive(fresh)
  for i in range(1, 4):
    before = _held(model)
    model(IDS[:, i:i + 1])
    assert before is not _held(model)
    assert all(cache.is_deleted() for cache in _caches(before)), f'token {i} copied the caches'
  assert _alive(fresh) and _alive(_held(model))
  assert model._jit_pure_fn._cache_size() == 1  # pylint: disable=protected-access


def test_donated_loop_equals_eval_within_1e_5_and_restarts_from_a_kept_state():
  evaluator = TransformerLM(**SIZES, mode='eval')
  weights, _ = evaluator.init(ShapeDtype(IDS.shape, np.int32))
  expected = np.asarray(evaluator(IDS))
  model, fresh = _predictor(weights)
  fed = np.pad(IDS, ((0, 0), (1, 0)))[:, :-1]  # predict mode does not shift: feed the shifted ids
  for _ in range(2):  # the second pass restarts from the state init returned
    model.state = fresh
    got = np.concatenate([np.asarray(model(fed[:, i:i + 1])) for i in range(IDS.shape[1])], 1)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_state_read_from_the_model_or_a_sublayer_is_never_donated():
  model, _ = _predictor()
  model(IDS[:, :1])
  model(IDS[:, 1:2])
  whole = model.state  # handed out: the next call copies it instead
  part = model.sublayers[4].state  # a decoder block's state: arrays of the model's tree
  model(IDS[:, 2:3])
  model(IDS[:, 3:4])
  assert _alive(whole) and _alive(part) and jax.tree.leaves(part)
  assert [int(c) for c in jax.tree.leaves(whole) if c.ndim == 0] == [2, 2]
  after = _held(model)
  model(IDS[:, 4:5])  # owned again after one copy: donated
  assert all(cache.is_deleted() for cache in _caches(after))


def test_a_state_passed_as_an_argument_is_never_donated():
  model, fresh = _predictor()
  model(IDS[:, :1], state=fresh)
  model(IDS[:, 1:2], state=fresh)
  assert _alive(fresh)


def test_an_input_passed_through_into_the_state_is_never_donated():

  class KeepInput(tl.Layer):
    """State: the last input, returned unchanged (JAX may hand back the input array itself)."""

    def init_weights_and_state(self, input_signature, rng):
      return (), jnp.zeros(input_signature.shape, input_signature.dtype)

    def forward_with_state(self, x, weights, state, rng):
      return x + state, x

  layer = KeepInput()
  first = jnp.ones((3,), jnp.float32)
  layer.init(ShapeDtype((3,)))
  layer(first)
  layer(jnp.full((3,), 2.0))
  np.testing.assert_array_equal(np.asarray(first), [1.0, 1.0, 1.0])
  np.testing.assert_array_equal(np.asarray(layer(jnp.zeros((3,)))), [2.0, 2.0, 2.0])


def test_overflow_in_a_donated_call_names_the_position_and_keeps_the_counters():
  model, _ = _predictor()
  for i in range(6):
    model(IDS[:, i:i + 1])
  message = 'ran past max_len=6: 1 new position\\(s\\) at position 6 need 7 cache slots'
  with pytest.raises(LayerError, match=message):
    model(IDS[:, :1])
  assert _alive(_held(model))
  with pytest.raises(LayerError, match=message):  # the counters are those before the failed call
    model(IDS[:, :1])


def test_bad_id_in_a_donated_call_raises_and_decoding_goes_on():
  model, _ = _predictor()
  model(IDS[:, :1])
  model(IDS[:, 1:2])
  with pytest.raises(LayerError, match=r'ids must lie in \[0, 11\), got values from 2 to 11'):
    model(np.array([[2], [11]], np.int32))
  state = model.state
  assert _alive(state) and [int(c) for c in jax.tree.leaves(state) if c.ndim == 0] == [2, 2]
  assert np.isfinite(np.asarray(model(IDS[:, 2:3]))).all()


def test_a_failed_call_with_a_given_state_keeps_the_layers_own_state():
  model, fresh = _predictor()
  model(IDS[:, :1])
  model(IDS[:, 1:2])
  with pytest.raises(LayerError, match=r'ids must lie in \[0, 11\)'):
    model(np.array([[2], [11]], np.int32), state=fresh)
  state = model.state
  assert _alive(state) and _alive(fresh)
  assert [int(c) for c in jax.tree.leaves(state) if c.ndim == 0] == [2, 2]


def test_a_failed_prompt_chunk_leaves_no_nan_for_the_calls_after_it():
  weights = _predictor()[0].weights
  failed, _ = _predictor(weights)
  clean, _ = _predictor(weights)
  for model in (failed, clean):
    model(IDS[:, :1])
    model(IDS[:, 1:2])
  with pytest.raises(LayerError, match=r'ids must lie in \[0, 11\)'):
    failed(np.array([[2, 3, 4], [11, 1, 1]], np.int32))  # writes 3 positions, then fails
  np.testing.assert_allclose(np.asarray(failed(IDS[:, 2:3])), np.asarray(clean(IDS[:, 2:3])),
                             atol=1e-6)


def test_an_overflowing_prompt_chunk_leaves_the_cache_as_it_was():
  weights = _predictor()[0].weights
  failed, _ = _predictor(weights)
  clean, _ = _predictor(weights)
  for model in (failed, clean):
    for i in range(4):
      model(IDS[:, i:i + 1])
  with pytest.raises(LayerError, match='3 new position\\(s\\) at position 4 need 7 cache slots'):
    failed(IDS[:, 1:4])  # past max_len=6: must not overwrite the filled positions
  np.testing.assert_allclose(np.asarray(failed(IDS[:, 4:5])), np.asarray(clean(IDS[:, 4:5])),
                             atol=1e-6)
