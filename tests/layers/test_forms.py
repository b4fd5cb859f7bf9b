"""Tests for minitrax.layers.forms and fn: layers written the ways Trax 1.2 and 1.4 documented."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import layers as tl
from minitrax.errors import ArgumentError, LayerError
from minitrax.layers import base, forms
from minitrax.layers.fn import Fn, PureLayer, layer
from minitrax.shapes import ShapeDtype

X = np.arange(6, dtype=np.float32).reshape(2, 3) / 6


class Affine14(base.Layer):
  """Trax 1.4's form: init assigns self.weights, forward(x) reads them."""

  def __init__(self, n_units):
    super().__init__(name='Affine14')
    self._n_units = n_units

  def init_weights_and_state(self, input_signature):
    rng_w, rng_b = self.new_rngs(2)
    self.weights = (jax.random.normal(rng_w, (input_signature.shape[-1], self._n_units)),
                    jax.random.normal(rng_b, (self._n_units,)))
    self.state = jnp.zeros((), jnp.int32)

  def forward(self, x):
    w, b = self.weights
    self.state = self.state + 1  # counts calls
    y = x @ w
    return y + jnp.broadcast_to(b, y.shape)


class Affine12(base.Layer):
  """Trax 1.2's form: new_weights(sig) with self.new_rng(), forward(x, weights)."""

  def __init__(self, n_units):
    super().__init__()
    self._n_units = n_units

  def new_weights(self, input_signature):
    return jax.random.normal(self.new_rng(), (input_signature.shape[-1], self._n_units))

  def forward(self, x, weights):
    return x @ weights


class Noise12(base.Layer):
  """Trax 1.2's `forward_with_state(inputs, weights=..., state=..., **kwargs)`, rng by keyword."""

  def forward_with_state(self, inputs, weights=(), state=(), **kwargs):
    return inputs + jax.random.normal(kwargs['rng'], inputs.shape), state


class Square14(base.Layer):
  """x * w with a custom backward that reports 10 times the true gradients (1.4 signature)."""

  def init_weights_and_state(self, input_signature):
    self.weights = jnp.full(input_signature.shape[-1:], 2.0)

  def forward(self, x):
    return x * jnp.broadcast_to(self.weights, x.shape)

  @property
  def has_backward(self):
    return True

  def backward(self, inputs, output, grad, weights, state, new_state, rng):
    del output, state, new_state, rng
    return (10 * grad * jnp.broadcast_to(weights, grad.shape), 10 * jnp.sum(grad * inputs, 0))


class Square12(Square14):
  """The same with Trax 1.2's `backward(..., **kwargs)`."""

  def backward(self, inputs, output, grad, weights, state, new_state, **kwargs):
    return super().backward(inputs, output, grad, weights, state, new_state, kwargs['rng'])


def test_forms_are_told_from_the_methods_overridden():
  assert forms.init_form(Affine14) == 'trax14' and forms.forward_form(Affine14) == 'trax14'
  assert forms.init_form(Affine12) == 'trax12' and forms.forward_form(Affine12) == 'minitrax'
  assert forms.forward_form(Noise12) == 'keywords'
  assert forms.init_form(tl.Dense) == 'minitrax' and forms.forward_form(tl.Dropout) == 'minitrax'


def test_trax14_layer_reads_scoped_weights_and_updates_state():
  layer = Affine14(4)
  weights, state = layer.init(ShapeDtype(X.shape), rng=jax.random.key(3))
  assert weights[0].shape == (3, 4) and weights[1].shape == (4,) and int(state) == 0
  y = layer(X)
  np.testing.assert_allclose(y, X @ np.asarray(weights[0]) + np.asarray(weights[1]), rtol=1e-6)
  assert int(layer.state) == 1
  out, new_state = jax.jit(layer.pure_fn)(X, weights, state, None)
  np.testing.assert_allclose(out, y, rtol=1e-6)
  assert int(new_state) == 1 and layer._scope is None  # pylint: disable=protected-access
  assert not isinstance(layer.weights[0], jax.core.Tracer)  # nothing of the trace stays


def test_trax14_layer_in_a_combinator_is_trained_through_jit_and_grad():
  model = tl.Serial(Affine14(2), tl.Relu(), Affine14(1))
  weights, state = model.init(ShapeDtype(X.shape))

  def loss(w):
    return jnp.sum(model.pure_fn(X, w, state, None)[0]**2)

  grads = jax.jit(jax.grad(loss))(weights)
  assert grads[0][0].shape == (3, 2) and bool(jnp.any(grads[2][0] != 0))


def test_trax12_forms_new_weights_and_keyword_rng():
  layer = Affine12(2)
  weights, _ = layer.init(ShapeDtype(X.shape), rng=jax.random.key(1))
  np.testing.assert_allclose(layer(X), X @ np.asarray(weights), rtol=1e-6)
  noise = Noise12()
  a = noise(X, rng=jax.random.key(5))
  np.testing.assert_allclose(a, X + np.asarray(jax.random.normal(jax.random.key(5), X.shape)))


@pytest.mark.parametrize('cls', [Square14, Square12], ids=['trax14', 'trax12'])
def test_backward_is_the_gradient(cls):
  layer = cls()
  weights, state = layer.init(ShapeDtype(X.shape))

  def loss(w, x):
    return jnp.sum(layer.pure_fn(x, w, state, jax.random.key(0))[0])

  grad_w, grad_x = jax.grad(loss, argnums=(0, 1))(weights, jnp.asarray(X))
  np.testing.assert_allclose(grad_w, 10 * X.sum(0), rtol=1e-6)
  np.testing.assert_allclose(grad_x, np.full(X.shape, 20.0), rtol=1e-6)


def test_new_rngs_split_the_layer_key_and_move_it_on():
  layer = Affine12(2)
  layer.rng = jax.random.key(7)
  first, second = layer.new_rngs(2)
  third = layer.new_rng()
  keys = [jax.random.key_data(k).tolist() for k in (first, second, third)]
  assert len({tuple(k) for k in keys}) == 3
  with pytest.raises(ArgumentError, match=r'Affine12.new_rngs: n must be an int >= 1, got 0'):
    layer.new_rngs(0)


def test_fn_in_both_generations():
  both = Fn(lambda a, b: (a + b, a * b))  # Trax 1.2: n_out found by a call
  assert (both.n_in, both.n_out, both.name) == (2, 2, 'Fn')
  assert Fn(lambda a, b: (a + b, a * b), n_in=2, n_out=2).n_out == 2
  total, product = both((X, X))
  np.testing.assert_allclose(total, 2 * X)
  np.testing.assert_allclose(product, X * X)
  named = Fn('Twice', lambda x: 2 * x)  # Trax 1.4
  assert (named.name, named.n_in, named.n_out) == ('Twice', 1, 1)
  with pytest.raises(ArgumentError, match=r'Fn Fn: n_out is not given and calling f on 1 arrays'):
    Fn(lambda x: x.no_such_method())
  assert PureLayer(lambda xs: xs[0] - xs[1], n_in=2)((X, X)).tolist() == np.zeros_like(X).tolist()


def test_layer_decorator_of_trax12():

  def new_scale(input_signature, init=1.0):
    return jnp.full(input_signature.shape[-1:], init)

  @layer(n_in=1, n_out=1, new_weights_fn=new_scale)
  def Scale(x, weights, **unused_kwargs):  # pylint: disable=invalid-name
    return x * jnp.broadcast_to(weights, x.shape)

  scale = Scale(init=3.0)
  assert type(scale).__name__ == 'Scale' and scale.name == 'Scale'
  np.testing.assert_allclose(scale(X), 3 * X)


def test_wrapping_an_initialised_layer_keeps_its_weights():
  dense = tl.Dense(4)
  dense.init(ShapeDtype(X.shape))
  y = dense(X)
  np.testing.assert_array_equal(tl.Serial(dense)(X), y)  # initialised on first call
  wrapped = tl.Serial(dense, tl.LogSoftmax())
  wrapped.init(ShapeDtype(X.shape), rng=jax.random.key(9))  # explicit init, another key
  np.testing.assert_array_equal(wrapped.weights[0][0], dense.weights[0])
  np.testing.assert_allclose(wrapped(X), jax.nn.log_softmax(y), rtol=1e-6)
  fresh = tl.Dense(4)
  fresh.init(ShapeDtype(X.shape), rng=jax.random.key(9))
  assert not np.array_equal(fresh.weights[0], dense.weights[0])


def test_surplus_inputs_are_an_error_at_the_top_and_stay_on_the_stack_inside_serial():
  log_probs = jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
  targets, weights = jnp.array([0, 1, 1]), jnp.array([1.0, 1.0, 0.0])
  with pytest.raises(LayerError, match=r'layer Accuracy \(n_in=2\): expected 2 inputs, got 3'):
    tl.Accuracy()((log_probs, targets, weights))
  with pytest.raises(LayerError, match=r'layer Dense_2 \(n_in=1\): expected 1 input, got 2'):
    tl.Dense(2)((X, X))
  accuracy, rest = tl.Serial(tl.Select([0, 1, 2]), tl.Accuracy())((log_probs, targets, weights))
  np.testing.assert_allclose(accuracy, 2 / 3, rtol=1e-6)
  np.testing.assert_array_equal(rest, weights)


def test_save_to_file_records_the_signature_for_an_uninitialised_layer(tmp_path):
  model = tl.Serial(tl.Dense(3), tl.Relu(), tl.Dense(2))
  model.init(ShapeDtype(X.shape))
  model.save_to_file(str(tmp_path / 'model.ckpt'))
  copy = tl.Serial(tl.Dense(3), tl.Relu(), tl.Dense(2))
  copy.init_from_file(str(tmp_path / 'model.ckpt'))  # no init, no signature given
  np.testing.assert_array_equal(copy(X), model(X))
  assert copy.input_signature == ShapeDtype(X.shape)
  model.save_to_file(str(tmp_path / 'weights.ckpt'), weights_only=True, input_signature=ShapeDtype(
      (5, 3)))
  other = tl.Serial(tl.Dense(3), tl.Relu(), tl.Dense(2))
  other.init_from_file(str(tmp_path / 'weights.ckpt'), weights_only=True)
  assert other.input_signature == ShapeDtype((5, 3))


def test_private_attributes_may_be_created_after_construction():
  layer = tl.Dense(2)
  layer._cache = 1  # pylint: disable=protected-access  (as Trax allows)
  with pytest.raises(AttributeError, match="layer Dense_2 has no attribute 'weight' to set"):
    layer.weight = 1  # pylint: disable=attribute-defined-outside-init


def test_init_takes_none_where_a_layer_ignores_its_signature():
  embedding = tl.Embedding(10, 4)
  weights, _ = embedding.init(None)  # as in Trax's tests: Embedding does not read it
  assert weights.shape == (10, 4)
  with pytest.raises(LayerError, match=r'Dense_2 \(in init\)'):
    tl.Dense(2).init(None)
