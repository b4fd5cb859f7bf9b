"""Helper for test_step.py: trains on 1 and on 4 virtual CPU devices, prints a JSON report.

Run as a subprocess (XLA_FLAGS must be set before JAX starts):
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python devices_run.py
"""

import json
import sys

import numpy as np

import jax

from minitrax.data import array_inputs
from minitrax.layers.activation_fns import Relu
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding, LogSoftmax
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.optimizers import Adam
from minitrax.supervised.trainer import Trainer


def model(mode):
  del mode
  return Serial(Embedding(11, 8), Dense(16), Relu(), Dense(11), LogSoftmax())


def run(n_devices):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 11, size=(64, 5)).astype(np.int32)
  weights = rng.integers(0, 3, size=(64, 5)).astype(np.float32)  # shards weigh differently
  weights[:8] = 0.0  # and one shard of the first batch weighs nothing at all
  inputs = array_inputs((x, (x + 1) % 11, weights), batch_size=16, shuffle=False)
  trainer = Trainer(model, CrossEntropyLoss, Adam, lambda step: 0.01 + 0.001 * step, inputs,
                    n_devices=n_devices, has_weights=True, random_seed=3)
  losses = []
  for _ in range(3):
    trainer.train_epoch(2, 2)
    losses.append(trainer.history.get('eval', 'metrics/loss')[-1][1])
  metrics = {
      m: trainer.history.get(mode, 'metrics/' + m)[-1][1] for mode in ('train', 'eval')
      for m in trainer.history.metrics_for_mode(mode) if m.startswith('metrics/')
      for m in [m[len('metrics/'):]]
  }
  return trainer, losses, metrics


def main():
  assert len(jax.devices()) == 4, jax.devices()
  one, losses_1, metrics_1 = run(1)
  four, losses_4, metrics_4 = run(4)
  diffs = [
      float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(one.state.opt_state.weights),
                                                   jax.tree.leaves(four.state.opt_state.weights))
  ]
  report = {
      'n_devices': [one.n_devices,
                    four.n_devices], 'weight_diff': max(diffs), 'losses': [losses_1, losses_4],
      'metrics': [metrics_1, metrics_4], 'tensorflow_imported': 'tensorflow' in sys.modules
  }
  print('REPORT ' + json.dumps(report))


if __name__ == '__main__':
  main()
