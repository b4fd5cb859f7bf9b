"""Scaling table: steps/s and per-device bytes of weights + optimizer slots.

For 1, 2 and 4 (virtual CPU, or real) devices in one process and for 2
processes on 127.0.0.1 (gloo), each replicated and FSDP-sharded
(`Trainer(sharding=...)`), with ratios against the 1-device run:

    python -m bench.scaling                  # all rows (~3 min on 2 cores)
    python -m bench.scaling --steps 50 --d_model 512

Each row runs in fresh processes (`--worker`), with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` on CPU. Steps/s is
measured over `--steps` steps after a first compiling epoch; bytes are those
of the weights and Adam slots held by the fullest device between steps.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

ROWS = [(1, 1, 'replicated'), (2, 1, 'replicated'), (2, 1, 'fsdp'), (4, 1, 'replicated'),
        (4, 1, 'fsdp'), (1, 2, 'replicated'), (1, 2, 'fsdp')]  # (devices per process, processes)


def _model(vocab, d_model):

  def model(mode):
    from minitrax.layers.activation_fns import Relu  # pylint: disable=import-outside-toplevel
    from minitrax.layers.combinators import Serial  # pylint: disable=import-outside-toplevel
    from minitrax.layers.core import Dense, Embedding, LogSoftmax  # pylint: disable=import-outside-toplevel
    del mode
    return Serial(Embedding(vocab, d_model), Dense(4 * d_model), Relu(), Dense(vocab), LogSoftmax())

  return model


def worker(args):
  """One process of one row: trains, prints `RESULT <json>` (process 0)."""
  from minitrax import distributed  # pylint: disable=import-outside-toplevel
  if args.num_processes > 1:
    distributed.initialize(f'127.0.0.1:{args.port}', args.num_processes, args.process_id)
  import jax  # pylint: disable=import-outside-toplevel
  from minitrax.data import copy_inputs  # pylint: disable=import-outside-toplevel
  from minitrax.layers.metrics import CrossEntropyLoss  # pylint: disable=import-outside-toplevel
  from minitrax.optimizers import Adam  # pylint: disable=import-outside-toplevel
  from minitrax.supervised.sharding import device_bytes  # pylint: disable=import-outside-toplevel
  from minitrax.supervised.trainer import Trainer  # pylint: disable=import-outside-toplevel
  inputs = copy_inputs(batch_size=args.batch, vocab_size=args.vocab, length=16)
  trainer = Trainer(_model(args.vocab, args.d_model), CrossEntropyLoss, Adam, lambda s: 1e-3,
                    inputs, n_devices=args.devices, has_weights=True, sharding=args.sharding,
                    should_write_summaries=False)
  trainer.train_epoch(10, 0)  # compiles
  start = time.perf_counter()
  trainer.train_epoch(args.steps, 0)
  jax.block_until_ready(trainer._run.model_weights)  # pylint: disable=protected-access
  elapsed = time.perf_counter() - start
  run = trainer._run  # pylint: disable=protected-access
  held = max(device_bytes((run.weights, run.slots)).values())
  if distributed.is_main():
    print(
        'RESULT ' + json.dumps({
            'steps_per_s': args.steps / elapsed, 'device_bytes': held, 'global_devices': len(
                jax.devices()), 'platform': jax.devices()[0].platform
        }), flush=True)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def run_row(args, devices, processes, sharding):
  """Runs one row in fresh processes; its RESULT dict."""
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  port = _free_port()
  base = [
      sys.executable, '-m', 'bench.scaling', '--worker', '--devices',
      str(devices), '--sharding', sharding, '--num_processes',
      str(processes), '--port',
      str(port), '--steps',
      str(args.steps), '--batch',
      str(args.batch), '--d_model',
      str(args.d_model), '--vocab',
      str(args.vocab)
  ]
  procs = [
      subprocess.Popen(base + ['--process_id', str(p)], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True) for p in range(processes)
  ]
  outs = [p.communicate(timeout=900) for p in procs]
  for p, (_, err) in zip(procs, outs):
    if p.returncode != 0:
      raise RuntimeError(f'row {devices}x{processes} {sharding} failed:\n{err[-2000:]}')
  return json.loads(outs[0][0].split('RESULT ', 1)[1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--worker', action='store_true')
  parser.add_argument('--devices', type=int, default=1)
  parser.add_argument('--sharding', default='replicated')
  parser.add_argument('--num_processes', type=int, default=1)
  parser.add_argument('--process_id', type=int, default=0)
  parser.add_argument('--port', type=int, default=0)
  parser.add_argument('--steps', type=int, default=40)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--d_model', type=int, default=256)
  parser.add_argument('--vocab', type=int, default=256)
  args = parser.parse_args(argv)
  if args.worker:
    return worker(args)
  rows, base = [], None
  print(f'model: Embedding({args.vocab}, {args.d_model}) Dense({4 * args.d_model}) Relu '
        f'Dense({args.vocab}), Adam; global batch {args.batch} x 16; {args.steps} timed steps')
  print('| devices x processes | sharding | steps/s | vs 1 device | bytes/device (weights+slots) '
        '| vs 1 device |')
  print('|---|---|---|---|---|---|')
  for devices, processes, sharding in ROWS:
    result = run_row(args, devices, processes, sharding)
    base = base or result
    rows.append(result)
    print(
        f'| {devices} x {processes} | {sharding} | {result["steps_per_s"]:.1f} | '
        f'{result["steps_per_s"] / base["steps_per_s"]:.2f} | {result["device_bytes"]:,} | '
        f'{result["device_bytes"] / base["device_bytes"]:.2f} |', flush=True)
  return rows


if __name__ == '__main__':
  main()
