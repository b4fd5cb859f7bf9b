"""Real Google Trax 1.4.1 on W1-W4, as records of the peers' JSON format.

Runs the scripts of ../shared/bench/real_trax (their README builds the venv:
jax 0.4.13, TensorFlow 2.12) with that venv's Python and turns their text
output into one JSON line per workload, `impl` 'trax 1.4.1':

  W1  codelab_141.py: the codelab through Trax's Trainer (4+6 loss weights):
      `first_block_s` (its 'Ran 500 train steps in X secs'), steady steps/s
      = 500 / median of the later blocks, `final_eval_acc`.
  W2  bench_141.py mlp: MLP 784-512-512-10, batch 128, Adam, Trax's Loop:
      steady steps/s, GFLOP/s (6 x params x batch per step).
  W3  bench_141.py lm_train: W3's TransformerLM, batch 8 x 256, Adam: tokens/s.
  W4  bench_141.py decode: greedy `autoregressive_sample_stream` at batch 1
      (`batch1.loop_tokens_per_s`; Trax's cache is 2048 long) and the
      codelab's op-by-op `model(cur)` loop (`batch1.codelab_tokens_per_s`).

Usage: python -m bench.real_trax [--only W1,W2,W3,W4] [--trax_python PATH]
`python -m bench --trax` interleaves these runs with minitrax's.
"""

import argparse
import os
import re
import subprocess
import sys
import time

from bench import common

DEFAULT_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'shared', 'bench',
    'real_trax')
DEFAULT_PYTHON = os.path.expanduser('~/.cache/minitrax-bench/trax/venv/bin/python')
W2_PARAMS = 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10

# workload: (script arguments, timeout s)
COMMANDS = {
    'W1': (['codelab_141.py'], 600),
    'W2': (['bench_141.py', 'mlp'], 600),
    'W3': (['bench_141.py', 'lm_train'], 900),
    'W4': (['bench_141.py', 'decode'], 600),
}
_NUMBER = r'([0-9.]+)'


def _w1(text):
  blocks = [float(s) for s in re.findall(r'Ran 500 train steps in ' + _NUMBER + ' secs', text)]
  accs = re.findall(r'eval\s+accuracy \|\s+' + _NUMBER, text)
  later = blocks[1:]
  return {
      'first_block_s': blocks[0], 'later_block_s': later,
      'steady_steps_per_s': 500 / common.median(later), 'final_eval_acc': float(accs[-1]),
      'loss_weights': '4+6 (codelab copy_inputs)'
  }


def _steady(text):
  return float(re.search(r'= ' + _NUMBER + ' steps/s', text).group(1))


def _w2(text):
  steps = _steady(text)
  return {'steady_steps_per_s': steps, 'gflops': 6 * W2_PARAMS * 128 * steps / 1e9}


def _w3(text):
  return {
      'tokens_per_s': float(re.search(_NUMBER + ' tokens/s', text).group(1)),
      'steady_steps_per_s': _steady(text)
  }


def _w4(text):
  stream = re.search(r'sample_stream.*= ' + _NUMBER + ' tokens/s', text)
  codelab = re.search(r'codelab-style.*= ' + _NUMBER + ' tokens/s', text)
  return {
      'batch1': {
          'loop_tokens_per_s': float(stream.group(1)),
          'codelab_tokens_per_s': float(codelab.group(1)), 'cache_len': 2048
      }
  }


PARSERS = {'W1': _w1, 'W2': _w2, 'W3': _w3, 'W4': _w4}
WORKLOAD_NAMES = {'W1': 'W1_codelab', 'W2': 'W2_mlp_mnist', 'W3': 'W3_lm_medium', 'W4': 'W4_decode'}


def run(key, trax_python=DEFAULT_PYTHON, trax_dir=DEFAULT_DIR):
  """Runs one Trax workload; returns its figures, or raises RuntimeError with its output."""
  script, timeout = COMMANDS[key]
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  start = time.time()
  proc = subprocess.run([trax_python] + script, cwd=trax_dir, env=env, capture_output=True,
                        text=True, timeout=timeout)
  text = proc.stdout + proc.stderr
  try:
    figures = PARSERS[key](text)
  except (AttributeError, IndexError, ValueError) as e:
    raise RuntimeError(f'real Trax {key} ({" ".join(script)}, exit {proc.returncode}): could '
                       f'not read its figures ({e}); its output ends:\n{text[-2000:]}') from e
  figures['wall_s'] = time.time() - start
  versions = re.search(r'import trax: [^\n]*', text)
  figures['trax_versions'] = versions.group(0) if versions else None
  return figures


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument('--only', default='W1,W2,W3,W4')
  p.add_argument('--trax_python', default=DEFAULT_PYTHON)
  p.add_argument('--trax_dir', default=DEFAULT_DIR)
  args = p.parse_args(argv)
  if not os.path.exists(args.trax_python):
    sys.exit(f'real_trax: no Trax venv at {args.trax_python}; build it as '
             f'{os.path.join(args.trax_dir, "README.md")} says, or pass --trax_python')
  for key in args.only.split(','):
    calib = common.calibrate()
    figures = run(key, args.trax_python, args.trax_dir)
    common.emit(WORKLOAD_NAMES[key], 'trax 1.4.1', args, figures, calib)


if __name__ == '__main__':
  main()
