"""Helper for test_distributed.py: one process of a Trax 1.4 `training.Loop` run.

  python loop_processes_run.py OUTPUT_DIR NUM_PROCESSES PROCESS_ID PORT

As in Trax 1.4, each process's `labeled_data` gives that process's own rows:
here process p of P keeps rows `[p * 16 / P, (p + 1) * 16 / P)` of the
same seeded batches of 16, so that P processes train on the batches one
process sees whole. Prints `REPORT <json>` (final weights, flattened, and the
training and evaluation history) when done.
"""

import json
import sys

import numpy as np

import jax

from minitrax import distributed
from minitrax.layers.activation_fns import Relu
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding
from minitrax.layers.metrics14 import WeightedCategoryAccuracy, WeightedCategoryCrossEntropy
from minitrax.optimizers import Adam
from minitrax.supervised.training import EvalTask, Loop, TrainTask

from loop_devices_run import history_values  # the script's folder is on sys.path


def batches(seed, part, count):
  """Endless seeded batches of 16 rows `(x, (x + 1) % 11, weights)`; rows of part `part`."""
  rng = np.random.default_rng(seed)
  rows = slice(part * 16 // count, (part + 1) * 16 // count)
  while True:
    x = rng.integers(0, 11, size=(16, 5)).astype(np.int32)
    w = rng.integers(0, 3, size=(16, 5)).astype(np.float32)
    yield x[rows], ((x + 1) % 11)[rows], w[rows]


def main(argv):
  output_dir, n_processes, process_id, port = argv[1], int(argv[2]), int(argv[3]), argv[4]
  if n_processes > 1:
    distributed.initialize(f'127.0.0.1:{port}', n_processes, process_id, heartbeat_timeout_s=3)
  model = Serial(Embedding(11, 8), Dense(16), Relu(), Dense(11))
  task = TrainTask(batches(0, process_id, n_processes), WeightedCategoryCrossEntropy(), Adam(0.01),
                   n_steps_per_checkpoint=3)
  eval_task = EvalTask(
      batches(1, process_id, n_processes),
      [WeightedCategoryCrossEntropy(), WeightedCategoryAccuracy()], n_eval_batches=2)
  loop = Loop(model, task, eval_tasks=eval_task, output_dir=output_dir, random_seed=3)
  loop.run(6)
  history = history_values(loop)
  weights = [np.asarray(w).ravel().tolist() for w in jax.tree.leaves(loop.model.weights)]
  print('REPORT ' + json.dumps({'weights': weights, 'history': history}), flush=True)


if __name__ == '__main__':
  main(sys.argv)
