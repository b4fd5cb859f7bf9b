"""Helper for test_interrupts.py: a `train()` run to be stopped by SIGTERM, as the command line.

  python interrupt_run.py OUTPUT_DIR [--pause-at-batch N MARKER]

`--pause-at-batch N` makes the training stream write MARKER and pause two
seconds when asked for batch N, so that the test can send SIGTERM mid-run.
Like `python -m minitrax.trainer`, the script exits with 128 + the signal's
number when training is interrupted.
"""

import os
import sys
import time

from minitrax.data import Inputs, Stream
from minitrax.errors import TrainingInterrupted
from minitrax.optimizers import Adam
from minitrax.supervised.train import Objective, Plan, train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resume_run import copy_batch, model  # noqa: E402

STEPS, EVAL_FREQUENCY = 40, 20


def inputs(pause_at=None, marker=None):
  """Resume_run's copy task; batch `pause_at` of the training stream announces itself, pauses."""

  def train_batch(i, _):
    if i == pause_at:
      with open(marker, 'w', encoding='utf-8') as f:
        f.write('paused\n')
      time.sleep(2)
    return copy_batch(1, i)

  return Inputs(Stream(train_batch), Stream(lambda i, n: copy_batch(2, i)),
                Stream(lambda i, n: copy_batch(3, i)))


def run(output_dir, data):
  return train(output_dir, model, data, optimizer=Adam, objective=Objective(has_weights=True),
               plan=Plan(steps=STEPS, eval_steps=1, eval_frequency=EVAL_FREQUENCY), random_seed=7)


def main(argv):
  output_dir, options = argv[1], argv[2:]
  data = inputs(int(options[1]), options[2]) if options else inputs()
  try:
    run(output_dir, data)
  except TrainingInterrupted as e:
    print(f'interrupted: {e}', file=sys.stderr, flush=True)
    sys.exit(128 + e.signum)


if __name__ == '__main__':
  main(sys.argv)
