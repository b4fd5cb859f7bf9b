"""Weights and state trees: the walk, gather/scatter, sharing, the cache and its invalidation."""

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers import trees
from minitrax.layers.base import Layer
from minitrax.layers.combinators import Serial
from minitrax.shapes import ShapeDtype


class Bias(Layer):
  """Test layer: x + b; weights b of shape (d,), state: a call counter."""

  def __init__(self, name):
    super().__init__(name=name)

  def init_weights_and_state(self, input_signature, rng):
    return jax.random.normal(rng, input_signature.shape[-1:]), jnp.zeros((), jnp.int32)

  def forward_with_state(self, x, weights, state, rng):
    return x + jnp.broadcast_to(weights, x.shape), state + 1


def _names(layers):
  return [layer.name for layer in layers]


def _shared_model():
  """Serial(a, Serial(b, a), c, b): a and b used twice, the nested use of a first met late."""
  a, b, c = Bias('a'), Bias('b'), Bias('c')
  inner = Serial(b, a, name='inner')
  return Serial(a, inner, c, b, name='model'), (a, b, c, inner)


def test_unique_layers_first_use_depth_first_shared_once():
  model, _ = _shared_model()
  assert _names(trees.unique_layers(model)) == ['model', 'a', 'inner', 'b', 'c']
  assert trees.has_shared_layers(model)
  assert not trees.has_shared_layers(model.sublayers[1])  # inner alone: b, a once each
  leaf = Bias('leaf')
  assert trees.unique_layers(leaf) == [leaf] and not trees.has_shared_layers(leaf)


def test_gather_scatter_round_trip_with_shared_layers():
  model, (a, b, c, _) = _shared_model()
  weights, _ = model.init(ShapeDtype((2, 3)))
  # first uses hold the trees; repeated uses hold ().
  assert weights[1][1] == () and weights[3] == ()
  assert weights[0].shape == weights[1][0].shape == weights[2].shape == (3,)
  new = (jnp.full(3, 1.0), (jnp.full(3, 2.0), ()), jnp.full(3, 3.0), ())
  trees.scatter(model, 'weights', new)
  for layer, value in ((a, 1.0), (b, 2.0), (c, 3.0)):
    np.testing.assert_array_equal(layer.weights, np.full(3, value))
  gathered = trees.gather(model, 'weights')
  assert jax.tree.structure(gathered) == jax.tree.structure(new)
  for x, y in zip(jax.tree.leaves(gathered), jax.tree.leaves(new)):
    np.testing.assert_array_equal(x, y)


def test_fill_shared_puts_the_first_use_everywhere_and_clear_shared_undoes_it():
  model, _ = _shared_model()
  weights, _ = model.init(ShapeDtype((2, 3)))
  filled = trees.fill_shared(model, 'weights', weights)
  np.testing.assert_array_equal(filled[1][1], weights[0])  # a, met again inside inner
  np.testing.assert_array_equal(filled[3], weights[1][0])  # b, met again at the end
  cleared = trees.clear_shared(model, 'weights', filled)
  assert jax.tree.structure(cleared) == jax.tree.structure(weights)
  x = np.zeros((2, 3), np.float32)
  a, b, c = (np.asarray(w) for w in (weights[0], weights[1][0], weights[2]))
  np.testing.assert_allclose(model(x), x + a + b + a + c + b, rtol=1e-6)


def test_call_state_of_a_shared_layer_counts_every_use():
  model, (a, b, c, _) = _shared_model()
  model.init(ShapeDtype((1, 3)))
  model(np.zeros((1, 3), np.float32))
  # pure_fn threads one state per use; the first use's new state is stored.
  assert [int(layer.state) for layer in (a, b, c)] == [1, 1, 1]
  assert model.state[1][1] == () and model.state[3] == ()


def test_scatter_of_a_tree_that_does_not_fit_stores_nothing():
  model, (a, _, _, _) = _shared_model()
  weights, _ = model.init(ShapeDtype((1, 3)))
  bad = (jnp.ones(3), (jnp.ones(3),), jnp.ones(3), ())  # inner needs 2 entries
  with pytest.raises(
      LayerError, match=r'weights of inner must be a tuple of 2 \(one per '
      r'sublayer\), got tuple of 1'):
    model.weights = bad
  np.testing.assert_array_equal(a.weights, weights[0])


def test_a_store_through_a_sublayer_reaches_every_cached_tree_holding_it(monkeypatch):
  walks = []
  gather = trees.gather
  monkeypatch.setattr(trees, 'gather', lambda root, kind:
                      (walks.append(root.name), gather(root, kind))[1])
  shared, other = Bias('shared'), Bias('other')
  inner = Serial(shared, name='inner')
  one, two = Serial(inner, name='one'), Serial(other, shared, name='two')
  one.init(ShapeDtype((1, 2)))
  two.init(ShapeDtype((1, 2)))
  assert one.weights is one.weights and two.weights is two.weights
  assert walks == ['shared', 'one', 'two']  # two.init keeps shared's weights (read once)
  shared.weights = jnp.array([5.0, 6.0])  # the deepest layer, shared by both models
  np.testing.assert_array_equal(one.weights[0][0], [5.0, 6.0])
  np.testing.assert_array_equal(two.weights[1], [5.0, 6.0])
  inner.weights = (jnp.array([7.0, 8.0]),)  # a middle layer of one
  np.testing.assert_array_equal(one.weights[0][0], [7.0, 8.0])
  np.testing.assert_array_equal(two.weights[1], [7.0, 8.0])
  walks.clear()
  other.weights = jnp.zeros(2)  # in two only: one keeps its tree
  assert one.weights is one.weights and walks == []
  two.weights  # pylint: disable=pointless-statement
  assert walks == ['two']


def test_init_from_file_and_call_invalidate_cached_trees(tmp_path):
  layer = Bias('layer')
  model = Serial(layer, name='model')
  model.init(ShapeDtype((1, 2)))
  layer.weights = jnp.array([1.0, 2.0])
  path = tmp_path / 'layer.ckpt'
  layer.save_to_file(path)
  layer.weights = jnp.zeros(2)
  np.testing.assert_array_equal(model.weights[0], [0.0, 0.0])
  layer.init_from_file(path)
  np.testing.assert_array_equal(model.weights[0], [1.0, 2.0])
  assert int(model.state[0]) == 0
  layer(np.zeros((1, 2), np.float32))  # a sublayer's call stores its new state
  assert int(model.state[0]) == 1
  model(np.zeros((1, 2), np.float32))
  assert int(layer.state) == 2 and int(model.state[0]) == 2


def test_cached_trees_hold_their_roots_weakly():
  layer = Bias('layer')
  layer.init(ShapeDtype((1, 2)))
  wrapper = Serial(layer)
  assert wrapper.weights[0] is layer.weights
  ref = weakref.ref(wrapper)
  del wrapper
  gc.collect()
  assert ref() is None
  layer.weights = jnp.ones(2)  # a store after the root is gone
  np.testing.assert_array_equal(layer.weights, [1.0, 1.0])


@pytest.mark.parametrize('module_name', ['base', 'trees', 'diagnosis'])
def test_no_module_level_mutable_state(module_name):
  module = __import__(f'minitrax.layers.{module_name}', fromlist=['_'])
  mutable = (dict, list, set, bytearray, weakref.WeakKeyDictionary, weakref.WeakValueDictionary,
             weakref.WeakSet)
  found = [
      name for name, value in vars(module).items()
      if not name.startswith('__') and isinstance(value, mutable)
  ]
  assert not found, found
