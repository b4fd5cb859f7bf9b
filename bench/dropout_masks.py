"""Dropout masks: `jax.random.bernoulli` (threefry, rbg keys) against `masks.keep_mask`.

One JSON line: nanoseconds per mask element (compiled, 100 masks of
`--shape` per call, each from `fold_in(key, i)`, summed so nothing is
dropped by the compiler; best of 5 calls) and compile seconds, per method,
and the ratios of `jax.random.bernoulli` to `keep_mask`.
Usage: python bench/dropout_masks.py [--shape 16 10 128]
"""
import argparse
import time

import numpy as np

import jax
import jax.numpy as jnp

from bench import common
from minitrax.layers.masks import keep_mask

REPS = 100


def measure(draw, impl, shape):
  """(ns per element, compile s) of `draw(key, shape)` summed over REPS keys in one jit."""

  def total(key):
    body = lambda i, acc: acc + draw(jax.random.fold_in(key, i), shape).sum(dtype=jnp.float32)
    return jax.lax.fori_loop(0, REPS, body, jnp.float32(0))

  key = jax.random.key(0, impl=impl)
  start = time.perf_counter()
  fn = jax.jit(total).lower(key).compile()
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(5):
    start = time.perf_counter()
    fn(key).block_until_ready()
    times.append(time.perf_counter() - start)
  return min(times) / REPS / np.prod(shape) * 1e9, compile_s


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--shape', type=int, nargs='+', default=[16, 10, 128])
  p.add_argument('--keep_prob', type=float, default=0.9)
  args = p.parse_args(argv)
  shape = tuple(args.shape)
  calib = common.calibrate()
  bernoulli = lambda k, s: jax.random.bernoulli(k, args.keep_prob, s)
  masks = lambda k, s: keep_mask(k, args.keep_prob, s)
  figures = {}
  for impl in ('threefry2x32', 'rbg'):
    for name, draw in (('bernoulli', bernoulli), ('keep_mask', masks)):
      ns, compile_s = measure(draw, impl, shape)
      figures[f'{name}.{impl}.ns_per_element'] = ns
      figures[f'{name}.{impl}.compile_s'] = compile_s
    figures[f'ratio.{impl}'] = (figures[f'bernoulli.{impl}.ns_per_element'] /
                                figures[f'keep_mask.{impl}.ns_per_element'])
  common.emit('dropout_masks', 'minitrax', args, figures, calib)


if __name__ == '__main__':
  main()
