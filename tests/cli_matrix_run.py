"""Runs `python -m minitrax.trainer` for many `--dataset` x `--model` pairs in one process.

    python tests/cli_matrix_run.py OUTPUT_DIR DATASET:MODEL ...
    python tests/cli_matrix_run.py OUTPUT_DIR --commands COMMANDS.json

Each pair trains one step (no evaluation) in OUTPUT_DIR/DATASET_MODEL through
`minitrax.trainer.main`, as the command line would, and prints one line:
`PAIR <dataset> <model> ok <step> <n_weights>` or `PAIR <dataset> <model> error: <message>`.
`--dataset=mnist` reads the 512-example slice in tests/data/mnist (its files
registered as genuine), training on `test[:80%]`. With `--commands`, the
JSON file lists `[name, [flag, ...]]`: each runs with those flags (its
`--output_dir` replaced by OUTPUT_DIR/name) and prints `RUN <name> ok <step>
<n_weights>` or `RUN <name> error: <message>`.
"""

import json

import contextlib
import hashlib
import io
import os
import re
import sys

from absl import flags

from minitrax import checkpoint
from minitrax import trainer
from minitrax.data import distribution_files as files_lib

MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'mnist')


def register_mnist_slice():
  """Makes TFDS's registry accept the files of tests/data/mnist as MNIST's."""
  registry = {}
  for name in os.listdir(MNIST):
    if name.endswith('.gz'):
      with open(os.path.join(MNIST, name), 'rb') as f:
        data = f.read()
      registry[name] = files_lib.DistFile(name, f'http://127.0.0.1:9/{name}', len(data),
                                          hashlib.sha256(data).hexdigest())
  files_lib.registered = lambda dataset: dict(registry)


def run_flags(output_dir, flag_list):
  """Runs `minitrax.trainer.main` with `flag_list`; returns `ok <step> <n_weights>` or the error."""
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['trainer'] + flag_list + [f'--output_dir={output_dir}'])
  out, err = io.StringIO(), io.StringIO()
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      trainer.main(['trainer'])
  except SystemExit as e:
    message = e.code if isinstance(e.code, str) else err.getvalue().strip()
    return f'error: {message.splitlines()[0]}'
  n_weights = re.search(r'Total number of trainable weights: (\d+)', out.getvalue()).group(1)
  step = checkpoint.load(os.path.join(output_dir, 'model.pkl'))['step']
  return f'ok {step} {n_weights}'


def run_pair(output_root, dataset, model):
  """One step of `--dataset=dataset --model=model`; returns the line to print."""
  flag_list = [
      f'--dataset={dataset}', f'--model={model}', '--config=train.steps=1',
      '--config=train.eval_steps=0'
  ]
  if dataset == 'mnist':
    flag_list += [f'--data_dir={MNIST}', '--train_split=test[:80%]', '--eval_split=test[80%:]']
  result = run_flags(os.path.join(output_root, f'{dataset}_{model}'), flag_list)
  return f'PAIR {dataset} {model} {result}'


def main(output_root, pairs):
  register_mnist_slice()
  if pairs[0] == '--commands':
    with open(pairs[1], encoding='utf-8') as f:
      for name, flag_list in json.load(f):
        print(f'RUN {name} {run_flags(os.path.join(output_root, name), flag_list)}', flush=True)
    return
  for pair in pairs:
    print(run_pair(output_root, *pair.split(':')), flush=True)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2:])
