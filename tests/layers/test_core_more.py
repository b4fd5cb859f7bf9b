"""Weights, RandomUniform, Min and Max (Trax 1.4 core layers)."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError, ArgumentTypeError, LayerError
from minitrax.layers.combinators import Add, Branch, Serial
from minitrax.layers.core_more import Max, Min, RandomUniform, Weights
from minitrax.layers.initializers import RandomNormalInitializer
from minitrax.shapes import ShapeDtype

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import more_layers_fixture as fx  # noqa: E402


def test_weights_layer_outputs_its_weights_and_learns():
  layer = Weights(RandomNormalInitializer(1.0), shape=(2, 3))
  assert (layer.n_in, layer.n_out, layer.name) == (0, 1, 'Weights_(2, 3)')
  w, state = layer.init(())
  assert w.shape == (2, 3) and w.dtype == jnp.float32
  np.testing.assert_array_equal(layer(()), w)
  assert layer.output_signature(()) == ShapeDtype((2, 3))
  # In a model: x + learned bias; the gradient of sum(x + w) is 1 for every weight.
  model = Serial(Branch(None, layer), Add())
  weights, state = model.init(ShapeDtype((2, 3)))
  x = np.ones((2, 3), np.float32)
  np.testing.assert_allclose(model(x), x + weights[0][1][1], rtol=1e-6)
  grads = jax.grad(lambda ws: jnp.sum(model.pure_fn(x, ws, state, None)[0]))(weights)
  np.testing.assert_allclose(grads[0][1][1], np.ones((2, 3)))


def test_weights_layer_bfloat16_and_scalar_default():
  w, _ = Weights(lambda shape, rng: jnp.full(shape, 0.5), use_bfloat16=True).init(())
  assert (w.shape, w.dtype, float(w)) == ((), jnp.bfloat16, 0.5)


def test_weights_layer_errors():
  with pytest.raises(ArgumentTypeError, match='Weights: initializer must be a function'):
    Weights(None)
  with pytest.raises(LayerError, match=r'initializer returned shape \(3,\), expected \(2,\)'):
    Weights(lambda shape, rng: jnp.zeros((3,)), shape=(2,)).init(())


def test_random_uniform_draws_as_trax():
  # Trax 1.4.1 draws jax.random.uniform(rng, shape, dtype, min_val, max_val); its JAX made the
  # bits without `jax_threefry_partitionable`, so the same key gives the same numbers with it off.
  expected = fx.load('141')['uniform/y']
  layer = RandomUniform(min_val=-2.0, max_val=3.0, shape=(4,))
  with jax.threefry_partitionable(False):
    y, _ = layer.pure_fn((), (), (), jax.random.key(5))
  np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_random_uniform_range_shape_and_keys():
  layer = RandomUniform(min_val=1.0, max_val=2.0, shape=(1000,), dtype=jnp.bfloat16)
  assert (layer.n_in, layer.n_out) == (0, 1)
  a, _ = layer.pure_fn((), (), (), jax.random.key(0))
  b, _ = layer.pure_fn((), (), (), jax.random.key(1))
  assert a.shape == (1000,) and a.dtype == jnp.bfloat16
  assert 1.0 <= float(a.min()) and float(a.max()) <= 2.0 and not np.array_equal(a, b)
  assert layer.output_signature(()) == ShapeDtype((1000,), jnp.bfloat16)
  # Outside a device mapping, sync has nothing to sync: the same draw.
  c, _ = RandomUniform(1.0, 2.0, (1000,), jnp.bfloat16, sync=True).pure_fn((), (), (),
                                                                           jax.random.key(0))
  np.testing.assert_array_equal(a, c)


def test_random_uniform_errors():
  with pytest.raises(LayerError, match='RandomUniform: needs a JAX key to draw from, got rng=None'):
    RandomUniform().pure_fn((), (), (), None)
  with pytest.raises(ArgumentError, match='min_val must not exceed max_val, got 2.0 and 1.0'):
    RandomUniform(2.0, 1.0)
  with pytest.raises(ArgumentError, match='dtype must be a floating-point type'):
    RandomUniform(dtype=jnp.int32)


@pytest.mark.parametrize('layer_fn, np_fn', [(Min, np.min), (Max, np.max)])
def test_min_max(layer_fn, np_fn):
  x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
  np.testing.assert_array_equal(layer_fn()(x), np_fn(x, axis=-1))
  np.testing.assert_array_equal(layer_fn(axis=1, keepdims=True)(x), np_fn(x, axis=1, keepdims=True))
  np.testing.assert_array_equal(layer_fn(axis=None)(x), np_fn(x))
  assert layer_fn().name == layer_fn.__name__
  with pytest.raises(ArgumentTypeError, match=f'{layer_fn.__name__}: axis must be an int or None'):
    layer_fn(axis='last')
