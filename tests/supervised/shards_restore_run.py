"""Helper for test_distributed.py: a checkpoint of 2 FSDP processes restored in one process.

Run as a subprocess (XLA_FLAGS must be set before JAX starts):
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python shards_restore_run.py RUN_DIR WORK_DIR

RUN_DIR holds the checkpoint that `distributed_run.py ... --fsdp` wrote with 2
processes. For 1 device (replicated) and 4 devices (FSDP), a copy of it in
WORK_DIR is restored by a Trainer of the same model, which trains 2 more
steps (and saves). Prints `REPORT <json>`: per device count, the step and
flattened weights as restored, the step after training, the largest change of
a weight by it, whether the weights are finite, and the shard folders left
(the new checkpoint, of one process, has none).
"""

import json
import os
import shutil
import sys

import numpy as np

import jax

import distributed_run
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.lr import MultifactorSchedule
from minitrax.optimizers import Adam
from minitrax.supervised.trainer import Trainer


def restore_and_train(run_dir, work_dir, n_devices, sharding):
  copy = os.path.join(work_dir, f'{n_devices}-{sharding}')
  shutil.copytree(run_dir, copy)
  trainer = Trainer(distributed_run.fsdp_model, CrossEntropyLoss, Adam, MultifactorSchedule,
                    distributed_run.inputs(), copy, random_seed=3, n_devices=n_devices,
                    has_weights=True, sharding=sharding, should_write_summaries=False)
  step, restored = trainer.step, [np.asarray(w) for w in jax.tree.leaves(trainer.model_weights)]
  trainer.train_epoch(2, 0)
  trained = [np.asarray(w) for w in jax.tree.leaves(trainer.model_weights)]
  report = {
      'step': step, 'weights': [w.ravel().tolist() for w in restored], 'step_after': trainer.step,
      'change': max(float(np.max(np.abs(a - b))) for a, b in zip(trained, restored)),
      'finite': all(bool(np.all(np.isfinite(w))) for w in trained),
      'folders': sorted(n for n in os.listdir(copy) if '.shards-' in n)
  }
  trainer.close()
  return report


def main(run_dir, work_dir):
  assert len(jax.devices()) == 4, jax.devices()
  report = {
      n: restore_and_train(run_dir, work_dir, n, s) for n, s in ((1, 'replicated'), (4, 'fsdp'))
  }
  print('REPORT ' + json.dumps(report))


if __name__ == '__main__':
  main(os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
