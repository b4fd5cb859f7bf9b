"""The longest sequence a ReformerLM trains on in a memory budget, against a TransformerLM.

Both models: d_model 256, 4 layers, 4 heads of 64, d_ff 1024, 256 token ids,
batch 1, no dropout, one Adam step per call (`value_and_grad` + update, one
`jax.jit`, weights and slots donated). ReformerLM uses LSH attention (chunks
of 128, 2 hashing rounds, one head at a time), feed-forward chunks of 16384
positions, a `ChunkedCrossEntropyLoss` of 16384 positions and axial
positions (a rows x columns grid, 128 + 128 wide, as Trax's long-sequence
Reformers; `--positions sinusoidal` gives it the trained (length, 256) table
instead, whose weights, Adam slots and gradient grow with the length); the
TransformerLM is the plain one (full attention, one (length, vocab) output).

For each model the length doubles from --start. Each length runs in a child
process: it compiles the step, reads the compiled program's memory analysis
(arguments + outputs + temporaries - donated aliases), skips the run if that
estimate exceeds the budget, else runs one warm-up step and timed steps. The
parent polls the child's resident memory (VmRSS) and kills it above the
budget, so this script never takes more than --budget_gib of memory. The
doubling stops at the first length that does not fit (or fails, or passes
--step_timeout). Lengths above --run_max are only compiled: their row gives
the estimate, not a measurement (a step at 1M tokens takes ~15 minutes on 2
CPU cores).

    python bench/reformer_long.py                 # both models; run up to 256k
    python bench/reformer_long.py --models reformer --run_max 65536

Prints one JSON line per (model, length) and a table at the end; --json
appends the lines to a file.
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import time

_RESULT = 'RESULT '


def _axial_shape(length):
  """(rows, columns) with rows * columns == length, rows the largest divisor <= sqrt(length)."""
  rows = int(length**0.5)
  while length % rows:
    rows -= 1
  return (rows, length // rows)


def _build(kind, length, positions='axial'):
  """(model_with_loss, batch signature) for `kind` in 'reformer', 'transformer'."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from minitrax.layers.combinators import Serial  # pylint: disable=import-outside-toplevel
  from minitrax.layers.lsh_attention import LSHSelfAttention  # pylint: disable=import-outside-toplevel
  from minitrax.layers.metrics import CrossEntropyLoss  # pylint: disable=import-outside-toplevel
  from minitrax.models import reformer, transformer  # pylint: disable=import-outside-toplevel
  from minitrax.shapes import ShapeDtype  # pylint: disable=import-outside-toplevel
  sizes = dict(vocab_size=256, d_model=256, d_ff=1024, n_layers=4, n_heads=4, dropout=0.0,
               max_len=length, mode='train')
  if kind == 'reformer':
    chunk = min(16384, length)
    attention = functools.partial(LSHSelfAttention, chunk_len=128, n_hashes=2, n_parallel_heads=1)
    axial = dict(axial_pos_shape=_axial_shape(length),
                 d_axial_pos_embs=(128, 128)) if positions == 'axial' else {}
    model = reformer.ReformerLM(d_attention_key=64, d_attention_value=64, attention_type=attention,
                                ff_chunk_size=chunk, loss_chunk_size=chunk, **axial, **sizes)
    loss = reformer.ChunkedCrossEntropyLoss(chunk_size=chunk)
  else:
    model, loss = transformer.TransformerLM(**sizes), CrossEntropyLoss()
  ids = ShapeDtype((1, length), np.int32)
  return Serial(model, loss), (ids, ids)


def _child(kind, length, budget_bytes, min_steps, min_seconds, estimate_only, positions):
  """Compiles, checks the estimate, runs (unless `estimate_only`); prints one RESULT line."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from minitrax.optimizers.adam import Adam  # pylint: disable=import-outside-toplevel

  result = {'model': kind, 'length': length}
  if kind == 'reformer':
    result['positions'] = positions
  model_with_loss, signature = _build(kind, length, positions)
  weights, state = model_with_loss.init(signature)
  optimizer = Adam(learning_rate=1e-3)
  slots, opt_params = optimizer.tree_init(weights)

  def step(weights, slots, batch, i, rng):

    def loss(w):
      return model_with_loss.pure_fn(batch, w, state, rng)[0]

    value, grads = jax.value_and_grad(loss)(weights)
    weights, slots, _ = optimizer.tree_update(i, grads, weights, slots, opt_params)
    return weights, slots, value

  x = np.random.default_rng(0).integers(0, 256, size=(1, length)).astype(np.int32)
  batch, rng = (x, x), jax.random.key(0)
  start = time.time()
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(weights, slots, batch, jnp.int32(0),
                                                        rng).compile()
  memory = compiled.memory_analysis()
  estimate = (memory.argument_size_in_bytes + memory.output_size_in_bytes +
              memory.temp_size_in_bytes - memory.alias_size_in_bytes)
  result.update(compile_s=round(time.time() - start, 1), estimate_gib=round(estimate / 2**30, 3))
  if estimate > budget_bytes:
    result['status'] = 'estimate over budget'
  elif estimate_only:
    result['status'] = 'fits (estimate only, not run)'
  if 'status' in result:
    print(_RESULT + json.dumps(result), flush=True)
    return
  start = time.time()
  weights, slots, value = compiled(weights, slots, batch, jnp.int32(0), rng)
  value.block_until_ready()
  first_s = time.time() - start
  times, i = [], 1
  while len(times) < min_steps or sum(times) < min_seconds:
    start = time.time()
    weights, slots, value = compiled(weights, slots, batch, jnp.int32(i), rng)
    value.block_until_ready()
    times.append(time.time() - start)
    i += 1
  step_s = float(np.median(times)) if times else first_s  # --min_steps 0: the first step
  result.update(status='ok', loss=round(float(value), 4), step_s=round(step_s, 3),
                tokens_per_s=round(length / step_s, 1), steps_timed=len(times))
  print(_RESULT + json.dumps(result), flush=True)


def _rss_bytes(pid):
  try:
    with open(f'/proc/{pid}/status') as f:
      for line in f:
        if line.startswith('VmRSS:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 0


def _run_one(kind, length, args):
  """Runs one child; returns its result dict, with peak_rss_gib from polling."""
  command = [
      sys.executable,
      os.path.abspath(__file__), '--one', kind,
      str(length), '--budget_gib',
      str(args.budget_gib), '--min_steps',
      str(args.min_steps), '--min_seconds',
      str(args.min_seconds), '--positions', args.positions
  ] + (['--estimate_only'] if length > args.run_max else [])
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get('JAX_PLATFORMS', 'cpu'))
  child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=env)
  budget, peak, start, status = args.budget_gib * 2**30, 0, time.time(), None
  while child.poll() is None:
    peak = max(peak, _rss_bytes(child.pid))
    if peak > budget:
      status = 'killed: resident memory over budget'
    elif time.time() - start > args.step_timeout:
      status = f'killed: over --step_timeout={args.step_timeout}s'
    if status:
      child.kill()
      break
    time.sleep(0.2)
  output = child.communicate()[0]
  lines = [row for row in output.splitlines() if row.startswith(_RESULT)]
  result = json.loads(lines[-1][len(_RESULT):]) if lines else {'model': kind, 'length': length}
  if status:
    result['status'] = status
  elif not lines:
    result['status'] = f'error (exit {child.returncode}): ' + ' | '.join(output.splitlines()[-3:])
  result['peak_rss_gib'] = round(peak / 2**30, 3)
  result['wall_s'] = round(time.time() - start, 1)
  return result


def _table(results):
  rows = [
      '| model | length | status | est. GiB | peak RSS GiB | step s | tokens/s |',
      '|---|---:|---|---:|---:|---:|---:|'
  ]
  for r in results:
    rows.append(f"| {r['model']} | {r['length']} | {r.get('status')} | "
                f"{r.get('estimate_gib', '')} | {r.get('peak_rss_gib', '')} | "
                f"{r.get('step_s', '')} | {r.get('tokens_per_s', '')} |")
  return '\n'.join(rows)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='reformer,transformer')
  parser.add_argument('--start', type=int, default=4096)
  parser.add_argument('--max_len', type=int, default=1048576)
  parser.add_argument('--run_max', type=int, default=262144,
                      help='longer lengths are only compiled, for the memory estimate')
  parser.add_argument('--estimate_only', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--budget_gib', type=float, default=20.0)
  parser.add_argument('--step_timeout', type=float, default=1800.0,
                      help='seconds for one length (compile + warm-up + timed steps)')
  parser.add_argument('--min_steps', type=int, default=2,
                      help='timed steps after the first (0 with --min_seconds 0: time the first)')
  parser.add_argument('--min_seconds', type=float, default=10.0)
  parser.add_argument(
      '--positions', choices=('axial', 'sinusoidal'), default='axial',
      help="ReformerLM's positions: axial (Trax's long-sequence setting) or a "
      "trained sinusoid table of length x d_model (weights and Adam slots grow "
      "with the length)")
  parser.add_argument('--json', default=None, help='append JSON lines to this file')
  parser.add_argument('--one', nargs=2, metavar=('MODEL', 'LENGTH'), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.one:
    _child(args.one[0], int(args.one[1]), args.budget_gib * 2**30, args.min_steps, args.min_seconds,
           args.estimate_only, args.positions)
    return
  results = []
  for kind in args.models.split(','):
    length = args.start
    while length <= args.max_len:
      result = _run_one(kind, length, args)
      results.append(result)
      line = json.dumps(result)
      print(line, flush=True)
      if args.json:
        with open(args.json, 'a') as f:
          f.write(line + '\n')
      if result.get('status') not in ('ok', 'fits (estimate only, not run)'):
        break
      length *= 2
    fitted = [r['length'] for r in results if r['model'] == kind and r.get('status') == 'ok']
    estimated = [
        r['length']
        for r in results
        if r['model'] == kind and r.get('status', '').startswith('fits')
    ]
    print(
        f'# {kind}: longest trained length {max(fitted) if fitted else None}; longest '
        f'estimated to fit {max(estimated) if estimated else None}', flush=True)
  print(_table(results))


if __name__ == '__main__':
  main()
