"""Helper for test_distributed.py: one process of a tiny `train()` run on the copy task.

  python distributed_run.py OUTPUT_DIR NUM_PROCESSES PROCESS_ID PORT [--hang-at-batch N MARKER]
      [--fsdp]

With NUM_PROCESSES 1 it is a plain one-process run (the reference); else it
joins a run of NUM_PROCESSES processes on 127.0.0.1:PORT (gloo on CPU).
`--hang-at-batch N` makes this process's data source write MARKER and hang
when asked for training batch N (so that the test can kill it mid-run).
The training stream reads only this process's part of each global batch
(`Stream(reads_parts=True)` over arrays).
`--slow-from-batch N MARKER` trains 40 steps (evaluating every 20) and,
from training batch N on, writes MARKER and reads each batch 0.1 s slowly
(so that the test can send a signal mid-run).
`--fsdp` trains a wider model (`fsdp_model`: weights of 1024 elements and
more) with `sharding='fsdp'`, its large weights and slots split over the
processes' devices, without evaluation, keeping `model_6.pkl` too.
Prints `ROWS <json>` (the sizes of the training batches after the first it
was asked for) and `WEIGHTS <json>` (the final model weights, flattened)
when done.
"""

import json
import sys
import time

import numpy as np

import jax

from minitrax import distributed
from minitrax.data import Inputs, Stream, copy_inputs
from minitrax.data.arrays import array_stream
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding, LogSoftmax
from minitrax.optimizers import Adam
from minitrax.supervised.train import Objective, Plan, train

STEPS, EVAL_FREQUENCY, VOCAB, BATCH = 12, 6, 8, 8
HEARTBEAT_S = 3


def model(mode):
  del mode
  return Serial(Embedding(VOCAB, 8), Dense(16), Dense(VOCAB), LogSoftmax())


def fsdp_model(mode):
  """Dense(128)'s kernel (64, 128) and Dense(VOCAB)'s (128, 8) are split under FSDP."""
  del mode
  return Serial(Embedding(VOCAB, 64), Dense(128), Dense(VOCAB), LogSoftmax())


def inputs(hang_at=None, marker=None, rows_read=None, slow_from=None):
  """The copy task's batches; training batch `hang_at` writes `marker` and hangs, and batches
  from `slow_from` on write it and take 0.1 s.

  The training stream reads a process's part of a batch alone; the sizes of
  the batches after the first are added to the set `rows_read` (batch 0 is
  also read whole once, for the shapes: `Inputs.example_signature`).
  """
  copy = copy_inputs(batch_size=64, vocab_size=VOCAB, length=6, seed=5)
  train_stream = array_stream(next(copy.train_stream(1, prefetch=0)), BATCH, seed=5)

  def batch(i, n, part=None):
    if i == hang_at:
      with open(marker, 'w', encoding='utf-8') as f:
        f.write('hanging\n')
      time.sleep(600)
    if slow_from is not None and i >= slow_from:
      with open(marker, 'w', encoding='utf-8') as f:
        f.write('slow\n')
      time.sleep(0.1)
    rows = train_stream.batch(i, n, part)
    if i > 0 and rows_read is not None:
      rows_read.add(len(rows[0]))
    return rows

  return Inputs(Stream(batch, reads_parts=True),
                Stream(lambda i, n: next(copy.eval_stream(n, start=i, prefetch=0))))


def main(argv):
  output_dir, n_processes, process_id, port = argv[1], int(argv[2]), int(argv[3]), argv[4]
  hang_at = marker = slow_from = None
  steps, eval_frequency = STEPS, EVAL_FREQUENCY
  if argv[5:] and argv[5] == '--hang-at-batch':
    hang_at, marker = int(argv[6]), argv[7]
  if argv[5:] and argv[5] == '--slow-from-batch':
    slow_from, marker, steps, eval_frequency = int(argv[6]), argv[7], 40, 20
  fsdp = '--fsdp' in argv[5:]
  if n_processes > 1:
    distributed.initialize(f'127.0.0.1:{port}', n_processes, process_id,
                           heartbeat_timeout_s=HEARTBEAT_S)
  assert len(jax.devices()) == n_processes, jax.devices()
  plan = Plan(steps=steps, eval_steps=1, eval_frequency=eval_frequency)
  if fsdp:  # no evaluation (less to compile); checkpoints at steps 6 and 12
    plan = Plan(steps=STEPS, eval_steps=0, checkpoints_at=(6,))
  rows_read = set()
  state = train(output_dir, fsdp_model if fsdp else model,
                inputs(hang_at, marker, rows_read,
                       slow_from), optimizer=Adam, objective=Objective(has_weights=True), plan=plan,
                random_seed=3, sharding='fsdp' if fsdp else None)
  weights = [np.asarray(w).ravel().tolist() for w in jax.tree.leaves(state.opt_state.weights)]
  print('ROWS ' + json.dumps(sorted(rows_read)), flush=True)
  print('WEIGHTS ' + json.dumps(weights), flush=True)


if __name__ == '__main__':
  main(sys.argv)
