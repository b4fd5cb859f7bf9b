"""Runs the minitrax benchmarks (and optionally the peer baselines, interleaved); prints a table.

    python -m bench                      # minitrax W1-W4 + ceiling, once each (~4 min here)
    python -m bench --quick              # fewer steps (~2 min); figures are rougher
    python -m bench --peers --pairs 3    # peer, minitrax, peer, minitrax, ... per workload
    python -m bench --only W2,W3 --out results.jsonl
    python -m bench --trax --pairs 2     # real Trax 1.4.1 too (bench/real_trax.py)

Each benchmark runs in a fresh process (compile times are cold) under a timeout
and prints one JSON line; the lines are appended to `--out`. With `--peers`
the Flax+Optax scripts of ../shared/bench/peers run alternately with
minitrax's, and the table gives median [min-max] per side and the ratio of
medians. W5 (long sequences, Reformer) is bench/reformer_long.py, run apart.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench import real_trax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PEERS = os.path.join(os.path.dirname(ROOT), 'shared', 'bench', 'peers')
DEFAULT_PEERS_PY = os.path.expanduser('~/.cache/minitrax-bench/venv-peers/bin/python')

# workload: (minitrax module, peer script, quick args, timeout s)
WORKLOADS = {
    'ceiling': ('bench.common', 'matmul_ceiling.py', [], 120),
    'W1': ('bench.w1_codelab', 'w1_codelab_flax.py', ['--steps', '1000'], 300),
    # minitrax's W1 as a second process with a warm compilation cache, against Flax's cold W1.
    'W1warm': ('bench.w1_warm', 'w1_codelab_flax.py', ['--steps', '1000'], 600),
    # Building the codelab's Trainer (cold, and warm in later processes) against Flax's init.
    'W1init': ('bench.w1_init', os.path.join(ROOT, 'bench',
                                             'w1_init_flax.py'), ['--warm_runs', '1'], 300),
    'W2': ('bench.w2_mlp', 'w2_mlp_mnist_flax.py', ['--steps', '300'], 200),
    'W3': ('bench.w3_lm', 'w3_lm_medium_flax.py', ['--steps', '10'], 400),
    'W4': ('bench.w4_decode', 'w4_decode_flax.py', ['--reps', '1'], 400),
}
# (workload key, figure path, higher is better[, the peer's figure path if another])
FIGURES = {
    'ceiling': [('gflops_median', True)],
    'W1': [('first_block_s', False), ('steady_steps_per_s', True), ('final_eval_acc', True)],
    'W1warm': [('first_block_s', False)],
    'W1init': [('init_s', False), ('init_warm_s', False, 'init_s')],
    'W2': [('steady_steps_per_s', True), ('gflops', True), ('first_step_s', False)],
    'W3': [('tokens_per_s', True), ('gflops', True), ('first_step_s', False),
           ('peak_rss_mib', False)],
    'W4': [(f'batch{b}.{k}', k != 'ttft_cold_s', f'batch{b}.{peer}')
           for b in (1, 8)
           for k, peer in (('scan_tokens_per_s', 'scan_tokens_per_s'),
                           ('loop_tokens_per_s', 'loop_tokens_per_s'),
                           ('codelab_tokens_per_s', 'loop_tokens_per_s'),
                           ('ttft_cold_s', 'ttft_cold_s'))] +
          [(f'batch{b}.scan_share_of_stream_limit', True) for b in (1, 8)] +
          [('memory_gb_per_s', True)],
}
CALIB = ('calib_gflops_start', 'calib_gflops_end')


def run_one(cmd, cwd, timeout, env):
  """Runs one benchmark process; returns its JSON record or None (timeout, crash)."""
  t = time.time()
  try:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    print(f'  TIMEOUT after {timeout}s: {" ".join(cmd)}', file=sys.stderr)
    return None
  lines = [row for row in proc.stdout.splitlines() if row.startswith('{')]
  if proc.returncode or not lines:
    print(f'  FAILED ({proc.returncode}): {" ".join(cmd)}\n{proc.stderr[-2000:]}', file=sys.stderr)
    return None
  rec = json.loads(lines[-1])
  print(f'  {rec["workload"]:14s} {rec["impl"]:32s} {time.time() - t:6.1f}s', file=sys.stderr)
  return rec


def get(figures, path):
  for part in path.split('.'):
    if figures is None:
      return None
    figures = figures.get(part) if isinstance(figures, dict) else None
  return figures


def fmt(vals):
  if not vals:
    return '-'
  m = statistics.median(vals)
  return f'{m:.4g} [{min(vals):.4g}-{max(vals):.4g}]' if len(vals) > 1 else f'{m:.4g}'


SIDES = {'peer': 'peer (Flax+Optax)', 'trax': 'Trax 1.4.1'}


def table(records, other='peer'):
  """Markdown table: per workload figure, minitrax and `other` median [min-max], ratio."""
  lines = [
      f'| workload | figure | minitrax | {SIDES[other]} | ratio m/p |', '|---|---|---|---|---|'
  ]
  for key, figs in FIGURES.items():
    recs = [r for r in records if r['_key'] == key]
    if not recs:
      continue
    for path, _, *peer_path in figs + [(c, True) for c in CALIB]:
      paths = {'minitrax': path, other: peer_path[0] if peer_path and other == 'peer' else path}
      side = {
          s: [
              v
              for v in (get(r['figures'], paths[s])
                        for r in recs
                        if r['_side'] == s)
              if v is not None
          ] for s in ('minitrax', other)
      }
      if not side[other] and (other == 'trax' or not side['minitrax']):
        continue  # minitrax-only figures are shown against the peer, not against Trax
      ratio = '-'
      if side['minitrax'] and side[other] and statistics.median(side[other]):
        ratio = f'{statistics.median(side["minitrax"]) / statistics.median(side[other]):.2f}'
      label = path if paths[other] == path else f'{path} ({other}: {paths[other]})'
      lines.append(f'| {key} | {label} | {fmt(side["minitrax"])} | {fmt(side[other])} | '
                   f'{ratio} |')
  return '\n'.join(lines)


def load(path, run_prefix):
  """Records of `path` whose run_id starts with `run_prefix`, sides told apart by impl.

  The workload is the one named in the run_id (`<run>-<workload>-<i>`, as
  `main` writes it; so the peer's W1 runs paired with W1warm count there),
  else the record's own.
  """
  names = {
      'matmul_ceiling': 'ceiling', 'W1_codelab': 'W1', 'W1_codelab_warm_cache': 'W1warm',
      'W1_init': 'W1init', 'W2_mlp_mnist': 'W2', 'W3_lm_medium': 'W3', 'W4_decode': 'W4'
  }
  out = []
  for line in open(path):
    rec = json.loads(line)
    run_id = rec.get('run_id', '')
    if run_id.startswith(run_prefix) and rec['workload'] in names:
      side = ('trax' if rec['impl'].startswith('trax') else
              'minitrax' if 'minitrax' in rec['versions'] else 'peer')
      parts = run_id.rsplit('-', 2)
      key = parts[1] if len(parts) == 3 and parts[1] in WORKLOADS else names[rec['workload']]
      out.append({**rec, '_key': key, '_side': side})
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument('--only', default=','.join(WORKLOADS), help='comma-separated: ceiling,W1,..W4')
  p.add_argument('--quick', action='store_true', help='fewer steps per benchmark')
  p.add_argument('--pairs', type=int, default=1, help='runs per side, interleaved')
  p.add_argument('--peers', action='store_true', help='also run the Flax+Optax peers')
  p.add_argument('--trax', action='store_true',
                 help='also run real Trax 1.4.1 (W1-W4; venv: ../shared/bench/real_trax)')
  p.add_argument('--trax_python', default=real_trax.DEFAULT_PYTHON)
  p.add_argument('--peers_dir', default=DEFAULT_PEERS)
  p.add_argument('--peers_python', default=DEFAULT_PEERS_PY)
  p.add_argument('--platform', default='cpu',
                 help="JAX_PLATFORMS of the benchmark processes ('' lets JAX choose: a GPU)")
  p.add_argument('--out', default=os.path.join(ROOT, 'bench', 'results.jsonl'))
  p.add_argument('--run_id', default=time.strftime('%Y%m%dT%H%M%S'))
  p.add_argument('--table', metavar='RUN_PREFIX', default=None,
                 help='only print the table of the records in --out whose run_id starts so')
  args = p.parse_args(argv)
  if args.table is not None:
    records = load(args.out, args.table)
    for other in SIDES:
      if any(r['_side'] == other for r in records):
        print(table(records, other) + '\n')
    return
  # Cold compilation, as the peers have no cache (W1warm sets its own cache folder).
  env = dict(os.environ, JAX_PLATFORMS=args.platform, MINITRAX_CACHE_DIR='')
  records = []
  for key in args.only.split(','):
    module, peer_script, quick_args, timeout = WORKLOADS[key]
    extra = quick_args if args.quick else []
    for i in range(args.pairs):
      env['PEERS_RUN_ID'] = f'{args.run_id}-{key}-{i + 1}'  # `load` reads the workload back
      sides = [('minitrax', [sys.executable, '-m', module] + extra, ROOT)]
      if args.peers:
        sides.insert(0, ('peer', [args.peers_python, peer_script] + extra, args.peers_dir))
      if args.trax and key in real_trax.COMMANDS:
        sides.insert(0, ('trax', [
            sys.executable, '-m', 'bench.real_trax', '--only', key, '--trax_python',
            args.trax_python
        ], ROOT))
      for side, cmd, cwd in sides:
        rec = run_one(cmd, cwd, timeout, env)
        if rec is not None:
          with open(args.out, 'a') as f:
            f.write(json.dumps(rec) + '\n')
          records.append({**rec, '_key': key, '_side': side})
  for other in SIDES:
    if any(r['_side'] == other for r in records):
      print(table(records, other) + '\n')


if __name__ == '__main__':
  main()
