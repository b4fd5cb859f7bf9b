"""W1 'init': building the codelab's Trainer (weights, optimizer slots, first save).

What a user waits for before the first step of the Trax codelab: the
`Trainer(...)` call of `bench.w1_codelab` (model init, optimizer slots, the
placement on the devices, the first `model.pkl`), timed after the imports and
after the backend is up (the calibration probe runs first, as on the peer
side). `init_s`: cold, in this process (the bench runs with
`MINITRAX_CACHE_DIR=`); `init_warm_s`: the median of `--warm_runs` fresh
processes that find a compilation cache filled by an earlier one (a
re-run notebook). The peer, `bench/w1_init_flax.py`, times Flax's
`model.init` and Optax's `opt.init` of the same model (no file written).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from bench import common
from bench.w1_codelab import copy_inputs_5_5, model_fn
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.lr import MultifactorSchedule
from minitrax.optimizers.adafactor import Adafactor
from minitrax.supervised.trainer import Trainer


def construct():
  """Seconds of one `Trainer(...)` of the codelab's model, writing to a folder deleted after."""
  out_dir = tempfile.mkdtemp(prefix='bench_w1_init_')
  try:
    t = common.now()
    trainer = Trainer(model_fn, CrossEntropyLoss, Adafactor, MultifactorSchedule, copy_inputs_5_5(),
                      output_dir=out_dir, random_seed=0, has_weights=True)
    seconds = common.now() - t
    trainer.close()
  finally:
    shutil.rmtree(out_dir, ignore_errors=True)
  return seconds


def child_seconds(cache):
  """`construct`'s seconds in a fresh process using the compilation cache folder `cache`."""
  env = dict(os.environ, MINITRAX_CACHE_DIR=cache)
  out = subprocess.run([sys.executable, '-m', 'bench.w1_init', '--child'], env=env, check=True,
                       capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])['seconds']


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--warm_runs', type=int, default=3)
  p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  return p.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  calib = common.calibrate()
  seconds = construct()
  if args.child:
    print(json.dumps({'seconds': seconds}), flush=True)
    return
  cache = tempfile.mkdtemp(prefix='bench_w1_init_cache_')
  try:
    child_seconds(cache)  # fills the cache
    warm = [child_seconds(cache) for _ in range(args.warm_runs)]
  finally:
    shutil.rmtree(cache, ignore_errors=True)
  common.emit('W1_init', 'minitrax Trainer(...)', args, {
      'init_s': seconds,
      'init_warm_s': common.median(warm),
      'init_warm_runs_s': warm,
  }, calib)


if __name__ == '__main__':
  main()
