"""The Layer contract: init, pure_fn, __call__, errors, sharing, files."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import checkpoint
from minitrax.errors import CheckpointError, LayerAttributeError, LayerError, MinitraxError
from minitrax.layers import trees
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Branch, Serial
from minitrax.shapes import ShapeDtype


class Linear(Layer):
  """Test layer: (..., d) -> (..., n); weights (w, b)."""

  def __init__(self, n):
    super().__init__(name=f'Linear_{n}')
    self._n = n

  def init_weights_and_state(self, input_signature, rng):
    w = jax.random.normal(rng, (input_signature.shape[-1], self._n))
    return (w, jnp.zeros(self._n)), ()

  def forward(self, x, weights):
    w, b = weights
    y = x @ w
    return y + jnp.broadcast_to(b, y.shape)


class Counter(Layer):
  """Test layer with state: counts calls, passes x through."""

  def init_weights_and_state(self, input_signature, rng):
    return (), jnp.zeros((), jnp.int32)

  def forward_with_state(self, x, weights, state, rng):
    return x, state + 1


def test_init_stores_weights_and_output_signature():
  layer = Linear(4)
  weights, state = layer.init(ShapeDtype((2, 3)))
  assert layer.weights[0].shape == (3, 4) and state == ()
  assert layer.output_signature(ShapeDtype((2, 3))) == ShapeDtype((2, 4))
  assert layer.initialized


def test_call_matches_numpy_and_uses_stored_weights():
  layer = Linear(2)
  layer.init(ShapeDtype((1, 3)), rng=jax.random.key(1))
  x = np.arange(3, dtype=np.float32)[None]
  w, b = (np.asarray(a) for a in layer.weights)
  np.testing.assert_allclose(layer(x), x @ w + b, rtol=1e-6)


def test_call_without_init_initialises_from_input():
  y = Serial(Linear(5), Fn('Relu', jax.nn.relu))(np.ones((2, 3), np.float32))
  assert y.shape == (2, 5)


def test_repeated_calls_do_not_retrace():
  traces = []

  def double(x):
    traces.append(1)
    return 2 * x

  model = Serial(Linear(3), Fn('Double', double))
  model.init(ShapeDtype((1, 1), np.int32).replace(dtype=np.float32))
  for i in range(10):
    model(np.array([[float(i)]], np.float32))
  n_after_loop = len(traces)
  model(np.ones((2, 1), np.float32))  # a new shape traces once more
  # init's abstract output signature traces once; the loop of ten calls once.
  assert n_after_loop == 2
  assert len(traces) == 3


def test_state_is_stored_after_call():
  counter = Counter()
  model = Serial(Linear(2), counter)
  model.init(ShapeDtype((1, 2)))
  for _ in range(3):
    model(np.ones((1, 2), np.float32))
  assert int(counter.state) == 3
  assert int(model.state[1]) == 3


def test_gathered_trees_are_reused_until_any_layer_stores_new_ones(monkeypatch):
  """A loop of calls walks the layer tree once for the weights; stores anywhere are seen."""
  walks = []
  gather = trees.gather
  monkeypatch.setattr(trees, 'gather', lambda root, kind:
                      (walks.append(kind), gather(root, kind))[1])
  counter, linear = Counter(), Linear(2)
  model = Serial(linear, counter)
  model.init(ShapeDtype((1, 2)))
  walks.clear()
  for _ in range(5):
    model(np.ones((1, 2), np.float32))
  assert walks.count('weights') == 1 and walks.count('state') <= 1, walks
  linear.weights = (jnp.ones((2, 2)), jnp.full((2,), 7.0))  # a sublayer's store
  np.testing.assert_array_equal(model.weights[0][1], [7.0, 7.0])
  np.testing.assert_array_equal(model(np.zeros((1, 2), np.float32)), [[7.0, 7.0]])
  counter.state = jnp.asarray(40, jnp.int32)
  assert int(model.state[1]) == 40
  model(np.zeros((1, 2), np.float32))
  assert int(counter.state) == 41 and int(model.state[1]) == 41


def test_no_tracer_is_stored_on_layers():
  model = Serial(Linear(3), Counter(), Linear(1))
  weights, state = model.init(ShapeDtype((2, 3)))

  def loss(w):
    y, _ = model.pure_fn(jnp.ones((2, 3)), w, state, None)
    return y.sum()

  jax.jit(jax.grad(loss))(weights)
  for layer in [model, *model.sublayers]:
    for value in jax.tree.leaves((vars(layer), layer.weights, layer.state)):
      assert not isinstance(value, jax.core.Tracer), (layer.name, value)


def test_sublayers_get_their_own_rng():
  model = Serial(Linear(3), Linear(3))
  model.init(ShapeDtype((1, 3)))
  first, second = model.weights
  assert not np.allclose(first[0], second[0])


def test_init_is_deterministic_from_rng():
  a = Serial(Linear(3), Linear(2))
  b = Serial(Linear(3), Linear(2))
  a.init(ShapeDtype((1, 4)), rng=jax.random.key(7))
  b.init(ShapeDtype((1, 4)), rng=jax.random.key(7))
  for x, y in zip(jax.tree.leaves(a.weights), jax.tree.leaves(b.weights)):
    np.testing.assert_array_equal(x, y)


def test_reused_instance_shares_weights():
  shared = Linear(3)
  model = Serial(shared, Fn('Tanh', jnp.tanh), shared)
  weights, _ = model.init(ShapeDtype((2, 3)))
  assert weights[2] == ()  # the second use holds no weights of its own
  w, b = (np.asarray(a) for a in shared.weights)
  x = np.ones((2, 3), np.float32)
  np.testing.assert_allclose(model(x), np.tanh(x @ w + b) @ w + b, rtol=1e-5)

  def loss(params):
    return model.pure_fn(jnp.asarray(x), params, model.state, None)[0].sum()

  grads = jax.grad(loss)(weights)
  assert grads[2] == ()

  def by_hand(w):
    bias = b[None, :]
    return (jnp.tanh(x @ w + bias) @ w + bias).sum()

  np.testing.assert_allclose(grads[0][0], jax.grad(by_hand)(jnp.asarray(w)), rtol=1e-5)


def test_layer_error_names_layer_creation_site_and_shapes():
  model = Serial(Linear(4), Linear(2))
  model.init(ShapeDtype((2, 3)))
  line = test_layer_error_names_layer_creation_site_and_shapes.__code__.co_firstlineno + 1
  with pytest.raises(LayerError) as info:
    model(np.ones((2, 5), np.float32))
  message = str(info.value)
  assert message.startswith('Exception passing through layer Linear_4 (in pure_fn):')
  assert f'layer created in {__file__}:{line}' in message
  assert 'layer path: Serial > Linear_4' in message
  assert 'input signature: ShapeDtype{shape:(2, 5), dtype:float32}' in message
  assert 'TypeError: dot_general requires contracting dimensions' in message
  assert isinstance(info.value.__cause__, TypeError)
  assert isinstance(info.value, MinitraxError)


def test_layer_error_in_init_and_output_signature():

  class Broken(Layer):

    def init_weights_and_state(self, input_signature, rng):
      raise ValueError('needs rank 3')

  with pytest.raises(
      LayerError, match=r'(?s)layer Broken \(in init\).*Serial > Broken.*'
      r'ShapeDtype\{shape:\(4,\), dtype:int32\}.*ValueError: needs rank 3'):
    Serial(Broken()).init(ShapeDtype((4,), np.int32))
  with pytest.raises(LayerError, match=r'(?s)Broken \(in output_signature\).*needs rank 3'):
    Broken().output_signature(ShapeDtype((4,)))


def test_make_weights_and_state_is_pure_and_names_the_layer():
  layer = Serial(Linear(3), Counter())
  weights, state = layer.make_weights_and_state(ShapeDtype((2, 4)), jax.random.key(0))
  assert weights[0][0].shape == (4, 3) and int(state[1]) == 0
  assert not layer.initialized and layer.weights == ((), ()) and layer.state == ((), ())

  class Broken(Layer):

    def init_weights_and_state(self, input_signature, rng):
      raise ValueError('needs rank 3')

  with pytest.raises(
      LayerError, match=r'(?s)layer Broken \(in init\).*layer path: Serial > '
      r'Broken\n.*ValueError: needs rank 3') as info:
    Serial(Broken()).make_weights_and_state(ShapeDtype((4,)), jax.random.key(0))
  assert isinstance(info.value.__cause__, ValueError)


class Cached(Layer):
  """Test layer: a predict-mode cache of `capacity` positions."""

  def __init__(self, capacity):
    super().__init__(name=f'Cached_{capacity}')
    self._capacity = capacity

  def forward(self, x, weights):
    return x

  def predict_capacity(self):
    return self._capacity


def test_predict_capacity_default_is_the_least_of_the_sublayers():
  assert Linear(2).predict_capacity() is None
  assert Serial(Linear(2), Counter()).predict_capacity() is None
  assert Serial(Cached(None), Cached(64)).predict_capacity() == 64
  shared = Cached(16)
  model = Serial(Cached(64), Branch(shared, Serial(Linear(2), shared)), Cached(None))
  assert model.predict_capacity() == 16


def test_misspelt_attribute_raises():
  layer = Linear(2)
  with pytest.raises(
      LayerAttributeError, match="layer Linear_2 has no attribute 'weight' to "
      "set; did you mean 'weights'"):
    layer.weight = ()
  with pytest.raises(AttributeError):
    layer.stat = ()


def test_setting_weights_of_wrong_structure_raises():
  model = Serial(Linear(2), Linear(2))
  with pytest.raises(
      LayerError, match=r'weights of Serial must be a tuple of 2 \(one per '
      r'sublayer\), got tuple of 3'):
    model.weights = ((), (), ())


def test_repr_is_a_tree():
  model = Serial(Linear(3), Branch(Linear(1), Linear(2)), name='Model')
  assert repr(model) == ('Model_out2[\n  Linear_3\n  Branch_out2[\n    Linear_1\n'
                         '    Linear_2\n  ]\n]')


def test_fn_arity_and_errors():
  layer = Fn('Pair', lambda a, b: (a + b, a - b), n_out=2)
  assert (layer.n_in, layer.n_out) == (2, 2)
  s, d = layer((jnp.ones(2), jnp.ones(2)))
  np.testing.assert_array_equal(s, [2, 2])
  np.testing.assert_array_equal(d, [0, 0])
  with pytest.raises(ValueError, match='Fn Bad: f must have a fixed number'):
    Fn('Bad', lambda *xs: xs)


def test_save_and_init_from_file_round_trip(tmp_path):
  model = Serial(Linear(3), Counter())
  model.init(ShapeDtype((1, 2)), rng=jax.random.key(3))
  model(np.ones((1, 2), np.float32))
  path = tmp_path / 'model.ckpt'
  model.save_to_file(path)
  other = Serial(Linear(3), Counter())
  other.init(ShapeDtype((1, 2)), rng=jax.random.key(4))
  other.init_from_file(path)
  for a, b in zip(jax.tree.leaves(model.weights), jax.tree.leaves(other.weights)):
    np.testing.assert_array_equal(a, b)
  assert int(other.state[1]) == 1
  fresh = Serial(Linear(3), Counter())
  fresh.init(ShapeDtype((1, 2)))
  fresh.init_from_file(path, weights_only=True)
  assert int(fresh.state[1]) == 0


def test_init_from_file_reads_a_trainer_checkpoint(tmp_path):
  model = Linear(2)
  model.init(ShapeDtype((1, 3)))
  path = tmp_path / 'model.pkl'
  checkpoint.save(
      path,
      {'step': 500, 'weights': model.weights, 'state': model.state, 'slots': (), 'history': {}})
  other = Linear(2)
  other.init_from_file(path, weights_only=True, input_signature=ShapeDtype((1, 3)))
  np.testing.assert_array_equal(other.weights[0], model.weights[0])


def test_init_from_file_mismatch_lists_paths_and_loads_nothing(tmp_path):
  saved = Serial(Linear(3), Linear(2))
  saved.init(ShapeDtype((1, 4)))
  path = tmp_path / 'm.ckpt'
  saved.save_to_file(path)
  target = Serial(Linear(3), Linear(5))
  target.init(ShapeDtype((1, 4)), rng=jax.random.key(9))
  before = [np.asarray(a) for a in jax.tree.leaves(target.weights)]
  with pytest.raises(CheckpointError) as info:
    target.init_from_file(path)
  message = str(info.value)
  assert '2 mismatched path(s)' in message
  assert '[1][0]: saved (3, 2) float32, expected (3, 5) float32' in message
  assert '[1][1]: saved (2,) float32, expected (5,) float32' in message
  for a, b in zip(before, jax.tree.leaves(target.weights)):
    np.testing.assert_array_equal(a, b)


def test_init_from_file_refuses_pickle_and_requires_a_signature(tmp_path):
  path = tmp_path / 'model.pkl'
  path.write_bytes(pickle.dumps({'weights': ()}))
  for layer in (Linear(2), Linear(2)):  # uninitialised, then initialised
    with pytest.raises(CheckpointError, match='model.pkl: the file is a Python pickle but not a '
                       'Trax checkpoint'):
      layer.init_from_file(path)
    layer.init(ShapeDtype((1, 2)))
  # A file that records no input signature cannot initialise a layer by itself.
  bare = tmp_path / 'bare.ckpt'
  saved = (np.ones((2, 2), np.float32), np.zeros(2, np.float32))
  checkpoint.save(bare, {'weights': saved, 'state': ()})
  with pytest.raises(LayerError, match=r'call init\(input_signature\) before init_from_file'):
    Linear(2).init_from_file(bare)
  layer = Linear(2)
  layer.init_from_file(bare, input_signature=ShapeDtype((1, 2)))
  np.testing.assert_array_equal(layer.weights[0], np.ones((2, 2)))
