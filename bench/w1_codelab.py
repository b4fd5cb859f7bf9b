"""W1 'codelab': the Trax codelab's tiny TransformerLM on the copy task, through `Trainer`.

The codelab's path: `Trainer(TransformerLM, CrossEntropyLoss, Adafactor,
MultifactorSchedule, inputs, output_dir, has_weights=True)` and three
`train_epoch(500, 2)` calls (optimizer and schedule with their defaults).
Batches are the peers' copy task (../shared/bench/peers/copy_task.py):
16 x 10, `0 w 0 w`, loss weights 0 on the first 5 positions and 1 on the last
5 (`copy_inputs` itself puts 4 + 6). Figures as the peers' `run_codelab`:
`first_block_s` is the Trainer's own 'Ran 500 train steps in X secs' for the
first epoch (tracing and compiling included; eval and checkpointing not),
steady steps/s = 500 / median of the later epochs' train seconds. The whole
`train_epoch` wall time (eval, checkpoint) is reported too (`epoch_s`).
"""

import argparse
import contextlib
import io
import re
import shutil
import tempfile

import numpy as np

from bench import common
from minitrax.data.device import steps_per_call
from minitrax.data.inputs import Inputs, Stream
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.lr import MultifactorSchedule
from minitrax.models.transformer import TransformerLM
from minitrax.optimizers.adafactor import Adafactor
from minitrax.supervised.trainer import Trainer

LM_CODELAB = dict(vocab_size=32, d_model=32, d_ff=128, n_layers=2, n_heads=8, dropout=0.1)
_RAN = re.compile(r'Ran (\d+) train steps in ([0-9.]+) secs')


def copy_batch(rng, batch_size=16, vocab_size=32, length=10):
  """`(x, x, weights)`: `0 w 0 w`, w ~ randint[1, vocab - 1); weights 0 x 5 then 1 x 5."""
  w = rng.randint(1, vocab_size - 1, size=(batch_size, length // 2 - 1))
  zero = np.zeros((batch_size, 1), np.int64)
  x = np.concatenate([zero, w, zero, w], axis=1).astype(np.int32)
  weights = np.concatenate(
      [np.zeros((batch_size, length // 2)),
       np.ones((batch_size, length - length // 2))], axis=1)
  return x, x, weights.astype(np.float32)


def copy_inputs_5_5(seed=0):
  """Inputs whose batch i is `copy_batch(RandomState((seed, stream, i)))`, random access."""

  def stream(tag):
    return Stream(lambda i, _: copy_batch(np.random.RandomState([seed, tag, i])), f'copy55/{tag}')

  return Inputs(stream(0), stream(1), stream(2))


def model_fn(mode):
  return TransformerLM(**LM_CODELAB, max_len=2048, mode=mode)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--steps', type=int, default=1500)
  p.add_argument('--block', type=int, default=500)
  p.add_argument('--eval_batches', type=int, default=2)
  p.add_argument('--seed', type=int, default=0)
  return p.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  calib = common.calibrate()
  out_dir = tempfile.mkdtemp(prefix='bench_w1_')
  timer = common.CompileTimer()
  try:
    t = common.now()
    inputs = copy_inputs_5_5(args.seed)
    trainer = Trainer(model_fn, CrossEntropyLoss, Adafactor, MultifactorSchedule, inputs,
                      output_dir=out_dir, random_seed=args.seed, has_weights=True)
    init_s = common.now() - t
    train_s, epoch_s, phases = [], [], None
    for _ in range(args.steps // args.block):
      snap = timer.snapshot()
      log = io.StringIO()
      t = common.now()
      with contextlib.redirect_stdout(log):
        trainer.train_epoch(args.block, args.eval_batches)
      epoch_s.append(common.now() - t)
      phases = phases or timer.since(snap)
      ran = _RAN.search(log.getvalue())
      train_s.append(float(ran.group(2)))
    acc = trainer.history.get('eval', 'metrics/accuracy')
    loss = trainer.history.get('eval', 'metrics/loss')
    n_params = common.n_params(trainer.model_weights)
  finally:
    shutil.rmtree(out_dir, ignore_errors=True)
  later = train_s[1:]
  common.emit(
      'W1_codelab', 'minitrax Trainer.train_epoch', args, {
          'n_params': n_params,
          'steps_per_call': steps_per_call(inputs.example_signature),
          'trainer_init_s': init_s,
          'first_epoch_phases': phases,
          'first_block_s': train_s[0],
          'later_block_s': later,
          'steady_steps_per_s': args.block / common.median(later) if later else None,
          'steady_block_spread': common.spread(later) if later else None,
          'epoch_s': epoch_s,
          'evals': [{'step': step, 'eval_loss': float(value), 'eval_acc': float(accuracy)}
                    for (step, value), (_, accuracy) in zip(loss, acc)],
          'final_eval_loss': float(loss[-1][1]),
          'final_eval_acc': float(acc[-1][1]),
          'peak_rss_mib': common.peak_rss_mib(),
      }, calib)


if __name__ == '__main__':
  main()
