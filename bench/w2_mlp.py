"""W2 'mlp_mnist': MLP 784-512-512-10, batch 128, Adam 1e-3, random MNIST-shaped data.

The same workload as ../shared/bench/peers/w2_mlp_mnist_flax.py: 16 random
batches made once (on device) and cycled, `common.time_train_loop`'s protocol,
FLOPs/step = 6 * n_params * batch. The step is `common.manual_train_step`:
`Serial(MLP(d_hidden=512, n_hidden_layers=2), CrossEntropyLoss())`, value_and_grad of
`pure_fn`, Adam's `tree_update`, one jit with the state donated.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from bench import common
from minitrax.layers.combinators import Serial
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.models.mlp import MLP
from minitrax.optimizers.adam import Adam
from minitrax.shapes import ShapeDtype


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--steps', type=int, default=1000, help='timed steps')
  p.add_argument('--block', type=int, default=100)
  p.add_argument('--warmup', type=int, default=20)
  p.add_argument('--batch', type=int, default=128)
  p.add_argument('--n_batches', type=int, default=16, help='distinct batches, cycled')
  p.add_argument('--seed', type=int, default=0)
  return p.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  calib = common.calibrate()
  rng = np.random.RandomState(args.seed)
  xs = [
      jnp.asarray(rng.rand(args.batch, 28, 28, 1).astype(np.float32)) for _ in range(args.n_batches)
  ]
  ys = [
      jnp.asarray(rng.randint(0, 10, size=(args.batch,)).astype(np.int32))
      for _ in range(args.n_batches)
  ]
  model = Serial(MLP(d_hidden=512, n_hidden_layers=2, n_output_classes=10), CrossEntropyLoss())
  optimizer = Adam(learning_rate=1e-3)
  signature = (ShapeDtype(xs[0].shape, np.float32), ShapeDtype(ys[0].shape, np.int32))
  state = common.initial_state(model, optimizer, signature, jax.random.key(args.seed))
  n_params = common.n_params(state[0])
  state, timing = common.time_train_loop(common.manual_train_step(model, optimizer), state,
                                         list(zip(xs, ys)), args.steps, args.block, args.warmup)
  flops_per_step = 6 * n_params * args.batch
  common.emit(
      'W2_mlp_mnist', 'minitrax (manual step)', args, {
          'n_params': n_params,
          **timing,
          'flops_formula': '6 * n_params * batch per train step',
          'flops_per_step': flops_per_step,
          'gflops': flops_per_step * timing['steady_steps_per_s'] / 1e9,
          'peak_rss_mib': common.peak_rss_mib(),
      }, calib)


if __name__ == '__main__':
  main()
