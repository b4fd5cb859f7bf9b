"""Helper for test_distributed.py: FSDP against replicated training on 4 virtual CPU devices.

Run as a subprocess (XLA_FLAGS must be set before JAX starts):
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python sharding_run.py OUTPUT_DIR
Prints `REPORT <json>`.
"""

import json
import os
import sys

import numpy as np

import jax

from minitrax.data import copy_inputs
from minitrax.layers.activation_fns import Relu
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding, LogSoftmax
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.optimizers import Adam
from minitrax.supervised.sharding import device_bytes
from minitrax.supervised.trainer import Trainer

VOCAB = 16


def model(mode):
  del mode
  return Serial(Embedding(VOCAB, 64), Dense(512), Relu(), Dense(VOCAB), LogSoftmax())


def trainer(n_devices, sharding, output_dir=None):
  inputs = copy_inputs(batch_size=8, vocab_size=VOCAB, length=6, seed=1)
  return Trainer(model, CrossEntropyLoss, Adam, lambda step: 0.01, inputs, output_dir=output_dir,
                 n_devices=n_devices, has_weights=True, random_seed=2, sharding=sharding,
                 should_write_summaries=False)


def run(n_devices, sharding, output_dir=None):
  """Trains 2 epochs of 3 steps; returns the trainer, its losses, its weights and its bytes."""
  t = trainer(n_devices, sharding, output_dir)
  for _ in range(2):
    t.train_epoch(3, 1)
  run_state = t._run  # pylint: disable=protected-access
  per_device = device_bytes((run_state.weights, run_state.slots))
  losses = [v for _, v in t.history.get('eval', 'metrics/loss')]
  return t, losses, jax.tree.leaves(t.state.opt_state.weights), max(per_device.values())


def max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def main(output_dir):
  assert len(jax.devices()) == 4, jax.devices()
  # Replicated, every device holds what the one device of this run holds.
  _, losses_1, weights_1, bytes_1 = run(1, 'replicated')
  fsdp, losses_f, weights_f, bytes_f = run(4, 'fsdp', output_dir)
  fsdp.close()  # releases output_dir for the trainers that restore from it
  restored = {}
  for n in (1, 2, 4):
    t = trainer(n, 'fsdp', output_dir)
    run_state = t._run  # pylint: disable=protected-access
    restored[n] = {
        'step': t.step, 'weight_diff': max_diff(jax.tree.leaves(t.state.opt_state.weights),
                                                weights_f),
        'bytes': max(device_bytes((run_state.weights, run_state.slots)).values())
    }
    t.close()
  report = {
      'bytes': [bytes_1, bytes_f], 'losses': [losses_1, losses_f],
      'weight_diff': max_diff(weights_1, weights_f), 'fsdp_step': fsdp.step, 'restored': restored
  }
  print('REPORT ' + json.dumps(report))


if __name__ == '__main__':
  main(os.path.abspath(sys.argv[1]))
