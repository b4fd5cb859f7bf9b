"""Accelerate: compiled on one device; data-parallel on 4 virtual CPU devices (a subprocess)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError, ArgumentTypeError, LayerError
from minitrax.layers.acceleration import Accelerate
from minitrax.layers.activation_fns import Relu
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Dropout, Mean
from minitrax.shapes import ShapeDtype

HERE = os.path.dirname(os.path.abspath(__file__))


def _mlp():
  return Serial(Dense(8), Relu(), Dense(3))


def test_one_device_matches_the_layer_and_shares_its_trees():
  layer = _mlp()
  x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
  weights, state = layer.init(ShapeDtype(x.shape))
  fast = Accelerate(layer, n_devices=1)
  assert (fast.n_in, fast.n_out, fast.sublayer) == (1, 1, layer)
  np.testing.assert_allclose(fast(x), layer(x), rtol=1e-6)  # no init of its own needed
  assert jax.tree.structure(fast.weights) == jax.tree.structure(weights)
  np.testing.assert_array_equal(fast.weights[0][0], weights[0][0])
  assert fast.output_signature(ShapeDtype(x.shape)) == ShapeDtype((5, 3))


def test_one_device_init_grad_and_use_inside_a_model():
  fast = Accelerate(Dense(2))
  model = Serial(fast, Mean())
  x = np.ones((4, 3), np.float32)
  weights, state = model.init(ShapeDtype(x.shape))
  grads = jax.jit(jax.grad(lambda w: jnp.sum(model.pure_fn(x, w, state, None)[0])))(weights)
  np.testing.assert_allclose(grads[0][1], np.full((2,), 2.0))  # d/db of sum_rows mean_cols
  assert jax.tree.structure(weights) == jax.tree.structure(((jnp.zeros(1), jnp.zeros(1)), ()))


def test_replicate_weights_sets_the_layers_weights():
  layer = Dense(2)
  fast = Accelerate(layer)
  fast.init(ShapeDtype((1, 3)))
  new = (jnp.ones((3, 2)), jnp.zeros((2,)))
  fast.replicate_weights(new)
  np.testing.assert_array_equal(layer.weights[0], np.ones((3, 2)))
  np.testing.assert_allclose(fast(np.ones((1, 3), np.float32)), [[3.0, 3.0]])
  fast.replicate_state(())
  assert fast.state == ()


def test_rng_reaches_the_layer():
  fast = Accelerate(Dropout(0.5))
  fast.init(ShapeDtype((4, 100)))
  y = fast(np.ones((4, 100), np.float32), rng=jax.random.key(3))
  assert set(np.unique(np.asarray(y)).tolist()) == {0.0, 2.0}


def test_errors():
  with pytest.raises(ArgumentError, match=r'n_devices=9 exceeds the \d+ local cpu devices'):
    Accelerate(Dense(2), n_devices=9)
  with pytest.raises(ArgumentTypeError, match='Accelerate: layer must be a Layer'):
    Accelerate(lambda x: x)
  with pytest.raises(LayerError, match='every input needs a leading batch axis'):
    Accelerate(Relu())(np.float32(1.0))


@pytest.fixture(scope='module')
def four_device_report():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, os.path.join(HERE, 'accelerate_run.py')], env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  line = [row for row in out.stdout.splitlines() if row.startswith('REPORT ')][-1]
  return json.loads(line[len('REPORT '):])


def test_four_devices_match_the_plain_layer(four_device_report):
  report = four_device_report
  assert report['n_devices'] == 4
  for case, shape in (('divisible', [8, 3]), ('padded', [6, 3]), ('two_inputs', [8, 2])):
    assert report[case]['shape'] == shape, case
    assert report[case]['outputs'] < 1e-5, case
    assert report[case]['grads'] < 1e-5, case


def test_four_devices_random_draws_and_state(four_device_report):
  draws = four_device_report['draws']
  assert len(set(draws['False'])) == 4  # each device draws from its own key
  assert len(set(draws['True'])) == 1  # RandomUniform(sync=True): one draw on all devices
  norm = four_device_report['batch_norm']
  assert norm['finite'] and norm['same_tree'] and norm['counts'] == [1, 1]
  assert norm['mean_diff'] < 1e-6  # running mean over equal shards == over the batch
