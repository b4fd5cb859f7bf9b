"""Helper for test_train.py: a tiny resumable `train()` run, to be killed and resumed.

  python resume_run.py OUTPUT_DIR [--hang-at-batch N MARKER] [--hang-at-save K MARKER]

`--hang-at-batch N` makes the data source write MARKER and hang when asked for
training batch N (so that the test can SIGKILL the run mid-epoch);
`--hang-at-save K` does the same inside the K-th write of model.pkl, after the
new file is written and before it replaces the old one.
"""

import os
import sys
import time

import numpy as np

from minitrax.data import Inputs, Stream
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Dropout, Embedding, LogSoftmax
from minitrax.optimizers import Adam
from minitrax.supervised.train import Objective, Plan, train

STEPS, EVAL_FREQUENCY, VOCAB = 12, 6, 8


def model(mode):
  return Serial(Embedding(VOCAB, 8), Dropout(0.2, mode=mode), Dense(VOCAB), LogSoftmax())


def _hang(marker):
  with open(marker, 'w', encoding='utf-8') as f:
    f.write('hanging\n')
  time.sleep(600)


def copy_batch(seed, index, hang_at=None, marker=None):
  if index == hang_at:
    _hang(marker)
  rng = np.random.default_rng([seed, index])
  w = rng.integers(1, VOCAB, size=(4, 2)).astype(np.int32)
  zero = np.zeros((4, 1), np.int32)
  x = np.concatenate([zero, w, zero, w], axis=1)
  return x, x, np.concatenate([np.zeros((4, 2)), np.ones((4, 4))], axis=1).astype(np.float32)


def main(argv):
  output_dir, options = argv[1], argv[2:]
  hang_batch = hang_save = marker = None
  if options and options[0] == '--hang-at-batch':
    hang_batch, marker = int(options[1]), options[2]
  if options and options[0] == '--hang-at-save':
    hang_save, marker = int(options[1]), options[2]
    real_replace, saves = os.replace, [0]

    def replace(src, dst):
      if os.path.basename(dst) == 'model.pkl':
        saves[0] += 1
        if saves[0] == hang_save:
          _hang(marker)
      real_replace(src, dst)

    os.replace = replace
  inputs = Inputs(Stream(lambda i, n: copy_batch(1, i, hang_batch, marker)),
                  Stream(lambda i, n: copy_batch(2, i)), Stream(lambda i, n: copy_batch(3, i)))
  train(output_dir, model, inputs, optimizer=Adam, objective=Objective(has_weights=True),
        plan=Plan(steps=STEPS, eval_steps=1, eval_frequency=EVAL_FREQUENCY), random_seed=7)
  print('tensorflow imported:', 'tensorflow' in sys.modules)


if __name__ == '__main__':
  main(sys.argv)
