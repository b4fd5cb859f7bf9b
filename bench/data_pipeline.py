"""Input pipeline alone, against W2's step rate: can a training step ever wait for input?

For each stream (copy task and MNIST from IDX files, batch 128) prints one JSON
line with:
  batches_per_s           consumer pulling as fast as it can, background thread on
  batches_per_s_no_thread the same stream made in the consumer's thread
  device_batches_per_s    thread + device_prefetch (jax.device_put ahead)
  wait_ms_per_step        mean time next() blocks when each step takes W2's
                          3.5 ms (283 steps/s, Flax; sleep releases the GIL as
                          XLA does) -- ~0 means the step never waits
Usage: python bench/data_pipeline.py [--steps 2000] [--mnist ../shared/data/mnist]
"""
import argparse
import datetime
import itertools
import json
import os
import statistics
import time

from minitrax.data import copy_inputs, device_prefetch, idx_inputs

W2_STEPS_PER_S = {'flax_optax': 283.0, 'trax_1.4.1': 82.0}  # bench/README.md, 2026-11-21.


def rate(stream, steps):
  next(stream)  # Start-up (thread, first batch) not timed.
  start = time.perf_counter()
  for _ in itertools.islice(stream, steps):
    pass
  return steps / (time.perf_counter() - start)


def wait_per_step(stream, steps, step_s):
  next(stream)
  waits = []
  for _ in range(steps):
    start = time.perf_counter()
    next(stream)
    waits.append(time.perf_counter() - start)
    time.sleep(step_s)  # The "training step".
  return 1000 * statistics.mean(waits), 1000 * max(waits)


def measure(name, make, steps):
  runs = []
  for _ in range(3):
    data = make()
    runs.append({
        'batches_per_s': rate(data.train_stream(1), steps),
        'batches_per_s_no_thread': rate(data.train_stream(1, prefetch=0), steps),
        'device_batches_per_s': rate(device_prefetch(data.train_stream(1)), steps),
    })
  figures = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
  mean_ms, max_ms = wait_per_step(make().train_stream(1), min(steps, 500),
                                  1 / W2_STEPS_PER_S['flax_optax'])
  figures.update(
      wait_ms_per_step=round(mean_ms,
                             4), wait_ms_max=round(max_ms, 3), w2_steady_steps_per_s=W2_STEPS_PER_S,
      headroom_vs_w2_flax=round(figures['batches_per_s'] / W2_STEPS_PER_S['flax_optax'], 1))
  print(
      json.dumps({
          'ts': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
          'workload': f'data_pipeline/{name}', 'impl': 'minitrax',
          'args': {'batch_size': 128,
                   'steps': steps}, 'figures': figures, 'machine': {'nproc': os.cpu_count()}
      }), flush=True)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument(
      '--mnist', default=os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data',
                                      'mnist'))
  args = parser.parse_args()
  measure('copy_task_b128', lambda: copy_inputs(batch_size=128, vocab_size=32, length=10),
          args.steps)
  if os.path.isdir(args.mnist):
    measure('mnist_idx_b128',
            lambda: idx_inputs(args.mnist, train='t10k', eval_holdout_size=0.2, batch_size=128),
            args.steps)
  else:
    print(json.dumps({'workload': 'data_pipeline/mnist_idx_b128', 'skipped': args.mnist}))


if __name__ == '__main__':
  main()
