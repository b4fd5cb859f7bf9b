"""Helper for test_acceleration.py: Accelerate on 4 virtual CPU devices; prints a JSON report.

Run as a subprocess (XLA_FLAGS must be set before JAX starts):
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python accelerate_run.py
"""

import json

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.layers.acceleration import Accelerate
from minitrax.layers.activation_fns import Relu
from minitrax.layers.combinators import Add, Branch, Serial
from minitrax.layers.core import Dense
from minitrax.layers.core_more import RandomUniform
from minitrax.layers.normalization import BatchNorm
from minitrax.shapes import ShapeDtype


def max_diff(a, b):
  return max(
      float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def compare(layer, x):
  """Largest difference between `Accelerate(layer)` on 4 devices and `layer`, outputs and grads."""
  layer.init(jax.tree.map(lambda a: ShapeDtype(a.shape, a.dtype), x))
  fast = Accelerate(layer)
  y_plain, y_fast = layer(x), fast(x)  # fast: no init of its own (the layer is initialised)
  weights, state = layer.weights, layer.state

  def total(run, w):
    return sum(jnp.sum(y) for y in jax.tree.leaves(run(x, w, state, None)[0]))

  g_plain = jax.grad(lambda w: total(layer.pure_fn, w))(weights)
  g_fast = jax.jit(jax.grad(lambda w: total(fast.pure_fn, w)))(weights)
  return {
      'outputs': max_diff(y_plain, y_fast), 'grads': max_diff(g_plain, g_fast),
      'shape': list(np.shape(jax.tree.leaves(y_fast)[0]))
  }


def main():
  assert len(jax.devices()) == 4, jax.devices()
  rng = np.random.default_rng(0)
  mlp = lambda: Serial(Dense(16), Relu(), Dense(3))  # noqa: E731
  report = {
      'divisible':
          compare(mlp(),
                  rng.normal(size=(8, 5)).astype(np.float32)),
      'padded':
          compare(mlp(),
                  rng.normal(size=(6, 5)).astype(np.float32)),
      'two_inputs':
          compare(Serial(Add(), Dense(2)),
                  tuple(rng.normal(size=(8, 3)).astype(np.float32) for _ in range(2))),
      'n_devices':
          Accelerate(mlp())._n_devices,  # pylint: disable=protected-access
  }
  x = np.ones((8, 2), np.float32)
  draws = {}
  for sync in (False, True):
    layer = Accelerate(Branch(None, RandomUniform(shape=(1,), sync=sync)))
    layer.init(ShapeDtype(x.shape), rng=jax.random.key(1))
    draws[str(sync)] = np.asarray(layer(x)[1]).tolist()  # one draw per device
  report['draws'] = draws
  x = rng.normal(size=(8, 3)).astype(np.float32) + 5.0
  plain, norm = BatchNorm(axis=(0,)), Accelerate(BatchNorm(axis=(0,)))
  plain.init(ShapeDtype(x.shape))
  norm.init(ShapeDtype(x.shape))
  plain(x)
  y = norm(x)
  report['batch_norm'] = {
      'finite': bool(np.all(np.isfinite(y))),
      'same_tree': jax.tree.structure(plain.state) == jax.tree.structure(norm.state),
      'mean_diff': max_diff(plain.state[0], norm.state[0]),  # equal shards: mean of means
      'counts': [int(plain.state[2]), int(norm.state[2])],
  }
  print('REPORT ' + json.dumps(report))


if __name__ == '__main__':
  main()
