"""Helper for test_training.py: a `training.Loop` on 1 and on 4 virtual CPU devices, a JSON report.

Run as a subprocess (XLA_FLAGS must be set before JAX starts):
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python loop_devices_run.py
"""

import json
import sys

import numpy as np

import jax

from minitrax.layers.activation_fns import Relu
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding
from minitrax.layers.metrics14 import WeightedCategoryAccuracy, WeightedCategoryCrossEntropy
from minitrax.optimizers import Adam
from minitrax.supervised.training import EvalTask, Loop, TrainTask


def batches(seed):
  """Endless batches of 16 rows whose 4 shards weigh differently (one shard nothing at first)."""
  rng = np.random.default_rng(seed)
  first = True
  while True:
    x = rng.integers(0, 11, size=(16, 5)).astype(np.int32)
    w = rng.integers(0, 3, size=(16, 5)).astype(np.float32)
    if first:
      w[:4] = 0.0
      first = False
    yield x, (x + 1) % 11, w


def run(n_devices):
  model = Serial(Embedding(11, 8), Dense(16), Relu(), Dense(11))
  task = TrainTask(batches(0), WeightedCategoryCrossEntropy(), Adam(0.01),
                   lr_schedule=lambda step: 0.01 + 0.001 * step, n_steps_per_checkpoint=3)
  eval_task = EvalTask(
      batches(1),
      [WeightedCategoryCrossEntropy(), WeightedCategoryAccuracy()], n_eval_batches=2)
  loop = Loop(model, task, eval_tasks=eval_task, n_devices=n_devices, random_seed=3)
  loop.run(7)
  return loop, history_values(loop)


def history_values(loop):
  """`{'<mode> <metric>': [values]}` of a Loop's history, timings left out."""
  return {
      f'{mode} {name}': [v for _, v in loop.history.get(mode, name)] for mode in loop.history.modes
      for name in loop.history.metrics_for_mode(mode)
      if 'second' not in name
  }


def main():
  assert len(jax.devices()) == 4, jax.devices()
  one, history_1 = run(1)
  four, history_4 = run(4)
  diffs = [
      float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
      for a, b in zip(jax.tree.leaves(one.model.weights), jax.tree.leaves(four.model.weights))
  ]
  report = {
      'n_devices': [one.n_devices, four.n_devices], 'weight_diff': max(diffs),
      'history': [history_1, history_4], 'tensorflow_imported': 'tensorflow' in sys.modules
  }
  print('REPORT ' + json.dumps(report))


if __name__ == '__main__':
  main()
