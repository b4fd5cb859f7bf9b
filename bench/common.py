"""Timing protocol, calibration probe and JSON output shared by the minitrax benchmarks.

Follows ../shared/bench/peers/common.py field for field (`workload`, `impl`,
`args`, `figures`, `versions`, `machine`; `figures.calib_gflops_start/end`),
so `peers/summarize.py` reads minitrax records next to the peers' records.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import time
from importlib import metadata

import jax
import jax.numpy as jnp


def now():
  return time.perf_counter()


def block(tree):
  return jax.block_until_ready(tree)


def median(xs):
  return statistics.median(xs)


def spread(xs):
  """(max - min) / median of a list of timings."""
  m = statistics.median(xs)
  return (max(xs) - min(xs)) / m if m else 0.0


def peak_rss_mib():
  """Peak resident memory of this process (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def versions():
  out = {'python': platform.python_version()}
  for pkg in ('jax', 'jaxlib', 'minitrax', 'numpy'):
    try:
      out[pkg] = metadata.version(pkg)
    except metadata.PackageNotFoundError:
      out[pkg] = None
  return out


def machine():
  cpu = platform.processor()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next((row.split(':', 1)[1].strip() for row in f if row.startswith('model name')), cpu)
  except OSError:
    pass
  env = {k: v for k, v in os.environ.items() if k.startswith(('XLA_', 'JAX_'))}
  device = jax.devices()[0]
  return {
      'cpu': cpu, 'nproc': os.cpu_count(), 'env': env, 'load': os.getloadavg()[0],
      'device': f'{device.platform}: {device.device_kind}'
  }


def device_peak_mib():
  """Peak memory the first device's allocator has held, MiB; None where it keeps no count (CPU)."""
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get('peak_bytes_in_use')
  return None if peak is None else peak / 2**20


def calibrate(n=1024, reps=10):
  """Machine-speed probe: median GFLOP/s of a jitted float32 n^3 matmul."""
  a = jnp.ones((n, n), jnp.float32)
  mm = jax.jit(jnp.matmul)
  mm(a, a).block_until_ready()
  times = []
  for _ in range(reps):
    t = now()
    mm(a, a).block_until_ready()
    times.append(now() - t)
  return round(2.0 * n**3 / median(times) / 1e9, 1)


def emit(workload, impl, args, figures, calib_start=None):
  """Prints one JSON line (the peers' record format) and returns the record."""
  figures = dict(figures)
  figures['calib_gflops_start'] = calib_start
  figures['calib_gflops_end'] = calibrate()
  peak = device_peak_mib()
  if peak is not None:
    figures['device_peak_mib'] = peak
  rec = {
      'ts': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'run_id': os.environ.get('PEERS_RUN_ID', ''),
      'workload': workload,
      'impl': impl,
      'args': vars(args) if args is not None else {},
      'figures': figures,
      'versions': versions(),
      'machine': machine(),
  }
  print(json.dumps(rec), flush=True)
  return rec


class CompileTimer:
  """Sums JAX's compile phases (trace, lower, XLA compile) from `jax.monitoring` events."""
  EVENTS = {
      '/jax/core/compile/jaxpr_trace_duration': 'trace_s',
      '/jax/core/compile/jaxpr_to_mlir_module_duration': 'lower_s',
      '/jax/core/compile/backend_compile_duration': 'xla_compile_s',
  }

  def __init__(self):
    self.totals = {v: 0.0 for v in self.EVENTS.values()}
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, event, duration, **kwargs):
    name = self.EVENTS.get(event)
    if name is not None:
      self.totals[name] += duration

  def snapshot(self):
    return dict(self.totals)

  def since(self, snap):
    return {k: self.totals[k] - snap[k] for k in self.totals}


def time_train_loop(train_step, state, batches, steps, block_size, warmup):
  """The W2/W3 protocol: `train_step(state, *batch) -> (state, loss)`.

  Step 1 timed alone (with compile phases), `warmup` untimed steps, then
  `steps // block_size` timed blocks; steady steps/s = block_size / median
  block seconds. Batches cycle. Returns (state, figures).
  """
  timer = CompileTimer()
  i, loss = 0, None

  def run(n):
    nonlocal state, loss, i
    for _ in range(n):
      state, loss = train_step(state, *batches[i % len(batches)])
      i += 1
    block(state)

  snap = timer.snapshot()
  t = now()
  run(1)
  first_step_s = now() - t
  phases = timer.since(snap)
  run(warmup)
  block_s = []
  for _ in range(steps // block_size):
    t = now()
    run(block_size)
    block_s.append(now() - t)
  steps_per_s = block_size / median(block_s)
  return state, {
      'first_step_s': first_step_s,
      'first_step_phases': phases,
      'block_s': block_s,
      'steady_steps_per_s': steps_per_s,
      'steady_ms_per_step': 1e3 / steps_per_s,
      'steady_block_spread': spread(block_s),
      'final_loss': float(loss),
  }


def manual_train_step(model_with_loss, optimizer):
  """A training step as a minitrax user writes it, jitted with the state donated.

  `model_with_loss` is `Serial(model, loss)`; the step takes `jax.value_and_grad`
  of its `pure_fn` and applies `optimizer.tree_update`. The state is
  `(weights, slots, opt_params, model_state, step, key)`; the step's dropout key
  is `fold_in(key, step)`. Returns `step(state, *batch) -> (state, loss)`.
  """

  def train_step(state, *batch):
    weights, slots, opt_params, model_state, step, key = state
    rng = jax.random.fold_in(key, step)

    def objective(w):
      return model_with_loss.pure_fn(batch, w, model_state, rng)

    (loss, model_state), grads = jax.value_and_grad(objective, has_aux=True)(weights)
    weights, slots, _ = optimizer.tree_update(step, grads, weights, slots, opt_params)
    return (weights, slots, opt_params, model_state, step + 1, key), loss

  return jax.jit(train_step, donate_argnums=(0,))


def initial_state(model_with_loss, optimizer, signature, key):
  """`(weights, slots, opt_params, model_state, step, key)` for `manual_train_step`."""
  init_key, key = jax.random.split(key)
  weights, model_state = model_with_loss.init(signature, rng=init_key)
  slots, opt_params = optimizer.tree_init(weights)
  opt_params = {k: jnp.asarray(v, jnp.float32) for k, v in opt_params.items()}
  return weights, slots, opt_params, model_state, jnp.int32(0), key


def n_params(tree):
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def memory_bandwidth(mib=512, reps=7):
  """Main-memory read bandwidth, GB/s: median of a jitted sum over `mib` MiB of float32.

  The array is far larger than any CPU cache, so every byte comes from memory;
  W4 divides this by the bytes of weights read per decoding step to get the
  weight-streaming limit on tokens/s.
  """
  x = jnp.ones((mib << 18,), jnp.float32)
  total = jax.jit(jnp.sum)
  total(x).block_until_ready()
  times = []
  for _ in range(reps):
    t = now()
    total(x).block_until_ready()
    times.append(now() - t)
  return round(x.nbytes / median(times) / 1e9, 2)


def ceiling_main(argv=None):
  """The matmul ceiling (`python -m bench.common`): jitted n^3 matmul GFLOP/s, median of --steps."""
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--steps', type=int, default=20, help='timed repetitions')
  p.add_argument('--n', type=int, default=1024)
  p.add_argument('--dtype', default='float32', help='float32 (a GPU: TF32 by default), bfloat16')
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args(argv)
  ka, kb = jax.random.split(jax.random.key(args.seed))
  a = jax.random.normal(ka, (args.n, args.n), args.dtype)
  b = jax.random.normal(kb, (args.n, args.n), args.dtype)
  mm = jax.jit(jnp.matmul)
  t = now()
  block(mm(a, b))
  first_s = now() - t
  for _ in range(3):
    block(mm(a, b))
  times = []
  for _ in range(args.steps):
    t = now()
    block(mm(a, b))
    times.append(now() - t)
  med, flops = median(times), 2.0 * args.n**3
  emit(
      'matmul_ceiling',
      'jax.jit(jnp.matmul)' + ('' if args.dtype == 'float32' else f' {args.dtype}'), args, {
          'flops_formula': '2*n^3', 'first_call_s': first_s, 'median_s': med, 'min_s': min(times),
          'gflops_median': flops / med / 1e9, 'gflops_best': flops / min(times) / 1e9,
          'spread': spread(times)
      })


__all__ = [
    'now', 'block', 'median', 'spread', 'peak_rss_mib', 'versions', 'machine', 'calibrate',
    'memory_bandwidth', 'device_peak_mib', 'emit', 'CompileTimer', 'time_train_loop',
    'manual_train_step', 'initial_state', 'n_params', 'ceiling_main'
]

if __name__ == '__main__':
  ceiling_main()
